"""Grading with pams inside existing engines: a Gradescope autograder bundle and a GitHub
Actions workflow (docs/cli.md, `pams autograder`)."""
