"""The Conv2D input gradient (``ops.conv2d_backward``'s dx): images whose
window contributions fit ``ops.SCATTER_BYTES`` take ``_conv.input_gradient``
(dy @ K^T per pixel, added up over the windows), larger ones the padded
convolution of dy; both against the NumPy reference, and bit-identical
across thread counts."""

import numpy as np
import pytest

from fastconv import ops, reference
from helpers.conv_cases import TOLERANCE, random_case

# (x shape, kernel shape, strides, padding): the MNIST convnet's conv2 (a row
# smaller: under SCATTER_BYTES in float64 too) and conv3; 'same' padding,
# strides 2 and (1, 3) (windows that skip cells), channels and windows that
# are no multiple of a vector, a kernel larger than the output, one image.
SHAPES = [
    ((4, 12, 12, 32), (3, 3, 32, 64), (1, 1), "valid"),
    ((3, 5, 5, 64), (3, 3, 64, 64), (1, 1), "valid"),
    ((2, 9, 8, 5), (3, 3, 5, 7), (1, 1), "same"),
    ((3, 11, 10, 3), (3, 2, 3, 17), (2, 2), "same"),
    ((2, 7, 11, 6), (2, 2, 6, 9), (1, 3), "valid"),
    ((1, 4, 4, 33), (4, 3, 33, 5), (1, 1), "same"),
]


def scatter_bytes(x, kernel, dy):
    """The scratch of one image for _conv.input_gradient."""
    kh, kw, cin, _ = kernel.shape
    return ops._conv.scatter_elements(dy.shape[1], dy.shape[2], kh, kw, cin) * x.itemsize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, strides, padding", SHAPES)
def test_scattered_input_gradient_matches_reference(dtype, x_shape, kernel_shape, strides,
                                                    padding):
    x, kernel, dy = random_case(x_shape, kernel_shape, strides, padding, dtype)
    assert scatter_bytes(x, kernel, dy) <= ops.SCATTER_BYTES  # the scattered path
    expected = reference.conv2d_backward(x, kernel, dy, strides, padding)[0]
    out = (np.full(x.shape, np.nan, dtype), None, None)  # every element must be written
    dx = ops.conv2d_backward(x, kernel, dy, strides, padding, compute_dkernel=False, out=out)[0]
    assert dx is out[0]
    np.testing.assert_allclose(dx, expected, rtol=0,
                               atol=TOLERANCE[np.dtype(dtype)] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_images_take_the_padded_convolution(dtype):
    x, kernel, dy = random_case((2, 40, 40, 16), (3, 3, 16, 8), (1, 1), "same", dtype)
    assert scatter_bytes(x, kernel, dy) > ops.SCATTER_BYTES
    expected = reference.conv2d_backward(x, kernel, dy, padding="same")[0]
    dx = ops.conv2d_backward(x, kernel, dy, padding="same", compute_dkernel=False)[0]
    np.testing.assert_allclose(dx, expected, rtol=0,
                               atol=TOLERANCE[np.dtype(dtype)] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scattered_input_gradient_is_bit_identical_across_threads(threads_on_small_shapes,
                                                                  dtype):
    x, kernel, dy = random_case((5, 9, 9, 8), (3, 3, 8, 20), (2, 2), "same", dtype)
    results = []
    for threads in (1, 2, 3):
        ops.set_num_threads(threads)
        results.append(ops.conv2d_backward(x, kernel, dy, (2, 2), "same",
                                           compute_dkernel=False)[0])
    for dx in results[1:]:
        np.testing.assert_array_equal(dx, results[0])
