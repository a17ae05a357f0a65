"""Sequential models: training, backends, saving, bad input, progress output,
optimizers, losses, the example script and (when the data is there) MNIST."""

import os
import re
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastconv
from conftest import PACKAGE_PARENT
from fastconv import layers, losses, models, optimizers, utils
from fastconv.examples import mnist as mnist_example
from helpers.toy_data import bars


def small_model(loss="sparse_categorical_crossentropy", optimizer="rmsprop", dropout=0.0):
    model = models.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(dropout),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def assert_same_weights(a, b, **tolerance):
    assert len(a) == len(b)
    for left, right in zip(a, b):
        np.testing.assert_allclose(left, right, **tolerance)


# ------------------------------------------------------------------ training


def test_learns_a_two_class_pattern(backend):
    utils.set_random_seed(0)
    x, y = bars(256)
    model = small_model(optimizer=optimizers.RMSprop(learning_rate=0.01))
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    x_test, y_test = bars(128, seed=1)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert test_accuracy > 0.9 and test_loss < history.history["loss"][0]


def test_backends_train_to_the_same_weights(restore_backend):
    x, y = bars(80)
    results = []
    for backend in ("cython", "numpy"):
        fastconv.set_backend(backend)
        utils.set_random_seed(5)
        model = small_model(optimizer="sgd")
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        results.append(model.get_weights())
    assert_same_weights(*results, rtol=1e-4, atol=1e-6)


def test_sparse_and_categorical_losses_agree():
    x, y = bars(64)
    histories, weights = [], []
    for loss, labels in (("sparse_categorical_crossentropy", y),
                         ("categorical_crossentropy", utils.to_categorical(y, 2))):
        utils.set_random_seed(7)
        model = small_model(loss)
        histories.append(model.fit(x, labels, batch_size=16, epochs=2, verbose=0).history)
        weights.append(model.get_weights())
    assert histories[0].keys() == histories[1].keys()
    for key in histories[0]:
        assert histories[0][key] == pytest.approx(histories[1][key])
    assert_same_weights(*weights, rtol=1e-6)
    probabilities = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    sparse = losses.SparseCategoricalCrossentropy()([1, 0], probabilities)
    categorical = losses.CategoricalCrossentropy()(utils.to_categorical([1, 0], 3), probabilities)
    assert sparse == pytest.approx(categorical) == pytest.approx(-np.log([0.7, 0.5]).mean())


def test_loss_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 0]], np.float32)
    targets = utils.to_categorical([0, 0], 3)
    loss = losses.CategoricalCrossentropy(from_logits=True)
    gradient = np.empty_like(logits)
    assert loss.value_and_gradient(targets, logits, gradient) == pytest.approx(1e4)
    np.testing.assert_allclose(gradient, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-7)

    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(1,))])
    model.set_weights([np.array([[1e4, -1e4, 0]], np.float32), np.zeros(3, np.float32)])
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.array([[1.0], [-1.0]], np.float32), np.array([0, 0])
    value, grads = model.compute_gradients(x, y)
    assert value == pytest.approx(1e4) and all(np.isfinite(g).all() for g in grads)
    assert np.isfinite(model.evaluate(x, y, verbose=0)).all()
    assert np.isfinite(model.predict(x, verbose=0)).all()
    model.fit(x, y, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_history_and_validation_split_takes_the_last_samples():
    utils.set_random_seed(2)
    x, y = bars(100)
    model = small_model()
    history = model.fit(x, y, batch_size=16, epochs=1, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0]
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[80:], y[80:], verbose=0)[0])
    history = model.fit(x, y, epochs=2, validation_data=(x[:10], y[:10]), verbose=0)
    assert [len(values) for values in history.history.values()] == [2, 2, 2, 2]
    assert set(model.fit(x, y, verbose=0).history) == {"loss", "accuracy"}


def test_evaluate_without_metrics_returns_the_loss():
    model = small_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = bars(20)
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_predict_is_float32_and_ignores_dropout():
    utils.set_random_seed(3)
    model = small_model(dropout=0.5)
    x, y = bars(40)
    model.fit(x, y, verbose=0)
    first = model.predict(x, batch_size=7, verbose=0)
    assert first.dtype == np.float32 and first.shape == (40, 2)
    np.testing.assert_array_equal(first, model.predict(x, verbose=0))
    expected = x
    for layer in model.layers:
        expected = layer(expected)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    np.testing.assert_allclose(first.sum(axis=1), 1, rtol=1e-6)


