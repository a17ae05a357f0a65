"""Keras 3's ``keras.ops`` functions that convnet programs call, in NumPy.

``import fastconv as keras`` makes ``fastconv.ops`` (the compiled kernels)
``keras.ops``; it serves these functions too, so that
``keras.ops.expand_dims(img_array, 0)`` or ``keras.ops.softmax(logits)``
run as in Keras.  They are plain NumPy and eager: a tensor is a numpy array,
and each function takes Keras's arguments (``axis``, ``keepdims``, ...) and
returns a numpy array (``shape`` a tuple).  ``expand_dims``, ``squeeze``,
``reshape``, ``transpose`` and ``convert_to_tensor`` may return views of
their input, as NumPy does; the others return new arrays.

Dtypes follow NumPy, with Keras's defaults: Python floats (and lists of
them) become float32 and Python ints int32; the functions with real results
(``sqrt``, ``exp``, ``log``, ``mean``, the activations) compute integers in
float32; ``sum`` keeps integers at least 32-bit (bools give int32);
``argmax``/``argmin`` give int32; a result is float64 only when an input
array is.
"""

import numbers

import numpy as np

from . import activations

__all__ = ["abs", "arange", "argmax", "argmin", "cast", "clip", "concatenate", "convert_to_numpy",
           "convert_to_tensor", "exp", "expand_dims", "log", "matmul", "max", "maximum", "mean",
           "min", "minimum", "one_hot", "ones", "relu", "reshape", "shape", "sigmoid", "softmax",
           "sqrt", "square", "squeeze", "stack", "sum", "tanh", "transpose", "where", "zeros"]

FLOATX = np.dtype(np.float32)
INTX = np.dtype(np.int32)

# ------------------------------------------------------------ conversions


def _dtype(dtype):
    try:
        return np.dtype(dtype)
    except TypeError:
        raise ValueError(f"Invalid dtype: {dtype!r}") from None


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as a numpy array: of ``dtype`` when given; arrays and NumPy
    scalars keep their dtype, Python floats become float32 and ints int32."""
    if sparse or ragged:
        raise ValueError("fastconv tensors are dense numpy arrays: sparse=True and "
                         "ragged=True are not supported")
    if dtype is not None:
        return np.asarray(x, dtype=_dtype(dtype))
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    array = np.asarray(x)
    if array.dtype == np.float64:
        return array.astype(FLOATX)
    if array.dtype == np.int64:
        return array.astype(INTX)
    return array


def convert_to_numpy(x):
    """A numpy array holding ``x`` (a copy)."""
    return np.array(x)


def cast(x, dtype):
    """``x`` converted to ``dtype`` (floats to integers truncate toward zero)."""
    return convert_to_tensor(x).astype(_dtype(dtype))


def shape(x):
    """The shape of ``x`` as a tuple (None for the unknown sizes of a symbolic tensor)."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _floating(x):
    """``x`` as a float array: integers and bools become float32."""
    array = convert_to_tensor(x)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(FLOATX)


def _operand(x):
    """An argument of an elementwise function of several: Python numbers stay
    as they are (NumPy then keeps the dtype of the arrays they meet)."""
    return x if isinstance(x, numbers.Number) else convert_to_tensor(x)


def _keras_float(result, *operands):
    """``result`` as float32 where NumPy made it float64 but no operand is a
    float64 array (e.g. integers meeting a Python float)."""
    result = np.asarray(result)
    if result.dtype == np.float64 and not any(
            isinstance(x, np.ndarray) and x.dtype == np.float64 for x in operands):
        return result.astype(FLOATX)
    return result


def _axis(axis):
    """Keras's axis argument (None, an int or a list or tuple of ints) for NumPy."""
    return tuple(axis) if isinstance(axis, list) else axis


# ---------------------------------------------------------- creating arrays


def zeros(shape, dtype=None):
    """An array of zeros (float32 unless ``dtype``)."""
    return np.zeros(shape, FLOATX if dtype is None else _dtype(dtype))


def ones(shape, dtype=None):
    """An array of ones (float32 unless ``dtype``)."""
    return np.ones(shape, FLOATX if dtype is None else _dtype(dtype))


