"""fastconv.visualize: training curves, feature maps, filter patterns, Grad-CAM
and plot_model, and the two examples that draw them."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

import fastconv as keras  # noqa: E402
from conftest import PACKAGE_PARENT, subprocess_env  # noqa: E402
from fastconv import layers, visualize  # noqa: E402
from fastconv.examples import mnist as mnist_example  # noqa: E402
from fastconv.examples import visualize_convnet  # noqa: E402


def assert_png(figure, path, dpi=visualize.DPI, size=None):
    """``figure`` is a Figure saved to ``path`` as a PNG of its size at ``dpi``
    (to the pixel: Agg drops fractions) or of ``size``, (height, width) in
    pixels, and not blank."""
    assert isinstance(figure, Figure)
    image = matplotlib.image.imread(str(path))
    if size:
        assert image.shape[:2] == size
    expected = np.array([figure.get_figheight(), figure.get_figwidth()]) * dpi
    assert np.all(np.abs(np.array(image.shape[:2]) - expected) <= 1), (image.shape, expected)
    assert image[..., :3].std() > 0.01  # something drawn
    return image


def small_convnet(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = layers.Conv2D(6, 3, activation="relu", name="conv_a")(inputs)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Conv2D(5, 3, activation="relu", name="conv_b")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def image_batch(shape=(1, 12, 12, 1), seed=1):
    return np.random.default_rng(seed).random(shape).astype("float32")


def sub_model(model, name):
    return keras.Model(model.input, model.get_layer(name).output)


# ------------------------------------------------------------------ history


def test_plot_history_draws_train_and_validation_per_quantity(tmp_path):
    history = keras.callbacks.History()
    history.history = {"loss": [0.9, 0.5, 0.4], "accuracy": [0.6, 0.8, 0.85],
                       "val_loss": [1.0, 0.7, 0.6], "val_accuracy": [0.5, 0.7, 0.75]}
    history.epoch = [0, 1, 2]
    figure = visualize.plot_history(history, tmp_path / "history.png")
    assert_png(figure, tmp_path / "history.png", size=(400, 1000))
    loss, accuracy = figure.axes
    assert loss.get_title() == "Training and validation loss"
    assert accuracy.get_title() == "Training and validation accuracy"
    for ax, name in ((loss, "loss"), (accuracy, "accuracy")):
        train, validation = ax.lines
        np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(train.get_ydata(), history.history[name])
        np.testing.assert_array_equal(validation.get_ydata(), history.history["val_" + name])
        assert train.get_linestyle() == "None" and validation.get_linestyle() == "-"


def test_plot_history_takes_fit_history_or_its_dict(tmp_path):
    model = small_convnet()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    x = image_batch((16, 12, 12, 1))
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    figure = visualize.plot_history(history.history, tmp_path / "h.png")
    assert [ax.get_title().split()[-1] for ax in figure.axes] == ["loss", "accuracy"]
    assert [len(ax.lines) for ax in figure.axes] == [1, 1]  # no validation
    with pytest.raises(ValueError, match="no epochs"):
        visualize.plot_history({}, tmp_path / "empty.png")
    with pytest.raises(TypeError, match="History"):
        visualize.plot_history([0.5], tmp_path / "list.png")


# ------------------------------------------------------------- feature maps


def test_plot_feature_maps_grid_holds_each_standardised_channel(tmp_path):
    model = small_convnet()
    image = image_batch()[0]
    figure = visualize.plot_feature_maps(model, image, tmp_path / "maps.png", images_per_row=4)
    assert_png(figure, tmp_path / "maps.png")
    assert [ax.get_title() for ax in figure.axes] == ["conv_a", "pool", "conv_b"]
    grid = figure.axes[0].images[0].get_array()
    assert grid.shape == (2 * 11 - 1, 4 * 11 - 1)  # 6 channels of 10x10, 4 to a row
    activation = sub_model(model, "conv_a")(image[None])[0].astype(np.float64)
    for channel in range(6):
        row, column = divmod(channel, 4)
        tile = grid[row * 11:row * 11 + 10, column * 11:column * 11 + 10]
        values = activation[..., channel]
        expected = (np.clip((values - values.mean()) / values.std() * 64 + 128, 0, 255)
                    if values.std() > 0 else np.zeros_like(values))
        np.testing.assert_array_equal(tile, expected.astype(np.uint8))
    assert np.all(grid[10, :] == 0) and np.all(grid[:, 10] == 0)  # borders


def test_plot_feature_maps_checks_its_arguments(tmp_path):
    model = small_convnet()
    figure = visualize.plot_feature_maps(model, image_batch(), tmp_path / "m.png",
                                         layers=["conv_b"])
    assert [ax.get_title() for ax in figure.axes] == ["conv_b"]
    with pytest.raises(ValueError, match="4-D output"):
        visualize.plot_feature_maps(model, image_batch(), tmp_path / "m.png",
                                    layers=[model.layers[-1]])
    with pytest.raises(ValueError, match=r"image must be one image of shape \(12, 12, 1\)"):
        visualize.plot_feature_maps(model, image_batch((2, 12, 12, 1)), tmp_path / "m.png")
    with pytest.raises(ValueError, match="No such layer"):
        visualize.plot_feature_maps(model, image_batch(), tmp_path / "m.png", layers=["nope"])


# ---------------------------------------------------------- filter patterns


def mean_activation(model, name, channel, pattern):
    return float(sub_model(model, name)(pattern[None])[..., channel].mean())


@pytest.mark.parametrize("name, channel", [("conv_a", 2), ("conv_b", 1)])
def test_filter_pattern_raises_the_mean_activation(name, channel):
    model = small_convnet()
    means = []
    for steps in (0, 1, 2, 4, 8):
        keras.utils.set_random_seed(3)  # the same starting image every time
        pattern = visualize.filter_pattern(model, name, channel, steps=steps, step_size=1.0)
        means.append(mean_activation(model, name, channel, pattern))
    assert pattern.shape == (12, 12, 1) and pattern.dtype == np.float32
    if name == "conv_a":
        # mean(relu(linear)) is convex: every step along its gradient raises it
        assert all(a < b for a, b in zip(means, means[1:])), means
    else:
        assert means[-1] > means[0] + 0.1, means


def test_filter_pattern_checks_its_arguments():
    model = small_convnet()
    with pytest.raises(ValueError, match="channel"):
        visualize.filter_pattern(model, "conv_a", 6)
    with pytest.raises(ValueError, match="size"):
        visualize.filter_pattern(model, "conv_a", 0, size=20)
    with pytest.raises(ValueError, match="step_size"):
        visualize.filter_pattern(model, "conv_a", 0, step_size=0)


def test_plot_filters_grid(tmp_path):
    model = small_convnet()
    figure = visualize.plot_filters(model, "conv_a", tmp_path / "filters.png", steps=3,
                                    filters=[0, 1, 3, 4, 5])
    assert_png(figure, tmp_path / "filters.png")
    grid = figure.axes[0].images[0].get_array()
    assert grid.shape == (2 * 12 + 5, 3 * 12 + 2 * 5)  # 5 patterns of 12x12, 3 to a row
    assert figure.axes[0].get_title() == "Filter patterns of conv_a"


# ------------------------------------------------------------------ Grad-CAM


def localised_model():
    """Class 0's score reads only channel 0, which only sees the image's top-left."""
    inputs = keras.Input((8, 8, 2))
    features = layers.Conv2D(2, 1, use_bias=False, name="features")(inputs)
    outputs = layers.Dense(2, activation="softmax")(layers.Flatten()(features))
    model = keras.Model(inputs, outputs)
    model.get_layer("features").set_weights([np.eye(2, dtype="float32").reshape(1, 1, 2, 2)])
    kernel = np.zeros((8 * 8 * 2, 2), "float32")
    kernel[0::2, 0] = 1.0  # class 0 <- every position of channel 0
    model.layers[-1].set_weights([kernel, np.zeros(2, "float32")])
    return model


def test_gradcam_heatmap_peaks_where_the_class_is_seen():
    image = np.zeros((8, 8, 2), "float32")
    image[1:3, 1:3, 0] = 1.0  # top left: seen by channel 0, which class 0 reads
    image[5:7, 5:7, 1] = 3.0  # bottom right: only channel 1, which no class reads
    heatmap = visualize.gradcam_heatmap(localised_model(), image)  # top class: 0
    assert heatmap.shape == (8, 8)
    assert np.unravel_index(np.argmax(heatmap), heatmap.shape) in {(1, 1), (1, 2), (2, 1),
                                                                    (2, 2)}
    np.testing.assert_allclose(heatmap[1:3, 1:3], 1.0)
    assert np.all(heatmap[5:7, 5:7] == 0) and heatmap.sum() == pytest.approx(4.0)


def test_gradcam_weights_are_the_pooled_numerical_gradient():
    model = small_convnet(seed=4)
    image = image_batch(seed=5)
    feature_maps = sub_model(model, "conv_b")(image)[0].astype(np.float64)
    kernel, bias = (w.astype(np.float64) for w in model.layers[-1].get_weights())

    def score(maps, class_index):
        logits = maps.reshape(-1) @ kernel + bias
        return (np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())[class_index]

    for class_index in range(3):
        grad = np.zeros_like(feature_maps)
        for index in np.ndindex(feature_maps.shape):
            step = np.zeros_like(feature_maps)
            step[index] = 1e-6
            grad[index] = (score(feature_maps + step, class_index)
                           - score(feature_maps - step, class_index)) / 2e-6
        expected = np.maximum(feature_maps @ grad.mean(axis=(0, 1)), 0)
        if expected.max() > 0:
            expected /= expected.max()
        heatmap = visualize.gradcam_heatmap(model, image, class_index=class_index)  # conv_b
        np.testing.assert_allclose(heatmap, expected, atol=1e-4)


def test_plot_gradcam_and_its_checks(tmp_path):
    model = small_convnet()
    figure = visualize.plot_gradcam(model, image_batch(), tmp_path / "cam.png", layer="conv_a",
                                    class_index=2)
    assert_png(figure, tmp_path / "cam.png", size=(400, 800))
    heatmap = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(heatmap, visualize.gradcam_heatmap(
        model, image_batch(), layer="conv_a", class_index=2))
    with pytest.raises(ValueError, match="class_index"):
        visualize.gradcam_heatmap(model, image_batch(), class_index=3)
    with pytest.raises(ValueError, match="4-D output"):
        visualize.gradcam_heatmap(model, image_batch(), layer=model.layers[-1])


# ---------------------------------------------------------------- plot_model


def residual_model():
    inputs = keras.Input((8, 8, 3), name="image")
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", name="b")(a)
    added = layers.Add(name="sum")([a, b])
    outputs = layers.Dense(2, name="out")(layers.Flatten(name="flat")(added))
    return keras.Model(inputs, outputs)


def boxes_and_arrows(figure):
    """{first word of a box's text: its centre}, box texts, [(start, end)] of the arrows."""
    (ax,) = figure.axes
    texts = [t for t in ax.texts if not isinstance(t, Annotation)]
    centres = {t.get_text().split()[0]: np.array(t.get_position()) for t in texts}
    arrows = [(np.array(a.xyann), np.array(a.xy)) for a in ax.texts if isinstance(a, Annotation)]
    return centres, [t.get_text() for t in texts], arrows


def test_model_to_figure_draws_a_box_per_layer_and_the_residual_edges():
    centres, labels, arrows = boxes_and_arrows(visualize.model_to_figure(residual_model()))
    assert labels == ["image (InputLayer)", "a (Conv2D)", "b (Conv2D)", "sum (Add)",
                      "flat (Flatten)", "out (Dense)"]

    def box_at(point):
        return min(centres, key=lambda name: np.hypot(*(centres[name] - point)))

    edges = sorted((box_at(start), box_at(end)) for start, end in arrows)
    assert edges == sorted([("image", "a"), ("a", "b"), ("a", "sum"), ("b", "sum"),
                            ("sum", "flat"), ("flat", "out")])
    for start, end in arrows:  # ranks top to bottom; the skip a -> sum runs beside b
        assert end[1] > start[1]
        if (box_at(start), box_at(end)) == ("a", "sum"):
            assert start[0] > centres["a"][0] and end[0] > centres["sum"][0]


def test_model_to_figure_options_and_sequential_models():
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3)])
    _, labels, arrows = boxes_and_arrows(visualize.model_to_figure(
        model, show_shapes=True, show_dtype=True, show_layer_names=False,
        show_layer_activations=True, show_trainable=True))
    assert len(labels) == 3 and len(arrows) == 2  # no input box for Sequential, as Keras
    assert labels[0] == ("Conv2D\nInput shape: (None, 6, 6, 1)\nOutput shape: (None, 4, 4, 2)\n"
                        "dtype: float32\nActivation: relu\nTrainable: T")
    figure = visualize.model_to_figure(model, rankdir="LR")
    assert figure.get_figwidth() > figure.get_figheight()
    with pytest.raises(ValueError, match="rankdir"):
        visualize.model_to_figure(model, rankdir="BT")
    with pytest.raises(ValueError, match="not yet been built"):
        visualize.model_to_figure(keras.Sequential([layers.Dense(2)]))


