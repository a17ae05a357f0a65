"""Models (``keras.models``): ``Model`` (functional graphs), ``Sequential``,
and ``load_model``."""

from ..saving import load_model
from .functional import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
