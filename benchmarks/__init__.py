"""Benchmark scripts of napari-barl (not part of the installed package).

Run them from the repository root, e.g. ``python benchmarks/label_efficiency.py --help``;
see ``docs/benchmarks.md`` for the exact commands and how to read the results.
"""
