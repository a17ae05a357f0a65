"""Layers: gradients against central finite differences (every layer and the
whole notebook model, float64), Keras's summary table, weights and initialisers."""

import math

import numpy as np
import pytest

import fastconv
from fastconv import activations, initializers, layers, models, utils
from fastconv.examples.mnist import notebook_model
from helpers.gradcheck import numeric_gradient


def check_layer_gradients(layer, x, seed=0, penalty=False):
    """Backward of ``layer`` (x and every trainable weight) equals finite
    differences of L = sum(forward(x) * r) for a fixed random r, plus the
    regularizers' penalty if ``penalty``."""
    rng = np.random.default_rng(seed)

    def forward():
        utils.set_random_seed(seed)  # the same dropout mask on every call
        return layer.forward(x, training=True)

    r = rng.standard_normal(forward().shape)

    def loss():
        return float(np.sum(forward() * r)) + (layer.regularization_loss() if penalty else 0)

    forward()
    dx = layer.backward(r.copy())
    grads = {name: g.copy() for name, g in layer.grads.items()}
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-5, atol=1e-7)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, numeric_gradient(loss, layer.params[name]),
                                   rtol=1e-5, atol=1e-7, err_msg=name)


def images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh", "sigmoid", "softmax"])
def test_conv2d_gradients(backend, activation):
    layer = layers.Conv2D(3, (3, 2), activation=activation, dtype="float64",
                          bias_initializer="he_normal")
    check_layer_gradients(layer, images((2, 6, 5, 2)))


@pytest.mark.parametrize("strides, padding, use_bias", [((2, 2), "same", True),
                                                         ((2, 1), "valid", False)])
def test_conv2d_gradients_strides_padding(backend, strides, padding, use_bias):
    layer = layers.Conv2D(2, 3, strides=strides, padding=padding, activation="relu",
                          use_bias=use_bias, dtype="float64")
    check_layer_gradients(layer, images((2, 7, 6, 2)))


@pytest.mark.parametrize("pool_size, strides, padding", [((2, 2), None, "valid"),
                                                          ((3, 2), (1, 2), "same")])
def test_max_pooling_gradients(backend, pool_size, strides, padding):
    check_layer_gradients(layers.MaxPooling2D(pool_size, strides, padding),
                          images((2, 6, 7, 3)))


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh", "sigmoid", "softmax"])
def test_dense_gradients(backend, activation):
    layer = layers.Dense(4, activation=activation, bias_initializer="he_normal")
    check_layer_gradients(layer, images((3, 5)))


def test_dense_on_the_last_axis_of_images(backend):
    check_layer_gradients(layers.Dense(3, dtype="float64"), images((2, 3, 4, 5)))


def test_flatten_dropout_activation_gradients():
    check_layer_gradients(layers.Flatten(), images((2, 3, 4, 5)))
    check_layer_gradients(layers.Dropout(0.4), images((3, 6)))
    for name in activations.ACTIVATIONS.names():
        check_layer_gradients(layers.Activation(name), images((3, 6)))


