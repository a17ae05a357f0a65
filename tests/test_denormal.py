"""Tests of ``fastconv.set_flush_denormal``: flush-to-zero in the compiled kernels.

The inputs hold small integers and denormals, and the kernels small
integers, so that every sum is exact in any order: the compiled kernels
must then equal the NumPy reference bit for bit, which sees the denormals
(flush off) or zeros in their place (flush on).
"""

import numpy as np
import pytest

import fastconv
from fastconv import ops, reference

DTYPES = [np.float32, np.float64]
SUPPORTED = ops._conv.FLUSH_DENORMAL and ops._cpu.supports("sse3")


@pytest.fixture
def restore_flush():
    """Puts the flush mode back as it was after the test."""
    previous = fastconv.get_flush_denormal()
    yield
    fastconv.set_flush_denormal(previous)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, threads_on_small_shapes):
    """Runs the test with the kernels on one thread, then on two (MXCSR is per thread)."""
    fastconv.set_num_threads(min(request.param, ops.max_threads()))


def denormal(dtype):
    """A denormal of ``dtype`` (a quarter of the smallest normal)."""
    return np.finfo(dtype).tiny / 4


def inputs(dtype, seed=0, shape=(2, 7, 6, 3), all_denormal=False):
    """x of ``shape`` (denormal multiples; or small integers, a third of
    them replaced by denormals) and x with its denormals zeroed."""
    rng = np.random.default_rng(seed)
    tiny = denormal(dtype)
    denormals = rng.integers(1, 4, size=shape) * tiny
    if all_denormal:
        x = denormals.astype(dtype)
    else:
        x = np.where(rng.random(shape) < 1 / 3, denormals,
                     rng.integers(-3, 4, size=shape)).astype(dtype)
    flushed = np.where(np.abs(x) < np.finfo(dtype).tiny, 0, x).astype(dtype)
    return x, flushed


def integer_kernel(dtype, shape, seed=1):
    return np.random.default_rng(seed).integers(-2, 3, size=shape).astype(dtype)


def test_off_by_default_and_set_returns_whether_supported(restore_flush):
    assert fastconv.get_flush_denormal() is False  # every test puts it back
    assert fastconv.set_flush_denormal(True) is SUPPORTED
    assert fastconv.get_flush_denormal() is SUPPORTED
    assert fastconv.set_flush_denormal(False) is SUPPORTED
    assert fastconv.get_flush_denormal() is False


@pytest.mark.parametrize("mode", [1, 0, None, "yes", 1.0])
def test_bad_mode_raises_type_error(mode, restore_flush):
    with pytest.raises(TypeError, match="mode"):
        fastconv.set_flush_denormal(mode)
    assert fastconv.get_flush_denormal() is False


@pytest.mark.parametrize("dtype", DTYPES)
def test_flush_off_keeps_denormals(dtype, threads):
    x, _ = inputs(dtype, all_denormal=True)
    kernel = integer_kernel(dtype, (3, 3, 3, 4))
    y = ops.conv2d_forward(x, kernel, padding="same")
    assert np.any(y != 0)
    np.testing.assert_array_equal(y, reference.conv2d_forward(x, kernel, padding="same"))
    y = ops.depthwise_conv2d_forward(x, integer_kernel(dtype, (3, 3, 3, 2)))
    assert np.any(y != 0)
    np.testing.assert_array_equal(y, reference.depthwise_conv2d_forward(
        x, integer_kernel(dtype, (3, 3, 3, 2))))


@pytest.mark.skipif(not SUPPORTED, reason="flush-to-zero needs x86 with SSE3")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("all_denormal", [True, False], ids=["denormal", "mixed"])
def test_flush_on_reads_denormals_as_zero(dtype, all_denormal, threads, restore_flush):
    x, flushed = inputs(dtype, all_denormal=all_denormal)
    kernel = integer_kernel(dtype, (3, 3, 3, 4))
    bias = np.arange(4, dtype=dtype)
    dkernel = integer_kernel(dtype, (3, 3, 3, 2))
    assert fastconv.set_flush_denormal(True)
    y = ops.conv2d_forward(x, kernel, bias, strides=2, padding="same")
    np.testing.assert_array_equal(
        y, reference.conv2d_forward(flushed, kernel, bias, strides=2, padding="same"))
    dy, _ = inputs(dtype, seed=2, shape=y.shape)
    grads = ops.conv2d_backward(x, kernel, dy, strides=2, padding="same")
    expected = reference.conv2d_backward(flushed, kernel, np.where(
        np.abs(dy) < np.finfo(dtype).tiny, 0, dy).astype(dtype), strides=2, padding="same")
    for got, want in zip(grads, expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ops.depthwise_conv2d_forward(x, dkernel),
                                  reference.depthwise_conv2d_forward(flushed, dkernel))
    np.testing.assert_array_equal(ops.avg_pool2d_forward(x),
                                  reference.avg_pool2d_forward(flushed))


@pytest.mark.skipif(not SUPPORTED, reason="flush-to-zero needs x86 with SSE3")
@pytest.mark.parametrize("dtype", DTYPES)
def test_flush_stays_inside_the_kernels(dtype, threads, restore_flush):
    x, _ = inputs(dtype, all_denormal=True)
    assert fastconv.set_flush_denormal(True)
    ops.conv2d_forward(x, integer_kernel(dtype, (3, 3, 3, 4)))
    ops.max_pool2d_forward(x)
    # NumPy, on the calling thread, still computes denormals: its MXCSR was restored.
    tiny = dtype(denormal(dtype))
    assert tiny * dtype(1.0) == tiny != 0
    assert (np.full(8, tiny) * dtype(1.0) == tiny).all()
