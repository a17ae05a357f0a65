"""Convolution layers on NHWC images: Conv2D (HWIO kernels), Conv2DTranspose,
DepthwiseConv2D and SeparableConv2D, with Keras's arguments, weights and
output shapes."""

import numpy as np

from .. import activations, initializers, regularizers
from .._checks import (
    as_pair,
    check_data_format,
    check_dilation,
    check_int,
    check_padding,
    dilated_window,
)
from ..backend import kernels
from ._kernel import KernelLayer
from .base import LAYERS, Layer, check_image_shape, regularizer_for, window_output_shape


class ConvWindow:
    """The window arguments of the 2-D convolution layers: kernel_size,
    strides, padding, data_format (channels_last only) and dilation_rate
    (which, as in Keras, excludes strides > 1)."""

    def init_window(self, kernel_size, strides, padding, data_format, dilation_rate):
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)
        self.dilation_rate = check_dilation(self.strides, dilation_rate)

    def window_output_shape(self, input_shape, channels):
        """(None, out_height, out_width, channels) for NHWC inputs of ``input_shape``."""
        return window_output_shape(self, input_shape,
                                   dilated_window(self.kernel_size, self.dilation_rate),
                                   self.strides, self.padding, channels)

    def window_config(self):
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate)}


@LAYERS.register()
class Conv2D(ConvWindow, KernelLayer):
    """2-D convolution (cross-correlation, as Keras) of NHWC images.

    (batch, height, width, channels) -> (batch, out_height, out_width, filters),
    with kernel (kernel_h, kernel_w, channels // groups, filters) and bias (filters,).

    Args:
        filters: number of output channels.
        kernel_size: int or pair (height, width).
        strides: int or pair.
        padding: 'valid' (no padding) or 'same' (TensorFlow's).
        data_format: None or 'channels_last' (the only layout fastconv runs).
        dilation_rate: int or pair, the spacing of the kernel's taps; above 1
            it needs strides of 1, as in Keras.
        groups: splits the input channels and the filters into this many
            blocks; filters block g sees input channels block g only.
        activation: activation name or None (linear); 'relu' runs fused in the kernel.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializers (names, configs or objects).
        kernel_regularizer, bias_regularizer: regularizers or None.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)
        self.filters = check_int(filters, "filters")
        self.groups = check_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"The number of filters must be evenly divisible by the number "
                             f"of groups. Received: groups={self.groups}, "
                             f"filters={self.filters}.")
        self.init_window(kernel_size, strides, padding, data_format, dilation_rate)

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 4 and input_shape[-1] % self.groups:
            raise ValueError(f"The number of input channels must be evenly divisible by the "
                             f"number of groups. Received groups={self.groups}, but the input "
                             f"has {input_shape[-1]} channels (full input shape is "
                             f"{tuple(input_shape)}).")
        return self.window_output_shape(input_shape, self.filters)

    def kernel_shape(self, input_shape):
        return self.kernel_size + (input_shape[-1] // self.groups, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self.window_config(),
                "groups": self.groups}


def transposed_output_size(size, kernel, stride, padding, output_padding):
    """Keras's output length of a transposed convolution along one axis of
    ``size`` cells (TensorFlow's padding rules; output_padding None or an int)."""
    if padding == "valid":
        extra = max(kernel, stride) - kernel if output_padding is None else output_padding
        return (size - 1) * stride + kernel + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + kernel % 2 + output_padding


@LAYERS.register()
class Conv2DTranspose(ConvWindow, KernelLayer):
    """Transposed 2-D convolution of NHWC images (the input gradient of a
    Conv2D that shares its kernel; 'deconvolution').

    (batch, height, width, channels) -> (batch, out_height, out_width, filters),
    with kernel (kernel_h, kernel_w, filters, channels) and bias (filters,).
    Along each axis the output has (size - 1) * stride + kernel + output_padding
    cells ('valid'; output_padding None: max(kernel, stride) - kernel) or
    size * stride ('same', output_padding None), as Keras.

    Args:
        filters: number of output channels.
        kernel_size: int or pair (height, width).
        strides: int or pair.
        padding: 'valid' or 'same' (TensorFlow's).
        output_padding: None, or int or pair below the strides: cells added
            at the end of each axis.  With 'same' and an even kernel it must
            not be 0 on that axis (no convolution of that output size gives
            the input's size back: fastconv refuses it with a ValueError).
        data_format: None or 'channels_last'.
        dilation_rate: (1, 1) only (others are not supported yet).
        activation: activation name or None (linear).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializers (names, configs or objects).
        kernel_regularizer, bias_regularizer: regularizers or None.
    """

    filters_axis = -2
    fused_activations = ()

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)
        self.filters = check_int(filters, "filters")
        self.init_window(kernel_size, strides, padding, data_format, dilation_rate)
        if self.dilation_rate != (1, 1):
            raise ValueError(f"Conv2DTranspose with dilation_rate={self.dilation_rate} is not "
                             "supported yet: fastconv runs dilation_rate=(1, 1) only")
        self.output_padding = (None if output_padding is None
                               else as_pair(output_padding, "output_padding", allow_zero=True))
        if self.output_padding is not None:
            if any(extra >= stride for extra, stride in zip(self.output_padding, self.strides)):
                raise ValueError(f"`output_padding` must be < `strides`. "
                                 f"output_padding={self.output_padding}, strides={self.strides}")
            if self.padding == "same" and any(
                    kernel % 2 == 0 and extra == 0
                    for kernel, extra in zip(self.kernel_size, self.output_padding)):
                raise ValueError(f"output_padding={self.output_padding} with padding='same' "
                                 f"and the even kernel_size={self.kernel_size} is not "
                                 "supported: give output_padding >= 1 along the even axes, "
                                 "or None")

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        extras = self.output_padding or (None, None)
        return (None,) + tuple(
            transposed_output_size(size, kernel, stride, self.padding, extra)
            for size, kernel, stride, extra in zip(input_shape[1:3], self.kernel_size,
                                                   self.strides, extras)) + (self.filters,)

    def kernel_shape(self, input_shape):
        return self.kernel_size + (self.filters, input_shape[-1])

    # The layer's kernel is that of the Conv2D from its output to its input:
    # the forward pass is that convolution's input gradient given dy = the
    # layer's input, and the backward pass that convolution's forward pass
    # (input gradient) and kernel gradient (with the roles of x and dy swapped).

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        z = self.activation_input(x) if activation.needs_input else y
        # The convolution's input only gives dx its shape: its kernel gradient is skipped.
        kernels().conv2d_backward(np.zeros(z.shape, x.dtype), self.params["kernel"], x,
                                  self.strides, self.padding, compute_dkernel=False,
                                  out=(z, None, None))
        if self.use_bias:
            z += self.params["bias"]
        return activation.forward(z, y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        kernel = self.params["kernel"]
        # That convolution's bias gradient would be the sum of x: not the layer's.
        kernels().conv2d_backward(dy, kernel, x, self.strides, self.padding, compute_dx=False,
                                  out=(None, self.grads["kernel"],
                                       self._buffers.get("unused_dbias", x.shape[-1:],
                                                         x.dtype)))
        if self.use_bias:
            np.sum(dy, axis=(0, 1, 2), out=self.grads["bias"])
        if not need_input_grad:
            return None
        return kernels().conv2d_forward(dy, kernel, None, self.strides, self.padding,
                                        out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self.window_config(),
                "output_padding": (None if self.output_padding is None
                                   else list(self.output_padding))}


@LAYERS.register()
class DepthwiseConv2D(ConvWindow, Layer):
    """Depthwise 2-D convolution of NHWC images: each input channel is
    convolved with its own ``depth_multiplier`` filters.

    (batch, height, width, channels) -> (batch, out_height, out_width,
    channels * depth_multiplier), output channel c * depth_multiplier + m
    coming from input channel c; weights: kernel (kernel_h, kernel_w,
    channels, depth_multiplier), then bias (channels * depth_multiplier,).

    Args:
        kernel_size, strides, padding, data_format, dilation_rate: as Conv2D.
        depth_multiplier: output channels per input channel.
        activation: activation name or None (linear).
        use_bias: whether to add a bias.
        depthwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, bias_regularizer: regularizers or None.
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.init_window(kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer,
                                                      "depthwise_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.depthwise_regularizer = regularizer_for(self, "kernel", depthwise_regularizer)
        self.bias_regularizer = (regularizer_for(self, "bias", bias_regularizer) if use_bias
                                 else None)

    def compute_output_shape(self, input_shape):
        return self.window_output_shape(input_shape, input_shape[-1] * self.depth_multiplier)

    def make_params(self, input_shape, dtype):
        shape = self.kernel_size + (input_shape[-1], self.depth_multiplier)
        params = {"kernel": self.depthwise_initializer(shape, dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((shape[2] * shape[3],), dtype)
        return params

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        kernels().depthwise_conv2d_forward(x, self.params["kernel"], self.params.get("bias"),
                                           self.strides, self.padding, self.dilation_rate, out=y)
        return activation.forward(y, y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        dx = self._buffers.get("dx", x.shape, x.dtype) if need_input_grad else None
        dbias = (self.grads["bias"] if self.use_bias
                 else self._buffers.get("unused_dbias", dy.shape[-1:], x.dtype))
        kernels().depthwise_conv2d_backward(x, self.params["kernel"], dy, self.strides,
                                            self.padding, self.dilation_rate,
                                            compute_dx=need_input_grad,
                                            out=(dx, self.grads["kernel"], dbias))
        return dx

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                **self.window_config(), "activation": self.activation.name,
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}


@LAYERS.register()
class SeparableConv2D(ConvWindow, Layer):
    """Depthwise separable 2-D convolution of NHWC images: a depthwise
    convolution (no bias), then a pointwise 1x1 convolution mixing the
    channels, run on the compiled Conv2D kernel (a ReLU activation fused).

    (batch, height, width, channels) -> (batch, out_height, out_width, filters);
    weights: depthwise_kernel (kernel_h, kernel_w, channels, depth_multiplier),
    pointwise_kernel (1, 1, channels * depth_multiplier, filters), bias (filters,).

    Args:
        filters: output channels.
        kernel_size, strides, padding, data_format, dilation_rate: of the
            depthwise step, as Conv2D.
        depth_multiplier: depthwise output channels per input channel.
        activation: activation name or None (linear).
        use_bias: whether to add a bias.
        depthwise_initializer, pointwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, pointwise_regularizer, bias_regularizer:
            regularizers or None.
    """

    fused_activations = (activations.relu,)

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int(filters, "filters")
        self.init_window(kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer,
                                                      "depthwise_initializer")
        self.pointwise_initializer = initializers.get(pointwise_initializer,
                                                      "pointwise_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.depthwise_regularizer = regularizer_for(self, "depthwise_kernel",
                                                     depthwise_regularizer)
        self.pointwise_regularizer = regularizer_for(self, "pointwise_kernel",
                                                     pointwise_regularizer)
        self.bias_regularizer = (regularizer_for(self, "bias", bias_regularizer) if use_bias
                                 else None)

    def compute_output_shape(self, input_shape):
        return self.window_output_shape(input_shape, self.filters)

    def make_params(self, input_shape, dtype):
        depthwise_shape = self.kernel_size + (input_shape[-1], self.depth_multiplier)
        params = {
            "depthwise_kernel": self.depthwise_initializer(depthwise_shape, dtype),
            "pointwise_kernel": self.pointwise_initializer(
                (1, 1, input_shape[-1] * self.depth_multiplier, self.filters), dtype),
        }
        if self.use_bias:
            params["bias"] = self.bias_initializer((self.filters,), dtype)
        return params

    def _depthwise_output(self, x):
        """The buffer of the depthwise step's output for batch x: the forward
        pass fills it and the backward pass reads it."""
        return self._buffers.get("depthwise", (len(x),) + self.output_shape[1:3]
                                 + (x.shape[3] * self.depth_multiplier,), x.dtype)

    def call(self, x, training, activation):
        middle = self._depthwise_output(x)
        kernels().depthwise_conv2d_forward(x, self.params["depthwise_kernel"], None,
                                           self.strides, self.padding, self.dilation_rate,
                                           out=middle)
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        fused = activation is activations.relu
        kernels().conv2d_forward(middle, self.params["pointwise_kernel"],
                                 self.params.get("bias"), activation="relu" if fused else None,
                                 out=y)
        return y if fused else activation.forward(y, y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        middle = self._depthwise_output(x)
        d_middle = self._buffers.get("d_depthwise", middle.shape, x.dtype)
        dbias = (self.grads["bias"] if self.use_bias
                 else self._buffers.get("unused_dbias", (self.filters,), x.dtype))
        fused = activation is activations.relu
        kernels().conv2d_backward(middle, self.params["pointwise_kernel"], dy,
                                  activation="relu" if fused else None, y=y if fused else None,
                                  out=(d_middle, self.grads["pointwise_kernel"], dbias))
        dx = self._buffers.get("dx", x.shape, x.dtype) if need_input_grad else None
        kernels().depthwise_conv2d_backward(
            x, self.params["depthwise_kernel"], d_middle, self.strides, self.padding,
            self.dilation_rate, compute_dx=need_input_grad,
            out=(dx, self.grads["depthwise_kernel"],
                 self._buffers.get("unused_depthwise_dbias", middle.shape[-1:], x.dtype)))
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self.window_config(),
                "depth_multiplier": self.depth_multiplier, "activation": self.activation.name,
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}
