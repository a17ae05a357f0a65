"""Learning-rate schedules with Keras 3's formulas.

A schedule is called on the optimizer's step count (``iterations``: 0 for
the first update) and returns the learning rate, a Python float.  Pass one
as any optimizer's ``learning_rate``.  ``get_config`` holds the constructor
arguments; ``serialize``/``deserialize`` write and read
``{'class_name': ..., 'config': ...}``.
"""

import bisect
import math
import numbers

from .._checks import check_choice, check_number
from .._registry import Registry


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' "
                                  "must override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' "
                                  "must override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


SCHEDULES = Registry("learning rate schedule", LearningRateSchedule)


def _rate(value, name):
    return check_number(value, name, 0)


def _steps(value, name):
    return check_number(value, name, 0, low_open=True)


def _flag(value, name):
    return check_choice(value, name, (False, True))


@SCHEDULES.register()
class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with
    ``staircase`` the exponent is floored."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.decay_rate = check_number(decay_rate, "decay_rate", 0)
        self.staircase = _flag(staircase, "staircase")
        self.name = name

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


@SCHEDULES.register()
class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[i] while
    boundaries[i-1] < step <= boundaries[i], values[-1] after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        self.boundaries = [_boundary(b) for b in boundaries]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
        self.values = [check_number(v, "values", 0) for v in values]
        self.name = name

    def __call__(self, step):
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


def _boundary(value):
    """A boundary of PiecewiseConstantDecay: an int stays an int (JSON-friendly)."""
    number = check_number(value, "boundaries")
    return int(value) if isinstance(value, numbers.Integral) else number


@SCHEDULES.register()
class PolynomialDecay(LearningRateSchedule):
    """(initial - end) * (1 - step / decay_steps) ** power + end, with step
    capped at decay_steps; with ``cycle``, decay_steps grows to the first
    multiple of itself >= step instead."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001,
                 power=1.0, cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.end_learning_rate = _rate(end_learning_rate, "end_learning_rate")
        self.power = check_number(power, "power", 0)
        self.cycle = _flag(cycle, "cycle")
        self.name = name

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= math.ceil(step / decay_steps) if step else 1
        else:
            step = min(step, decay_steps)
        return ((self.initial_learning_rate - self.end_learning_rate)
                * (1 - step / decay_steps) ** self.power + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


@SCHEDULES.register()
class InverseTimeDecay(LearningRateSchedule):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps); with
    ``staircase`` step / decay_steps is floored.  Keras 2's ``decay=d`` is
    ``InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=d)``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.decay_rate = check_number(decay_rate, "decay_rate", 0)
        self.staircase = _flag(staircase, "staircase")
        self.name = name

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


def _cosine(fraction):
    """0.5 * (1 + cos(pi * fraction)): 1 at fraction 0, 0 at fraction 1."""
    return 0.5 * (1 + math.cos(math.pi * fraction))


@SCHEDULES.register()
class CosineDecay(LearningRateSchedule):
    """Cosine decay from a start rate to start * alpha over decay_steps, then
    constant.  Without ``warmup_target`` the start is initial_learning_rate;
    with it, the rate first rises linearly from initial_learning_rate to
    warmup_target over warmup_steps, and the decay starts from warmup_target."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.alpha = check_number(alpha, "alpha", 0, 1)
        self.name = name
        self.warmup_target = (None if warmup_target is None
                              else _rate(warmup_target, "warmup_target"))
        self.warmup_steps = check_number(warmup_steps, "warmup_steps", 0)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decayed(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            return ((self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps
                    + self.initial_learning_rate)
        return self._decayed(step - self.warmup_steps, self.warmup_target)

    def _decayed(self, step, start):
        return start * ((1 - self.alpha) * _cosine(step / self.decay_steps) + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


@SCHEDULES.register()
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay (SGDR) from initial_learning_rate to initial * alpha over
    first_decay_steps, then warm restarts: period i lasts
    first_decay_steps * t_mul**i steps and starts from initial * m_mul**i."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = _steps(first_decay_steps, "first_decay_steps")
        self.t_mul = check_number(t_mul, "t_mul", 0, low_open=True)
        self.m_mul = check_number(m_mul, "m_mul", 0)
        self.alpha = check_number(alpha, "alpha", 0, 1)
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1 - fraction * (1 - self.t_mul)) / math.log(self.t_mul))
            periods_done = (1 - self.t_mul ** restart) / (1 - self.t_mul)
            fraction = (fraction - periods_done) / self.t_mul ** restart
        decayed = self.m_mul ** restart * _cosine(fraction)
        return self.initial_learning_rate * ((1 - self.alpha) * decayed + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


def serialize(learning_rate_schedule):
    """``{'class_name': ..., 'config': ...}`` of a schedule."""
    return SCHEDULES.serialize(learning_rate_schedule)


def deserialize(config):
    """The schedule described by ``{'class_name': ..., 'config': ...}``."""
    return SCHEDULES.deserialize(config)
