# Benchmarks: built by `make bench`, not installed.
