"""Vectorised resampling of NHWC image batches, as linear maps with transposes.

Two families, both with Keras 3's conventions (``keras.ops.image``):

* ``resize_matrix`` and ``separable_resample``: resizing (and cropping) as
  one matrix per axis, with half-pixel centres; 'bilinear' clamps sample
  positions to the image (as ``resize`` with ``antialias=False``),
  'nearest' takes input pixel floor((i + 0.5) * in / out).
* ``AffineSampling``: ``affine_transform`` with per-image transforms.  A
  row [a0, a1, a2, b0, b1, b2] maps output pixel (x, y) (x the column, y
  the row, both pixel indices) to the input point (a0 x + a1 y + a2,
  b0 x + b1 y + b2).  Input points are interpolated from their neighbours
  ('bilinear': the 4 around, 'nearest': the rounded one), each neighbour
  outside the image read from the input extended by ``fill_mode``:
  'reflect' (d c b a | a b c d | d c b a), 'wrap' (a b c d | a b c d),
  'nearest' (a a | a b c d | d d) or 'constant' (k k | a b c d | k k, with
  k = ``fill_value``), as ``keras.ops.image.map_coordinates`` does.

Every map is linear in the pixels (plus a constant for 'constant' fill),
so the gradient of the input is the transposed map applied to the output's
gradient: ``separable_resample`` with transposed matrices, or
``AffineSampling.transpose`` (a scatter-add by ``np.bincount``).
"""

import numpy as np

from ._checks import check_choice

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def resize_matrix(size, out_size, interpolation, dtype, start=0, length=None):
    """The (out_size, size) matrix resampling pixels start .. start + length - 1
    (default: all ``size``) of one axis to ``out_size`` pixels."""
    length = size - start if length is None else length
    centres = (np.arange(out_size) + 0.5) * (length / out_size)
    rows = np.arange(out_size)
    matrix = np.zeros((out_size, size))
    if interpolation == "nearest":
        matrix[rows, start + np.minimum(np.floor(centres).astype(np.intp), length - 1)] = 1
        return matrix.astype(dtype)
    position = start + np.clip(centres - 0.5, 0, length - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, start + length - 1)
    fraction = position - below
    np.add.at(matrix, (rows, below), 1 - fraction)
    np.add.at(matrix, (rows, above), fraction)
    return matrix.astype(dtype)


def separable_resample(images, rows, columns):
    """out[n, :, :, c] = rows @ images[n, :, :, c] @ columns.T for every image n
    and channel c: (N, H, W, C) -> (N, len(rows), len(columns), C)."""
    batch, height, width, channels = images.shape
    tall = rows @ images.reshape(batch, height, width * channels)
    wide = columns @ tall.reshape(-1, width, channels)
    return wide.reshape(batch, len(rows), len(columns), channels)


def aspect_crop_box(height, width, target_height, target_width):
    """(top, left, crop_height, crop_width) of the largest centred window of an
    image of height x width with the target's aspect ratio, as Keras's
    ``crop_to_aspect_ratio`` and ``smart_resize`` compute it."""
    crop_height = max(min(height, int(width * target_height / target_width)), 1)
    crop_width = max(min(width, int(height * target_width / target_height)), 1)
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def fold_index(index, size, fill_mode):
    """Integer pixel indices of an axis of ``size`` pixels, extended by
    ``fill_mode``, brought back into [0, size) (clamped for 'constant')."""
    if fill_mode == "reflect":
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    if fill_mode == "wrap":
        return np.mod(index, size)
    return np.clip(index, 0, size - 1)


# Pixels resampled at once (whole images, at least one): the temporaries of a
# chunk stay in the CPU cache.  Building and applying a 'bilinear' rotation of
# 32 150x150x3 float32 images took 0.10-0.12 s in chunks of 1 image, 0.17 s in
# chunks of 8 and 0.28 s in one pass over the batch (medians of 5 runs on a
# shared 2-core machine; the transpose gained likewise: 0.02 s against 0.05 s).
CHUNK_PIXELS = 1 << 15


