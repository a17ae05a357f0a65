"""Which kernels the layers run, and how the compiled ones were built."""

from . import _conv, ops, reference

BACKENDS = {"cython": ops, "numpy": reference}
_backend = "cython"


def set_backend(name):
    """Runs every layer on 'cython' (compiled kernels) or 'numpy' (the reference)."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    _backend = name


def get_backend():
    """The name of the backend in use: 'cython' or 'numpy'."""
    return _backend


def kernels():
    """The module whose kernels the layers call now: fastconv.ops or fastconv.reference."""
    return BACKENDS[_backend]


def build_info():
    """How the compiled kernels were built and how they run now."""
    return {
        "backend": _backend,
        "openmp": _conv.OPENMP,
        "num_threads": ops.get_num_threads(),
        "build_flags": _conv.BUILD_FLAGS,
        "vector_bytes": _conv.VECTOR_BYTES,
    }
