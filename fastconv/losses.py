"""Losses, as Keras 3 computes them.

Two ways in:

* Keras's API: a loss object called as ``loss(y_true, y_pred, sample_weight=None)``
  returns the reduced loss ('sum_over_batch_size': the mean; 'sum'; 'none':
  one value per sample), and the plain functions (``categorical_crossentropy``,
  ``mse``, ...) return one value per sample, of shape ``y_pred.shape[:-1]``.
* The training loop's, on numpy arrays with the batch axis first:
  ``prepare_targets(y, output_shape, dtype)`` turns the user's labels into the
  dense targets the loss needs (once per ``fit``), then
  ``value_and_gradient(targets, outputs, gradient)`` returns the mean loss over
  the batch and fills dL/d(outputs).

The feature (class) axis is the last one.  ``fused_activation`` names the
output activation whose logits a loss can take directly: a model whose output
layer has it skips the activation and passes ``from_logits=True``, which runs
the numerically stable fused forms (log-sum-exp for softmax, and
max(z, 0) - z * t + log1p(exp(-|z|)) for sigmoid), finite for logits of +-1e4.
"""

import numpy as np

from . import activations
from ._checks import check_choice, check_int, check_number
from ._registry import Registry
from .utils import snake_case, to_categorical, unique_name

EPSILON = 1e-7  # Keras's clip of probabilities away from 0 and 1
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


class Loss:
    """Base class of the losses.

    A subclass implements ``prepare_targets`` and ``_row_losses(targets,
    outputs, gradient, from_logits)``: on 2-D arrays (rows, features) it returns the
    loss of each row and, when ``gradient`` is given, fills it with the
    derivative of each row's loss with respect to that row's outputs.
    """

    fused_activation = None
    from_logits = False

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        self.name = unique_name(type(self).__name__) if name is None else name
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of predictions ``y_pred`` against labels ``y_true``, reduced
        as ``self.reduction`` says, with ``sample_weight`` (one weight per
        sample, or any shape that broadcasts) applied first."""
        return reduce_weighted_values(self.call(y_true, y_pred), sample_weight,
                                      self.reduction, mask=self._mask(y_true))

    def call(self, y_true, y_pred):
        """The unreduced loss: one value per sample, shape ``y_pred.shape[:-1]``,
        in y_pred's float dtype (float32 at least)."""
        y_true, y_pred = self._classes_last(y_true, _float_array(y_pred, "y_pred"))
        targets = self.prepare_targets(y_true, (None,) + y_pred.shape[1:], y_pred.dtype)
        values = self._row_losses(*_as_rows(targets, y_pred), None, self.from_logits)
        return values.reshape(y_pred.shape[:-1]).astype(y_pred.dtype, copy=False)

    def prepare_targets(self, y, output_shape, dtype):
        """Labels ``y`` as the dense targets the loss compares outputs of
        ``output_shape`` (batch axis first, as None) with: a ``dtype`` array
        of shape (len(y),) + output_shape[1:].  Raises ValueError naming the
        problem when the labels do not fit."""
        raise NotImplementedError

    def value_and_gradient(self, targets, outputs, gradient=None, from_logits=None,
                           activated=None):
        """Mean loss of ``outputs`` (batch axis first, features last) against
        ``targets`` from ``prepare_targets`` (Keras's 'sum_over_batch_size',
        whatever ``self.reduction``); when ``gradient`` (a C-contiguous array
        shaped like outputs) is given, fills it with dL/d(outputs), divided by
        the number of values averaged.  ``from_logits`` defaults to the
        loss's own; True takes the logits under ``fused_activation``, and
        then ``activated`` (a C-contiguous array shaped like outputs, or
        None) receives their activation, as ``fused_activation`` computes
        it: the model's output, which the loss computes on the way."""
        from_logits = self.from_logits if from_logits is None else from_logits
        if from_logits and self.fused_activation is None:
            raise ValueError(f"{self.name} takes no logits (it has no fused activation)")
        if activated is not None and not from_logits:
            raise ValueError(f"{self.name}: activated is only filled from logits")
        target_rows, output_rows, gradient_rows, activated_rows = _as_rows(
            targets, outputs, gradient, activated)
        if activated is None:
            values = self._row_losses(target_rows, output_rows, gradient_rows, from_logits)
        else:
            values = self._row_losses_and_activation(target_rows, output_rows, gradient_rows,
                                                     activated_rows)
        divisor = self._divisor(target_rows)
        if gradient is not None:
            gradient /= divisor
        return float(np.sum(values, dtype=np.float64) / divisor)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"

    def _row_losses(self, targets, outputs, gradient, from_logits):
        raise NotImplementedError

    def _row_losses_and_activation(self, targets, logits, gradient, activated):
        """``_row_losses`` from logits, and ``activated`` filled with their
        fused activation (a loss that computes it anyway shares the work)."""
        values = self._row_losses(targets, logits, gradient, True)
        activations.get(self.fused_activation).forward(logits, activated)
        return values

    def _classes_last(self, y_true, y_pred):
        """(y_true, y_pred) with the feature axis moved last where the loss has an ``axis``."""
        return y_true, y_pred

    def _divisor(self, target_rows):
        """How many row losses the mean divides by."""
        return len(target_rows)

    def _mask(self, y_true):
        """Which samples count (None: all), as Keras's loss masks."""
        return None

    def _same_shape_targets(self, y, output_shape, dtype):
        """Labels shaped like the outputs (a missing trailing axis of 1 is
        added, as Keras does), as finite ``dtype`` values."""
        y = _numeric(y)
        expected = (len(y),) + tuple(output_shape[1:])
        if y.shape == expected[:-1] and expected[-1:] == (1,):
            y = y.reshape(expected)
        if y.shape != expected:
            raise ValueError(f"labels of shape {y.shape} do not match the model's outputs "
                             f"{tuple(output_shape)}: {self.name} expects shape {expected}")
        targets = y.astype(dtype, copy=False)
        if not np.isfinite(targets).all():
            raise ValueError(f"{self.name} labels must be finite numbers")
        return targets


