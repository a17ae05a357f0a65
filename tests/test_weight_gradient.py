"""The Conv2D weight gradient (``_conv.weight_gradient`` through
``ops.conv2d_backward``): kernel and bias gradients against the NumPy
reference, its split of the work (batch parts, row groups), bit-identity
across thread counts, and a Dense layer's gradients against finite
differences; the Dense-shaped (1x1) forward and input-gradient paths."""

import numpy as np
import pytest

from fastconv import layers, ops, reference
from fastconv._checks import check_conv2d
from helpers.conv_cases import TOLERANCE, random_case
from helpers.gradcheck import numeric_gradient

# (x shape, kernel shape, strides, padding): 1x1 with many channels in and out
# (the Dense case), Cin = 1 and 3, strides, 'same' padding, batches of 1, 2,
# 17 and 64, output channels that are no multiple of a vector; images too
# large for one chunk (read in bands of output rows).
SHAPES = [
    ((32, 1, 1, 700), (1, 1, 700, 300), (1, 1), "valid"),
    ((2, 1, 1, 97), (1, 1, 97, 33), (1, 1), "valid"),
    ((3, 4, 5, 40), (1, 1, 40, 70), (1, 1), "same"),
    ((64, 10, 10, 1), (3, 3, 1, 32), (1, 1), "valid"),
    ((17, 9, 8, 3), (3, 2, 3, 5), (2, 2), "same"),
    ((1, 7, 9, 3), (3, 3, 3, 17), (1, 2), "same"),
    ((2, 8, 8, 16), (5, 5, 16, 24), (2, 1), "valid"),
    ((17, 6, 6, 32), (3, 3, 32, 64), (1, 1), "same"),
    ((2, 40, 40, 32), (3, 3, 32, 64), (1, 1), "same"),
    ((3, 61, 57, 16), (3, 3, 16, 40), (2, 2), "valid"),
]


def split_of(x, kernel, dy, strides, padding):
    """(parts, row_groups) ops uses for the weight gradient of this call."""
    kh, kw, cin, cout = kernel.shape
    geo = check_conv2d(x, kernel, strides, padding, (1, 1), 1)[2]
    image = ops._conv.padded_image_shape(geo.out_h, geo.out_w, geo.stride_h, geo.stride_w,
                                         kh, kw, cin)
    return ops._gradient_split(x.shape[0], image[0] * image[1], cin, geo.out_h * geo.out_w,
                               kh * kw * cin, cout, x.itemsize)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, strides, padding", SHAPES)
def test_weight_gradient_matches_reference(dtype, x_shape, kernel_shape, strides, padding):
    x, kernel, dy = random_case(x_shape, kernel_shape, strides, padding, dtype)
    expected = reference.conv2d_backward(x, kernel, dy, strides, padding, compute_dx=False)
    # out= buffers full of NaN: every element must be written
    out = (None, np.full(kernel.shape, np.nan, dtype), np.full(kernel.shape[3], np.nan, dtype))
    _, dkernel, dbias = ops.conv2d_backward(x, kernel, dy, strides, padding, compute_dx=False,
                                            out=out)
    assert dkernel is out[1] and dbias is out[2]
    for actual, wanted in ((dkernel, expected[1]), (dbias, expected[2])):
        np.testing.assert_allclose(actual, wanted, rtol=0,
                                   atol=TOLERANCE[np.dtype(dtype)] * np.abs(wanted).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape", [
    ((200, 4, 4, 8), (3, 3, 8, 20)),   # 2x2 outputs, 3 or 4 images per part: images innermost
    ((2, 12, 3, 5), (3, 1, 5, 9)),     # 10x3 outputs: output rows innermost
    ((3, 5, 12, 1), (2, 3, 1, 7)),     # 4x10 outputs: columns; rows of several taps
])
def test_weight_gradient_in_each_loop_order_matches_reference(dtype, x_shape, kernel_shape):
    """The register tile sums its pixels with the longest of the image, output
    row and output column loops innermost; its rows read through one pointer
    (consecutive channels of one kernel row) or one pointer per row."""
    x, kernel, dy = random_case(x_shape, kernel_shape, (1, 1), "valid", dtype)
    expected = reference.conv2d_backward(x, kernel, dy, compute_dx=False)
    _, dkernel, dbias = ops.conv2d_backward(x, kernel, dy, compute_dx=False)
    for actual, wanted in ((dkernel, expected[1]), (dbias, expected[2])):
        np.testing.assert_allclose(actual, wanted, rtol=0,
                                   atol=TOLERANCE[np.dtype(dtype)] * np.abs(wanted).max())


