"""fastconv.losses against Keras 3's documented values, hand computations and
finite differences."""

import numpy as np
import pytest

from fastconv import activations, losses
from fastconv.utils import to_categorical
from helpers.gradcheck import numeric_gradient

RNG = np.random.default_rng(0)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def analytic_and_numeric(loss, targets, outputs, from_logits=None):
    """The gradient value_and_gradient fills, and its central differences (float64)."""
    gradient = np.empty_like(outputs)
    loss.value_and_gradient(targets, outputs, gradient, from_logits)
    numeric = numeric_gradient(
        lambda: loss.value_and_gradient(targets, outputs, None, from_logits), outputs)
    return gradient, numeric


# ----------------------------------------------------- Keras's documented values

KERAS_ONE_HOT = [[0, 1, 0], [0, 0, 1]]
KERAS_PROBABILITIES = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]


def test_categorical_crossentropy_matches_keras_examples():
    per_sample = losses.categorical_crossentropy(KERAS_ONE_HOT, KERAS_PROBABILITIES)
    np.testing.assert_allclose(per_sample, [0.0513, 2.303], atol=1e-3)
    assert per_sample.shape == (2,)
    cce = losses.CategoricalCrossentropy()
    assert cce(KERAS_ONE_HOT, KERAS_PROBABILITIES) == pytest.approx(1.177, abs=1e-3)
    assert cce(KERAS_ONE_HOT, KERAS_PROBABILITIES, sample_weight=[0.3, 0.7]) == pytest.approx(
        0.814, abs=1e-3)
    assert losses.CategoricalCrossentropy(reduction="sum")(
        KERAS_ONE_HOT, KERAS_PROBABILITIES) == pytest.approx(2.354, abs=1e-3)
    np.testing.assert_allclose(losses.CategoricalCrossentropy(reduction=None)(
        KERAS_ONE_HOT, KERAS_PROBABILITIES), [0.0513, 2.303], atol=1e-3)


def test_sparse_categorical_crossentropy_matches_keras_examples():
    for labels in ([1, 2], [[1], [2]]):
        np.testing.assert_allclose(
            losses.sparse_categorical_crossentropy(labels, KERAS_PROBABILITIES),
            [0.0513, 2.303], atol=1e-3)
    scce = losses.SparseCategoricalCrossentropy()
    assert scce([1, 2], KERAS_PROBABILITIES) == pytest.approx(1.177, abs=1e-3)
    assert scce([1, 2], KERAS_PROBABILITIES, sample_weight=[0.3, 0.7]) == pytest.approx(
        0.814, abs=1e-3)


def test_binary_crossentropy_matches_keras_examples():
    bce = losses.BinaryCrossentropy(from_logits=True)
    assert bce([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]) == pytest.approx(0.8654, abs=1e-4)
    y_true, logits = [[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]]
    assert bce(y_true, logits) == pytest.approx(0.8654, abs=1e-4)
    assert bce(y_true, logits, sample_weight=[0.8, 0.2]) == pytest.approx(0.243, abs=1e-3)
    assert losses.BinaryCrossentropy(from_logits=True, reduction="sum")(
        y_true, logits) == pytest.approx(1.730, abs=1e-3)
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True, reduction=None)(
        y_true, logits), [0.235, 1.496], atol=1e-3)
    np.testing.assert_allclose(
        losses.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]),
        [0.916, 0.714], atol=1e-3)


def test_regression_losses_match_keras_examples():
    assert losses.MeanSquaredError()([1.0, 0.0, 1.0], [0.9, 0.1, 0.8]) == pytest.approx(0.02)
    y_true, y_pred = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
    np.testing.assert_allclose(losses.huber(y_true, y_pred), [0.18, 0.13])
    assert losses.Huber()(y_true, y_pred) == pytest.approx(0.155)
    np.testing.assert_allclose(losses.mean_absolute_error(y_true, y_pred), [0.6, 0.5])
    np.testing.assert_allclose(losses.mse(y_true, y_pred), [0.36, 0.26])
    assert losses.mae is losses.mean_absolute_error


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    # errors 0.5 (quadratic: 0.125) and 3 (linear: 2 * 3 - 0.5 * 4 = 4)
    np.testing.assert_allclose(losses.huber([[0.0, 0.0]], [[0.5, -3.0]], delta=2.0),
                               [(0.125 + 4.0) / 2])


