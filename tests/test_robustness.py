"""Robustness tests of the compiled kernels in ``fastconv.ops``.

1. fuzzing against ``fastconv.reference`` (hypothesis, >= 10,000 calls) in a
   subprocess, so that a crash is a failing test, not a dead test run; the
   layer API likewise (layers and Sequential, both backends compared)
2. memory: no growth over 10,000 calls; no references kept to the inputs
3. threads: concurrent calls give the serial results; the GIL is released
4. inputs and outputs too large for memory raise MemoryError/ValueError
   (also in a subprocess)
5. ``out`` buffers that overlap an input

The subprocesses run ``tests/helpers/fuzz_kernels.py`` and
``tests/helpers/fuzz_layers.py``; see their docstrings to rerun a failing fuzz
locally (``FUZZ_SEED``, ``FUZZ_VERBOSE=1``).
"""

import gc
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import ops, reference

REPO = Path(__file__).parents[1]
HELPERS = REPO / "tests" / "helpers"
FUZZER = HELPERS / "fuzz_kernels.py"
LAYER_FUZZER = HELPERS / "fuzz_layers.py"
KERNELS = ["conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward"]
FUSED_KERNELS = ["conv2d_relu_max_pool2d_forward", "relu_max_pool2d_backward",
                 "conv2d_relu_max_pool2d_backward"]
MB = 2**20


# ------------------------------------------------------------------- subprocess runs