def test_the_split_follows_the_shapes():
    """The Dense case has enough row tiles for GRADIENT_ITEMS items in one
    batch part (no partial gradients); a gradient with few row tiles is cut
    into batch parts, as many items as repay their partial gradients (a power
    of two, at least MIN_GRADIENT_ITEMS where the shapes have them)."""
    float32 = np.dtype(np.float32).itemsize
    assert ops._gradient_split(32, 1, 6272, 1, 6272, 512, float32) == (1, ops.GRADIENT_ITEMS)
    # MNIST conv1: one tile of 9 rows x 32 channels, 64 images of 26 x 26
    # outputs: 64 * 676 * 9 * 32 multiply-adds // (256 * 3 * 10 * 32) = 50 -> 32 parts
    assert ops._gradient_split(64, 28 * 28, 1, 26 * 26, 9, 32, float32) == (32, 1)
    # MNIST conv2: 64 * 121 * 288 * 64 // (256 * 3 * 289 * 64) = 10 -> 8 items
    parts, groups = ops._gradient_split(64, 13 * 13, 32, 11 * 11, 288, 64, float32)
    assert parts * groups >= 8 and parts < 8
    # MNIST conv3: its partials are worth less than one item: MIN_GRADIENT_ITEMS
    parts, groups = ops._gradient_split(64, 5 * 5, 64, 3 * 3, 576, 64, float32)
    assert parts * groups >= ops.MIN_GRADIENT_ITEMS and parts < ops.MIN_GRADIENT_ITEMS
    assert ops._gradient_split(1, 1, 10, 1, 10, 3, float32) == (1, ops._conv.gradient_tiles(10))
    for args in [(64, 13 * 13, 32, 11 * 11, 288, 64, float32), (1, 1, 10, 1, 10, 3, float32),
                 (32, 36 * 36, 64, 34 * 34, 576, 128, float32)]:
        parts, groups = ops._gradient_split(*args)
        tiles = ops._conv.gradient_tiles(args[4])
        assert 1 <= parts <= args[0] and 1 <= groups <= tiles
        assert parts * groups >= min(ops.MIN_GRADIENT_ITEMS, tiles * args[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_shape, strides, padding", [
    ((20, 1, 1, 800), (1, 1, 800, 40), (1, 1), "valid"),  # one part, several row groups
    ((17, 9, 8, 3), (3, 2, 3, 5), (2, 2), "same"),         # parts added up
    ((9, 6, 6, 32), (3, 3, 32, 40), (1, 1), "same"),
    ((3, 61, 57, 16), (3, 3, 16, 40), (2, 2), "valid"),  # bands of output rows
])
def test_weight_gradient_is_bit_identical_across_threads(threads_on_small_shapes, dtype,
                                                         x_shape, kernel_shape, strides,
                                                         padding):
    x, kernel, dy = random_case(x_shape, kernel_shape, strides, padding, dtype)
    results = []
    for threads in (1, 2, 3):
        ops.set_num_threads(threads)
        results.append(ops.conv2d_backward(x, kernel, dy, strides, padding)[1:])
    for dkernel, dbias in results[1:]:
        np.testing.assert_array_equal(dkernel, results[0][0])
        np.testing.assert_array_equal(dbias, results[0][1])


def test_both_paths_of_the_split_are_exercised():
    """The shapes of the thread test reach one part with several row groups,
    and several parts added up."""
    dtype = np.float32
    one = split_of(*random_case((20, 1, 1, 800), (1, 1, 800, 40), (1, 1), "valid", dtype),
                   (1, 1), "valid")
    many = split_of(*random_case((17, 9, 8, 3), (3, 2, 3, 5), (2, 2), "same", dtype),
                    (2, 2), "same")
    assert one[0] == 1 and one[1] > 1
    assert many[0] > 1


def test_dense_gradients_match_finite_differences():
    """A Dense layer (a 1x1 convolution on the compiled kernels) wide enough
    for several row groups, with fewer pixels than weights (its input
    gradient computed transposed): kernel, bias and input gradients of
    L = sum(y * r)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 40))
    layer = layers.Dense(20, dtype="float64", bias_initializer="he_normal")
    r = rng.standard_normal((3, 20))

    def loss():
        return float(np.sum(layer.forward(x, training=True) * r))

    loss()
    dx = layer.backward(r.copy())
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for name, grad in layer.grads.items():
        np.testing.assert_allclose(grad, numeric_gradient(loss, layer.params[name]),
                                   rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, cout", [((2, 1, 1, 97), 33), ((4, 2, 3, 300), 70),
                                           ((1, 1, 1, 5), 64)])
def test_pointwise_input_gradient_matches_reference(dtype, x_shape, cout):
    """The input gradient of a 1x1 stride-1 convolution with fewer pixels than
    weights (computed as kernel @ dy^T, without a transposed kernel)."""
    pixels = np.prod(x_shape[:3])
    assert pixels * (x_shape[3] + cout) < x_shape[3] * cout  # that path is taken
    x, kernel, dy = random_case(x_shape, (1, 1, x_shape[3], cout), (1, 1), "valid", dtype)
    expected = reference.conv2d_backward(x, kernel, dy)[0]
    out = (np.full(x.shape, np.nan, dtype), None, None)
    dx = ops.conv2d_backward(x, kernel, dy, compute_dkernel=False, out=out)[0]
    assert dx is out[0]
    np.testing.assert_allclose(dx, expected, rtol=0,
                               atol=TOLERANCE[np.dtype(dtype)] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_with_weights_read_block_by_block_matches_reference(dtype):
    """Weights larger than _conv's WEIGHT_BYTES (2 MiB, a Dense layer's) are
    read one block of output channels at a time, for all pixel tiles."""
    x, kernel, _ = random_case((19, 1, 1, 1100), (1, 1, 1100, 500), (1, 1), "valid", dtype)
    assert kernel.nbytes > 2 << 20
    bias = np.random.default_rng(1).standard_normal(500).astype(dtype)
    expected = reference.conv2d_forward(x, kernel, bias, activation="relu")
    np.testing.assert_allclose(ops.conv2d_forward(x, kernel, bias, activation="relu"), expected,
                               rtol=0, atol=TOLERANCE[np.dtype(dtype)] * np.abs(expected).max())
