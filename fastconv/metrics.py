"""Metrics, as Keras 3 computes them.

A metric is stateful: ``update_state(y_true, y_pred, sample_weight=None)``
accumulates a batch (numpy arrays, batch axis first: the user's labels as
given and the model's outputs, probabilities), ``result()`` is the value over
everything seen since ``reset_state()``.  The plain functions
(``binary_accuracy``, ``categorical_accuracy``, ...) return one value per
sample, as Keras's do.

``resolve(identifier, loss, output_shape, label_shape=None)`` makes the
metric object ``compile(metrics=[...])`` logs, choosing and naming it as
Keras 3's compile does: 'accuracy' or 'acc' becomes the accuracy that fits
the labels.
"""

import numpy as np

from . import losses
from ._checks import check_choice, check_int, check_number
from ._registry import Registry
from .losses import EPSILON, squeeze_or_expand_to_same_rank
from .utils import snake_case, unique_name


class Metric:
    """Base class of the metrics: ``update_state``, ``result``, ``reset_state``."""

    def __init__(self, name=None):
        self.name = unique_name(type(self).__name__) if name is None else name

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the batch (y_true, y_pred), weighted by ``sample_weight``."""
        raise NotImplementedError

    def result(self):
        """The metric over the batches seen since the last reset (a float)."""
        raise NotImplementedError

    def reset_state(self):
        """Forgets every batch seen."""
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """``update_state(*args, **kwargs)``, then the result, as Keras's."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


METRICS = Registry("metric", Metric, accept_callables=True)


@METRICS.register("mean")
class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight)``.

    As Keras's: values with axes beyond the weights' are first averaged over
    those axes, and each sample counts with its weight (1 by default).
    """

    def __init__(self, name="mean"):
        super().__init__(name)
        self.reset_state()

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, np.float64)
        if sample_weight is not None:
            weights = np.asarray(sample_weight, np.float64)
            values, weights = squeeze_or_expand_to_same_rank(values, weights)
            values = _mean_over_axes(values, weights.ndim)
            weights = np.broadcast_to(weights, values.shape)
            values = values * weights
            self.count += float(_mean_over_axes(weights, 1).sum())
        else:
            self.count += len(values) if values.ndim else 1
        self.total += float(_mean_over_axes(values, 1).sum())

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The mean of a per-sample function ``fn(y_true, y_pred, **kwargs)`` over
    all samples seen.  A custom function cannot be saved."""

    def __init__(self, fn, name=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"fn must be a function fn(y_true, y_pred), got {fn!r}")
        super().__init__(name)
        self.fn = fn
        self.fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.fn(np.asarray(y_true), np.asarray(y_pred), **self.fn_kwargs),
                             sample_weight)

    def get_config(self):
        raise ValueError(f"the custom metric {self.name!r} cannot be saved: pass it to "
                         "compile() again after loading the model")


class _FunctionMetric(MeanMetricWrapper):
    """A built-in mean metric: its constructor takes ``name`` and the keyword
    arguments of its function, which make its config."""

    def get_config(self):
        return {"name": self.name, **self.fn_kwargs}


# ------------------------------------------------------ per-sample functions


def accuracy(y_true, y_pred):
    """1.0 where y_pred equals y_true, else 0.0 (element by element)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(np.asarray(y_true), np.asarray(y_pred))
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where (y_pred > threshold) equals the 0/1 label y_true (element by element)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(np.asarray(y_true), np.asarray(y_pred))
    return (y_true == (y_pred > threshold)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 per sample where argmax(y_pred) is argmax of the one-hot y_true."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 per sample where argmax(y_pred) is the class index y_true (shape
    y_pred.shape[:-1], with or without a trailing axis of 1)."""
    y_true = _class_indices(y_true, y_pred)
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 per sample where the class of the one-hot y_true is among the k
    highest predictions (ties with the k-th count as in, as Keras)."""
    return _in_top_k(np.argmax(y_true, axis=-1), np.asarray(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 per sample where the class index y_true is among the k highest predictions."""
    y_pred = np.asarray(y_pred)
    return _in_top_k(_class_indices(y_true, y_pred), y_pred, k)


# ----------------------------------------------------------- mean metrics


