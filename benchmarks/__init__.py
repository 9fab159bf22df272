"""Benchmarks: hand-written baselines and scripts that print measured figures."""
