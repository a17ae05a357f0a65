"""Layers that only rearrange their input: Flatten."""

import math

from .base import LAYERS, Layer


@LAYERS.register()
class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...), in row-major order:
    an NHWC image flattens in (height, width, channels) order, as in Keras."""

    def compute_output_shape(self, input_shape):
        return (None, math.prod(input_shape[1:]))

    def call(self, x, training, activation):
        return x.reshape(len(x), math.prod(x.shape[1:]))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy.reshape(x.shape) if need_input_grad else None
