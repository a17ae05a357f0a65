"""Keras 3's image preprocessing and augmentation layers, on NHWC batches.

Always active: ``Rescaling``, ``Resizing``, ``CenterCrop``.  Active only in
training (the identity in inference, except ``RandomCrop``, which then
crops the centre as Keras documents it): ``RandomFlip``, ``RandomRotation``,
``RandomZoom``, ``RandomTranslation``, ``RandomContrast``,
``RandomBrightness``, ``RandomCrop``.

Random layers draw from fastconv's generator (``utils.set_random_seed``),
or from a generator of their own when given a ``seed``; they draw one
transform per image (RandomCrop: one window per batch, as Keras).  The
geometric ones resample the batch with ``fastconv.image_ops``, vectorised
over the pixels of a chunk of images (a batch of 32 150x150x3 float32
images through RandomRotation: about 0.07 s forward and 0.03 s backward,
medians of 5 runs on a shared 2-core machine).

Every layer is linear in its input for a fixed draw (contrast and
brightness up to their clipping to ``value_range``), and ``backward`` is
its exact transpose for the draw of the last training forward, so the
layers may sit anywhere in a network.
"""

import math
import numbers

import numpy as np

from .. import utils
from .._checks import check_choice, check_int, check_number
from ..image_ops import (
    FILL_MODES,
    INTERPOLATIONS,
    AffineSampling,
    aspect_crop_box,
    resize_matrix,
    separable_resample,
)
from .base import LAYERS, Layer, check_image_shape

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def check_seed(seed):
    """None or a non-negative int."""
    return None if seed is None else check_int(seed, "seed", minimum=0)


def factor_range(factor, name, low, high, low_open=False):
    """(lower, upper) from ``factor``: a number f gives (-|f|, |f|), a pair is
    sorted; every number must lie in [low, high] ((low, high] if ``low_open``)."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{name} must be a number or a pair of numbers, got {factor!r}")
        return tuple(sorted(check_number(f, name, low, high, low_open) for f in factor))
    size = abs(check_number(factor, name, low, high, low_open))
    return -size, size


def check_value_range(value_range):
    """``value_range`` as a sorted [low, high] pair of numbers, low < high."""
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(f"value_range must be a pair of numbers (low, high), "
                         f"got {value_range!r}")
    low, high = sorted(check_number(v, "value_range") for v in value_range)
    if low == high:
        raise ValueError(f"value_range must have low < high, got {value_range!r}")
    return [low, high]


def as_config(factor):
    """A factor argument as JSON: a pair as a list, a number as a float."""
    return list(factor) if isinstance(factor, (tuple, list)) else float(factor)


class _ImageLayer(Layer):
    """A layer of NHWC images that keeps their shape."""

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return tuple(input_shape)


class _Seeded(Layer):
    """A layer that draws from its own generator when given a ``seed``, else
    from fastconv's (so ``utils.set_random_seed`` fixes its draws)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed)
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)

    def random_generator(self):
        return self._generator or utils.random_generator()

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@LAYERS.register()
class Rescaling(Layer):
    """y = x * scale + offset, in training and inference (any input shape).

    Args:
        scale: number, e.g. 1 / 255 to bring [0, 255] to [0, 1].
        offset: number added after scaling, e.g. -1 with scale=1 / 127.5.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_number(scale, "scale")
        self.offset = check_number(offset, "offset")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training, activation):
        y = np.multiply(x, self.scale, out=self._buffers.get("y", x.shape, x.dtype))
        y += self.offset
        return y

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        return np.multiply(dy, self.scale, out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class _WindowLayer(Layer):
    """A layer that maps a window (top, left, window_height, window_width) of
    each image to (height, width) pixels: a crop when the window has that
    size, a resize of the window otherwise."""

    interpolation = "bilinear"

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height = check_int(height, "height")
        self.width = check_int(width, "width")
        self._resampling = None  # (window, row matrix, column matrix) of the last call

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return (None, self.height, self.width, input_shape[3])

    def window(self, shape, training):
        """(top, left, window_height, window_width) for images of ``shape``."""
        raise NotImplementedError

    def aspect_window(self, shape):
        """The largest centred window with the output's aspect ratio."""
        return aspect_crop_box(shape[1], shape[2], self.height, self.width)

    def call(self, x, training, activation):
        window = self.window(x.shape, training)
        top, left, window_height, window_width = window
        y = self._buffers.get("y", (len(x), self.height, self.width, x.shape[3]), x.dtype)
        if (window_height, window_width) == (self.height, self.width):
            self._resampling = (window, None, None)
            np.copyto(y, x[:, top:top + self.height, left:left + self.width])
            return y
        rows = resize_matrix(x.shape[1], self.height, self.interpolation, x.dtype, top,
                             window_height)
        columns = resize_matrix(x.shape[2], self.width, self.interpolation, x.dtype, left,
                                window_width)
        self._resampling = (window, rows, columns)
        np.copyto(y, separable_resample(x, rows, columns))
        return y

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        (top, left, _, _), rows, columns = self._resampling
        dx = self._buffers.get("dx", x.shape, x.dtype)
        if rows is None:
            dx.fill(0)
            dx[:, top:top + self.height, left:left + self.width] = dy
        else:
            np.copyto(dx, separable_resample(dy, rows.T, columns.T))
        return dx

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


