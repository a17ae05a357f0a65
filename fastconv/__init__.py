"""fastconv: fast CPU convnets with Keras's API.

``import fastconv as keras`` gives Keras 3's namespace for convnet programs:
``layers``, ``models``, ``datasets``, ``utils``, ``optimizers``, ``losses``,
``metrics``, ``activations``, ``callbacks``, ``initializers``,
``regularizers``, ``backend``, and ``Sequential``, ``Model``, ``Input``,
``load_model``.  ``fastconv.ops`` holds the compiled kernels and
``fastconv.reference`` the same kernels in NumPy; ``set_backend`` picks
which of them the layers run on.
"""

__version__ = "0.2.0"

from . import (
    activations,
    backend,
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    preprocessing,
    reference,
    regularizers,
    utils,
)
from .backend import build_info, get_backend, set_backend
from .layers import Input
from .models import Model, Sequential, load_model
from .ops import get_flush_denormal, get_num_threads, set_flush_denormal, set_num_threads

__all__ = ["activations", "backend", "callbacks", "datasets", "initializers", "layers", "losses",
           "metrics", "models", "ops", "optimizers", "preprocessing", "reference", "regularizers",
           "utils",
           "build_info", "get_backend", "set_backend", "get_num_threads", "set_num_threads",
           "get_flush_denormal", "set_flush_denormal",
           "Input", "Model", "Sequential", "load_model", "__version__"]
