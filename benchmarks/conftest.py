"""pytest-benchmark suites: run with `make bench-pytest` or
`.venv/bin/python -m pytest benchmarks --benchmark-only`."""