# ------------------------------------------------------------------ gradients

def _cases():
    """(loss, targets, outputs, from_logits) in float64, away from clipping and kinks."""
    logits = RNG.normal(size=(4, 3))
    one_hot = to_categorical([0, 2, 1, 2], 3).astype(np.float64)
    binary = RNG.integers(0, 2, size=(4, 3)).astype(np.float64)
    values = RNG.normal(size=(4, 3))
    targets = values + RNG.choice([-1, 1], size=values.shape) * RNG.uniform(0.2, 0.8, (4, 3))
    far_targets = values + RNG.choice([-1, 1], size=values.shape) * RNG.uniform(1.5, 3, (4, 3))
    sparse = losses.SparseCategoricalCrossentropy()
    yield losses.CategoricalCrossentropy(), one_hot, softmax(logits), False
    yield losses.CategoricalCrossentropy(), one_hot, logits, True
    yield losses.CategoricalCrossentropy(label_smoothing=0.2), one_hot, softmax(logits), False
    yield losses.CategoricalCrossentropy(label_smoothing=0.2), one_hot, logits, True
    yield sparse, sparse.prepare_targets([0, 2, 1, 2], (None, 3), np.float64), logits, True
    yield losses.BinaryCrossentropy(), binary, sigmoid(logits), False
    yield losses.BinaryCrossentropy(), binary, logits, True
    yield losses.BinaryCrossentropy(label_smoothing=0.3), binary, logits, True
    yield losses.MeanSquaredError(), targets, values, False
    yield losses.MeanAbsoluteError(), targets, values, False
    yield losses.Huber(), targets, values, False
    yield losses.Huber(delta=1.0), far_targets, values, False
    # rank-3 outputs: a loss per (sample, position), averaged over both
    yield losses.CategoricalCrossentropy(), softmax(RNG.normal(size=(2, 2, 3))), \
        RNG.normal(size=(2, 2, 3)), True
    yield losses.MeanSquaredError(), targets.reshape(2, 2, 3), values.reshape(2, 2, 3), False


@pytest.mark.parametrize("loss, targets, outputs, from_logits", list(_cases()))
def test_gradient_matches_finite_differences(loss, targets, outputs, from_logits):
    gradient, numeric = analytic_and_numeric(loss, targets, outputs, from_logits)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("loss, activation", [
    (losses.CategoricalCrossentropy(), softmax),
    (losses.CategoricalCrossentropy(label_smoothing=0.1), softmax),
    (losses.BinaryCrossentropy(), sigmoid),
    (losses.BinaryCrossentropy(label_smoothing=0.1), sigmoid)])
def test_fused_loss_equals_the_activation_then_the_loss(loss, activation):
    logits = RNG.normal(size=(5, 4))
    if activation is softmax:
        labels = to_categorical(RNG.integers(0, 4, 5), 4)
    else:
        labels = RNG.integers(0, 2, size=(5, 4))
    targets = loss.prepare_targets(labels, (None, 4), np.float64)
    fused_gradient = np.empty_like(logits)
    fused = loss.value_and_gradient(targets, logits, fused_gradient, from_logits=True)
    assert fused == pytest.approx(loss.value_and_gradient(targets, activation(logits)), rel=1e-9)
    composed = numeric_gradient(lambda: loss.value_and_gradient(targets, activation(logits)),
                                logits)
    np.testing.assert_allclose(fused_gradient, composed, rtol=1e-6, atol=1e-9)
    assert loss.fused_activation == ("softmax" if activation is softmax else "sigmoid")
    assert getattr(activations, loss.fused_activation).name == loss.fused_activation


