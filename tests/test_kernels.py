"""Tests of the Conv2D and max-pooling kernels.

``fastconv.ops`` (compiled) is checked against ``fastconv.reference``
(NumPy), the reference against finite differences, and both against small
examples computed by hand.  Sections follow the topics of the test plan:

1. compiled vs reference on random configurations (hypothesis)
2. reference gradients vs central finite differences
3. hand-computed examples
4. bad arguments raise TypeError/ValueError naming the argument
5. non-contiguous, negatively strided, unaligned and read-only inputs
6. NaN and Inf
7. thread counts
8. ``out=`` buffers
9. ``build_info()``
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import ops, reference
from helpers.gradcheck import numeric_gradient

# --------------------------------------------------------------------------- helpers

MODULES = [pytest.param(ops, id="ops"), pytest.param(reference, id="reference")]
DTYPES = [np.float32, np.float64]
# Tolerance relative to the largest magnitude of the expected result.
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}

MAIN = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def assert_close(actual, expected, dtype=None, magnitude=None):
    """Same shape and dtype, values within TOLERANCE of the largest finite
    ``magnitude`` (default: of the expected result); NaNs must sit in the same
    places."""
    expected = np.asarray(expected)
    dtype = np.dtype(dtype or expected.dtype)
    assert isinstance(actual, np.ndarray)
    assert actual.shape == expected.shape
    assert actual.dtype == dtype
    magnitude = expected if magnitude is None else np.asarray(magnitude)
    finite = magnitude[np.isfinite(magnitude)]
    scale = np.max(np.abs(finite)) if finite.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE[dtype] * scale,
                               equal_nan=True)


def assert_all_close(actual, expected, magnitudes=None):
    """assert_close over matching tuples of arrays (None must match None),
    each against its entry of ``magnitudes`` when given."""
    assert len(actual) == len(expected)
    magnitudes = magnitudes or [None] * len(expected)
    for a, e, m in zip(actual, expected, magnitudes):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, magnitude=m)


def out_size(size, window, stride, padding):
    """TensorFlow's output length along one axis."""
    if padding == "valid":
        return (size - window) // stride + 1
    return -(-size // stride)


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


@st.composite
def sizes(draw, low, high):
    """An int or a (possibly non-square) pair of ints in [low, high]."""
    if draw(st.booleans()):
        return draw(st.integers(low, high))
    return (draw(st.integers(low, high)), draw(st.integers(low, high)))


def make_conv_case(dtype, padding, batch, h, w, cin, cout, kh, kw, strides, with_bias,
                   seed):
    """Random arrays for one Conv2D configuration."""
    rng = np.random.default_rng(seed)
    sh, sw = pair(strides)
    oh, ow = out_size(h, kh, sh, padding), out_size(w, kw, sw, padding)
    return dict(
        x=random(rng, (batch, h, w, cin), dtype),
        kernel=random(rng, (kh, kw, cin, cout), dtype),
        bias=random(rng, (cout,), dtype) if with_bias else None,
        dy=random(rng, (batch, oh, ow, cout), dtype),
        strides=strides, padding=padding, dtype=dtype)


@st.composite
def conv_cases(draw):
    """A random valid Conv2D configuration with its arrays."""
    dtype = draw(st.sampled_from(DTYPES))
    padding = draw(st.sampled_from(["valid", "same"]))
    batch = draw(st.integers(0, 8))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    cin, cout = draw(st.integers(1, 17)), draw(st.integers(1, 17))
    limit_h, limit_w = (min(5, h), min(5, w)) if padding == "valid" else (5, 5)
    kh, kw = draw(st.integers(1, limit_h)), draw(st.integers(1, limit_w))
    return make_conv_case(dtype, padding, batch, h, w, cin, cout, kh, kw,
                          draw(sizes(1, 3)), draw(st.booleans()),
                          draw(st.integers(0, 2**32 - 1)))


# Always tried: the largest configurations, and output channels on both sides
# of the vector widths (8 doubles / 16 floats per 64 bytes, half that for 32).
CONV_EXAMPLES = [
    make_conv_case(dtype, padding, 8, 20, 19, 17, cout, 5, 4, strides, True, 0)
    for dtype in DTYPES for padding in ["valid", "same"]
    for cout, strides in [(17, (3, 2)), (16, 1), (8, (1, 3)), (9, 2), (4, 1), (5, 3)]
]


def with_examples(examples, **extra):
    """hypothesis @example decorators for the given cases."""
    def decorate(test):
        for case in examples:
            test = example(case=case, **extra)(test)
        return test
    return decorate


def make_pool_case(dtype, padding, batch, h, w, channels, pool_size, strides, ties, seed):
    """Random arrays for one max-pooling configuration; with ``ties`` x holds
    few distinct integers, so windows hold several maxima."""
    rng = np.random.default_rng(seed)
    ph, pw = pair(pool_size)
    sh, sw = pair(strides) if strides is not None else (ph, pw)
    oh, ow = out_size(h, ph, sh, padding), out_size(w, pw, sw, padding)
    shape = (batch, h, w, channels)
    x = rng.integers(-2, 3, shape).astype(dtype) if ties else random(rng, shape, dtype)
    return dict(x=x, dy=random(rng, (batch, oh, ow, channels), dtype),
                pool_size=pool_size, strides=strides, padding=padding, dtype=dtype)


@st.composite
def pool_cases(draw):
    """A random valid max-pooling configuration, half of them with ties."""
    dtype = draw(st.sampled_from(DTYPES))
    padding = draw(st.sampled_from(["valid", "same"]))
    batch = draw(st.integers(0, 8))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    channels = draw(st.integers(1, 17))
    limit_h, limit_w = (min(4, h), min(4, w)) if padding == "valid" else (4, 4)
    ph, pw = draw(st.integers(1, limit_h)), draw(st.integers(1, limit_w))
    pool_size = (ph, pw) if (ph != pw or draw(st.booleans())) else ph
    strides = draw(st.one_of(st.none(), sizes(1, 3)))
    return make_pool_case(dtype, padding, batch, h, w, channels, pool_size, strides,
                          draw(st.booleans()), draw(st.integers(0, 2**32 - 1)))


POOL_EXAMPLES = [
    make_pool_case(dtype, padding, 8, 20, 17, 17, pool, strides, ties, 0)
    for dtype in DTYPES for padding in ["valid", "same"] for ties in [False, True]
    for pool, strides in [((4, 3), None), (4, 1), ((3, 2), (1, 3)), (1, 2)]
]


# ------------------------------------------------- 1. compiled vs reference (random)

@MAIN
@given(case=conv_cases(), activation=st.sampled_from([None, "linear", "relu"]))
@with_examples(CONV_EXAMPLES[0::2], activation="relu")
@with_examples(CONV_EXAMPLES[1::2], activation=None)
def test_conv2d_forward_matches_reference(case, activation):
    """ops.conv2d_forward == reference.conv2d_forward on random configurations."""
    args = (case["x"], case["kernel"], case["bias"], case["strides"], case["padding"],
            activation)
    expected = reference.conv2d_forward(*args)
    assert expected.shape == case["dy"].shape  # TensorFlow's output size
    assert_close(ops.conv2d_forward(*args), expected, case["dtype"])
    if activation == "relu":
        assert np.all(expected >= 0)


@MAIN
@given(case=conv_cases(), compute_dx=st.booleans())
@with_examples(CONV_EXAMPLES, compute_dx=True)
@with_examples(CONV_EXAMPLES[::3], compute_dx=False)
def test_conv2d_backward_matches_reference(case, compute_dx):
    """ops.conv2d_backward == reference.conv2d_backward (dx, dkernel, dbias)."""
    args = (case["x"], case["kernel"], case["dy"], case["strides"], case["padding"],
            compute_dx)
    expected = reference.conv2d_backward(*args)
    # Each gradient is a sum of products; rounding scales with the sum of
    # their magnitudes, which cancellation can leave far above the result.
    magnitudes = reference.conv2d_backward(np.abs(case["x"]), np.abs(case["kernel"]),
                                           np.abs(case["dy"]), *args[3:])
    assert_all_close(ops.conv2d_backward(*args), expected, magnitudes)
    assert (expected[0] is None) == (not compute_dx)
    assert expected[1].shape == case["kernel"].shape
    assert expected[2].shape == (case["kernel"].shape[3],)


@MAIN
@given(case=conv_cases())
@with_examples(CONV_EXAMPLES[::3])
def test_conv2d_backward_through_relu(case):
    """activation='relu' with y = the ReLU forward output: the same gradients as
    passing dy * (y > 0) without activation, in both modules."""
    x, kernel, dy = case["x"], case["kernel"], case["dy"]
    args = (case["strides"], case["padding"])
    y = reference.conv2d_forward(x, kernel, None, *args, activation="relu")
    expected = reference.conv2d_backward(x, kernel, np.where(y > 0, dy, 0), *args)
    for module in (ops, reference):
        assert_all_close(module.conv2d_backward(x, kernel, dy, *args, activation="relu", y=y),
                         expected)


@pytest.mark.parametrize("module", MODULES)
def test_conv2d_backward_relu_needs_a_matching_y(module):
    x, kernel = np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 3))
    dy = np.ones((1, 2, 2, 3))
    with pytest.raises(ValueError, match="needs y"):
        module.conv2d_backward(x, kernel, dy, activation="relu")
    with pytest.raises(ValueError, match="y must have dy's shape"):
        module.conv2d_backward(x, kernel, dy, activation="relu", y=np.ones((1, 2, 3, 3)))
    with pytest.raises(TypeError, match="y is float32 but dy is float64"):
        module.conv2d_backward(x, kernel, dy, activation="relu", y=dy.astype(np.float32))
    with pytest.raises(ValueError, match="only used with activation='relu'"):
        module.conv2d_backward(x, kernel, dy, y=dy)

