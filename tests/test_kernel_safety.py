"""The kernels never crash, hang or depend on the thread count (issue #10).

1. sizes past 32-bit products: computed in 64 bits, or rejected with ValueError
2. thread counts: capped at ``ops.max_threads()``, following the OpenMP
   runtime (OMP_NUM_THREADS, threadpoolctl) until set_num_threads pins them
3. fork: a forked child of a parent that ran threads calls every kernel and
   trains, on one thread with one warning; sweeps with fork, spawn, joblib
4. weight gradients bit-identical for any thread count

Crashes and hangs are probed in subprocesses with timeouts (``run_python``,
``tests/helpers/fork_workers.py``).
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastconv
from conftest import PACKAGE_PARENT, subprocess_env
from fastconv import layers, models, ops, utils

TESTS = Path(__file__).parent


def run_python(code, env=None, timeout=120):
    """Runs ``code`` in a fresh interpreter (address space capped at 4 GB);
    returns the CompletedProcess."""
    prelude = ("import resource\n"
               "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, cwd=PACKAGE_PARENT,
                          env=env or subprocess_env())


def environment(**variables):
    return subprocess_env(**variables)


@pytest.fixture
def threads_follow_runtime(monkeypatch, threads_on_small_shapes):
    """No set_num_threads in force; threads on the small shapes of these tests."""
    monkeypatch.setattr(ops, "_num_threads", None)


# ---------------------------------------------------------------- 1. 64-bit sizes

def test_reported_scratch_overflow_raises_instead_of_crashing():
    """The padded image of this weight gradient holds 32769 x 65536 values, a
    product that wrapped around in C ints and crashed the process (the
    model's forward pass needs as many): now a ValueError, in ops and fit."""
    proc = run_python("""
        import numpy as np
        from fastconv import layers, models, ops
        x = np.ones((1, 1, 65536, 1), "f4")
        for call in [lambda: ops.conv2d_backward(x, np.ones((32769, 1, 1, 1), "f4"), x,
                                                 padding="same", compute_dx=False),
                     lambda: ops.conv2d_forward(x, np.ones((32769, 1, 1, 1), "f4"),
                                                padding="same")]:
            try:
                call()
            except ValueError as error:
                print("ValueError", error)
        model = models.Sequential([layers.Input((1, 65536, 1)),
                                   layers.Conv2D(1, (32769, 1), padding="same")])
        model.compile(optimizer="sgd", loss="mse")
        try:
            model.fit(x, x, verbose=0)
        except ValueError as error:
            print("ValueError", error)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("ValueError") and "too large" in line
                                   for line in lines), proc.stdout


# ----------------------------------------------------------------- 2. thread counts

def test_absurd_thread_counts_are_rejected(restore_threads):
    before = fastconv.get_num_threads()
    with pytest.raises(ValueError, match="at most"):
        fastconv.set_num_threads(10**9)
    assert fastconv.get_num_threads() == before
    fastconv.set_num_threads(ops.max_threads())
    expected = ops.max_threads() if fastconv.build_info()["openmp"] else 1
    assert fastconv.get_num_threads() == expected


def test_huge_omp_num_threads_is_capped_with_a_warning():
    """OMP_NUM_THREADS=1000000 once started thousands of OS threads per call."""
    proc = run_python("""
        import warnings
        import numpy as np
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            import fastconv
            from fastconv import ops
            ops.MIN_WORK_PER_THREAD = 1
            count = fastconv.get_num_threads()
            ops.conv2d_forward(np.ones((64, 32, 32, 8), "f4"), np.ones((3, 3, 8, 16), "f4"))
        with open("/proc/self/status") as f:
            threads = [int(l.split()[1]) for l in f if l.startswith("Threads:")][0]
        print(count, ops.max_threads(), threads,
              sum("at most" in str(w.message) for w in seen))
    """, env=environment(OMP_NUM_THREADS="1000000", OPENBLAS_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, cap, threads, warned = map(int, proc.stdout.split())
    assert count == cap and warned == 1
    assert threads <= cap + 4, f"{threads} OS threads"     # + Python's own


def test_unicode_digit_in_omp_num_threads_does_not_break_import():
    """'²'.isdigit() is True but int('²') raises: the import used to fail."""
    proc = run_python("import fastconv; print(fastconv.get_num_threads())",
                      env=environment(OMP_NUM_THREADS="²"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout) >= 1


def test_thread_count_follows_threadpoolctl(threads_follow_runtime):
    """threadpool_limits(1) limits the kernels as it limits BLAS; an explicit
    set_num_threads wins over it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastconv.build_info()["openmp"]:
        pytest.skip("built without OpenMP")
    default = fastconv.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
        assert ops._threads_for(10**9) == 1
    assert fastconv.get_num_threads() == default
    fastconv.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 2


# ----------------------------------------------------------------------- 3. fork

def run_fork_workers(mode):
    proc = subprocess.run([sys.executable, str(TESTS / "helpers" / "fork_workers.py"), mode],
                          capture_output=True, text=True, timeout=300, cwd=PACKAGE_PARENT,
                          env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_forked_child_calls_every_kernel():
    """After a 2-thread call in the parent, a forked child (and its own
    child) runs every kernel, bit-identical to the parent, with one
    RuntimeWarning; it used to hang in libgomp's barrier."""
    assert run_fork_workers("os-fork") == {"os.fork": 0, "parent threads": 2}


def test_hyperparameter_sweep_in_processes():
    """Four seeded trainings mapped over Pools of forked and spawned processes
    (and joblib's loky and multiprocessing backends, when installed) give the
    weights of the serial run in the parent, bit for bit."""
    outcome = run_fork_workers("sweep")
    assert outcome["fork"] == "ok" and outcome["spawn"] == "ok", outcome
    assert outcome["joblib"] in ("ok", "not installed"), outcome


# -------------------------------------------------------------- 4. determinism

def results_by_threads(call, counts=(1, 2, 3, 4)):
    results = {}
    for threads in counts:
        fastconv.set_num_threads(threads)
        results[threads] = call()
    return results


@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 2)])
def test_conv_gradients_identical_for_any_thread_count(threads_follow_runtime, padding,
                                                       strides):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 9, 8, 5)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    y = ops.conv2d_forward(x, kernel, strides=strides, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    results = results_by_threads(
        lambda: ops.conv2d_backward(x, kernel, dy, strides=strides, padding=padding))
    for threads in (2, 3, 4):
        for got, want in zip(results[threads], results[1]):
            assert np.array_equal(got, want), f"{threads} threads"


def test_depthwise_gradients_identical_for_any_thread_count(threads_follow_runtime):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((37, 9, 8, 5)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 5, 2)).astype(np.float32)
    dy = rng.standard_normal((37, 9, 8, 10)).astype(np.float32)
    results = results_by_threads(
        lambda: ops.depthwise_conv2d_backward(x, kernel, dy, padding="same"))
    for threads in (2, 3, 4):
        for got, want in zip(results[threads], results[1]):
            assert np.array_equal(got, want), f"{threads} threads"


def test_training_identical_for_one_and_two_threads(threads_follow_runtime):
    """set_random_seed(n) then fit: the same weights, bit for bit, on 1 and 2 threads."""
    rng = np.random.default_rng(3)
    x = rng.random((60, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 4, 60)

    def train():
        utils.set_random_seed(7)
        model = models.Sequential([layers.Input((12, 12, 1)),
                                   layers.Conv2D(8, 3, activation="relu"),
                                   layers.MaxPooling2D(),
                                   layers.Conv2D(8, 3, activation="relu", padding="same"),
                                   layers.Flatten(), layers.Dense(4, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=20, epochs=2, verbose=0)
        return model.get_weights()

    results = results_by_threads(train, (1, 2))
    for got, want in zip(results[2], results[1]):
        assert np.array_equal(got, want)