class Crossentropy(Loss):
    """Base of the three cross-entropies: ``from_logits`` and the class ``axis``."""

    def __init__(self, from_logits, axis, reduction, name):
        super().__init__(name, reduction)
        self.from_logits = check_choice(from_logits, "from_logits", (False, True))
        self.axis = check_int(axis, "axis", minimum=-np.inf)

    def value_and_gradient(self, targets, outputs, gradient=None, from_logits=None,
                           activated=None):
        if self.axis not in (-1, outputs.ndim - 1):
            raise ValueError(f"{self.name}: training needs the class axis last (axis=-1), "
                             f"got axis={self.axis}")
        return super().value_and_gradient(targets, outputs, gradient, from_logits, activated)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "axis": self.axis}

    def _classes_last(self, y_true, y_pred):
        if self.axis in (-1, y_pred.ndim - 1):
            return y_true, y_pred
        y_true = np.asarray(y_true)
        if y_true.ndim == y_pred.ndim:
            y_true = np.moveaxis(y_true, self.axis, -1)
        return y_true, np.moveaxis(y_pred, self.axis, -1)


class _SoftmaxCrossentropy(Crossentropy):
    """Base of the two categorical cross-entropies: the loss of a row is
    -sum(t * log(p)), p the row's probabilities (Keras rescales them to sum
    1) or the softmax of its logits."""

    fused_activation = "softmax"

    def _row_losses(self, targets, outputs, gradient, from_logits):
        if from_logits:
            return _softmax_crossentropy_from_logits(targets, outputs, gradient)
        return _crossentropy_from_probabilities(targets, outputs, gradient)

    def _row_losses_and_activation(self, targets, logits, gradient, activated):
        return _softmax_crossentropy_from_logits(targets, logits, gradient, activated)


