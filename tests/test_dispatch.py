"""The choice of the kernels' instruction-set level (fastconv._kernels).

The CPU's features as Linux reports them in /proc/cpuinfo are the
reference for what the compiled probe detects and for the level chosen.
Each level this machine runs is forced with FASTCONV_CPU_LEVEL in a
subprocess of its own, which checks that level's kernels against the NumPy
reference: within 1e-12 (float64) or 1e-5 (float32) of the result's largest
magnitude (levels with and without FMA round differently, so no level is
bit-identical to another).
"""

import os
import subprocess
import sys

import pytest

import fastconv
from conftest import PACKAGE_PARENT, subprocess_env
from fastconv import _kernels
from fastconv._kernels import _cpu, choose_level
from fastconv._kernels.levels import LEVELS

# The directory holding the fastconv under test (the repository, or site-packages).
INFO = fastconv.build_info()


def cpuinfo_flags():
    """The CPU feature flags Linux reports, or None off Linux x86."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


needs_cpuinfo = pytest.mark.skipif(cpuinfo_flags() is None,
                                   reason="needs /proc/cpuinfo with x86 flags")


def run_python(code, level):
    env = subprocess_env(FASTCONV_CPU_LEVEL=level, OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=PACKAGE_PARENT)


@needs_cpuinfo
def test_probe_agrees_with_cpuinfo():
    for feature in sorted({f for level in LEVELS for f in level.features}):
        assert _cpu.supports(feature) == (feature in cpuinfo_flags()), feature


def test_probe_rejects_a_feature_it_cannot_test():
    with pytest.raises(ValueError, match="'sse9'"):
        _cpu.supports("sse9")


@needs_cpuinfo
def test_default_level_is_the_best_the_cpu_runs():
    flags = cpuinfo_flags()
    features = {level.name: set(level.features) for level in LEVELS}
    supported = tuple(name for name in INFO["cpu_levels_built"] if features[name] <= flags)
    assert INFO["cpu_levels_supported"] == supported
    if os.environ.get("FASTCONV_CPU_LEVEL", "").strip():
        pytest.skip("FASTCONV_CPU_LEVEL forces the level")
    assert INFO["cpu_level"] == supported[-1]
    if "native" not in INFO["cpu_levels_built"] and {"avx512f", "avx512bw"} <= flags:
        assert INFO["cpu_level"] == "avx512"
        assert INFO["vector_bytes"] == 64


def test_build_info_names_the_running_level():
    assert INFO["cpu_level"] in INFO["cpu_levels_supported"]
    assert set(INFO["cpu_levels_supported"]) <= set(INFO["cpu_levels_built"])
    assert "baseline" in INFO["cpu_levels_built"] or INFO["cpu_levels_built"] == ("native",)
    assert _kernels._conv.__name__ == f"fastconv._kernels.{INFO['cpu_level']}._conv"
    assert INFO["build_flags"] == _kernels._conv.BUILD_FLAGS


CHECK_LEVEL = """
import sys
import numpy as np
import fastconv
from fastconv import ops, reference

level = {level!r}
assert fastconv.build_info()["cpu_level"] == level
loaded = {{name.split(".")[2] for name in sys.modules
           if name.startswith("fastconv._kernels.") and name.count(".") == 3}}
assert loaded == {{level}}, loaded
rng = np.random.default_rng(0)
for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
    def check(name, *args, **kwargs):
        got, want = getattr(ops, name)(*args, **kwargs), getattr(reference, name)(*args, **kwargs)
        for g, w in zip(*(t if isinstance(t, tuple) else (t,) for t in (got, want))):
            np.testing.assert_allclose(g, w, rtol=0, atol=tol * np.abs(w).max(), err_msg=name)
    for n, h, w, c, co, stride, padding in ((2, 9, 9, 3, 5, 1, "valid"),
                                           (3, 13, 11, 32, 64, 1, "same"),
                                           (2, 10, 12, 17, 40, 2, "same")):
        x = rng.standard_normal((n, h, w, c)).astype(dtype)
        kernel = rng.standard_normal((3, 3, c, co)).astype(dtype)
        bias = rng.standard_normal(co).astype(dtype)
        y = reference.conv2d_forward(x, kernel, bias, stride, padding)
        dy = rng.standard_normal(y.shape).astype(dtype)
        check("conv2d_forward", x, kernel, bias, stride, padding, activation="relu")
        check("conv2d_backward", x, kernel, dy, stride, padding)
        check("max_pool2d_forward", x, (2, 2))
        check("max_pool2d_backward", x, reference.max_pool2d_forward(x, (2, 2)), (2, 2))
        check("avg_pool2d_forward", x, (3, 3), stride, padding)
        dw = rng.standard_normal((3, 3, c, 1)).astype(dtype)
        check("depthwise_conv2d_forward", x, dw, None, stride, padding)
print("ok")
"""


@pytest.mark.parametrize("level", [level.name for level in LEVELS])
def test_forced_level_runs_its_own_kernels(level):
    if level not in INFO["cpu_levels_supported"]:
        pytest.skip(f"level {level} is not built, or this CPU cannot run it")
    result = run_python(CHECK_LEVEL.format(level=level), level)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unknown_level_is_a_clear_error():
    result = run_python("import fastconv", "sse9")
    assert result.returncode != 0
    assert ("ValueError: FASTCONV_CPU_LEVEL must be one of baseline, avx2, avx512, native; "
            "got 'sse9'") in result.stderr


def test_choose_level():
    built = ("baseline", "avx2", "avx512")
    assert choose_level("", built, built) == "avx512"
    assert choose_level("", built, ("baseline", "avx2")) == "avx2"
    assert choose_level("baseline", built, built) == "baseline"
    with pytest.raises(ValueError, match="needs the CPU features avx2, fma, avx512f.*"
                                         "runs only the levels baseline, avx2$"):
        choose_level("avx512", built, ("baseline", "avx2"))
    with pytest.raises(ValueError, match="'native', but this build of fastconv has only "
                                         "the levels baseline, avx2, avx512"):
        choose_level("native", built, built)
    with pytest.raises(ImportError, match="not built"):
        choose_level("", (), ())
