"""Activation functions and their derivatives, by their Keras names.

An activation maps a float array to one of the same shape and dtype
(softmax works along the last axis):

    forward(x, out) -> y            out may be x itself (in place)
    backward(y, dy, out, x) -> dx   dL/dx given the output y = f(x) and
                                    dy = dL/dy; out must not share memory
                                    with y, dy or x

Layers keep the output y, so most derivatives are written in terms of y and
get x=None.  The few whose derivative needs the input itself ('gelu',
'silu') declare ``needs_input``: their layer keeps the array the activation
was applied to and passes it as x.

'linear' returns its input (forward) and dy (backward) without copying.
Calling an activation, ``relu(x)``, returns a new array.  ``relu_with``,
``leaky_relu_with``, ``elu_with`` and ``softmax_with`` make the variants with
other constants that the advanced activation layers use.
"""

import functools
import math
from typing import Callable, NamedTuple

import numpy as np

from ._registry import Registry


class ActivationFunction(NamedTuple):
    name: str
    forward: Callable
    backward: Callable
    needs_input: bool = False  # backward reads x, the activation's input

    def __call__(self, x):
        x = np.asarray(x)
        x = x.astype(np.result_type(x.dtype, np.float32))  # a new float array
        return self.forward(x, x)

    def __repr__(self):
        return f"<activation {self.name}>"


ACTIVATIONS = Registry("activation", ActivationFunction)


def _register(forward, backward, needs_input=False, aliases=()):
    """Registers the activation named after ``forward`` (minus its underscore)."""
    function = ActivationFunction(forward.__name__.lstrip("_"), forward, backward, needs_input)
    for name in (function.name,) + aliases:
        ACTIVATIONS.add(name, function)
    return function


def _derivative_where(dy, out, condition, inside, outside):
    """dy * (inside where condition, else outside): scalars or arrays."""
    np.copyto(out, outside)
    np.copyto(out, inside, where=condition)
    out *= dy
    return out


# ------------------------------------------------------------ ReLU family


def _relu(x, out):
    return np.maximum(x, 0, out=out)


def _relu_backward(y, dy, out, x=None):
    np.greater(y, 0, out=out)  # the ReLU mask, as 0.0 / 1.0
    return np.multiply(out, dy, out=out)


def _leaky_relu(x, out, negative_slope=0.2):
    negative = np.minimum(x, 0)
    negative *= negative_slope
    np.maximum(x, 0, out=out)
    out += negative
    return out


def _leaky_relu_backward(y, dy, out, x=None, negative_slope=0.2):
    # y > 0 exactly where x > 0, for any negative_slope >= 0.
    return _derivative_where(dy, out, y > 0, 1, negative_slope)


def _thresholded_relu(x, out, negative_slope, max_value, threshold):
    """Keras's relu(x, negative_slope, max_value, threshold): min(x, max_value)
    where x > threshold, else negative_slope * (x - threshold)."""
    above = x > threshold
    below = np.subtract(x, threshold, dtype=x.dtype)
    below *= negative_slope
    np.copyto(out, x)
    if max_value is not None:
        np.minimum(out, max_value, out=out)
    np.copyto(out, below, where=~above)
    return out


def _thresholded_relu_backward(y, dy, out, x, negative_slope, max_value, threshold):
    above = x > threshold
    linear_part = above if max_value is None else above & (x < max_value)
    np.copyto(out, negative_slope)
    np.copyto(out, 0, where=above)
    np.copyto(out, 1, where=linear_part)
    out *= dy
    return out