@MAIN
@given(case=pool_cases())
@with_examples(POOL_EXAMPLES)
def test_max_pool2d_forward_matches_reference(case):
    """ops.max_pool2d_forward == reference (exactly: a maximum does not round)."""
    args = (case["x"], case["pool_size"], case["strides"], case["padding"])
    expected = reference.max_pool2d_forward(*args)
    actual = ops.max_pool2d_forward(*args)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)
    assert actual.shape == case["dy"].shape


@MAIN
@given(case=pool_cases())
@with_examples(POOL_EXAMPLES)
def test_max_pool2d_backward_matches_reference(case):
    """ops.max_pool2d_backward == reference, ties included (first-max rule)."""
    args = (case["x"], case["dy"], case["pool_size"], case["strides"], case["padding"])
    expected = reference.max_pool2d_backward(*args)
    assert_close(ops.max_pool2d_backward(*args), expected, case["dtype"])
    # The gradient is only redistributed: its total is conserved.
    np.testing.assert_allclose(expected.sum(), case["dy"].sum(dtype=np.float64),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_empty_batch(module, padding):
    """A batch of 0 images gives empty results of the right shapes, zero gradients."""
    x = np.ones((0, 7, 6, 3))
    kernel = np.ones((3, 2, 3, 5))
    y = module.conv2d_forward(x, kernel, np.ones(5), strides=(2, 1), padding=padding)
    oh, ow = out_size(7, 3, 2, padding), out_size(6, 2, 1, padding)
    assert y.shape == (0, oh, ow, 5) and y.dtype == np.float64
    dx, dkernel, dbias = module.conv2d_backward(x, kernel, np.ones((0, oh, ow, 5)),
                                                strides=(2, 1), padding=padding)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dkernel, np.zeros_like(kernel))
    np.testing.assert_array_equal(dbias, np.zeros(5))
    p = module.max_pool2d_forward(x.astype(np.float32), (3, 2), 2, padding)
    oh, ow = out_size(7, 3, 2, padding), out_size(6, 2, 2, padding)
    assert p.shape == (0, oh, ow, 3) and p.dtype == np.float32
    dxp = module.max_pool2d_backward(x.astype(np.float32), np.ones((0, oh, ow, 3), np.float32),
                                     (3, 2), 2, padding)
    assert dxp.shape == x.shape and dxp.dtype == np.float32


