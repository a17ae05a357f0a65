"""What ``fit``, ``evaluate`` and ``predict`` iterate over: arrays or streams
(Keras 3's ``trainers/data_adapters``).

* Arrays (one per model input, and labels): cut into batches of
  ``batch_size``, shuffled each epoch when asked.
* ``PyDataset`` (``keras.utils.PyDataset``, Keras 2's ``Sequence``): batch
  ``i`` is ``dataset[i]`` for i < len(dataset), read and prepared by a
  background thread up to ``max_queue_size`` batches ahead (the kernels
  release the GIL, so decoding images overlaps training); ``on_epoch_end``
  runs after each epoch.
* Any other iterable that is not an array or a list of them: a re-iterable
  object (a ``fastconv.dataset.Dataset``, ...) is iterated afresh each
  epoch; a one-shot iterator (a generator) goes on where the last epoch
  stopped, as Keras does.

A stream yields ``(x, y)`` or ``(x, y, sample_weight)`` batches (``x`` alone
for ``predict``).  ``steps`` limits the batches of an epoch; a stream that
runs out before a given ``steps``, or a generator that has nothing left for
a new epoch, ends training with a warning, as Keras.
"""

import math
import warnings

import numpy as np

from ._checks import check_int
from .dataset import prefetched


class PyDataset:
    """Base class of datasets indexed by batch: subclasses define
    ``__getitem__(index)`` -> a batch and ``__len__()`` -> batches per epoch,
    and may define ``on_epoch_end()``.  ``workers``, ``use_multiprocessing``
    and ``max_queue_size`` are accepted as Keras does; batches are read in
    the training thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = check_int(workers, "workers")
        self.use_multiprocessing = bool(use_multiprocessing)
        self.max_queue_size = check_int(max_queue_size, "max_queue_size")

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def on_epoch_end(self):
        """Called after each epoch (e.g. to shuffle)."""

    @property
    def num_batches(self):
        return len(self)


Sequence = PyDataset  # Keras 2's name


def is_stream(data):
    """True for data ``fit`` iterates as batches: not an array, nor a list,
    tuple or dict of arrays."""
    if data is None or isinstance(data, (np.ndarray, dict, str, bytes)):
        return False
    if isinstance(data, (list, tuple)):
        return False
    return isinstance(data, PyDataset) or hasattr(data, "__iter__") or hasattr(data, "__next__")


class ArrayBatches:
    """Batches of prepared arrays: ``data`` is a tuple of lists of arrays
    (inputs, targets, labels), sliced alike."""

    def __init__(self, data, batch_size, shuffle=False, steps=None, rng=None, buffers=None):
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.samples = len(data[0][0])
        self.steps = math.ceil(self.samples / batch_size)
        if steps is not None:
            self.steps = min(self.steps, steps)
        self.rng = rng
        self.buffers = buffers

    def epoch(self):
        order = self.rng.permutation(self.samples) if self.shuffle else None
        for step, start in enumerate(range(0, self.samples, self.batch_size)):
            if step >= self.steps:
                return
            if order is None:
                yield tuple([None if a is None else a[start:start + self.batch_size]
                             for a in group] for group in self.data)
                continue
            indices = order[start:start + self.batch_size]
            yield tuple([None if a is None else np.take(a, indices, axis=0, out=self.buffers.get(
                f"batch_{g}_{i}", (len(indices),) + a.shape[1:], a.dtype))
                for i, a in enumerate(group)] for g, group in enumerate(self.data))

    def end_epoch(self):
        """Arrays need nothing at the end of an epoch."""


class StreamBatches:
    """Batches read from a stream and prepared one at a time by ``prepare``
    (a function of the raw batch's parts, returning the prepared batch)."""

    def __init__(self, data, prepare, steps=None, what="x"):
        self.data = data
        self.prepare = prepare
        self.indexed = isinstance(data, PyDataset) or (
            hasattr(data, "__getitem__") and hasattr(data, "__len__")
            and not hasattr(data, "__next__"))
        self.one_shot = not self.indexed and hasattr(data, "__next__")
        self.known = self._length()
        self.steps = steps if steps is not None else self.known
        self.given_steps = steps
        self._iterator = None
        self.exhausted = False
        self.what = what

    def _length(self):
        try:
            length = len(self.data)
        except TypeError:
            return None
        return int(length) if length is not None else None

    def epoch(self):
        if self.indexed:  # read and prepared ahead by a thread, as Keras 2's enqueuer did
            count = self.steps if self.steps is not None else self.known
            batches = (self.prepare(*_parts(self.data[index % self.known], self.what))
                       for index in range(count))
            yield from prefetched(batches, getattr(self.data, "max_queue_size", 10))
            return
        if self._iterator is None or not self.one_shot and self.given_steps is None:
            self._iterator = iter(self.data)
        step = 0
        while self.steps is None or step < self.steps:
            try:
                batch = next(self._iterator)
            except StopIteration:
                if self.given_steps is not None or (self.one_shot and step == 0):
                    self.exhausted = True
                    warnings.warn("Your input ran out of data; interrupting training. Make sure "
                                  "that your dataset or generator can generate at least "
                                  "`steps_per_epoch * epochs` batches.", stacklevel=2)
                self._iterator = None
                return
            yield self.prepare(*_parts(batch, self.what))
            step += 1

    def end_epoch(self):
        if hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()


def _parts(batch, what):
    """(x, y) of a stream's batch: a pair, a triple with sample weights
    (refused: not supported yet), or x alone."""
    if isinstance(batch, tuple):
        if len(batch) == 3:
            raise NotImplementedError("sample weights in a stream's batches are not supported "
                                      "by fastconv yet")
        if len(batch) in (1, 2):
            return batch if len(batch) == 2 else (batch[0], None)
        raise ValueError(f"a batch of {what} must be (x, y) or (x, y, sample_weight), got a "
                         f"tuple of {len(batch)}")
    return batch, None
