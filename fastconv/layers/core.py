"""Core layers: Dense and Activation."""

from .. import activations
from .._checks import check_int
from ._kernel import KernelLayer
from .base import LAYERS, Layer


@LAYERS.register()
class Dense(KernelLayer):
    """Fully connected layer on the last axis: (batch, ..., in_features) ->
    (batch, ..., units), y = activation(x @ kernel + bias), kernel
    (in_features, units), bias (units,).

    It runs as a 1x1 convolution on the same compiled kernels
    as Conv2D, so a model uses one thread pool (NumPy's BLAS threads would
    fight the kernels' OpenMP threads for the cores).

    Args:
        units: output features.
        activation: activation name or None (linear).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializers (names, configs or objects).
        kernel_regularizer, bias_regularizer: regularizers or None.
        activity_regularizer: a regularizer of the output, or None.
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)
        self.units = check_int(units, "units")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense layer {self.name!r} needs inputs with a feature axis, "
                             f"got shape {input_shape}")
        return tuple(input_shape[:-1]) + (self.units,)

    def kernel_shape(self, input_shape):
        return (input_shape[-1], self.units)

    def as_images(self, array):
        """Each sample as a 1x1 image."""
        return array.reshape(-1, 1, 1, array.shape[-1])

    def as_hwio(self, kernel):
        return kernel.reshape((1, 1) + kernel.shape)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@LAYERS.register()
class Activation(Layer):
    """Applies an activation ('relu', 'softmax', ...) to its input."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training, activation):
        return activation.forward(x, self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name}
