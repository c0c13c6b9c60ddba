"""Adapter files: loading, validating and rendering them, and running their build
(docs/adapter.md)."""
