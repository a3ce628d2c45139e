"""Benchmarks of the harness (`harness bench ...`); figures go to docs/benchmarks.md."""