def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in [start, stop) (``arange(n)``: 0 .. n - 1);
    int32 unless a bound or the step is a float (then float32) or ``dtype``."""
    bounds = [value for value in (start, stop, step) if value is not None]
    if dtype is None:
        floating = any(np.issubdtype(np.asarray(value).dtype, np.floating) for value in bounds)
        dtype = FLOATX if floating else INTX
    if stop is None:
        start, stop = 0, start
    return np.arange(start, stop, 1 if step is None else step, dtype=_dtype(dtype))


# ---------------------------------------------------------------- shapes


def expand_dims(x, axis):
    """``x`` with a new axis of size 1 at ``axis`` (an int or a tuple of ints)."""
    return np.expand_dims(convert_to_tensor(x), _axis(axis))


def squeeze(x, axis=None):
    """``x`` without its axes of size 1 (only ``axis``, which must have size 1, when given)."""
    return np.squeeze(convert_to_tensor(x), _axis(axis))


def reshape(x, newshape):
    """``x`` with shape ``newshape`` (one size may be -1)."""
    return np.reshape(convert_to_tensor(x), newshape)


def transpose(x, axes=None):
    """``x`` with its axes permuted to ``axes`` (default: reversed)."""
    return np.transpose(convert_to_tensor(x), _axis(axes))


def concatenate(xs, axis=0):
    """The arrays ``xs`` joined along the existing ``axis``."""
    return np.concatenate([convert_to_tensor(x) for x in xs], axis=axis)


def stack(x, axis=0):
    """The arrays ``x`` (one shape) stacked along a new ``axis``."""
    return np.stack([convert_to_tensor(item) for item in x], axis=axis)


# ------------------------------------------------------------- reductions


def sum(x, axis=None, keepdims=False):
    """The sum of ``x`` over ``axis`` (all axes by default)."""
    array = convert_to_tensor(x)
    dtype = None
    if array.dtype == np.bool_ or (np.issubdtype(array.dtype, np.integer)
                                   and array.dtype.itemsize < INTX.itemsize):
        dtype = INTX
    elif np.issubdtype(array.dtype, np.integer):
        dtype = array.dtype
    return np.asarray(np.sum(array, axis=_axis(axis), dtype=dtype, keepdims=keepdims))


def mean(x, axis=None, keepdims=False):
    """The mean of ``x`` over ``axis`` (all axes by default); float."""
    return np.asarray(np.mean(_floating(x), axis=_axis(axis), keepdims=keepdims))


def _extremum(function, x, axis, keepdims, initial):
    extra = {} if initial is None else {"initial": initial}
    return np.asarray(function(convert_to_tensor(x), axis=_axis(axis), keepdims=keepdims,
                               **extra))


def max(x, axis=None, keepdims=False, initial=None):
    """The largest element of ``x`` over ``axis``, at least ``initial`` when given."""
    return _extremum(np.max, x, axis, keepdims, initial)


def min(x, axis=None, keepdims=False, initial=None):
    """The smallest element of ``x`` over ``axis``, at most ``initial`` when given."""
    return _extremum(np.min, x, axis, keepdims, initial)


def argmax(x, axis=None, keepdims=False):
    """int32 index of the (first) largest element along ``axis`` (of the
    flattened array by default)."""
    return np.asarray(np.argmax(convert_to_tensor(x), axis=axis, keepdims=keepdims), INTX)


def argmin(x, axis=None, keepdims=False):
    """int32 index of the (first) smallest element along ``axis`` (of the
    flattened array by default)."""
    return np.asarray(np.argmin(convert_to_tensor(x), axis=axis, keepdims=keepdims), INTX)


# ----------------------------------------------------------- elementwise


def abs(x):
    """|x|, elementwise."""
    return np.abs(convert_to_tensor(x))


def square(x):
    """x * x, elementwise."""
    return np.square(convert_to_tensor(x))


def sqrt(x):
    """The square root of ``x``, elementwise; float."""
    return np.sqrt(_floating(x))


def exp(x):
    """e ** x, elementwise; float."""
    return np.exp(_floating(x))


def log(x):
    """The natural logarithm of ``x``, elementwise; float."""
    return np.log(_floating(x))


def clip(x, x_min, x_max):
    """``x`` limited to [x_min, x_max], elementwise."""
    operands = [_operand(value) for value in (x, x_min, x_max)]
    return _keras_float(np.clip(*operands), *operands)


def maximum(x1, x2):
    """The larger of ``x1`` and ``x2``, elementwise (broadcast)."""
    operands = _operand(x1), _operand(x2)
    return _keras_float(np.maximum(*operands), *operands)


def minimum(x1, x2):
    """The smaller of ``x1`` and ``x2``, elementwise (broadcast)."""
    operands = _operand(x1), _operand(x2)
    return _keras_float(np.minimum(*operands), *operands)


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` holds, else ``x2`` (broadcast); with
    ``condition`` alone, the indices of its true elements (a tuple of
    arrays, one per axis, as NumPy's nonzero)."""
    if (x1 is None) != (x2 is None):
        raise ValueError("`x1` and `x2` either both should be `None` or both should have "
                         "non-None value.")
    condition = convert_to_tensor(condition)
    if x1 is None:
        return np.nonzero(condition)
    operands = _operand(x1), _operand(x2)
    return _keras_float(np.where(condition, *operands), *operands)


def matmul(x1, x2):
    """The matrix product of ``x1`` and ``x2`` (batched over leading axes)."""
    return np.matmul(convert_to_tensor(x1), convert_to_tensor(x2))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Integer labels ``x`` as one-hot vectors of length ``num_classes``,
    placed on ``axis`` of the result (last by default); labels outside
    [0, num_classes) give zero vectors.  float32 unless ``dtype``."""
    if sparse:
        raise ValueError("sparse=True is not supported: fastconv tensors are dense")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    labels = convert_to_tensor(x)
    encoded = labels[..., None] == np.arange(num_classes)
    return np.moveaxis(encoded, -1, axis).astype(FLOATX if dtype is None else _dtype(dtype))


# ------------------------------------------------------------ activations


def relu(x):
    """max(x, 0), elementwise; float."""
    return activations.relu(_floating(x))


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise; float."""
    return activations.sigmoid(_floating(x))


def tanh(x):
    """The hyperbolic tangent of ``x``, elementwise; float."""
    return activations.tanh(_floating(x))


def softmax(x, axis=-1):
    """exp(x) normalised to sum to 1 along ``axis`` (an int or a tuple of ints); float."""
    return activations.softmax_with(_axis(axis))(_floating(x))
