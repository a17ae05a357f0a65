"""Normalization layers: BatchNormalization."""

import numpy as np

from .. import initializers, regularizers
from .._checks import check_int, check_number
from .base import LAYERS, Layer, regularizer_for


@LAYERS.register()
class BatchNormalization(Layer):
    """Normalizes each feature (index along ``axis``) over the other axes.

    Training (``forward(x, training=True)`` on a trainable layer): with the
    batch's mean and biased variance, y = gamma * (x - mean) /
    sqrt(variance + epsilon) + beta, and moving_mean and moving_variance
    move to the batch's: moving = moving * momentum + batch * (1 - momentum).
    Inference, or a layer with ``trainable=False`` (as in Keras), or an
    empty batch: the same with the moving statistics, which stay as they are.

    Weights, all of shape (features,), in Keras's order: gamma (if scale),
    beta (if center), moving_mean, moving_variance (the last two never
    trained).  Inputs of any rank >= 2: (batch, features), NHWC images
    (axis=-1, per channel), ...

    Args:
        axis: the feature axis (not the batch axis 0).
        momentum: in [0, 1], of the moving statistics.
        epsilon: > 0, added to the variance.
        center, scale: whether to add beta and multiply by gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers (names, configs or objects).
        beta_regularizer, gamma_regularizer: regularizers or None.
        synchronized: only False (statistics across devices need TensorFlow).
    """

    non_trainable_params = ("moving_mean", "moving_variance")

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = check_int(axis, "axis", minimum=-2**31)
        self.momentum = check_number(momentum, "momentum", 0, 1)
        self.epsilon = check_number(epsilon, "epsilon", 0, low_open=True)
        self.center = bool(center)
        self.scale = bool(scale)
        if synchronized:
            raise ValueError("Argument synchronized=True is only supported with the TensorFlow "
                             "backend (statistics across devices)")
        self.beta_initializer = initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = initializers.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = initializers.get(moving_mean_initializer,
                                                        "moving_mean_initializer")
        self.moving_variance_initializer = initializers.get(moving_variance_initializer,
                                                            "moving_variance_initializer")
        self.gamma_regularizer = (regularizer_for(self, "gamma", gamma_regularizer)
                                  if self.scale else None)
        self.beta_regularizer = (regularizer_for(self, "beta", beta_regularizer)
                                 if self.center else None)
        self._statistics = None  # (mean, 1 / std, from the batch?) of the last training forward

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        if not (-rank <= self.axis < rank and self.axis % rank != 0):
            raise ValueError(f"BatchNormalization layer {self.name!r}: axis={self.axis} is not "
                             f"a feature axis of inputs of shape {tuple(input_shape)}")
        return tuple(input_shape)

    def make_params(self, input_shape, dtype):
        features = (input_shape[self.axis],)
        params = {}
        if self.scale:
            params["gamma"] = self.gamma_initializer(features, dtype)
        if self.center:
            params["beta"] = self.beta_initializer(features, dtype)
        params["moving_mean"] = self.moving_mean_initializer(features, dtype)
        params["moving_variance"] = self.moving_variance_initializer(features, dtype)
        return params

    def _axes(self, x):
        """(the axes reduced over, the shape that broadcasts a weight against x)."""
        axis = self.axis % x.ndim
        broadcast = [1] * x.ndim
        broadcast[axis] = x.shape[axis]
        return tuple(a for a in range(x.ndim) if a != axis), tuple(broadcast)

    def call(self, x, training, activation):
        reduced, broadcast = self._axes(x)
        y = self._buffers.get("y", x.shape, x.dtype)
        batch_statistics = training and self.trainable and len(x) > 0
        if batch_statistics:
            mean = x.mean(axis=reduced)
            centered = np.subtract(x, mean.reshape(broadcast), out=y)
            variance = np.square(centered).mean(axis=reduced)
            for name, statistic in (("moving_mean", mean), ("moving_variance", variance)):
                moving = self.params[name]
                moving *= self.momentum
                moving += (1 - self.momentum) * statistic
        else:
            mean = self.params["moving_mean"].copy()
            variance = self.params["moving_variance"]
            np.subtract(x, mean.reshape(broadcast), out=y)
        inverse_std = 1 / np.sqrt(variance + np.asarray(self.epsilon, x.dtype))
        y *= inverse_std.reshape(broadcast)
        self._statistics = (mean, inverse_std, batch_statistics)  # for backward, in any mode
        if self.scale:
            y *= self.params["gamma"].reshape(broadcast)
        if self.center:
            y += self.params["beta"].reshape(broadcast)
        return y

    def inference_affine(self):
        """(scale, shift) per feature: at inference the layer computes
        x * scale + shift along its axis, with the moving statistics."""
        dtype = self.params["moving_variance"].dtype
        scale = 1 / np.sqrt(self.params["moving_variance"] + np.asarray(self.epsilon, dtype))
        if self.scale:
            scale *= self.params["gamma"]
        shift = -self.params["moving_mean"] * scale
        if self.center:
            shift += self.params["beta"]
        return scale, shift

    def call_backward(self, x, y, dy, activation, need_input_grad):
        mean, inverse_std, batch_statistics = self._statistics
        reduced, broadcast = self._axes(x)
        normalized = x - mean.reshape(broadcast)
        normalized *= inverse_std.reshape(broadcast)
        dy_sum = dy.sum(axis=reduced)
        dy_normalized_sum = (dy * normalized).sum(axis=reduced)
        if self.center:
            self.grads["beta"][...] = dy_sum
        if self.scale:
            self.grads["gamma"][...] = dy_normalized_sum
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", x.shape, x.dtype)
        gain = inverse_std * self.params["gamma"] if self.scale else inverse_std
        if batch_statistics:
            # d/dx of the batch's mean and variance: dx = gamma / std *
            # (dy - mean(dy) - normalized * mean(dy * normalized)).
            count = x.size // x.shape[self.axis]
            np.multiply(normalized, (dy_normalized_sum / count).reshape(broadcast), out=dx)
            np.subtract(dy, dx, out=dx)
            dx -= (dy_sum / count).reshape(broadcast)
            dx *= gain.reshape(broadcast)
        else:
            np.multiply(dy, gain.reshape(broadcast), out=dx)
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "synchronized": False}
