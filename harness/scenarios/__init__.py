"""Scenarios: the data model and files, the built-in registry and profiles, the random
generator, message tokens."""
