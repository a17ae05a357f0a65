"""Regularization layers: Dropout."""

import numpy as np

from .. import utils
from .._checks import check_number
from .base import LAYERS, Layer


@LAYERS.register()
class Dropout(Layer):
    """Inverted dropout: in training, zeroes each input with probability
    ``rate`` and scales the others by 1 / (1 - rate); identity in inference."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number(rate, "rate", 0, 1, high_open=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training, activation):
        if not training or self.rate == 0:
            return x
        mask = self._buffers.get("mask", x.shape, x.dtype)
        utils.random_generator().random(dtype=x.dtype, out=mask)
        np.greater_equal(mask, self.rate, out=mask)  # keep with probability 1 - rate
        mask *= 1 / (1 - self.rate)
        return np.multiply(x, mask, out=self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad or self.rate == 0:
            return dy if need_input_grad else None
        mask = self._buffers.get("mask", x.shape, x.dtype)
        return np.multiply(dy, mask, out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
