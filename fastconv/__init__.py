"""fastconv: fast CPU Conv2D and max pooling in Cython, with a Keras-style API.

``fastconv.ops`` holds the compiled kernels, ``fastconv.reference`` the same
kernels in NumPy; ``layers`` and ``models`` build and train networks on
whichever backend ``set_backend`` chose.
"""

__version__ = "0.1.0"

from .backend import build_info, get_backend, set_backend
from .ops import get_num_threads, set_num_threads

__all__ = ["build_info", "get_backend", "set_backend", "get_num_threads", "set_num_threads",
           "__version__"]
