"""Central finite differences, the oracle of the gradient tests."""

import numpy as np


def numeric_gradient(loss, array, step=1e-6):
    """d loss() / d array by central differences; ``loss`` reads ``array``,
    which is perturbed in place one element at a time and restored."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        above = loss()
        array[index] = saved - step
        below = loss()
        array[index] = saved
        gradient[index] = (above - below) / (2 * step)
    return gradient
