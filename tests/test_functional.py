"""Functional models, nested models, freezing, the *_on_batch methods and
the training loop's callbacks, against Sequential twins, finite
differences and Keras's documented behaviour."""

import subprocess
import sys

import numpy as np
import pytest

import fastconv as keras
from conftest import PACKAGE_PARENT, subprocess_env
from fastconv import callbacks, layers, models, optimizers, utils
from helpers.gradcheck import numeric_gradient


def images(n=32, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, channels)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    return x, y


def convnet_layers():
    return [layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(2, activation="softmax")]


def test_import_gives_keras_namespace():
    code = ("import fastconv as keras\n"
            "names = ['layers', 'models', 'datasets', 'utils', 'optimizers', 'losses', "
            "'metrics', 'activations', 'callbacks', 'initializers', 'regularizers', 'backend', "
            "'Sequential', 'Model', 'Input', 'load_model']\n"
            "missing = [n for n in names if not hasattr(keras, n)]\n"
            "assert not missing, missing\n"
            "assert keras.backend.image_data_format() == 'channels_last'\n"
            "assert callable(keras.datasets.mnist.load_data)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(),
                   cwd=PACKAGE_PARENT)


def test_functional_model_matches_its_sequential_twin_bit_for_bit():
    x, y = images()
    utils.set_random_seed(1)
    sequential = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    utils.set_random_seed(1)
    inputs = keras.Input(shape=(8, 8, 1))
    outputs = inputs
    for layer in convnet_layers():
        outputs = layer(outputs)
    functional = keras.Model(inputs=inputs, outputs=outputs)
    for model in (sequential, functional):
        model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    for a, b in zip(sequential.get_weights(), functional.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    utils.set_random_seed(2)
    first = sequential.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    utils.set_random_seed(2)
    second = functional.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    assert first == second
    for a, b in zip(sequential.get_weights(), functional.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sequential.predict(x, verbose=0),
                                  functional.predict(x, verbose=0))


def residual_model(dtype="float64"):
    inputs = keras.Input(shape=(6, 6, 2), dtype=dtype)
    x = layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    shortcut = x
    x = layers.Conv2D(3, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(3, 3, padding="same")(x)
    x = layers.Add()([x, shortcut])
    x = layers.Activation("relu")(x)
    branch = layers.Conv2D(2, 1)(inputs)
    x = layers.Concatenate()([x, branch])
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_residual_block_gradients_match_finite_differences():
    utils.set_random_seed(3)
    model = residual_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6, 6, 2))
    y = rng.integers(0, 3, 5)
    _, grads = model.compute_gradients(x, y)
    for weight, grad in zip(model.trainable_weights, grads, strict=True):
        numeric = numeric_gradient(lambda: model.evaluate(x, y, verbose=0), weight)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_shared_layer_sums_its_gradients_over_its_calls():
    inputs = keras.Input(shape=(4,), dtype="float64")
    shared = layers.Dense(4, activation="tanh")
    outputs = layers.Dense(2, activation="softmax")(shared(shared(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 2, 6)
    _, grads = model.compute_gradients(x, y)
    for weight, grad in zip(model.trainable_weights, grads, strict=True):
        numeric = numeric_gradient(lambda: model.evaluate(x, y, verbose=0), weight)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_multiple_inputs_and_outputs_train_with_weighted_losses():
    left, right = keras.Input(shape=(3,), name="left"), keras.Input(shape=(2,), name="right")
    joined = layers.Concatenate()([layers.Dense(4, activation="relu")(left), right])
    label = layers.Dense(2, activation="softmax", name="label")(joined)
    score = layers.Dense(1, name="score")(joined)
    model = keras.Model([left, right], [label, score])
    model.compile("adam", loss={"label": "sparse_categorical_crossentropy", "score": "mse"},
                  loss_weights={"label": 1.0, "score": 0.5},
                  metrics={"label": ["accuracy"], "score": ["mae"]})
    rng = np.random.default_rng(2)
    x = {"left": rng.random((16, 3)), "right": rng.random((16, 2))}
    y = [rng.integers(0, 2, 16), rng.random((16, 1))]
    assert model.metrics_names == ["loss", "label_loss", "score_loss", "label_accuracy",
                                   "score_mae"]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["label_loss"] + 0.5 * logs["score_loss"])
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert sorted(history.history) == sorted(model.metrics_names)
    label_probs, scores = model.predict([x["left"], x["right"]], verbose=0)
    assert label_probs.shape == (16, 2) and scores.shape == (16, 1)


def test_intermediate_activations_of_a_trained_sequential_model():
    """The book's 5.4 idiom: a model from model.input to the layers' outputs."""
    x, y = images()
    model = models.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                               layers.MaxPooling2D(), layers.Flatten(),
                               layers.Dense(2, activation="softmax")])
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    activation_model = keras.Model(inputs=model.input,
                                   outputs=[layer.output for layer in model.layers[:3]])
    activations = activation_model.predict(x[:1], verbose=0)
    conv = model.layers[0]
    expected = keras.ops.conv2d_forward(x[:1], *conv.get_weights(), activation="relu")
    np.testing.assert_allclose(activations[0], expected, rtol=1e-6)
    assert [a.shape for a in activations] == [(1, 6, 6, 4), (1, 3, 3, 4), (1, 36)]
    assert model.get_layer(index=1) is model.layers[1]
    assert model.get_layer(name=conv.name) is conv


