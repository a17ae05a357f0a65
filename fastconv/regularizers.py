"""Weight penalties, as ``keras.regularizers``.

A regularizer maps a weight array to a penalty that the model adds to its
loss (``penalty(w)``), and gives that penalty's gradient
(``gradient(w, out)`` adds it into ``out``).  Layers take them as
``kernel_regularizer=`` and ``bias_regularizer=``: an object, a name
('l1' and 'l2' with Keras's default factor 0.01, 'l1_l2' with 0) or a config dict.
"""

import numpy as np

from ._checks import check_number
from ._registry import Registry


class Regularizer:
    """Base class: ``penalty(w)`` -> float and ``add_gradient(w, out)``."""

    def __call__(self, weight):
        return self.penalty(weight)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


REGULARIZERS = Registry("regularizer", Regularizer)


@REGULARIZERS.register("l1_l2")
class L1L2(Regularizer):
    """l1 * sum(|w|) + l2 * sum(w**2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = check_number(l1, "l1", 0)
        self.l2 = check_number(l2, "l2", 0)

    def penalty(self, weight):
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(weight).sum(dtype=np.float64))
        if self.l2:
            total += self.l2 * float(np.square(weight, dtype=np.float64).sum())
        return total

    def add_gradient(self, weight, out):
        """Adds d(penalty)/dw into ``out`` (the subgradient 0 at w = 0 for l1)."""
        if self.l1:
            out += self.l1 * np.sign(weight)
        if self.l2:
            out += (2 * self.l2) * weight

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@REGULARIZERS.register("l1")
class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@REGULARIZERS.register("l2")
class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's lower-case aliases


def get(identifier, argument=None):
    """A regularizer from a name, a config dict or a regularizer object; None
    stays None (errors name ``argument``, e.g. 'kernel_regularizer')."""
    return None if identifier is None else REGULARIZERS.get(identifier, argument)


def serialize(regularizer):
    return None if regularizer is None else REGULARIZERS.serialize(regularizer)


def deserialize(config):
    return REGULARIZERS.deserialize(config)
