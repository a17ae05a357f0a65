"""Regularization layers: Dropout, SpatialDropout2D, GaussianNoise and
GaussianDropout.  Each is the identity in inference; in training it draws
its noise from fastconv's generator (``utils.set_random_seed``)."""

import math

import numpy as np

from .. import utils
from .._checks import check_number
from .base import LAYERS, Layer, check_image_shape


class _NoiseLayer(Layer):
    """A layer that only perturbs its input in training."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@LAYERS.register()
class Dropout(_NoiseLayer):
    """Inverted dropout: in training, zeroes each input with probability
    ``rate`` and scales the others by 1 / (1 - rate); identity in inference."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number(rate, "rate", 0, 1, high_open=True)

    def mask_shape(self, shape):
        """The shape of the mask, broadcast against inputs of ``shape``."""
        return shape

    def call(self, x, training, activation):
        self._dropped = training and self.rate > 0
        if not self._dropped:
            return x
        mask = self._buffers.get("mask", self.mask_shape(x.shape), x.dtype)
        utils.random_generator().random(dtype=x.dtype, out=mask)
        np.greater_equal(mask, self.rate, out=mask)  # keep with probability 1 - rate
        mask *= 1 / (1 - self.rate)
        return np.multiply(x, mask, out=self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad or not self._dropped:
            return dy if need_input_grad else None
        mask = self._buffers.get("mask", self.mask_shape(x.shape), x.dtype)
        return np.multiply(dy, mask, out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@LAYERS.register()
class SpatialDropout2D(Dropout):
    """Dropout of whole channels of NHWC images: each (image, channel) is
    zeroed with probability ``rate``, the rest scaled by 1 / (1 - rate)."""

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return tuple(input_shape)

    def mask_shape(self, shape):
        return (shape[0], 1, 1, shape[3])


@LAYERS.register()
class GaussianNoise(_NoiseLayer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` (>= 0) in training."""

    def __init__(self, stddev, **kwargs):
        super().__init__(**kwargs)
        self.stddev = check_number(stddev, "stddev", 0)

    def call(self, x, training, activation):
        if not training or self.stddev == 0:
            return x
        y = self._buffers.get("y", x.shape, x.dtype)
        utils.random_generator().standard_normal(dtype=x.dtype, out=y)
        y *= self.stddev
        y += x
        return y

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


@LAYERS.register()
class GaussianDropout(_NoiseLayer):
    """Multiplies by Gaussian noise of mean 1 and standard deviation
    sqrt(rate / (1 - rate)) in training; ``rate`` in [0, 1)."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number(rate, "rate", 0, 1, high_open=True)

    def call(self, x, training, activation):
        self._noisy = training and self.rate > 0
        if not self._noisy:
            return x
        noise = self._buffers.get("noise", x.shape, x.dtype)
        utils.random_generator().standard_normal(dtype=x.dtype, out=noise)
        noise *= math.sqrt(self.rate / (1 - self.rate))
        noise += 1
        return np.multiply(x, noise, out=self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad or not self._noisy:
            return dy if need_input_grad else None
        noise = self._buffers.get("noise", x.shape, x.dtype)
        return np.multiply(dy, noise, out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
