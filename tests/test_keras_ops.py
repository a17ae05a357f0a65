"""Keras 3's ``keras.ops`` functions (fastconv.keras_ops, served by fastconv.ops).

Values are compared with NumPy or worked out by hand; arguments are passed
by Keras's names.  The dtypes are those Keras 3.15 (torch backend) returns
for the same calls, but for three choices: relu of integers is float32 here
(Keras keeps the integers), results of float64 arrays stay float64 (the
torch backend makes some float32), and out-of-range one_hot labels give zero
vectors and squeezing an axis that is not 1 raises, as NumPy and TensorFlow
do.
"""

import numpy as np
import pytest

import fastconv as keras
from fastconv import keras_ops

ops = keras.ops


def check(actual, expected, dtype):
    """``actual`` is a numpy array of ``dtype`` equal to ``expected``."""
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def test_served_by_the_kernel_module():
    for name in keras_ops.__all__:
        assert getattr(ops, name) is getattr(keras_ops, name)
        assert name in dir(ops)
    from fastconv.ops import max as ops_max
    from fastconv.ops import softmax
    assert ops_max is keras_ops.max and softmax is keras_ops.softmax
    with pytest.raises(AttributeError, match="no attribute 'no_such_op'"):
        ops.no_such_op  # noqa: B018 (the lookup is what must raise)


def test_the_programs_calls():
    """keras.io's image classification from scratch and the TF flowers tutorial."""
    img_array = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    batch = ops.expand_dims(img_array, 0)
    assert batch.shape == (1, 2, 2, 3)
    predictions = np.array([[0.0]], np.float32)
    assert float(ops.sigmoid(predictions[0][0])) == 0.5
    score = ops.softmax(np.array([1.0, 2.0, 3.0], np.float32))
    check(score, np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), np.float32)
    assert np.argmax(score) == 2


def test_conversions():
    check(ops.convert_to_tensor([1.0, 2.0]), [1, 2], np.float32)
    check(ops.convert_to_tensor([1, 2]), [1, 2], np.int32)
    check(ops.convert_to_tensor(np.array([1.0, 2.0])), [1, 2], np.float64)
    check(ops.convert_to_tensor(np.array([1, 2], np.int64)), [1, 2], np.int64)
    check(ops.convert_to_tensor(3.0), 3, np.float32)
    check(ops.convert_to_tensor([1, 2], dtype="float16"), [1, 2], np.float16)
    with pytest.raises(ValueError, match="sparse"):
        ops.convert_to_tensor([1.0], sparse=True)
    with pytest.raises(ValueError, match="Invalid dtype"):
        ops.convert_to_tensor([1.0], dtype="floaty")
    source = np.ones(3)
    copy = ops.convert_to_numpy(source)
    assert isinstance(copy, np.ndarray) and not np.shares_memory(copy, source)
    check(ops.cast([1.7, -1.7], "int32"), [1, -1], np.int32)
    check(ops.cast(np.array([2, 0]), dtype="bool"), [True, False], np.bool_)
    assert ops.shape(np.zeros((2, 3))) == (2, 3) and ops.shape([[1, 2, 3]]) == (1, 3)
    assert ops.shape(keras.Input((5, 4))) == (None, 5, 4)


def test_creation():
    check(ops.zeros((2, 3)), np.zeros((2, 3)), np.float32)
    check(ops.ones(shape=2, dtype="int32"), [1, 1], np.int32)
    check(ops.arange(3), [0, 1, 2], np.int32)
    check(ops.arange(1, 7, 2), [1, 3, 5], np.int32)
    check(ops.arange(0, 1, step=0.25), [0, 0.25, 0.5, 0.75], np.float32)
    check(ops.arange(1.0, 3), [1, 2], np.float32)
    check(ops.arange(start=3, dtype="float64"), [0, 1, 2], np.float64)


def test_shapes():
    x = np.arange(6.0).reshape(1, 2, 3)
    assert ops.expand_dims(x, axis=-1).shape == (1, 2, 3, 1)
    assert ops.expand_dims(np.zeros((2, 3)), (0, 2)).shape == (1, 2, 1, 3)
    check(ops.expand_dims([1.0, 2.0], 0), [[1, 2]], np.float32)
    assert ops.squeeze(np.zeros((1, 2, 1))).shape == (2,)
    assert ops.squeeze(np.zeros((1, 2, 1)), axis=0).shape == (2, 1)
    with pytest.raises(ValueError):
        ops.squeeze(np.zeros((2, 1)), axis=0)
    check(ops.reshape(x, newshape=(-1, 2)), x.reshape(3, 2), np.float64)
    check(ops.transpose(x), x.T, np.float64)
    check(ops.transpose(x, axes=(0, 2, 1)), x.transpose(0, 2, 1), np.float64)
    check(ops.concatenate([np.ones((1, 2)), np.zeros((2, 2))], axis=0),
          [[1, 1], [0, 0], [0, 0]], np.float64)
    check(ops.concatenate(xs=[[1.0], [2.0, 3.0]]), [1, 2, 3], np.float32)
    check(ops.stack([[1, 2], [3, 4]], axis=1), [[1, 3], [2, 4]], np.int32)