@pytest.mark.parametrize("module", MODULES)
def test_ints_stand_for_pairs_and_padding_ignores_case(module):
    """strides=2 means (2, 2), pool_size=3 means (3, 3), 'SAME' means 'same'."""
    rng = np.random.default_rng(1)
    x, kernel = rng.standard_normal((2, 9, 8, 3)), rng.standard_normal((3, 3, 3, 4))
    np.testing.assert_array_equal(module.conv2d_forward(x, kernel, strides=2, padding="SAME"),
                                  module.conv2d_forward(x, kernel, strides=(2, 2),
                                                        padding="same"))
    np.testing.assert_array_equal(module.max_pool2d_forward(x, 3, np.int64(2), "Valid"),
                                  module.max_pool2d_forward(x, (3, 3), [2, 2], "valid"))


# ------------------------------------------------ 2. reference vs finite differences

@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 1), ("same", (2, 3)),
                                             ("valid", (2, 2))])
def test_conv2d_reference_gradients_match_finite_differences(padding, strides):
    """reference.conv2d_backward gives dL/dx, dL/dkernel, dL/dbias of L = sum(y * dy)."""
    rng = np.random.default_rng(2)
    x, kernel, bias = (rng.standard_normal(s) for s in [(2, 5, 6, 2), (3, 2, 2, 3), (3,)])
    y = reference.conv2d_forward(x, kernel, bias, strides, padding)
    dy = rng.standard_normal(y.shape)

    def loss():
        return np.sum(reference.conv2d_forward(x, kernel, bias, strides, padding) * dy)

    dx, dkernel, dbias = reference.conv2d_backward(x, kernel, dy, strides, padding)
    for analytic, wrt in [(dx, x), (dkernel, kernel), (dbias, bias)]:
        np.testing.assert_allclose(analytic, numeric_gradient(loss, wrt, 1e-4), rtol=1e-7,
                                   atol=1e-8)


@pytest.mark.parametrize("pool_size,strides,padding", [((2, 2), None, "valid"),
                                                       ((3, 2), (2, 1), "same"),
                                                       ((2, 3), 1, "valid"),
                                                       (3, 2, "same")])
def test_max_pool2d_reference_gradient_matches_finite_differences(pool_size, strides,
                                                                  padding):
    """reference.max_pool2d_backward gives dL/dx of L = sum(pool(x) * dy), distinct x."""
    rng = np.random.default_rng(3)
    shape = (2, 5, 7, 2)
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.1  # distinct, 0.1 apart
    y = reference.max_pool2d_forward(x, pool_size, strides, padding)
    dy = rng.standard_normal(y.shape)

    def loss():
        return np.sum(reference.max_pool2d_forward(x, pool_size, strides, padding) * dy)

    dx = reference.max_pool2d_backward(x, dy, pool_size, strides, padding)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x, 1e-4), rtol=1e-7, atol=1e-8)


# ------------------------------------------------------- 3. hand-computed examples

def image(rows, dtype=np.float64):
    """A 1 x H x W x 1 array from a list of rows."""
    return np.array(rows, dtype)[None, :, :, None]


def kernel2d(rows, dtype=np.float64):
    """A KH x KW x 1 x 1 kernel from a list of rows."""
    return np.array(rows, dtype)[:, :, None, None]


X33 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_conv2d_valid(module, dtype):
    """3x3 input, 2x2 kernel [[1, 2], [3, 4]], 'valid', with bias and ReLU."""
    x, k = image(X33, dtype), kernel2d([[1, 2], [3, 4]], dtype)
    # y[0,0] = 1*1 + 2*2 + 4*3 + 5*4 = 37, and so on.
    assert_close(module.conv2d_forward(x, k), image([[37, 47], [67, 77]]), dtype)
    assert_close(module.conv2d_forward(x, k, np.array([-50.0], dtype), activation="relu"),
                 image([[0, 0], [17, 27]]), dtype)
    assert_close(module.conv2d_forward(x, -k, np.array([50.0], dtype), activation="linear"),
                 image([[13, 3], [-17, -27]]), dtype)
    dy = image([[1, 0], [0, 2]], dtype)
    dx, dk, db = module.conv2d_backward(x, k, dy)
    # dk[a,b] = x[a,b] * 1 + x[a+1,b+1] * 2; dx = k placed at (0,0) plus 2k at (1,1).
    assert_close(dk, kernel2d([[11, 14], [20, 23]]), dtype)
    assert_close(db, np.array([3.0]), dtype)
    assert_close(dx, image([[1, 2, 0], [3, 6, 4], [0, 6, 8]]), dtype)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_conv2d_same(module, dtype):
    """'same' padding: one zero on every side for a 3x3 kernel; for even
    kernels and strides the extra zero goes at the bottom/right (TensorFlow)."""
    x, ones3 = image(X33, dtype), kernel2d(np.ones((3, 3)), dtype)
    assert_close(module.conv2d_forward(x, ones3, padding="same"),
                 image([[12, 21, 16], [27, 45, 33], [24, 39, 28]]), dtype)
    # 2x2 kernel, stride 1: pad_total = 1, all of it after the input.
    assert_close(module.conv2d_forward(x, kernel2d([[1, 1], [1, 1]], dtype), padding="same"),
                 image([[12, 16, 9], [24, 28, 15], [15, 17, 9]]), dtype)
    # 4x4 input, 3x3 kernel, stride 2: out 2x2, pad_total = 1, after the input.
    x44 = image(np.arange(1, 17).reshape(4, 4), dtype)
    assert_close(module.conv2d_forward(x44, ones3, strides=2, padding="same"),
                 image([[54, 45], [72, 54]]), dtype)
    # Gradient of the last one: each dy spreads over its (clipped) 3x3 window.
    dx, dk, db = module.conv2d_backward(x44, ones3, image([[1, 10], [100, 1000]], dtype),
                                        strides=2, padding="same")
    assert_close(dx, image([[1, 1, 11, 10], [1, 1, 11, 10], [101, 101, 1111, 1010],
                            [100, 100, 1100, 1000]]), dtype)
    # dk[a,b] = x44[a,b] + 10 x44[a,b+2] + 100 x44[a+2,b] + 1000 x44[a+2,b+2] (0 outside).
    assert_close(dk, kernel2d([[1 + 30 + 900 + 11000, 2 + 40 + 1000 + 12000, 3 + 1100],
                               [5 + 70 + 1300 + 15000, 6 + 80 + 1400 + 16000, 7 + 1500],
                               [9 + 110, 10 + 120, 11]]), dtype)
    assert_close(db, np.array([1111.0]), dtype)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_conv2d_channels(module, dtype):
    """1x1 kernel mixing 2 input channels into 3 output channels."""
    x = np.array([[[[1, 2], [3, 4]]]], dtype)                 # 1 x 1 x 2 x 2
    k = np.array([[[[1, 0, -1], [10, 1, 2]]]], dtype)           # 1 x 1 x 2 x 3
    assert_close(module.conv2d_forward(x, k, np.array([0, 0, 1], dtype)),
                 np.array([[[[21, 2, 4], [43, 4, 6]]]]), dtype)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_max_pool_first_max_rule(module, dtype):
    """Stride-2 2x2 pool; ties go to the first maximum in row-major order."""
    x = image([[3, 3, 1, 2, 1, 5],
               [1, 0, 2, 2, 5, 0]], dtype)
    assert_close(module.max_pool2d_forward(x), image([[3, 2, 5]]), dtype)
    dx = module.max_pool2d_backward(x, image([[10, 20, 30]], dtype))
    assert_close(dx, image([[10, 0, 0, 20, 0, 30],
                            [0, 0, 0, 0, 0, 0]]), dtype)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_max_pool_overlap_accumulates(module, dtype):
    """2x2 pool, stride 1: the 9 in the middle wins all four windows."""
    x = image([[1, 2, 3], [4, 9, 5], [6, 7, 8]], dtype)
    assert_close(module.max_pool2d_forward(x, strides=1), image([[9, 9], [9, 9]]), dtype)
    dx = module.max_pool2d_backward(x, image([[1, 2], [3, 4]], dtype), strides=1)
    assert_close(dx, image([[0, 0, 0], [0, 10, 0], [0, 0, 0]]), dtype)
    # 3x1 pool, stride 1 on one column with a tie: each window picks its first 5.
    col = image([[5], [5], [1], [5]], dtype)
    assert_close(module.max_pool2d_forward(col, (3, 1), 1), image([[5], [5]]), dtype)
    assert_close(module.max_pool2d_backward(col, image([[1], [2]], dtype), (3, 1), 1),
                 image([[1], [2], [0], [0]]), dtype)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_max_pool_same_ignores_padding(module, dtype):
    """'same' pooling on negative values: padded cells never win (they are not 0)."""
    x = -image(X33, dtype)
    # 2x2 pool, stride 2, out 2x2: pad_total 1, at the bottom/right.
    assert_close(module.max_pool2d_forward(x, padding="same"), image([[-1, -3], [-7, -9]]),
                 dtype)
    dx = module.max_pool2d_backward(x, image([[1, 2], [3, 4]], dtype), padding="same")
    assert_close(dx, image([[1, 0, 2], [0, 0, 0], [3, 0, 4]]), dtype)
    # 3x3 pool, stride 1: one padded cell on each side.
    assert_close(module.max_pool2d_forward(x, 3, 1, "same"),
                 image([[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]]), dtype)


