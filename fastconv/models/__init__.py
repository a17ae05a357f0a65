"""Models (``keras.models``): ``Model`` (functional graphs), ``Sequential``,
and ``load_model``."""

from ..layers.base import LAYERS
from ..saving import load_model
from .functional import Model
from .sequential import Sequential

# Models nest in models, so their configs name them as layers.
LAYERS.register("Functional")(Model)
LAYERS.register()(Sequential)

__all__ = ["Model", "Sequential", "load_model"]
