"""fit, evaluate and predict on streams: PyDataset, re-iterable datasets and
generators, against the same data given as arrays."""

import warnings

import numpy as np
import pytest

import fastconv as keras
from fastconv import layers, utils
from fastconv.data_adapters import PyDataset


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4)).astype(np.float32)
    return x, (x.sum(axis=1) > 2).astype(np.int64)


def model(seed=0):
    utils.set_random_seed(seed)
    net = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                            layers.Dense(2, activation="softmax")])
    net.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


class Batches(PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


class Reiterable:
    """An iterable that starts afresh each epoch, like a tf.data dataset."""

    def __init__(self, x, y, batch_size):
        self.batches = Batches(x, y, batch_size)

    def __iter__(self):
        return (self.batches[i] for i in range(len(self.batches)))


def test_streams_train_exactly_like_arrays():
    x, y = data()
    reference = model()
    expected = reference.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    for stream in (Batches(x, y, 8), Reiterable(x, y, 8)):
        net = model()
        assert net.fit(stream, epochs=3, verbose=0).history == expected
        for a, b in zip(net.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert net.evaluate(stream, verbose=0) == reference.evaluate(x, y, batch_size=8,
                                                                     verbose=0)
        np.testing.assert_array_equal(net.predict(stream, verbose=0),
                                      reference.predict(x, verbose=0))


def test_py_dataset_gets_on_epoch_end_and_steps_limit_it():
    x, y = data()
    stream = Batches(x, y, 8)
    history = model().fit(stream, epochs=2, steps_per_epoch=2, verbose=0)
    assert stream.epochs_ended == 2 and len(history.history["loss"]) == 2


def test_a_generator_continues_across_epochs_and_warns_when_it_runs_out():
    x, y = data()
    seen = []

    def batches():
        for i in range(0, 24, 8):
            seen.append(i)
            yield x[i:i + 8], y[i:i + 8]

    net = model()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = net.fit(batches(), epochs=3, steps_per_epoch=2, verbose=0)
    assert seen == [0, 8, 16] and len(history.history["loss"]) == 2
    with pytest.warns(UserWarning, match="ran out of data"):
        history = net.fit(iter([(x, y)]), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 1


def test_validation_stream_and_validation_steps():
    """Validation runs after the epoch's training, over validation_steps batches."""
    x, y = data()
    net = model()
    history = net.fit(x, y, epochs=1, verbose=0, validation_data=Batches(x, y, 8),
                      validation_steps=1)
    first_batch = net.evaluate(x[:8], y[:8], verbose=0)
    assert history.history["val_loss"] == [first_batch[0]]
    assert history.history["val_accuracy"] == [first_batch[1]]
    assert net.evaluate(Batches(x, y, 8), steps=1, verbose=0) == first_batch


def test_keras_2_generator_methods_warn_and_delegate():
    x, y = data()
    net = model()
    with pytest.warns(UserWarning, match="fit_generator` is deprecated"):
        net.fit_generator(Batches(x, y, 8), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="evaluate_generator"):
        loss, _ = net.evaluate_generator(Batches(x, y, 8), verbose=0)
    assert loss == pytest.approx(net.evaluate(x, y, batch_size=8, verbose=0)[0])
    with pytest.warns(UserWarning, match="predict_generator"):
        assert net.predict_generator(Batches(x, y, 8), verbose=0).shape == (24, 2)


def test_bad_streams_raise_clear_errors():
    x, y = data()
    net = model()
    with pytest.raises(ValueError, match="y must be None"):
        net.fit(Batches(x, y, 8), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        net.fit(Batches(x, y, 8), validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        net.fit(iter([(x, y, y, y)]), verbose=0)
    with pytest.raises(ValueError, match="expects inputs"):
        net.fit(iter([(x[:, :3], y)]), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert net.fit(x, y, verbose=0).history["loss"][0] > 0
