"""A small stand-in for the parts of ``tf.data.Dataset`` Keras programs use.

A ``Dataset`` is a re-iterable sequence of elements: each ``iter()`` starts a
fresh pass (an epoch).  An element is a NumPy array or a tuple of them (e.g.
``(images, labels)``), one sample or a batch.  Transformations return new
datasets and run lazily, in the thread that iterates, except ``prefetch``,
which runs everything before it in a background thread::

    ds = (Dataset.from_tensor_slices((paths, labels))
          .shuffle(1000, seed=1).map(load).batch(32).prefetch(AUTOTUNE))
    model.fit(ds, epochs=10)
"""

import itertools
import math
import queue
import threading

import numpy as np

from ._checks import check_int
from .tensor import Tensor

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2
# The buffer of prefetch(AUTOTUNE): elements are produced by one thread, so a
# deeper buffer only holds more memory.
AUTOTUNE_PREFETCH = 2


class Dataset:
    """Elements from ``make_iterator()`` (called once per pass), of which
    there are ``cardinality``: a count, ``INFINITE_CARDINALITY`` or
    ``UNKNOWN_CARDINALITY``.  Iterating gives the elements' arrays as
    ``Tensor`` views (arrays with ``.numpy()``)."""

    def __init__(self, make_iterator, cardinality=UNKNOWN_CARDINALITY):
        self._make_iterator = make_iterator
        self._cardinality = cardinality

    @staticmethod
    def from_tensor_slices(tensors):
        """One element per row: of an array, or a tuple of rows of a tuple of
        arrays of equal length."""
        is_tuple = isinstance(tensors, tuple)
        arrays = [np.asarray(t) for t in (tensors if is_tuple else (tensors,))]
        if not arrays or any(a.ndim == 0 for a in arrays):
            raise ValueError("from_tensor_slices needs arrays with a first axis to slice")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"from_tensor_slices needs arrays of one length, got lengths "
                             f"{[len(a) for a in arrays]}")

        def rows():
            for i in range(len(arrays[0])):
                yield tuple(a[i] for a in arrays) if is_tuple else arrays[0][i]

        return Dataset(rows, lengths.pop())

    def __iter__(self):
        elements = iter(self._make_iterator())
        try:
            for element in elements:
                yield _as_tensors(element)
        finally:
            close = getattr(elements, "close", None)
            if close is not None:
                close()

    def as_numpy_iterator(self):
        """An iterator over the elements as plain NumPy arrays."""
        return iter(self._make_iterator())

    def cardinality(self):
        """The number of elements, or ``INFINITE_CARDINALITY`` (-1) or
        ``UNKNOWN_CARDINALITY`` (-2)."""
        return self._cardinality

    def __len__(self):
        """The number of elements; TypeError when infinite or unknown (as tf.data)."""
        if self._cardinality == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if self._cardinality == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return self._cardinality

    def __repr__(self):
        count = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(
            self._cardinality, self._cardinality)
        return f"<Dataset cardinality={count}>"

    def map(self, map_func, num_parallel_calls=None, deterministic=None):
        """``map_func(*element)`` (``map_func(element)`` for a single array)
        for each element.  Calls run in order in the iterating thread
        (``num_parallel_calls`` is accepted for tf.data's API); put
        ``prefetch`` after the map to run it in the background."""

        def mapped():
            for element in self:
                yield map_func(*element) if isinstance(element, tuple) else map_func(element)

        return Dataset(mapped, self._cardinality)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None):
        """Elements stacked ``batch_size`` at a time along a new first axis
        (each part of a tuple separately); the last batch is smaller unless
        ``drop_remainder``."""
        batch_size = check_int(batch_size, "batch_size")

        def batches():
            iterator = iter(self)
            while True:
                chunk = list(itertools.islice(iterator, batch_size))
                if not chunk or (drop_remainder and len(chunk) < batch_size):
                    return
                yield _stack(chunk)

        count = self._cardinality
        if count >= 0:
            count = count // batch_size if drop_remainder else math.ceil(count / batch_size)
        return Dataset(batches, count)

    def unbatch(self):
        """The rows of each (batched) element, one element per row."""

        def rows():
            for element in self:
                yield from zip(*element) if isinstance(element, tuple) else element

        return Dataset(rows, UNKNOWN_CARDINALITY)

    def take(self, count):
        """The first ``count`` elements (all for -1)."""
        count = check_int(count, "count", minimum=-1)
        if count == -1:
            return self
        known = self._cardinality
        cardinality = count if known == INFINITE_CARDINALITY else (
            known if known == UNKNOWN_CARDINALITY else min(known, count))
        return Dataset(lambda: itertools.islice(self, count), cardinality)

    def skip(self, count):
        """All but the first ``count`` elements (none for -1)."""
        count = check_int(count, "count", minimum=-1)
        if count == -1:
            return Dataset(lambda: iter(()), 0)
        known = self._cardinality
        cardinality = known if known < 0 else max(known - count, 0)
        return Dataset(lambda: itertools.islice(self, count, None), cardinality)

    def repeat(self, count=None):
        """The elements ``count`` times over (forever for None or -1)."""
        if count is None:
            count = -1
        count = check_int(count, "count", minimum=-1)

        def repeated():
            for _ in itertools.count() if count == -1 else range(count):
                yield from self

        known = self._cardinality
        if known == 0 or count == 0:
            cardinality = 0
        elif count == -1:
            cardinality = INFINITE_CARDINALITY
        else:
            cardinality = known * count if known >= 0 else known
        return Dataset(repeated, cardinality)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        """The elements in random order, drawn from a buffer of
        ``buffer_size`` (a buffer at least as large as the dataset shuffles
        uniformly).  Each pass has a new order unless
        ``reshuffle_each_iteration`` is False; the orders follow from
        ``seed`` (by default drawn from ``fastconv.utils.random_generator()``,
        so ``set_random_seed`` fixes them)."""
        buffer_size = check_int(buffer_size, "buffer_size")
        if seed is None:
            from .utils import random_generator
            seed = int(random_generator().integers(2**31))
        seed = check_int(seed, "seed", minimum=0)
        passes = itertools.count()

        def shuffled():
            rng = np.random.default_rng([seed, next(passes) if reshuffle_each_iteration else 0])
            buffer = []
            for element in self:
                if len(buffer) < buffer_size:
                    buffer.append(element)
                    continue
                index = rng.integers(buffer_size)
                yield buffer[index]
                buffer[index] = element
            rng.shuffle(buffer)
            yield from buffer

        return Dataset(shuffled, self._cardinality)

    def cache(self, filename=""):
        """The elements, computed during the first complete pass and read from
        memory afterwards (a pass stopped early caches nothing)."""
        if filename:
            raise NotImplementedError("fastconv caches datasets in memory only (filename='')")
        cached = None

        def cached_elements():
            nonlocal cached
            if cached is not None:
                yield from cached
                return
            filled = []
            for element in self:
                filled.append(element)
                yield element
            cached = filled

        return Dataset(cached_elements, self._cardinality)

    def prefetch(self, buffer_size):
        """The same elements, produced by a background thread that keeps up to
        ``buffer_size`` of them ready (``AUTOTUNE``: a small buffer), so that
        the work of the transformations before it (decoding images, ...)
        overlaps with the consumer's.  An exception in the pipeline is
        raised to the consumer; the thread ends when a pass ends, raises, or
        its iterator is closed or dropped (e.g. on ``break``)."""
        buffer_size = check_int(buffer_size, "buffer_size", minimum=-1)
        if buffer_size == AUTOTUNE:
            buffer_size = AUTOTUNE_PREFETCH
        if buffer_size == 0:
            return self
        return Dataset(lambda: prefetched(self, buffer_size), self._cardinality)