LOSSES = Registry("loss", Loss, accept_callables=True)


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossentropy(_SoftmaxCrossentropy):
    """Cross-entropy against one-hot (or soft) labels shaped like the outputs.

    ``label_smoothing`` ls replaces the targets t by t * (1 - ls) + ls / classes.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        super().__init__(from_logits, axis, reduction, name)
        self.label_smoothing = check_number(label_smoothing, "label_smoothing", 0, 1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def prepare_targets(self, y, output_shape, dtype):
        y = _numeric(y)
        classes = output_shape[-1]
        expected = (len(y),) + tuple(output_shape[1:])
        if y.shape in (expected[:-1], expected[:-1] + (1,)) and classes > 1:
            raise ValueError(
                f"{self.name} expects one-hot labels of shape {expected}, got integer "
                f"class labels of shape {y.shape}: encode them with "
                f"fastconv.utils.to_categorical(y, {classes}) or use "
                "loss='sparse_categorical_crossentropy'")
        targets = self._same_shape_targets(y, output_shape, dtype)
        if targets.size and not (targets.min() >= 0 and targets.max() <= 1):
            raise ValueError(f"{self.name} labels must be one-hot values in [0, 1], got "
                             f"values from {targets.min()} to {targets.max()}")
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / classes
        return targets


@LOSSES.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_SoftmaxCrossentropy):
    """Cross-entropy against integer class indices: labels have the outputs'
    shape without the class axis (or with a class axis of 1).

    Samples labelled ``ignore_class`` count for nothing: zero loss and
    gradient, and the mean is taken over the other samples only, as Keras
    masks them.
    """

    def __init__(self, from_logits=False, ignore_class=None,
                 reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy"):
        super().__init__(from_logits, axis, reduction, name)
        self.ignore_class = (None if ignore_class is None else
                             check_int(ignore_class, "ignore_class", minimum=-np.inf))

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}

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
        kept = np.ones(y.shape, bool) if self.ignore_class is None else y != self.ignore_class
        labels = np.where(kept, y, 0)
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"labels out of range: {self.name} needs class indices in "
                             f"[0, {classes}) for {classes} outputs, got values from "
                             f"{y[kept].min()} to {y[kept].max()}")
        targets = to_categorical(labels, classes).astype(dtype, copy=False)
        targets *= kept[..., None]
        return targets

    def _divisor(self, target_rows):
        if self.ignore_class is None:
            return len(target_rows)
        return max(np.count_nonzero(target_rows.any(axis=1)), 1)

    def _mask(self, y_true):
        if self.ignore_class is None:
            return None
        y_true = np.asarray(y_true)
        if y_true.ndim > 1 and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        return y_true != self.ignore_class


@LOSSES.register("binary_crossentropy", "bce")
class BinaryCrossentropy(Crossentropy):
    """Cross-entropy of independent 0/1 labels, shaped like the outputs
    (labels of shape (n,) fit outputs of shape (n, 1)); the loss of a sample
    is the mean over its features.

    ``label_smoothing`` ls replaces the targets t by t * (1 - ls) + 0.5 * ls.
    From probabilities they are clipped to [1e-7, 1 - 1e-7] as Keras does.
    """

    fused_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy"):
        super().__init__(from_logits, axis, reduction, name)
        self.label_smoothing = check_number(label_smoothing, "label_smoothing", 0, 1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def prepare_targets(self, y, output_shape, dtype):
        targets = self._same_shape_targets(y, output_shape, dtype)
        if targets.size and not (targets.min() >= 0 and targets.max() <= 1):
            raise ValueError(f"{self.name} labels must lie in [0, 1], got values from "
                             f"{targets.min()} to {targets.max()}")
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return targets

    def _row_losses(self, targets, outputs, gradient, from_logits):
        if from_logits:
            return _sigmoid_crossentropy_from_logits(targets, outputs, gradient)
        return _binary_crossentropy_from_probabilities(targets, outputs, gradient)


class _Regression(Loss):
    """Base of the losses on the error ``outputs - targets``, averaged over
    the features; targets are shaped like the outputs."""

    def prepare_targets(self, y, output_shape, dtype):
        """Labels broadcast against the outputs, as Keras's squeeze-or-expand
        and broadcasting do (labels (n,) for outputs (n, k) count for every
        feature)."""
        y = _numeric(y)
        expected = (len(y),) + tuple(output_shape[1:])
        if y.ndim == len(expected) - 1:
            y = y[..., None]
        try:
            y = np.broadcast_to(y, expected)
        except ValueError:
            pass
        return self._same_shape_targets(np.ascontiguousarray(y), output_shape, dtype)

    def _row_losses(self, targets, outputs, gradient, from_logits):
        error = outputs - targets
        values = self._elementwise(error, gradient)
        if gradient is not None:
            gradient /= error.shape[1]
        return values.mean(axis=1)

    def _elementwise(self, error, gradient):
        """The loss of each error value; fills ``gradient`` with its derivative."""
        raise NotImplementedError


@LOSSES.register("mean_squared_error", "mse")
class MeanSquaredError(_Regression):
    """mean((y_pred - y_true) ** 2) over the features."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(name, reduction)

    def _elementwise(self, error, gradient):
        if gradient is not None:
            np.multiply(error, 2, out=gradient)
        return np.square(error)


