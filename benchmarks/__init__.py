"""Benchmarks of hpsearch (issue 5); run ``python benchmarks/run.py``, see README.md."""
