"""Image preprocessing and augmentation layers and ``fastconv.image_ops``:
hand-computed small cases, identity in inference, seeding, per-image
draws, gradients against central finite differences (float64) with the
draw fixed, configs, bad arguments and a model that fits through them."""

import numpy as np
import pytest

import fastconv as keras
from fastconv import image_ops, layers, utils
from test_layers import check_layer_gradients, images

IMAGE = np.arange(9.0).reshape(1, 3, 3, 1)  # [[0 1 2] [3 4 5] [6 7 8]]
ROW = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)


def pixels(y):
    """The single-channel images of a batch as (batch, height, width)."""
    return y[..., 0]


def train(layer, x):
    return layer(x, training=True)


# ----------------------------------------------------- hand-computed cases


@pytest.mark.parametrize("mode, flipped", [
    ("horizontal", [[2, 1, 0], [5, 4, 3], [8, 7, 6]]),
    ("vertical", [[6, 7, 8], [3, 4, 5], [0, 1, 2]]),
    # Keras 3 flips both ways on the same draw: unchanged or turned 180°.
    ("horizontal_and_vertical", [[8, 7, 6], [5, 4, 3], [2, 1, 0]]),
])
def test_flip_of_a_3x3_image(mode, flipped):
    utils.set_random_seed(0)
    y = pixels(train(layers.RandomFlip(mode), np.repeat(IMAGE, 16, axis=0)))
    is_flipped = [np.array_equal(image, flipped) for image in y]
    is_same = [np.array_equal(image, IMAGE[0, :, :, 0]) for image in y]
    assert all(a != b for a, b in zip(is_flipped, is_same))
    assert 0 < sum(is_flipped) < 16


@pytest.mark.parametrize("turns, expected", [
    (0.25, [[2, 5, 8], [1, 4, 7], [0, 3, 6]]),  # counter-clockwise, as Keras
    (-0.25, [[6, 3, 0], [7, 4, 1], [8, 5, 2]]),
    (0.5, [[8, 7, 6], [5, 4, 3], [2, 1, 0]]),
])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_quarter_turns(turns, expected, interpolation):
    layer = layers.RandomRotation((turns, turns), interpolation=interpolation)
    np.testing.assert_allclose(pixels(train(layer, IMAGE))[0], expected, atol=1e-12)


@pytest.mark.parametrize("fill_mode, one_pixel, two_pixels", [
    ("reflect", [1, 1, 2, 3], [2, 1, 1, 2]),  # (d c b a | a b c d | d c b a)
    ("wrap", [4, 1, 2, 3], [3, 4, 1, 2]),  # (a b c d | a b c d | a b c d)
    ("constant", [9, 1, 2, 3], [9, 9, 1, 2]),  # (k k k k | a b c d | k k k k)
    ("nearest", [1, 1, 2, 3], [1, 1, 1, 2]),  # (a a a a | a b c d | d d d d)
])
def test_translation_right_by_whole_pixels_in_each_fill_mode(fill_mode, one_pixel, two_pixels):
    for fraction, expected in [(0.25, one_pixel), (0.5, two_pixels)]:  # of the width 4
        layer = layers.RandomTranslation(0, (fraction, fraction), fill_mode=fill_mode,
                                         fill_value=9.0)
        np.testing.assert_array_equal(pixels(train(layer, ROW))[0, 0], expected)


def test_translation_down_and_by_half_a_pixel():
    layer = layers.RandomTranslation((1 / 3, 1 / 3), 0, fill_mode="constant")
    np.testing.assert_array_equal(pixels(train(layer, IMAGE))[0],
                                  [[0, 0, 0], [0, 1, 2], [3, 4, 5]])
    # Bilinear: each output pixel averages two neighbours; the one outside
    # the image is fill_value.
    half = (0.125, 0.125)
    for fill_value, expected in [(0.0, [0.5, 1.5, 2.5, 3.5]), (9.0, [5, 1.5, 2.5, 3.5])]:
        layer = layers.RandomTranslation(0, half, fill_mode="constant", fill_value=fill_value)
        np.testing.assert_allclose(pixels(train(layer, ROW))[0, 0], expected)
    layer = layers.RandomTranslation(0, half, fill_mode="reflect")
    np.testing.assert_allclose(pixels(train(layer, ROW))[0, 0], [1, 1.5, 2.5, 3.5])