def _as_tensors(element):
    if isinstance(element, tuple):
        return tuple(_as_tensors(part) for part in element)
    return element.view(Tensor) if isinstance(element, np.ndarray) else element


def _stack(elements):
    """A list of elements (arrays, or tuples of arrays) as one batch."""
    first = elements[0]
    try:
        if isinstance(first, tuple):
            return tuple(np.stack(parts) for parts in zip(*elements))
        return np.stack(elements)
    except ValueError as err:
        raise ValueError(f"batch needs elements of one shape to stack: {err}") from None


_ELEMENT, _END, _ERROR = range(3)


def _produce(iterator, buffer, stop):
    """The prefetch thread: puts ``(kind, payload)`` items into ``buffer``
    until the iterator ends or fails, or ``stop`` is set."""
    try:
        for element in iterator:
            buffer.put((_ELEMENT, element))
            if stop.is_set():
                return
        buffer.put((_END, None))
    except BaseException as err:  # raised again in the consumer's thread
        buffer.put((_ERROR, err))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stops upstream prefetch threads too


def prefetched(dataset, buffer_size):
    """The elements of ``dataset`` (any iterable), produced by a thread
    ``buffer_size`` ahead."""
    buffer = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(iter(dataset), buffer, stop),
                              name="fastconv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = buffer.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise payload
            yield payload
    finally:
        # The producer checks ``stop`` after each put; emptying the buffer
        # lets a blocked put finish, so the thread always gets to the check.
        stop.set()
        while thread.is_alive():
            try:
                buffer.get(timeout=0.01)
            except queue.Empty:
                pass
        thread.join()