@LOSSES.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_Regression):
    """mean(|y_pred - y_true|) over the features (gradient sign(error), 0 at 0)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(name, reduction)

    def _elementwise(self, error, gradient):
        if gradient is not None:
            np.sign(error, out=gradient)
        return np.abs(error)


@LOSSES.register("huber")
class Huber(_Regression):
    """Huber loss: 0.5 * e**2 where |e| <= delta, delta * |e| - 0.5 * delta**2
    elsewhere, averaged over the features."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(name, reduction)
        self.delta = check_number(delta, "delta", 0, low_open=True)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}

    def _elementwise(self, error, gradient):
        if gradient is not None:
            np.clip(error, -self.delta, self.delta, out=gradient)
        absolute = np.abs(error)
        return np.where(absolute <= self.delta, 0.5 * np.square(error),
                        self.delta * absolute - 0.5 * self.delta ** 2)


class LossFunctionWrapper(Loss):
    """A loss from any function ``fn(y_true, y_pred, **kwargs)`` of numpy
    arrays that returns the loss of each sample (or a scalar, the loss of the
    batch).

    Its targets are the labels as float arrays; its gradient comes from
    central finite differences of ``fn`` in float64, one output feature at a
    time for the whole batch (2 * features calls of ``fn`` per batch).  That
    assumes, as per-sample losses do, that the loss of each sample depends
    only on that sample's outputs; a function returning a scalar is
    differentiated one output value at a time instead (2 * outputs.size
    calls).  Such a loss cannot be saved: pass it to compile() again after
    loading the model.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"fn must be a function fn(y_true, y_pred), got {fn!r}")
        if name is None:
            name = snake_case(getattr(fn, "__name__", type(fn).__name__))
        super().__init__(name, reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_true, y_pred = squeeze_or_expand_to_same_rank(np.asarray(y_true), y_pred)
        return np.asarray(self.fn(y_true, y_pred, **self.fn_kwargs))

    def prepare_targets(self, y, output_shape, dtype):
        """The labels as a ``dtype`` array (a trailing axis of 1 added to
        match outputs of one feature, as Keras does), whatever their shape:
        ``fn`` reads them."""
        targets = _numeric(y).astype(dtype, copy=False)
        if targets.ndim == len(output_shape) - 1 and output_shape[-1] == 1:
            targets = targets[..., None]
        return targets

    def value_and_gradient(self, targets, outputs, gradient=None, from_logits=None,
                           activated=None):
        if from_logits or activated is not None:
            raise ValueError(f"{self.name} takes no logits (it has no fused activation)")
        if len(targets) != len(outputs):
            raise ValueError(f"{self.name}: {len(targets)} labels for {len(outputs)} outputs")
        loss = np.asarray(self.call(targets, outputs))
        if loss.ndim and loss.shape[0] != len(outputs):
            raise ValueError(f"{self.name} must return one loss per sample or a scalar, got "
                             f"shape {loss.shape} for {len(outputs)} samples")
        if gradient is not None:
            gradient[...] = self._numeric_gradient(
                targets.astype(np.float64), outputs.astype(np.float64), loss.ndim > 0)
        return float(np.mean(loss, dtype=np.float64))

    def get_config(self):
        raise ValueError(f"the custom loss function {self.name!r} cannot be saved: pass it "
                         "to compile() again after loading the model")

    def _numeric_gradient(self, targets, outputs, per_sample):
        """d mean(fn) / d outputs by central differences (see the class
        docstring); ``outputs`` is a float64 array this perturbs and restores;
        ``per_sample`` says whether fn returns per-sample losses or a scalar."""
        samples = len(outputs)
        values = outputs.reshape(samples, -1)  # a view: perturbing it perturbs outputs

        def contributions():
            """Each sample's share of the mean loss, or the batch's loss."""
            loss = np.asarray(self.call(targets, outputs), np.float64)
            return loss.reshape(samples, -1).mean(axis=1) / samples if per_sample else loss

        # A probe perturbs one feature of every sample, or (scalar loss) one value.
        probes = ([np.s_[:, feature] for feature in range(values.shape[1])] if per_sample
                  else list(np.ndindex(values.shape)))
        gradient = np.empty_like(values)
        for probe in probes:
            saved = values[probe].copy()
            step = np.cbrt(np.finfo(np.float64).eps) * np.maximum(np.abs(saved), 1)
            values[probe] = saved + step
            above = contributions()
            values[probe] = saved - step
            below = contributions()
            values[probe] = saved
            gradient[probe] = (above - below) / (2 * step)
        return gradient.reshape(outputs.shape)


# ------------------------------------------------ Keras's plain loss functions


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample cross-entropy against one-hot labels (see CategoricalCrossentropy)."""
    return CategoricalCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-sample cross-entropy against class indices (see SparseCategoricalCrossentropy);
    samples labelled ``ignore_class`` get 0."""
    return SparseCategoricalCrossentropy(from_logits, ignore_class, axis=axis).call(
        y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy, the mean over the features (see BinaryCrossentropy)."""
    return BinaryCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean of the squared errors over the features."""
    return MeanSquaredError().call(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean of the absolute errors over the features."""
    return MeanAbsoluteError().call(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample mean of the Huber losses over the features (see Huber)."""
    return Huber(delta).call(y_true, y_pred)


mse = mean_squared_error
mae = mean_absolute_error

_FUNCTION_CLASSES = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    huber: Huber,
}


def get(identifier):
    """A Loss object from a Keras name ('categorical_crossentropy', 'mse',
    'Huber', ...), a config dict, a Loss object (returned as is), one of this
    module's functions (its class, so that the loss can fuse), or any other
    function ``fn(y_true, y_pred)`` (a ``LossFunctionWrapper``)."""
    loss = LOSSES.get(identifier)
    if isinstance(loss, Loss):
        return loss
    if loss in _FUNCTION_CLASSES:
        return _FUNCTION_CLASSES[loss]()
    return LossFunctionWrapper(loss)


def serialize(loss):
    """``{'class_name': ..., 'config': ...}`` of a loss; ValueError for a custom function."""
    return LOSSES.serialize(get(loss))


def deserialize(config):
    """The loss described by ``{'class_name': ..., 'config': ...}``."""
    return LOSSES.deserialize(config)


# ----------------------------------------------------------------- helpers


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size",
                           mask=None):
    """``values`` (one per sample) times ``sample_weight``, reduced as Keras
    does: 'sum'; 'sum_over_batch_size' and 'mean' divide the sum by the number
    of values; 'mean_with_sample_weight' by the sum of the weights; 'none'
    and None return the weighted values.  ``mask`` (booleans shaped like
    values) drops values, and the means count only the values kept."""
    reduction = check_choice(reduction, "reduction", REDUCTIONS)
    values = np.asarray(values)
    if mask is not None:
        kept = np.count_nonzero(mask)
        mask = mask.astype(values.dtype)
        if reduction in ("sum_over_batch_size", "mean"):
            mask *= mask.size / kept if kept else 0
        sample_weight = mask if sample_weight is None else sample_weight * mask
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, values.dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    if reduction in (None, "none") or values.ndim == 0 or values.shape == (0,):
        return values
    total = values.sum(dtype=np.float64)
    if reduction == "sum":
        return values.dtype.type(total)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = np.sum(sample_weight, dtype=np.float64)
    else:
        divisor = values.size
    return values.dtype.type(total / divisor if divisor else 0.0)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """(x1, x2) with a trailing axis of 1 dropped from (or, for a 1-D other
    array, added to) one of them when their ranks differ by one, as Keras."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _float_array(x, name):
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{name} must be numbers, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name} must be an array with a feature axis, got a scalar")
    return x.astype(np.result_type(x.dtype, np.float32), copy=False)


