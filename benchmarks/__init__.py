"""Benchmarks (`pams bench`), outside the product packages: they drive implementations
through their adapters like everything else, and hold the model of a correct system that
`pams bench checkers` generates traces from (`tracegen`)."""