def test_gradients_by_hand():
    # softmax cross-entropy from logits: (softmax(z) - t) / batch
    logits = np.array([[0.0, np.log(3.0)]])  # softmax = [0.25, 0.75]
    gradient = np.empty_like(logits)
    cce = losses.CategoricalCrossentropy()
    assert cce.value_and_gradient(np.array([[0.0, 1.0]]), logits, gradient, True) == \
        pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(gradient, [[0.25, -0.25]])
    # sigmoid cross-entropy: (sigmoid(z) - t) / (batch * features)
    logits = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])  # sigmoid = [0.5, 0.75], [0.5, 0.5]
    gradient = np.empty_like(logits)
    losses.BinaryCrossentropy().value_and_gradient(np.array([[1.0, 0.0], [0.0, 0.0]]), logits,
                                                   gradient, from_logits=True)
    np.testing.assert_allclose(gradient, [[-0.125, 0.1875], [0.125, 0.125]])
    # mean squared error: 2 (p - t) / (batch * features)
    gradient = np.empty((2, 1))
    assert losses.MeanSquaredError().value_and_gradient(
        np.array([[1.0], [0.0]]), np.array([[3.0], [0.5]]), gradient) == pytest.approx(2.125)
    np.testing.assert_allclose(gradient, [[2.0], [0.5]])


def test_label_smoothing_as_keras():
    cce = losses.CategoricalCrossentropy(label_smoothing=0.3)
    targets = cce.prepare_targets([[0, 1, 0]], (None, 3), np.float64)
    np.testing.assert_allclose(targets, [[0.1, 0.8, 0.1]])
    probabilities = np.array([[0.2, 0.5, 0.3]])
    expected = -(0.1 * np.log(0.2) + 0.8 * np.log(0.5) + 0.1 * np.log(0.3))
    assert cce([[0, 1, 0]], probabilities) == pytest.approx(expected)
    bce = losses.BinaryCrossentropy(label_smoothing=0.2)
    np.testing.assert_allclose(bce.prepare_targets([1, 0], (None, 1), np.float64),
                               [[0.9], [0.1]])
    expected = -(0.9 * np.log(0.7) + 0.1 * np.log(0.3))
    assert losses.binary_crossentropy([[1]], [[0.7]], label_smoothing=0.2) == \
        pytest.approx([expected])


def test_huge_logits_stay_finite():
    for loss, targets in ((losses.CategoricalCrossentropy(), np.array([[1.0, 0.0], [0.0, 1.0]])),
                          (losses.BinaryCrossentropy(), np.array([[1.0, 0.0], [0.0, 1.0]]))):
        logits = np.array([[-1e4, 1e4], [1e4, -1e4]], np.float32)
        gradient = np.empty_like(logits)
        value = loss.value_and_gradient(targets.astype(np.float32), logits, gradient,
                                        from_logits=True)
        assert np.isfinite(value) and np.isfinite(gradient).all()
    # every binary prediction wrong by 1e4: each element's loss is 1e4
    assert value == pytest.approx(1e4)
    np.testing.assert_allclose(gradient, [[-0.25, 0.25], [0.25, -0.25]])


def test_probabilities_are_clipped_as_keras():
    # p = 0 for the true class is clipped to 1e-7: loss -log(1e-7), no gradient there
    value = losses.binary_crossentropy([[1.0]], [[0.0]])
    assert value == pytest.approx([-np.log(1e-7)], rel=1e-5)
    gradient = np.empty((1, 1))
    losses.BinaryCrossentropy().value_and_gradient(np.array([[1.0]]), np.array([[0.0]]),
                                                   gradient)
    assert gradient[0, 0] == 0
    assert losses.categorical_crossentropy([[1, 0]], [[0.0, 1.0]]) == pytest.approx(
        [-np.log(1e-7)], rel=1e-5)


