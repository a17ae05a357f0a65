"""Helpers shared by layers and models: seeding, labels, names, reusable
buffers and Keras's progress bar."""

import re
import sys
import threading
import time
from collections import Counter, OrderedDict

import numpy as np

from .data_adapters import PyDataset, Sequence  # noqa: F401  (keras.utils.PyDataset)
from .tensor import Tensor  # noqa: F401
from .visualize import plot_model  # noqa: F401  (keras.utils.plot_model)

_generator = np.random.default_rng()
_name_counts = Counter()


def set_random_seed(seed):
    """Seeds the one generator that initialises weights, shuffles and draws dropout masks."""
    global _generator
    _generator = np.random.default_rng(seed)


def random_generator():
    """The module-level ``numpy.random.Generator`` (replaced by ``set_random_seed``)."""
    return _generator


def to_categorical(y, num_classes=None):
    """Integer class labels (any shape) -> one-hot float32 of shape y.shape + (num_classes,).

    As in Keras, a trailing axis of size 1 is dropped first and num_classes
    defaults to max(y) + 1.
    """
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and not (np.issubdtype(y.dtype, np.integer)
                       or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError(f"to_categorical needs integer class labels, got dtype {y.dtype}")
    labels = y.astype(np.intp)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from "
                         f"{labels.min()} to {labels.max()}")
    one_hot = np.zeros(labels.shape + (num_classes,), np.float32)
    np.put_along_axis(one_hot, labels[..., None], 1.0, axis=-1)
    return one_hot


def snake_case(name):
    """Keras's snake case of a class or function name: 'MaxPooling2D' -> 'max_pooling2d'
    (characters other than letters, digits and '_' are dropped)."""
    name = re.sub(r"\W+", "", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


def unique_name(class_name):
    """Keras's automatic name: 'MaxPooling2D' -> 'max_pooling2d', then 'max_pooling2d_1', ..."""
    base = snake_case(class_name)
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def clear_session():
    """Restarts the automatic names (the next Conv2D is 'conv2d' again), as Keras's does."""
    _name_counts.clear()


class Buffers(threading.local):
    """Arrays reused from call to call, by name and (shape, dtype).

    A training step asks for the same shapes every time, so its big arrays
    are allocated once per batch shape; contents are left as they were.  Only
    the ``keep`` most recently used shapes of each name are kept, so memory
    stays bounded when batch sizes vary.  Each thread has arrays of its own,
    so that one model can predict in several threads at once.
    """

    def __init__(self, keep=4):
        self.keep = keep
        self._arrays = {}  # name -> OrderedDict((shape, dtype) -> array), oldest first

    def get(self, name, shape, dtype):
        arrays = self._arrays.setdefault(name, OrderedDict())
        key = (tuple(shape), np.dtype(dtype))
        array = arrays.pop(key, None)
        if array is None:
            array = np.empty(shape, dtype)
        arrays[key] = array
        if len(arrays) > self.keep:
            arrays.popitem(last=False)
        return array

    def __len__(self):
        """How many arrays are kept."""
        return sum(len(arrays) for arrays in self._arrays.values())


class Progbar:
    """Keras 2's progress bar, for ``target`` steps on ``stream`` (stdout by default).

    verbose=1 redraws one line with '\\r' (at most every ``interval`` seconds,
    and always on the last step); verbose=2 prints one line when finished.
    ``target`` None (unknown) draws a running count, '     12/Unknown', and
    finishes only when told to (verbose=2 needs a target by then).
    ``update`` takes values already averaged, as (name, value) pairs; it only
    reads them when it draws, so a caller may pass a lazy iterable and an
    update between redraws costs a clock reading and a comparison.
    """

    width = 30

    def __init__(self, target, verbose=1, interval=0.1, stream=None):
        self.target = target
        self.verbose = verbose
        self.interval = interval
        self.stream = stream or sys.stdout
        self._start = time.monotonic()
        self._last_update = None
        self._drawn_width = 0

    def update(self, current, values=(), finalize=None):
        """Shows step ``current`` of ``target`` with ``values``.  ``finalize``
        (default: current >= target) ends the bar, as Keras's, also before the
        target (when training stops early)."""
        now = time.monotonic()
        if finalize is None:
            finished = self.target is not None and current >= self.target
        else:
            finished = finalize
        if self.verbose == 1 and (finished or self._last_update is None
                                  or now - self._last_update >= self.interval):
            line = self._bar_line(current, values, now, finished)
            padding = " " * max(self._drawn_width - len(line), 0)  # erase a longer line
            self._drawn_width = len(line)
            self._write("\r" + line + padding, finished)
            self._last_update = now
        elif self.verbose == 2 and finished:
            elapsed = now - self._start
            per_step = _per_unit(elapsed / max(current, 1), "step")
            self._write(f"{current}/{self.target} - {elapsed:.0f}s{_metrics(values)} -"
                        f"{_per_unit(elapsed, 'epoch')} -{per_step}", True)

    def _bar_line(self, current, values, now, finished):
        per_step = (now - self._start) / max(current, 1)
        if not self.target:  # None (unknown) or no steps at all
            return (f"{current:7d}/Unknown - {now - self._start:.0f}s"
                    f"{_per_unit(per_step, 'step')}{_metrics(values)}")
        filled = int(self.width * current / self.target)
        bar = "=" * max(filled - 1, 0)
        if filled:
            bar += ">" if current < self.target else "="
        bar += "." * (self.width - filled)
        if not finished:
            timing = f" - ETA: {_format_eta(per_step * (self.target - current))}"
        else:
            timing = f" - {now - self._start:.0f}s{_per_unit(per_step, 'step')}"
        digits = len(str(self.target))
        return f"{current:{digits}d}/{self.target} [{bar}]{timing}{_metrics(values)}"

    def _write(self, text, end_line):
        self.stream.write(text + ("\n" if end_line else ""))
        self.stream.flush()


def _metrics(values):
    """' - loss: 0.1234 - accuracy: 0.9876' (4 decimals, or scientific when tiny)."""
    return "".join(f" - {name}: {value:.4f}" if abs(value) > 1e-3 else f" - {name}: {value:.4e}"
                   for name, value in values)


def _per_unit(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def _format_eta(seconds):
    seconds = int(seconds)
    if seconds > 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds > 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


from .image_dataset import image_dataset_from_directory  # noqa: E402
from .image_utils import array_to_img, img_to_array, load_img, save_img  # noqa: E402