def test_reductions():
    x = np.array([[1.0, 5.0, 2.0], [4.0, 0.0, 6.0]], np.float32)
    check(ops.sum(x), 18, np.float32)
    check(ops.sum(x, axis=0), [5, 5, 8], np.float32)
    check(ops.sum(x, axis=[0, 1], keepdims=True), [[18]], np.float32)
    check(ops.sum(np.array([1, 2], np.int32)), 3, np.int32)
    check(ops.sum(np.array([True, False, True])), 2, np.int32)
    check(ops.mean(x, axis=1), [8 / 3, 10 / 3], np.float32)
    check(ops.mean([1, 2]), 1.5, np.float32)
    check(ops.mean(np.array([1.0, 2.0])), 1.5, np.float64)
    check(ops.max(x, axis=1, keepdims=True), [[5], [6]], np.float32)
    check(ops.max([1.0, 2.0], initial=5.0), 5, np.float32)
    check(ops.min(x, axis=0), [1, 0, 2], np.float32)
    check(ops.min(x, initial=-1.0), -1, np.float32)
    check(ops.argmax(x, axis=1), [1, 2], np.int32)
    check(ops.argmax(x), 5, np.int32)
    check(ops.argmax(x, keepdims=True), [[5]], np.int32)
    check(ops.argmin(x, axis=-1), [0, 1], np.int32)
    check(ops.argmin([3, 1, 1]), 1, np.int32)  # the first of the smallest


def test_elementwise():
    check(ops.abs(np.array([-1.5, 2.0])), [1.5, 2], np.float64)
    check(ops.square([-3, 2]), [9, 4], np.int32)
    check(ops.sqrt(np.array([4, 9])), [2, 3], np.float32)
    check(ops.sqrt(np.array([4.0])), [2], np.float64)
    check(ops.exp(np.array([0, 1], np.int32)), [1, np.e], np.float32)
    check(ops.log(np.array([1.0, np.e], np.float32)), [0, 1], np.float32)
    check(ops.clip(np.array([1, 5, 9]), 2, 6), [2, 5, 6], np.int64)
    check(ops.clip(np.array([1.0, 5.0], np.float32), x_min=2.0, x_max=6.5), [2, 5], np.float32)
    check(ops.clip([1, 5, 9], 2.5, 6), [2.5, 5, 6], np.float32)
    check(ops.maximum(np.array([1.0, 5.0], np.float32), 3.5), [3.5, 5], np.float32)
    check(ops.maximum(x1=np.array([1, 5], np.int32), x2=3.5), [3.5, 5], np.float32)
    check(ops.minimum(np.array([[1.0], [4.0]]), np.array([2.0, 3.0])), [[1, 1], [2, 3]],
          np.float64)
    check(ops.where(np.array([True, False]), 1.0, 2.0), [1, 2], np.float32)
    check(ops.where([True, False], x1=np.array([1.0, 2.0]), x2=0), [1, 0], np.float64)
    rows, cols = ops.where(np.array([[1, 0], [0, 1]]))
    np.testing.assert_array_equal(rows, [0, 1])
    np.testing.assert_array_equal(cols, [0, 1])
    with pytest.raises(ValueError, match="both should be `None`"):
        ops.where([True], 1)
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    check(ops.matmul(a, b), a @ b, np.float64)
    check(ops.matmul(x1=np.ones((2, 2), np.int32), x2=np.ones((2, 2), np.int32)),
          [[2, 2], [2, 2]], np.int32)


def test_one_hot():
    check(ops.one_hot(np.array([0, 2]), 3), [[1, 0, 0], [0, 0, 1]], np.float32)
    check(ops.one_hot(np.array([0, 2]), num_classes=3, axis=0), [[1, 0], [0, 0], [0, 1]],
          np.float32)
    check(ops.one_hot([1, -1, 5], 2, dtype="int32"), [[0, 1], [0, 0], [0, 0]], np.int32)
    assert ops.one_hot(np.zeros((4, 5), np.uint8), 3).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="num_classes"):
        ops.one_hot([1], 0)


def test_activations():
    x = np.array([[-2.0, 0.0, 3.0]], np.float32)
    check(ops.relu(x), [[0, 0, 3]], np.float32)
    check(ops.relu([-1, 2]), [0, 2], np.float32)
    check(ops.sigmoid(x), 1 / (1 + np.exp(-x)), np.float32)
    check(ops.sigmoid(np.array([0.0])), [0.5], np.float64)
    check(ops.tanh(np.array([0, 1])), [0, np.tanh(1)], np.float32)
    check(ops.softmax(x), np.exp(x) / np.exp(x).sum(), np.float32)
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    check(ops.softmax(y, axis=0), np.exp(y) / np.exp(y).sum(axis=0), np.float64)
    check(ops.softmax(y, axis=(0, 1)), np.exp(y) / np.exp(y).sum(), np.float64)
    for function in (ops.relu, ops.sigmoid, ops.tanh, ops.softmax):
        assert not np.shares_memory(function(x), x)
