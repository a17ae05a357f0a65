"""Thread scaling, simulated on 2 cores: what 16 and 64 cores would do at
batch 64 and batch 256.

    python bench/bench_thread_scaling.py

Each core of a 16- or 64-core machine gets a share of the batch: 256 images
on 64 cores are 4 per thread, 64 on 16 are 4, 256 on 16 are 16, 64 on 64 is
1.  For every share s this script times each layer on 1 thread with a
batch of s and on 2 threads with a batch of 2s, so both threads hold the
share a big machine would give them, and reports images per second per
thread and the parallel efficiency (2-thread rate / (2 x 1-thread rate)),
each from the fastest of up to 30 calls (see ``best_ms``).
It also times the model's whole batch on 1 and 2 threads.  The thread count
is pinned with ``fastconv.set_num_threads`` (OMP_NUM_THREADS is ignored);
a call whose work is below ``ops.MIN_WORK_PER_THREAD`` per thread runs on
fewer threads, which the "threads used" column shows.

The weight gradient is summed over ``ops.GRADIENT_PARTS`` (16) fixed parts
of the batch, one thread per part, and the parts are then added on one
thread: the second table times that serial sum for each convolution.

Layers: the MNIST convnet (batch 64) and the Deep Learning with Python 5.2
model (150x150x3, Conv 32-64-128-128, batch 32), 3x3 'valid' convolutions
with relu and 2x2 max pooling, float32.  Runs in under a minute on 2 cores.
"""

import os

import numpy as np
from common import budget_times_ms, describe_machine, print_table

import fastconv
from fastconv import ops

# Images per thread that 16 and 64 cores give batches of 64 and 256.
SHARES = {1: "64 on 64 cores", 4: "64 on 16, 256 on 64 cores", 16: "256 on 16 cores"}

# model: (whole batch, {layer: (input image HWC, output channels; None for 2x2 pooling)})
MODELS = {
    "MNIST": (64, {
        "conv1": ((28, 28, 1), 32),
        "pool1": ((26, 26, 32), None),
        "conv2": ((13, 13, 32), 64),
        "pool2": ((11, 11, 64), None),
        "conv3": ((5, 5, 64), 64),
    }),
    "DLwP 5.2": (32, {
        "conv1": ((150, 150, 3), 32),
        "conv2": ((74, 74, 32), 64),
        "conv3": ((36, 36, 64), 128),
        "conv4": ((17, 17, 128), 128),
    }),
}
REPEAT = 30
BUDGET_S = 1.0  # per timing


def layer_calls(rng, batch, image, cout, compute_dx):
    """(forward, backward, forward work, backward work) of one layer at
    ``batch``: closures and the work ``ops._threads_for`` sizes the team by.
    ``compute_dx``: whether a convolution's backward pass computes the input
    gradient (a first layer's does not, in training)."""
    x = rng.standard_normal((batch,) + image, dtype=np.float32)
    if cout is None:
        y = ops.max_pool2d_forward(x)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        return (lambda: ops.max_pool2d_forward(x), lambda: ops.max_pool2d_backward(x, dy),
                y.size * 4, dy.size * 4)
    kernel = rng.standard_normal((3, 3, image[2], cout), dtype=np.float32) * 0.1
    bias = np.zeros(cout, np.float32)
    y = ops.conv2d_forward(x, kernel, bias)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    work = y.size * 9 * image[2]
    return (lambda: ops.conv2d_forward(x, kernel, bias, activation="relu"),
            lambda: ops.conv2d_backward(x, kernel, dy, compute_dx=compute_dx), work, work)


def best_ms(fn):
    """The fastest of up to REPEAT calls of ``fn`` (BUDGET_S seconds): on a
    shared machine the other processes only ever slow a call down, and a
    team of 2 threads waits for whichever of its cores is taken."""
    return min(budget_times_ms(fn, REPEAT, BUDGET_S))


def threads_used(threads, work):
    """The threads ``ops._threads_for`` runs for ``work`` when ``threads`` are set."""
    return max(1, min(threads, work // ops.MIN_WORK_PER_THREAD))


def time_layer(rng, layer, batch, threads):
    """(forward ms, backward ms, threads used forward, backward) of ``layer``,
    an (input image, output channels, input gradient?) triple, on ``threads``."""
    fastconv.set_num_threads(threads)
    forward, backward, fwd_work, bwd_work = layer_calls(rng, batch, *layer)
    return (best_ms(forward), best_ms(backward),
            threads_used(threads, fwd_work), threads_used(threads, bwd_work))


def scaling_rows(rng):
    """One row per model, layer and share (images per thread, or the whole
    batch): rates per thread and efficiency, forward and backward."""
    rows = []
    for model, (whole, layers) in MODELS.items():
        for index, (layer, (image, cout)) in enumerate(layers.items()):
            shape = (image, cout, index > 0)
            runs = [(f"{s} ({SHARES[s]})", s, 2 * s) for s in SHARES]
            runs.append((f"whole batch {whole}", whole, whole))
            for label, batch1, batch2 in runs:
                fwd1, bwd1, _, _ = time_layer(rng, shape, batch1, 1)
                fwd2, bwd2, used_fwd, used_bwd = time_layer(rng, shape, batch2, 2)
                rows.append([model, layer, label]
                            + pass_cells(batch1, fwd1, batch2, fwd2, used_fwd)
                            + pass_cells(batch1, bwd1, batch2, bwd2, used_bwd))
    return rows


def pass_cells(batch1, ms1, batch2, ms2, used):
    """Images/s per thread on 1 and 2 threads, efficiency, threads used."""
    rate1 = batch1 / ms1 * 1e3
    rate2 = batch2 / ms2 * 1e3 / 2
    return [f"{rate1:,.0f}", f"{rate2:,.0f}", f"{rate2 / rate1:.0%}", used]


def reduction_rows():
    """The serial sum of the 16 weight-gradient parts of each convolution."""
    floats_per_vector = fastconv.build_info()["vector_bytes"] // 4
    rows = []
    for model, (_, layers) in MODELS.items():
        for layer, (image, cout) in layers.items():
            if cout is None:
                continue
            padded = -(-cout // floats_per_vector) * floats_per_vector
            parts = np.ones((ops.GRADIENT_PARTS, 9 * image[2] + 1, padded), np.float32)
            ms = best_ms(lambda parts=parts: np.sum(parts, axis=0))
            rows.append([model, layer, f"{parts.nbytes / 1e6:.2f}", f"{ms:.3f}"])
    return rows


def main():
    rng = np.random.default_rng(0)
    print("\n".join(describe_machine()))
    print("threads pinned with fastconv.set_num_threads (1, then 2); float32; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    print_table(["model", "layer", "images per thread",
                 "fwd img/s/thread 1T", "fwd img/s/thread 2T", "fwd efficiency", "fwd threads used",
                 "bwd img/s/thread 1T", "bwd img/s/thread 2T", "bwd efficiency",
                 "bwd threads used"], scaling_rows(rng))
    fastconv.set_num_threads(1)
    print()
    print_table(["model", "layer", "16 parts MB", "serial sum ms"], reduction_rows())
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (other processes share the cores)")


if __name__ == "__main__":
    main()
