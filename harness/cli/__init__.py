"""The `pams` command line and the pytest plugin."""
