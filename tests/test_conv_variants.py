"""Dilated and grouped Conv2D, depthwise convolution and average pooling:
kernels and layers.

The compiled kernels (``fastconv.ops``) are checked against the NumPy
reference on random configurations; the reference against independent
formulations (a zero-inflated kernel, per-group convolutions, a grouped
convolution) and finite differences; both against hand-computed examples.
The layers are checked for Keras's shapes, weights, configs and errors, and
for gradients, alone and inside a model.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import layers, models, ops, reference, utils
from helpers.gradcheck import numeric_gradient
from test_kernels import DTYPES, MODULES, assert_all_close, assert_close
from test_layers import check_layer_gradients, images

FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def extent(size, dilation):
    return (size - 1) * dilation + 1


def out_size(size, window, stride, padding):
    """TensorFlow's output length along one axis."""
    return (size - window) // stride + 1 if padding == "valid" else -(-size // stride)


@st.composite
def window_cases(draw, max_kernel=3):
    """Window geometry: kernel size, strides xor dilation, padding, input size."""
    padding = draw(st.sampled_from(["valid", "same"]))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    if draw(st.booleans()):
        strides, dilation = (1, 1), (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        strides, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (1, 1)
    window = [extent(k, d) for k, d in zip(kernel, dilation)]
    low = window if padding == "valid" else (1, 1)
    size = (draw(st.integers(low[0], low[0] + 6)), draw(st.integers(low[1], low[1] + 6)))
    out = tuple(out_size(n, k, s, padding) for n, k, s in zip(size, window, strides))
    return dict(kernel_size=kernel, strides=strides, dilation_rate=dilation, padding=padding,
                size=size, out=out, batch=draw(st.integers(0, 3)),
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**32 - 1)))


@st.composite
def conv_cases(draw):
    """A dilated or strided, grouped Conv2D configuration with its arrays."""
    case = draw(window_cases())
    groups, cin, cout = (draw(st.integers(1, 3)) for _ in range(3))
    rng, dtype = np.random.default_rng(case["seed"]), case["dtype"]
    return dict(
        case, groups=groups,
        x=random(rng, (case["batch"],) + case["size"] + (groups * cin,), dtype),
        kernel=random(rng, case["kernel_size"] + (cin, groups * cout), dtype),
        bias=random(rng, (groups * cout,), dtype) if draw(st.booleans()) else None,
        dy=random(rng, (case["batch"],) + case["out"] + (groups * cout,), dtype))


@st.composite
def depthwise_cases(draw):
    """A DepthwiseConv2D configuration with its arrays."""
    case = draw(window_cases())
    channels, multiplier = draw(st.integers(1, 20)), draw(st.integers(1, 3))
    rng, dtype = np.random.default_rng(case["seed"]), case["dtype"]
    return dict(
        case,
        x=random(rng, (case["batch"],) + case["size"] + (channels,), dtype),
        kernel=random(rng, case["kernel_size"] + (channels, multiplier), dtype),
        bias=random(rng, (channels * multiplier,), dtype) if draw(st.booleans()) else None,
        dy=random(rng, (case["batch"],) + case["out"] + (channels * multiplier,), dtype))


@st.composite
def pool_cases(draw):
    """An average-pooling configuration with its arrays."""
    padding = draw(st.sampled_from(["valid", "same"]))
    pool = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    low = pool if padding == "valid" else (1, 1)
    size = (draw(st.integers(low[0], low[0] + 6)), draw(st.integers(low[1], low[1] + 6)))
    out = tuple(out_size(n, p, s, padding)
                for n, p, s in zip(size, pool, strides or pool))
    batch, channels = draw(st.integers(0, 3)), draw(st.integers(1, 20))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(x=random(rng, (batch,) + size + (channels,), dtype),
                dy=random(rng, (batch,) + out + (channels,), dtype),
                pool_size=pool, strides=strides, padding=padding)


def conv_options(case):
    return dict(strides=case["strides"], padding=case["padding"],
                dilation_rate=case["dilation_rate"], groups=case["groups"])


def depthwise_options(case):
    return dict(strides=case["strides"], padding=case["padding"],
                dilation_rate=case["dilation_rate"])


# ------------------------------------------------- 1. compiled vs reference (random)