@LAYERS.register()
class Resizing(_WindowLayer):
    """Resizes images to (height, width), in training and inference.

    Args:
        height, width: the output size.
        interpolation: 'bilinear' (half-pixel centres, no antialiasing, as
            Keras's default) or 'nearest'.
        crop_to_aspect_ratio: resize the largest centred window with the
            output's aspect ratio instead of the whole image (no distortion).
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 **kwargs):
        super().__init__(height, width, **kwargs)
        if interpolation in ("bicubic", "lanczos3", "lanczos5"):
            raise ValueError(f"interpolation={interpolation!r} is not supported yet; "
                             "use 'bilinear' or 'nearest'")
        self.interpolation = check_choice(interpolation, "interpolation", INTERPOLATIONS)
        if not isinstance(crop_to_aspect_ratio, (bool, np.bool_)):
            raise TypeError(f"crop_to_aspect_ratio must be a bool, got {crop_to_aspect_ratio!r}")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)

    def window(self, shape, training):
        if self.crop_to_aspect_ratio:
            return self.aspect_window(shape)
        return 0, 0, shape[1], shape[2]

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio}


@LAYERS.register()
class CenterCrop(_WindowLayer):
    """Crops the centre (height, width) of each image, in training and
    inference; images smaller than that are resized instead (the largest
    centred window with the output's aspect ratio, bilinear), as in Keras."""

    def window(self, shape, training):
        if shape[1] >= self.height and shape[2] >= self.width:
            return (shape[1] - self.height) // 2, (shape[2] - self.width) // 2, \
                self.height, self.width
        return self.aspect_window(shape)


@LAYERS.register()
class RandomCrop(_Seeded, _WindowLayer):
    """In training, crops (height, width) at a random place, the same for the
    whole batch (as Keras).  In inference, and in training on images smaller
    than (height, width), resizes the largest centred window with the
    output's aspect ratio (bilinear), as Keras documents it.

    Args:
        height, width: the output size.
        seed: int for a generator of the layer's own (default: fastconv's).
    """

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(height=height, width=width, seed=seed, **kwargs)

    def window(self, shape, training):
        height, width = shape[1:3]
        if not training or height < self.height or width < self.width:
            return self.aspect_window(shape)
        generator = self.random_generator()
        return (int(generator.integers(height - self.height + 1)),
                int(generator.integers(width - self.width + 1)), self.height, self.width)


@LAYERS.register()
class RandomFlip(_Seeded, _ImageLayer):
    """In training, flips each image with probability 1/2.

    Args:
        mode: 'horizontal' (left-right), 'vertical' (top-bottom) or
            'horizontal_and_vertical' (both at once, decided by the same
            draw, as Keras 3 does: the image is unchanged or turned 180°).
        seed: int for a generator of the layer's own (default: fastconv's).
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = check_choice(mode, "mode", FLIP_MODES)
        self._flipped = None  # which images the last training forward flipped

    def flip(self, images, out):
        """``out`` = ``images`` with the images in ``self._flipped`` flipped."""
        np.copyto(out, images)
        chosen = self._flipped
        if self.mode != "vertical":
            out[chosen] = out[chosen, :, ::-1]
        if self.mode != "horizontal":
            out[chosen] = out[chosen, ::-1]
        return out

    def call(self, x, training, activation):
        if not training:
            self._flipped = np.empty(0, np.intp)
            return x
        self._flipped = np.flatnonzero(self.random_generator().random(len(x)) <= 0.5)
        return self.flip(x, self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        return self.flip(dy, self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class _AffineLayer(_Seeded, _ImageLayer):
    """In training, resamples each image by an affine transform drawn for it
    (``transforms``); the identity in inference."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.fill_mode = check_choice(fill_mode, "fill_mode", FILL_MODES)
        self.interpolation = check_choice(interpolation, "interpolation", INTERPOLATIONS)
        self.fill_value = check_number(fill_value, "fill_value")
        self._sampling = None  # the AffineSampling of the last training forward

    def transforms(self, batch, height, width):
        """(batch, 6) rows [a0, a1, a2, b0, b1, b2] mapping output pixels to
        input points (``image_ops``), one drawn per image."""
        raise NotImplementedError

    def call(self, x, training, activation):
        self._sampling = None
        if not training:
            return x
        self._sampling = AffineSampling(self.transforms(*x.shape[:3]), x.shape,
                                        self.interpolation, self.fill_mode, self.fill_value,
                                        x.dtype)
        return self._sampling.apply(x, out=self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        return dy if self._sampling is None else self._sampling.transpose(dy)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


def affine_rows(columns_scale, rows_scale, angle, column_shift, row_shift, height, width):
    """(batch, 6) transform rows that rotate by ``angle`` (radians, counter-
    clockwise on screen) and scale (output to input) about the image centre,
    then shift by (column_shift, row_shift) input pixels; arguments are
    arrays of one value per image."""
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    a0, a1 = columns_scale * cos, -columns_scale * sin
    b0, b1 = rows_scale * sin, rows_scale * cos
    return np.stack([a0, a1, column_shift + centre_x - centre_x * a0 - centre_y * a1,
                     b0, b1, row_shift + centre_y - centre_x * b0 - centre_y * b1], axis=1)


_FILL_DOC = """
        fill_mode: how points outside the image are read: 'reflect'
            (d c b a | a b c d | d c b a), 'wrap' (a b c d | a b c d),
            'constant' (k k | a b c d | k k, k = fill_value) or 'nearest'
            (a a | a b c d | d d).
        interpolation: 'bilinear' or 'nearest'.
        seed: int for a generator of the layer's own (default: fastconv's).
        fill_value: the value outside the image for fill_mode='constant'."""


@LAYERS.register()
class RandomRotation(_AffineLayer):
    __doc__ = """In training, rotates each image about its centre by a random angle.

    Args:
        factor: fraction of a full turn: a number f draws angles in
            [-f, f] * 360°, a pair (low, high) in [low, high] * 360°; positive
            angles turn counter-clockwise.  Numbers in [-1, 1].""" + _FILL_DOC

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.factor = factor
        self.lower, self.upper = factor_range(factor, "factor", -1, 1)

    def transforms(self, batch, height, width):
        turns = self.random_generator().uniform(self.lower, self.upper, batch)
        ones, zeros = np.ones(batch), np.zeros(batch)
        return affine_rows(ones, ones, 2 * math.pi * turns, zeros, zeros, height, width)

    def get_config(self):
        return {**super().get_config(), "factor": as_config(self.factor)}


@LAYERS.register()
class RandomZoom(_AffineLayer):
    __doc__ = """In training, zooms each image about its centre by a random amount.

    Args:
        height_factor: a number f draws vertical zooms in [-f, f], a pair
            (low, high) in [low, high]; a zoom z reads input rows at
            (1 + z) times the output's spacing: z > 0 zooms out, z < 0 in.
            Numbers in (-1, 1].
        width_factor: the same horizontally; None (default) uses the
            vertical zoom, keeping the aspect ratio.""" + _FILL_DOC

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_range = factor_range(height_factor, "height_factor", -1, 1, low_open=True)
        self.width_range = None if width_factor is None else \
            factor_range(width_factor, "width_factor", -1, 1, low_open=True)

    def transforms(self, batch, height, width):
        generator = self.random_generator()
        rows_scale = 1 + generator.uniform(*self.height_range, batch)
        columns_scale = rows_scale if self.width_range is None else \
            1 + generator.uniform(*self.width_range, batch)
        zeros = np.zeros(batch)
        return affine_rows(columns_scale, rows_scale, zeros, zeros, zeros, height, width)

    def get_config(self):
        return {**super().get_config(), "height_factor": as_config(self.height_factor),
                "width_factor": None if self.width_factor is None
                else as_config(self.width_factor)}


@LAYERS.register()
class RandomTranslation(_AffineLayer):
    __doc__ = """In training, shifts each image by a random amount.

    Args:
        height_factor: fraction of the height: a number f draws vertical
            shifts in [-f, f] * height, a pair (low, high) in
            [low, high] * height; positive shifts move the image down.
            Numbers in [-1, 1].
        width_factor: the same for horizontal shifts (positive: right).""" + _FILL_DOC

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_range = factor_range(height_factor, "height_factor", -1, 1)
        self.width_range = factor_range(width_factor, "width_factor", -1, 1)

    def transforms(self, batch, height, width):
        generator = self.random_generator()
        down = generator.uniform(*self.height_range, batch) * height
        right = generator.uniform(*self.width_range, batch) * width
        ones, zeros = np.ones(batch), np.zeros(batch)
        return affine_rows(ones, ones, zeros, -right, -down, height, width)

    def get_config(self):
        return {**super().get_config(), "height_factor": as_config(self.height_factor),
                "width_factor": as_config(self.width_factor)}


class _ColorLayer(_Seeded, _ImageLayer):
    """In training, y = clip(f(x), *value_range) for a linear f drawn per
    image; the identity in inference.  Backward keeps the gradient where
    f(x) was inside value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor
        self.value_range = check_value_range(value_range)
        self._inside = None  # where the last training forward did not clip

    def adjust(self, x, out):
        """out = f(x) with a new draw per image."""
        raise NotImplementedError

    def call(self, x, training, activation):
        self._inside = None
        if not training:
            return x
        y = self.adjust(x, self._buffers.get("y", x.shape, x.dtype))
        low, high = self.value_range
        self._inside = (y >= low) & (y <= high)
        return np.clip(y, low, high, out=y)

    def adjust_backward(self, grad):
        """dL/dx from ``grad``, dL/df(x) where nothing was clipped (in place)."""
        raise NotImplementedError

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        if self._inside is None:  # the last forward was the identity of inference
            return dy
        return self.adjust_backward(self.inside_gradient(dy))

    def inside_gradient(self, dy):
        """dy where the last training forward did not clip, 0 elsewhere."""
        return np.multiply(dy, self._inside, out=self._buffers.get("dx", dy.shape, dy.dtype))

    def get_config(self):
        return {**super().get_config(), "factor": as_config(self.factor),
                "value_range": list(self.value_range)}


@LAYERS.register()
class RandomContrast(_ColorLayer):
    """In training, y = clip((x - mean) * c + mean, *value_range) with mean
    the per-channel mean of each image and c drawn per image.

    Args:
        factor: a number f in [0, 1] draws c in [1 - f, 1 + f] (as Keras
            documents it), a pair (low, high) in [1 - low, 1 + high].
        value_range: (low, high) of the pixel values, e.g. (0, 1).
        seed: int for a generator of the layer's own (default: fastconv's).
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, **kwargs)
        if isinstance(factor, numbers.Real) and not isinstance(factor, (bool, np.bool_)):
            factor = (factor, factor)
        self.lower, self.upper = factor_range(factor, "factor", 0, 1)
        self._contrast = None  # (batch, 1, 1, 1) factors of the last training forward

    def adjust(self, x, out):
        draws = self.random_generator().uniform(1 - self.lower, 1 + self.upper, len(x))
        self._contrast = draws.astype(x.dtype).reshape(-1, 1, 1, 1)
        mean = x.mean(axis=(1, 2), keepdims=True)
        np.subtract(x, mean, out=out)
        out *= self._contrast
        out += mean
        return out

    def adjust_backward(self, grad):
        mean_part = grad.mean(axis=(1, 2), keepdims=True) * (1 - self._contrast)
        grad *= self._contrast
        grad += mean_part
        return grad


@LAYERS.register()
class RandomBrightness(_ColorLayer):
    """In training, y = clip(x + d, *value_range) with d drawn per image.

    Args:
        factor: fraction of the value range: a number f in [-1, 1] draws d in
            [-f, f] * (high - low), a pair in [low, high] * (high - low).
        value_range: (low, high) of the pixel values, e.g. (0, 1).
        seed: int for a generator of the layer's own (default: fastconv's).
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, **kwargs)
        self.lower, self.upper = factor_range(factor, "factor", -1, 1)

    def adjust(self, x, out):
        low, high = self.value_range
        deltas = self.random_generator().uniform(self.lower, self.upper, len(x)) * (high - low)
        return np.add(x, deltas.astype(x.dtype).reshape(-1, 1, 1, 1), out=out)

    def adjust_backward(self, grad):
        return grad
