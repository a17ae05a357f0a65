"""fastconv.metrics against Keras 3's documented values and hand computations."""

import numpy as np
import pytest

from fastconv import losses, metrics

ONE_HOT = [[0, 0, 1], [0, 1, 0]]
SCORES = [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]
PROBABILITIES = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]


def result_of(metric, *batch, sample_weight=None):
    metric.reset_state()
    metric.update_state(*batch, sample_weight=sample_weight)
    return metric.result()


# ------------------------------------------- Keras's documented values

@pytest.mark.parametrize("metric, batch, unweighted, weights, weighted", [
    (metrics.Accuracy(), ([[1], [2], [3], [4]], [[0], [2], [3], [4]]), 0.75, [1, 1, 0, 0], 0.5),
    (metrics.BinaryAccuracy(), ([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]]), 0.75,
     [1, 0, 0, 1], 0.5),
    (metrics.CategoricalAccuracy(), (ONE_HOT, SCORES), 0.5, [0.7, 0.3], 0.3),
    (metrics.SparseCategoricalAccuracy(), ([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]]), 0.5,
     [0.7, 0.3], 0.3),
    (metrics.TopKCategoricalAccuracy(k=1), (ONE_HOT, SCORES), 0.5, [0.7, 0.3], 0.3),
    (metrics.SparseTopKCategoricalAccuracy(k=1), ([2, 1], SCORES), 0.5, [0.7, 0.3], 0.3),
    (metrics.MeanSquaredError(), ([[0, 1], [0, 0]], [[1, 1], [0, 0]]), 0.25, [1, 0], 0.5),
    (metrics.MeanAbsoluteError(), ([[0, 1], [0, 0]], [[1, 1], [0, 0]]), 0.25, [1, 0], 0.5),
    (metrics.CategoricalCrossentropy(), ([[0, 1, 0], [0, 0, 1]], PROBABILITIES), 1.1769392,
     [0.3, 0.7], 1.6271976),
    (metrics.SparseCategoricalCrossentropy(), ([1, 2], PROBABILITIES), 1.1769392, [0.3, 0.7],
     1.6271976),
    (metrics.BinaryCrossentropy(), ([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]), 0.81492424,
     [1, 0], 0.9162905),
    (metrics.Precision(), ([0, 1, 1, 1], [1, 0, 1, 1]), 2 / 3, [0, 0, 1, 0], 1.0),
    (metrics.Recall(), ([0, 1, 1, 1], [1, 0, 1, 1]), 2 / 3, [0, 0, 1, 0], 1.0),
    (metrics.AUC(num_thresholds=3), ([0, 0, 1, 1], [0, 0.5, 0.3, 0.9]), 0.75, [1, 0, 0, 1], 1.0),
], ids=lambda value: type(value).__name__ if isinstance(value, metrics.Metric) else None)
def test_keras_documented_values(metric, batch, unweighted, weights, weighted):
    assert result_of(metric, *batch) == pytest.approx(unweighted, abs=1e-6)
    assert result_of(metric, *batch, sample_weight=weights) == pytest.approx(weighted, abs=1e-6)


def test_mean_as_keras():
    mean = metrics.Mean()
    assert mean([1, 3, 5, 7]) == 4.0
    assert result_of(mean, [1, 3, 5, 7], sample_weight=[1, 1, 0, 0]) == 2.0
    # values beyond the weights' axes are averaged first
    assert result_of(mean, [[1, 3], [5, 7]], sample_weight=[1, 3]) == pytest.approx(
        (2 + 3 * 6) / 4)
    assert metrics.Mean().result() == 0.0


# --------------------------------------------------- per-sample functions

def test_functions_return_one_value_per_sample():
    np.testing.assert_array_equal(metrics.categorical_accuracy(ONE_HOT, SCORES), [0, 1])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy([2, 1], SCORES), [0, 1])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy([[2], [1]], SCORES), [0, 1])
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(ONE_HOT, SCORES, k=2),
                                  [1, 1])
    np.testing.assert_array_equal(metrics.binary_accuracy([1, 0, 1], [[0.7], [0.6], [0.4]]),
                                  [[1], [0], [0]])
    np.testing.assert_array_equal(metrics.binary_accuracy([[1, 0]], [[0.7, 0.6]], threshold=0.65),
                                  [[1, 1]])
    assert metrics.categorical_accuracy(ONE_HOT, SCORES).dtype == np.float32


