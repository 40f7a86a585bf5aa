"""Load and pipeline benchmarks (`make bench`); not part of `make test`."""