def test_zoom_in_by_two_upsamples_the_centre():
    image = np.arange(16.0).reshape(1, 4, 4, 1)  # value 4 * row + column
    # Zoom -0.5 reads the input at half the output's spacing about the
    # centre: positions 0.75, 1.25, 1.75, 2.25 along each axis.
    layer = layers.RandomZoom((-0.5, -0.5), interpolation="nearest")
    centre = image[0, 1:3, 1:3, 0]
    np.testing.assert_array_equal(pixels(train(layer, image))[0],
                                  np.repeat(np.repeat(centre, 2, axis=0), 2, axis=1))
    positions = np.array([0.75, 1.25, 1.75, 2.25])
    layer = layers.RandomZoom((-0.5, -0.5))  # bilinear: exact on a linear ramp
    np.testing.assert_allclose(pixels(train(layer, image))[0],
                               4 * positions[:, None] + positions, atol=1e-12)
    layer = layers.RandomZoom((-0.5, -0.5), width_factor=0)  # rows only
    np.testing.assert_allclose(pixels(train(layer, image))[0],
                               4 * positions[:, None] + np.arange(4), atol=1e-12)


def test_contrast_formula():
    utils.set_random_seed(1)
    x = images((6, 4, 5, 3)) * 10 + 100
    layer = layers.RandomContrast(0.5, value_range=(0, 255))
    y = train(layer, x)
    mean = x.mean(axis=(1, 2), keepdims=True)
    # One factor per image, the same for its channels, in [1 - 0.5, 1 + 0.5].
    factors = (y - mean) / (x - mean)
    per_image = factors[:, 0, 0, 0]
    np.testing.assert_allclose(factors, np.broadcast_to(per_image[:, None, None, None], x.shape))
    assert np.all((per_image >= 0.5) & (per_image <= 1.5))
    assert len(np.unique(per_image)) == 6
    # Clipped to value_range (the factor read from a pixel not clipped).
    x, mean = x[:1], mean[:1]
    y = train(layers.RandomContrast((0.5, 0.5), value_range=(95, 105)), x)
    factor = ((y - mean) / (x - mean))[(y > 95) & (y < 105)][0]
    np.testing.assert_allclose(y, np.clip((x - mean) * factor + mean, 95, 105))
    assert np.any(y == 95) and np.any(y == 105)


def test_brightness_formula():
    # Keras's docstring example: a delta of 0.1 * 255 = 25.5 on every channel.
    image = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], np.float64)[None]
    y = train(layers.RandomBrightness((0.1, 0.1)), image)
    np.testing.assert_allclose(y, image + 25.5)
    x = np.linspace(0, 1, 12).reshape(1, 2, 2, 3)
    y = train(layers.RandomBrightness((-0.5, -0.5), value_range=(0, 1)), x)
    np.testing.assert_allclose(y, np.maximum(x - 0.5, 0))
    y = train(layers.RandomBrightness((0.2, 0.2), value_range=[2, 0]), x * 2)
    np.testing.assert_allclose(y, np.minimum(x * 2 + 0.4, 2))


def test_rescaling_resizing_and_crops():
    np.testing.assert_allclose(layers.Rescaling(1 / 127.5, -1)(np.array([[0.0, 127.5, 255]])),
                               [[-1, 0, 1]])
    a, b, c, d = 1.0, 3.0, 7.0, 15.0
    square = np.array([[a, b], [c, d]]).reshape(1, 2, 2, 1)
    # Half-pixel centres, sample positions clamped at the edges.
    weights = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(pixels(layers.Resizing(4, 4)(square))[0],
                               weights @ np.array([[a, b], [c, d]]) @ weights.T)
    image = np.arange(24.0).reshape(1, 4, 6, 1)
    # Nearest takes input pixel floor((i + 0.5) * in / out).
    np.testing.assert_array_equal(pixels(layers.Resizing(2, 3, "nearest")(image))[0],
                                  image[0, 1::2, 1::2, 0])
    # Bilinear halving averages pairs of pixels.
    halved = layers.Resizing(2, 3)(image)[0, :, :, 0]
    blocks = image[0, :, :, 0].reshape(2, 2, 3, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(halved, blocks)
    # crop_to_aspect_ratio: the centred 4x4 window (columns 1-4), then halved.
    cropped = layers.Resizing(2, 2, crop_to_aspect_ratio=True)(image)[0, :, :, 0]
    np.testing.assert_allclose(cropped, image[0, :, 1:5, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3)))
    five = np.arange(25.0).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(layers.CenterCrop(3, 3)(five), five[:, 1:4, 1:4])
    np.testing.assert_array_equal(layers.CenterCrop(3, 2)(image), image[:, 0:3, 2:4])
    # Smaller than the target: the centred window of its aspect ratio, resized.
    small = image[:, :2, :4]
    np.testing.assert_allclose(layers.CenterCrop(4, 4)(small),
                               layers.Resizing(4, 4)(small[:, :, 1:3]))


