"""Kernels and trainings in forked and spawned processes, for
``tests/test_kernel_safety.py``; each mode runs in a process of its own so
that a hang is a timeout of that process, never of the test run.

    python tests/helpers/fork_workers.py os-fork     # a forked child calls every kernel
    python tests/helpers/fork_workers.py pool-fork   # multiprocessing.Pool (fork) trains models
    python tests/helpers/fork_workers.py sweep       # a sweep with fork, spawn (and joblib)

The parent first runs the kernels (or the trainings) on two threads, so
that GNU libgomp has a thread pool when it forks.  Every mode prints one
JSON line: per process kind, whether its results were bit-identical to the
parent's serial ones, and the RuntimeWarnings it saw; a child that does not
answer within WAIT seconds is killed and counted as a hang.
"""

import json
import multiprocessing
import os
import signal
import sys
import time
import warnings

import numpy as np

import fastconv
from fastconv import layers, models, ops, utils

WAIT = 60
ops.MIN_WORK_PER_THREAD = 1          # threads even on these small shapes (spawned children too)


def kernel_calls():
    """Every compiled kernel (conv plain, padded, strided, dilated, grouped,
    ReLU; depthwise; max and average pooling), forward and backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 15, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 4, 16)).astype(np.float32)
    dk = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
    calls = []
    for strides, padding, dilation, groups in [(1, "valid", 1, 1), (2, "same", 1, 1),
                                               (1, "same", 2, 1), (1, "same", 1, 2)]:
        kernel = k[:, :, : 4 // groups]
        y = ops.conv2d_forward(x, kernel, None, strides, padding, "relu",
                               dilation_rate=dilation, groups=groups)
        calls += [lambda kernel=kernel, a=(strides, padding, "relu"), d=dilation, g=groups:
                  ops.conv2d_forward(x, kernel, kernel[0, 0, 0], *a, dilation_rate=d, groups=g),
                  lambda kernel=kernel, y=y, a=(strides, padding), d=dilation, g=groups:
                  ops.conv2d_backward(x, kernel, np.ones_like(y), *a, activation="relu", y=y,
                                      dilation_rate=d, groups=g)]
    yd = ops.depthwise_conv2d_forward(x, dk, padding="same")
    yp = ops.max_pool2d_forward(x, 3, 1, "same")
    calls += [lambda: ops.depthwise_conv2d_forward(x, dk, dk[0, 0].ravel(), padding="same"),
              lambda: ops.depthwise_conv2d_backward(x, dk, yd, padding="same"),
              lambda: ops.max_pool2d_forward(x, 3, 1, "same"),
              lambda: ops.max_pool2d_backward(x, yp, 3, 1, "same"),
              lambda: ops.avg_pool2d_forward(x, 3, 1, "same"),
              lambda: ops.avg_pool2d_backward(x, yp, 3, 1, "same")]
    return calls


def flat(result):
    """A result (array or tuple of arrays) as a list of arrays."""
    return [r for r in (result if isinstance(result, tuple) else (result,)) if r is not None]


def identical(got, want):
    return len(got) == len(want) and all(g.dtype == w.dtype and g.shape == w.shape and
                                         np.array_equal(g, w, equal_nan=True)
                                         for g, w in zip(got, want))


def run_kernels():
    return [flat(call()) for call in kernel_calls()]


def wait_child(pid):
    """The child's exit code, or 'hang' (the child then killed) after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hang"


def child_check(serial, grandchild):
    """In a forked child: exit code 0 when every kernel matches ``serial``
    bit for bit and one RuntimeWarning was given (3: mismatch, 4: warnings,
    5: the grandchild failed)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        results = [run_kernels() for _ in range(2)]
    if not all(identical(g, w) for r in results for g, w in zip(r, serial)):
        os._exit(3)
    fork_warnings = [w for w in seen if "forked" in str(w.message)]
    if len(fork_warnings) != 1 or fork_warnings[0].category is not RuntimeWarning:
        os._exit(4)
    if grandchild:
        pid = os.fork()
        if pid == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                os._exit(0 if all(map(identical, run_kernels(), serial)) else 3)
        if wait_child(pid) != 0:
            os._exit(5)
    os._exit(0)


def os_fork():
    fastconv.set_num_threads(2)
    serial = run_kernels()
    pid = os.fork()
    if pid == 0:
        child_check(serial, grandchild=True)
    return {"os.fork": wait_child(pid), "parent threads": fastconv.get_num_threads()}


# ------------------------------------------------------------------ trainings

def train(config):
    """Weights after a short seeded training: config = (seed, learning rate)."""
    seed, learning_rate = config
    utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((48, 10, 10, 2)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    model = models.Sequential([layers.Input((10, 10, 2)),
                               layers.Conv2D(16, 3, activation="relu", padding="same"),
                               layers.MaxPooling2D(),
                               layers.Conv2D(6, 3, activation="relu"),
                               layers.Flatten(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fastconv.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # the fork warning
        model.fit(x, y, batch_size=12, epochs=2, verbose=0, shuffle=True)
    return model.get_weights()


CONFIGS = [(seed, rate) for seed in (1, 2) for rate in (1e-3, 3e-3)]


def same_weights(results, serial):
    return all(len(r) == len(s) and all(np.array_equal(a, b) for a, b in zip(r, s))
               for r, s in zip(results, serial)) and len(results) == len(serial)


def in_pool(method, serial):
    """'ok', 'mismatch' or 'hang': the sweep mapped over a Pool of 2 processes."""
    pool = multiprocessing.get_context(method).Pool(2)
    try:
        results = pool.map_async(train, CONFIGS).get(timeout=WAIT)
    except multiprocessing.TimeoutError:
        return "hang"
    finally:
        pool.terminate()
        pool.join()
    return "ok" if same_weights(results, serial) else "mismatch"


def with_joblib(serial):
    try:
        import joblib
    except ImportError:
        return "not installed"
    outcomes = []
    for backend in ["loky", "multiprocessing"]:     # spawn-like workers; fork
        try:
            results = joblib.Parallel(n_jobs=2, backend=backend, timeout=WAIT)(
                joblib.delayed(train)(c) for c in CONFIGS)
        except (multiprocessing.TimeoutError, TimeoutError):
            outcomes.append("hang")
            continue
        outcomes.append("ok" if same_weights(results, serial) else "mismatch")
    return "ok" if outcomes == ["ok", "ok"] else str(outcomes)


def serial_trainings():
    fastconv.set_num_threads(2)
    return [train(c) for c in CONFIGS]


def pool_fork():
    serial = serial_trainings()
    return {"fork": in_pool("fork", serial)}


def sweep():
    serial = serial_trainings()
    return {"fork": in_pool("fork", serial), "spawn": in_pool("spawn", serial),
            "joblib": with_joblib(serial)}


MODES = {"os-fork": os_fork, "pool-fork": pool_fork, "sweep": sweep}

if __name__ == "__main__":
    print(json.dumps(MODES[sys.argv[1]]()), flush=True)