@METRICS.register("accuracy")
class Accuracy(_FunctionMetric):
    """How often predictions equal labels exactly."""

    def __init__(self, name="accuracy"):
        super().__init__(accuracy, name)


@METRICS.register("binary_accuracy")
class BinaryAccuracy(_FunctionMetric):
    """How often ``y_pred > threshold`` matches 0/1 labels."""

    def __init__(self, name="binary_accuracy", threshold=0.5):
        super().__init__(binary_accuracy, name,
                         threshold=check_number(threshold, "threshold"))


@METRICS.register("categorical_accuracy")
class CategoricalAccuracy(_FunctionMetric):
    """How often the highest prediction is the class of a one-hot label."""

    def __init__(self, name="categorical_accuracy"):
        super().__init__(categorical_accuracy, name)


@METRICS.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(_FunctionMetric):
    """How often the highest prediction is the class of an integer label."""

    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name)


@METRICS.register("top_k_categorical_accuracy")
class TopKCategoricalAccuracy(_FunctionMetric):
    """How often the class of a one-hot label is among the k highest predictions."""

    def __init__(self, k=5, name="top_k_categorical_accuracy"):
        super().__init__(top_k_categorical_accuracy, name, k=check_int(k, "k"))


@METRICS.register("sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(_FunctionMetric):
    """How often the class of an integer label is among the k highest predictions."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy"):
        super().__init__(sparse_top_k_categorical_accuracy, name, k=check_int(k, "k"))


@METRICS.register("mean_squared_error", "mse")
class MeanSquaredError(_FunctionMetric):
    """The mean of the squared errors (fastconv.losses.mean_squared_error)."""

    def __init__(self, name="mean_squared_error"):
        super().__init__(losses.mean_squared_error, name)


@METRICS.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_FunctionMetric):
    """The mean of the absolute errors (fastconv.losses.mean_absolute_error)."""

    def __init__(self, name="mean_absolute_error"):
        super().__init__(losses.mean_absolute_error, name)


@METRICS.register("categorical_crossentropy")
class CategoricalCrossentropy(_FunctionMetric):
    """The mean cross-entropy against one-hot labels (see fastconv.losses)."""

    def __init__(self, name="categorical_crossentropy", from_logits=False,
                 label_smoothing=0.0, axis=-1):
        super().__init__(losses.categorical_crossentropy, name, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


@METRICS.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_FunctionMetric):
    """The mean cross-entropy against integer labels (see fastconv.losses)."""

    def __init__(self, name="sparse_categorical_crossentropy", from_logits=False,
                 ignore_class=None, axis=-1):
        super().__init__(losses.sparse_categorical_crossentropy, name,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)


@METRICS.register("binary_crossentropy", "bce")
class BinaryCrossentropy(_FunctionMetric):
    """The mean binary cross-entropy (see fastconv.losses)."""

    def __init__(self, name="binary_crossentropy", from_logits=False, label_smoothing=0.0):
        super().__init__(losses.binary_crossentropy, name, from_logits=from_logits,
                         label_smoothing=label_smoothing)


# ------------------------------------------------- confusion-matrix metrics


class _ConfusionMetric(Metric):
    """Weighted counts of true/false positives/negatives at each threshold:
    a prediction is positive when it exceeds the threshold, a label when it
    is not 0.  Labels and predictions have the same shape (a trailing axis
    of 1 may be missing from either); a sample weight applies to all of a
    sample's values."""

    def __init__(self, thresholds, name):
        super().__init__(name)
        self.thresholds = np.array([check_number(t, "thresholds", 0, 1) for t in thresholds])
        self.reset_state()

    def reset_state(self):
        zeros = np.zeros(len(self.thresholds))
        self.true_positives, self.false_positives = zeros.copy(), zeros.copy()
        self.true_negatives, self.false_negatives = zeros.copy(), zeros.copy()

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred, y_true = squeeze_or_expand_to_same_rank(
            np.asarray(y_pred, np.float64), np.asarray(y_true))
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{self.name} needs labels shaped like the predictions "
                             f"{y_pred.shape}, got {y_true.shape}")
        weights = np.ones(y_pred.shape)
        if sample_weight is not None:
            _, per_sample = squeeze_or_expand_to_same_rank(
                y_true, np.asarray(sample_weight, np.float64)[..., None], expand_rank_1=False)
            weights = np.broadcast_to(per_sample, y_pred.shape)
        positive = y_true.ravel() != 0
        weights = weights.ravel()
        order = np.argsort(self.thresholds)
        # Bucket b holds the predictions above exactly the b lowest thresholds.
        buckets = np.searchsorted(self.thresholds[order], y_pred.ravel(), side="left")
        for labels, above, below in ((positive, self.true_positives, self.false_negatives),
                                     (~positive, self.false_positives, self.true_negatives)):
            counts = np.bincount(buckets, weights * labels, len(self.thresholds) + 1)
            tail_sums = np.cumsum(counts[::-1])[::-1]  # tail_sums[i]: buckets i and up
            above[order] += tail_sums[1:]
            below[order] += tail_sums[0] - tail_sums[1:]


