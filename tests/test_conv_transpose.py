"""Conv2DTranspose and the conv2d_backward(compute_dkernel=False) it runs on.

The layer is checked against an independent NumPy formulation (every input
pixel scatters its kernel-weighted values onto the output), hand-computed
examples, the output shapes Keras 3 computes (the values below are those of
Keras 3.15's ``compute_output_shape``), finite differences on both backends,
Keras's config and errors, and a small autoencoder that learns.
"""

import numpy as np
import pytest

from fastconv import layers, models, ops, optimizers, reference, utils
from test_kernels import DTYPES, MODULES, assert_all_close, assert_close
from test_layers import check_layer_gradients, images


def keras_output_size(size, kernel, stride, padding, output_padding):
    """The output length of Keras's transposed convolution along one axis."""
    if padding == "valid":
        if output_padding is None:
            output_padding = max(kernel, stride) - kernel
        return (size - 1) * stride + kernel + output_padding
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + kernel % 2 + output_padding


def scatter_transposed_conv(x, kernel, bias, strides, padding, output_padding=None):
    """Transposed convolution by definition: input pixel (i, j) adds
    kernel[a, b] @ x[i, j] at (i * stride + a, j * stride + b) of a full
    output, which is then cropped (or extended with zeros) to Keras's size,
    dropping the leading rows and columns that TensorFlow's 'same' pads."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    (sh, sw), extras = strides, output_padding or (None, None)
    out_h = keras_output_size(h, kh, sh, padding, extras[0])
    out_w = keras_output_size(w, kw, sw, padding, extras[1])
    top = max((h - 1) * sh + kh - out_h, 0) // 2 if padding == "same" else 0
    left = max((w - 1) * sw + kw - out_w, 0) // 2 if padding == "same" else 0
    full = np.zeros((n, max((h - 1) * sh + kh, top + out_h),
                     max((w - 1) * sw + kw, left + out_w), filters))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    full[:, i * sh + a, j * sw + b] += x[:, i, j] @ kernel[a, b].T
    y = full[:, top:top + out_h, left:left + out_w]
    return y + bias if bias is not None else y


def built_layer(x, dtype, seed=0, **arguments):
    """A Conv2DTranspose built for x, with a random bias."""
    layer = layers.Conv2DTranspose(dtype=dtype, **arguments)
    layer.build(x.shape)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, np.random.default_rng(seed).standard_normal(bias.shape)])
    return layer


GEOMETRIES = [
    dict(kernel_size=3, strides=1, padding="valid"),
    dict(kernel_size=(3, 2), strides=(2, 3), padding="valid"),
    dict(kernel_size=1, strides=3, padding="valid"),  # kernel smaller than strides
    dict(kernel_size=2, strides=3, padding="valid", output_padding=(1, 2)),
    dict(kernel_size=3, strides=1, padding="same"),
    dict(kernel_size=(3, 4), strides=2, padding="same"),
    dict(kernel_size=(4, 5), strides=(3, 2), padding="same", output_padding=(1, 0)),
    dict(kernel_size=3, strides=(2, 3), padding="same", output_padding=(1, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_matches_scatter_formulation(backend, geometry, dtype):
    x = images((2, 5, 4, 3), seed=2).astype(dtype)
    layer = built_layer(x, dtype, filters=4, **geometry)
    expected = scatter_transposed_conv(x.astype(np.float64), *layer.get_weights(),
                                       layer.strides, layer.padding, layer.output_padding)
    assert_close(layer(x), expected.astype(dtype))


def test_hand_computed_examples(backend):
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    ones = [np.ones((2, 2, 1, 1)), np.zeros(1)]
    overlapping = layers.Conv2DTranspose(1, 2, dtype="float64")
    overlapping.build(x.shape)
    overlapping.set_weights(ones)
    np.testing.assert_array_equal(overlapping(x)[0, ..., 0],
                                  [[1, 3, 2], [4, 10, 6], [3, 7, 4]])
    # Strides equal to the kernel size: each pixel becomes a 2x2 block.
    blocks = layers.Conv2DTranspose(1, 2, strides=2, activation="relu", dtype="float64")
    blocks.build(x.shape)
    blocks.set_weights([np.ones((2, 2, 1, 1)), np.array([-2.5])])
    np.testing.assert_array_equal(blocks(x)[0, ..., 0],
                                  np.maximum(np.kron(x[0, ..., 0], np.ones((2, 2))) - 2.5, 0))


@pytest.mark.parametrize("size, kernel_size, strides, padding, output_padding, expected", [
    ((10, 8), 2, 2, "valid", None, (20, 16)),  # Keras's docstring example
    ((5, 4), 3, 1, "valid", None, (7, 6)),
    ((5, 4), (3, 2), (2, 3), "valid", None, (11, 12)),
    ((5, 4), 1, 3, "valid", None, (15, 12)),
    ((5, 4), 2, 3, "valid", (1, 2), (15, 13)),
    ((7, 7), 4, 2, "valid", 0, (16, 16)),
    ((5, 4), 3, 2, "same", None, (10, 8)),
    ((7, 7), 3, 2, "same", None, (14, 14)),
    ((5, 4), 3, (2, 3), "same", (1, 0), (10, 10)),
    ((5, 4), (3, 4), 2, "same", (0, 1), (9, 7)),
])
def test_output_shape_is_keras(size, kernel_size, strides, padding, output_padding, expected):
    layer = layers.Conv2DTranspose(2, kernel_size, strides=strides, padding=padding,
                                   output_padding=output_padding)
    assert layer.compute_output_shape((None,) + size + (3,)) == (None,) + expected + (2,)
    assert layer(np.zeros((1,) + size + (3,), np.float32)).shape == (1,) + expected + (2,)


def test_weights_config_and_symbolic_call():
    inputs = layers.Input((7, 6, 3))
    layer = layers.Conv2DTranspose(5, (3, 2), strides=2, padding="same", output_padding=1,
                                   activation="relu", name="up")
    assert layer(inputs).shape == (None, 14, 11, 5)  # (6 - 1) * 2 + 2 % 2 + 1
    assert [w.shape for w in layer.get_weights()] == [(3, 2, 5, 3), (5,)]
    assert layer.count_params() == 3 * 2 * 5 * 3 + 5
    config = layer.get_config()
    assert config["output_padding"] == [1, 1] and config["strides"] == [2, 2]
    clone = layers.deserialize({"class_name": "Conv2DTranspose", "config": config})
    assert clone.get_config() == config
    assert layers.Conv2DTranspose(1, 2).get_config()["output_padding"] is None


@pytest.mark.parametrize("arguments, error, match", [
    (dict(dilation_rate=2), ValueError, "dilation_rate=.*not supported yet"),
    (dict(strides=2, output_padding=2), ValueError, "`output_padding` must be < `strides`"),
    (dict(output_padding=-1), ValueError, "output_padding must be non-negative"),
    (dict(output_padding=1.5), TypeError, "output_padding must be integers"),
    (dict(strides=2, padding="same", output_padding=(1, 0)), ValueError,
     "output_padding=.*even kernel_size"),
    (dict(padding="full"), ValueError, "padding must be 'valid' or 'same'"),
    (dict(data_format="channels_first"), ValueError, "channels_first"),
    (dict(filters=0), ValueError, "filters"),
])
def test_bad_arguments(arguments, error, match):
    with pytest.raises(error, match=match):
        layers.Conv2DTranspose(**{"filters": 2, "kernel_size": 2, **arguments})


@pytest.mark.parametrize("activation", ["linear", "relu", "gelu"])
@pytest.mark.parametrize("geometry", [
    dict(kernel_size=(3, 2), strides=(2, 1), padding="valid"),
    dict(kernel_size=3, strides=2, padding="same", output_padding=1),
    dict(kernel_size=2, strides=3, padding="valid", use_bias=False),
])
def test_gradients(backend, geometry, activation):
    layer = layers.Conv2DTranspose(3, activation=activation, dtype="float64",
                                   bias_initializer="he_normal", **geometry)
    check_layer_gradients(layer, images((2, 4, 3, 2)))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("config", [
    dict(strides=(2, 3), padding="same"),
    dict(dilation_rate=(2, 1)),
    dict(groups=2, padding="same"),
])
def test_backward_without_weight_gradients(module, config):
    """compute_dkernel=False gives the same dx, and no dkernel or dbias."""
    rng = np.random.default_rng(5)
    x, kernel = rng.standard_normal((2, 7, 6, 4)), rng.standard_normal((3, 2, 4 // config.get(
        "groups", 1), 4))
    dy = rng.standard_normal(module.conv2d_forward(x, kernel, **config).shape)
    full = module.conv2d_backward(x, kernel, dy, **config)
    assert_all_close(module.conv2d_backward(x, kernel, dy, compute_dkernel=False, **config),
                     (full[0], None, None))
    dx = np.empty_like(x)
    assert module.conv2d_backward(x, kernel, dy, compute_dkernel=False, out=(dx, None, None),
                                  **config)[0] is dx
    assert_close(dx, full[0])


def test_backward_without_weight_gradients_of_a_non_finite_kernel():
    x, kernel = images((1, 4, 4, 1)), np.ones((2, 2, 1, 1))
    kernel[0, 0] = np.inf
    dy = images((1, 3, 3, 1), seed=3)
    assert_all_close(ops.conv2d_backward(x, kernel, dy, compute_dkernel=False),
                     reference.conv2d_backward(x, kernel, dy, compute_dkernel=False))


def test_autoencoder_fits():
    """Conv2D stride 2 down, Conv2DTranspose stride 2 up: learns to rebuild
    blurred blobs far better than the untrained model."""
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:8, 0:8]
    centres = rng.uniform(1, 7, size=(64, 2))
    x = np.exp(-((rows - centres[:, :1, None]) ** 2 + (cols - centres[:, 1:, None]) ** 2)
               / 4.0)[..., None].astype(np.float32)
    model = models.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
    ])
    assert model.output_shape == (None, 8, 8, 1)
    model.compile(optimizers.Adam(0.01), "mse")
    before = model.evaluate(x, x, verbose=0)
    model.fit(x, x, batch_size=16, epochs=60, verbose=0)
    assert model.evaluate(x, x, verbose=0) < 0.05 * before