def test_random_crop_training_and_inference():
    utils.set_random_seed(2)
    x = images((3, 6, 7, 2))
    layer = layers.RandomCrop(4, 3)
    windows = set()
    for _ in range(8):
        y = train(layer, x)
        found = [(top, left) for top in range(3) for left in range(5)
                 if np.array_equal(y, x[:, top:top + 4, left:left + 3])]
        assert len(found) == 1  # one window for the whole batch, as Keras
        windows.add(found[0])
    assert len(windows) > 1
    # Inference (and training on too small images): the centred window with
    # the target's aspect ratio, resized, as Keras documents it.
    np.testing.assert_allclose(layer(x), layers.Resizing(4, 3, crop_to_aspect_ratio=True)(x))
    big = layers.RandomCrop(8, 8)
    np.testing.assert_allclose(train(big, x), layers.Resizing(8, 8, crop_to_aspect_ratio=True)(x))


def test_affine_transform_matches_keras_conventions():
    # Keras's ops.image.affine_transform: output (x, y) reads input
    # (a0 x + a1 y + a2, b0 x + b1 y + b2); here a shift by (-1, +1).
    x = np.arange(12.0).reshape(1, 3, 4, 1)
    y = image_ops.affine_transform(x, [[1, 0, -1, 0, 1, 1, 0, 0]], fill_mode="constant",
                                   fill_value=-1)
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, 4, 5, 6], [-1, 8, 9, 10],
                                                  [-1, -1, -1, -1]])
    with pytest.raises(ValueError, match="projective"):
        image_ops.affine_transform(x, [[1, 0, 0, 0, 1, 0, 0.1, 0]])
    with pytest.raises(ValueError, match="transforms must have shape"):
        image_ops.affine_transform(x, [[1, 0, 0]])
    with pytest.raises(ValueError, match="fill_mode"):
        image_ops.affine_transform(x, [[1, 0, 0, 0, 1, 0]], fill_mode="mirror")


@pytest.mark.parametrize("fill_mode", image_ops.FILL_MODES)
@pytest.mark.parametrize("interpolation", image_ops.INTERPOLATIONS)
def test_affine_sampling_chunks_and_transpose(monkeypatch, fill_mode, interpolation):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 6, 7, 2))
    transforms = np.concatenate([rng.uniform(-1.5, 1.5, (5, 2)), rng.uniform(-4, 4, (5, 1)),
                                 rng.uniform(-1.5, 1.5, (5, 2)), rng.uniform(-4, 4, (5, 1))],
                                axis=1)
    whole = image_ops.AffineSampling(transforms, x.shape, interpolation, fill_mode, 0.0,
                                     np.float64)
    monkeypatch.setattr(image_ops, "CHUNK_PIXELS", 1)  # one image per chunk
    chunked = image_ops.AffineSampling(transforms, x.shape, interpolation, fill_mode, 0.0,
                                       np.float64)
    assert len(whole.chunks) == 1 and len(chunked.chunks) == 5
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(chunked.apply(x), whole.apply(x), rtol=1e-12)
    np.testing.assert_allclose(chunked.transpose(g), whole.transpose(g), rtol=1e-12)
    # <A x, g> == <x, A^T g>
    np.testing.assert_allclose(np.sum(whole.apply(x) * g), np.sum(x * whole.transpose(g)))


# ------------------------------------------------ inference, seeds, draws

RANDOM_LAYERS = {
    "flip": lambda **kw: layers.RandomFlip(**kw),
    "rotation": lambda **kw: layers.RandomRotation(0.2, **kw),
    "zoom": lambda **kw: layers.RandomZoom(0.3, (-0.2, 0.4), **kw),
    "translation": lambda **kw: layers.RandomTranslation(0.2, 0.3, **kw),
    "contrast": lambda **kw: layers.RandomContrast(0.4, value_range=(-10, 10), **kw),
    "brightness": lambda **kw: layers.RandomBrightness(0.3, value_range=(-10, 10), **kw),
    "crop": lambda **kw: layers.RandomCrop(4, 5, **kw),
}


