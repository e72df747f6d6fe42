"""Benchmarks for the performance targets in DESIGN.md; run with `make bench`."""