def test_top_k_counts_ties_with_the_kth_as_in():
    # the label's score ties with the best: fewer than k=1 scores exceed it
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy([1, 2], [[0.4, 0.4, 0.2], [0.4, 0.4, 0.2]], k=1),
        [1, 0])
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        metrics.sparse_top_k_categorical_accuracy([3], [[0.1, 0.2, 0.7]])


# ---------------------------------------------- accumulation and reset

def test_accumulates_over_batches_and_resets():
    accuracy = metrics.SparseCategoricalAccuracy()
    accuracy.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])  # 1 of 2
    accuracy.update_state([1, 1, 1], [[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])  # 3 of 3
    assert accuracy.result() == pytest.approx(4 / 5)
    accuracy.reset_state()
    assert accuracy.result() == 0.0
    accuracy.update_state([0], [[0.1, 0.9]])
    assert accuracy.result() == 0.0

    precision = metrics.Precision()
    precision.update_state([1, 0], [0.9, 0.8])  # tp 1, fp 1
    precision.update_state([1, 1], [0.7, 0.2])  # tp 1
    assert precision.result() == pytest.approx(2 / 3)
    precision.reset_state()
    assert precision.result() == 0.0


def test_precision_and_recall_thresholds_and_class_id():
    y_true, y_pred = [0, 1, 1, 0], [0.3, 0.6, 0.4, 0.8]
    precision = metrics.Precision(thresholds=[0.35, 0.5, 0.7])
    precision.update_state(y_true, y_pred)
    # above 0.35: 0.6 0.4 0.8 (2 of 3 positive); above 0.5: 0.6 0.8; above 0.7: 0.8
    np.testing.assert_allclose(precision.result(), [2 / 3, 1 / 2, 0])
    recall = metrics.Recall(thresholds=[0.7, 0.35])  # unsorted thresholds keep their order
    recall.update_state(y_true, y_pred)
    np.testing.assert_allclose(recall.result(), [0, 1])
    # a prediction equal to the threshold is not positive
    assert result_of(metrics.Precision(thresholds=0.5), [1, 0], [0.9, 0.5]) == 1.0
    # class_id picks one column of one-hot labels
    assert result_of(metrics.Recall(class_id=2), ONE_HOT, SCORES) == 1.0
    assert result_of(metrics.Precision(class_id=1), ONE_HOT, SCORES) == 0.5


def test_auc_counts_and_curves_as_keras():
    # Keras's AUCTest: tp = [7, 4, 0], fp = [3, 0, 0], fn = [0, 3, 7], tn = [0, 3, 3]
    y_true, y_pred, weights = [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 2, 3, 4]
    auc = metrics.AUC(num_thresholds=3)
    auc.update_state(y_true, y_pred, sample_weight=weights)
    np.testing.assert_allclose(auc.true_positives, [7, 4, 0])
    np.testing.assert_allclose(auc.false_positives, [3, 0, 0])
    np.testing.assert_allclose(auc.false_negatives, [0, 3, 7])
    np.testing.assert_allclose(auc.true_negatives, [0, 3, 3])
    expected = {("ROC", "interpolation"): (1 + 4 / 7) / 2, ("ROC", "minoring"): 4 / 7,
                ("ROC", "majoring"): 1.0, ("PR", "majoring"): 1.0,
                ("PR", "minoring"): 0.7 * 3 / 7 + 0,
                ("PR", "interpolation"): (0.5 * (3 + 2 * np.log(2.5)) + 4) / 7}
    for (curve, summation), value in expected.items():
        auc = metrics.AUC(num_thresholds=3, curve=curve, summation_method=summation)
        assert auc(y_true, y_pred, sample_weight=weights) == pytest.approx(value), curve


def test_auc_of_separable_scores_is_one_and_from_logits():
    scores = np.array([0.1, 0.2, 0.35, 0.8, 0.9])
    labels = [0, 0, 0, 1, 1]
    assert metrics.AUC()(labels, scores) == pytest.approx(1.0)
    assert metrics.AUC()(labels, 1 - scores) == pytest.approx(0.0)
    logits = np.log(scores / (1 - scores))
    assert metrics.AUC(from_logits=True)(labels, logits) == pytest.approx(1.0)
    assert metrics.AUC(thresholds=[0.5]).thresholds.tolist() == [-1e-7, 0.5, 1 + 1e-7]


# ---------------------------------------------------- resolve: compile's rules

@pytest.mark.parametrize("loss, output_shape, label_shape, expected", [
    ("sparse_categorical_crossentropy", (None, 10), None, metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", (None, 10), None, metrics.CategoricalAccuracy),
    ("binary_crossentropy", (None, 1), None, metrics.BinaryAccuracy),
    ("mse", (None, 1), None, metrics.BinaryAccuracy),
    # Keras 3 decides from the shapes alone: one output feature means binary ...
    ("sparse_categorical_crossentropy", (None, 1), None, metrics.BinaryAccuracy),
    # ... and multi-label binary cross-entropy gets categorical accuracy
    ("binary_crossentropy", (None, 4), None, metrics.CategoricalAccuracy),
    # labels of shape (n,) or (n, 1) are class indices
    ("categorical_crossentropy", (None, 10), (32,), metrics.SparseCategoricalAccuracy),
    (lambda t, p: p, (None, 10), (32, 1), metrics.SparseCategoricalAccuracy),
    (lambda t, p: p, (None, 10), (32, 10), metrics.CategoricalAccuracy),
])
def test_accuracy_is_chosen_as_keras_3_compile(loss, output_shape, label_shape, expected):
    for identifier in ("accuracy", "acc", "Accuracy", "ACC"):
        metric = metrics.resolve(identifier, losses.get(loss), output_shape, label_shape)
        assert type(metric) is expected and metric.name == identifier


def test_resolve_names_as_keras_3_compile():
    assert metrics.resolve("mae", None, (None, 1)).name == "mae"
    assert type(metrics.resolve("mae", None, (None, 1))) is metrics.MeanAbsoluteError
    assert metrics.resolve("precision", None, (None, 1)).name == "precision"
    assert metrics.resolve("AUC", None, (None, 1)).name == "AUC"
    metric = metrics.AUC(name="roc")
    assert metrics.resolve(metric, None, (None, 1)) is metric and metric.name == "roc"

    def myPairwiseScore(y_true, y_pred):  # noqa: N802 (Keras snake-cases function names)
        return np.abs(y_true - y_pred)

    wrapped = metrics.resolve(myPairwiseScore, None, (None, 1))
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "my_pairwise_score"
    assert wrapped([[1.0], [3.0]], [[0.0], [0.0]]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="unknown metric 'f1'; valid metrics: .*'auc'"):
        metrics.resolve("f1", None, (None, 1))


# ------------------------------------------------------ names and saving

def test_get_names_and_aliases():
    expected = {"binary_accuracy": metrics.BinaryAccuracy, "accuracy": metrics.Accuracy,
                "CategoricalAccuracy": metrics.CategoricalAccuracy,
                "mse": metrics.MeanSquaredError,
                "precision": metrics.Precision,
                "recall": metrics.Recall, "auc": metrics.AUC, "bce": metrics.BinaryCrossentropy,
                "sparse_top_k_categorical_accuracy": metrics.SparseTopKCategoricalAccuracy,
                "top_k_categorical_accuracy": metrics.TopKCategoricalAccuracy,
                "categorical_crossentropy": metrics.CategoricalCrossentropy,
                "sparse_categorical_crossentropy": metrics.SparseCategoricalCrossentropy}
    for name, cls in expected.items():
        assert type(metrics.get(name)) is cls
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        metrics.get("acc")  # as Keras: only compile knows 'acc'


@pytest.mark.parametrize("metric", [
    metrics.BinaryAccuracy(threshold=0.7, name="hits"), metrics.TopKCategoricalAccuracy(k=2),
    metrics.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    metrics.SparseCategoricalCrossentropy(ignore_class=0),
    metrics.Precision(thresholds=[0.2, 0.6]),
    metrics.Recall(class_id=1), metrics.AUC(num_thresholds=50, curve="PR"), metrics.Mean("m")])
def test_serialize_round_trip(metric):
    restored = metrics.deserialize(metrics.serialize(metric))
    assert type(restored) is type(metric) and restored.get_config() == metric.get_config()


def test_custom_metric_functions_cannot_be_saved():
    with pytest.raises(ValueError, match="custom metric 'score' cannot be saved"):
        metrics.serialize(metrics.MeanMetricWrapper(lambda t, p: t, "score"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        metrics.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="thresholds must lie in"):
        metrics.Precision(thresholds=1.5)
    with pytest.raises(ValueError, match="curve must be one of"):
        metrics.AUC(curve="PRGAIN")
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="labels shaped like the predictions"):
        metrics.Precision().update_state([1, 0], [[0.2, 0.8], [0.4, 0.6]])