def test_float32_stays_float32():
    outputs = RNG.normal(size=(3, 2)).astype(np.float32)
    for loss in (losses.CategoricalCrossentropy(), losses.BinaryCrossentropy(),
                 losses.MeanSquaredError(), losses.Huber()):
        targets = loss.prepare_targets(np.array([[0, 1], [1, 0], [1, 0]]), (None, 2),
                                       np.float32)
        assert targets.dtype == np.float32
        gradient = np.empty_like(outputs)
        assert isinstance(loss.value_and_gradient(targets, sigmoid(outputs), gradient), float)
        assert loss.call([[0, 1]], sigmoid(outputs[:1])).dtype == np.float32


# ------------------------------------------------------------------ reductions

def test_reductions_and_sample_weights():
    y_true, y_pred = [[0.0], [0.0], [0.0]], [[1.0], [2.0], [3.0]]  # squared errors 1, 4, 9
    assert losses.MeanSquaredError()(y_true, y_pred) == pytest.approx(14 / 3)
    assert losses.MeanSquaredError(reduction="sum")(y_true, y_pred) == pytest.approx(14)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(y_true, y_pred),
                               [1, 4, 9])
    weights = [1.0, 0.0, 2.0]
    assert losses.MeanSquaredError()(y_true, y_pred, weights) == pytest.approx(19 / 3)
    assert losses.MeanSquaredError(reduction="mean_with_sample_weight")(
        y_true, y_pred, weights) == pytest.approx(19 / 3)
    assert losses.MeanSquaredError(reduction="sum")(y_true, y_pred, 2.0) == pytest.approx(28)
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.MeanSquaredError(reduction="average")


def test_ignore_class_counts_only_the_other_samples():
    scce = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    labels = np.array([1, -1, 2])
    probabilities = np.array(KERAS_PROBABILITIES + [[0.3, 0.3, 0.4]])[[0, 2, 1]]
    per_sample = losses.sparse_categorical_crossentropy(labels, probabilities, ignore_class=-1)
    np.testing.assert_allclose(per_sample, [-np.log(0.95), 0, -np.log(0.1)], rtol=1e-6)
    assert scce(labels, probabilities) == pytest.approx(per_sample.sum() / 2)
    targets = scce.prepare_targets(labels, (None, 3), np.float64)
    gradient = np.empty_like(probabilities)
    assert scce.value_and_gradient(targets, probabilities, gradient) == pytest.approx(
        per_sample.sum() / 2)
    assert not gradient[1].any()
    np.testing.assert_allclose(gradient[0], [1 / 2, 1 / 2 - 1 / (2 * 0.95), 1 / 2], rtol=1e-6)


# ------------------------------------------------------------ target checks

def test_prepare_targets_errors_name_the_problem():
    cce, scce = losses.CategoricalCrossentropy(), losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match="expects one-hot labels.*to_categorical"):
        cce.prepare_targets(np.array([0, 2]), (None, 3), np.float32)
    with pytest.raises(ValueError, match="expects integer class labels.*argmax"):
        scce.prepare_targets(np.eye(3)[:2], (None, 3), np.float32)
    with pytest.raises(ValueError, match=r"labels out of range.*\[0, 3\)"):
        scce.prepare_targets(np.array([0, 3]), (None, 3), np.float32)
    with pytest.raises(ValueError, match="labels must lie in"):
        losses.BinaryCrossentropy().prepare_targets(np.array([0, 2]), (None, 1), np.float32)
    with pytest.raises(ValueError, match=r"mean_squared_error expects shape \(2, 3\)"):
        losses.MeanSquaredError().prepare_targets(np.zeros((2, 2)), (None, 3), np.float32)
    with pytest.raises(ValueError, match="finite"):
        losses.MeanSquaredError().prepare_targets(np.array([np.nan]), (None, 1), np.float32)
    with pytest.raises(TypeError, match="labels must be numbers"):
        cce.prepare_targets(np.array(["a", "b"]), (None, 1), np.float32)
    with pytest.raises(ValueError, match="takes no logits"):
        losses.MeanSquaredError().value_and_gradient(np.zeros((1, 1)), np.zeros((1, 1)),
                                                     from_logits=True)