def test_lazy_model_builds_on_first_fit():
    model = models.Sequential([layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(2, activation="softmax")])
    assert not model.built
    printed = []
    model.summary(print_fn=printed.append)  # as Keras 3: no error, unbuilt layers
    assert printed[0].count("0 (unbuilt)") == 3 and " Total params: 0 (0.00 B)" in printed[0]
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = bars(8)
    with pytest.raises(ValueError, match="larger than the input"):
        model.fit(x[:, :2, :2], y, verbose=0)
    assert not any(layer.built for layer in model.layers)
    model.fit(x, y, verbose=0)
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 2)


def test_buffers_are_allocated_once_per_batch_shape():
    model = small_model()
    x, y = bars(40)  # batches of 16, 16 and 8

    def buffers():
        return {id(array) for layer in model.layers for arrays in layer._buffers._arrays.values()
                for array in arrays.values()}

    model.fit(x, y, batch_size=16, verbose=0)
    first = buffers()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert buffers() == first and sum(len(layer._buffers) for layer in model.layers) == len(first)


def test_buffers_keep_the_latest_shapes():
    buffers = utils.Buffers(keep=2)
    first = buffers.get("y", (1, 3), np.float32)
    assert buffers.get("y", (1, 3), np.float32) is first
    buffers.get("y", (2, 3), np.float32)
    buffers.get("y", (1, 3), np.float64)
    assert len(buffers) == 2 and buffers.get("y", (1, 3), np.float32) is not first


def test_set_random_seed_makes_runs_repeatable():
    x, y = bars(48)
    runs = []
    for _ in range(2):
        utils.set_random_seed(11)
        model = small_model(dropout=0.3)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs.append(model.get_weights())
    assert_same_weights(*runs, rtol=1e-6, atol=1e-7)


def test_to_categorical():
    one_hot = utils.to_categorical(np.array([[2], [0], [1]]))
    assert one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot, np.eye(3)[[2, 0, 1]])
    assert utils.to_categorical([1], num_classes=4).shape == (1, 4)
    with pytest.raises(ValueError):
        utils.to_categorical([3], num_classes=2)


# ---------------------------------------------------------------- optimizers


def textbook_steps(name, config, weight, gradients):
    """The weight after one update per gradient, from the Keras equations in float64."""
    w, state = weight.copy(), {}
    for t, g in enumerate(gradients, start=1):
        lr = config.get("learning_rate", 0.01 if name == "sgd" else 0.001)
        if name == "sgd":
            momentum = config.get("momentum", 0.0)
            m = state["m"] = momentum * state.get("m", 0) - lr * g
            if not momentum:
                w = w - lr * g
            elif config.get("nesterov"):
                w = w + momentum * m - lr * g
            else:
                w = w + m
        elif name == "rmsprop":
            rho, eps, momentum = 0.9, 1e-7, config.get("momentum", 0.0)
            v = state["v"] = rho * state.get("v", 0) + (1 - rho) * g ** 2
            if config.get("centered"):
                a = state["a"] = rho * state.get("a", 0) + (1 - rho) * g
                increment = lr * g / np.sqrt(v - a ** 2 + eps)
            else:
                increment = lr * g / np.sqrt(v + eps)
            if momentum:
                increment = state["m"] = momentum * state.get("m", 0) + increment
            w = w - increment
        else:
            b1, b2, eps = 0.9, 0.999, 1e-7
            m = state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
            v = state["v"] = b2 * state.get("v", 0) + (1 - b2) * g ** 2
            w = w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return w


@pytest.mark.parametrize("name, config", [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("rmsprop", {}), ("rmsprop", {"momentum": 0.5}), ("rmsprop", {"centered": True}),
    ("adam", {}), ("adam", {"learning_rate": 0.1}),
])
def test_optimizer_updates_follow_keras(name, config):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3, 4))
    gradients = [rng.standard_normal((3, 4)) * 10.0 ** -k for k in range(3)]
    optimizer = optimizers.OPTIMIZERS.lookup(name)(**config)
    updated = weight.copy()
    for g in gradients:
        optimizer.apply([updated], [g])
    np.testing.assert_allclose(updated, textbook_steps(name, config, weight, gradients),
                               rtol=1e-12, atol=1e-15)
    assert optimizer.iterations == 3


