"""The activations beyond ReLU and the layers beyond the notebook's:
values against NumPy written here (and Keras's documented examples),
gradients against central finite differences (float64), configs and
bad arguments."""

import math
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import activations, layers, regularizers, utils
from test_layers import check_layer_gradients, images

SELU_ALPHA, SELU_SCALE = 1.67326324, 1.05070098  # as Keras documents them


def erf(x):
    return np.vectorize(math.erf)(x)


EXPECTED_ACTIVATIONS = {
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "softplus": lambda x: np.log(1 + np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "exponential": np.exp,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_values(name, dtype):
    x = np.linspace(-5, 5, 41).astype(dtype)
    y = activations.get(name)(x)
    assert y.dtype == dtype
    expected = EXPECTED_ACTIVATIONS[name](x.astype(np.float64))
    np.testing.assert_allclose(y, expected, rtol=1e-6 if dtype == np.float32 else 1e-7,
                               atol=1e-6 if dtype == np.float32 else 1e-12)


def test_activation_values_from_keras_docs_and_extremes():
    np.testing.assert_allclose(activations.gelu(np.array([-1.0, 0.0, 1.0])),
                               [-0.15865525, 0.0, 0.84134475], rtol=1e-7)
    np.testing.assert_array_equal(activations.hard_sigmoid(np.array([-3.0, -9.0, 3.0, 9.0])),
                                  [0, 0, 1, 1])
    extremes = np.array([-1e4, -800.0, 800.0, 1e4])
    np.testing.assert_array_equal(activations.softplus(extremes), [0, 0, 800, 1e4])
    np.testing.assert_array_equal(activations.gelu(extremes), [0, 0, 800, 1e4])
    np.testing.assert_array_equal(activations.elu(extremes), [-1, -1, 800, 1e4])
    np.testing.assert_allclose(activations.softsign(extremes), extremes / (1 + np.abs(extremes)))
    with np.errstate(over="ignore"):
        assert np.isfinite(activations.silu(extremes)).all()


def test_activation_names_and_serialization():
    assert activations.get("swish") is activations.silu
    assert activations.get({"class_name": "gelu", "config": None}) is activations.gelu
    assert activations.deserialize("elu") is activations.elu
    for name in EXPECTED_ACTIVATIONS:
        assert name in activations.ACTIVATIONS.names()
    assert layers.Dense(2, activation="swish").get_config()["activation"] == "silu"
    assert activations.gelu.needs_input and activations.silu.needs_input
    assert not activations.elu.needs_input
    with pytest.raises(ValueError, match="unknown activation 'mish'.*'gelu'.*'swish'"):
        activations.get("mish")
    with pytest.raises(TypeError, match="activation"):
        activations.get(np.tanh)


@pytest.mark.parametrize("activation", ["gelu", "silu", "selu", "elu", "softplus",
                                        "softsign", "leaky_relu", "exponential"])
def test_dense_gradients_through_activations(backend, activation):
    layer = layers.Dense(3, activation=activation, bias_initializer="he_normal")
    check_layer_gradients(layer, 0.5 * images((3, 4)))


@pytest.mark.parametrize("activation", ["gelu", "swish"])
def test_conv2d_gradients_through_input_activations(backend, activation):
    layer = layers.Conv2D(2, 3, padding="same", activation=activation, dtype="float64")
    check_layer_gradients(layer, images((2, 4, 5, 2)))


def test_kernel_layer_output_is_the_same_in_training_and_inference():
    layer = layers.Dense(3, activation="gelu")
    x = images((4, 5)).astype(np.float32)
    inference = layer.forward(x).copy()
    np.testing.assert_array_equal(layer.forward(x, training=True), inference)
    z = x @ layer.params["kernel"] + layer.params["bias"]
    np.testing.assert_allclose(inference, EXPECTED_ACTIVATIONS["gelu"](z.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ BatchNormalization


def batch_norm_layer(x, axis=-1, seed=2, **kwargs):
    """A float64 BatchNormalization built for x, with random gamma, beta and
    moving statistics."""
    layer = layers.BatchNormalization(axis=axis, dtype="float64", **kwargs)
    layer.build(x.shape)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(0.5, 2, w.shape) if name in ("gamma", "moving_variance")
                       else rng.standard_normal(w.shape) for name, w in layer.params.items()])
    return layer


def test_batch_norm_training_uses_and_tracks_the_batch_statistics():
    x = 2 * images((4, 3, 3, 2)) + 1
    layer = batch_norm_layer(x, momentum=0.9, epsilon=0.01)
    gamma, beta, moving_mean, moving_variance = layer.get_weights()
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased, as Keras
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, gamma * (x - mean) / np.sqrt(variance + 0.01) + beta,
                               rtol=1e-12)
    np.testing.assert_allclose(layer.params["moving_mean"], 0.9 * moving_mean + 0.1 * mean)
    np.testing.assert_allclose(layer.params["moving_variance"],
                               0.9 * moving_variance + 0.1 * variance)
    new_mean, new_variance = layer.get_weights()[2:]
    other = images((2, 3, 3, 2), seed=5)
    np.testing.assert_allclose(layer(other),
                               gamma * (other - new_mean) / np.sqrt(new_variance + 0.01) + beta,
                               rtol=1e-12)
    np.testing.assert_array_equal(layer.params["moving_mean"], new_mean)  # inference: unchanged


def test_batch_norm_on_features_and_on_another_axis():
    x = images((5, 3))
    layer = batch_norm_layer(x, center=False, scale=False, epsilon=1e-3)
    np.testing.assert_allclose(layer.forward(x, training=True),
                               (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-12)
    x = images((3, 2, 4))
    layer = batch_norm_layer(x, axis=1)
    gamma, beta = layer.params["gamma"][:, None], layer.params["beta"][:, None]
    mean, variance = x.mean(axis=(0, 2))[:, None], x.var(axis=(0, 2))[:, None]
    np.testing.assert_allclose(layer.forward(x, training=True),
                               gamma * (x - mean) / np.sqrt(variance + 1e-3) + beta, rtol=1e-12)


def test_frozen_batch_norm_uses_the_moving_statistics_in_training():
    x = images((4, 2, 2, 3))
    layer = batch_norm_layer(x, trainable=False)
    before = layer.get_weights()
    np.testing.assert_allclose(layer.forward(x, training=True).copy(), layer(x), rtol=1e-15)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("shape, kwargs", [
    ((6, 3), {}),
    ((2, 3, 3, 2), {}),
    ((2, 3, 4), {"axis": 1}),
    ((3, 2, 2, 2), {"center": False}),
    ((3, 2, 2, 2), {"scale": False}),
    ((3, 2, 2, 2), {"trainable": False}),
])
def test_batch_norm_gradients(shape, kwargs):
    x = images(shape)
    check_layer_gradients(batch_norm_layer(x, epsilon=0.01, **kwargs), x)


def test_batch_norm_weights_and_config():
    layer = layers.BatchNormalization(input_shape=(4, 4, 3))
    layer.build((None, 4, 4, 3))
    assert list(layer.params) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.shape for w in layer.weights] == [(3,)] * 4
    assert list(layer.grads) == ["gamma", "beta"]
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2
    np.testing.assert_array_equal(layer.get_weights(), [[1] * 3, [0] * 3, [0] * 3, [1] * 3])
    assert list(layers.BatchNormalization(center=False).make_params((None, 2), np.float32)) == \
        ["gamma", "moving_mean", "moving_variance"]
    config = layer.get_config()
    assert {k: config[k] for k in ("axis", "momentum", "epsilon", "center", "scale")} == \
        {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}
    assert layers.BatchNormalization.from_config(config).get_config() == config


@pytest.mark.parametrize("kwargs, error, match", [
    ({"momentum": 1.5}, ValueError, "momentum"),
    ({"epsilon": 0}, ValueError, "epsilon"),
    ({"axis": "last"}, TypeError, "axis"),
    ({"synchronized": True}, ValueError, "synchronized"),
    ({"gamma_initializer": "one"}, ValueError, "gamma_initializer"),
    ({"beta_regularizer": 3}, TypeError, "beta_regularizer"),
])
def test_batch_norm_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        layers.BatchNormalization(**kwargs)


@pytest.mark.parametrize("axis, shape", [(0, (None, 3)), (2, (None, 3)), (-3, (None, 3))])
def test_batch_norm_bad_axis_for_the_inputs(axis, shape):
    with pytest.raises(ValueError, match="BatchNormalization layer.*axis"):
        layers.BatchNormalization(axis=axis).build(shape)


def test_conv_and_batch_norm_agree_on_both_backends():
    x = images((2, 6, 6, 2))
    dy = images((2, 4, 4, 3), seed=4)
    previous = fastconv.get_backend()
    results = {}
    try:
        for name in ("cython", "numpy"):
            fastconv.set_backend(name)
            utils.set_random_seed(7)
            conv = layers.Conv2D(3, 3, activation="gelu", dtype="float64")
            norm = layers.BatchNormalization()
            y = norm.forward(conv.forward(x, training=True), training=True).copy()
            dx = conv.backward(norm.backward(dy)).copy()
            results[name] = [y, dx] + [g.copy() for g in (*conv.grads.values(),
                                                           *norm.grads.values())]
    finally:
        fastconv.set_backend(previous)
    for compiled, reference in zip(results["cython"], results["numpy"]):
        np.testing.assert_allclose(compiled, reference, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------- global pooling


def test_global_pooling_values_and_shapes():
    x = images((2, 3, 4, 5))
    np.testing.assert_allclose(layers.GlobalAveragePooling2D()(x), x.mean(axis=(1, 2)))
    np.testing.assert_array_equal(layers.GlobalMaxPooling2D()(x), x.max(axis=(1, 2)))
    kept = layers.GlobalMaxPooling2D(keepdims=True)
    assert kept(x).shape == (2, 1, 1, 5)
    assert kept.output_shape == (None, 1, 1, 5)
    assert layers.GlobalAveragePooling2D().output_shape_for((None, 3, 4, 5)) == (None, 5)
    assert kept.get_config()["keepdims"] is True


@pytest.mark.parametrize("layer_class", [layers.GlobalAveragePooling2D,
                                         layers.GlobalMaxPooling2D])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_gradients(layer_class, keepdims):
    check_layer_gradients(layer_class(keepdims=keepdims), images((2, 3, 2, 3)))


def test_global_max_pooling_shares_the_gradient_between_ties():
    x = np.zeros((1, 2, 2, 1))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 1.0
    layer = layers.GlobalMaxPooling2D()
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(np.array([[4.0]]))[0, :, :, 0],
                                  [[0, 2], [2, 0]])


@pytest.mark.parametrize("layer_class", [layers.GlobalAveragePooling2D,
                                         layers.GlobalMaxPooling2D])
def test_global_pooling_needs_images(layer_class):
    with pytest.raises(ValueError, match=f"{layer_class.__name__} layer.*4-D"):
        layer_class()(images((2, 3)))


# -------------------------------------------------------------- reshaping


def test_reshape_and_permute_values():
    x = images((2, 3, 4))
    np.testing.assert_array_equal(layers.Reshape((4, -1))(x), x.reshape(2, 4, 3))
    assert layers.Reshape((-1, 2, 2)).output_shape_for((None, 12)) == (None, 3, 2, 2)
    np.testing.assert_array_equal(layers.Permute((2, 1))(x), x.transpose(0, 2, 1))
    y = images((2, 3, 4, 5))
    np.testing.assert_array_equal(layers.Permute((3, 1, 2))(y), y.transpose(0, 3, 1, 2))
    assert layers.Reshape([3, -1]).get_config()["target_shape"] == [3, -1]
    assert layers.Permute([2, 1]).get_config()["dims"] == [2, 1]


@pytest.mark.parametrize("layer", [
    lambda: layers.Reshape((-1, 2)), lambda: layers.Permute((3, 1, 2)),
    lambda: layers.ZeroPadding2D(((1, 0), (2, 1))), lambda: layers.Cropping2D(((1, 0), (0, 1))),
    lambda: layers.UpSampling2D((2, 3)), lambda: layers.UpSampling2D(2, "bilinear"),
    lambda: layers.UpSampling2D((3, 2), interpolation="BILINEAR"),
])
def test_reshaping_gradients(layer):
    check_layer_gradients(layer(), images((2, 3, 2, 2)))


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.Reshape((-1, -1)), ValueError, "target_shape"),
    (lambda: layers.Reshape((0, 3)), ValueError, "target_shape"),
    (lambda: layers.Reshape((2.0, 3)), TypeError, "target_shape"),
    (lambda: layers.Reshape(6), TypeError, "target_shape"),
    (lambda: layers.Permute((1, 1)), ValueError, "dims"),
    (lambda: layers.Permute((0, 1)), ValueError, "dims"),
    (lambda: layers.Permute((1, 3)), ValueError, "dims"),
    (lambda: layers.ZeroPadding2D(-1), ValueError, "padding"),
    (lambda: layers.ZeroPadding2D((1, 2, 3)), ValueError, "padding"),
    (lambda: layers.ZeroPadding2D(((1,), (1, 1))), ValueError, "padding"),
    (lambda: layers.ZeroPadding2D("same"), TypeError, "padding"),
    (lambda: layers.Cropping2D(1.5), TypeError, "cropping"),
    (lambda: layers.UpSampling2D(0), ValueError, "size"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), ValueError, "not supported yet"),
    (lambda: layers.UpSampling2D(interpolation="area"), ValueError, "interpolation"),
    (lambda: layers.UpSampling2D(interpolation=None), TypeError, "interpolation"),
])
def test_reshaping_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (lambda: layers.Reshape((4, -1)), (2, 3, 3), "Reshape layer"),
    (lambda: layers.Reshape((2, 2)), (2, 5), "Reshape layer"),
    (lambda: layers.Permute((2, 1)), (2, 3, 4, 5), "Permute layer"),
    (lambda: layers.ZeroPadding2D(), (2, 3, 4), "ZeroPadding2D layer.*4-D"),
    (lambda: layers.Cropping2D(((2, 1), (0, 0))), (2, 3, 4, 1), "Cropping2D layer"),
    (lambda: layers.UpSampling2D(), (2, 3), "UpSampling2D layer.*4-D"),
])
def test_reshaping_incompatible_inputs(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer()(images(shape))


def test_padding_and_cropping_values():
    x = images((2, 3, 4, 2))
    for padding, pads in [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))),
                          (((0, 1), (2, 3)), ((0, 1), (2, 3)))]:
        layer = layers.ZeroPadding2D(padding)
        np.testing.assert_array_equal(layer(x), np.pad(x, ((0, 0), *pads, (0, 0))))
        assert layer.get_config()["padding"] == [list(p) for p in pads]
    np.testing.assert_array_equal(layers.Cropping2D(((1, 0), (1, 2)))(x), x[:, 1:, 1:2])
    np.testing.assert_array_equal(layers.Cropping2D(1)(x), x[:, 1:2, 1:3])
    np.testing.assert_array_equal(layers.Cropping2D()(x), x)
    # Keras's docstring example
    y = layers.ZeroPadding2D(1)(np.arange(4.0).reshape(1, 1, 2, 2))
    np.testing.assert_array_equal(y[0, :, :, 1], [[0, 0, 0, 0], [0, 1, 3, 0], [0, 0, 0, 0]])