# ------------------------------------------------------------------ 4. bad arguments

def conv_args(dtype=np.float64):
    """Valid arguments: x (2,5,5,3), kernel (3,2,3,4), stride 1, 'valid' -> y (2,3,4,4)."""
    return dict(x=np.ones((2, 5, 5, 3), dtype), kernel=np.ones((3, 2, 3, 4), dtype),
                strides=(1, 1), padding="valid")


def pool_args(dtype=np.float64):
    """Valid arguments: x (2,5,5,3), pool 2x2 -> y (2,2,2,3)."""
    return dict(x=np.ones((2, 5, 5, 3), dtype), pool_size=(2, 2), strides=None,
                padding="valid")


F64, F32 = np.float64, np.float32
SIZE_ERRORS = [  # (bad value, exception, message fragment after the name)
    (0, ValueError, "must be positive"),
    ((2, 0), ValueError, "must be positive"),
    (-1, ValueError, "must be positive"),
    ((1, -2), ValueError, "must be positive"),
    ((1, 2, 3), ValueError, "must be an int or a pair"),
    ((1,), ValueError, "must be an int or a pair"),
    (2.0, TypeError, "must be integers"),
    ((1, 2.0), TypeError, "must be integers"),
    (float("nan"), TypeError, "must be integers"),
    (float("inf"), TypeError, "must be integers"),
    ((1, float("-inf")), TypeError, "must be integers"),
    (True, TypeError, "must be integers"),
    ((True, 1), TypeError, "must be integers"),
    ((np.bool_(True), 1), TypeError, "must be integers"),
    ("2", TypeError, "must be integers"),
    (None, TypeError, "must be integers"),
]
PADDING_ERRORS = [("full", ValueError), ("", ValueError), ("valid ", ValueError),
                  (None, TypeError), (1, TypeError), (b"same", TypeError)]
BAD_DTYPES = [np.int32, np.int64, np.float16, np.bool_, np.complex128, np.longdouble,
              np.dtype(">f8")]


