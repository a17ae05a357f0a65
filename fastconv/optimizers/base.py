"""The optimizer base class: learning rate, clipping, weight decay, state.

An optimizer updates a list of weight arrays in place from their gradients.
``build(weights)`` (run by the first ``apply``) remembers those arrays by
identity and makes the state: ``slots`` (per weight, a dict of arrays shaped
like it, e.g. RMSprop's 'velocity') and scratch arrays; ``iterations``
counts the steps.  A step allocates nothing of the weights' size: SGD,
RMSprop and Adam(W) update all weights in one compiled call
(``fastconv._kernels._optim``), the others run NumPy ufuncs with ``out=``
into the preallocated arrays.
"""

import math
import os
import sys
import warnings

import numpy as np

from .. import backend, ops, utils
from .._checks import check_number
from .._kernels import _optim
from .._registry import Registry
from . import schedules

# Keras 3 arguments fastconv does not implement, with the values that mean "off".
_UNSUPPORTED_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                         "loss_scale_factor": None, "gradient_accumulation_steps": None}


class Optimizer:
    """Base class.  Subclasses set ``slot_names`` (state arrays per weight,
    zero at build), optionally ``scratch_names`` (work arrays per weight),
    and write ``update``.

    learning_rate: a float >= 0, a ``schedules.LearningRateSchedule`` (called
    on ``iterations``) or a callable of no arguments returning the rate.
    weight_decay: decoupled decay; before each update, w -= w * weight_decay * lr.
    clipnorm: clips each gradient to this L2 norm; global_clipnorm: scales all
    gradients of a step together to this global norm; clipvalue: clips every
    gradient element to [-clipvalue, clipvalue].  At most one of the three.
    Keras 2's ``lr=`` and ``decay=`` are accepted with a DeprecationWarning.
    """

    slot_names = ()
    scratch_names = ("scratch",)

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        learning_rate = _keras2_learning_rate(learning_rate, kwargs)
        for argument, default in _UNSUPPORTED_DEFAULTS.items():
            value = kwargs.pop(argument, default)
            if value != default:
                raise ValueError(f"fastconv optimizers do not support `{argument}` (only its "
                                 f"default {default!r}); received {argument}={value!r}")
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if sum(arg is not None for arg in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.name = name or utils.unique_name(type(self).__name__)
        self.weight_decay = _optional_number(weight_decay, "weight_decay", low_open=False)
        self.clipnorm = _optional_number(clipnorm, "clipnorm")
        self.clipvalue = _optional_number(clipvalue, "clipvalue")
        self.global_clipnorm = _optional_number(global_clipnorm, "global_clipnorm")
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.iterations = 0
        self.slots = None
        self._built_weights = []
        self._index = {}  # id(weight array) -> its position in _built_weights
        self._scratch = self._clipped = self._table = None

    # ------------------------------------------------------------ learning rate

    @property
    def learning_rate(self):
        """The learning rate of the next step, a float (a schedule is evaluated
        at ``iterations``).  Assign a float to change it (not when the
        optimizer uses a schedule: TypeError), or a new schedule or callable."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        if callable(self._learning_rate):
            return float(self._learning_rate())
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule) or callable(value):
            self._learning_rate = value
        elif isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object "
                            "as its `learning_rate` constructor argument, hence its learning "
                            "rate is not settable. If you need the learning rate to be "
                            "settable, you should instantiate the optimizer with a float "
                            "`learning_rate` argument.")
        else:
            self._learning_rate = check_number(value, "learning_rate", 0)

    # ------------------------------------------------------------ state

    def build(self, weights):
        """Makes the optimizer the one of ``weights`` (a list of float arrays):
        zeroed ``slots`` aligned with them, scratch arrays.  Building again
        starts the state afresh for the new list; ``iterations`` is kept."""
        weights = list(weights)
        for weight in weights:
            if not (isinstance(weight, np.ndarray) and np.issubdtype(weight.dtype, np.floating)):
                raise TypeError("weights must be numpy float arrays (they are updated in "
                                f"place), got {type(weight).__name__} "
                                f"{getattr(weight, 'dtype', '')}".rstrip())
        self._built_weights = weights
        self._index = {id(w): i for i, w in enumerate(self._built_weights)}
        self.slots = [{name: np.zeros_like(w) for name in self.slot_names}
                      for w in self._built_weights]
        self._scratch = [{name: np.empty_like(w) for name in self.scratch_names}
                         for w in self._built_weights]
        clips = any(arg is not None for arg in (self.clipnorm, self.clipvalue,
                                                self.global_clipnorm))
        self._clipped = [np.empty_like(w) for w in self._built_weights] if clips else None
        dtypes = {w.dtype for w in weights}
        compiles = (self._compiled_step(0.0) is not None and len(dtypes) == 1
                    and dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}
                    and all(w.flags.c_contiguous and w.flags.writeable for w in weights))
        # The compiled step's scratch: a row of array addresses per weight.
        self._table = (np.empty((len(weights), _optim.TABLE_COLUMNS), np.intp) if compiles
                       else None)
        self._table_dtype = dtypes.pop() if compiles else None
        self._size = sum(w.size for w in weights)

    # ------------------------------------------------------------ one step

    def apply(self, weights, grads):
        """One step: updates the arrays of ``weights`` in place from ``grads``
        (same length; a gradient has its weight's shape; None skips a weight).
        The first call builds the optimizer for ``weights``; later calls may
        pass any of those arrays (e.g. without frozen layers) but no other:
        ValueError for an array the optimizer was not built with."""
        self._apply(weights, grads, check_finite=False)

    def _apply(self, weights, grads, check_finite):
        """``apply``; with ``check_finite``, a step whose gradients (as given,
        before clipping) hold a NaN or an infinity changes nothing (weights,
        state, ``iterations``) and returns False.  Returns True when applied.

        Optimizers with a compiled step (``_compiled_step``) run it over all
        weights in one call when the weights share one dtype, the gradients
        are C-contiguous arrays of it and the backend is 'cython'; the finite
        check is then part of that call.  Otherwise (and on the 'numpy'
        backend, the reference) the NumPy ``update`` runs per weight."""
        weights = list(weights)
        grads = [None if g is None else np.asarray(g) for g in grads]
        if len(weights) != len(grads):
            raise ValueError(f"got {len(grads)} gradients for {len(weights)} weights")
        if not weights:
            return True
        if self.slots is None:
            self.build(weights)
        indices = [self._position(w) for w in weights]
        pairs = [(i, w, g) for i, w, g in zip(indices, weights, grads) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        for _, weight, grad in pairs:
            if grad.shape != weight.shape:
                raise ValueError(f"a gradient of shape {grad.shape} was given for a "
                                 f"weight of shape {weight.shape}")
        clipping = self._clipped is not None
        compiled = self._table is not None and backend.get_backend() == "cython" and all(
            g.dtype == self._table_dtype and g.flags.c_contiguous for _, _, g in pairs)
        if check_finite and (clipping or not compiled) \
                and not all(np.isfinite(g).all() for _, _, g in pairs):
            return False
        clipped = self._clip([(i, g) for i, _, g in pairs])
        learning_rate = self.learning_rate
        if compiled:
            slot_names, arguments = self._compiled_step(learning_rate)
            indices = [i for i, _, _ in pairs]
            slots = tuple(None if name is None else [self.slots[i][name] for i in indices]
                          for name in slot_names)
            if not _optim.step(self._table, [w for _, w, _ in pairs], clipped, slots,
                               decay=(self.weight_decay or 0.0) * learning_rate,
                               check_finite=check_finite and not clipping,
                               num_threads=ops._threads_for(self._size),
                               flush_denormal=ops.get_flush_denormal(), **arguments):
                return False
        else:
            for (i, weight, _), grad in zip(pairs, clipped):
                scratch = self._scratch[i]
                if self.weight_decay is not None:
                    np.multiply(weight, self.weight_decay * learning_rate,
                                out=scratch["scratch"])
                    weight -= scratch["scratch"]
                self.update(weight, grad, learning_rate, **scratch, **self.slots[i])
        self.iterations += 1
        return True

    def apply_gradients(self, grads_and_vars):
        """Keras's spelling: ``apply`` on (gradient, weight) pairs; returns
        ``iterations``."""
        grads, weights = zip(*grads_and_vars)
        self.apply(weights, grads)
        return self.iterations

    def update(self, weight, grad, learning_rate, scratch, **slots):
        """Updates ``weight`` in place from ``grad`` (already clipped) and its
        ``slots``; the scratch arrays are free to overwrite.  ``iterations``
        is the number of steps before this one."""
        raise NotImplementedError

    def _compiled_step(self, learning_rate):
        """(slot names, keyword arguments) of the ``fastconv._kernels._optim.step``
        that computes ``update`` for every weight at once, or None for an
        optimizer without one.  The slot names are those of the step's slot
        lists, in its order (None for a list it does not use)."""
        return None

    def _position(self, weight):
        position = self._index.get(id(weight))
        if position is None:
            raise ValueError(f"Unknown variable: <array shape={np.shape(weight)}, "
                             f"dtype={getattr(weight, 'dtype', type(weight).__name__)}>. This "
                             "optimizer can only be called for the variables it was "
                             "originally built with. When working with a new set of "
                             "variables, you should recreate a new optimizer instance.")
        return position

    def _clip(self, indexed_grads):
        """The gradients to use, clipped as configured: the given arrays when
        nothing changes them, else this weight's clip buffer.  As in Keras, a
        NaN norm makes the gradients NaN, and so does an infinite global norm."""
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue, out=self._clipped[i])
                    for i, g in indexed_grads]
        if self.clipnorm is not None:
            clipped = []
            for i, g in indexed_grads:
                norm = math.sqrt(_squared_norm(g))
                clipped.append(g if norm <= self.clipnorm
                               else self._scaled(i, g, self.clipnorm / norm))
            return clipped
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(_squared_norm(g) for _, g in indexed_grads))
            if not norm <= self.global_clipnorm:
                scale = self.global_clipnorm / norm + (norm - norm)
                return [self._scaled(i, g, scale) for i, g in indexed_grads]
        return [g for _, g in indexed_grads]

    def _scaled(self, index, grad, scale):
        return np.multiply(grad, scale, out=self._clipped[index])

    # ------------------------------------------------------------ config

    def get_config(self):
        """The constructor arguments (JSON-serialisable).  A schedule is
        written as ``{'class_name': ..., 'config': ...}``; a callable
        learning rate as the value it returns now (a function cannot be
        written to JSON)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        else:
            learning_rate = self.learning_rate
        return {"name": self.name, "learning_rate": learning_rate,
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config):
        """The optimizer of ``get_config()``'s output (a schedule is rebuilt)."""
        if isinstance(config.get("learning_rate"), dict):
            config = {**config,
                      "learning_rate": schedules.deserialize(config["learning_rate"])}
        return cls(**config)


OPTIMIZERS = Registry("optimizer", Optimizer, ignore_case=True)


def _squared_norm(grad):
    """The sum of squares of an array, without a temporary of its size."""
    flat = grad.reshape(-1)
    return float(np.dot(flat, flat))


def _optional_number(value, name, low_open=True):
    """None, or a float > 0 (>= 0 unless ``low_open``)."""
    return None if value is None else check_number(value, name, 0, low_open=low_open)


def _keras2_learning_rate(learning_rate, kwargs):
    """The learning rate once Keras 2's ``lr`` and ``decay`` are popped from
    ``kwargs``, each with a DeprecationWarning naming the Keras 3 spelling.
    ``decay=d`` (lr / (1 + d * iterations)) becomes an InverseTimeDecay."""
    if "lr" in kwargs:
        learning_rate = kwargs.pop("lr")
        _deprecated(f"`lr` is the Keras 2 name of `learning_rate`: write "
                    f"learning_rate={learning_rate!r}")
    if "decay" in kwargs:
        decay = check_number(kwargs.pop("decay"), "decay", 0)
        if isinstance(learning_rate, schedules.LearningRateSchedule) or callable(learning_rate):
            raise ValueError("`decay` (Keras 2) needs a float learning_rate, got "
                             f"{learning_rate!r}")
        learning_rate = check_number(learning_rate, "learning_rate", 0)
        _deprecated(f"`decay` is Keras 2's inverse-time decay: write learning_rate="
                    f"schedules.InverseTimeDecay({learning_rate!r}, decay_steps=1, "
                    f"decay_rate={decay!r})")
        if decay:
            learning_rate = schedules.InverseTimeDecay(learning_rate, decay_steps=1,
                                                       decay_rate=decay)
    return learning_rate


def _deprecated(message):
    """A DeprecationWarning pointing at the first caller outside this package
    (so Python shows it for code run as a script)."""
    package = os.path.dirname(__file__)
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.dirname(frame.f_code.co_filename) == package:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)
