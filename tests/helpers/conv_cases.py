"""Random convolution arrays for the kernel tests that compare
``fastconv.ops`` with ``fastconv.reference`` on fixed shapes."""

import numpy as np

from fastconv import reference

# Tolerance relative to the largest magnitude of the expected result.
TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def random_case(x_shape, kernel_shape, strides, padding, dtype, seed=0):
    """(x, kernel, dy): standard normal arrays of ``dtype``, dy shaped like the
    convolution's output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    kernel = rng.standard_normal(kernel_shape).astype(dtype)
    dy = rng.standard_normal(reference.conv2d_forward(x, kernel, None, strides,
                                                      padding).shape).astype(dtype)
    return x, kernel, dy
