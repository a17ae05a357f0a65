"""Weight initializers, as ``keras.initializers``.

An initializer is called with a shape (and optionally a dtype, float32 by
default) and returns a new array: ``GlorotUniform()((3, 3, 1, 32))``.
Random ones draw from fastconv's generator (``utils.set_random_seed``)
unless given their own ``seed``.  Layers take an initializer object, a name
('glorot_uniform', 'he_normal', 'zeros', ...) or a config dict.
"""

import contextlib
import contextvars
import math

import numpy as np

from . import utils
from ._checks import check_number
from ._registry import Registry

# The number of weight values initializers may still create (None: any).
_budget = contextvars.ContextVar("weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(values, what):
    """Within the block, an initializer asked for more than ``values`` weight
    values in all raises ValueError, before allocating them: a model
    described by ``what`` (e.g. a file) is checked against the weights it
    holds before a forged description builds a huge layer."""
    token = _budget.set([values, what])
    try:
        yield
    finally:
        _budget.reset(token)


def _spend(shape):
    budget = _budget.get()
    if budget is not None:
        if math.prod(shape) > budget[0]:
            raise ValueError(f"{budget[1]} holds fewer weight values than a model with "
                             f"weights of shape {shape} needs")
        budget[0] -= math.prod(shape)


class Initializer:
    """Base class: subclasses define ``sample(shape, rng)`` (float64 values)."""

    def __call__(self, shape, dtype=None):
        shape = tuple(int(d) for d in shape)
        _spend(shape)
        return np.asarray(self.sample(shape), dtype=np.dtype(dtype or np.float32))

    def sample(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


INITIALIZERS = Registry("initializer", Initializer)


class _Random(Initializer):
    """An initializer that draws random numbers (``seed``: an int for a
    generator of its own, None for fastconv's shared one)."""

    def __init__(self, seed=None):
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def rng(self):
        return self._rng if self._rng is not None else utils.random_generator()

    def get_config(self):
        return {"seed": self.seed}


def _fans(shape):
    """Keras's (fan_in, fan_out): a conv kernel counts its receptive field,
    fan_in = kh * kw * in_channels, fan_out = kh * kw * out_channels."""
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(rng, shape, stddev):
    """Normal values with deviation ``stddev`` redrawn until within 2 deviations."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(np.count_nonzero(outside))
        outside = np.abs(values) > 2
    return values * stddev


@INITIALIZERS.register("variance_scaling")
class VarianceScaling(_Random):
    """Variance ``scale / fan`` (fan_in, fan_out or their average), drawn
    uniform, normal, or normal truncated at 2 deviations (rescaled so that
    the variance is the one asked for), as Keras."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = check_number(scale, "scale", 0, low_open=True)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("distribution must be 'truncated_normal', 'untruncated_normal' or "
                             f"'uniform', got {distribution!r}")
        self.mode, self.distribution = mode, distribution

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return self.rng().uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return self.rng().standard_normal(shape) * math.sqrt(variance)
        # 0.8796... is the deviation of a unit normal truncated at 2.
        return _truncated_normal(self.rng(), shape, math.sqrt(variance) / 0.87962566103423978)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


def _variance_scaling_preset(class_name, alias, scale, mode, distribution):
    """A VarianceScaling subclass with fixed settings (GlorotUniform, HeNormal, ...)."""

    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    cls = type(class_name, (VarianceScaling,), {
        "__init__": __init__, "get_config": get_config, "__module__": __name__,
        "__doc__": f"VarianceScaling(scale={scale}, mode={mode!r}, "
                   f"distribution={distribution!r}), as keras.initializers.{class_name}."})
    return INITIALIZERS.register(alias)(cls)


GlorotUniform = _variance_scaling_preset("GlorotUniform", "glorot_uniform", 1.0, "fan_avg",
                                         "uniform")
GlorotNormal = _variance_scaling_preset("GlorotNormal", "glorot_normal", 1.0, "fan_avg",
                                        "truncated_normal")
HeUniform = _variance_scaling_preset("HeUniform", "he_uniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling_preset("HeNormal", "he_normal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling_preset("LecunUniform", "lecun_uniform", 1.0, "fan_in",
                                        "uniform")
LecunNormal = _variance_scaling_preset("LecunNormal", "lecun_normal", 1.0, "fan_in",
                                       "truncated_normal")


@INITIALIZERS.register("random_normal")
class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = check_number(mean, "mean")
        self.stddev = check_number(stddev, "stddev", 0)

    def sample(self, shape):
        return self.rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@INITIALIZERS.register("truncated_normal")
class TruncatedNormal(RandomNormal):
    """Normal values redrawn until within two deviations of the mean."""

    def sample(self, shape):
        return self.mean + _truncated_normal(self.rng(), shape, self.stddev)


@INITIALIZERS.register("random_uniform")
class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = check_number(minval, "minval")
        self.maxval = check_number(maxval, "maxval", self.minval)

    def sample(self, shape):
        return self.rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


@INITIALIZERS.register("constant")
class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = check_number(value, "value")

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


@INITIALIZERS.register("zeros")
class Zeros(Initializer):
    def sample(self, shape):
        return np.zeros(shape)


@INITIALIZERS.register("ones")
class Ones(Initializer):
    def sample(self, shape):
        return np.ones(shape)


def get(identifier, argument=None):
    """An initializer from a name, a config dict or an initializer object
    (errors name ``argument``, e.g. 'kernel_initializer')."""
    return INITIALIZERS.get(identifier, argument)


def serialize(initializer):
    return INITIALIZERS.serialize(initializer)


def deserialize(config):
    return INITIALIZERS.deserialize(config)
