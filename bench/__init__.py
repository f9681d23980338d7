"""Benchmarks of wasp against the servers users would pick instead (see docs/benchmarks.md)."""