def _thresholds(thresholds):
    """Keras's ``thresholds`` argument: None (0.5), a number or a list."""
    if thresholds is None:
        return [0.5]
    return list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]


@METRICS.register("precision")
class Precision(_ConfusionMetric):
    """true positives / predicted positives, at each threshold (a float for
    one threshold, an array for several).  ``class_id`` restricts it to one
    class (the last axis)."""

    def __init__(self, thresholds=None, class_id=None, name=None):
        self.init_thresholds = thresholds
        self.class_id = class_id if class_id is None else check_int(class_id, "class_id", 0)
        super().__init__(_thresholds(thresholds), name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.class_id is not None:
            y_true = np.asarray(y_true)[..., self.class_id]
            y_pred = np.asarray(y_pred)[..., self.class_id]
        super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        return _one_or_all(_divide_no_nan(self.true_positives,
                                          self.true_positives + self.false_positives))

    def get_config(self):
        return {"name": self.name, "thresholds": self.init_thresholds,
                "class_id": self.class_id}


@METRICS.register("recall")
class Recall(Precision):
    """true positives / actual positives, at each threshold (see Precision)."""

    def result(self):
        return _one_or_all(_divide_no_nan(self.true_positives,
                                          self.true_positives + self.false_negatives))


@METRICS.register("auc")
class AUC(_ConfusionMetric):
    """Area under the ROC (or precision-recall, ``curve='PR'``) curve, as
    Keras approximates it: confusion counts at ``num_thresholds`` thresholds
    evenly spread over [0, 1] (or the given ``thresholds``), summed as
    trapezoids ('interpolation'; for PR, Keras's interpolation of
    precision), or as lower ('minoring') or upper ('majoring') rectangles.
    Single-label only (no ``multi_label``)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, thresholds=None, from_logits=False):
        self.curve = check_choice(curve.upper() if isinstance(curve, str) else curve,
                                  "curve", ("ROC", "PR"))
        self.summation_method = check_choice(summation_method, "summation_method",
                                             ("interpolation", "minoring", "majoring"))
        self.from_logits = check_choice(from_logits, "from_logits", (False, True))
        self.init_thresholds = thresholds
        if thresholds is None:
            self.num_thresholds = check_int(num_thresholds, "num_thresholds", 2)
            inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        else:
            inner = sorted(_thresholds(thresholds))
            self.num_thresholds = len(inner) + 2
        # The end points catch predictions of exactly 0 and 1.
        super().__init__([0.0] + inner + [1.0], name)
        self.thresholds[[0, -1]] = -EPSILON, 1 + EPSILON

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            y_pred = 1 / (1 + np.exp(-np.asarray(y_pred, np.float64)))
        super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        tp, fp, tn, fn = (self.true_positives, self.false_positives,
                          self.true_negatives, self.false_negatives)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return _interpolated_pr_auc(tp, fp, fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "thresholds": self.init_thresholds, "from_logits": self.from_logits}


def _interpolated_pr_auc(tp, fp, fn):
    """Keras's area under the precision-recall curve, precision interpolated
    between thresholds as Davis & Goadrich (2006)."""
    d_tp = tp[:-1] - tp[1:]
    predicted = tp + fp
    d_predicted = predicted[:-1] - predicted[1:]
    slope = _divide_no_nan(d_tp, np.maximum(d_predicted, 0))
    intercept = tp[1:] - slope * predicted[1:]
    both_positive = (predicted[:-1] > 0) & (predicted[1:] > 0)
    ratio = np.where(both_positive,
                     _divide_no_nan(predicted[:-1], np.maximum(predicted[1:], 0)), 1.0)
    increments = _divide_no_nan(slope * (d_tp + intercept * np.log(ratio)),
                                np.maximum(tp[1:] + fn[1:], 0))
    return float(np.sum(increments))


# --------------------------------------------------- identifiers and naming


def get(identifier):
    """A Metric from a Keras name ('binary_accuracy', 'mse', 'AUC', ...) or a
    config dict; a Metric object or a function is returned as is.  Unknown
    names raise ValueError listing the valid ones."""
    return METRICS.get(identifier)


def serialize(metric):
    """``{'class_name': ..., 'config': ...}`` of a metric; ValueError for a custom function."""
    return METRICS.serialize(metric)


def deserialize(config):
    """The metric described by ``{'class_name': ..., 'config': ...}``."""
    return METRICS.deserialize(config)


def resolve(identifier, loss, output_shape, label_shape=None):
    """The Metric object ``compile(metrics=[identifier])`` logs, chosen and
    named as Keras 3's compile does.

    'accuracy' and 'acc' (any case) become the accuracy that fits the labels,
    by Keras 3's rule on the shapes of labels and outputs: BinaryAccuracy
    when the outputs have one feature, SparseCategoricalAccuracy when the
    labels have fewer axes than the outputs or a last axis of 1, else
    CategoricalAccuracy.  ``label_shape`` is the shape of the labels (batch
    axis first); when it is not known, the labels the ``loss`` takes stand in
    (class indices for sparse categorical cross-entropy, arrays shaped like
    the outputs otherwise).  ``output_shape`` is the model's output shape,
    batch axis first.

    The metric's name, the key of the logs, is the string given ('acc'
    logs as 'acc', 'mae' as 'mae'); a Metric object keeps its name; a
    function is wrapped in a MeanMetricWrapper named after it.
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        if label_shape is None:
            sparse_loss = isinstance(loss, losses.SparseCategoricalCrossentropy)
            label_shape = tuple(output_shape[:-1] if sparse_loss else output_shape)
        if output_shape[-1] == 1:
            return BinaryAccuracy(name=identifier)
        if len(label_shape) < len(output_shape) or label_shape[-1] == 1:
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    metric = get(identifier)
    if isinstance(identifier, str):
        name = identifier
    else:
        name = getattr(metric, "name", None) or snake_case(getattr(metric, "__name__",
                                                                    type(metric).__name__))
    if not isinstance(metric, Metric):
        metric = MeanMetricWrapper(metric, name)
    metric.name = name
    return metric