@FEW
@given(case=conv_cases(), activation=st.sampled_from([None, "relu"]))
def test_dilated_grouped_conv2d_matches_reference(case, activation):
    """Forward and backward (through a fused ReLU too) of ops == reference."""
    x, kernel, dy, options = case["x"], case["kernel"], case["dy"], conv_options(case)
    y = reference.conv2d_forward(x, kernel, case["bias"], activation=activation, **options)
    assert y.shape == dy.shape  # TensorFlow's output size
    assert_close(ops.conv2d_forward(x, kernel, case["bias"], activation=activation, **options),
                 y)
    relu = dict(activation="relu", y=y) if activation else {}
    for compute_dx in (True, False):
        expected = reference.conv2d_backward(x, kernel, dy, compute_dx=compute_dx, **relu,
                                             **options)
        assert_all_close(ops.conv2d_backward(x, kernel, dy, compute_dx=compute_dx, **relu,
                                             **options), expected)


@FEW
@given(case=depthwise_cases())
def test_depthwise_conv2d_matches_reference(case):
    x, kernel, dy, options = case["x"], case["kernel"], case["dy"], depthwise_options(case)
    y = reference.depthwise_conv2d_forward(x, kernel, case["bias"], **options)
    assert y.shape == dy.shape
    assert_close(ops.depthwise_conv2d_forward(x, kernel, case["bias"], **options), y)
    for compute_dx in (True, False):
        expected = reference.depthwise_conv2d_backward(x, kernel, dy, compute_dx=compute_dx,
                                                       **options)
        assert_all_close(ops.depthwise_conv2d_backward(x, kernel, dy, compute_dx=compute_dx,
                                                       **options), expected)


@FEW
@given(case=pool_cases())
def test_avg_pool2d_matches_reference(case):
    options = dict(pool_size=case["pool_size"], strides=case["strides"],
                   padding=case["padding"])
    expected = reference.avg_pool2d_forward(case["x"], **options)
    assert expected.shape == case["dy"].shape
    assert_close(ops.avg_pool2d_forward(case["x"], **options), expected)
    expected = reference.avg_pool2d_backward(case["x"], case["dy"], **options)
    assert_close(ops.avg_pool2d_backward(case["x"], case["dy"], **options), expected)
    # Each window hands on exactly its gradient: the total is conserved.
    np.testing.assert_allclose(expected.sum(), case["dy"].sum(dtype=np.float64), rtol=1e-4,
                               atol=1e-4)


# ------------------------------------------ 2. the reference vs independent formulations

@FEW
@given(case=conv_cases())
@pytest.mark.parametrize("module", MODULES)
def test_dilation_equals_a_zero_inflated_kernel(module, case):
    """A dilated conv is the undilated conv with zeros between the kernel's taps."""
    x, kernel, dy, options = case["x"], case["kernel"], case["dy"], conv_options(case)
    dh, dw = options.pop("dilation_rate")
    kh, kw = case["kernel_size"]
    inflated = np.zeros((extent(kh, dh), extent(kw, dw)) + kernel.shape[2:], kernel.dtype)
    inflated[::dh, ::dw] = kernel
    assert_close(module.conv2d_forward(x, kernel, case["bias"], dilation_rate=(dh, dw),
                                       **options),
                 reference.conv2d_forward(x, inflated, case["bias"], **options))
    dx, dkernel, dbias = module.conv2d_backward(x, kernel, dy, dilation_rate=(dh, dw),
                                                **options)
    expected = reference.conv2d_backward(x, inflated, dy, **options)
    assert_all_close((dx, dkernel, dbias), (expected[0], expected[1][::dh, ::dw], expected[2]))


@FEW
@given(case=conv_cases())
def test_groups_equal_separate_convolutions(case):
    """Group g: input channel block g convolved with filter block g."""
    x, kernel, dy, options = case["x"], case["kernel"], case["dy"], conv_options(case)
    groups = options.pop("groups")
    x_blocks = np.split(x, groups, axis=3)
    k_blocks = np.split(kernel, groups, axis=3)
    dy_blocks = np.split(dy, groups, axis=3)
    b_blocks = [None] * groups if case["bias"] is None else np.split(case["bias"], groups)
    separate = [reference.conv2d_forward(xg, kg, bg, **options)
                for xg, kg, bg in zip(x_blocks, k_blocks, b_blocks)]
    assert_close(reference.conv2d_forward(x, kernel, case["bias"], groups=groups, **options),
                 np.concatenate(separate, axis=3))
    parts = [reference.conv2d_backward(xg, kg, dyg, **options)
             for xg, kg, dyg in zip(x_blocks, k_blocks, dy_blocks)]
    expected = [np.concatenate(arrays, axis=axis) for arrays, axis in zip(zip(*parts), (3, 3, 0))]
    assert_all_close(reference.conv2d_backward(x, kernel, dy, groups=groups, **options),
                     expected)


