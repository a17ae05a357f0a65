"""Layers that only rearrange their input: Flatten, Reshape, Permute,
ZeroPadding2D, Cropping2D and UpSampling2D."""

import math

import numpy as np

from .._checks import as_pair, check_choice, check_int
from ..image_ops import resize_matrix, separable_resample
from .base import LAYERS, Layer, check_image_shape


@LAYERS.register()
class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...), in row-major order:
    an NHWC image flattens in (height, width, channels) order, as in Keras."""

    def compute_output_shape(self, input_shape):
        return (None, math.prod(input_shape[1:]))

    def call(self, x, training, activation):
        return x.reshape(len(x), math.prod(x.shape[1:]))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy.reshape(x.shape) if need_input_grad else None


@LAYERS.register()
class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape), in row-major order.

    Args:
        target_shape: one sample's new shape (no batch axis): positive ints,
            and at most one -1, inferred from the input's size.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise TypeError(f"target_shape must be a non-empty tuple of ints, "
                            f"got {target_shape!r}")
        self.target_shape = tuple(check_int(d, "target_shape", minimum=-1)
                                  for d in target_shape)
        if 0 in self.target_shape or self.target_shape.count(-1) > 1:
            raise ValueError(f"target_shape must be positive ints and at most one -1, "
                             f"got {target_shape!r}")

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if size % known or (-1 not in self.target_shape and size != known):
            raise ValueError(f"Reshape layer {self.name!r} cannot reshape inputs of shape "
                             f"{tuple(input_shape)} ({size} values per sample) to "
                             f"target_shape={self.target_shape}")
        return (None,) + tuple(size // known if d == -1 else d for d in self.target_shape)

    def call(self, x, training, activation):
        return x.reshape((len(x),) + self.output_shape[1:])

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy.reshape(x.shape) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@LAYERS.register()
class Permute(Layer):
    """Permutes the non-batch axes: output axis i + 1 is input axis dims[i].

    Args:
        dims: a permutation of 1, ..., rank - 1 (the batch axis is 0), e.g.
            (2, 1) swaps the two axes of (batch, steps, features).
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dims, (tuple, list)):
            raise TypeError(f"dims must be a tuple of ints, got {dims!r}")
        self.dims = tuple(check_int(d, "dims") for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute Layer: the "
                             f"indices must be 1, ..., {len(self.dims)} in some order, "
                             f"got dims={dims!r}")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"Permute layer {self.name!r} with dims={self.dims} expects "
                             f"{len(self.dims) + 1}-D inputs, got shape {tuple(input_shape)}")
        return (None,) + tuple(input_shape[d] for d in self.dims)

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        np.copyto(y, x.transpose((0,) + self.dims))
        return y

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", x.shape, x.dtype)
        np.copyto(dx, dy.transpose(np.argsort((0,) + self.dims)))
        return dx

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


def side_pairs(value, name):
    """((top, bottom), (left, right)) of non-negative ints from an int (all
    four), a pair (height, width: each on both sides) or a pair of pairs."""
    if not isinstance(value, (tuple, list)):
        value = (value, value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int, a pair of ints or a pair of pairs of ints "
                         f"((top, bottom), (left, right)), got {value!r}")
    pairs = []
    for side in value:
        side = tuple(side) if isinstance(side, (tuple, list)) else (side, side)
        if len(side) != 2:
            raise ValueError(f"{name} must be an int, a pair of ints or a pair of pairs of "
                             f"ints ((top, bottom), (left, right)), got {value!r}")
        pairs.append(tuple(check_int(n, name, minimum=0) for n in side))
    return tuple(pairs)


@LAYERS.register()
class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around NHWC images.

    Args:
        padding: an int (all sides), a pair (rows above and below, columns
            left and right) or ((top, bottom), (left, right)).
    """

    def __init__(self, padding=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.padding = side_pairs(padding, "padding")

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        (top, bottom), (left, right) = self.padding
        return (None, input_shape[1] + top + bottom, input_shape[2] + left + right,
                input_shape[3])

    def _inner(self, padded):
        """The view of ``padded`` that holds the input image."""
        (top, bottom), (left, right) = self.padding
        return padded[:, top:padded.shape[1] - bottom, left:padded.shape[2] - right]

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        y.fill(0)
        self._inner(y)[...] = x
        return y

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return np.ascontiguousarray(self._inner(dy)) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "padding": [list(side) for side in self.padding]}


@LAYERS.register()
class Cropping2D(Layer):
    """Removes rows and columns at the edges of NHWC images.

    Args:
        cropping: an int (all sides), a pair (rows above and below, columns
            left and right) or ((top, bottom), (left, right)).
    """

    def __init__(self, cropping=((0, 0), (0, 0)), **kwargs):
        super().__init__(**kwargs)
        self.cropping = side_pairs(cropping, "cropping")

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        (top, bottom), (left, right) = self.cropping
        height = input_shape[1] - top - bottom
        width = input_shape[2] - left - right
        if height <= 0 or width <= 0:
            raise ValueError(f"Cropping2D layer {self.name!r}: cropping={self.cropping} "
                             f"leaves nothing of inputs of shape {tuple(input_shape)}")
        return (None, height, width, input_shape[3])

    def _inner(self, image):
        """The view of an input-shaped ``image`` that is kept."""
        (top, bottom), (left, right) = self.cropping
        return image[:, top:image.shape[1] - bottom, left:image.shape[2] - right]

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        np.copyto(y, self._inner(x))
        return y

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", x.shape, x.dtype)
        dx.fill(0)
        self._inner(dx)[...] = dy
        return dx

    def get_config(self):
        return {**super().get_config(), "cropping": [list(side) for side in self.cropping]}


@LAYERS.register()
class UpSampling2D(Layer):
    """Enlarges NHWC images by whole factors: (batch, height, width, channels)
    -> (batch, height * size[0], width * size[1], channels).

    Args:
        size: int or pair, the factors for rows and columns.
        interpolation: 'nearest' (repeats rows and columns) or 'bilinear'.
    """

    def __init__(self, size=(2, 2), interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = as_pair(size, "size")
        if not isinstance(interpolation, str):
            raise TypeError(f"interpolation must be a string, got {interpolation!r}")
        self.interpolation = interpolation.lower()
        if self.interpolation in ("bicubic", "lanczos3", "lanczos5"):
            raise ValueError(f"interpolation={interpolation!r} is not supported yet; "
                             "use 'nearest' or 'bilinear'")
        check_choice(self.interpolation, "interpolation", ("nearest", "bilinear"))

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return (None, input_shape[1] * self.size[0], input_shape[2] * self.size[1],
                input_shape[3])

    def _resize_matrices(self, x):
        """The row and column interpolation matrices for images like ``x``."""
        return (resize_matrix(x.shape[1], x.shape[1] * self.size[0], "bilinear", x.dtype),
                resize_matrix(x.shape[2], x.shape[2] * self.size[1], "bilinear", x.dtype))

    def call(self, x, training, activation):
        if self.interpolation == "nearest":
            return np.repeat(np.repeat(x, self.size[0], axis=1), self.size[1], axis=2)
        return separable_resample(x, *self._resize_matrices(x))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        batch, height, width, channels = x.shape
        if self.interpolation == "nearest":
            blocks = dy.reshape(batch, height, self.size[0], width, self.size[1], channels)
            return blocks.sum(axis=(2, 4))
        rows, columns = self._resize_matrices(x)
        return separable_resample(dy, rows.T, columns.T)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size),
                "interpolation": self.interpolation}
