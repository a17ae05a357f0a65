"""The base of the layers that run on the compiled convolution: Conv2D, Dense
and Conv2DTranspose."""

import numpy as np

from .. import activations, initializers, ops, regularizers
from .._checks import check_apart, check_conv2d_call
from ..backend import kernels
from .base import Layer, regularizer_for


class KernelLayer(Layer):
    """Shared by Conv2D and Dense: y = activation(convolve(x, kernel) + bias),
    run on the compiled kernels (a ReLU activation fused into them).

    Subclasses give ``kernel_shape`` and may view arrays as NHWC images and the
    kernel as HWIO (``as_images``, ``as_hwio``), as Dense does.  Conv2DTranspose
    keeps the arguments and weights but runs passes of its own.
    """

    strides = (1, 1)
    padding = "valid"
    dilation_rate = (1, 1)
    groups = 1
    filters_axis = -1  # the kernel's axis of output channels, the bias's length
    fused_activations = (activations.relu,)

    def __init__(self, activation, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizer_for(self, "kernel", kernel_regularizer)
        self.bias_regularizer = (regularizer_for(self, "bias", bias_regularizer) if use_bias
                                 else None)

    def kernel_shape(self, input_shape):
        raise NotImplementedError

    def as_images(self, array):
        return array

    def as_hwio(self, kernel):
        return kernel

    def make_params(self, input_shape, dtype):
        shape = self.kernel_shape(input_shape)
        params = {"kernel": self.kernel_initializer(shape, dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((shape[self.filters_axis],), dtype)
        return params

    def _conv2d_call(self, images, kernel):
        """The Conv2DCall of this layer's convolution of ``images`` (NHWC)
        with ``kernel`` (HWIO): checked on the first call for their shapes,
        dtype and the layer's arguments, reused after."""
        arguments = (self.strides, self.padding, self.dilation_rate, self.groups)
        return self._plan((images.shape[1:], images.dtype, kernel.shape, arguments),
                          lambda: check_conv2d_call(images, kernel, *arguments)[2])

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        fused = activation is activations.relu
        # The activation's input z is kept for backward where its derivative needs it.
        z = self.activation_input(x) if activation.needs_input else y
        images, kernel = self.as_images(x), self.as_hwio(self.params["kernel"])
        bias, out = self.params.get("bias"), self.as_images(z)
        if kernels() is ops:  # the layer's own arrays: checked once, by _conv2d_call
            check_apart(out, "out", (images,))  # x may be this layer's output buffer
            ops._conv2d_forward(images, kernel, bias, out, self._conv2d_call(images, kernel), fused)
        else:
            kernels().conv2d_forward(images, kernel, bias, self.strides, self.padding,
                                     activation="relu" if fused else None, out=out,
                                     dilation_rate=self.dilation_rate, groups=self.groups)
        return y if fused else activation.forward(z, y)

    def call_with_affine(self, x, scale, shift):
        """(x convolved with the kernel + bias) * scale + shift per output
        channel, in one pass over the output: the kernel and bias are folded
        first (what a BatchNormalization after a linear convolution does at
        inference).  The layer's activation must be linear."""
        kernel = self._buffers.get("folded_kernel", self.params["kernel"].shape, x.dtype)
        np.multiply(self.params["kernel"], scale, out=kernel)
        bias = shift if not self.use_bias else self.params["bias"] * scale + shift
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        kernels().conv2d_forward(self.as_images(x), self.as_hwio(kernel), bias.astype(x.dtype),
                                 self.strides, self.padding, out=self.as_images(y),
                                 dilation_rate=self.dilation_rate, groups=self.groups)
        return y

    def activation_input(self, x):
        """The pre-activation output convolve(x, kernel) + bias (a buffer)."""
        return self._buffers.get("z", (len(x),) + self.output_shape[1:], x.dtype)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        kernel = self.as_hwio(self.params["kernel"])
        dx = self._buffers.get("dx", x.shape, x.dtype) if need_input_grad else None
        dbias = (self.grads["bias"] if self.use_bias
                 else self._buffers.get("unused_dbias", kernel.shape[-1:], x.dtype))
        fused = activation is activations.relu
        images, dy_images = self.as_images(x), self.as_images(np.ascontiguousarray(dy))
        y_images = self.as_images(y) if fused else None
        dx_images = None if dx is None else self.as_images(dx)
        dkernel = self.as_hwio(self.grads["kernel"])
        if kernels() is ops:
            if dx_images is not None:
                check_apart(dx_images, "out[0] (dx)", (images, dy_images))
            ops._conv2d_backward(images, kernel, dy_images, self._conv2d_call(images, kernel),
                                 y_images, dx_images, dkernel, dbias)
        else:
            kernels().conv2d_backward(images, kernel, dy_images, self.strides, self.padding,
                                      compute_dx=need_input_grad,
                                      activation="relu" if fused else None, y=y_images,
                                      out=(dx_images, dkernel, dbias),
                                      dilation_rate=self.dilation_rate, groups=self.groups)
        return dx

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}