class AffineSampling:
    """The linear map of ``affine_transform`` for one batch shape and one
    transform per image, built once and applied to images (``apply``) or
    transposed onto gradients (``transpose``).

    Output pixel p is sum_t weights[t, p] * input_pixel[indices[t, p]]
    (+ fill_value * fill_weights[p] for fill_mode='constant'), with t over
    the interpolation's taps and pixels indexed flat over the batch.

    Args:
        transforms: (N, 6) [a0, a1, a2, b0, b1, b2] per image (see the module
            docstring); Keras's (N, 8) rows are taken when c0 = c1 = 0.
        shape: (N, H, W, C) of the images; the output has the same shape.
        interpolation: 'bilinear' or 'nearest'.
        fill_mode: 'reflect', 'wrap', 'constant' or 'nearest'.
        fill_value: the value outside the image for fill_mode='constant'.
        dtype: float32 or float64, the images' dtype.
    """

    def __init__(self, transforms, shape, interpolation="bilinear", fill_mode="constant",
                 fill_value=0.0, dtype=np.float32):
        check_choice(interpolation, "interpolation", INTERPOLATIONS)
        check_choice(fill_mode, "fill_mode", FILL_MODES)
        transforms = np.asarray(transforms, np.float64)
        batch, height, width, _ = shape
        if transforms.shape not in ((batch, 6), (batch, 8)):
            raise ValueError(f"transforms must have shape ({batch}, 6) or ({batch}, 8) for "
                             f"images of shape {tuple(shape)}, got {transforms.shape}")
        if transforms.shape[1] == 8 and np.any(transforms[:, 6:]):
            raise ValueError("projective transforms (c0, c1 not 0) are not supported")
        self.shape = tuple(shape)
        self.interpolation, self.fill_mode = interpolation, fill_mode
        self.fill_value = float(fill_value)
        taps = 1 if interpolation == "nearest" else 4
        pixels = batch * height * width
        self.indices = np.empty((taps, pixels), np.intp)
        self.weights = np.empty((taps, pixels), dtype)
        self.fill_weights = np.zeros((pixels, 1), dtype) if fill_mode == "constant" else None
        area = height * width
        per_chunk = max(1, CHUNK_PIXELS // area)
        # Slices of the flat output pixels, whole images each.
        self.chunks = [slice(first * area, min(first + per_chunk, batch) * area)
                       for first in range(0, batch, per_chunk)]
        for chunk in self.chunks:
            self._build(transforms[chunk.start // area:chunk.stop // area], chunk)

    def _build(self, transforms, chunk):
        """Fills the taps of the output pixels ``chunk`` (whole images) for
        their images' ``transforms``."""
        _, height, width, _ = self.shape
        a0, a1, a2, b0, b1, b2 = (transforms[:, k, None, None] for k in range(6))
        rows = np.arange(height)[:, None]
        columns = np.arange(width)
        x = a0 * columns + a1 * rows + a2  # (n, H, W) input column of each output pixel
        y = b0 * columns + b1 * rows + b2
        row_taps = self._axis_taps(y, height)
        column_taps = self._axis_taps(x, width)
        image_start = (chunk.start + np.arange(len(transforms)) * (height * width))[:, None, None]
        taps = [(row, column) for row in row_taps for column in column_taps]
        for tap, ((tap_rows, row_weights, rows_inside),
                  (tap_columns, column_weights, columns_inside)) in enumerate(taps):
            weight = row_weights * column_weights
            if self.fill_mode == "constant":
                inside = rows_inside & columns_inside
                self.fill_weights[chunk, 0] += np.where(inside, 0.0, weight).ravel()
                weight = np.where(inside, weight, 0.0)
            self.indices[tap, chunk] = (image_start + tap_rows * width + tap_columns).ravel()
            self.weights[tap, chunk] = weight.ravel()

    def _axis_taps(self, position, size):
        """[(index, weight, inside)] of the neighbours along one axis of the
        points at ``position`` (fractional pixel indices along an axis of
        ``size`` pixels): index folded into the image by the fill mode,
        inside whether it was in the image before (None unless 'constant')."""
        if self.interpolation == "nearest":
            neighbours = [(np.rint(position), np.ones(position.shape))]
        else:
            below = np.floor(position)
            fraction = position - below
            neighbours = [(below, 1 - fraction), (below + 1, fraction)]
        taps = []
        for index, weight in neighbours:
            index = index.astype(np.intp)
            inside = (index >= 0) & (index < size) if self.fill_mode == "constant" else None
            taps.append((fold_index(index, size, self.fill_mode), weight, inside))
        return taps

    def apply(self, images, out=None):
        """The transformed images (N, H, W, C), in ``out`` if given."""
        channels = self.shape[3]
        pixels = images.reshape(-1, channels)
        result = np.empty_like(pixels) if out is None else out.reshape(-1, channels)
        for chunk in self.chunks:
            part = result[chunk]
            np.multiply(np.take(pixels, self.indices[0, chunk], axis=0),
                        self.weights[0, chunk, None], out=part)
            for indices, weights in zip(self.indices[1:, chunk], self.weights[1:, chunk]):
                part += np.take(pixels, indices, axis=0) * weights[:, None]
            if self.fill_weights is not None and self.fill_value != 0:
                part += self.fill_weights[chunk] * self.fill_value
        return result.reshape(self.shape)

    def transpose(self, grads):
        """The gradient of the input images given ``grads`` of the output
        (both (N, H, W, C)): the transposed map, a scatter-add."""
        channels = self.shape[3]
        flat_grads = grads.reshape(-1, channels)
        result = np.empty_like(flat_grads)
        for chunk in self.chunks:
            # A chunk's taps read only its own images.
            indices = (self.indices[:, chunk] - chunk.start).ravel()
            for channel in range(channels):
                contributions = (self.weights[:, chunk] * flat_grads[chunk, channel]).ravel()
                result[chunk, channel] = np.bincount(indices, contributions,
                                                     minlength=chunk.stop - chunk.start)
        return result.reshape(self.shape)


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0):
    """Keras's ``ops.image.affine_transform`` for NHWC float images and one
    transform row per image (see ``AffineSampling``)."""
    images = np.asarray(images)
    sampling = AffineSampling(transforms, images.shape, interpolation, fill_mode, fill_value,
                              images.dtype)
    return sampling.apply(images)
