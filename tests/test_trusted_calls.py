"""Work a training step no longer repeats, against the way it was done:
the layers' trusted calls of the compiled kernels (``ops._conv2d_forward``
and the other private entry points, their arguments checked once per input
shape) against the public, fully checked functions, and the output's
softmax computed with the loss against the softmax applied after it: the
same weights and metrics, bit for bit."""

import types

import numpy as np
import pytest

import fastconv
from fastconv import layers, ops
from fastconv.examples.mnist import notebook_model
from fastconv.layers import _kernel, pooling
from fastconv.models import functional


@pytest.fixture
def public_kernels(monkeypatch):
    """Makes the layers and the fused step see a backend that is not
    ``ops`` but has its public functions: they then take the checked path."""
    public = types.SimpleNamespace(**{name: getattr(ops, name) for name in dir(ops)
                                      if name.endswith(("_forward", "_backward"))
                                      and not name.startswith("_")})
    for module in (_kernel, pooling, functional):
        monkeypatch.setattr(module, "kernels", lambda: public)


def bits(arrays):
    return [(a.dtype, a.shape, a.tobytes()) for a in arrays]


def notebook_batch(count=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count, 28, 28, 1), dtype=np.float32)
    return x, np.eye(10, dtype=np.float32)[rng.integers(0, 10, count)]


def train_notebook(steps=3):
    fastconv.utils.set_random_seed(1)
    model = notebook_model()
    x, y = notebook_batch()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model.get_weights() + [model.predict(x, verbose=0)]


def pooling_model():
    """Average pooling, a strided 'same' convolution, a linear one and a
    Dense on 3-D input: the trusted paths the notebook model does not take."""
    fastconv.utils.set_random_seed(2)
    model = fastconv.Sequential([
        fastconv.Input((9, 10, 2)),
        layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        layers.AveragePooling2D(2, strides=1, padding="same"),
        layers.Conv2D(4, 2, activation="tanh"),
        layers.Reshape((16, 4)),
        layers.Dense(5, activation="relu"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def train_pooling_model(steps=3):
    model = pooling_model()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 9, 10, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model.get_weights() + [model.predict(x, verbose=0)]


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("train", [train_notebook, train_pooling_model])
def test_trusted_calls_train_to_the_weights_of_checked_calls(monkeypatch, request, fuse,
                                                             train):
    monkeypatch.setattr(functional, "FUSE", fuse)
    trusted = train()
    request.getfixturevalue("public_kernels")
    checked = train()
    assert bits(trusted) == bits(checked)


@pytest.mark.parametrize("layer", [layers.Conv2D(3, 2, padding="same", activation="relu"),
                                   layers.MaxPooling2D(2), layers.AveragePooling2D(2)])
def test_a_layer_takes_a_non_contiguous_output_gradient(layer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = np.asfortranarray(rng.standard_normal(y.shape).astype(np.float32))
    from_fortran = layer.backward(dy).copy()
    np.testing.assert_array_equal(layer.backward(np.ascontiguousarray(dy)), from_fortran)


def test_the_loss_computes_the_output_activation_the_metrics_read(monkeypatch):
    """The softmax of the fused output layer, computed with the loss, gives
    the metrics of the softmax applied after it, and the same weights."""
    fastconv.utils.set_random_seed(1)
    model = notebook_model()
    assert model._activated_by_loss == [0]
    x, y = notebook_batch(count=16)
    shared = [model.train_on_batch(x, y) for _ in range(3)] + [model.get_weights()]
    fastconv.utils.set_random_seed(1)
    model = notebook_model()
    monkeypatch.setattr(model, "_activated_by_loss", [])
    separate = [model.train_on_batch(x, y) for _ in range(3)] + [model.get_weights()]
    assert shared[:3] == separate[:3]
    assert bits(shared[3]) == bits(separate[3])


@pytest.mark.parametrize("layer", [layers.Conv2D(3, 3, padding="same"),
                                   layers.MaxPooling2D(1), layers.AveragePooling2D(1)])
def test_a_layer_given_back_its_own_output_buffer_raises(layer):
    """forward and backward return buffers of the layer: given back to it as
    its input, they would be overwritten while read (as ops's out= check)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^out overlaps an input"):
        layer.forward(layer.forward(x))
    layer.forward(x, training=True)
    with pytest.raises(ValueError, match="overlaps an input"):
        layer.backward(layer.backward(rng.standard_normal(x.shape).astype(np.float32)))
