"""Global pooling layers on NHWC images: one value per image and channel."""

import numpy as np

from .base import LAYERS, Layer, check_image_shape


class _GlobalPooling2D(Layer):
    """(batch, height, width, channels) -> (batch, channels), or
    (batch, 1, 1, channels) with ``keepdims``."""

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return (None, 1, 1, input_shape[3]) if self.keepdims else (None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


@LAYERS.register()
class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over the image."""

    def call(self, x, training, activation):
        return x.mean(axis=(1, 2), keepdims=self.keepdims)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", x.shape, x.dtype)
        dx[...] = dy.reshape(len(x), 1, 1, x.shape[3])
        dx *= 1 / (x.shape[1] * x.shape[2])
        return dx


@LAYERS.register()
class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum of each channel over the image; its gradient is shared
    equally by the pixels that tie for the maximum (as TensorFlow and JAX)."""

    def call(self, x, training, activation):
        return x.max(axis=(1, 2), keepdims=self.keepdims)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        per_image = (len(x), 1, 1, x.shape[3])
        dx = self._buffers.get("dx", x.shape, x.dtype)
        np.equal(x, y.reshape(per_image), out=dx)  # 1.0 at the maxima
        ties = dx.sum(axis=(1, 2), keepdims=True)
        dx *= dy.reshape(per_image) / ties
        return dx