def bad_cases():
    """(function name, keyword overrides of the valid arguments, exception, match)."""
    cases = []

    def conv_fwd(**kw):
        return "conv2d_forward", {**conv_args(), **kw}

    def conv_bwd(**kw):
        return "conv2d_backward", {**conv_args(), "dy": np.ones((2, 3, 4, 4)), **kw}

    def pool_fwd(**kw):
        return "max_pool2d_forward", {**pool_args(), **kw}

    def pool_bwd(**kw):
        return "max_pool2d_backward", {**pool_args(), "dy": np.ones((2, 2, 2, 3)), **kw}

    every = [conv_fwd, conv_bwd, pool_fwd, pool_bwd]
    conv = [conv_fwd, conv_bwd]
    bwd = [conv_bwd, pool_bwd]

    def add(makers, exc, match, **kw):
        for make in makers:
            name, args = make(**kw)
            cases.append(pytest.param(name, args, exc, match,
                                      id=f"{name}-{match}-{len(cases)}"))

    # rank, zero sizes, channel mismatch, window larger than the input
    add(every, ValueError, "x must be 4-D", x=np.ones((5, 5, 3)))
    add(every, ValueError, "x must be 4-D", x=np.ones((1, 2, 5, 5, 3)))
    add(conv, ValueError, "kernel must be 4-D", kernel=np.ones((3, 2, 3)))
    add(bwd, ValueError, "dy must be 4-D", dy=np.ones((2, 3, 4)))
    add(every, ValueError, "x has a zero-size dimension", x=np.ones((2, 0, 5, 3)))
    add(every, ValueError, "x has a zero-size dimension", x=np.ones((2, 5, 5, 0)))
    add(conv, ValueError, "kernel has a zero-size dimension", kernel=np.ones((0, 2, 3, 4)))
    add(conv, ValueError, "kernel has a zero-size dimension", kernel=np.ones((3, 2, 3, 0)))
    add(conv, ValueError, "x has 3 channels.*kernel expects 2", kernel=np.ones((3, 2, 2, 4)))
    add(conv, ValueError, "kernel size 6 is larger", kernel=np.ones((6, 2, 3, 4)))
    add(conv, ValueError, "kernel size 6 is larger", kernel=np.ones((3, 6, 3, 4)))
    add([pool_fwd, pool_bwd], ValueError, "pool_size 6 is larger", pool_size=(6, 1))
    add([pool_fwd, pool_bwd], ValueError, "pool_size 6 is larger", pool_size=6)
    # dy of the wrong shape
    add([conv_bwd], ValueError, "dy must have the forward output's shape",
        dy=np.ones((2, 3, 4, 3)))
    add([conv_bwd], ValueError, "dy must have the forward output's shape",
        dy=np.ones((1, 3, 4, 4)))
    add([conv_bwd], ValueError, "dy must have the forward output's shape",
        dy=np.ones((2, 4, 4, 4)))
    add([conv_bwd], ValueError, "dy must have the forward output's shape",
        dy=np.ones((2, 5, 4, 4)), padding="same")
    add([pool_bwd], ValueError, "dy must have the forward output's shape",
        dy=np.ones((2, 2, 2, 4)))
    add([pool_bwd], ValueError, "dy must have the forward output's shape",
        dy=np.ones((2, 3, 3, 3)))
    # sizes, strides, padding
    for value, exc, text in SIZE_ERRORS:
        add(conv if value is None else every, exc, "strides " + text, strides=value)
        add([pool_fwd, pool_bwd], exc, "pool_size " + text, pool_size=value)
    for value, exc in PADDING_ERRORS:
        add(every, exc, "padding must be 'valid' or 'same'", padding=value)
    # dtypes
    for dtype in BAD_DTYPES:
        text = f"must be float32 or float64, got dtype {np.dtype(dtype)}"
        add(every, TypeError, "x " + text, x=np.ones((2, 5, 5, 3), dtype))
        add(conv, TypeError, "kernel " + text, kernel=np.ones((3, 2, 3, 4), dtype))
        add([conv_bwd], TypeError, "dy " + text, dy=np.ones((2, 3, 4, 4), dtype))
        add([pool_bwd], TypeError, "dy " + text, dy=np.ones((2, 2, 2, 3), dtype))
        add([conv_fwd], TypeError, "bias " + text, bias=np.ones(4, dtype))
    add(every, TypeError, "x must be float32 or float64", x=[[[[1, 2]]]])
    add(conv, TypeError, "kernel is float32 but x is float64",
        kernel=np.ones((3, 2, 3, 4), F32))
    add(conv, TypeError, "kernel is float64 but x is float32", x=np.ones((2, 5, 5, 3), F32))
    add([conv_bwd], TypeError, "dy is float32 but x is float64", dy=np.ones((2, 3, 4, 4), F32))
    add([pool_bwd], TypeError, "dy is float32 but x is float64", dy=np.ones((2, 2, 2, 3), F32))
    add([conv_fwd], TypeError, "bias is float32 but kernel is float64", bias=np.ones(4, F32))
    # bias and activation
    add([conv_fwd], ValueError, "bias has shape", bias=np.ones(3))
    add([conv_fwd], ValueError, "bias has shape", bias=np.ones(5))
    add([conv_fwd], ValueError, "bias must be 1-D", bias=np.ones((1, 4)))
    add([conv_fwd], ValueError, "bias must be 1-D", bias=np.float64(1.0))
    add([conv_fwd], ValueError, "bias has a zero-size dimension", bias=np.ones(0))
    for activation in ["sigmoid", "", 0, True, "relu6"]:
        add([conv_fwd], ValueError, "activation must be", activation=activation)
    # out buffers
    c_out, p_out = np.empty((2, 3, 4, 4)), np.empty((2, 2, 2, 3))
    add([conv_fwd], ValueError, r"out must have shape \(2, 3, 4, 4\)", out=np.empty((2, 3, 4, 3)))
    add([conv_fwd], TypeError, "out must be float64, got float32", out=c_out.astype(F32))
    add([conv_fwd], ValueError, "out must be C-contiguous", out=np.asfortranarray(c_out))
    add([conv_fwd], ValueError, "out must be C-contiguous",
        out=np.empty((2, 3, 4, 8))[..., ::2])
    add([conv_fwd], TypeError, "out must be a numpy array", out=c_out.tolist())
    add([pool_fwd], ValueError, r"out must have shape \(2, 2, 2, 3\)", out=np.empty((2, 2, 3, 3)))
    add([pool_fwd], TypeError, "out must be float64, got float32", out=p_out.astype(F32))
    add([pool_fwd], ValueError, "out must be C-contiguous", out=np.empty((2, 2, 2, 6))[..., ::2])
    add([pool_bwd], ValueError, r"out must have shape \(2, 5, 5, 3\)", out=np.empty((2, 5, 5, 4)))
    add([pool_bwd], TypeError, "out must be float64, got int64",
        out=np.empty((2, 5, 5, 3), np.int64))
    add([pool_bwd], ValueError, "out must be C-contiguous",
        out=np.empty((2, 5, 5, 3))[:, ::-1])
    dx, dk, db = np.zeros((2, 5, 5, 3)), np.zeros((3, 2, 3, 4)), np.zeros(4)
    add([conv_bwd], ValueError, r"out\[0\] \(dx\) must have shape",
        out=(np.empty((2, 5, 5, 4)), dk, db))
    add([conv_bwd], TypeError, r"out\[0\] \(dx\) must be float64",
        out=(dx.astype(F32), dk, db))
    add([conv_bwd], ValueError, r"out\[1\] \(dkernel\) must have shape",
        out=(dx, np.empty((2, 3, 3, 4)), db))
    add([conv_bwd], ValueError, r"out\[1\] \(dkernel\) must be C-contiguous",
        out=(dx, np.asfortranarray(dk), db))
    add([conv_bwd], ValueError, r"out\[2\] \(dbias\) must have shape",
        out=(dx, dk, np.empty(3)))
    add([conv_bwd], TypeError, r"out\[2\] \(dbias\) must be float64",
        out=(dx, dk, db.astype(F32)))
    return cases


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("name,args,exc,match", bad_cases())
def test_bad_arguments_raise(module, name, args, exc, match):
    """Each bad argument raises the documented exception, naming the argument."""
    with pytest.raises(exc, match=match):
        getattr(module, name)(**args)


