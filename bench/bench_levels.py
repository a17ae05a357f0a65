"""Speed of each instruction-set level of the compiled kernels, in one run:
conv2 of the MNIST model (x 64x13x13x32, kernel 3x3x32x64, bias, relu)
forward and backward, and a training step of the notebook model (batch 64),
with the NumPy reference's conv2 for scale.

    OMP_NUM_THREADS=2 python bench/bench_levels.py

Every level this CPU runs is measured in a subprocess of its own
(FASTCONV_CPU_LEVEL=<level>), ``--rounds`` times, the levels taking turns
so that a busy spell of a shared machine does not hit one level only.  The
table gives the median over all timed calls and the fastest call (the
figure least disturbed by other processes).  To compare with a build tuned
for this machine, build the ``native`` level next to the others first:
``FASTCONV_NATIVE=1 python setup.py build_ext --inplace``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np
from common import budget_times_ms, cpu_name, print_table

import fastconv
from fastconv import ops, reference
from fastconv.examples.mnist import notebook_model

STEPS = 10  # training steps per timed call


def conv2_closures(module, rng):
    """(forward, backward) closures of conv2 of the MNIST model on ``module``."""
    x = rng.standard_normal((64, 13, 13, 32), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 32, 64), dtype=np.float32) * 0.1
    bias = np.zeros(64, np.float32)
    dy = rng.standard_normal((64, 11, 11, 64), dtype=np.float32)
    return (lambda: module.conv2d_forward(x, kernel, bias, activation="relu"),
            lambda: module.conv2d_backward(x, kernel, dy))


def training_steps(rng):
    """A closure that runs STEPS training steps of the notebook model at batch 64."""
    model = notebook_model()
    x = rng.random((STEPS * 64, 28, 28, 1), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, STEPS * 64)]
    return lambda: model.fit(x, labels, batch_size=64, epochs=1, verbose=0, shuffle=False)


def measure(repeat, budget_s):
    """{figure: [ms of each timed call]} in this process (at its level)."""
    rng = np.random.default_rng(0)
    forward, backward = conv2_closures(ops, rng)
    numpy_forward, numpy_backward = conv2_closures(reference, rng)
    return {
        "conv2 forward": budget_times_ms(forward, repeat, budget_s),
        "conv2 backward": budget_times_ms(backward, repeat, budget_s),
        "training step": [t / STEPS for t in
                          budget_times_ms(training_steps(rng), repeat, budget_s)],
        "numpy conv2 forward": budget_times_ms(numpy_forward, repeat, budget_s),
        "numpy conv2 backward": budget_times_ms(numpy_backward, repeat, budget_s),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per figure (at most)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds per figure; slow levels time fewer calls")
    parser.add_argument("--rounds", type=int, default=3, help="subprocesses per level")
    parser.add_argument("--levels", nargs="+",
                        help="levels to measure (default: every level this CPU runs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.repeat, args.budget)))
        return

    info = fastconv.build_info()
    print(f"machine: {cpu_name()}; threads {info['num_threads']} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); "
          f"levels built: {', '.join(info['cpu_levels_built'])}; load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    levels = args.levels or info["cpu_levels_supported"]
    times = {level: {} for level in levels}
    for _ in range(args.rounds):
        for level in levels:
            command = [sys.executable, __file__, "--worker", "--repeat", str(args.repeat),
                       "--budget", str(args.budget)]
            result = subprocess.run(command, env=dict(os.environ, FASTCONV_CPU_LEVEL=level),
                                    check=True, capture_output=True, text=True)
            for figure, values in json.loads(result.stdout).items():
                times[level].setdefault(figure, []).extend(values)
    figures = list(times[levels[0]])
    print_table(["level"] + [f"{figure} ms (median / fastest)" for figure in figures],
                [[level] + [f"{statistics.median(times[level][figure]):.2f} / "
                            f"{min(times[level][figure]):.2f}" for figure in figures]
                 for level in levels])
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
