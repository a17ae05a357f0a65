"""Code the tests share that is not a test: the finite-difference oracle,
toy data, and the scripts the tests run in subprocesses (fuzzers, fork and
model workers; each runs as ``python tests/helpers/<name>.py``)."""
