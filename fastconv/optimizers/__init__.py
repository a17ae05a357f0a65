"""Optimizers with Keras 3's names, arguments and update equations.

``get('adam')`` (or 'sgd', 'rmsprop', 'adagrad', 'adadelta', 'adamax',
'nadam', 'adamw', or a class name) makes one with its defaults; ``schedules``
holds the learning-rate schedules.  See ``base.Optimizer`` for the arguments
every optimizer takes and for ``build``/``apply``.
"""

from . import schedules
from .algorithms import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop
from .base import OPTIMIZERS, Optimizer

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax",
           "Nadam", "OPTIMIZERS", "schedules", "get", "serialize", "deserialize"]


def get(identifier):
    """An optimizer from a name ('adam', 'Adam', ...; default arguments), a
    ``{'class_name', 'config'}`` dict, or an optimizer object itself."""
    return OPTIMIZERS.get(identifier)


def serialize(optimizer):
    """``{'class_name': ..., 'config': ...}`` of an optimizer."""
    return OPTIMIZERS.serialize(optimizer)


def deserialize(config):
    """The optimizer described by ``{'class_name': ..., 'config': ...}``."""
    return OPTIMIZERS.deserialize(config)