def test_nested_model_in_a_sequential_and_called_as_a_layer():
    utils.set_random_seed(4)
    base = models.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3,
                                                                         activation="relu"),
                              layers.MaxPooling2D()], name="base")
    model = models.Sequential([base, layers.Flatten(), layers.Dense(2, activation="softmax")])
    inputs = keras.Input(shape=(8, 8, 1))
    twin = keras.Model(inputs, model.layers[2](model.layers[1](base(inputs))))
    x, y = images()
    np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))
    assert len(model.weights) == 4 and model.count_params() == 40 + 74
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = base.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, base.get_weights()))


def test_frozen_layers_keep_their_weights_and_show_in_the_summary(capsys):
    x, y = images()
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    conv = model.layers[0]
    conv.trainable = False
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    frozen = conv.get_weights()
    dense_before = model.layers[-1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, conv.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(dense_before[0], model.layers[-1].get_weights()[0])
    model.summary()
    text = capsys.readouterr().out
    assert "Trainable params: 74" in text and "Non-trainable params: 40" in text
    # Keras's recompile rule: unfreezing takes effect at the next compile.
    conv.trainable = True
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(frozen[0], conv.get_weights()[0])
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(frozen[0], conv.get_weights()[0])


def test_model_trainable_false_freezes_every_layer():
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    model.trainable = False
    assert all(not layer.trainable for layer in model.layers)
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 4


def test_on_batch_methods_return_keras_values():
    x, y = images(16)
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    expected = model.evaluate(x, y, verbose=0, batch_size=16)
    assert model.test_on_batch(x, y) == pytest.approx(expected)
    model.reset_metrics()
    loss, accuracy = model.train_on_batch(x, y)
    assert loss == pytest.approx(expected[0]) and accuracy == pytest.approx(expected[1])
    assert model.optimizer.iterations == 1
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict(x, verbose=0))
    loss_only = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    loss_only.compile("sgd", "sparse_categorical_crossentropy")
    assert isinstance(loss_only.train_on_batch(x, y), float)