@pytest.mark.parametrize("name", sorted(set(RANDOM_LAYERS) - {"crop"}))
def test_identity_in_inference(name):
    x = images((3, 6, 7, 2))
    np.testing.assert_array_equal(RANDOM_LAYERS[name]()(x), x)
    np.testing.assert_array_equal(RANDOM_LAYERS[name]()(x, training=False), x)


@pytest.mark.parametrize("name", sorted(RANDOM_LAYERS))
def test_seeded_determinism(name):
    x = images((8, 6, 7, 2))
    utils.set_random_seed(4)
    first = train(RANDOM_LAYERS[name](), x)
    utils.set_random_seed(4)
    layer = RANDOM_LAYERS[name]()
    assert np.array_equal(train(layer, x), first)
    assert not np.array_equal(train(layer, x), first)  # a new draw on every call
    # A seed gives the layer a generator of its own, whatever fastconv's is.
    utils.set_random_seed(5)
    seeded = train(RANDOM_LAYERS[name](seed=7), x)
    utils.set_random_seed(6)
    np.testing.assert_array_equal(train(RANDOM_LAYERS[name](seed=7), x), seeded)


@pytest.mark.parametrize("name", sorted(set(RANDOM_LAYERS) - {"crop"}))
def test_one_draw_per_image(name):
    utils.set_random_seed(8)
    y = train(RANDOM_LAYERS[name](), np.repeat(images((1, 6, 7, 2)), 16, axis=0))
    distinct = {y[i].tobytes() for i in range(len(y))}
    assert len(distinct) == (2 if name == "flip" else 16)


# --------------------------------------------------------------- gradients

GRADIENT_LAYERS = [
    lambda: layers.Rescaling(0.5, -1),
    lambda: layers.Resizing(7, 3),
    lambda: layers.Resizing(3, 4, "nearest", crop_to_aspect_ratio=True),
    lambda: layers.CenterCrop(3, 2),
    lambda: layers.CenterCrop(6, 6),
    lambda: layers.RandomCrop(3, 3),
    lambda: layers.RandomCrop(6, 3),
    lambda: layers.RandomFlip("horizontal"),
    lambda: layers.RandomFlip("vertical"),
    lambda: layers.RandomFlip(),
    lambda: layers.RandomRotation(0.3),
    lambda: layers.RandomRotation(0.3, fill_mode="wrap", interpolation="nearest"),
    lambda: layers.RandomZoom((-0.4, 0.5), 0.3, fill_mode="nearest"),
    lambda: layers.RandomTranslation(0.4, 0.4, fill_mode="constant", fill_value=2.0),
    lambda: layers.RandomContrast(0.5, value_range=(-1, 1)),  # some pixels clipped
    lambda: layers.RandomBrightness(0.2, value_range=(-1, 1)),
]


@pytest.mark.parametrize("make", GRADIENT_LAYERS)
def test_gradients_with_the_draw_fixed(make):
    # check_layer_gradients seeds fastconv's generator before every forward.
    check_layer_gradients(make(), images((3, 5, 4, 2)))


def test_no_input_gradient_when_not_asked():
    layer = layers.RandomRotation(0.1)
    layer.forward(images((2, 5, 4, 2)), training=True)
    assert layer.backward(np.ones((2, 5, 4, 2)), need_input_grad=False) is None


# ---------------------------------------------------- shapes and configs

ALL_LAYERS = [make for make in GRADIENT_LAYERS] + [
    lambda: layers.RandomRotation((-0.1, 0.2), "constant", "nearest", seed=3, fill_value=1.5),
    lambda: layers.RandomZoom(0.2, seed=1), lambda: layers.RandomCrop(2, 3, seed=0),
    lambda: layers.RandomContrast((0.1, 0.3), seed=2),
]


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_configs_shapes_and_dtypes(make):
    layer = make()
    config = layers.serialize(layer)
    assert layers.deserialize(config).get_config() == layer.get_config()
    assert getattr(layers, type(layer).__name__) is type(layer)
    for dtype in (np.float32, np.float64):
        layer = layers.deserialize(config)
        x = images((2, 5, 4, 3)).astype(dtype)
        for training in (False, True):  # backward follows a training forward
            y = layer.forward(x, training=training)
            assert y.dtype == dtype and y.shape[1:] == layer.output_shape[1:]
        dx = layer.backward(np.ones_like(y))
        assert dx.dtype == dtype and dx.shape == x.shape