def tiny_notebook_model(**first_layer_kwargs):
    """The notebook's architecture with tiny filter counts, for 18x18 float64 images."""
    return models.Sequential([
        layers.Conv2D(2, (3, 3), activation="relu", **first_layer_kwargs),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(3, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(3, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(4, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_full_model_loss_gradient(backend, loss):
    utils.set_random_seed(3)
    x = images((4, 18, 18, 1))
    model = tiny_notebook_model()  # built lazily from float64 data: float64 weights
    model.compile("sgd", loss)
    labels = np.array([0, 2, 1, 2])
    y = labels if loss.startswith("sparse") else utils.to_categorical(labels, 3)
    model.predict(x, verbose=0)
    assert model.dtype == np.float64
    loss_value, grads = model.compute_gradients(x, y)
    assert loss_value == pytest.approx(model.evaluate(x, y, batch_size=4, verbose=0))
    weights = [w for layer in model.layers for w in layer.params.values()]
    for weight, grad in zip(weights, grads):
        numeric = numeric_gradient(lambda: model.evaluate(x, y, batch_size=4, verbose=0), weight)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_loss_gradient_through_probabilities():
    """A last layer that is not softmax: the loss reads probabilities, as Keras does."""
    utils.set_random_seed(4)
    model = models.Sequential([layers.Dense(3, activation="sigmoid", dtype="float64",
                                            input_shape=(5,))])
    model.compile("sgd", "categorical_crossentropy")
    x, y = images((6, 5)), utils.to_categorical([0, 1, 2, 0, 1, 2], 3)
    _, grads = model.compute_gradients(x, y)
    for weight, grad in zip(model.layers[0].params.values(), grads):
        numeric = numeric_gradient(lambda: model.evaluate(x, y, verbose=0), weight)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


# Keras 3's summary of the notebook's model where the output is not a
# terminal (line length 80 - 4), as rich draws Keras's table.
NOTEBOOK_SUMMARY = '''\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_2 (Conv2D)               │ (None, 3, 3, 64)       │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 576)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 64)             │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 93,322 (364.54 KB)
 Trainable params: 93,322 (364.54 KB)
 Non-trainable params: 0 (0.00 B)
'''


def summary_rows(text):
    """(name, type, output shape, params) of each layer row in a summary table."""
    rows = []
    for line in text.splitlines():
        if line.startswith("│"):
            label, shape, count = (cell.strip() for cell in line.strip("│").split("│"))
            name, kind = label.rstrip(")").split(" (")
            rows.append((name, kind, shape, int(count.replace(",", ""))))
    return rows


def test_summary_matches_keras(capsys, monkeypatch):
    """The notebook prints Keras 3's tables: after the conv base, then the whole model."""
    monkeypatch.setenv("COLUMNS", "80")  # the terminal width Python assumes for a pipe
    utils.clear_session()
    model = notebook_model(show_summaries=True)
    first, text = capsys.readouterr().out.split('Model: "sequential"')[1:]
    assert " Total params: 55,744 (217.75 KB)\n" in first
    text = 'Model: "sequential"' + text
    assert text == NOTEBOOK_SUMMARY
    assert summary_rows(text) == [
        ("conv2d", "Conv2D", "(None, 26, 26, 32)", 320),
        ("max_pooling2d", "MaxPooling2D", "(None, 13, 13, 32)", 0),
        ("conv2d_1", "Conv2D", "(None, 11, 11, 64)", 18496),
        ("max_pooling2d_1", "MaxPooling2D", "(None, 5, 5, 64)", 0),
        ("conv2d_2", "Conv2D", "(None, 3, 3, 64)", 36928),
        ("flatten", "Flatten", "(None, 576)", 0),
        ("dense", "Dense", "(None, 64)", 36928),
        ("dense_1", "Dense", "(None, 10)", 650),
    ]
    assert model.count_params() == 93322


def test_summary_of_an_unbuilt_model_shows_unbuilt_layers(capsys):
    """As Keras 3: no error; '?' shapes and '0 (unbuilt)' counts until built.
    In 40 characters rich wraps the header (aligned to the bottom) and the
    count (right-aligned, the long word cut with '…')."""
    model = models.Sequential([layers.Dense(2, name="d")], name="sequential")
    model.summary(line_length=40)
    assert capsys.readouterr().out == '''\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━┓
┃                 ┃ Output     ┃ Param ┃
┃ Layer (type)    ┃ Shape      ┃     # ┃
┡━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━┩
│ d (Dense)       │ ?          │     0 │
│                 │            │ (unb… │
└─────────────────┴────────────┴───────┘
 Total params: 0 (0.00 B)
 Trainable params: 0 (0.00 B)
 Non-trainable params: 0 (0.00 B)
'''
    model.build((None, 3))
    model.summary()
    assert " Total params: 8 (32.00 B)" in capsys.readouterr().out.splitlines()


def test_automatic_names_count_per_class():
    utils.clear_session()
    names = [layers.Conv2D(1, 1).name, layers.Conv2D(1, 1).name, layers.MaxPooling2D().name,
             layers.Dense(1).name, layers.Flatten().name, layers.Dense(1, name="out").name,
             models.Sequential().name, models.Sequential().name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "dense", "flatten", "out",
                     "sequential", "sequential_1"]


def test_weights_round_trip_in_keras_layouts():
    model = notebook_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,),
                      (576, 64), (64,), (64, 10), (10,)]
    new = [np.random.default_rng(i).standard_normal(s).astype(np.float32)
           for i, s in enumerate(shapes)]
    model.set_weights(new)
    for got, expected in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, expected)
    dense = model.layers[-2]
    with pytest.raises(ValueError, match=r"kernel has shape \(576, 64\).*\(64, 576\)"):
        dense.set_weights([new[6].T, new[7]])
    with pytest.raises(ValueError, match="expects 2 weight arrays"):
        dense.set_weights([new[6]])
    with pytest.raises(ValueError, match="10 weight arrays"):
        model.set_weights(new[:-1])
    bad = new[:-1] + [np.zeros(3, np.float32)]
    with pytest.raises(ValueError):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()[0], new[0])  # nothing was assigned


def test_flatten_uses_keras_order():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(layers.Flatten()(x), x.reshape(2, 60))


def test_dense_and_conv2d_outputs(backend):
    x = images((4, 6)).astype(np.float32)
    dense = layers.Dense(3, activation="relu", bias_initializer="ones")
    y = dense(x)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(y, np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6)
    conv = layers.Conv2D(4, 3, padding="same", activation="tanh", bias_initializer="ones")
    x = images((2, 5, 5, 3)).astype(np.float32)
    y = conv(x)
    expected = np.tanh(fastconv.reference.conv2d_forward(x, *conv.get_weights(),
                                                         padding="same"))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_glorot_uniform_uses_keras_fans():
    utils.set_random_seed(0)
    kernel = initializers.get("glorot_uniform")((3, 3, 32, 64))
    limit = math.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))
    assert kernel.dtype == np.float32
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.99 * limit
    assert abs(kernel.mean()) < 0.01 * limit
    assert kernel.var() == pytest.approx(limit ** 2 / 3, rel=0.05)
    dense_kernel = layers.Dense(64, input_shape=(576,))
    model = models.Sequential([dense_kernel])
    limit = math.sqrt(6 / (576 + 64))
    assert np.abs(model.get_weights()[0]).max() <= limit
    np.testing.assert_array_equal(model.get_weights()[1], 0)


