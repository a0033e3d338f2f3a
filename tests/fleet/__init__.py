"""Real test hosts for the tests, the demo and the benchmarks (see lab.py)."""
