"""End-to-end benchmark: training and inference throughput of the MNIST
convnet of "Deep Learning with Python" ch. 5.1 at batch 64, for fastconv's
compiled backend, its NumPy reference backend, and PyTorch (same
architecture, initialisation and optimizer, channels-last) when installed.

    OMP_NUM_THREADS=2 python bench/bench_training.py

Each figure is the median over ``--repeat`` timed passes (after one
warm-up pass) over the same ``--images`` images, all in one run.
"""

import argparse

import numpy as np
from common import describe_machine, import_torch, median_ms, print_table

import fastconv
from fastconv.examples.mnist import notebook_model


def fastconv_passes(backend, x, labels, batch_size):
    """(train pass, predict pass) closures for a fresh notebook model that
    run on ``backend``."""
    model = notebook_model()

    def train():
        fastconv.set_backend(backend)
        model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)

    def predict():
        fastconv.set_backend(backend)
        return model.predict(x, batch_size=batch_size, verbose=0)

    return train, predict


def torch_passes(torch, x, labels, batch_size):
    """The same model, initialisation (Glorot uniform, zero biases) and
    optimizer (Keras's RMSprop) in PyTorch, channels-last."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    ).to(memory_format=torch.channels_last)
    for module in model:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    targets = torch.from_numpy(labels.argmax(axis=1))
    batches = [(images[i:i + batch_size], targets[i:i + batch_size])
               for i in range(0, len(x), batch_size)]

    def train():
        model.train()
        for xb, yb in batches:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            optimizer.step()

    def predict():
        model.eval()
        with torch.no_grad():
            return [torch.softmax(model(xb), dim=1) for xb, _ in batches]

    return train, predict


def random_data(images, seed=0):
    """``images`` random 28x28x1 images and one-hot labels (10 classes)."""
    rng = np.random.default_rng(seed)
    x = rng.random((images, 28, 28, 1), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, images)]
    return x, labels


def training_entries(torch, x, labels, batch_size, skip_numpy=False):
    """(name, train pass, predict pass) per backend: fastconv cython, fastconv
    numpy (unless ``skip_numpy``), PyTorch (when torch is given)."""
    entries = []
    for backend in ["cython"] + ([] if skip_numpy else ["numpy"]):
        entries.append((f"fastconv ({backend})",
                        *fastconv_passes(backend, x, labels, batch_size)))
    if torch:
        entries.append((f"PyTorch {torch.__version__} (channels-last)",
                        *torch_passes(torch, x, labels, batch_size)))
    return entries


def measure_training(entries, images, repeat):
    """One dict per entry: train and predict images/s (median pass), and
    the speed-ups of the first entry (fastconv cython) over it."""
    records, base = [], None
    for name, train, predict in entries:
        train_rate = images / median_ms(train, repeat, warmup=1) * 1e3
        predict_rate = images / median_ms(predict, repeat, warmup=1) * 1e3
        base = base or (train_rate, predict_rate)
        records.append({"backend": name, "train_images_per_s": train_rate,
                        "predict_images_per_s": predict_rate,
                        "cython_train_speedup": base[0] / train_rate,
                        "cython_predict_speedup": base[1] / predict_rate,
                        "s_per_60k_epoch": 60000 / train_rate})
    return records


def training_note(images, batch_size, repeat):
    return (f"{images} images a pass, batch {batch_size}, float32, median of "
            f"{repeat} passes; ratios are fastconv (cython) / entry")


def training_table(records):
    """(headers, rows) of the throughput table for ``measure_training`` records."""
    headers = ["backend", "train images/s", "cython speed-up", "s per 60k epoch",
               "predict images/s", "cython speed-up"]
    rows = [[r["backend"], f"{r['train_images_per_s']:,.0f}",
             f"{r['cython_train_speedup']:.2f}x", f"{r['s_per_60k_epoch']:.1f}",
             f"{r['predict_images_per_s']:,.0f}", f"{r['cython_predict_speedup']:.2f}x"]
            for r in records]
    return headers, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6400, help="images per timed pass")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per entry")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=fastconv.get_num_threads(),
                        help="threads for fastconv and PyTorch (default: OMP_NUM_THREADS)")
    parser.add_argument("--skip-numpy", action="store_true",
                        help="leave out the (slow) NumPy reference backend")
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    torch = import_torch(args.threads)
    x, labels = random_data(args.images)
    entries = training_entries(torch, x, labels, args.batch_size, args.skip_numpy)
    records = measure_training(entries, args.images, args.repeat)

    for line in describe_machine(torch):
        print(line)
    print(training_note(args.images, args.batch_size, args.repeat))
    print()
    print_table(*training_table(records))


if __name__ == "__main__":
    main()
