"""Model runs for ``tests/test_model_robustness.py`` that need a process of
their own: one to kill in the middle of saving, one with a capped address space.

    python tests/helpers/model_subprocess.py save-loop PATH   # saves to PATH until killed
    python tests/helpers/model_subprocess.py huge-batch       # batches too large for memory

save-loop saves a 4-million-weight model (16 MB) again and again, its first
bias set to the save's number, and prints ``saved <i>`` after save i.

huge-batch caps the address space (``RLIMIT_AS``) at 1 GB above what the
process uses after start-up, so that the 4 GB of intermediates of one batch
of 20,000 images fail to allocate on every machine, and prints one JSON line
per call: its outcome ('ok' or the exception's name) and message.
"""

import faulthandler
import json
import os
import resource
import sys

import numpy as np

from fastconv import layers, models, utils

faulthandler.enable()


def save_loop(path):
    model = models.Sequential([layers.Dense(2000, input_shape=(2000,))])
    bias = model.layers[0].params["bias"]
    for i in range(10**9):
        bias[0] = i
        model.save(path)
        print(f"saved {i}", flush=True)


def cap_address_space(headroom=2**30):
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom, size + headroom))


def wide_model():
    """28x28x64 float32 values per image after the first layer: 200 kB, so
    one batch of all 20,000 images would need 4 GB there alone (an average
    pool, since a max pool would be fused with the convolution, whose full
    output is then never stored)."""
    model = models.Sequential([
        layers.Conv2D(64, (1, 1), activation="relu", input_shape=(28, 28, 1)),
        layers.AveragePooling2D((4, 4)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def huge_batch():
    utils.set_random_seed(0)
    model = wide_model()
    rng = np.random.default_rng(0)
    x = rng.random((20_000, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    model.fit(x[:128], y[:128], batch_size=64, verbose=0)  # warm-up: threads, buffers
    cap_address_space()
    calls = {
        "predict_huge_batch": lambda: model.predict(x, batch_size=len(x), verbose=0),
        "evaluate_huge_batch": lambda: model.evaluate(x, y, batch_size=len(x), verbose=0),
        "fit_huge_batch": lambda: model.fit(x, y, batch_size=len(x), verbose=0),
        "predict_batch_64": lambda: model.predict(x, batch_size=64, verbose=0),
        "evaluate_batch_64": lambda: model.evaluate(x, y, batch_size=64, verbose=0),
        "fit_batch_64": lambda: model.fit(x[:2048], y[:2048], batch_size=64, verbose=0),
    }
    for case, call in calls.items():
        try:
            call()
            outcome, message = "ok", ""
        except Exception as error:  # noqa: BLE001 - reported to the test
            outcome, message = type(error).__name__, str(error)
        finite = all(np.isfinite(w).all() for w in model.get_weights())
        print(json.dumps({"case": case, "outcome": outcome, "message": message,
                          "finite_weights": bool(finite)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["save-loop"]:
        save_loop(sys.argv[2])
    elif sys.argv[1:] == ["huge-batch"]:
        huge_batch()
    else:
        sys.exit(__doc__)