def test_plot_model_writes_the_file_as_keras(tmp_path):
    path = tmp_path / "model.png"
    result = keras.utils.plot_model(residual_model(), to_file=str(path), show_shapes=True,
                                    dpi=50)
    figure = visualize.model_to_figure(residual_model(), show_shapes=True)
    assert_png(figure, path, dpi=50)
    try:
        from IPython import display
        assert isinstance(result, display.Image)
    except ImportError:
        assert result is None
    assert keras.utils.plot_model(residual_model(), to_file=str(tmp_path / "m.pdf")) is None
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        keras.utils.plot_model(residual_model(), to_file=str(path), colour="red")


# ------------------------------------------------------ matplotlib missing


def test_fastconv_imports_without_matplotlib():
    code = ("import sys\n"
            "import fastconv as keras\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
            "sys.modules['matplotlib'] = None\n"
            "assert callable(keras.utils.plot_model)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(),
                   cwd=PACKAGE_PARENT)


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastconv\[plots\]"'):
        visualize.plot_history({"loss": [1.0]}, tmp_path / "h.png")
    with pytest.raises(ImportError, match=r'pip install "fastconv\[plots\]"'):
        keras.utils.plot_model(residual_model(), to_file=str(tmp_path / "m.png"))
    monkeypatch.setattr(mnist_example.mnist, "load_data", pytest.fail)  # fails before loading
    assert mnist_example.main(["--plots", str(tmp_path / "plots")]) == 2
    assert 'pip install "fastconv[plots]"' in capsys.readouterr().err