def test_labels_of_one_value_fit_outputs_of_one_feature():
    for loss in (losses.BinaryCrossentropy(), losses.MeanSquaredError()):
        targets = loss.prepare_targets(np.array([1, 0, 1]), (None, 1), np.float32)
        assert targets.shape == (3, 1) and targets.dtype == np.float32


def test_class_axis_argument():
    probabilities = softmax(RNG.normal(size=(2, 4, 3)))  # classes on axis 1 below
    one_hot = to_categorical(RNG.integers(0, 3, (2, 4)), 3)
    moved = losses.categorical_crossentropy(one_hot.transpose(0, 2, 1),
                                            probabilities.transpose(0, 2, 1), axis=1)
    np.testing.assert_allclose(moved, losses.categorical_crossentropy(one_hot, probabilities))
    with pytest.raises(ValueError, match="class axis last"):
        losses.CategoricalCrossentropy(axis=1).value_and_gradient(one_hot, probabilities)


# ----------------------------------------------------------- custom functions

def squared_error(y_true, y_pred):
    return np.mean((y_pred - y_true) ** 2, axis=-1)


@pytest.mark.parametrize("fn", [squared_error, lambda t, p: np.mean((p - t) ** 2)],
                         ids=["per-sample", "scalar"])
def test_custom_function_gradient_matches_mean_squared_error(fn):
    wrapper = losses.get(fn)
    assert isinstance(wrapper, losses.LossFunctionWrapper) and wrapper.fused_activation is None
    outputs = RNG.normal(size=(5, 3))
    targets = wrapper.prepare_targets(RNG.normal(size=(5, 3)), (None, 3), np.float64)
    gradient, expected = np.empty_like(outputs), np.empty_like(outputs)
    value = wrapper.value_and_gradient(targets, outputs, gradient)
    assert value == pytest.approx(
        losses.MeanSquaredError().value_and_gradient(targets, outputs, expected))
    np.testing.assert_allclose(gradient, expected, rtol=1e-7, atol=1e-10)


def test_custom_function_called_as_keras_and_checked():
    wrapper = losses.get(squared_error)
    assert wrapper([1.0, 0.0], [[3.0], [1.0]]) == pytest.approx(2.5)  # labels get an axis of 1
    assert losses.LossFunctionWrapper(squared_error, reduction="sum")(
        [[1.0], [0.0]], [[3.0], [1.0]]) == pytest.approx(5)
    with pytest.raises(ValueError, match="one loss per sample or a scalar"):
        losses.get(lambda t, p: np.zeros(3)).value_and_gradient(np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(TypeError, match="fn must be a function"):
        losses.LossFunctionWrapper("mse")


def test_custom_function_takes_integer_labels_and_keeps_its_name():
    def my_sparse_loss(y_true, y_pred):
        return -np.log(np.take_along_axis(y_pred, y_true.astype(int)[:, None], 1)[:, 0])

    wrapper = losses.get(my_sparse_loss)
    assert wrapper.name == "my_sparse_loss"
    labels = np.array([0, 2, 1, 1])
    probabilities = softmax(RNG.normal(size=(4, 3)))
    targets = wrapper.prepare_targets(labels, (None, 3), np.float64)
    gradient = np.empty_like(probabilities)
    chosen = probabilities[np.arange(4), labels]
    assert wrapper.value_and_gradient(targets, probabilities, gradient) == pytest.approx(
        -np.log(chosen).mean())
    expected = np.zeros_like(probabilities)
    expected[np.arange(4), labels] = -1 / (4 * chosen)  # d mean(-log p_label) / dp
    np.testing.assert_allclose(gradient, expected, rtol=1e-7, atol=1e-10)


# ------------------------------------------------------- names and saving

def test_names_aliases_and_functions():
    expected = {"categorical_crossentropy": losses.CategoricalCrossentropy,
                "CategoricalCrossentropy": losses.CategoricalCrossentropy,
                "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy,
                "binary_crossentropy": losses.BinaryCrossentropy, "bce": losses.BinaryCrossentropy,
                "mean_squared_error": losses.MeanSquaredError, "mse": losses.MeanSquaredError,
                "mae": losses.MeanAbsoluteError,
                "mean_absolute_error": losses.MeanAbsoluteError, "huber": losses.Huber,
                "Huber": losses.Huber}
    for name, cls in expected.items():
        assert type(losses.get(name)) is cls
    for function, cls in ((losses.categorical_crossentropy, losses.CategoricalCrossentropy),
                          (losses.sparse_categorical_crossentropy,
                           losses.SparseCategoricalCrossentropy),
                          (losses.binary_crossentropy, losses.BinaryCrossentropy),
                          (losses.mse, losses.MeanSquaredError), (losses.huber, losses.Huber)):
        assert type(losses.get(function)) is cls
    loss = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(loss) is loss
    assert losses.get({"class_name": "Huber", "config": {"delta": 2.0}}).delta == 2.0
    with pytest.raises(ValueError, match="unknown loss 'hinge'; valid losses: .*'mse'"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="Could not interpret loss identifier"):
        losses.get(3)


@pytest.mark.parametrize("loss", [
    losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, name="cce"),
    losses.SparseCategoricalCrossentropy(ignore_class=0, reduction="sum"),
    losses.BinaryCrossentropy(label_smoothing=0.2), losses.MeanSquaredError(),
    losses.MeanAbsoluteError(reduction=None), losses.Huber(delta=0.5)])