@pytest.mark.parametrize("module", MODULES)
def test_read_only_out_is_rejected(module):
    """A read-only out buffer raises ValueError (it cannot be written)."""
    out = np.empty((2, 2, 2, 3))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be C-contiguous, aligned and writeable"):
        module.max_pool2d_forward(np.ones((2, 5, 5, 3)), out=out)


@pytest.mark.parametrize("module", MODULES)
def test_unaligned_out_is_rejected(module):
    """An out buffer whose doubles straddle 8-byte boundaries raises
    ValueError: the compiled kernels store whole elements (a misaligned
    store is undefined behaviour, which the sanitizer build reports)."""
    out = unaligned(np.empty((2, 2, 2, 3)))
    with pytest.raises(ValueError, match="aligned"):
        module.max_pool2d_forward(np.ones((2, 5, 5, 3)), out=out)


# ------------------------------------------- 5. non-contiguous and read-only inputs

def read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def unaligned(array):
    """A C-contiguous copy of array whose data is not aligned to its itemsize."""
    raw = np.zeros(array.nbytes + 1, np.uint8)
    view = raw[1:].view(array.dtype).reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned
    return view


def views(base):
    """Arrays equal to base but laid out oddly: negatively strided, strided
    (every other element), Fortran-ordered, transposed, read-only, unaligned."""
    flip_first = (slice(None),) * (1 if base.ndim > 1 else 0) + (slice(None, None, -1),)
    flip_all = (slice(None, None, -1),) * base.ndim
    double = tuple(2 * s for s in base.shape)
    strided = np.zeros(double, base.dtype)[(slice(None, None, 2),) * base.ndim]
    backwards = np.zeros(double, base.dtype)[(slice(None, None, -2),) * base.ndim]
    strided[...] = base
    backwards[...] = base
    return {
        "reversed_rows": np.ascontiguousarray(base[flip_first])[flip_first],
        "reversed_all": np.ascontiguousarray(base[flip_all])[flip_all],
        "every_other": strided,
        "every_other_backwards": backwards,
        "fortran": np.asfortranarray(base),
        "transposed": np.ascontiguousarray(base.T).T,
        "read_only": read_only(base),
        "unaligned": unaligned(base),
    }


VIEW_KINDS = list(views(np.zeros((1, 1, 1, 1))))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_odd_layouts(module, kind, dtype):
    """Every conv input (x, kernel, bias, dy) in an odd layout gives the
    same result as its contiguous copy."""
    rng = np.random.default_rng(5)
    x, kernel = random(rng, (3, 7, 6, 5), dtype), random(rng, (3, 2, 5, 4), dtype)
    bias, dy = random(rng, (4,), dtype), random(rng, (3, 4, 3, 4), dtype)
    args = dict(strides=(2, 2), padding="same")
    want_y = module.conv2d_forward(x, kernel, bias, activation="relu", **args)
    want_grads = module.conv2d_backward(x, kernel, dy, **args)
    vx, vk, vb, vdy = (views(a)[kind] for a in (x, kernel, bias, dy))
    assert all(np.array_equal(v, a) for v, a in [(vx, x), (vk, kernel), (vb, bias), (vdy, dy)])
    np.testing.assert_array_equal(
        module.conv2d_forward(vx, vk, vb, activation="relu", **args), want_y)
    for got, want in zip(module.conv2d_backward(vx, vk, vdy, **args), want_grads):
        np.testing.assert_array_equal(got, want)
    assert np.array_equal(vx, x) and np.array_equal(vk, kernel)  # inputs left alone


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_odd_layouts(module, kind, dtype):
    """Pooling x and dy in odd layouts gives the same result as contiguous copies."""
    rng = np.random.default_rng(6)
    x = rng.integers(-3, 4, (2, 7, 6, 5)).astype(dtype)
    dy = random(rng, (2, 4, 3, 5), dtype)
    args = dict(pool_size=(3, 2), strides=(2, 2), padding="same")
    want_y = module.max_pool2d_forward(x, **args)
    want_dx = module.max_pool2d_backward(x, dy, **args)
    vx, vdy = views(x)[kind], views(dy)[kind]
    assert np.array_equal(vx, x) and np.array_equal(vdy, dy)
    np.testing.assert_array_equal(module.max_pool2d_forward(vx, **args), want_y)
    np.testing.assert_array_equal(module.max_pool2d_backward(vx, vdy, **args), want_dx)


@pytest.mark.parametrize("module", MODULES)
def test_nested_lists_are_accepted(module):
    """Python float lists are converted like np.asarray (float64)."""
    x = [[[[1.0], [2.0]], [[3.0], [4.0]]]]
    y = module.conv2d_forward(x, [[[[1.0]]], [[[1.0]]]])
    np.testing.assert_array_equal(y, [[[[4.0], [6.0]]]])
    np.testing.assert_array_equal(module.max_pool2d_forward(x), [[[[4.0]]]])


# --------------------------------------------------------------------- 6. NaN and Inf

def sprinkle(rng, array, values=(np.nan, np.inf, -np.inf), fraction=0.05):
    """A copy of array with a few elements replaced by the given special values."""
    array = array.copy()
    flat = array.reshape(-1)
    where = rng.random(flat.size) < fraction
    flat[where] = rng.choice(values, where.sum())
    return array