def test_up_sampling_values():
    x = np.arange(12.0).reshape(2, 2, 1, 3)  # Keras's docstring example
    np.testing.assert_array_equal(layers.UpSampling2D((1, 2))(x), np.repeat(x, 2, axis=2))
    a, b, c, d = 1.0, 3.0, 7.0, 15.0
    image = np.array([[a, b], [c, d]]).reshape(1, 2, 2, 1)
    # Half-pixel centres, clamped at the edges (TensorFlow's and JAX's bilinear resize).
    weights = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    expected = weights @ np.array([[a, b], [c, d]]) @ weights.T
    y = layers.UpSampling2D(2, interpolation="bilinear")(image)
    np.testing.assert_allclose(y[0, :, :, 0], expected)
    assert layers.UpSampling2D(3).output_shape_for((None, 2, 5, 4)) == (None, 6, 15, 4)


# --------------------------------------------------- advanced activations


X_DOC = np.array([-10, -5, 0.0, 5, 10])  # Keras's docstring examples


def test_advanced_activation_values():
    np.testing.assert_array_equal(layers.ReLU()(X_DOC), [0, 0, 0, 5, 10])
    np.testing.assert_array_equal(layers.ReLU(10, negative_slope=0.5)(X_DOC),
                                  [-5, -2.5, 0, 5, 10])
    np.testing.assert_array_equal(layers.ReLU(max_value=5.0)(X_DOC), [0, 0, 0, 5, 5])
    np.testing.assert_array_equal(layers.ReLU(threshold=5.0)(X_DOC), [0, 0, 0, 0, 10])
    np.testing.assert_array_equal(layers.ReLU(8, 0.5, 1.0)(X_DOC), [-5.5, -3, -0.5, 5, 8])
    np.testing.assert_array_equal(layers.LeakyReLU(negative_slope=0.5)(X_DOC),
                                  [-5, -2.5, 0, 5, 10])
    np.testing.assert_allclose(layers.LeakyReLU()(X_DOC), [-3, -1.5, 0, 5, 10])
    np.testing.assert_allclose(layers.ELU(0.5)(X_DOC), np.where(X_DOC > 0, X_DOC,
                                                                0.5 * np.expm1(X_DOC)))
    x = images((2, 3, 4))
    np.testing.assert_allclose(layers.Softmax(axis=1)(x),
                               np.exp(x) / np.exp(x).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(layers.Softmax((1, 2))(x).sum(axis=(1, 2)), 1)
    assert layers.Softmax().activation is activations.softmax  # a model's fused loss sees it


@pytest.mark.parametrize("layer", [
    lambda: layers.ReLU(), lambda: layers.ReLU(1.5, 0.3, 0.2), lambda: layers.ReLU(max_value=1),
    lambda: layers.LeakyReLU(), lambda: layers.LeakyReLU(1.5), lambda: layers.ELU(0.7),
    lambda: layers.Softmax(), lambda: layers.Softmax(1), lambda: layers.Softmax((1, -1)),
])
def test_advanced_activation_gradients(layer):
    check_layer_gradients(layer(), images((3, 4, 3)))


def test_leaky_relu_accepts_keras_2_alpha():
    with pytest.warns(DeprecationWarning, match="alpha"):
        layer = layers.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1
    assert layer.get_config()["negative_slope"] == 0.1 and "alpha" not in layer.get_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.LeakyReLU(0.1)


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.ReLU(max_value=-1), ValueError, "max_value"),
    (lambda: layers.ReLU(negative_slope=None), TypeError, "negative_slope"),
    (lambda: layers.ReLU(threshold=-0.5), ValueError, "threshold"),
    (lambda: layers.LeakyReLU(-0.1), ValueError, "negative_slope"),
    (lambda: layers.LeakyReLU("0.3"), TypeError, "negative_slope"),
    (lambda: layers.ELU(alpha=-1), ValueError, "alpha"),
    (lambda: layers.Softmax(axis=1.0), TypeError, "axis"),
    (lambda: layers.Softmax(axis=()), ValueError, "axis"),
])
def test_advanced_activation_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("axis", [0, 3, -4, (1, -2)])
def test_softmax_axis_must_fit_the_inputs(axis):
    with pytest.raises(ValueError, match="Softmax layer.*axis"):
        layers.Softmax(axis)(images((2, 3, 4)))


