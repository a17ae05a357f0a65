"""Speed of each instruction-set level of the compiled kernels, in one run:
conv2 of the MNIST model (x 64x13x13x32, kernel 3x3x32x64, bias, relu)
forward and backward, and a training step of the notebook model (batch 64),
with the NumPy reference's conv2 for scale.

    OMP_NUM_THREADS=2 python bench/bench_levels.py

Every level this CPU runs is measured in a subprocess of its own
(FASTCONV_CPU_LEVEL=<level>).  To compare with a build tuned for this
machine, build the ``native`` level next to the others first:
``FASTCONV_NATIVE=1 python setup.py build_ext --inplace``.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import fastconv
from fastconv import ops, reference
from fastconv.examples.mnist import notebook_model
from common import budget_median_ms, cpu_name, print_table


def conv2_closures(module, rng):
    """(forward, backward) closures of conv2 of the MNIST model on ``module``."""
    x = rng.standard_normal((64, 13, 13, 32), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 32, 64), dtype=np.float32) * 0.1
    bias = np.zeros(64, np.float32)
    dy = rng.standard_normal((64, 11, 11, 64), dtype=np.float32)
    return (lambda: module.conv2d_forward(x, kernel, bias, activation="relu"),
            lambda: module.conv2d_backward(x, kernel, dy))


STEPS = 10


def training_steps(rng):
    """A closure that runs STEPS training steps of the notebook model at batch 64."""
    model = notebook_model()
    x = rng.random((STEPS * 64, 28, 28, 1), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, STEPS * 64)]
    return lambda: model.fit(x, labels, batch_size=64, epochs=1, verbose=0, shuffle=False)


def measure(repeat, budget_s, with_numpy):
    """Milliseconds of this process's level (and of NumPy's conv2 when asked)."""
    rng = np.random.default_rng(0)
    forward, backward = conv2_closures(ops, rng)
    times = {"forward": budget_median_ms(forward, repeat, budget_s)[0],
             "backward": budget_median_ms(backward, repeat, budget_s)[0],
             "step": budget_median_ms(training_steps(rng), repeat, budget_s)[0] / STEPS}
    if with_numpy:
        forward, backward = conv2_closures(reference, rng)
        times["numpy_forward"] = budget_median_ms(forward, repeat, budget_s)[0]
        times["numpy_backward"] = budget_median_ms(backward, repeat, budget_s)[0]
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per figure (at most)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds per figure; slow levels time fewer calls")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--with-numpy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.repeat, args.budget, args.with_numpy)))
        return

    info = fastconv.build_info()
    print(f"machine: {cpu_name()}; threads {info['num_threads']} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); "
          f"levels built: {', '.join(info['cpu_levels_built'])}")
    rows, numpy_times = [], None
    for index, level in enumerate(info["cpu_levels_supported"]):
        command = [sys.executable, __file__, "--worker", "--repeat", str(args.repeat),
                   "--budget", str(args.budget)] + (["--with-numpy"] if index == 0 else [])
        env = dict(os.environ, FASTCONV_CPU_LEVEL=level)
        times = json.loads(subprocess.run(command, env=env, check=True, capture_output=True,
                                          text=True).stdout)
        numpy_times = numpy_times or times
        rows.append([level, f"{times['forward']:.2f}", f"{times['backward']:.2f}",
                     f"{times['step']:.2f}"])
    print_table(["level", "conv2 forward ms", "conv2 backward ms", "training step ms"], rows)
    print(f"NumPy reference conv2: forward {numpy_times['numpy_forward']:.2f} ms, "
          f"backward {numpy_times['numpy_backward']:.2f} ms")


if __name__ == "__main__":
    main()
