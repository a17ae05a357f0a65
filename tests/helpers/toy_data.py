"""Small synthetic data sets that a small convnet learns in a few epochs."""

import numpy as np


def bars(n, seed=0, size=8):
    """``n`` noisy size x size images (float32, NHWC, one channel) of a
    vertical (label 0) or horizontal (label 1) bar, and their int labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.normal(0, 0.2, (n, size, size, 1)).astype(np.float32)
    where = rng.integers(1, size - 1, n)
    vertical, horizontal = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    x[vertical, :, where[vertical], 0] += 1
    x[horizontal, where[horizontal], :, 0] += 1
    return x, labels