def test_other_initializers():
    utils.set_random_seed(0)
    he = initializers.get("he_normal")((3, 3, 64, 64))
    std = math.sqrt(2 / (3 * 3 * 64))
    assert he.std() == pytest.approx(std, rel=0.05)
    assert np.abs(he).max() <= 2 * std / 0.87962566103423978
    np.testing.assert_array_equal(initializers.get("ones")((2, 3)), 1)
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), 0)
    with pytest.raises(ValueError, match="unknown kernel_initializer 'glorot'.*'he_normal'"):
        layers.Conv2D(2, 3, kernel_initializer="glorot")


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'rleu'.*'relu'.*'softmax'"):
        layers.Dense(2, activation="rleu")
    with pytest.raises(ValueError, match="'tanh'"):
        activations.get("gelu_tanh")


def test_activation_values():
    x = np.array([[-1e4, -1.0, 0.0, 2.0, 1e4]])
    np.testing.assert_array_equal(activations.relu(x), [[0, 0, 0, 2, 1e4]])
    np.testing.assert_allclose(activations.sigmoid(x),
                               [[0, 1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-2)), 1]])
    np.testing.assert_allclose(activations.tanh(x), np.tanh(x))
    softmax = activations.softmax(x)
    assert np.isfinite(softmax).all() and softmax.sum() == pytest.approx(1)
    assert activations.linear(x) is not x


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size"):
        layers.Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(1.5)
    with pytest.raises(ValueError, match="input_shape"):
        layers.Dense(2, input_shape=(0,))
    with pytest.raises(ValueError, match="dtype"):
        layers.Dense(2, dtype="int32")
    with pytest.raises(ValueError, match="4-D NHWC"):
        models.Sequential([layers.Conv2D(2, 3, input_shape=(28, 28))])
    with pytest.raises(ValueError, match="larger than the input"):
        models.Sequential([layers.Conv2D(2, 5, input_shape=(4, 4, 1))])


def test_lazy_build_on_first_call():
    layer = layers.Conv2D(4, 3, activation="relu")
    assert not layer.built and layer.get_weights() == []
    y = layer(np.zeros((2, 8, 8, 3), np.float32))
    assert layer.built and y.shape == (2, 6, 6, 4) and y.dtype == np.float32
    assert layer.input_shape == (None, 8, 8, 3) and layer.output_shape == (None, 6, 6, 4)
    with pytest.raises(ValueError, match=r"expected shape \(None, 8, 8, 3\)"):
        layer(np.zeros((2, 8, 8, 2), np.float32))