def _numeric(y):
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError("labels must be an array with one entry per sample, got a scalar")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
            or y.dtype == bool):
        raise TypeError(f"labels must be numbers, got dtype {y.dtype}")
    return y


def _as_rows(*arrays):
    """Each array (None passes through) as rows: (values, last axis)."""
    features = arrays[0].shape[-1]
    return tuple(None if a is None else a.reshape(-1, features) for a in arrays)


def _softmax_crossentropy_from_logits(targets, logits, gradient, probabilities=None):
    """Per-row cross-entropy of softmax(logits), via log-sum-exp; gradient
    (if given) gets sum(t) * softmax(z) - t, ``probabilities`` (if given)
    softmax(z), bit for bit as the 'softmax' activation computes it."""
    shifted = (gradient if gradient is not None else
               probabilities if probabilities is not None else np.empty_like(logits))
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=shifted)
    target_dot_shifted = np.einsum("ij,ij->i", targets, shifted)
    np.exp(shifted, out=shifted)
    sums = shifted.sum(axis=1, keepdims=True)
    target_mass = targets.sum(axis=1)
    per_row = target_mass * np.log(sums[:, 0]) - target_dot_shifted
    if gradient is None and probabilities is None:
        return per_row
    shifted /= sums  # softmax(z)
    if probabilities is not None and probabilities is not shifted:
        np.copyto(probabilities, shifted)
    if gradient is not None:
        gradient *= target_mass[:, None]
        gradient -= targets
    return per_row