NONFINITE_CONFIGS = [(1, "valid"), (1, "same"), ((2, 3), "same"), (2, "valid")]
# The reference's matmul and sums warn about Inf - Inf; that is expected here.
quiet = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@quiet
@pytest.mark.parametrize("strides,padding", NONFINITE_CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_nonfinite_data_matches_reference(strides, padding, dtype):
    """NaN/Inf in x, bias and dy propagate (0 * Inf = NaN, Inf - Inf = NaN)
    exactly as in the reference."""
    rng = np.random.default_rng(7)
    x = sprinkle(rng, random(rng, (3, 9, 8, 4), dtype))
    kernel, bias = random(rng, (3, 2, 4, 5), dtype), random(rng, (5,), dtype)
    kernel[0, 0, 0, 0] = 0  # makes 0 * Inf where an Inf falls under it
    bias[1:3] = [np.nan, -np.inf]
    for activation in [None, "relu"]:
        want = reference.conv2d_forward(x, kernel, bias, strides, padding, activation)
        assert np.isnan(want).any() and np.isinf(want).any()
        assert_close(ops.conv2d_forward(x, kernel, bias, strides, padding, activation), want)
    dy = sprinkle(rng, random(rng, want.shape, dtype), fraction=0.02)
    assert_all_close(ops.conv2d_backward(x, kernel, dy, strides, padding),
                     reference.conv2d_backward(x, kernel, dy, strides, padding))


@quiet
@pytest.mark.parametrize("special", [np.nan, np.inf])
@pytest.mark.parametrize("strides,padding", NONFINITE_CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_nonfinite_kernel_matches_reference(strides, padding, dtype, special):
    """A NaN or Inf weight gives the same NaN/Inf pattern in y, dx, dkernel as
    in the reference."""
    rng = np.random.default_rng(8)
    x = random(rng, (2, 7, 8, 3), dtype)
    kernel = random(rng, (3, 3, 3, 2), dtype)
    kernel[0, 0, 1, 0] = special
    want = reference.conv2d_forward(x, kernel, None, strides, padding)
    assert_close(ops.conv2d_forward(x, kernel, None, strides, padding), want)
    dy = random(rng, want.shape, dtype)
    assert_all_close(ops.conv2d_backward(x, kernel, dy, strides, padding),
                     reference.conv2d_backward(x, kernel, dy, strides, padding))


@quiet
@pytest.mark.parametrize("module", MODULES)
def test_conv2d_nan_weight_by_hand(module):
    """A NaN weight reaches exactly the values it multiplies.

    4x4 input 1..16, 2x2 kernel of ones with kernel[0, 0] = NaN, dy = 1:
    every y is NaN; dx[i, j] = sum of kernel[a, b] over the windows holding
    (i, j) at offset (a, b), NaN only where (i, j) is some window's top-left
    corner (i, j < 3); dkernel and dbias do not involve the kernel at all.
    With 'same' padding (3x3 kernel, NaN at [0, 0]) the NaN weight meets
    a zero of the padding or an input in every window: 0 * NaN = NaN."""
    nan = np.nan
    x = image(np.arange(1, 17).reshape(4, 4))
    k = kernel2d([[nan, 1], [1, 1]])
    assert np.isnan(module.conv2d_forward(x, k)).all()
    dx, dk, db = module.conv2d_backward(x, k, np.ones((1, 3, 3, 1)))
    np.testing.assert_array_equal(dx, image([[nan, nan, nan, 1], [nan, nan, nan, 2],
                                             [nan, nan, nan, 2], [1, 2, 2, 1]]))
    np.testing.assert_array_equal(dk, kernel2d([[54, 63], [90, 99]]))
    np.testing.assert_array_equal(db, [9.0])
    k3 = kernel2d([[nan, 1, 1], [1, 1, 1], [1, 1, 1]])
    assert np.isnan(module.conv2d_forward(x, k3, padding="same")).all()


@pytest.mark.parametrize("pool_size,strides,padding", [((2, 2), None, "valid"),
                                                       ((3, 3), 1, "same"),
                                                       ((3, 2), (2, 1), "same")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_nonfinite_matches_reference(pool_size, strides, padding, dtype):
    """A window holding NaN pools to NaN and routes its gradient to its first NaN;
    +-Inf pool like any other number."""
    rng = np.random.default_rng(9)
    x = sprinkle(rng, rng.integers(-2, 3, (3, 8, 7, 4)).astype(dtype), fraction=0.1)
    x[0, :2, :2, 0] = [[1, np.nan], [np.nan, 5]]       # a NaN that is not first in its row
    x[1, :, :, 1] = -np.inf                            # a channel of -Inf only
    args = (pool_size, strides, padding)
    want = reference.max_pool2d_forward(x, *args)
    assert np.isnan(want[0, 0, 0, 0]) and np.all(want[1, :, :, 1] == -np.inf)
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, *args), want)
    dy = random(rng, want.shape, dtype)
    assert_close(ops.max_pool2d_backward(x, dy, *args),
                 reference.max_pool2d_backward(x, dy, *args))


@pytest.mark.parametrize("module", MODULES)
def test_max_pool2d_nan_routing_by_hand(module):
    """[[1, NaN], [NaN, 5]] pools to NaN; the gradient goes to the first NaN.
    [[-Inf, -Inf], [-Inf, -Inf]] pools to -Inf; the gradient goes to the first cell."""
    x = image([[1, np.nan, -np.inf, -np.inf], [np.nan, 5, -np.inf, -np.inf]])
    y = module.max_pool2d_forward(x)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 0] == -np.inf
    np.testing.assert_array_equal(module.max_pool2d_backward(x, image([[7, 9]])),
                                  image([[0, 7, 9, 0], [0, 0, 0, 0]]))


# -------------------------------------------------------------------- 7. thread counts

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", (2, 1))])
def test_thread_counts_agree(threads_on_small_shapes, dtype, padding, strides):
    """1, 2 and 3 threads give the same results (within rounding), batch 1 and 5."""
    results = {}
    for threads in [1, 2, 3]:
        fastconv.set_num_threads(threads)
        if fastconv.build_info()["openmp"]:
            assert fastconv.get_num_threads() == threads
        for batch in [1, 5]:
            r = np.random.default_rng(batch)
            x, kernel = random(r, (batch, 12, 11, 6), dtype), random(r, (3, 4, 6, 19), dtype)
            bias = random(r, (19,), dtype)
            y = ops.conv2d_forward(x, kernel, bias, strides, padding, "relu")
            grads = ops.conv2d_backward(x, kernel, random(r, y.shape, dtype), strides, padding)
            xp = r.integers(-2, 3, x.shape).astype(dtype)
            p = ops.max_pool2d_forward(xp, 3, strides, padding)
            dxp = ops.max_pool2d_backward(xp, random(r, p.shape, dtype), 3, strides, padding)
            results[threads, batch] = (y, *grads, p, dxp)
    for batch in [1, 5]:
        for threads in [2, 3]:
            assert_all_close(results[threads, batch], results[1, batch])


@pytest.mark.parametrize("bad", [0, -1, "2", 2.0, None, True, np.bool_(True)])
def test_set_num_threads_rejects_bad_counts(restore_threads, bad):
    """The thread count must be a positive int; the old one stays in force."""
    before = fastconv.get_num_threads()
    with pytest.raises(ValueError, match="thread count"):
        fastconv.set_num_threads(bad)
    assert fastconv.get_num_threads() == before


def test_set_num_threads_accepts_numpy_ints(restore_threads):
    fastconv.set_num_threads(np.int64(1))
    assert fastconv.get_num_threads() == 1
    assert fastconv.build_info()["num_threads"] == 1


# ----------------------------------------------------------------- 8. out= buffers

@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_buffers_are_filled_and_returned(module, dtype):
    """Results land in the given buffers (pre-filled with NaN), which are returned."""
    rng = np.random.default_rng(11)
    x, kernel, bias = (random(rng, s, dtype) for s in [(2, 7, 6, 3), (3, 2, 3, 4), (4,)])
    args = dict(strides=(2, 1), padding="same")
    want = module.conv2d_forward(x, kernel, bias, activation="relu", **args)
    out = np.full(want.shape, np.nan, dtype)
    assert module.conv2d_forward(x, kernel, bias, activation="relu", out=out, **args) is out
    np.testing.assert_array_equal(out, want)

    dy = random(rng, want.shape, dtype)
    want_grads = module.conv2d_backward(x, kernel, dy, **args)
    bufs = tuple(np.full(g.shape, np.nan, dtype) for g in want_grads)
    got = module.conv2d_backward(x, kernel, dy, out=bufs, **args)
    for g, b, w in zip(got, bufs, want_grads):
        assert g is b
        np.testing.assert_array_equal(b, w)
    bufs = (None, np.full(kernel.shape, np.nan, dtype), np.full(4, np.nan, dtype))
    got = module.conv2d_backward(x, kernel, dy, compute_dx=False, out=bufs, **args)
    assert got[0] is None and got[1] is bufs[1] and got[2] is bufs[2]
    np.testing.assert_array_equal(bufs[1], want_grads[1])
    np.testing.assert_array_equal(bufs[2], want_grads[2])
    # compute_dx=True with out[0] None allocates dx and still fills the others.
    bufs = (None, np.full(kernel.shape, np.nan, dtype), np.full(4, np.nan, dtype))
    got = module.conv2d_backward(x, kernel, dy, out=bufs, **args)
    np.testing.assert_array_equal(got[0], want_grads[0])
    assert got[1] is bufs[1] and got[2] is bufs[2]

    xp = rng.integers(-2, 3, x.shape).astype(dtype)
    want_p = module.max_pool2d_forward(xp, 3, 1, "same")
    out = np.full(want_p.shape, np.nan, dtype)
    assert module.max_pool2d_forward(xp, 3, 1, "same", out=out) is out
    np.testing.assert_array_equal(out, want_p)
    dyp = random(rng, want_p.shape, dtype)
    want_dx = module.max_pool2d_backward(xp, dyp, 3, 1, "same")
    out = np.full(x.shape, np.nan, dtype)
    assert module.max_pool2d_backward(xp, dyp, 3, 1, "same", out=out) is out
    np.testing.assert_array_equal(out, want_dx)


@pytest.mark.parametrize("module", MODULES)
def test_out_buffers_are_overwritten_not_accumulated(module):
    """Calling twice with the same buffers gives the same values, not twice them."""
    x, kernel, dy = np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)), np.ones((1, 2, 2, 1))
    bufs = (np.empty(x.shape), np.empty(kernel.shape), np.empty(1))
    first = [b.copy() for b in module.conv2d_backward(x, kernel, dy, out=bufs)]
    second = module.conv2d_backward(x, kernel, dy, out=bufs)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bufs[2], [4.0])
    pool_out = np.full((1, 3, 3, 1), 5.0)
    for _ in range(2):  # all ties: each 2x2 window routes to its top-left cell
        module.max_pool2d_backward(x, np.ones((1, 2, 2, 1)), strides=1, out=pool_out)
        np.testing.assert_array_equal(pool_out, image([[1, 1, 0], [1, 1, 0], [0, 0, 0]]))