def test_optimizer_step_allocates_nothing_big():
    weights = [np.zeros(100_000, np.float32), np.zeros(1000, np.float32)]
    grads = [np.ones_like(w) for w in weights]
    for optimizer in (optimizers.RMSprop(momentum=0.9, centered=True), optimizers.Adam(),
                      optimizers.SGD(momentum=0.9, nesterov=True)):
        optimizer.apply(weights, grads)  # builds the slots
        tracemalloc.start()
        optimizer.apply(weights, grads)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 40_000, type(optimizer).__name__


def test_optimizer_and_loss_names():
    assert isinstance(optimizers.get("rmsprop"), optimizers.RMSprop)
    assert optimizers.get("Adam").get_config()["beta_2"] == 0.999
    with pytest.raises(ValueError, match="unknown optimizer 'adagard'.*'rmsprop'"):
        optimizers.get("adagard")
    with pytest.raises(ValueError, match="rho"):
        optimizers.RMSprop(rho=1.5)
    with pytest.raises(ValueError, match="unknown loss 'log_cosh'; valid losses: .*'mse'"):
        losses.get("log_cosh")


# ---------------------------------------------------------------- save, load


def test_save_and_load_weights(tmp_path):
    model = small_model()
    model.fit(*bars(32), verbose=0)
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    other = small_model()
    other.load_weights(path)
    assert_same_weights(model.get_weights(), other.get_weights(), rtol=0)
    with np.load(path) as archive:
        assert {"layer_0/kernel", "layer_0/bias", "layer_4/kernel"} <= set(archive.files)


def test_save_and_load_model_continues_training_identically(tmp_path):
    x, y = bars(96)
    utils.set_random_seed(1)
    model = small_model(optimizer=optimizers.RMSprop(momentum=0.5))
    model.fit(x, y, batch_size=32, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = models.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 3 and loaded.metrics_names == ["loss", "accuracy"]
    with np.load(path) as archive:
        assert {"optimizer/iterations", "optimizer/layer_0/kernel/velocity",
                "optimizer/layer_0/kernel/momentum"} <= set(archive.files)

    fresh = small_model(optimizer=optimizers.RMSprop(momentum=0.5))
    fresh.load_weights(path)  # same weights, no optimizer state
    for each in (model, loaded, fresh):
        utils.set_random_seed(2)
        each.fit(x, y, batch_size=32, verbose=0)
    assert_same_weights(model.get_weights(), loaded.get_weights(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(model.get_weights()[0], fresh.get_weights()[0], rtol=1e-6)


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how == "corrupted":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(64) + data[middle + 64:])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("not a model\n")
    elif how == "npy":
        with open(path, "wb") as stream:
            np.save(stream, np.zeros(3))
    elif how == "foreign npz":
        np.savez(path, kernel=np.zeros(3))


@pytest.mark.parametrize("how", ["truncated", "corrupted", "empty", "text", "npy",
                                 "foreign npz"])
def test_damaged_or_foreign_files_raise_value_error(tmp_path, how):
    model = small_model()
    path = tmp_path / "model.npz"
    model.save(path)
    damage(path, how)
    before = model.get_weights()
    with pytest.raises(ValueError, match=re.escape(str(path))):
        models.load_model(path)
    with pytest.raises(ValueError):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights(), rtol=0)


def test_mismatched_files_raise_value_error(tmp_path):
    model = small_model()
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    deeper = models.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                                layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match="holds the weights of layers"):
        deeper.load_weights(path)
    wider = models.Sequential([layers.Conv2D(5, 3, activation="relu", input_shape=(8, 8, 1)),
                               layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.0),
                               layers.Dense(2, activation="softmax")])
    before = wider.get_weights()
    with pytest.raises(ValueError, match="does not fit"):
        wider.load_weights(path)
    assert_same_weights(before, wider.get_weights(), rtol=0)
    with pytest.raises(ValueError, match="only weights"):
        models.load_model(path)
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.npz")


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_earlier_file(tmp_path, monkeypatch, error):
    model = small_model()
    path = tmp_path / "model.npz"
    model.save(path)
    saved = path.read_bytes()
    model.fit(*bars(32), verbose=0)

    def failing_savez(stream, *args, **arrays):
        stream.write(b"PK\x03\x04 half of an archive")
        raise error

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(error)):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == saved
    assert os.listdir(tmp_path) == ["model.npz"]
    models.load_model(path)


# ----------------------------------------------------------------- bad input


