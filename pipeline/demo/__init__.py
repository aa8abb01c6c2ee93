"""Generators for the demo and the benchmarks; no pipeline stage imports this package."""
