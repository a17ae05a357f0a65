"""Smoke test of an installed fastconv (run from outside the repository):
import it, check one convolution against the reference, train briefly."""

import numpy as np

import fastconv
from fastconv import layers, models, ops, reference

assert "site-packages" in fastconv.__file__, fastconv.__file__
print("fastconv", fastconv.__version__, fastconv.build_info())

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 12, 12, 3), dtype=np.float32)
kernel = rng.standard_normal((3, 3, 3, 8), dtype=np.float32)
np.testing.assert_allclose(ops.conv2d_forward(x, kernel, padding="same"),
                           reference.conv2d_forward(x, kernel, padding="same"),
                           rtol=1e-4, atol=1e-4)

model = models.Sequential([
    layers.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 3)),
    layers.MaxPooling2D(2),
    layers.Flatten(),
    layers.Dense(2, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
labels = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(int)
history = model.fit(np.repeat(x, 8, axis=0), np.repeat(labels, 8), epochs=2, verbose=0)
assert np.isfinite(history.history["loss"]).all()
print("smoke test passed")