BAD_CALLS = {
    "x and y lengths": (lambda m, x, y: m.fit(x, y[:-1]), ValueError, "same number of samples"),
    "image shape": (lambda m, x, y: m.fit(x[:, :6], y), ValueError, r"\(None, 8, 8, 1\)"),
    "channels": (lambda m, x, y: m.fit(np.repeat(x, 3, -1), y), ValueError, "3 channels"),
    "channel axis": (lambda m, x, y: m.predict(x[..., 0]), ValueError, "channel axis"),
    "labels out of range": (lambda m, x, y: m.fit(x, y + 1), ValueError, "out of range"),
    "negative labels": (lambda m, x, y: m.evaluate(x, y - 1), ValueError, "out of range"),
    "one-hot for sparse": (lambda m, x, y: m.fit(x, utils.to_categorical(y, 2)), ValueError,
                           "one-hot"),
    "batch_size 0": (lambda m, x, y: m.fit(x, y, batch_size=0), ValueError, "batch_size"),
    "batch_size -1": (lambda m, x, y: m.predict(x, batch_size=-1), ValueError, "batch_size"),
    "epochs -1": (lambda m, x, y: m.fit(x, y, epochs=-1), ValueError, "epochs"),
    "verbose 3": (lambda m, x, y: m.fit(x, y, verbose=3), ValueError, "verbose"),
    "validation_split": (lambda m, x, y: m.fit(x, y, validation_split=1.0), ValueError,
                         "validation_split"),
    "validation_data": (lambda m, x, y: m.fit(x, y, validation_data=(x, y[:2])), ValueError,
                        "same number of samples"),
    "string inputs": (lambda m, x, y: m.predict(np.array(["a", "b"])), TypeError, "numbers"),
    "unknown optimizer": (lambda m, x, y: m.compile("adagard", "categorical_crossentropy"),
                          ValueError, "unknown optimizer"),
    "unknown loss": (lambda m, x, y: m.compile("sgd", "hinge"), ValueError, "unknown loss"),
    "unknown metric": (lambda m, x, y: m.compile("sgd", "categorical_crossentropy",
                                                 metrics=["auk"]),
                       ValueError, "unknown metric"),
    "add a non-layer": (lambda m, x, y: m.add("dense"), TypeError, "Layer"),
    "duplicate name": (lambda m, x, y: m.add(layers.Dense(2, name=m.layers[0].name)),
                       ValueError, "unique names"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_and_leaves_the_model_usable(case):
    call, error, message = BAD_CALLS[case]
    utils.set_random_seed(4)
    model = small_model()
    x, y = bars(32)
    before = model.get_weights()
    with pytest.raises(error, match=message):
        call(model, x, y)
    assert_same_weights(before, model.get_weights(), rtol=0)
    assert len(model.layers) == 5 and model.loss == "sparse_categorical_crossentropy"
    assert model.fit(x, y, verbose=0).history["loss"][0] > 0


def test_integer_labels_for_categorical_crossentropy():
    model = small_model("categorical_crossentropy")
    x, y = bars(16)
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(x, y, verbose=0)


def test_training_before_compile():
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(x, y)
    assert model.predict(x, verbose=0).shape == (4, 2)
    with pytest.raises(TypeError, match="Layer"):
        models.Sequential([layers.Dense(2), "relu"])


# ------------------------------------------------------------ progress output


def run_fit(capsys, verbose, **kwargs):
    utils.set_random_seed(0)
    small_model().fit(*bars(64), batch_size=16, epochs=2, verbose=verbose, **kwargs)
    return capsys.readouterr().out


NUMBER = r"\d+\.\d{4}(e-\d+)?"
PER_STEP = r"\d+(s|ms|us)/step"


def test_verbose_0_prints_nothing(capsys):
    assert run_fit(capsys, 0) == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    lines = run_fit(capsys, 2).splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    pattern = rf"4/4 - \d+s - {PER_STEP} - accuracy: {NUMBER} - loss: {NUMBER}"
    assert re.fullmatch(pattern, lines[1]) and re.fullmatch(pattern, lines[3])


@pytest.mark.parametrize("verbose", [1, "auto"])
def test_verbose_1_draws_a_progress_bar(capsys, verbose):
    output = run_fit(capsys, verbose, validation_split=0.25)  # 48 samples: 3 steps
    lines = output.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    frames = re.sub(r"\x1b\[[0-9;]*m|\x08", "", lines[1]).split("\r")  # no colours
    assert frames[0] == ""
    assert re.fullmatch(rf"1/3 ━{{20}} \d+s {PER_STEP} - accuracy: {NUMBER} - "
                        rf"loss: {NUMBER}", frames[1])
    assert re.fullmatch(rf"3/3 ━{{20}} \d+s {PER_STEP} - accuracy: {NUMBER} - loss: "
                        rf"{NUMBER} - val_accuracy: {NUMBER} - val_loss: {NUMBER} *",
                        frames[-1])
    assert "\x1b[1m1/3\x1b[0m \x1b[32m━━━━━━\x1b[0m\x1b[37m" + "━" * 14 in lines[1]


# --------------------------------------------------------------- the example


def fake_mnist(n_train=96, n_test=64):
    rng = np.random.default_rng(0)
    return ((rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_train, dtype=np.uint8)),
            (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_test, dtype=np.uint8)))