# ---------------------------------------------------------- regularization


def test_spatial_dropout_drops_whole_channels():
    x = images((8, 3, 4, 6)) + 10  # no zeros of its own
    layer = layers.SpatialDropout2D(0.5)
    utils.set_random_seed(0)
    y = layer.forward(x, training=True)
    kept = y[:, :1, :1, :] != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(y, np.where(kept, 2 * x, 0))
    np.testing.assert_array_equal(layer(x), x)
    with pytest.raises(ValueError, match="SpatialDropout2D layer.*4-D"):
        layers.SpatialDropout2D(0.5)(images((2, 3)))


def test_gaussian_noise_and_dropout_values():
    x = images((50, 20, 20))
    utils.set_random_seed(3)
    noisy = layers.GaussianNoise(0.5).forward(x, training=True)
    np.testing.assert_allclose(noisy - x, 0.5 * np.random.default_rng(3).standard_normal(x.shape),
                               atol=1e-12)
    utils.set_random_seed(3)
    factors = layers.GaussianDropout(0.2).forward(x, training=True) / x
    np.testing.assert_allclose(factors, 1 + 0.5 * np.random.default_rng(3).standard_normal(
        x.shape), rtol=1e-9)  # stddev sqrt(0.2 / 0.8) = 0.5
    for layer in (layers.GaussianNoise(0.5), layers.GaussianDropout(0.2)):
        np.testing.assert_array_equal(layer(x), x)


