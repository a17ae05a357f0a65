"""The cats-vs-dogs convnet of "Deep Learning with Python" (5.2) trained from
a folder of JPEGs: does decoding and augmentation keep the kernels busy?

    OMP_NUM_THREADS=2 python bench/bench_images.py

It writes a stand-in folder of generated 150x150 JPEGs (two classes; the
real Kaggle data cannot be downloaded here), then, in one run:

* fastconv, data from the folder through the book's ImageDataGenerator
  (rescale and the augmentation of the book's second model) and
  ``flow_from_directory``, read ahead by the background thread of ``fit``;
  the share of the step time the training thread waits for the next batch
  is measured by a callback (the time from one batch's end to the next
  batch's start);
* fastconv on the same number of batches held in memory (the kernels alone);
* PyTorch (when installed) on the same model, channels-last, with the same
  RMSprop: fed by the same JPEG pipeline read ahead by a background thread,
  and from memory.

Each figure is a median over ``--repeat`` timed epochs of ``--steps`` steps
after a warm-up epoch.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import describe_machine, import_torch, median_ms, print_table

import fastconv as keras
from fastconv import layers, optimizers

IMAGE_SIZE = (150, 150)


def write_jpeg_folder(root, per_class, rng):
    """root/{cats,dogs}/<i>.jpg: smooth random colour images (JPEG-like content)."""
    from PIL import Image

    for label in ("cats", "dogs"):
        folder = Path(root) / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            small = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize(IMAGE_SIZE, Image.Resampling.BICUBIC)
            image.save(folder / f"{i}.jpg", quality=90)


def book_model():
    """The book's second 5.2 model (with dropout), compiled as the book does."""
    model = keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=IMAGE_SIZE + (3,)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(512, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer=optimizers.RMSprop(learning_rate=1e-4),
                  metrics=["acc"])
    return model


class WaitTimer(keras.callbacks.Callback):
    """Time between a batch's end and the next batch's start: the training
    thread waiting for data (plus the loop's own bookkeeping)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.waits, self.last_end, self.start = [], time.perf_counter(), time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self.waits.append(time.perf_counter() - self.last_end)

    def on_train_batch_end(self, batch, logs=None):
        self.last_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def book_flow(folder, batch_size):
    """The book's ImageDataGenerator (rescale and augmentation) over ``folder``."""
    from fastconv.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rescale=1. / 255, rotation_range=40, width_shift_range=0.2,
                                   height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
                                   horizontal_flip=True)
    return generator.flow_from_directory(folder, target_size=IMAGE_SIZE,
                                         batch_size=batch_size, class_mode="binary")


def fastconv_from_folder(folder, steps, repeat, batch_size):
    """(median seconds per step, median waiting share) with data from JPEGs."""
    flow = book_flow(folder, batch_size)
    model, timer = book_model(), WaitTimer()
    model.fit(flow, steps_per_epoch=steps, epochs=1, verbose=0)  # warm-up
    per_step, shares = [], []
    for _ in range(repeat):
        model.fit(flow, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
        per_step.append(timer.seconds / steps)
        shares.append(sum(timer.waits[1:]) / timer.seconds)  # the first batch is read cold
    return statistics.median(per_step), statistics.median(shares)


def seconds_per_step(epoch, steps, repeat):
    """Median seconds per step of ``epoch()`` (``steps`` steps), over
    ``repeat`` timed calls after one warm-up call."""
    return median_ms(epoch, repeat, warmup=1) / 1e3 / steps


def fastconv_in_memory(x, y, steps, repeat, batch_size):
    model = book_model()
    n = steps * batch_size
    return seconds_per_step(lambda: model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1,
                                              verbose=0, shuffle=False), steps, repeat)


def torch_model(torch):
    """The book's model in PyTorch, channels-last, with Keras's RMSprop."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(7 * 7 * 128, 512), nn.ReLU(),
        nn.Linear(512, 1)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()

    def step(x, y):
        images = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last)
        optimizer.zero_grad()
        loss_fn(model(images), torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)).backward()
        optimizer.step()

    return step


def torch_in_memory(torch, x, y, steps, repeat, batch_size):
    step = torch_model(torch)

    def epoch():
        for i in range(steps):
            part = slice(i * batch_size, (i + 1) * batch_size)
            step(x[part], y[part])

    return seconds_per_step(epoch, steps, repeat)


def torch_from_folder(torch, folder, steps, repeat, batch_size):
    """PyTorch fed by the same JPEG pipeline (decoding and augmentation read
    ahead by a background thread, as fastconv's fit reads it)."""
    from fastconv.dataset import prefetched

    step, flow = torch_model(torch), book_flow(folder, batch_size)

    def epoch():
        for x, y in prefetched((flow[i] for i in range(steps)), 10):
            step(x, y)
        flow.on_epoch_end()

    return seconds_per_step(epoch, steps, repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images-per-class", type=int, default=160)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch = import_torch(keras.get_num_threads())
    print("\n".join(describe_machine(torch)))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(folder, args.images_per_class, rng)
        from_folder, waiting = fastconv_from_folder(folder, args.steps, args.repeat,
                                                    args.batch_size)
        torch_folder = (None if torch is None else
                        torch_from_folder(torch, folder, args.steps, args.repeat,
                                          args.batch_size))
    n = args.steps * args.batch_size
    x = rng.random((n,) + IMAGE_SIZE + (3,), dtype=np.float32)
    y = rng.integers(0, 2, n)
    in_memory = fastconv_in_memory(x, y, args.steps, args.repeat, args.batch_size)
    rows = [["fastconv, JPEG folder + augmentation", f"{from_folder * 1e3:.0f}",
             f"{args.batch_size / from_folder:.0f}", f"{waiting:.1%}", "1.00x"],
            ["fastconv, arrays in memory", f"{in_memory * 1e3:.0f}",
             f"{args.batch_size / in_memory:.0f}", "-", f"{from_folder / in_memory:.2f}x"]]
    if torch is not None:
        reference = torch_in_memory(torch, x, y, args.steps, args.repeat, args.batch_size)
        rows += [[f"PyTorch {torch.__version__} channels-last, JPEG folder + augmentation",
                  f"{torch_folder * 1e3:.0f}", f"{args.batch_size / torch_folder:.0f}", "-",
                  f"{from_folder / torch_folder:.2f}x"],
                 [f"PyTorch {torch.__version__} channels-last, arrays in memory",
                  f"{reference * 1e3:.0f}", f"{args.batch_size / reference:.0f}", "-",
                  f"{from_folder / reference:.2f}x"]]
    print(f"\nDLwP 5.2 model, batch {args.batch_size}, {args.steps} steps, "
          f"median of {args.repeat}:")
    print_table(["training", "ms per step", "images/s", "waiting for data",
                 "JPEG-folder step / this step"], rows)


if __name__ == "__main__":
    main()
