"""Cross-entropy losses, as Keras computes them.

The class axis is the last one.  A loss first turns the user's labels into
dense target distributions (``prepare_targets``, once per ``fit``), then
``value_and_gradient`` returns the mean loss over all samples and fills
dL/d(outputs).  From logits it runs log-sum-exp, so confident predictions
and logits of +-1e4 give finite values; its gradient is the fused
softmax + cross-entropy one, (softmax(z) - y) / batch.
"""

import numpy as np

from .utils import to_categorical

EPSILON = 1e-7  # Keras's clip of probabilities away from 0 and 1


class Crossentropy:
    """Base of the two cross-entropy losses; subclasses read the labels."""

    name = None

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred):
        """The mean loss of predictions ``y_pred`` (probabilities, or logits
        when ``from_logits``) against labels ``y_true``."""
        y_pred = np.asarray(y_pred)
        y_pred = y_pred.astype(np.result_type(y_pred.dtype, np.float32), copy=False)
        targets = self.prepare_targets(y_true, (None,) + y_pred.shape[1:], y_pred.dtype)
        return self.value_and_gradient(targets, y_pred)

    def prepare_targets(self, y, output_shape, dtype):
        """Labels ``y`` for outputs of ``output_shape`` (batch axis first) as
        target distributions: a ``dtype`` array of shape (len(y),) + output_shape[1:].
        Raises ValueError naming the problem when the labels do not fit."""
        raise NotImplementedError

    def value_and_gradient(self, targets, outputs, gradient=None, from_logits=None):
        """Mean loss of ``outputs`` against ``targets`` (same shape); when
        ``gradient`` (a C-contiguous array shaped like outputs) is given, fills
        it with dL/d(outputs).  ``from_logits`` defaults to the loss's own."""
        from_logits = self.from_logits if from_logits is None else from_logits
        classes = outputs.shape[-1]
        rows = (targets.reshape(-1, classes), outputs.reshape(-1, classes),
                None if gradient is None else gradient.reshape(-1, classes))
        per_row = _from_logits(*rows) if from_logits else _from_probabilities(*rows)
        return float(np.mean(per_row, dtype=np.float64))

    def get_config(self):
        return {"from_logits": self.from_logits}


class CategoricalCrossentropy(Crossentropy):
    """Cross-entropy against one-hot (or soft) labels shaped like the outputs."""

    name = "categorical_crossentropy"

    def prepare_targets(self, y, output_shape, dtype):
        y = _numeric(y)
        expected = (len(y),) + tuple(output_shape[1:])
        if y.shape != expected:
            if y.shape in (expected[:-1], expected[:-1] + (1,)) and expected[-1] > 1:
                raise ValueError(
                    f"{self.name} expects one-hot labels of shape {expected}, got integer "
                    f"class labels of shape {y.shape}: encode them with "
                    f"fastconv.utils.to_categorical(y, {expected[-1]}) or use "
                    "loss='sparse_categorical_crossentropy'")
            raise ValueError(f"labels of shape {y.shape} do not match the model's outputs "
                             f"{tuple(output_shape)}: {self.name} expects shape {expected}")
        targets = y.astype(dtype, copy=False)
        if targets.size and not (np.isfinite(targets).all() and targets.min() >= 0
                                 and targets.max() <= 1):
            raise ValueError(f"{self.name} labels must be one-hot values in [0, 1], got "
                             f"values from {targets.min()} to {targets.max()}")
        return targets


class SparseCategoricalCrossentropy(Crossentropy):
    """Cross-entropy against integer class indices (outputs' shape without the class axis)."""

    name = "sparse_categorical_crossentropy"

    def prepare_targets(self, y, output_shape, dtype):
        y = _numeric(y)
        classes = output_shape[-1]
        expected = (len(y),) + tuple(output_shape[1:-1])
        if y.shape == expected + (1,):
            y = y.reshape(expected)
        if y.shape != expected:
            if y.shape == expected + (classes,) and classes > 1:
                raise ValueError(
                    f"{self.name} expects integer class labels of shape {expected}, got "
                    f"one-hot labels of shape {y.shape}: pass y.argmax(-1) or use "
                    "loss='categorical_crossentropy'")
            raise ValueError(f"labels of shape {y.shape} do not match the model's outputs "
                             f"{tuple(output_shape)}: {self.name} expects shape {expected}")
        if y.size and not (np.isfinite(y).all() and np.all(y == np.round(y))):
            raise ValueError(f"{self.name} labels must be integer class indices, got "
                             f"non-integer values")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"labels out of range: {self.name} needs class indices in "
                             f"[0, {classes}) for {classes} outputs, got values from "
                             f"{y.min()} to {y.max()}")
        return to_categorical(y, classes).astype(dtype, copy=False)


LOSSES = {cls.name: cls for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy)}


def get(identifier):
    """A loss from its Keras name, or a loss object itself."""
    if isinstance(identifier, Crossentropy):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"loss must be a loss name or a fastconv.losses object, "
                        f"got {identifier!r}")
    if identifier not in LOSSES:
        raise ValueError(f"unknown loss {identifier!r}; valid losses: "
                         f"{', '.join(repr(name) for name in LOSSES)}")
    return LOSSES[identifier]()


def deserialize(config):
    """The loss described by ``{'class_name': ..., 'config': ...}``."""
    classes = {cls.__name__: cls for cls in LOSSES.values()}
    if config.get("class_name") not in classes:
        raise ValueError(f"unknown loss class {config.get('class_name')!r}")
    return classes[config["class_name"]](**config.get("config", {}))


def _numeric(y):
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError("labels must be an array with one entry per sample, got a scalar")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"labels must be numbers, got dtype {y.dtype}")
    return y


def _from_logits(targets, logits, gradient):
    """Per-row cross-entropy of softmax(logits), via log-sum-exp; gradient
    (if given) gets (sum(t) * softmax(z) - t) / rows."""
    shifted = np.empty_like(logits) if gradient is None else gradient
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=shifted)
    target_dot_shifted = np.einsum("ij,ij->i", targets, shifted)
    np.exp(shifted, out=shifted)
    sums = shifted.sum(axis=1, keepdims=True)
    target_mass = targets.sum(axis=1)
    per_row = target_mass * np.log(sums[:, 0]) - target_dot_shifted
    if gradient is not None:
        gradient /= sums
        gradient *= target_mass[:, None]
        gradient -= targets
        gradient /= len(logits)
    return per_row


def _from_probabilities(targets, probabilities, gradient):
    """Per-row cross-entropy as Keras computes it from probabilities: rows
    rescaled to sum 1, clipped to [EPSILON, 1 - EPSILON]."""
    sums = probabilities.sum(axis=1, keepdims=True)
    normalized = probabilities / sums
    clipped = np.clip(normalized, EPSILON, 1 - EPSILON)
    per_row = -np.einsum("ij,ij->i", targets, np.log(clipped))
    if gradient is not None:
        d_normalized = -targets / clipped * (normalized == clipped)
        projection = np.einsum("ij,ij->i", d_normalized, normalized)[:, None]
        np.subtract(d_normalized, projection, out=gradient)
        gradient /= sums
        gradient /= len(probabilities)
    return per_row
