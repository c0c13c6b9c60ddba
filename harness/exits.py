"""Exit statuses, the same for every `pams` command (docs/cli.md): 0 everything passed, 1 a
rule failed, 2 unusable input or the implementation could not be run, 130 interrupted."""

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
