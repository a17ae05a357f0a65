"""Convolution layers on NHWC images with HWIO kernels."""

from .._checks import as_pair, check_int, check_padding
from ._kernel import KernelLayer
from .base import LAYERS, window_output_shape


@LAYERS.register()
class Conv2D(KernelLayer):
    """2-D convolution (cross-correlation, as Keras) of NHWC images.

    (batch, height, width, channels) -> (batch, out_height, out_width, filters),
    with kernel (kernel_h, kernel_w, channels, filters) and bias (filters,).

    Args:
        filters: number of output channels.
        kernel_size: int or pair (height, width).
        strides: int or pair.
        padding: 'valid' (no padding) or 'same' (TensorFlow's).
        activation: activation name or None (linear); 'relu' runs fused in the kernel.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializers (names, configs or objects).
        kernel_regularizer, bias_regularizer: regularizers or None.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)
        self.filters = check_int(filters, "filters")
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        return window_output_shape(self, input_shape, self.kernel_size, self.strides,
                                    self.padding, self.filters)

    def kernel_shape(self, input_shape):
        return self.kernel_size + (input_shape[-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding}