def test_example_runs_the_notebook(monkeypatch, tmp_path, capsys, restore_backend):
    requested = []
    monkeypatch.setattr(mnist_example.mnist, "load_data",
                        lambda path=None: requested.append(path) or fake_mnist())
    output = tmp_path / "mnist.npz"
    status = mnist_example.main(["--epochs", "1", "--train-size", "64", "--seed", "0",
                                 "--verbose", "2", "--output", str(output), "--data-dir", "d",
                                 "--backend", "numpy", "--min-accuracy", "0.99"])
    printed = capsys.readouterr()
    assert status == 1 and "below --min-accuracy" in printed.err
    assert requested == ["d"]
    assert printed.out.count('Model: "sequential') == 2
    assert "Total params: 55,744" in printed.out and "Total params: 93,322" in printed.out
    assert re.search(r"^1/1 - .* - loss: ", printed.out, re.MULTILINE)
    assert re.search(r"^test_loss: [\d.]+ - test_acc: [\d.]+$", printed.out, re.MULTILINE)
    assert models.load_model(output).count_params() == 93322
    assert fastconv.get_backend() == "numpy"


@pytest.mark.parametrize("line_length, message", [
    (5, "Insufficient console width to print summary"),
    (1, "Insufficient console width to print summary"),
    (0, "line_length must be an int >= 1, got 0"),
    (-5, "line_length must be an int >= 1, got -5"),
])
def test_summary_narrower_than_its_columns_raises_instead_of_printing_forever(line_length,
                                                                             message):
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    printed = []
    with pytest.raises(ValueError, match=message):
        model.summary(line_length=line_length, print_fn=printed.append)
    assert printed == []


def run_mnist_example(args, tmp_path):
    """(exit status, stderr) of ``fastconv-mnist args`` run offline, with no
    MNIST anywhere: the cache and home are empty and every URL goes to a
    proxy that refuses connections."""
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("no_proxy", "fastconv_data", "keras_home")}
    env.update(HOME=str(tmp_path), FASTCONV_CACHE_DIR=str(tmp_path / "cache"),
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")])))
    # cwd: ``-m`` puts it first on sys.path, and a source tree there would
    # shadow the fastconv under test.
    done = subprocess.run([sys.executable, "-m", "fastconv.examples.mnist", *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "fastconv-mnist: error: argument --seed: must be an integer >= 0, got -1"),
    (["--epochs", "1"], "fastconv-mnist: error: MNIST is not available locally and "
                        "train-images-idx3-ubyte.gz could not be downloaded: https://"),
])
def test_example_reports_bad_arguments_and_missing_data_in_one_line(tmp_path, args, message):
    status, errors = run_mnist_example(args, tmp_path)
    assert status == 2 and "Traceback" not in errors, errors
    assert errors.splitlines()[-1].startswith(message), errors


# ---------------------------------------------------------------- real MNIST


@pytest.mark.skipif(not os.environ.get("FASTCONV_MNIST_DIR"),
                    reason="set FASTCONV_MNIST_DIR to a directory holding MNIST to run this")
def test_mnist_quick_run():
    from fastconv.datasets import mnist
    from fastconv.examples.mnist import notebook_model

    (train_images, train_labels), (test_images, test_labels) = mnist.load_data(
        os.environ["FASTCONV_MNIST_DIR"])
    utils.set_random_seed(0)
    model = notebook_model()
    train_images = train_images[:10000].reshape((10000, 28, 28, 1)).astype("float32") / 255
    test_images = test_images.reshape((10000, 28, 28, 1)).astype("float32") / 255
    # Batches of 16: one epoch of 10,000 images makes 625 steps (about 0.965 here;
    # batches of 64 reach about 0.92 after one such epoch, in Keras too).
    model.fit(train_images, utils.to_categorical(train_labels[:10000]), epochs=1,
              batch_size=16, verbose=0)
    _, test_accuracy = model.evaluate(test_images, utils.to_categorical(test_labels), verbose=0)
    assert test_accuracy > 0.95
