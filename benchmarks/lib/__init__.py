"""The benchmarks' shared library: child processes, peers' environments, datasets, results files.

Scripts import from here and never from one another (tests/test_benchmark_scripts.py checks)."""
