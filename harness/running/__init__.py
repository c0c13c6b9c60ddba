"""Running one scenario: processes, ports, log watching, clocks, the op-completion machine,
the recorder and the runner that drives them."""
