"""Activation layers with constants of their own: ReLU, LeakyReLU, ELU, Softmax.

Each is an ``Activation`` layer whose activation function carries the
layer's constants, so the base class computes its derivative, and a model
ending in ``Softmax()`` computes its loss from the logits as with
``activation='softmax'``.
"""

import warnings

from .. import activations
from .._checks import check_int, check_number
from .base import LAYERS
from .core import Activation


class _ConstantActivation(Activation):
    """An ``Activation`` layer whose config lists its constants instead of the
    activation's name."""

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return config


@LAYERS.register()
class ReLU(_ConstantActivation):
    """min(x, max_value) where x > threshold, else negative_slope * (x - threshold).

    Args:
        max_value: number >= 0, or None (no maximum).
        negative_slope: number >= 0, the slope below the threshold.
        threshold: number >= 0.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        self.max_value = None if max_value is None else check_number(max_value, "max_value", 0)
        self.negative_slope = check_number(negative_slope, "negative_slope", 0)
        self.threshold = check_number(threshold, "threshold", 0)
        super().__init__(activations.relu_with(self.negative_slope, self.max_value,
                                               self.threshold), **kwargs)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


@LAYERS.register()
class LeakyReLU(_ConstantActivation):
    """x where x >= 0, else negative_slope * x.

    Args:
        negative_slope: number >= 0 (Keras 2's ``alpha=`` is accepted with a
            DeprecationWarning).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          DeprecationWarning, stacklevel=2)
        self.negative_slope = check_number(negative_slope, "negative_slope", 0)
        super().__init__(activations.leaky_relu_with(self.negative_slope), **kwargs)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@LAYERS.register()
class ELU(_ConstantActivation):
    """x where x > 0, else alpha * (exp(x) - 1).

    Args:
        alpha: number >= 0 (Keras documents alpha > 0 and does not check it).
    """

    def __init__(self, alpha=1.0, **kwargs):
        self.alpha = check_number(alpha, "alpha", 0)
        super().__init__(activations.elu_with(self.alpha), **kwargs)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@LAYERS.register()
class Softmax(_ConstantActivation):
    """exp(x) / sum(exp(x)) along ``axis``.

    Args:
        axis: int, or a tuple of ints, the axes normalised (never the batch axis 0).
    """

    def __init__(self, axis=-1, **kwargs):
        if isinstance(axis, (tuple, list)):
            if not axis:
                raise ValueError("axis must be an int or a non-empty tuple of ints, got ()")
            self.axis = tuple(check_int(a, "axis", minimum=-2**31) for a in axis)
        else:
            self.axis = check_int(axis, "axis", minimum=-2**31)
        super().__init__(activations.softmax_with(self.axis), **kwargs)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        valid = all(-rank <= a < rank and a % rank != 0 for a in axes)
        if not valid or len({a % rank for a in axes}) != len(axes):
            raise ValueError(f"Softmax layer {self.name!r}: axis={self.axis} must name "
                             f"distinct non-batch axes of inputs of shape {tuple(input_shape)}")
        return tuple(input_shape)

    def get_config(self):
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {**super().get_config(), "axis": axis}
