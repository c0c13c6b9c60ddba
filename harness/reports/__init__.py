"""Judging runs and reporting them: the battery (run, then check) and `pams grade`'s table,
JUnit and Gradescope output."""