def _crossentropy_from_probabilities(targets, probabilities, gradient):
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
    return per_row


def _sigmoid_crossentropy_from_logits(targets, logits, gradient):
    """Per-row mean of max(z, 0) - z * t + log1p(exp(-|z|)), the stable form
    of the cross-entropy of sigmoid(z); gradient (if given) gets
    (sigmoid(z) - t) / features."""
    elementwise = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    if gradient is not None:
        np.multiply(logits, 0.5, out=gradient)  # sigmoid(z) = (1 + tanh(z / 2)) / 2
        np.tanh(gradient, out=gradient)
        gradient += 1
        gradient *= 0.5
        gradient -= targets
        gradient /= logits.shape[1]
    return elementwise.mean(axis=1)


def _binary_crossentropy_from_probabilities(targets, probabilities, gradient):
    """Per-row mean of -(t log p + (1 - t) log(1 - p)), p clipped to
    [EPSILON, 1 - EPSILON] as Keras does (no gradient where clipped)."""
    clipped = np.clip(probabilities, EPSILON, 1 - EPSILON)
    elementwise = -(targets * np.log(clipped) + (1 - targets) * np.log1p(-clipped))
    if gradient is not None:
        np.multiply((1 - targets) / (1 - clipped) - targets / clipped,
                    probabilities == clipped, out=gradient)
        gradient /= probabilities.shape[1]
    return elementwise.mean(axis=1)
