"""The compiled kernels built for the instruction-set level this CPU runs best.

``setup.py`` compiles ``_conv``, ``_pool``, ``_depthwise`` and ``_optim`` once per level
of :mod:`fastconv._kernels.levels`, into ``fastconv._kernels.<level>``.  At
import this package picks the highest level that was built and whose CPU
features the processor and operating system support, and exposes its
modules as ``_conv``, ``_pool``, ``_depthwise`` and ``_optim``.  The environment
variable ``FASTCONV_CPU_LEVEL=<level>`` forces a level (for tests, and to
compare levels); a level the CPU cannot run raises ValueError instead of
crashing on an illegal instruction.
"""

import importlib
import importlib.util
import os

from . import _cpu
from .levels import LEVELS

_BY_NAME = {level.name: level for level in LEVELS}


def _is_built(name):
    try:
        return importlib.util.find_spec(f"{__name__}.{name}._conv") is not None
    except ModuleNotFoundError:  # no fastconv._kernels.<name> at all
        return False


def _cpu_runs(name):
    return all(_cpu.supports(feature) for feature in _BY_NAME[name].features)


def choose_level(requested, built, supported):
    """The level to run: ``requested`` (a name, or empty for the best one)
    checked against the levels ``built`` and those this CPU ``supported``
    (both lowest first).  ValueError names what is wrong with a request."""
    if not built:
        raise ImportError("fastconv's compiled kernels are not built: install fastconv "
                          "with pip, or run 'python setup.py build_ext --inplace'")
    if not requested:
        return supported[-1]
    if requested not in _BY_NAME:
        raise ValueError(f"FASTCONV_CPU_LEVEL must be one of {', '.join(_BY_NAME)}; "
                         f"got {requested!r}")
    if requested not in built:
        raise ValueError(f"FASTCONV_CPU_LEVEL={requested!r}, but this build of fastconv "
                         f"has only the levels {', '.join(built)}")
    if requested not in supported:
        raise ValueError(f"FASTCONV_CPU_LEVEL={requested!r} needs the CPU features "
                         f"{', '.join(_BY_NAME[requested].features)}; this CPU runs only "
                         f"the levels {', '.join(supported)}")
    return requested


BUILT_LEVELS = tuple(level.name for level in LEVELS if _is_built(level.name))
SUPPORTED_LEVELS = tuple(name for name in BUILT_LEVELS if _cpu_runs(name))
LEVEL = choose_level(os.environ.get("FASTCONV_CPU_LEVEL", "").strip(), BUILT_LEVELS,
                     SUPPORTED_LEVELS)

_conv, _pool, _depthwise, _optim = (importlib.import_module(f"{__name__}.{LEVEL}.{module}")
                                    for module in ("_conv", "_pool", "_depthwise", "_optim"))