# ----------------------------------------------------------------- helpers


def _mean_over_axes(values, first_axis):
    """``values`` averaged over its axes from ``first_axis`` on."""
    if values.ndim <= first_axis:
        return values
    return values.mean(axis=tuple(range(first_axis, values.ndim)))


def _class_indices(y_true, y_pred):
    """Integer labels ``y_true`` without the trailing axis of 1 they may have
    when they have as many axes as the predictions."""
    y_true = np.asarray(y_true)
    if y_true.ndim == np.ndim(y_pred) and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true


def _in_top_k(labels, predictions, k):
    """1.0 where fewer than k predictions exceed the prediction for ``labels``."""
    labels = np.asarray(labels)
    classes = predictions.shape[-1]
    if labels.size and not (np.all(labels == np.round(labels))
                            and labels.min() >= 0 and labels.max() < classes):
        raise ValueError(f"labels must be class indices in [0, {classes}), got values from "
                         f"{labels.min()} to {labels.max()}")
    scores = np.take_along_axis(predictions, labels.astype(np.intp)[..., None], axis=-1)
    return (np.count_nonzero(predictions > scores, axis=-1) < k).astype(np.float32)


def _divide_no_nan(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator != 0)


def _one_or_all(values):
    return float(values[0]) if len(values) == 1 else values
