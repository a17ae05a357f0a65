"""Activation functions and their derivatives, by their Keras names.

An activation maps a float array to one of the same shape and dtype
(softmax works along the last axis).  Layers keep only its output, so each
derivative is written in terms of the output y = f(x):

    forward(x, out) -> y         out may be x itself (in place)
    backward(y, dy, out) -> dx   dL/dx given dy = dL/dy; out must not share
                                 memory with y or dy

'linear' returns its input (forward) and dy (backward) without copying.
Calling an activation, ``relu(x)``, returns a new array.
"""

from typing import Callable, NamedTuple

import numpy as np


class ActivationFunction(NamedTuple):
    name: str
    forward: Callable
    backward: Callable

    def __call__(self, x):
        x = np.asarray(x)
        x = x.astype(np.result_type(x.dtype, np.float32))  # a new float array
        return self.forward(x, x)

    def __repr__(self):
        return f"<activation {self.name}>"


def _relu(x, out):
    return np.maximum(x, 0, out=out)


def _relu_backward(y, dy, out):
    np.greater(y, 0, out=out)  # the ReLU mask, as 0.0 / 1.0
    return np.multiply(out, dy, out=out)


def _sigmoid(x, out):
    # 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2, which cannot overflow.
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _sigmoid_backward(y, dy, out):
    np.subtract(1, y, out=out)
    out *= y
    out *= dy
    return out


def _tanh(x, out):
    return np.tanh(x, out=out)


def _tanh_backward(y, dy, out):
    np.square(y, out=out)
    np.subtract(1, out, out=out)
    out *= dy
    return out


def _softmax(x, out):
    np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def _softmax_backward(y, dy, out):
    # dx = y * (dy - sum(dy * y)) along the last axis.
    np.multiply(y, dy, out=out)
    projection = out.sum(axis=-1, keepdims=True)
    np.subtract(dy, projection, out=out)
    out *= y
    return out


def _linear(x, out):
    return x


def _linear_backward(y, dy, out):
    return dy


relu = ActivationFunction("relu", _relu, _relu_backward)
sigmoid = ActivationFunction("sigmoid", _sigmoid, _sigmoid_backward)
tanh = ActivationFunction("tanh", _tanh, _tanh_backward)
softmax = ActivationFunction("softmax", _softmax, _softmax_backward)
linear = ActivationFunction("linear", _linear, _linear_backward)

ALL = {function.name: function for function in (relu, sigmoid, tanh, softmax, linear)}


def get(identifier):
    """The activation named ``identifier`` ('relu', ...); None means 'linear'."""
    if identifier is None:
        return linear
    if isinstance(identifier, ActivationFunction):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"activation must be a name such as 'relu' or None, got {identifier!r}")
    if identifier not in ALL:
        raise ValueError(f"unknown activation {identifier!r}; valid activations: "
                         f"{', '.join(repr(name) for name in ALL)}")
    return ALL[identifier]
