"""Benchmarks (`pams bench`) and the trace model they generate traces from."""