@pytest.mark.parametrize("layer", [lambda: layers.SpatialDropout2D(0.4),
                                   lambda: layers.GaussianNoise(0.3),
                                   lambda: layers.GaussianDropout(0.3)])
def test_noise_layer_gradients(layer):
    check_layer_gradients(layer(), images((3, 2, 2, 3)))


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.SpatialDropout2D(1.0), ValueError, "rate"),
    (lambda: layers.GaussianNoise(-0.1), ValueError, "stddev"),
    (lambda: layers.GaussianNoise("1"), TypeError, "stddev"),
    (lambda: layers.GaussianDropout(-0.1), ValueError, "rate"),
])
def test_noise_layer_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer", [
    lambda: layers.Dense(3, kernel_regularizer=regularizers.L1L2(0.01, 0.02),
                         bias_regularizer="l2", bias_initializer="he_normal"),
    lambda: layers.Conv2D(2, 2, kernel_regularizer="l1", bias_regularizer=regularizers.L2(0.1),
                          bias_initializer="he_normal"),
    lambda: layers.BatchNormalization(gamma_regularizer="l2", beta_regularizer="l1",
                                      beta_initializer="he_normal"),
])
def test_regularizer_gradients(backend, layer):
    layer = layer()
    x = images((2, 3, 3, 2))
    check_layer_gradients(layer, x, penalty=True)
    assert layer.regularization_loss() > 0