# ------------------------------------------------------------------- 9. build_info()

def test_build_info(restore_threads):
    """build_info() reports openmp, num_threads, build_flags and backend."""
    info = fastconv.build_info()
    assert isinstance(info, dict)
    assert {"openmp", "num_threads", "build_flags", "backend"} <= set(info)
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["build_flags"], str)
    assert info["backend"] == fastconv.get_backend()
    assert info["backend"] in ("cython", "numpy")
    assert info["num_threads"] == fastconv.get_num_threads() >= 1
    fastconv.set_num_threads(1)
    assert fastconv.build_info()["num_threads"] == 1
    if info["openmp"]:
        fastconv.set_num_threads(2)
        assert fastconv.build_info()["num_threads"] == 2


def test_tile_bounds_past_int32_products():
    """Tiles over 170,000 kernel rows and 200,000 output columns: the tile
    bounds are products that overflow 32-bit ints."""
    rng = np.random.default_rng(5)
    x = random(rng, (1, 1, 4, 170_000), np.float32)
    kernel = random(rng, (1, 1, 170_000, 3), np.float32)
    dy = random(rng, (1, 1, 4, 3), np.float32)
    assert_all_close(ops.conv2d_backward(x, kernel, dy),
                     reference.conv2d_backward(x, kernel, dy))
    wide = random(rng, (1, 1, 200_000, 1), np.float32)
    row = random(rng, (1, 3, 1, 1), np.float32)
    assert_all_close(ops.conv2d_forward(wide, row, padding="same"),
                     reference.conv2d_forward(wide, row, padding="same"))