@FEW
@given(case=depthwise_cases())
@pytest.mark.parametrize("module", MODULES)
def test_depthwise_equals_a_conv_with_one_group_per_channel(module, case):
    """Keras's channel order: output c * M + m is channel c through kernel[:, :, c, m]."""
    x, kernel, dy, options = case["x"], case["kernel"], case["dy"], depthwise_options(case)
    kh, kw, channels, multiplier = kernel.shape
    grouped = kernel.reshape(kh, kw, 1, channels * multiplier)
    assert_close(module.depthwise_conv2d_forward(x, kernel, case["bias"], **options),
                 reference.conv2d_forward(x, grouped, case["bias"], groups=channels, **options))
    dx, dkernel, dbias = reference.conv2d_backward(x, grouped, dy, groups=channels, **options)
    assert_all_close(module.depthwise_conv2d_backward(x, kernel, dy, **options),
                     (dx, dkernel.reshape(kernel.shape), dbias))


# ------------------------------------------------- 3. gradients vs finite differences

def check_gradients(forward, backward, arrays, seed=0):
    """backward(r) (gradients of sum(forward() * r) w.r.t. each of ``arrays``,
    in order) equals central finite differences."""
    r = np.random.default_rng(seed).standard_normal(forward().shape)
    gradients = backward(r)
    assert len(gradients) == len(arrays)
    for gradient, array in zip(gradients, arrays):
        numeric = numeric_gradient(lambda: float(np.sum(forward() * r)), array)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("strides, padding, dilation, groups", [
    (1, "same", (2, 3), 2), ((2, 1), "same", 1, 3), (1, "valid", 2, 1)])
def test_conv2d_gradients(module, strides, padding, dilation, groups):
    x, kernel, bias = images((2, 7, 8, 6)), images((3, 2, 6 // groups, 3 * groups), 2), images(
        (3 * groups,), 3)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    check_gradients(lambda: module.conv2d_forward(x, kernel, bias, **options),
                    lambda r: module.conv2d_backward(x, kernel, r, **options),
                    (x, kernel, bias))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("strides, padding, dilation, multiplier", [
    (1, "same", (2, 1), 2), ((2, 3), "same", 1, 1), (1, "valid", 2, 3)])
def test_depthwise_conv2d_gradients(module, strides, padding, dilation, multiplier):
    x, kernel, bias = images((2, 7, 8, 3)), images((3, 2, 3, multiplier), 2), images(
        (3 * multiplier,), 3)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation)
    check_gradients(lambda: module.depthwise_conv2d_forward(x, kernel, bias, **options),
                    lambda r: module.depthwise_conv2d_backward(x, kernel, r, **options),
                    (x, kernel, bias))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("pool_size, strides, padding", [
    ((2, 2), None, "valid"), ((3, 2), (2, 1), "same"), ((2, 3), (1, 1), "same")])
def test_avg_pool2d_gradients(module, pool_size, strides, padding):
    x = images((2, 5, 7, 3))
    check_gradients(lambda: module.avg_pool2d_forward(x, pool_size, strides, padding),
                    lambda r: (module.avg_pool2d_backward(x, r, pool_size, strides, padding),),
                    (x,))


# ---------------------------------------------------------- 4. hand-computed examples

def image(rows):
    """A (1, H, W, 1) float64 image."""
    return np.array(rows, np.float64)[None, :, :, None]