def test_serialize_round_trip(loss):
    config = losses.serialize(loss)
    assert config["class_name"] == type(loss).__name__
    restored = losses.deserialize(config)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


def test_custom_functions_cannot_be_saved():
    with pytest.raises(ValueError, match="custom loss function 'squared_error' cannot be saved"):
        losses.serialize(squared_error)


def test_bad_arguments():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="from_logits"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=0)
    with pytest.raises(TypeError, match="axis"):
        losses.CategoricalCrossentropy(axis=True)


def test_regression_labels_broadcast_against_the_outputs_as_keras():
    """mse of labels (n,) against outputs (n, 2): Keras expands the labels to
    (n, 1) and broadcasts them over the features."""
    loss = losses.MeanSquaredError()
    outputs = np.array([[0.0, 1.0], [2.0, 4.0]])
    targets = loss.prepare_targets(np.array([1.0, 2.0]), (None, 2), np.float64)
    value = loss.value_and_gradient(targets, outputs)
    assert value == pytest.approx(((1 + 0) / 2 + (0 + 4) / 2) / 2)
    with pytest.raises(ValueError, match="do not match"):
        loss.prepare_targets(np.zeros((2, 3)), (None, 2), np.float64)


@pytest.mark.parametrize("loss, activation", [
    (losses.CategoricalCrossentropy(), "softmax"),
    (losses.BinaryCrossentropy(), "sigmoid"),
])
def test_value_and_gradient_fills_the_activation_of_the_logits(loss, activation):
    """``activated`` receives the output activation bit for bit as the
    activation computes it, and the loss and gradient stay as without it."""
    rng = np.random.default_rng(0)
    logits = (4 * rng.standard_normal((7, 5))).astype(np.float32)
    targets = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 7)]
    plain_gradient, gradient = np.empty_like(logits), np.empty_like(logits)
    activated = np.empty_like(logits)
    value = loss.value_and_gradient(targets, logits, gradient, True, activated)
    assert value == loss.value_and_gradient(targets, logits, plain_gradient, True)
    assert gradient.tobytes() == plain_gradient.tobytes()
    expected = activations.get(activation).forward(logits, np.empty_like(logits))
    assert activated.tobytes() == expected.tobytes()
    without_gradient = np.empty_like(logits)
    assert loss.value_and_gradient(targets, logits, None, True, without_gradient) == value
    assert without_gradient.tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="only filled from logits"):
        loss.value_and_gradient(targets, logits, None, False, activated)