def relu_with(negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ``relu(x, negative_slope, max_value, threshold)`` as an
    activation; the plain 'relu' for the defaults, 'leaky_relu' for a slope alone."""
    if max_value is None and threshold == 0:
        return relu if negative_slope == 0 else leaky_relu_with(negative_slope)
    constants = dict(negative_slope=negative_slope, max_value=max_value, threshold=threshold)
    return ActivationFunction("relu", functools.partial(_thresholded_relu, **constants),
                              functools.partial(_thresholded_relu_backward, **constants),
                              needs_input=True)


def leaky_relu_with(negative_slope):
    """x where x >= 0, else negative_slope * x (negative_slope >= 0)."""
    return ActivationFunction("leaky_relu",
                              functools.partial(_leaky_relu, negative_slope=negative_slope),
                              functools.partial(_leaky_relu_backward,
                                                negative_slope=negative_slope))


# ------------------------------------------------------------- ELU family

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _elu(x, out, alpha=1.0, scale=1.0):
    """scale * (x where x > 0, else alpha * (exp(x) - 1))."""
    negative = np.expm1(np.minimum(x, 0))
    negative *= alpha
    np.maximum(x, 0, out=out)
    out += negative
    if scale != 1:
        out *= scale
    return out


def _elu_backward(y, dy, out, x=None, alpha=1.0, scale=1.0):
    # For x <= 0: d/dx scale * alpha * (exp(x) - 1) = y + scale * alpha (alpha >= 0).
    return _derivative_where(dy, out, y > 0, scale, y + scale * alpha)


def _selu(x, out):
    return _elu(x, out, _SELU_ALPHA, _SELU_SCALE)


def _selu_backward(y, dy, out, x=None):
    return _elu_backward(y, dy, out, alpha=_SELU_ALPHA, scale=_SELU_SCALE)


def elu_with(alpha):
    """x where x > 0, else alpha * (exp(x) - 1) (alpha >= 0)."""
    return ActivationFunction("elu", functools.partial(_elu, alpha=alpha),
                              functools.partial(_elu_backward, alpha=alpha))


# ------------------------------------------------------- sigmoid family


def _sigmoid(x, out):
    # 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2, which cannot overflow.
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _sigmoid_backward(y, dy, out, x=None):
    np.subtract(1, y, out=out)
    out *= y
    out *= dy
    return out


def _hard_sigmoid(x, out):
    """Keras 3's: relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)."""
    np.multiply(x, 1 / 6, out=out)
    out += 0.5
    return np.clip(out, 0, 1, out=out)


def _hard_sigmoid_backward(y, dy, out, x=None):
    return _derivative_where(dy, out, (y > 0) & (y < 1), 1 / 6, 0)


def _silu(x, out):
    """x * sigmoid(x) (also called swish)."""
    gate = _sigmoid(x, np.empty_like(x))
    return np.multiply(x, gate, out=out)


def _silu_backward(y, dy, out, x):
    # sigmoid(x) * (1 + x * (1 - sigmoid(x))) = sigmoid(x) + y * (1 - sigmoid(x))
    gate = _sigmoid(x, np.empty_like(x))
    np.subtract(1, gate, out=out)
    out *= y
    out += gate
    out *= dy
    return out


def _softplus(x, out):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), which cannot overflow."""
    tail = np.negative(np.abs(x))
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    np.maximum(x, 0, out=out)
    out += tail
    return out


def _softplus_backward(y, dy, out, x=None):
    # sigmoid(x) = 1 - exp(-softplus(x))
    np.negative(y, out=out)
    np.expm1(out, out=out)
    np.negative(out, out=out)
    out *= dy
    return out


def _softsign(x, out):
    """x / (1 + |x|)."""
    denominator = np.abs(x)
    denominator += 1
    return np.divide(x, denominator, out=out)


def _softsign_backward(y, dy, out, x=None):
    # 1 / (1 + |x|)^2 = (1 - |y|)^2
    np.abs(y, out=out)
    np.subtract(1, out, out=out)
    np.square(out, out=out)
    out *= dy
    return out


# ------------------------------------------------------------------ GELU


def _erf(x):
    """The error function of a float64 array, elementwise, to about 1e-15
    (NumPy has none).

    |x| <= 2.5: erf(x) = 2/sqrt(pi) exp(-x^2) sum_n x (2x^2)^n / (1*3*...*(2n+1)),
    a series of positive terms (no cancellation; 36 terms suffice).  Beyond:
    1 - erfc(|x|), with sign, erfc(t) from its continued fraction
    exp(-t^2)/sqrt(pi) / (t + (1/2)/(t + 1/(t + (3/2)/(t + ...)))), 40 levels."""
    result = np.empty_like(x)
    small = np.abs(x) <= 2.5
    t = x[small]
    twice_square = 2 * t * t
    term = t.copy()
    total = t.copy()
    for n in range(1, 36):
        term *= twice_square / (2 * n + 1)
        total += term
    result[small] = 2 / math.sqrt(math.pi) * np.exp(-t * t) * total
    large = ~small
    t = np.abs(x[large])
    fraction = t.copy()
    for k in range(40, 0, -1):
        fraction = t + (k / 2) / fraction
    with np.errstate(over="ignore"):  # t * t overflows for t > 1e154; exp(-inf) = 0
        tail = np.exp(-t * t)
    result[large] = np.sign(x[large]) * (1 - tail / math.sqrt(math.pi) / fraction)
    return result


def _normal_cdf(x):
    """P(X <= x) for X ~ N(0, 1), computed in float64."""
    return 0.5 * (1 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2)))


def _gelu(x, out):
    """Keras's 'gelu' (approximate=False): x * P(X <= x), X ~ N(0, 1)."""
    return np.multiply(x, _normal_cdf(x), out=out, casting="same_kind")