def test_keras_config_fields_and_output_shapes():
    config = layers.RandomZoom(0.2, fill_mode="wrap").get_config()
    assert {k: config[k] for k in ("height_factor", "width_factor", "fill_mode",
                                   "interpolation", "seed", "fill_value")} == {
        "height_factor": 0.2, "width_factor": None, "fill_mode": "wrap",
        "interpolation": "bilinear", "seed": None, "fill_value": 0.0}
    assert layers.RandomContrast([0.1, 0.3]).get_config()["factor"] == [0.1, 0.3]
    assert layers.RandomBrightness(0.1, (255, 0)).get_config()["value_range"] == [0, 255]
    assert layers.Resizing(5, 6).output_shape_for((None, 9, 9, 3)) == (None, 5, 6, 3)
    assert layers.RandomCrop(2, 3).output_shape_for((None, 9, 9, 3)) == (None, 2, 3, 3)
    assert layers.Rescaling(2.0).output_shape_for((None, 7)) == (None, 7)
    with pytest.raises(ValueError, match="RandomFlip layer.*4-D"):
        layers.RandomFlip().output_shape_for((None, 5, 5))


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.RandomRotation(1.5), ValueError, "factor"),
    (lambda: layers.RandomRotation((0.1, 0.2, 0.3)), ValueError, "factor"),
    (lambda: layers.RandomRotation("0.1"), TypeError, "factor"),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), ValueError, "fill_mode"),
    (lambda: layers.RandomRotation(0.1, interpolation="bicubic"), ValueError, "interpolation"),
    (lambda: layers.RandomRotation(0.1, fill_value="zero"), TypeError, "fill_value"),
    (lambda: layers.RandomZoom(-1.0), ValueError, "height_factor"),
    (lambda: layers.RandomZoom(0.2, (0.1, 1.5)), ValueError, "width_factor"),
    (lambda: layers.RandomTranslation(0.1, -1.2), ValueError, "width_factor"),
    (lambda: layers.RandomContrast(-0.1), ValueError, "factor"),
    (lambda: layers.RandomContrast(0.1, value_range=(1,)), ValueError, "value_range"),
    (lambda: layers.RandomBrightness(0.1, value_range=(1, 1)), ValueError, "value_range"),
    (lambda: layers.RandomBrightness(0.1, value_range=5), ValueError, "value_range"),
    (lambda: layers.RandomFlip("diagonal"), ValueError, "mode"),
    (lambda: layers.RandomFlip(seed=-1), ValueError, "seed"),
    (lambda: layers.RandomFlip(seed=1.5), TypeError, "seed"),
    (lambda: layers.RandomCrop(0, 3), ValueError, "height"),
    (lambda: layers.CenterCrop(3, 2.5), TypeError, "width"),
    (lambda: layers.Resizing(3, 3, "bicubic"), ValueError, "not supported yet"),
    (lambda: layers.Resizing(3, 3, "area"), ValueError, "interpolation"),
    (lambda: layers.Resizing(3, 3, crop_to_aspect_ratio="yes"), TypeError,
     "crop_to_aspect_ratio"),
    (lambda: layers.Rescaling("1/255"), TypeError, "scale"),
    (lambda: layers.Rescaling(1.0, offset=None), TypeError, "offset"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ------------------------------------------------------------------ model


def test_sequential_model_with_augmentation_fits_and_reloads(tmp_path):
    utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(12, 12, 3)),
        layers.RandomFlip(),
        layers.RandomRotation(0.1),
        layers.Rescaling(1 / 255),
        layers.Conv2D(4, 3, activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # Inference skips the augmentation: predictions are deterministic.
    predictions = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), predictions)
    model.save(tmp_path / "augmented.keras")
    reloaded = keras.load_model(tmp_path / "augmented.keras")
    assert [type(layer).__name__ for layer in reloaded.layers[:3]] == [
        "RandomFlip", "RandomRotation", "Rescaling"]
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), predictions, rtol=1e-6)


def test_backward_after_an_inference_forward_is_the_identity():
    """Gradients through augmentation layers in inference mode (Grad-CAM on
    a model that starts with them) pass dy unchanged."""
    x = np.random.default_rng(0).random((2, 6, 6, 3)).astype(np.float32)
    dy = np.random.default_rng(1).random((2, 6, 6, 3)).astype(np.float32)
    for layer in (layers.RandomFlip(), layers.RandomRotation(0.2), layers.RandomZoom(0.2),
                  layers.RandomTranslation(0.2, 0.2), layers.RandomContrast(0.5),
                  layers.RandomBrightness(0.2)):
        layer.forward(x, training=True)
        layer.forward(x, training=False, record=True)
        np.testing.assert_array_equal(layer.backward(dy), dy)
