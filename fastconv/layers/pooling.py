"""Pooling layers on NHWC images."""

import numpy as np

from .. import ops
from .._checks import as_pair, check_apart, check_data_format, check_padding, check_pool
from ..backend import kernels
from .base import LAYERS, Layer, window_output_shape


class Pooling2D(Layer):
    """2-D pooling of NHWC images: (batch, height, width, channels) ->
    (batch, out_height, out_width, channels), run on the kernels
    ``<operation>_forward`` / ``<operation>_backward`` of the backend.

    Args:
        pool_size: int or pair, the window.
        strides: int or pair; None means pool_size.
        padding: 'valid' or 'same' (TensorFlow's).
        data_format: None or 'channels_last' (the only layout fastconv runs).
    """

    operation = None  # e.g. 'max_pool2d'

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides")
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        return window_output_shape(self, input_shape, self.pool_size, self.strides,
                                   self.padding, input_shape[-1])

    def _pool_geometry(self, x):
        """The Geometry of this pooling of ``x``: checked on the first call for
        its shape, dtype and the layer's arguments, reused after."""
        arguments = (self.pool_size, self.strides, self.padding)
        return self._plan((x.shape[1:], x.dtype, arguments),
                          lambda: check_pool(x, *arguments)[2])

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        if kernels() is ops:  # the layer's own arrays: checked once, by _pool_geometry
            check_apart(y, "out", (x,))  # x may be this layer's output buffer
            trusted = getattr(ops, f"_{self.operation}_forward")
            return trusted(x, y, self.pool_size, self._pool_geometry(x))
        forward = getattr(kernels(), f"{self.operation}_forward")
        return forward(x, self.pool_size, self.strides, self.padding, out=y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", x.shape, x.dtype)
        if kernels() is ops:
            dy = np.ascontiguousarray(dy)
            check_apart(dx, "out", (x, dy))
            trusted = getattr(ops, f"_{self.operation}_backward")
            return trusted(x, dy, dx, self.pool_size, self._pool_geometry(x))
        backward = getattr(kernels(), f"{self.operation}_backward")
        return backward(x, dy, self.pool_size, self.strides, self.padding, out=dx)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format}


@LAYERS.register()
class MaxPooling2D(Pooling2D):
    """The maximum of each window (see Pooling2D for the arguments)."""

    operation = "max_pool2d"


@LAYERS.register()
class AveragePooling2D(Pooling2D):
    """The mean of each window (see Pooling2D for the arguments); with
    padding='same' a window averages only its cells inside the input, as
    TensorFlow and Keras do."""

    operation = "avg_pool2d"
