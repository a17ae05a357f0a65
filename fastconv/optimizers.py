"""Optimizers with Keras's update equations.

An optimizer updates a list of weight arrays in place from their gradients.
Its state lives in ``slots`` (per weight, a dict of arrays shaped like it,
e.g. RMSprop's 'velocity') and ``iterations``; both are made by ``build``
on the first step.  A step allocates nothing: every update runs NumPy ufuncs
with ``out=`` into one preallocated scratch array per weight.
"""

import math
import numbers

import numpy as np


class Optimizer:
    """Base class: subclasses set ``slot_names`` and write ``update``."""

    slot_names = ()

    def __init__(self, learning_rate):
        self.learning_rate = _number(learning_rate, "learning_rate", 0, math.inf)
        self.iterations = 0
        self.slots = None
        self._scratch = None

    def build(self, weights):
        """Creates zeroed slots (and the scratch arrays) for ``weights``."""
        self.slots = [{name: np.zeros_like(w) for name in self.slot_names} for w in weights]
        self._scratch = [np.empty_like(w) for w in weights]

    def apply(self, weights, grads):
        """One step: updates every array of ``weights`` in place from ``grads``."""
        if self.slots is None:
            self.build(weights)
        if [s.shape for s in self._scratch] != [w.shape for w in weights]:
            raise RuntimeError("the optimizer was built for other weights; compile the model "
                               "again after changing its layers")
        for weight, grad, scratch, slots in zip(weights, grads, self._scratch, self.slots):
            self.update(weight, grad, scratch, **slots)
        self.iterations += 1

    def update(self, weight, grad, scratch, **slots):
        """Updates ``weight`` from ``grad``; ``scratch`` is free to overwrite."""
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments (JSON-serialisable)."""
        return {"learning_rate": self.learning_rate}


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum:
    m = momentum * m - lr * g;  w += m  (nesterov: w += momentum * m - lr * g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _number(momentum, "momentum", 0, 1)
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum else ()

    def update(self, weight, grad, scratch, momentum=None):
        np.multiply(grad, self.learning_rate, out=scratch)
        if momentum is None:
            weight -= scratch
            return
        momentum *= self.momentum
        momentum -= scratch
        if self.nesterov:
            weight -= scratch
            np.multiply(momentum, self.momentum, out=scratch)
            weight += scratch
        else:
            weight += momentum

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """v = rho * v + (1 - rho) * g**2;  w -= lr * g / sqrt(v + epsilon), as Keras 3.

    centered: v - avg(g)**2 replaces v (avg(g) = rho * avg(g) + (1 - rho) * g);
    momentum: m = momentum * m + increment;  w -= m.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07,
                 centered=False):
        super().__init__(learning_rate)
        self.rho = _number(rho, "rho", 0, 1)
        self.momentum = _number(momentum, "momentum", 0, 1)
        self.epsilon = _number(epsilon, "epsilon", 0, math.inf)
        self.centered = bool(centered)
        self.slot_names = (("velocity",) + (("momentum",) if self.momentum else ())
                           + (("average_gradient",) if self.centered else ()))

    def update(self, weight, grad, scratch, velocity, momentum=None, average_gradient=None):
        velocity *= self.rho
        np.square(grad, out=scratch)
        scratch *= 1 - self.rho
        velocity += scratch
        if average_gradient is None:
            np.add(velocity, self.epsilon, out=scratch)
        else:
            average_gradient *= self.rho
            np.multiply(grad, 1 - self.rho, out=scratch)
            average_gradient += scratch
            np.square(average_gradient, out=scratch)
            np.subtract(velocity, scratch, out=scratch)
            scratch += self.epsilon
        np.sqrt(scratch, out=scratch)
        np.divide(grad, scratch, out=scratch)
        scratch *= self.learning_rate
        if momentum is None:
            weight -= scratch
        else:
            momentum *= self.momentum
            momentum += scratch
            weight -= momentum

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adam(Optimizer):
    """m += (1 - beta_1) * (g - m);  v += (1 - beta_2) * (g**2 - v);
    w -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)."""

    slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07):
        super().__init__(learning_rate)
        self.beta_1 = _number(beta_1, "beta_1", 0, 1)
        self.beta_2 = _number(beta_2, "beta_2", 0, 1)
        self.epsilon = _number(epsilon, "epsilon", 0, math.inf)

    def update(self, weight, grad, scratch, momentum, velocity):
        step = self.iterations + 1
        alpha = (self.learning_rate * math.sqrt(1 - self.beta_2 ** step)
                 / (1 - self.beta_1 ** step))
        np.subtract(grad, momentum, out=scratch)
        scratch *= 1 - self.beta_1
        momentum += scratch
        np.square(grad, out=scratch)
        scratch -= velocity
        scratch *= 1 - self.beta_2
        velocity += scratch
        np.sqrt(velocity, out=scratch)
        scratch += self.epsilon
        np.divide(momentum, scratch, out=scratch)
        scratch *= alpha
        weight -= scratch

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}


def get(identifier):
    """An optimizer from its Keras name ('rmsprop', 'sgd', 'adam'), with the
    default arguments, or an optimizer object itself."""
    if isinstance(identifier, Optimizer):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"optimizer must be a name or a fastconv.optimizers object, "
                        f"got {identifier!r}")
    if identifier.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {identifier!r}; valid optimizers: "
                         f"{', '.join(repr(name) for name in OPTIMIZERS)}")
    return OPTIMIZERS[identifier.lower()]()


def deserialize(config):
    """The optimizer described by ``{'class_name': ..., 'config': ...}``."""
    classes = {cls.__name__: cls for cls in OPTIMIZERS.values()}
    if config.get("class_name") not in classes:
        raise ValueError(f"unknown optimizer class {config.get('class_name')!r}")
    return classes[config["class_name"]](**config.get("config", {}))


def _number(value, name, low, high):
    """``value`` as a float in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return float(value)