@pytest.mark.parametrize("layer", [
    lambda: layers.Dense(3, activation="tanh", activity_regularizer=regularizers.L1L2(0.1, 0.2)),
    lambda: layers.Conv2D(2, 2, activity_regularizer="l2"),
    lambda: layers.GlobalAveragePooling2D(activity_regularizer="l1"),
])
def test_activity_regularizer_gradients(backend, layer):
    check_layer_gradients(layer(), images((2, 3, 3, 2)), penalty=True)


def test_activity_regularizer_penalizes_the_last_training_output():
    layer = layers.Dense(2, activity_regularizer=regularizers.L2(0.5),
                         kernel_regularizer=regularizers.L1(0.25))
    x = images((3, 4))
    assert layer.get_config()["activity_regularizer"] == {"class_name": "L2",
                                                          "config": {"l2": 0.5}}
    y = layer.forward(x, training=True)
    weights_penalty = 0.25 * np.abs(layer.params["kernel"]).sum()
    assert layer.regularization_loss() == pytest.approx(0.5 * np.square(y).sum()
                                                        + weights_penalty)
    layer.forward(x)  # inference: no activity penalty
    assert layer.regularization_loss() == pytest.approx(weights_penalty)
    assert "activity_regularizer" not in layers.Dropout(0.5).get_config()
    config = layers.Dropout(0.5, activity_regularizer="l1").get_config()
    assert layers.Dropout.from_config(config).activity_regularizer.l1 == 0.01
    with pytest.raises(ValueError, match="unknown activity_regularizer 'l3'"):
        layers.Dense(2, activity_regularizer="l3")


