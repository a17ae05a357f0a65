"""Helpers shared by layers and models: seeding, labels, names, reusable
buffers and Keras's progress bar."""

import math
import os
import re
import sys
import threading
import time
from collections import Counter, OrderedDict

import numpy as np

from .data_adapters import PyDataset, Sequence  # noqa: F401  (keras.utils.PyDataset)
from .image_dataset import image_dataset_from_directory  # noqa: F401  (keras.utils)
from .image_utils import array_to_img, img_to_array, load_img, save_img  # noqa: F401  (keras.utils)
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

    These are outputs that outlive a call (a layer's outputs and gradients,
    a trainer's batches), one Buffers per owner; the scratch of a single
    kernel call comes from ``ops._workspace`` instead.
    """

    def __init__(self, keep=4):
        self.keep = keep
        self._arrays = {}  # name -> OrderedDict((shape, dtype) -> array), oldest first

    def get(self, name, shape, dtype):
        arrays = self._arrays.get(name)
        if arrays is None:
            arrays = self._arrays[name] = OrderedDict()
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
    """Keras 3's progress bar on stdout, ``target`` steps (None: unknown).

    verbose=1 redraws one line, at most every ``interval`` seconds and
    always when finishing: '\\r' (after backspaces over the last line, as
    Keras writes it on POSIX systems and terminals; else a new line), then
    ``  1/469 ━━━━━━━━━━━━━━━━━━━━ 2:13 285ms/step - accuracy: 0.1000``, the
    count bold, the done part of the bar green and the rest white (ANSI
    codes, always written, as Keras does), the ETA replaced by the elapsed
    time once finished; ``     12/Unknown 3s 250ms/step`` without a target.
    verbose=2 prints ``469/469 - 3s - 6ms/step - accuracy: ...`` once
    finished.  A value is averaged over the steps since its first update
    (weighted by the steps each update covers) unless named in
    ``stateful_metrics``, or not named in ``stateless_metrics`` when that is
    given; when finishing, the values given are shown as they are.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be "
                             "provided.")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._stateful_metrics = set(stateful_metrics or ())
        self._stateless_metrics = None if stateless_metrics is None else set(stateless_metrics)
        self._dynamic_display = (getattr(sys.stdout, "isatty", lambda: False)()
                                 or "ipykernel" in sys.modules or "posix" in sys.modules
                                 or "PYCHARM_HOSTED" in os.environ)
        self._values = {}  # name -> [sum of value * steps, steps], in first-seen order
        self._seen_so_far = 0
        self._start = time.monotonic()
        self._last_update = -math.inf
        self._time_after_first_step = None
        self._prev_total_width = 0

    def update(self, current, values=None, finalize=None):
        """Shows step ``current`` with ``values`` ((name, value) pairs);
        ``finalize`` (default: current >= target) ends the bar, also before
        the target (when training stops early)."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or ():
            if self._stateless_metrics is None:
                averaged = name not in self._stateful_metrics
            else:
                averaged = name in self._stateless_metrics
            if averaged and not finalize:
                steps = max(current - self._seen_so_far, 1)
                total = self._values.setdefault(name, [0.0, 0])
                total[0] += value * steps
                total[1] += steps
            else:
                self._values[name] = [value, 1]
        self._seen_so_far = current
        now = time.monotonic()
        per_step = self._step_duration(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            self._draw(current, now, per_step, finalize)
        elif self.verbose == 2 and finalize and self.target:
            digits = len(str(self.target))
            sys.stdout.write(f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s -"
                             f"{_per_unit(per_step, self.unit_name)}"
                             # Keras 3 compares without abs() here: negative values
                             # print in scientific notation.
                             f"{self._metrics(lambda value: value > 1e-3)}\n")
            sys.stdout.flush()
        self._last_update = now

    def add(self, n, values=None):
        """``update`` ``n`` steps further."""
        self.update(self._seen_so_far + n, values)

    def _draw(self, current, now, per_step, finalize):
        if self.target:
            digits = len(str(self.target))
            done = int(self.width * current / self.target)
            line = _bold(f"{current:{digits}d}/{self.target}") + " "
            if done > 0:
                line += f"\x1b[32m{'━' * done}\x1b[0m"
            line += f"\x1b[37m{'━' * (self.width - done)}\x1b[0m"
        else:
            line = f"{current:7d}/Unknown"
        if self.target and not finalize:
            line += " " + _bold(_format_eta(per_step * (self.target - current)))
        else:
            line += " " + _bold(f"{now - self._start:.0f}s")
        line += _per_unit(per_step, self.unit_name) + self._metrics(lambda value: abs(value) > 1e-3)
        width = len(_ANSI_CODE.sub("", line))
        start = "\b" * self._prev_total_width + "\r" if self._dynamic_display else "\n"
        padding = " " * (self._prev_total_width - width)  # erases a longer last line
        sys.stdout.write(start + line + padding + ("\n" if finalize else ""))
        sys.stdout.flush()
        self._prev_total_width = width

    def _metrics(self, fixed_point):
        """' - loss: 0.1234 - accuracy: 0.9876': 4 decimals, or scientific
        (1.2345e-04) when ``fixed_point(value)`` is false."""
        text = ""
        for name, (total, steps) in self._values.items():
            value = float(np.mean(total)) / max(1, steps)
            text += f" - {name}: {value:.4f}" if fixed_point(value) else f" - {name}: {value:.4e}"
        return text

    def _step_duration(self, current, now):
        """Seconds a step, leaving out the first step (often slow) once there
        are others."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            duration = (now - self._time_after_first_step) / (current - 1)
        else:
            duration = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return duration


_ANSI_CODE = re.compile("\x1b\\[[0-9;]*m")


def _bold(text):
    return f"\x1b[1m{text}\x1b[0m"


def _per_unit(seconds, unit):
    """' 6ms/step': seconds, milliseconds or microseconds."""
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def _format_eta(seconds):
    """'1:02:03', '2:13' or '45s' (whole seconds, rounded down)."""
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"