def test_float64_input_builds_float64_layers():
    layer = layers.Dense(2)
    assert layer(np.ones((1, 3))).dtype == np.float64
    assert layer.params["kernel"].dtype == np.float64


class KernelSpy:
    """Stands in for fastconv.backend.kernels(): records each call's keyword arguments."""

    def __init__(self):
        self.calls = []

    def __call__(self):
        return self

    def __getattr__(self, name):
        function = getattr(fastconv.reference, name)

        def record(*args, **kwargs):
            self.calls.append((name, kwargs))
            return function(*args, **kwargs)

        return record


def test_conv2d_relu_is_fused_and_first_layer_skips_dx(monkeypatch):
    spy = KernelSpy()
    monkeypatch.setattr(layers._kernel, "kernels", spy)
    model = models.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)),
                               layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(np.ones((4, 6, 6, 1)), np.array([0, 1, 0, 1]), batch_size=4, verbose=0)
    forwards = [kw for name, kw in spy.calls if name == "conv2d_forward"]
    backwards = [kw for name, kw in spy.calls if name == "conv2d_backward"]
    assert [kw["activation"] for kw in forwards] == ["relu", "relu", None]  # Dense: logits
    assert [kw["compute_dx"] for kw in backwards] == [True, True, False]  # last to first
    assert all(kw["out"][1] is not None for kw in backwards)


def test_buffers_are_reused_across_steps():
    layer = layers.Conv2D(2, 3, activation="relu", dtype="float64")
    first = layer.forward(images((2, 5, 5, 1)), training=True)
    dx_first = layer.backward(np.ones_like(first))
    second = layer.forward(images((2, 5, 5, 1), seed=2), training=True)
    assert second is first and layer.backward(np.ones_like(first)) is dx_first
    assert layer.forward(images((3, 5, 5, 1))) is not first  # another batch shape


def test_backward_needs_a_training_forward():
    layer = layers.Dense(2, dtype="float64")
    layer.forward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.ones((1, 2)))


def test_dropout_is_inverted_and_training_only():
    utils.set_random_seed(0)
    layer = layers.Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    np.testing.assert_array_equal(layer.forward(x), x)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0, np.float32(1 / 0.75)}
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.02)


def test_layer_config_round_trip():
    layer = layers.Conv2D(8, (3, 5), strides=2, padding="same", activation="tanh",
                          use_bias=False, kernel_initializer="he_normal", name="c")
    clone = layers.deserialize({"class_name": "Conv2D", "config": layer.get_config()})
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="unknown layer class"):
        layers.deserialize({"class_name": "LSTM", "config": {}})


def test_summary_table_is_drawn_as_rich_draws_keras_table():
    """Keras 3 renders its table with rich (a Table of fixed-width columns,
    width=line_length, show_lines=True); fastconv draws it without rich.
    Compared on random cells, widths and alignments when rich is installed."""
    rich_table = pytest.importorskip("rich.table")
    rich_console = pytest.importorskip("rich.console")
    from fastconv import summary
    rng = np.random.default_rng(0)
    words = ["conv2d", "(Conv2D)", "max_pooling2d_1", "(None,", "26,", "32)", "a", "18,496",
             "conv2d_transpose_12[0][0],", "x" * 30, "   └", ""]
    for _ in range(150):
        columns = int(rng.integers(3, 6))
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to", "Trainable"]
        header = header[:columns]
        justify = list(rng.choice(["left", "right", "center"], columns))
        positions = sorted(rng.random(columns - 1)) + [1.0]
        line_length = int(rng.integers(12, 140))
        rows = [[" ".join(rng.choice(words, rng.integers(0, 5))) for _ in range(columns)]
                for _ in range(rng.integers(0, 3))]
        try:
            widths = summary._column_widths(positions, line_length)
        except ValueError:
            continue  # a column narrower than 4: Keras raises before drawing
        table = rich_table.Table(
            *[rich_table.Column(name, justify=how,
                                width=int(end * line_length) - int(start * line_length))
              for name, how, start, end in zip(header, justify, [0] + positions, positions)],
            width=line_length, show_lines=True)
        for row in rows:
            table.add_row(*row)
        console = rich_console.Console(width=200, force_terminal=False, color_system=None)
        with console.capture() as capture:
            console.print(table)
        mine = "".join(line + "\n" for line in summary._table(header, rows, widths, justify))
        assert mine == capture.get(), (positions, line_length, justify, rows)