def _gelu_backward(y, dy, out, x):
    # P(X <= x) + x * pdf(x)
    x64 = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):  # x * x overflows for |x| > 1e154; exp(-inf) = 0
        density = np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    derivative = _normal_cdf(x64) + x64 * density
    return np.multiply(dy, derivative, out=out, casting="same_kind")


# ------------------------------------------------------------------ others


def _tanh(x, out):
    return np.tanh(x, out=out)


def _tanh_backward(y, dy, out, x=None):
    np.square(y, out=out)
    np.subtract(1, out, out=out)
    out *= dy
    return out


def _exponential(x, out):
    return np.exp(x, out=out)


def _exponential_backward(y, dy, out, x=None):
    return np.multiply(y, dy, out=out)


def _softmax(x, out, axis=-1):
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def _softmax_backward(y, dy, out, x=None, axis=-1):
    # dx = y * (dy - sum(dy * y)) along the axis.
    np.multiply(y, dy, out=out)
    projection = out.sum(axis=axis, keepdims=True)
    np.subtract(dy, projection, out=out)
    out *= y
    return out


def softmax_with(axis):
    """Softmax along ``axis`` (an int or a tuple of ints); the plain
    'softmax' for the last axis."""
    if axis == -1:
        return softmax
    return ActivationFunction("softmax", functools.partial(_softmax, axis=axis),
                              functools.partial(_softmax_backward, axis=axis))


def _linear(x, out):
    return x


def _linear_backward(y, dy, out, x=None):
    return dy


relu = _register(_relu, _relu_backward)
sigmoid = _register(_sigmoid, _sigmoid_backward)
tanh = _register(_tanh, _tanh_backward)
softmax = _register(_softmax, _softmax_backward)
linear = _register(_linear, _linear_backward)
elu = _register(_elu, _elu_backward)
selu = _register(_selu, _selu_backward)
gelu = _register(_gelu, _gelu_backward, needs_input=True)
silu = _register(_silu, _silu_backward, needs_input=True, aliases=("swish",))
swish = silu
softplus = _register(_softplus, _softplus_backward)
softsign = _register(_softsign, _softsign_backward)
hard_sigmoid = _register(_hard_sigmoid, _hard_sigmoid_backward)
leaky_relu = _register(_leaky_relu, _leaky_relu_backward)
exponential = _register(_exponential, _exponential_backward)


def get(identifier):
    """The activation named ``identifier`` ('relu', ...), given by a config dict
    or an activation itself; None means 'linear'."""
    if identifier is None:
        return linear
    return ACTIVATIONS.get(identifier)


def serialize(activation):
    """The activation's name, as Keras writes built-in activations in configs."""
    return activation.name


def deserialize(config):
    """The activation named by ``config`` (a name or a ``{'class_name': ...}`` dict)."""
    return ACTIVATIONS.get(config)