# ------------------------------------------------------------------ examples


def stand_in_mnist(n_train=256, n_test=8):
    rng = np.random.default_rng(0)
    return ((rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_train, dtype=np.uint8)),
            (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_test, dtype=np.uint8)))


def test_mnist_example_writes_its_plots(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(mnist_example.mnist, "load_data", lambda path=None: stand_in_mnist(64))
    plots = tmp_path / "plots"
    assert mnist_example.main(["--epochs", "2", "--train-size", "64", "--verbose", "0",
                               "--plots", str(plots)]) == 0
    assert "wrote history.png and feature_maps.png" in capsys.readouterr().out
    history = matplotlib.image.imread(str(plots / "history.png"))
    assert history.shape[:2] == (400, 1000)  # loss and accuracy
    assert matplotlib.image.imread(str(plots / "feature_maps.png")).shape[1] == 800


def test_visualize_convnet_example_runs(monkeypatch, tmp_path, capsys):
    requested = []
    monkeypatch.setattr(visualize_convnet.mnist, "load_data",
                        lambda path=None: requested.append(path) or stand_in_mnist())
    output = tmp_path / "pictures"
    assert visualize_convnet.main(["--data-dir", "d", "--output", str(output),
                                   "--train-size", "256", "--steps", "2"]) == 0
    assert requested == ["d"]
    written = sorted(p.name for p in output.iterdir())
    assert written[:2] == ["channel.png", "feature_maps.png"]
    assert [name.split("_")[0] for name in written[2:4]] == ["filters", "filters"]
    assert written[4:] == ["gradcam.png", "pattern.png"]
    for name in written:
        assert matplotlib.image.imread(str(output / name)).size > 0
    assert "predicted class of the test digit" in capsys.readouterr().out