def run_script(*args, timeout, script=FUZZER):
    """Runs a fuzzer script (the kernels' one by default); returns (process,
    stdout lines)."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    return proc, proc.stdout.splitlines()


def explain(proc):
    """Return code (with the signal's name), the error lines of stderr, and the
    tails of stdout and stderr."""
    code = proc.returncode
    if code < 0:
        code = f"{code} ({signal.Signals(-code).name})"
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith(("call:", "Fatal Python error")) or
              (line[:1].isalpha() and line.split(":")[0].endswith(("Error", "Exception")))]
    return (f"return code {code} (rerun: CI=1 FUZZ_VERBOSE=1 python {proc.args[1]})\n"
            "--- errors\n" + "\n".join(errors[:40]) +
            f"\n--- stdout (tail)\n{proc.stdout[-2000:]}"
            f"\n--- stderr (tail)\n{proc.stderr[-4000:]}")


def tagged(lines, tag):
    """The rest of the last line starting with ``tag``, or None."""
    found = [line[len(tag) + 1:] for line in lines if line.startswith(tag + " ")]
    return found[-1] if found else None


# ---------------------------------------------------------------------- 1. fuzzing

@pytest.mark.slow
def test_fuzz_kernels_against_reference_in_subprocess():
    """>= 10,000 hypothesis-generated calls to the seven kernels (random shapes,
    dtypes good and bad, strides, paddings, pool sizes, odd layouts, wrong
    ranks, huge virtual shapes) each return the reference's answer or raise
    ValueError/TypeError/MemoryError; the interpreter does not crash."""
    proc, lines = run_script(timeout=600)
    assert proc.returncode == 0, explain(proc)
    calls = int(tagged(lines, "CALLS"))
    stats = json.loads(tagged(lines, "STATS"))
    assert calls >= 10_000, explain(proc)
    for name in KERNELS:
        assert stats[f"calls {name}"] >= 2_000, stats
    for name in FUSED_KERNELS:
        assert stats[f"calls {name}"] >= 800 and stats[f"returned {name}"] > 0, stats
    # conv2d_backward took each input-gradient path and split weight gradients
    for path in ["pointwise", "scatter", "convolution"]:
        assert stats.get(f"input gradient {path}", 0) > 0, stats
    assert stats.get("weight gradient in parts > 1", 0) > 0, stats
    # Not only errors: a good share of the calls were compared with the reference.
    assert stats["returned"] >= 0.25 * calls, stats
    assert stats.get("raised ValueError", 0) > 0 and stats.get("raised TypeError", 0) > 0
    assert stats.get("raised MemoryError", 0) > 0, stats


@pytest.mark.slow
def test_fuzz_layers_against_numpy_backend_in_subprocess():
    """>= 10,000 hypothesis-generated calls to the layer API: constructors with
    junk arguments (filters, sizes, strides, padding, activations,
    initializers, input_shape, dtype, dropout rates), build, forward/__call__
    on odd inputs (dtypes, layouts, ranks, channels, empty batches, NaN/Inf),
    set_weights, backward, and small Sequential models (predict, compile, fit,
    evaluate with junk labels and batch sizes).  Each returns what the numpy
    backend returns (compared on the compiled one) or raises
    ValueError/TypeError/MemoryError (RuntimeError where documented);
    arguments the documentation rules out are rejected, well-formed ones
    accepted; the interpreter does not crash."""
    proc, lines = run_script(timeout=600, script=LAYER_FUZZER)
    assert proc.returncode == 0, explain(proc)
    calls = int(tagged(lines, "CALLS"))
    stats = json.loads(tagged(lines, "STATS"))
    assert calls >= 10_000, explain(proc)
    for kind, least in [("construct", 2_000), ("forward", 2_000), ("backward", 500),
                        ("predict", 500), ("fit", 300)]:
        assert stats[f"calls {kind}"] >= least, stats
    # Not only errors: many calls were compared across the backends.
    for kind, least in [("forward", 1_000), ("backward", 300), ("predict", 100)]:
        assert stats[f"{kind}: compared"] >= least, stats
    for error in ["ValueError", "TypeError", "MemoryError", "RuntimeError"]:
        assert stats.get(f"raised {error}", 0) > 0, stats


# ----------------------------------------------------------------------- 2. memory

def small_calls():
    """(function, kwargs) of small calls: the four kernels, both dtypes, both paddings."""
    rng = np.random.default_rng(0)
    calls = []
    for dtype in [np.float32, np.float64]:
        for padding, strides in [("valid", 1), ("same", (2, 1))]:
            x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)
            kernel = rng.standard_normal((3, 2, 3, 5)).astype(dtype)
            bias = rng.standard_normal(5).astype(dtype)
            y = ops.conv2d_forward(x, kernel, bias, strides, padding)
            p = ops.max_pool2d_forward(x, 2, strides, padding)
            calls += [
                (ops.conv2d_forward, dict(x=x, kernel=kernel, bias=bias, strides=strides,
                                          padding=padding, activation="relu")),
                (ops.conv2d_backward, dict(x=x, kernel=kernel, dy=np.ones_like(y),
                                           strides=strides, padding=padding)),
                (ops.max_pool2d_forward, dict(x=x, pool_size=2, strides=strides,
                                              padding=padding)),
                (ops.max_pool2d_backward, dict(x=x, dy=np.ones_like(p), pool_size=2,
                                               strides=strides, padding=padding)),
                # Odd layouts and a bad argument take the copying and error paths.
                (ops.conv2d_forward, dict(x=np.asfortranarray(x), kernel=kernel[::-1],
                                          padding=padding)),
                (ops.max_pool2d_forward, dict(x=x[:, ::-1], pool_size=(3, 2))),
                (ops.conv2d_forward, dict(x=x, kernel=kernel[:, :, :2], padding=padding)),
            ]
    return calls


def call_many(calls, n):
    """Makes n calls, cycling through ``calls``; errors are expected for some."""
    for i in range(n):
        function, kwargs = calls[i % len(calls)]
        try:
            function(**kwargs)
        except ValueError:
            pass


# The memory tests run the kernels on one thread: with OpenMP threads spinning
# at barriers, tiny calls slow down a hundredfold when another process keeps
# the cores busy, and memory, not threading, is the subject here.
MEMORY_THREADS = 1


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_repeated_calls_do_not_grow_resident_memory(restore_threads):
    """10,000 mixed small calls grow the resident set by less than 20 MB."""
    fastconv.set_num_threads(MEMORY_THREADS)
    calls = small_calls()
    call_many(calls, 1_000)                 # warm-up: caches, OpenMP threads, arenas
    gc.collect()
    before = resident_bytes()
    call_many(calls, 10_000)
    gc.collect()
    grown = resident_bytes() - before
    assert grown < 20 * MB, f"resident memory grew by {grown / MB:.1f} MB"


def test_repeated_calls_do_not_grow_traced_memory(restore_threads):
    """tracemalloc (which also sees NumPy's array data) shows less than 64 kB
    growth over 10,000 mixed calls after a warm-up."""
    fastconv.set_num_threads(MEMORY_THREADS)
    calls = small_calls()
    tracemalloc.start()
    try:
        call_many(calls, 500)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        call_many(calls, 10_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"traced memory grew by {grown} bytes"


def test_no_references_kept_to_inputs_or_outputs():
    """After a call (returning or raising) every argument has its old refcount."""
    for function, kwargs in small_calls():
        kwargs = dict(kwargs)
        if function in (ops.conv2d_forward, ops.max_pool2d_forward):
            try:
                kwargs["out"] = np.empty_like(function(**kwargs))
            except ValueError:
                pass
        arrays = {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
        before = {k: sys.getrefcount(v) for k, v in arrays.items()}
        for _ in range(3):
            try:
                result = function(**kwargs)
                del result
            except ValueError:
                pass
        after = {k: sys.getrefcount(v) for k, v in arrays.items()}
        assert after == before, f"{function.__name__}: refcounts {before} -> {after}"


class Tracked(np.ndarray):
    """An ndarray subclass, so that inputs can be weakly referenced."""


@pytest.mark.parametrize("layout", ["contiguous", "fortran"])
def test_inputs_are_freed_after_calls(layout):
    """Inputs (and the copies made of odd layouts) die with their last outside
    reference, without the help of the cycle collector."""
    rng = np.random.default_rng(1)

    def make(shape):
        a = rng.standard_normal(shape)
        a = np.asfortranarray(a) if layout == "fortran" else a
        return a.view(Tracked)

    x, kernel, dy, dyp = (make(s) for s in [(2, 6, 5, 3), (3, 3, 3, 4), (2, 4, 3, 4),
                                            (2, 3, 2, 3)])
    refs = [weakref.ref(a) for a in (x, kernel, dy, dyp)]
    ops.conv2d_forward(x, kernel, make((4,)), activation="relu")
    ops.conv2d_backward(x, kernel, dy)
    ops.max_pool2d_forward(x)
    ops.max_pool2d_backward(x, dyp)
    try:
        ops.conv2d_backward(x, kernel, dyp)            # dy of the wrong shape
    except ValueError:
        pass
    else:
        raise AssertionError("dy of the wrong shape was accepted")
    gc.disable()
    try:
        del x, kernel, dy, dyp
        assert [r() is None for r in refs] == [True] * 4
    finally:
        gc.enable()


# ---------------------------------------------------------------------- 3. threads

def thread_tasks():
    """(name, kwargs) of calls with different shapes, dtypes and paths
    (direct, padded, strided, non-finite kernel)."""
    rng = np.random.default_rng(2)
    tasks = []
    for dtype in [np.float32, np.float64]:
        for i, (padding, strides, cout) in enumerate([("valid", 1, 8), ("same", (2, 1), 17),
                                                      ("same", 1, 33), ("valid", (1, 3), 3)]):
            x = rng.standard_normal((3, 11 + i, 9, 4)).astype(dtype)
            kernel = rng.standard_normal((3, 2, 4, cout)).astype(dtype)
            if i == 3:
                kernel[0, 0, 0, 0] = np.nan             # takes the reference's exact path
            y = reference.conv2d_forward(x, kernel, None, strides, padding)
            p = reference.max_pool2d_forward(x, 3, strides, padding)
            common = dict(strides=strides, padding=padding)
            tasks += [
                ("conv2d_forward", dict(x=x, kernel=kernel, bias=kernel[0, 0, 0],
                                        activation="relu", **common)),
                ("conv2d_backward", dict(x=x, kernel=kernel,
                                         dy=rng.standard_normal(y.shape).astype(dtype),
                                         **common)),
                ("max_pool2d_forward", dict(x=x, pool_size=3, **common)),
                ("max_pool2d_backward", dict(x=x, dy=rng.standard_normal(p.shape).astype(dtype),
                                             pool_size=3, **common)),
            ]
    return tasks


def identical(a, b):
    """Exactly equal results (tuples of arrays or None), NaNs included."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(identical, a, b))
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("threads", [1, 2])
def test_concurrent_calls_match_serial_results(threads_on_small_shapes, threads):
    """4 Python threads, each making every call 4 times in its own order,
    get exactly the results of serial calls."""
    fastconv.set_num_threads(threads)
    tasks = thread_tasks()
    serial = [getattr(ops, name)(**kwargs) for name, kwargs in tasks]

    def worker(seed):
        order = list(range(len(tasks))) * 4
        random.Random(seed).shuffle(order)
        return [(i, getattr(ops, tasks[i][0])(**tasks[i][1])) for i in order]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(worker, range(4)))
    for seed, done in enumerate(results):
        for i, result in done:
            assert identical(result, serial[i]), f"thread {seed}: task {i} {tasks[i][0]}"


def long_calls():
    """A few calls of each kernel lasting some milliseconds each.  The small
    kernel (< 500 values) and ready-made arrays keep NumPy itself from
    releasing the GIL before the compiled loops start."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 64, 64, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 16)).astype(np.float32)
    dy = rng.standard_normal((32, 62, 62, 16)).astype(np.float32)
    return {
        "conv2d_forward": lambda: ops.conv2d_forward(x, kernel),
        "conv2d_backward": lambda: ops.conv2d_backward(x, kernel, dy),
        "max_pool2d_forward": lambda: ops.max_pool2d_forward(x, 5, 1),
        "max_pool2d_backward": lambda: ops.max_pool2d_backward(x, x, 3, 1, "same"),
    }


def test_kernels_release_the_gil(restore_threads):
    """A Python thread counting in a loop advances while the main thread is
    inside a kernel.  With a huge switch interval a thread only gets the GIL
    when its holder lets go, which a GIL-holding call (the control) never does."""
    fastconv.set_num_threads(1)
    calls = long_calls()
    for call in calls.values():
        call()                                          # warm-up
    counter, stop = [0], threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)                               # releases the GIL

    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)                         # longer than the whole test
    thread = threading.Thread(target=count)
    advanced = {}
    try:
        thread.start()
        start = counter[0]
        sum(range(3_000_000))                           # holds the GIL throughout
        control = counter[0] - start
        for name, call in calls.items():
            start = counter[0]
            for _ in range(5):
                call()
            advanced[name] = counter[0] - start
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert control == 0, "the counter advanced while the GIL was held: the test is broken"
    assert all(n > 0 for n in advanced.values()), f"counter advances per kernel: {advanced}"


# ----------------------------------------------------------------- 4. large inputs

EXPECTED_LARGE = {
    # arrays or results that need terabytes (the subprocess caps the address space)
    "conv_forward_huge_batch": "MemoryError",
    "conv_forward_huge_batch_f64": "MemoryError",
    "conv_forward_huge_output": "MemoryError",
    "conv_backward_huge_batch": "MemoryError",
    "conv_backward_huge_dy": "MemoryError",
    "pool_forward_huge_batch": "MemoryError",
    "pool_backward_huge_batch": "MemoryError",
    # per-image sizes beyond the C int range: rejected up front
    "conv_forward_huge_image": "ValueError",
    "conv_backward_huge_image": "ValueError",
    "pool_forward_huge_image": "ValueError",
    "pool_backward_huge_image": "ValueError",
    "conv_forward_kernel_2_31": "ValueError",
    "conv_forward_strides_2_40": "ValueError",
    "pool_forward_size_2_31": "ValueError",
    # a 3.3e9-value output per image: rejected, or out of memory
    "conv_forward_huge_output_per_image": ("ValueError", "MemoryError"),
    # scratch arrays near 2**31 values or bytes (a segfault before)
    "conv_backward_scratch_above_2_31": "ValueError",
    "conv_forward_scratch_above_2_31": "ValueError",
    "conv_backward_scratch_below_2_31": "MemoryError",
    "conv_forward_scratch_below_2_31": "MemoryError",
    "conv_backward_scratch_2_31_bytes": "MemoryError",
    "conv_backward_scratch_2_31_bytes_f64": "MemoryError",
}


def test_too_large_inputs_raise_in_subprocess():
    """Calls whose inputs or outputs cannot fit in memory (batch 10**7 of
    28x28x32 via np.broadcast_to, 10**5 x 10**5 images, outputs of terabytes,
    sizes of 2**31 and 2**40) raise MemoryError or a ValueError saying what is
    too large; the interpreter does not crash."""
    proc, lines = run_script("--large", timeout=300)
    assert proc.returncode == 0, explain(proc)
    outcomes = {r["case"]: r for r in (json.loads(line) for line in lines
                                       if line.startswith("{"))}
    assert set(outcomes) == set(EXPECTED_LARGE), explain(proc)
    for case, expected in EXPECTED_LARGE.items():
        got = outcomes[case]
        assert got["outcome"] in (expected if isinstance(expected, tuple) else (expected,)), \
            f"{case}: {got}"
        if got["outcome"] == "ValueError":
            assert "too large" in got["message"], f"{case}: {got}"


# ------------------------------------------------------------- 5. overlapping out=

def aliasing_cases():
    """(name, kwargs builder) where ``out`` is (or holds) one of the inputs."""
    rng = np.random.default_rng(4)

    def conv_forward():
        x = rng.standard_normal((2, 3, 3, 20))
        return dict(x=x, kernel=rng.standard_normal((1, 1, 20, 20)), out=x)

    def conv_backward():
        x, dy = rng.standard_normal((2, 5, 5, 4)), rng.standard_normal((2, 5, 5, 4))
        kernel = rng.standard_normal((3, 3, 4, 4))
        return dict(x=x, kernel=kernel, dy=dy, padding="same",
                    out=(dy, np.empty_like(kernel), np.empty(4)))

    def pool_forward():
        x = rng.standard_normal((2, 4, 4, 3))
        return dict(x=x, pool_size=1, out=x)

    def pool_backward():
        x = rng.standard_normal((2, 4, 4, 3))
        return dict(x=x, dy=rng.standard_normal((2, 2, 2, 3)), out=x)

    return [("conv2d_forward", conv_forward), ("conv2d_backward", conv_backward),
            ("max_pool2d_forward", pool_forward), ("max_pool2d_backward", pool_backward)]


@pytest.mark.parametrize("name,build", aliasing_cases(), ids=[c[0] for c in aliasing_cases()])
def test_out_overlapping_an_input(name, build):
    """``out`` that is also an input gives the reference's answer (which
    computes first, then writes) or is rejected with ValueError, never a
    silently wrong result."""
    kwargs = build()
    copies = {k: v.copy() if isinstance(v, np.ndarray) else v
              for k, v in kwargs.items() if k != "out"}
    expected = getattr(reference, name)(**copies)
    try:
        got = getattr(ops, name)(**kwargs)
    except ValueError:
        return
    if isinstance(expected, tuple):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