# -------------------------------------------------------- every new layer

NEW_LAYERS = [
    lambda: layers.BatchNormalization(momentum=0.5), lambda: layers.GlobalAveragePooling2D(),
    lambda: layers.GlobalMaxPooling2D(keepdims=True), lambda: layers.Reshape((-1, 2)),
    lambda: layers.Permute((2, 3, 1)), lambda: layers.ZeroPadding2D(((0, 1), (2, 0))),
    lambda: layers.Cropping2D((1, 0)), lambda: layers.UpSampling2D((1, 2), "bilinear"),
    lambda: layers.ReLU(6.0, 0.1), lambda: layers.LeakyReLU(0.2), lambda: layers.ELU(0.5),
    lambda: layers.Softmax((1, 2)), lambda: layers.SpatialDropout2D(0.3),
    lambda: layers.GaussianNoise(0.2), lambda: layers.GaussianDropout(0.1),
    lambda: layers.Activation("gelu"), lambda: layers.Dense(2, activation="silu"),
]


@pytest.mark.parametrize("make", NEW_LAYERS)
def test_new_layers_config_round_trip_and_dtypes(make):
    layer = make()
    config = layers.serialize(layer)
    assert layers.deserialize(config).get_config() == layer.get_config()
    assert getattr(layers, type(layer).__name__) is type(layer)
    for dtype in (np.float32, np.float64):
        layer = layers.deserialize(config)
        x = images((2, 4, 4, 3)).astype(dtype)
        y = layer.forward(x, training=True)
        assert y.dtype == dtype and y.shape[1:] == layer.output_shape[1:]
        dx = layer.backward(np.ones_like(y))
        assert dx.dtype == dtype and dx.shape == x.shape
        assert all(g.dtype == dtype for g in layer.grads.values())