@pytest.mark.parametrize("module", MODULES)
def test_avg_pool_same_counts_only_the_input(module):
    """Keras's documented example: 2x2 windows, strides 1, 'same' on 1..9; the
    windows of the last row and column hold 2 or 1 input cells."""
    x = image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(module.avg_pool2d_forward(x, 2, 1, "same")[0, :, :, 0],
                                  [[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]])
    # Strides 2: one padded row and column at the end; windows of 4, 2, 2, 1 cells.
    np.testing.assert_array_equal(module.avg_pool2d_forward(x, 2, 2, "same")[0, :, :, 0],
                                  [[3, 4.5], [7.5, 9]])
    dx = module.avg_pool2d_backward(x, np.ones((1, 2, 2, 1)), 2, 2, "same")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[.25, .25, .5], [.25, .25, .5], [.5, .5, 1]])


@pytest.mark.parametrize("module", MODULES)
def test_avg_pool_valid_example(module):
    """Keras's documented example: 2x2 windows, strides 2, 'valid' on a 3x4 image."""
    x = image([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    np.testing.assert_array_equal(module.avg_pool2d_forward(x, 2, 2)[0, :, :, 0], [[3.5, 5.5]])


@pytest.mark.parametrize("module", MODULES)
def test_dilated_conv_example(module):
    """2x2 ones taps 2 apart on a 5x5 image: y[i, j] = x[i, j] + x[i, j + 2] +
    x[i + 2, j] + x[i + 2, j + 2] = 4 * x[i + 1, j + 1] for x = 5 * row + column."""
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    y = module.conv2d_forward(x, np.ones((2, 2, 1, 1)), dilation_rate=2)
    np.testing.assert_array_equal(y[0, :, :, 0], 4 * x[0, 1:4, 1:4, 0])
    same = module.conv2d_forward(x, np.ones((2, 2, 1, 1)), padding="same", dilation_rate=2)
    # 'same' pads one row/column on each side (the dilated window spans 3).
    assert same[0, 0, 0, 0] == x[0, 1, 1, 0]
    assert same[0, 4, 4, 0] == x[0, 3, 3, 0]


@pytest.mark.parametrize("module", MODULES)
def test_dilation_far_beyond_the_image(module):
    """'same' with taps 1000 rows and 7 columns apart on a 6x6 image: only the
    centre tap of the 3x3 kernel ever lands inside it."""
    x, kernel = images((2, 6, 6, 1)), images((3, 3, 1, 1), 2)
    y = module.conv2d_forward(x, kernel, padding="same", dilation_rate=(1000, 7))
    np.testing.assert_allclose(y, x * kernel[1, 1, 0, 0], rtol=1e-15)
    dx, dkernel, _ = module.conv2d_backward(x, kernel, np.ones_like(y), padding="same",
                                            dilation_rate=(1000, 7))
    np.testing.assert_allclose(dx, np.full_like(x, kernel[1, 1, 0, 0]), rtol=1e-15)
    expected = np.zeros_like(kernel)
    expected[1, 1] = x.sum()
    np.testing.assert_allclose(dkernel, expected, rtol=1e-12)


def test_compiled_dilation_needs_no_padded_copy():
    """The compiled path never pads x to the dilated window's span (here 2**29 rows)."""
    x, kernel = images((1, 4, 4, 1)), images((3, 1, 1, 2), 2)
    y = ops.conv2d_forward(x, kernel, padding="same", dilation_rate=(2**28, 1))
    np.testing.assert_allclose(y, x * kernel[1, 0], rtol=1e-15)


@pytest.mark.parametrize("module", MODULES)
def test_grouped_conv_example(module):
    """1x1 kernel [[1, 10], [100, 1000]] per group of 2 channels on [1, 2, 3, 4]."""
    x = np.array([1.0, 2, 3, 4]).reshape(1, 1, 1, 4)
    kernel = np.array([[1.0, 10], [100, 1000]]).reshape(1, 1, 2, 2)
    kernel = np.concatenate([kernel, kernel], axis=3)  # the same filters for both groups
    y = module.conv2d_forward(x, kernel, groups=2)
    np.testing.assert_array_equal(y.ravel(), [201, 2010, 403, 4030])


@pytest.mark.parametrize("module", MODULES)
def test_depthwise_channel_order_example(module):
    """Channels 1 and 10, kernel[:, :, c, m] = (c + 1) * (m + 1) over 2x2 windows:
    outputs (c, m) in order (0, 0), (0, 1), (1, 0), (1, 1)."""
    x = np.ones((1, 2, 2, 2)) * [1.0, 10.0]
    kernel = np.ones((2, 2, 2, 2)) * np.array([[1.0, 2], [2, 4]])
    y = module.depthwise_conv2d_forward(x, kernel, np.array([0.0, 0.5, 0, 0]))
    np.testing.assert_array_equal(y.ravel(), [4, 8.5, 80, 160])


# -------------------------------------------------------------- 5. bad arguments

@pytest.mark.parametrize("module", MODULES)
def test_bad_conv2d_arguments(module):
    x, kernel = np.ones((1, 6, 6, 4)), np.ones((3, 3, 2, 4))
    with pytest.raises(ValueError, match="strides > 1.*dilation_rate > 1"):
        module.conv2d_forward(x, kernel, strides=2, dilation_rate=2, groups=2)
    with pytest.raises(ValueError, match="groups must be an int >= 1"):
        module.conv2d_forward(x, kernel, groups=0)
    with pytest.raises(TypeError, match="groups must be an int"):
        module.conv2d_forward(x, kernel, groups=2.0)
    with pytest.raises(ValueError, match="kernel expects 2 x 3 groups"):
        module.conv2d_forward(x, kernel, groups=3)
    with pytest.raises(ValueError, match="do not split into groups=4"):
        module.conv2d_forward(x, np.ones((3, 3, 1, 6)), groups=4)
    with pytest.raises(ValueError, match="dilation_rate must be positive"):
        module.conv2d_forward(x, kernel, dilation_rate=(1, 0), groups=2)
    with pytest.raises(TypeError, match="dilation_rate must be integers"):
        module.conv2d_forward(x, kernel, dilation_rate=1.5, groups=2)
    with pytest.raises(ValueError, match="dilated kernel size 7 is larger than the input"):
        module.conv2d_forward(x, kernel, dilation_rate=3, groups=2)
    with pytest.raises(ValueError, match="dilated kernel size .* is too large"):
        module.conv2d_forward(x, kernel, padding="same", dilation_rate=2**30, groups=2)
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        module.conv2d_backward(x, kernel, np.ones((1, 4, 4, 4)), dilation_rate=2, groups=2)


@pytest.mark.parametrize("module", MODULES)
def test_bad_depthwise_arguments(module):
    x, kernel = np.ones((2, 5, 5, 3)), np.ones((3, 3, 3, 2))
    with pytest.raises(ValueError, match="kernel must be 4-D"):
        module.depthwise_conv2d_forward(x, kernel[0])
    with pytest.raises(ValueError, match="x must be 4-D"):
        module.depthwise_conv2d_forward(x[0], kernel)
    with pytest.raises(ValueError, match="x has 3 channels .* but kernel expects 2"):
        module.depthwise_conv2d_forward(x, kernel[:, :, :2])
    with pytest.raises(TypeError, match="kernel is float32 but x is float64"):
        module.depthwise_conv2d_forward(x, kernel.astype(np.float32))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        module.depthwise_conv2d_forward(x.astype(int), kernel)
    with pytest.raises(ValueError, match=r"bias has shape \(3,\) .* 6 output channels"):
        module.depthwise_conv2d_forward(x, kernel, np.ones(3))
    with pytest.raises(ValueError, match="strides > 1"):
        module.depthwise_conv2d_forward(x, kernel, strides=(1, 2), dilation_rate=2)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 3, 6\)"):
        module.depthwise_conv2d_forward(x, kernel, out=np.empty((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        module.depthwise_conv2d_backward(x, kernel, np.ones((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="out\\[1\\] \\(dkernel\\) must have shape"):
        module.depthwise_conv2d_backward(x, kernel, np.ones((2, 3, 3, 6)),
                                         out=(None, np.empty((3, 3, 3, 1)), np.empty(6)))


@pytest.mark.parametrize("module", MODULES)
def test_bad_avg_pool_arguments(module):
    x = np.ones((1, 3, 3, 2))
    with pytest.raises(ValueError, match="pool_size 4 is larger than the input size 3"):
        module.avg_pool2d_forward(x, 4)
    with pytest.raises(ValueError, match="pool_size must be positive"):
        module.avg_pool2d_forward(x, (0, 2))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        module.avg_pool2d_forward(x, 2, padding="full")
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        module.avg_pool2d_backward(x, np.ones((1, 2, 2, 2)), 2)


def test_strided_and_read_only_inputs_are_accepted():
    """Views (reversed, strided, read-only) give the results of their copies."""
    rng = np.random.default_rng(0)
    x = random(rng, (3, 9, 8, 6), np.float32)[:, ::-1, ::2]
    kernel = random(rng, (3, 3, 6, 2), np.float32)[::-1]
    kernel.flags.writeable = False
    assert_close(ops.depthwise_conv2d_forward(x, kernel, padding="same", dilation_rate=2),
                 ops.depthwise_conv2d_forward(x.copy(), kernel.copy(), padding="same",
                                              dilation_rate=2))
    assert_close(ops.avg_pool2d_forward(x, 2, 1, "same"),
                 ops.avg_pool2d_forward(x.copy(), 2, 1, "same"))
    grouped = np.ascontiguousarray(kernel[:, :, :3])[..., ::-1]
    assert_close(ops.conv2d_forward(x, grouped, padding="same", dilation_rate=2, groups=2),
                 ops.conv2d_forward(x.copy(), grouped.copy(), padding="same", dilation_rate=2,
                                    groups=2))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_values_agree_with_the_reference(dtype):
    """NaN and Inf propagate as in the reference, padding included (where the
    reference multiplies its zeros: 0 * Inf is NaN)."""
    rng = np.random.default_rng(2)
    x, kernel = random(rng, (2, 5, 6, 3), dtype), random(rng, (3, 3, 3, 2), dtype)
    x[0, 1, 2, 0], x[1, 4, 5, 2] = np.inf, np.nan
    kernel[0, 2, 1, 1] = -np.inf
    dy = random(rng, (2, 5, 6, 6), dtype)
    dy[0, 0, 0, 3], dy[1, 2, 5, 1] = np.inf, np.nan
    for options in (dict(padding="same"), dict(padding="same", dilation_rate=(2, 1))):
        assert_close(ops.depthwise_conv2d_forward(x, kernel, **options),
                     reference.depthwise_conv2d_forward(x, kernel, **options))
        assert_all_close(ops.depthwise_conv2d_backward(x, kernel, dy, **options),
                         reference.depthwise_conv2d_backward(x, kernel, dy, **options))
        conv_kernel = kernel.reshape(3, 3, 1, 6)
        assert_close(ops.conv2d_forward(x, conv_kernel, groups=3, **options),
                     reference.conv2d_forward(x, conv_kernel, groups=3, **options))
        assert_all_close(ops.conv2d_backward(x, conv_kernel, dy, groups=3, **options),
                         reference.conv2d_backward(x, conv_kernel, dy, groups=3, **options))
    dy = random(rng, (2, 3, 3, 3), dtype)
    dy[1, 2, 2, 0] = np.inf
    assert_close(ops.avg_pool2d_forward(x, 2, padding="same"),
                 reference.avg_pool2d_forward(x, 2, padding="same"))
    assert_close(ops.avg_pool2d_backward(x, dy, 2, padding="same"),
                 reference.avg_pool2d_backward(x, dy, 2, padding="same"))


def test_depthwise_kernel_gradient_is_deterministic_across_threads(threads_on_small_shapes):
    """Per-thread partial sums, added up in a fixed order: the same result on
    every run, within rounding of the one-thread result."""
    rng = np.random.default_rng(1)
    x, kernel = random(rng, (16, 20, 20, 8), np.float32), random(rng, (3, 3, 8, 2), np.float32)
    dy = random(rng, (16, 20, 20, 16), np.float32)
    fastconv.set_num_threads(2)
    first = ops.depthwise_conv2d_backward(x, kernel, dy, padding="same")
    again = ops.depthwise_conv2d_backward(x, kernel, dy, padding="same")
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    fastconv.set_num_threads(1)
    assert_all_close(first, ops.depthwise_conv2d_backward(x, kernel, dy, padding="same"))


# ------------------------------------------------------------------------- 6. layers

def test_layer_shapes_and_weights_as_keras():
    """Output shapes, weight names, shapes and order as Keras builds them."""
    x = np.zeros((2, 9, 8, 6), np.float32)
    cases = [
        (layers.Conv2D(4, 3, dilation_rate=2, groups=2, padding="same"), (2, 9, 8, 4),
         {"kernel": (3, 3, 3, 4), "bias": (4,)}),
        (layers.Conv2D(6, (3, 2), dilation_rate=(2, 3), groups=3), (2, 5, 5, 6),
         {"kernel": (3, 2, 2, 6), "bias": (6,)}),
        (layers.DepthwiseConv2D(3, depth_multiplier=2), (2, 7, 6, 12),
         {"kernel": (3, 3, 6, 2), "bias": (12,)}),
        (layers.DepthwiseConv2D((3, 1), strides=2, padding="same", use_bias=False),
         (2, 5, 4, 6), {"kernel": (3, 1, 6, 1)}),
        (layers.SeparableConv2D(5, 3, strides=(2, 1), depth_multiplier=3), (2, 4, 6, 5),
         {"depthwise_kernel": (3, 3, 6, 3), "pointwise_kernel": (1, 1, 18, 5), "bias": (5,)}),
        (layers.SeparableConv2D(5, 2, dilation_rate=3, padding="same", use_bias=False),
         (2, 9, 8, 5), {"depthwise_kernel": (2, 2, 6, 1), "pointwise_kernel": (1, 1, 6, 5)}),
        (layers.AveragePooling2D(), (2, 4, 4, 6), {}),
        (layers.AveragePooling2D((3, 2), strides=(2, 3), padding="same"), (2, 5, 3, 6), {}),
    ]
    for layer, output_shape, weights in cases:
        assert layer(x).shape == output_shape, layer.name
        assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + output_shape[1:]
        assert {name: w.shape for name, w in layer.params.items()} == weights, layer.name
        assert list(layer.params) == list(weights)  # Keras's order
        assert layer.count_params() == sum(np.prod(s, dtype=int) for s in weights.values())


def test_layer_configs_as_keras_and_round_trip():
    keys = {
        layers.Conv2D(4, 3, dilation_rate=2, groups=2): {
            "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
            "groups", "activation", "use_bias", "kernel_initializer", "bias_initializer",
            "kernel_regularizer", "bias_regularizer"},
        layers.DepthwiseConv2D(3, depth_multiplier=2, depthwise_regularizer="l2"): {
            "kernel_size", "strides", "padding", "depth_multiplier", "data_format",
            "dilation_rate", "activation", "use_bias", "depthwise_initializer",
            "bias_initializer", "depthwise_regularizer", "bias_regularizer"},
        layers.SeparableConv2D(8, 3, activation="relu", pointwise_initializer="he_normal"): {
            "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
            "depth_multiplier", "activation", "use_bias", "depthwise_initializer",
            "pointwise_initializer", "bias_initializer", "depthwise_regularizer",
            "pointwise_regularizer", "bias_regularizer"},
        layers.AveragePooling2D(3, 1, "same"): {"pool_size", "strides", "padding",
                                                "data_format"},
    }
    for layer, expected in keys.items():
        config = layer.get_config()
        assert expected <= set(config), expected - set(config)
        assert config["data_format"] == "channels_last"
        clone = layers.deserialize({"class_name": type(layer).__name__, "config": config})
        assert type(clone) is type(layer)
        assert clone.get_config() == config


def test_bad_layer_arguments_as_keras():
    with pytest.raises(ValueError, match="`strides > 1` not supported in conjunction with "
                                         "`dilation_rate > 1`"):
        layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="`strides > 1` not supported"):
        layers.DepthwiseConv2D(3, strides=(1, 2), dilation_rate=(2, 1))
    with pytest.raises(ValueError, match="`strides > 1` not supported"):
        layers.SeparableConv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="filters must be evenly divisible by the number of "
                                         "groups"):
        layers.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="input channels must be evenly divisible"):
        layers.Conv2D(4, 3, groups=2)(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="depth_multiplier must be an int >= 1"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match="channels_first' is not supported"):
        layers.SeparableConv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="data_format must be"):
        layers.AveragePooling2D(data_format="NHWC")
    with pytest.raises(ValueError, match="unknown depthwise_initializer 'glorot'"):
        layers.DepthwiseConv2D(3, depthwise_initializer="glorot")
    with pytest.raises(ValueError, match="expects 4-D NHWC inputs"):
        layers.DepthwiseConv2D(3)(np.zeros((2, 5, 5), np.float32))


def test_regularizers_attach_to_keras_weight_names():
    separable = layers.SeparableConv2D(4, 3, depthwise_regularizer="l2",
                                       pointwise_regularizer="l1", bias_regularizer="l2")
    assert list(separable.regularizers) == ["depthwise_kernel", "pointwise_kernel", "bias"]
    depthwise = layers.DepthwiseConv2D(3, depthwise_regularizer="l1", use_bias=False,
                                       bias_regularizer="l2")
    assert list(depthwise.regularizers) == ["kernel"]
    depthwise(np.ones((1, 4, 4, 2), np.float32))
    assert depthwise.regularization_loss() == pytest.approx(
        0.01 * np.abs(depthwise.params["kernel"]).sum())


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_layer_gradients(backend, activation):  # noqa: F811 (the imported fixture)
    x = images((2, 7, 6, 4))
    for layer in [
        layers.Conv2D(4, (3, 2), dilation_rate=(2, 1), groups=2, padding="same",
                      activation=activation, dtype="float64"),
        layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                               activation=activation, dtype="float64",
                               bias_initializer="he_normal"),
        layers.SeparableConv2D(3, 2, dilation_rate=2, activation=activation, dtype="float64",
                               bias_initializer="he_normal"),
        layers.SeparableConv2D(3, 3, strides=(1, 2), padding="same", use_bias=False,
                               activation=activation, dtype="float64"),
        layers.AveragePooling2D((2, 3), strides=1, padding="same"),
    ]:
        check_layer_gradients(layer, x)


def test_separable_is_depthwise_then_pointwise():
    layer = layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=2,
                                   activation="relu", bias_initializer="he_normal")
    x = images((2, 6, 6, 3)).astype(np.float32)
    y = layer(x)
    middle = reference.depthwise_conv2d_forward(x, layer.params["depthwise_kernel"],
                                                padding="same")
    assert_close(y, reference.conv2d_forward(middle, layer.params["pointwise_kernel"],
                                             layer.params["bias"], activation="relu"))