def test_one_optimizer_for_two_models_raises_as_keras():
    x, y = images(8)
    optimizer = optimizers.Adam()
    first = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    second = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    first.compile(optimizer, "sparse_categorical_crossentropy")
    second.compile(optimizer, "sparse_categorical_crossentropy")
    first.fit(x, y, verbose=0)
    before = second.get_weights()
    with pytest.raises(ValueError, match="Unknown variable"):
        second.fit(x, y, verbose=0)
    for a, b in zip(before, second.get_weights()):
        np.testing.assert_array_equal(a, b)


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if name.startswith("on_") and callable(attribute):
            def record(*args, **kwargs):
                logs = kwargs.get("logs", args[-1] if args and isinstance(args[-1], dict)
                                  else None)
                self.calls.append((name, sorted(logs) if logs else []))
                return attribute(*args, **kwargs)
            return record
        return attribute


def test_fit_calls_the_hooks_in_keras_order_with_keras_logs():
    x, y = images(8)
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x[:4], y[:4]),
              callbacks=[recorder])
    names = [name for name, _ in recorder.calls if not name.startswith("on_batch")]
    epoch = (["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 2
             + ["on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
                "on_epoch_end"])
    assert names == ["on_train_begin"] + epoch * 2 + ["on_train_end"]
    logs = dict(recorder.calls)
    assert logs["on_train_batch_end"] == ["accuracy", "loss"]
    assert logs["on_test_end"] == ["accuracy", "loss"]
    assert logs["on_epoch_end"] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert model.history.history["val_loss"] and model.history.epoch == [0, 1]


def test_early_stopping_restores_the_best_weights_of_a_real_fit():
    x, y = images(32)
    utils.set_random_seed(5)
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    model.compile(optimizers.SGD(learning_rate=5.0), "sparse_categorical_crossentropy")
    saved = {}

    class Keep(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch] = (logs["loss"], self.model.get_weights())

    stop = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    model.fit(x, y, epochs=30, verbose=0, callbacks=[Keep(), stop])
    best = min(saved, key=lambda epoch: saved[epoch][0])
    assert stop.stopped_epoch == max(saved) < 29
    for a, b in zip(saved[best][1], model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_raising_callback_leaves_the_model_usable():
    x, y = images(8)
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    model.compile("sgd", "sparse_categorical_crossentropy")

    def explode(batch, logs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, verbose=0, callbacks=[callbacks.LambdaCallback(on_batch_end=explode)])
    assert model.fit(x, y, verbose=0).history["loss"][0] > 0


def test_learning_rate_schedule_and_reduce_on_plateau_drive_the_optimizer():
    x, y = images(16)
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    model.compile(optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[scheduler])
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    assert model.optimizer.learning_rate == pytest.approx(0.0125)


BAD_GRAPHS = {
    "wrong rank": (lambda i: layers.Dense(2)(layers.Conv2D(2, 3)(i)), None),
    "not symbolic": (lambda i: keras.Model(i, np.zeros(3)), TypeError),
}


def test_bad_graphs_raise_clear_errors():
    inputs = keras.Input(shape=(8, 8, 1))
    with pytest.raises(ValueError, match="4-D NHWC"):
        layers.Conv2D(2, 3)(keras.Input(shape=(8,)))
    with pytest.raises(TypeError, match="KerasTensors"):
        keras.Model(inputs, np.zeros(3))
    other = keras.Input(shape=(8, 8, 1))
    joined = layers.Add()([layers.Conv2D(2, 3)(inputs), layers.Conv2D(2, 3)(other)])
    with pytest.raises(ValueError, match="Graph disconnected"):
        keras.Model(inputs, joined)
    with pytest.raises(ValueError, match="same shape|one shape"):
        layers.Add()([inputs, layers.Conv2D(2, 3)(inputs)])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        layers.Add()([inputs])
    with pytest.raises(ValueError, match="Concatenate"):
        layers.Concatenate(axis=1)([inputs, layers.Conv2D(1, 3)(inputs)])


def test_bad_data_for_a_functional_model_leaves_it_usable():
    utils.set_random_seed(6)
    model = residual_model("float32")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((8, 6, 6, 2)).astype(np.float32)
    y = np.arange(8) % 3
    before = model.get_weights()
    for bad_x, bad_y, message in [(x[..., :1], y, "channels"), (x[0], y, "expects inputs"),
                                  (x, y[:4], "same number of samples"),
                                  (x, y + 3, "out of range")]:
        with pytest.raises(ValueError, match=message):
            model.fit(bad_x, bad_y, verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy", "acuracy"])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.metrics_names == ["loss", "accuracy"]
    assert model.fit(x, y, verbose=0).history["loss"][0] > 0


def test_functional_model_saves_and_loads(tmp_path):
    utils.set_random_seed(7)
    model = residual_model("float32")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(1).random((8, 6, 6, 2)).astype(np.float32)
    y = np.arange(8) % 3
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "model.npz")
    loaded = models.load_model(tmp_path / "model.npz")
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    utils.set_random_seed(8)
    first = model.fit(x, y, verbose=0).history
    utils.set_random_seed(8)
    assert loaded.fit(x, y, verbose=0).history == first


def test_input_gradients_match_finite_differences():
    """model.gradients gives d(sum(output * g))/dx, in inference mode."""
    utils.set_random_seed(9)
    model = residual_model()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 6, 2))
    weights = rng.standard_normal((2, 3))
    grad = model.gradients(x, weights)
    numeric = numeric_gradient(lambda: float((model.predict(x, verbose=0) * weights).sum()), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_gradients_with_respect_to_an_inner_tensor_as_grad_cam_needs():
    """The gradient of a class score with respect to a conv layer's output
    equals the head's input gradient at that output."""
    utils.set_random_seed(10)
    inputs = keras.Input(shape=(6, 6, 2), dtype="float64")
    conv = layers.Conv2D(3, 3, activation="relu")
    features = conv(inputs)
    head = [layers.Flatten(), layers.Dense(4, activation="softmax")]
    outputs = head[1](head[0](features))
    model = keras.Model(inputs, outputs)
    grad_model = keras.Model(model.inputs, [conv.output, model.output])
    x = np.random.default_rng(4).standard_normal((1, 6, 6, 2))
    feature_values, predictions = grad_model.predict(x, verbose=0)
    class_score = np.zeros_like(predictions)
    class_score[0, predictions.argmax()] = 1
    (grad,) = grad_model.gradients(x, [None, class_score], wrt=[conv.output])
    head_inputs = keras.Input(shape=feature_values.shape[1:], dtype="float64")
    head_model = keras.Model(head_inputs, head[1](head[0](head_inputs)))
    np.testing.assert_allclose(grad, head_model.gradients(feature_values, class_score),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="wrt must hold KerasTensors"):
        grad_model.gradients(x, [None, class_score], wrt=[keras.Input(shape=(2,))])


def test_one_model_predicts_in_several_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor
    utils.set_random_seed(11)
    model = models.Sequential([keras.Input(shape=(8, 8, 1))] + convnet_layers())
    batches = [images(16, seed=seed)[0] for seed in range(8)]
    serial = [model.predict(x, verbose=0) for x in batches]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            concurrent = list(pool.map(lambda x: model.predict(x, verbose=0), batches))
            for a, b in zip(serial, concurrent):
                np.testing.assert_array_equal(a, b)


def test_batch_norm_folds_into_the_convolution_at_inference():
    """Conv2D -> BatchNormalization -> ReLU predicts as the unfolded layers do
    (float64), and training is unaffected by the fold."""
    utils.set_random_seed(12)
    inputs = keras.Input(shape=(8, 8, 2), dtype="float64")
    conv = layers.Conv2D(4, 3, padding="same")
    norm = layers.BatchNormalization()
    dense = layers.Dense(3)
    dense_norm = layers.BatchNormalization()
    x = layers.Activation("relu")(norm(conv(inputs)))
    outputs = dense_norm(dense(layers.Flatten()(x)))
    model = keras.Model(inputs, outputs)
    assert {n.layer for n in model._inference_folds} == {conv, dense}
    model.compile("adam", "mse")
    rng = np.random.default_rng(5)
    x_data, y_data = rng.standard_normal((16, 8, 8, 2)), rng.standard_normal((16, 3))
    model.fit(x_data, y_data, epochs=2, batch_size=4, verbose=0)
    unfolded = x_data
    for layer in model.layers[1:]:
        unfolded = layer.forward(unfolded)
    np.testing.assert_allclose(model.predict(x_data, verbose=0), unfolded, rtol=1e-12,
                               atol=1e-12)
    features = conv(inputs)
    both = keras.Model(inputs, [norm(features), features])  # the conv output is needed too
    assert not both._inference_folds


def test_layer_outputs_have_numpy_as_keras_tensors():
    x = np.ones((2, 4), np.float32)
    output = layers.Dense(3)(x)
    assert type(output.numpy()) is np.ndarray and np.array_equal(output.numpy(), output)


def test_input_gradients_in_inference_mode_through_dropout_and_batch_norm():
    """Model.gradients runs the layers in inference mode: dropout is the
    identity and batch normalisation uses its moving statistics, in the
    backward pass as in the forward one (finite differences of predict)."""
    utils.set_random_seed(13)
    inputs = keras.Input(shape=(6, 6, 2), dtype="float64")
    x = layers.Conv2D(3, 3, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.SpatialDropout2D(0.5)(layers.Dropout(0.5)(x))
    x = layers.GaussianDropout(0.3)(layers.Flatten()(x))
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(6)
    x_data = rng.standard_normal((4, 6, 6, 2))
    model.fit(x_data, np.arange(4) % 2, verbose=0)  # leaves training-mode state behind
    weights = rng.standard_normal((4, 2))
    grad = model.gradients(x_data, weights)
    numeric = numeric_gradient(
        lambda: float((model.predict(x_data, verbose=0) * weights).sum()), x_data)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------- summary

RESIDUAL_SUMMARY = '''\
Model: "residual"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ image (InputLayer)  │ (None, 8, 8, 1)   │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ conv (Conv2D)       │ (None, 8, 8, 4)   │         40 │ image[0][0]       │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ skip (Conv2D)       │ (None, 8, 8, 4)   │          8 │ image[0][0]       │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ add (Add)           │ (None, 8, 8, 4)   │          0 │ conv[0][0],       │
│                     │                   │            │ skip[0][0]        │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ max_pooling2d_with… │ (None, 4, 4, 4)   │          0 │ add[0][0]         │
│ (MaxPooling2D)      │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ flatten (Flatten)   │ (None, 64)        │          0 │ max_pooling2d_wi… │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ dense (Dense)       │ (None, 3)         │        195 │ flatten[0][0]     │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 243 (972.00 B)
 Trainable params: 243 (972.00 B)
 Non-trainable params: 0 (0.00 B)
'''


def summary_graph():
    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    skip = layers.Conv2D(4, 1, name="skip")(inputs)
    x = layers.Add(name="add")([x, skip])
    x = layers.MaxPooling2D(name="max_pooling2d_with_a_long_name")(x)
    outputs = layers.Dense(3, name="dense")(layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs, name="residual")


def test_summary_of_a_graph_lists_connections_as_keras_3():
    """Four columns for a graph that is not a chain: the input layer first,
    layers by depth, inputs as 'layer[node][tensor]'; long words cut with '…'.
    print_fn gets the whole text in one call, as Keras 3 gives it."""
    printed = []
    summary_graph().summary(line_length=76, print_fn=printed.append)
    assert printed == [RESIDUAL_SUMMARY]


def test_summary_of_a_chain_graph_has_three_columns_and_the_input_row(capsys):
    inputs = keras.Input(shape=(4,), name="features")
    model = keras.Model(inputs, layers.Dense(2, name="out")(inputs), name="chain")
    outer = models.Sequential([model], name="outer")
    outer.summary(line_length=64, expand_nested=True, show_trainable=True)
    assert capsys.readouterr().out == '''\
Model: "outer"
┏━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━┓
┃ Layer (type)           ┃ Output Shape       ┃ Param # ┃ Tra… ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━┩
│ chain (Functional)     │ (None, 2)          │      10 │  Y   │
├────────────────────────┼────────────────────┼─────────┼──────┤
│    └ features          │ (None, 4)          │       0 │  -   │
│ (InputLayer)           │                    │         │      │
├────────────────────────┼────────────────────┼─────────┼──────┤
│    └ out (Dense)       │ (None, 2)          │      10 │  Y   │
└────────────────────────┴────────────────────┴─────────┴──────┘
 Total params: 10 (40.00 B)
 Trainable params: 10 (40.00 B)
 Non-trainable params: 0 (0.00 B)
'''


def test_summary_counts_optimizer_variables_once_training_built_them(capsys):
    """Keras 3 adds the optimizer's variables: the step count (int64), the
    learning rate (float32) and Adam's two slots per weight."""
    model = summary_graph()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.summary()
    assert "Optimizer params" not in capsys.readouterr().out
    model.fit(images(4)[0], np.zeros(4), verbose=0)
    model.summary()
    totals = capsys.readouterr().out.splitlines()[-4:]
    assert totals == [" Total params: 731 (2.86 KB)", " Trainable params: 243 (972.00 B)",
                      " Non-trainable params: 0 (0.00 B)",
                      " Optimizer params: 488 (1.91 KB)"]  # 2 * 243 + 2; 8 + 4 + 2 * 972 bytes


def test_summary_arguments_are_checked():
    model = summary_graph()
    with pytest.raises(ValueError, match="Insufficient console width"):
        model.summary(line_length=15)
    with pytest.raises(ValueError, match="positions must have 4 entries"):
        model.summary(positions=[0.5, 1.0])
    with pytest.raises(TypeError, match="line_length"):
        model.summary(line_length="wide")
    printed = []
    model.summary(line_length=76, print_fn=printed.append, layer_range=["conv", "add"])
    assert [line.split("│")[1].strip() for line in printed[0].splitlines()
            if line.startswith("│ ") and "(" in line.split("│")[1]] == [
        "conv (Conv2D)", "skip (Conv2D)", "add (Add)"]


def test_training_skips_input_gradients_nothing_trainable_needs():
    """Layers with nothing trainable before them (augmentation layers, a
    frozen base) get no gradient at all: the layer after them computes no
    input gradient."""
    calls = []

    class Spy(layers.Layer):
        def compute_output_shape(self, input_shape):
            return tuple(input_shape)

        def call(self, x, training, activation):
            return x

        def call_backward(self, x, y, dy, activation, need_input_grad):
            calls.append(need_input_grad)
            return dy if need_input_grad else None

    base = keras.Sequential([keras.Input(shape=(8, 8, 1)), Spy(), layers.Conv2D(2, 3)])
    base.trainable = False
    model = keras.Sequential([base, Spy(), layers.Flatten(), layers.Dense(2,
                                                                         activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = images(4)
    model.fit(x, y, verbose=0)
    assert calls == []
    base.trainable = model.trainable = True
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, verbose=0)
    assert calls == [True]  # the outer Spy passes dy on to the base; the inner one gets none


def test_a_graph_with_a_cycle_is_refused():
    """Layer calls cannot make a cycle, but a hand-edited graph can."""
    inputs = keras.Input(shape=(4,))
    first = layers.Dense(4)(inputs)
    second = layers.Dense(4)(first)
    first.node.inputs = [second]  # first <- second <- first
    with pytest.raises(ValueError, match="cycle"):
        keras.Model(inputs, second)
