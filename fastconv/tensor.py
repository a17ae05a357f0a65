"""Arrays as Keras 3 programs see them."""

import numpy as np


class Tensor(np.ndarray):
    """A NumPy array with the ``.numpy()`` of TensorFlow's and PyTorch's
    tensors, which Keras 3 programs call on layer outputs and dataset
    elements (``images[i].numpy().astype("uint8")`` in the image tutorials).
    Layers called on arrays, and datasets, give their arrays as this view.

    Indexing keeps the view; arithmetic and NumPy functions return plain
    arrays, so that the view never leaks into other libraries' code."""

    def numpy(self):
        return self.view(np.ndarray)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = _plain(kwargs["out"])
        return getattr(ufunc, method)(*_plain(inputs), **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return func(*_plain(args), **_plain(kwargs))


def _plain(value):
    """``value`` with every Tensor in it (in tuples, lists, dicts) as a plain array."""
    if isinstance(value, Tensor):
        return value.view(np.ndarray)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