def model_of_the_new_layers():
    utils.set_random_seed(0)
    return models.Sequential([
        layers.SeparableConv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 3),
                               depthwise_regularizer="l2"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=2, activation="tanh"),
        layers.Conv2D(4, 2, groups=2, dilation_rate=(1, 2)),
        layers.AveragePooling2D(padding="same"),
    ])


def test_layers_give_the_same_results_on_both_backends():
    model = model_of_the_new_layers()
    x = images((3, 8, 8, 3)).astype(np.float32)
    compiled = model.predict(x, verbose=0)
    fastconv.set_backend("numpy")
    try:
        assert_close(model.predict(x, verbose=0), compiled)
    finally:
        fastconv.set_backend("cython")


def test_model_of_the_new_layers_saves_and_loads(tmp_path):
    utils.clear_session()  # automatic names count from scratch
    model = model_of_the_new_layers()
    assert [layer.name for layer in model.layers] == [
        "separable_conv2d", "depthwise_conv2d", "conv2d", "average_pooling2d"]  # Keras's names
    model.save(tmp_path / "model.npz")
    loaded = models.load_model(tmp_path / "model.npz")
    assert loaded.get_config() == model.get_config()
    x = images((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_of_the_new_layers_has_exact_gradients(backend):  # noqa: F811
    """The model's loss gradient (every weight) against finite differences."""
    utils.set_random_seed(5)
    model = models.Sequential([
        layers.SeparableConv2D(2, 3, padding="same", activation="relu", depth_multiplier=2),
        layers.AveragePooling2D(padding="same"),
        layers.DepthwiseConv2D(2, dilation_rate=2, activation="tanh"),
        layers.Conv2D(2, 2, groups=2, activation="relu", bias_initializer="he_normal"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, labels = images((4, 9, 9, 2)), np.array([0, 2, 1, 2])
    model.predict(x, verbose=0)  # builds float64 weights
    loss, grads = model.compute_gradients(x, labels)
    weights = [w for layer in model.layers for w in layer.params.values()]
    assert len(grads) == len(weights) == 9
    for weight, grad in zip(weights, grads):
        numeric = numeric_gradient(lambda: model.evaluate(x, labels, batch_size=4, verbose=0),
                                   weight)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
