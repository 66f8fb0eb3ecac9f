"""Benchmarks of where the project's time goes (`make bench`, `python -m benchmarks.run`); not part of the library."""
