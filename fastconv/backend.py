"""Which kernels the layers run, and how the compiled ones were built."""

from . import _kernels, ops, reference

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
    """How the compiled kernels were built and how they run now.

    ``cpu_level`` is the instruction-set level whose modules run (chosen at
    import: the best one this CPU supports, or FASTCONV_CPU_LEVEL);
    ``cpu_levels_built`` the levels this installation has and
    ``cpu_levels_supported`` those of them this CPU runs, lowest first;
    ``build_flags`` and ``vector_bytes`` describe the running level."""
    return {
        "backend": _backend,
        "openmp": _kernels._conv.OPENMP,
        "num_threads": ops.get_num_threads(),
        "cpu_level": _kernels.LEVEL,
        "cpu_levels_built": _kernels.BUILT_LEVELS,
        "cpu_levels_supported": _kernels.SUPPORTED_LEVELS,
        "build_flags": _kernels._conv.BUILD_FLAGS,
        "vector_bytes": _kernels._conv.VECTOR_BYTES,
    }


# Keras's backend utilities, for programs that ask about the data layout.

def image_data_format():
    """'channels_last': images are (batch, height, width, channels), always."""
    return "channels_last"


def set_image_data_format(data_format):
    if data_format != "channels_last":
        raise ValueError(f"fastconv supports only data_format='channels_last', "
                         f"got {data_format!r}")


def floatx():
    """The default float type of weights and activations: 'float32'."""
    return "float32"


def epsilon():
    """Keras's fuzz factor, 1e-7 (used by the losses and metrics)."""
    return 1e-7


def clear_session():
    """Restarts the automatic layer names, as keras.backend.clear_session."""
    from .utils import clear_session as restart_names
    restart_names()
