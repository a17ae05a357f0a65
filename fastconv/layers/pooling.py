"""Pooling layers on NHWC images."""

from .._checks import as_pair, check_padding
from ..backend import kernels
from .base import LAYERS, Layer, window_output_shape


@LAYERS.register()
class MaxPooling2D(Layer):
    """2-D max pooling of NHWC images: (batch, height, width, channels) ->
    (batch, out_height, out_width, channels).

    Args:
        pool_size: int or pair, the window.
        strides: int or pair; None means pool_size.
        padding: 'valid' or 'same'.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        return window_output_shape(self, input_shape, self.pool_size, self.strides,
                                    self.padding, input_shape[-1])

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        return kernels().max_pool2d_forward(x, self.pool_size, self.strides, self.padding, out=y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        return kernels().max_pool2d_backward(x, dy, self.pool_size, self.strides, self.padding,
                                             out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}
