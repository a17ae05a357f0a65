"""Keras 2's image preprocessing (``keras.preprocessing.image``): the
``ImageDataGenerator`` of random augmentation and the iterators its
``flow`` and ``flow_from_directory`` return.

Images are ``(height, width, channels)`` arrays.  Every random draw comes
from one NumPy generator per batch: seeded from the iterator's ``seed`` and
the number of batches drawn so far when a seed is given (so runs repeat),
from ``fastconv.utils.random_generator()`` otherwise.
"""

import math
import os
import threading
import warnings

import numpy as np

from .._checks import as_pair, check_choice, check_int, check_number
from ..data_adapters import PyDataset
from ..image_dataset import list_image_files
from ..image_utils import (
    CHANNELS,
    COLOR_MODES,
    PIL_INTERPOLATIONS,
    array_to_img,
    img_to_array,
    load_img,
    pil_image,
    save_img,
)
from ..utils import random_generator

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator",
           "apply_affine_transform", "load_img", "img_to_array", "array_to_img", "save_img"]

WHITE_LIST_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
FILL_MODES = ("constant", "nearest", "reflect", "wrap")
CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
# Sample positions within this distance of the image's edge count as inside
# (rotations by multiples of 90 degrees land there by rounding).
_EDGE_TOLERANCE = 1e-6


class Iterator(PyDataset):
    """Batches of ``batch_size`` of ``n`` samples, in a new random order each
    epoch when ``shuffle``; Keras 2's ``Iterator``, read in either of two ways:

    * as a ``PyDataset``: ``len(it)`` batches per epoch, ``it[i]`` the i-th
      batch of the epoch's order, ``it.on_epoch_end()`` draws a new order;
    * as an endless iterator: ``next(it)`` gives batch after batch, epoch
      after epoch (``for x, y in it`` never ends on its own).

    Subclasses define ``_batch(indices, rng)`` -> the batch of those samples.
    """

    def __init__(self, n, batch_size, shuffle, seed):
        super().__init__()
        self.n = n
        self.batch_size = check_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else check_int(seed, "seed", minimum=0)
        self.batch_index = 0
        self.total_batches_seen = 0
        self.index_array = None
        self.lock = threading.Lock()
        self.index_generator = self._flow_index()

    def _next_rng(self):
        """The generator of the next batch's random draws (called under the lock)."""
        rng = (random_generator() if self.seed is None
               else np.random.default_rng([self.seed, self.total_batches_seen]))
        self.total_batches_seen += 1
        return rng

    def _set_index_array(self, rng):
        self.index_array = rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise ValueError(f"Asked to retrieve element {index}, but the Sequence has length "
                             f"{len(self)}")
        with self.lock:
            rng = self._next_rng()
            if self.index_array is None:
                self._set_index_array(rng)
            indices = self.index_array[self.batch_size * index:self.batch_size * (index + 1)]
        return self._batch(indices, rng)

    def on_epoch_end(self):
        with self.lock:
            self._set_index_array(self._next_rng())

    def reset(self):
        """Makes ``next`` start a new epoch."""
        self.batch_index = 0

    def _flow_index(self):
        """Endless (indices, rng) of the batches that ``next`` returns."""
        self.reset()
        while True:
            rng = self._next_rng()
            if self.batch_index == 0:
                self._set_index_array(rng)
            start = self.batch_index * self.batch_size % self.n if self.n else 0
            self.batch_index = self.batch_index + 1 if self.n > start + self.batch_size else 0
            yield self.index_array[start:start + self.batch_size], rng

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            indices, rng = next(self.index_generator)
        return self._batch(indices, rng)

    next = __next__  # Keras 2's name

    def _batch(self, indices, rng):
        raise NotImplementedError


class NumpyArrayIterator(Iterator):
    """Augmented batches of an array of images ``x`` (n, height, width,
    channels) and its labels ``y``: ``(batch_x, batch_y)``, ``batch_x`` alone
    without ``y``, ``(batch_x, batch_y, batch_weights)`` with
    ``sample_weight``.  ``subset`` 'validation' takes the first
    ``validation_split`` of the samples, 'training' the rest."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False,
                 sample_weight=None, seed=None, subset=None, ignore_class_split=False,
                 dtype=None):
        self.dtype = np.dtype(dtype or "float32")
        x = np.asarray(x)
        if y is not None and len(x) != len(y):
            raise ValueError(f"`x` (images tensor) and `y` (labels) should have the same length. "
                             f"Found: x.shape = {x.shape}, y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError(f"`x` (images tensor) and `sample_weight` should have the same "
                             f"length. Found: x.shape = {x.shape}, sample_weight.shape = "
                             f"{np.asarray(sample_weight).shape}")
        if subset is not None:
            check_choice(subset, "subset", ("training", "validation"))
            split = int(len(x) * image_data_generator._validation_split)
            if (y is not None and not ignore_class_split
                    and not np.array_equal(np.unique(y[:split]), np.unique(y[split:]))):
                raise ValueError("Training and validation subsets have different number of "
                                 "classes after the split. If your numpy arrays are sorted by "
                                 "the label, you might want to shuffle them.")
            part = slice(None, split) if subset == "validation" else slice(split, None)
            x = x[part]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        self.x = np.asarray(x, dtype=self.dtype)
        if self.x.ndim != 4:
            raise ValueError(f"Input data in `NumpyArrayIterator` should have rank 4. You passed "
                             f"an array with shape {self.x.shape}")
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        super().__init__(len(self.x), batch_size, shuffle, seed)

    def _batch(self, indices, rng):
        batch_x = np.zeros((len(indices),) + self.x.shape[1:], self.dtype)
        for i, j in enumerate(indices):
            batch_x[i] = self.image_data_generator.augment(self.x[j], rng)
        if self.y is None:
            return batch_x
        if self.sample_weight is None:
            return batch_x, self.y[indices]
        return batch_x, self.y[indices], self.sample_weight[indices]


class DirectoryIterator(Iterator):
    """Augmented batches of the image files in the class subfolders of
    ``directory`` (Keras 2's ``flow_from_directory``).

    Classes are the subfolders in alphabetical order, or ``classes``; their
    images (.png, .jpg, .jpeg, .bmp, .ppm, .tif, .tiff, searched recursively)
    are loaded with ``load_img`` (``color_mode``, ``target_size``,
    ``interpolation``, ``keep_aspect_ratio``).  Batches are ``(images,
    labels)``: labels one-hot for ``class_mode='categorical'``, the class
    index (float) for 'binary' and 'sparse', the images themselves for
    'input'; images alone for None.  ``subset`` 'validation' takes the first
    ``validation_split`` of each class's files, 'training' the rest.
    Attributes: ``class_indices`` (name -> index), ``classes`` (index of each
    file), ``filenames`` (relative to ``directory``), ``filepaths``,
    ``samples``, ``num_classes``.
    """

    def __init__(self, directory, image_data_generator, target_size=(256, 256),
                 color_mode="rgb", classes=None, class_mode="categorical", batch_size=32,
                 shuffle=True, seed=None, follow_links=False, subset=None,
                 interpolation="nearest", keep_aspect_ratio=False, dtype=None):
        pil_image()  # fail now, not when the first batch is read, without Pillow
        self.directory = directory
        self.image_data_generator = image_data_generator
        self.target_size = as_pair(target_size, "target_size")
        self.color_mode = check_choice(color_mode, "color_mode", COLOR_MODES)
        self.image_shape = self.target_size + (CHANNELS[color_mode],)
        if class_mode not in CLASS_MODES:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: "
                             f"{set(CLASS_MODES)}")
        self.class_mode = class_mode
        self.interpolation = check_choice(interpolation, "interpolation", PIL_INTERPOLATIONS)
        self.keep_aspect_ratio = keep_aspect_ratio
        self.dtype = np.dtype(dtype or "float32")
        self.subset = check_choice(subset, "subset", ("training", "validation", None))
        split = image_data_generator._validation_split
        fraction = {None: (0.0, 1.0), "validation": (0.0, split), "training": (split, 1.0)}[subset]

        if not classes:
            classes = sorted(name for name in os.listdir(directory)
                             if os.path.isdir(os.path.join(directory, name)))
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        self.filenames, labels = [], []
        for index, name in enumerate(classes):
            found = list_image_files(os.path.join(directory, name), WHITE_LIST_FORMATS,
                                     follow_links)
            found = found[int(fraction[0] * len(found)):int(fraction[1] * len(found))]
            self.filenames += [os.path.join(name, path) for path in found]
            labels += [index] * len(found)
        self.classes = np.array(labels, dtype=np.int32)
        self.samples = len(self.filenames)
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self.filepaths = [os.path.join(directory, name) for name in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def labels(self):
        return self.classes

    def _batch(self, indices, rng):
        batch_x = np.zeros((len(indices),) + self.image_shape, self.dtype)
        for i, j in enumerate(indices):
            img = load_img(self.filepaths[j], color_mode=self.color_mode,
                           target_size=self.target_size, interpolation=self.interpolation,
                           keep_aspect_ratio=self.keep_aspect_ratio)
            batch_x[i] = self.image_data_generator.augment(img_to_array(img, dtype=self.dtype),
                                                           rng)
        if self.class_mode is None:
            return batch_x
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode == "categorical":
            return batch_x, np.eye(self.num_classes, dtype=self.dtype)[self.classes[indices]]
        return batch_x, self.classes[indices].astype(self.dtype)


class ImageDataGenerator:
    """Random augmentation and normalisation of images, as Keras 2's.

    Per image, in this order: an affine transform about the centre (rotation
    by up to ``rotation_range`` degrees, horizontal and vertical shifts of
    ``width_shift_range``/``height_shift_range`` (a fraction of the size
    when < 1, else pixels; an int n draws whole pixels in (-n, n); a list
    draws one of its values with a random sign), shear by up to
    ``shear_range`` degrees, zoom by a factor in ``zoom_range`` (a float z
    means [1 - z, 1 + z])) resampled with ``interpolation_order`` 0 (nearest)
    or 1 (bilinear), points outside the image filled as ``fill_mode`` says
    ('constant' with ``cval``, 'nearest', 'reflect', 'wrap'); a channel
    shift of up to ``channel_shift_range``; random horizontal and vertical
    flips; a brightness factor drawn from ``brightness_range``.  Then
    ``standardize``: ``preprocessing_function``, ``rescale`` (a factor),
    sample-wise and feature-wise centring and scaling, ZCA whitening (the
    feature-wise statistics come from ``fit``).  ``validation_split`` sets
    aside a fraction for ``subset='validation'``.
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0, width_shift_range=0.0,
                 height_shift_range=0.0, brightness_range=None, shear_range=0.0, zoom_range=0.0,
                 channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None,
                 data_format=None, validation_split=0.0, interpolation_order=1, dtype=None):
        self.featurewise_center = featurewise_center or zca_whitening \
            or featurewise_std_normalization
        self.samplewise_center = samplewise_center or samplewise_std_normalization
        self.featurewise_std_normalization = featurewise_std_normalization and not zca_whitening
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = check_number(rotation_range, "rotation_range", low=0)
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = check_number(shear_range, "shear_range", low=0)
        self.channel_shift_range = check_number(channel_shift_range, "channel_shift_range", low=0)
        self.fill_mode = check_choice(fill_mode, "fill_mode", FILL_MODES)
        self.cval = check_number(cval, "cval")
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        if data_format not in (None, "channels_last"):
            raise ValueError(f"fastconv supports only data_format='channels_last', "
                             f"got {data_format!r}")
        self.data_format = "channels_last"
        if validation_split and not 0 < validation_split < 1:
            raise ValueError(f"`validation_split` must be strictly between 0 and 1.  "
                             f"Received: {validation_split}")
        self._validation_split = validation_split
        self.interpolation_order = check_choice(interpolation_order, "interpolation_order", (0, 1))
        self.dtype = np.dtype(dtype or "float32")
        if isinstance(zoom_range, (int, float)) and not isinstance(zoom_range, bool):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif (isinstance(zoom_range, (tuple, list)) and len(zoom_range) == 2
              and all(isinstance(value, (int, float)) for value in zoom_range)):
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(f"`zoom_range` should be a float or a tuple or list of two floats. "
                             f"Received: {zoom_range}")
        if brightness_range is not None and (
                not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2):
            raise ValueError(f"`brightness_range should be tuple or list of two floats. "
                             f"Received: {brightness_range}")
        self.brightness_range = brightness_range
        self.mean = self.std = self.zca_whitening_matrix = None

    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None,
             ignore_class_split=False, subset=None):
        """A ``NumpyArrayIterator`` of augmented batches of the arrays ``x``, ``y``."""
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle,
                                  sample_weight=sample_weight, seed=seed, subset=subset,
                                  ignore_class_split=ignore_class_split, dtype=self.dtype)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size=32, shuffle=True,
                            seed=None, follow_links=False, subset=None, interpolation="nearest",
                            keep_aspect_ratio=False):
        """A ``DirectoryIterator`` of augmented batches of the images in the
        class subfolders of ``directory``."""
        return DirectoryIterator(directory, self, target_size=target_size, color_mode=color_mode,
                                 classes=classes, class_mode=class_mode, batch_size=batch_size,
                                 shuffle=shuffle, seed=seed, follow_links=follow_links,
                                 subset=subset, interpolation=interpolation,
                                 keep_aspect_ratio=keep_aspect_ratio, dtype=self.dtype)

    def augment(self, x, rng):
        """One image, randomly transformed with draws from ``rng``, then standardized."""
        x = np.array(x, dtype=self.dtype)
        return self.standardize(self.apply_transform(x, self._draw_transform(x.shape, rng)))

    def get_random_transform(self, img_shape, seed=None):
        """A random transformation for an image of ``img_shape``, as the dict
        ``apply_transform`` takes (drawn from ``seed`` when given)."""
        rng = random_generator() if seed is None else np.random.default_rng(seed)
        return self._draw_transform(img_shape, rng)

    def _draw_transform(self, img_shape, rng):
        height, width = img_shape[0], img_shape[1]
        low_zoom, high_zoom = self.zoom_range
        zx, zy = (1, 1) if low_zoom == high_zoom == 1 else rng.uniform(low_zoom, high_zoom, 2)
        return {
            "theta": rng.uniform(-self.rotation_range, self.rotation_range)
            if self.rotation_range else 0,
            "tx": _draw_shift(self.width_shift_range, width, rng),
            "ty": _draw_shift(self.height_shift_range, height, rng),
            "shear": rng.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0,
            "zx": zx,
            "zy": zy,
            "flip_horizontal": self.horizontal_flip and rng.random() < 0.5,
            "flip_vertical": self.vertical_flip and rng.random() < 0.5,
            "channel_shift_intensity": rng.uniform(-self.channel_shift_range,
                                                   self.channel_shift_range)
            if self.channel_shift_range else None,
            "brightness": rng.uniform(*self.brightness_range)
            if self.brightness_range is not None else None,
        }

    def apply_transform(self, x, transform_parameters):
        """The image ``x`` (height, width, channels) transformed as the dict
        says: 'theta' (rotation, degrees, counter-clockwise), 'tx' and 'ty'
        (shifts in pixels: the output at column c, row r shows the input at
        c + tx, r + ty), 'shear' (degrees), 'zx' and 'zy' (zoom: > 1 shows
        more of the image), 'flip_horizontal', 'flip_vertical',
        'channel_shift_intensity', 'brightness' (a factor); absent keys do
        nothing."""
        params = transform_parameters
        x = apply_affine_transform(
            x, params.get("theta", 0), params.get("tx", 0), params.get("ty", 0),
            params.get("shear", 0), params.get("zx", 1), params.get("zy", 1),
            row_axis=0, col_axis=1, channel_axis=2, fill_mode=self.fill_mode, cval=self.cval,
            order=self.interpolation_order)
        if params.get("channel_shift_intensity") is not None:
            x = np.clip(x + params["channel_shift_intensity"], x.min(), x.max())
        if params.get("flip_horizontal", False):
            x = x[:, ::-1]
        if params.get("flip_vertical", False):
            x = x[::-1]
        if params.get("brightness") is not None:
            x = _brightness(x, params["brightness"])
        return x

    def random_transform(self, x, seed=None):
        """``x`` under a random transformation (drawn from ``seed`` when given)."""
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def standardize(self, x):
        """Applies ``preprocessing_function``, ``rescale`` and the centring,
        scaling and whitening the generator was made with, in place where it
        can (as Keras), to an image or a batch; returns the result."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        for enabled, statistic in ((self.featurewise_center, self.mean),
                                   (self.featurewise_std_normalization, self.std),
                                   (self.zca_whitening, self.zca_whitening_matrix)):
            if enabled and statistic is None:
                warnings.warn("This ImageDataGenerator specifies feature-wise normalization or "
                              "ZCA whitening, but it hasn't been fit on any training data. Fit "
                              "it first by calling `.fit(numpy_data)`.", stacklevel=2)
        if self.featurewise_center and self.mean is not None:
            x -= self.mean
        if self.featurewise_std_normalization and self.std is not None:
            x /= self.std + 1e-6
        if self.zca_whitening and self.zca_whitening_matrix is not None:
            x = (x.reshape(-1, np.prod(x.shape[-3:])) @ self.zca_whitening_matrix).reshape(x.shape)
        return x

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Computes the feature-wise mean, standard deviation and ZCA matrix
        the generator needs from sample images ``x`` (n, height, width,
        channels), rescaled first, and randomly augmented ``rounds`` times
        over when ``augment``."""
        x = np.array(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"Input to `.fit()` should have rank 4. Got array with shape: "
                             f"{x.shape}")
        if self.rescale:
            x *= self.rescale
        if augment:
            rng = random_generator() if seed is None else np.random.default_rng(seed)
            x = np.stack([self.apply_transform(image, self._draw_transform(image.shape, rng))
                          for _ in range(check_int(rounds, "rounds")) for image in x])
        if self.featurewise_center:
            self.mean = x.mean(axis=(0, 1, 2)).reshape(1, 1, -1)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = x.std(axis=(0, 1, 2)).reshape(1, 1, -1)
            x /= self.std + 1e-6
        if self.zca_whitening:
            flat = x.reshape(len(x), -1)
            u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
            self.zca_whitening_matrix = (u * (np.sqrt(len(x)) / (s + self.zca_epsilon))) @ u.T


def _draw_shift(shift_range, size, rng):
    """A shift in pixels drawn as Keras does from ``*_shift_range`` for an
    axis of ``size`` pixels."""
    if not np.any(shift_range):
        return 0
    if isinstance(shift_range, (int, np.integer)):
        shift = rng.integers(shift_range) * rng.choice([-1, 1])
    elif isinstance(shift_range, (list, tuple, np.ndarray)):
        shift = rng.choice(shift_range) * rng.choice([-1, 1])
    else:
        shift = rng.uniform(-shift_range, shift_range)
    return shift * size if np.max(shift_range) < 1 else shift


def _brightness(x, factor):
    """``x`` with its brightness multiplied by ``factor`` and clipped to
    [0, 255] (an image outside that range is mapped into it and back)."""
    low, high = x.min(), x.max()
    outside = low < 0 or high > 255
    if outside:
        x = (x - low) / max(high - low, 1e-12) * 255
    x = np.clip(x * factor, 0, 255)
    return x / 255 * (high - low) + low if outside else x


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2,
                           channel_axis=0, fill_mode="nearest", cval=0.0, order=1):
    """The image ``x`` under an affine transform about its centre: output
    pixel p shows the input at centre + M (p - centre), with M the product
    rotation(theta) @ shift(tx, ty) @ shear(shear) @ zoom(zx, zy) in (column,
    row) coordinates (angles in degrees).  Sampled bilinearly (``order=1``)
    or at the nearest pixel (``order=0``); points outside the image are
    filled as ``fill_mode`` says ('constant': ``cval``; 'nearest': the edge
    pixel; 'reflect': mirrored about the edge, dcba|abcd|dcba; 'wrap':
    abcd|abcd|abcd).  The axes are Keras's defaults (channels first) unless
    given."""
    if sorted((row_axis, col_axis, channel_axis)) != [0, 1, 2]:
        raise ValueError("'row_axis', 'col_axis', and 'channel_axis' must be 0, 1 and 2 in some "
                         "order")
    if np.ndim(x) != 3:
        raise ValueError("Input arrays must be multi-channel 2D images.")
    check_choice(fill_mode, "fill_mode", FILL_MODES)
    check_choice(order, "order", (0, 1))
    matrix = np.eye(3)
    if theta:
        angle = np.deg2rad(theta)
        matrix = matrix @ [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                           [0, 0, 1]]
    if tx or ty:
        matrix = matrix @ [[1, 0, tx], [0, 1, ty], [0, 0, 1]]
    if shear:
        angle = np.deg2rad(shear)
        matrix = matrix @ [[1, -np.sin(angle), 0], [0, np.cos(angle), 0], [0, 0, 1]]
    if zx != 1 or zy != 1:
        matrix = matrix @ np.diag([zx, zy, 1.0])
    if np.array_equal(matrix, np.eye(3)):
        return x
    image = np.moveaxis(np.asarray(x), (row_axis, col_axis, channel_axis), (0, 1, 2))
    height, width = image.shape[:2]
    center = np.array([(width - 1) / 2, (height - 1) / 2])
    rows, cols = np.mgrid[0:height, 0:width]
    points = np.stack([cols - center[0], rows - center[1]])
    source = np.tensordot(matrix[:2, :2], points, axes=1) + (matrix[:2, 2] + center)[:, None, None]
    result = _resample(image, source[1], source[0], fill_mode, cval, order)
    return np.moveaxis(result.astype(image.dtype, copy=False), (0, 1, 2),
                       (row_axis, col_axis, channel_axis))


def _resample(image, rows, cols, fill_mode, cval, order):
    """``image`` (height, width, channels) sampled at the float positions
    ``rows``, ``cols`` (each (height, width))."""
    height, width = image.shape[:2]
    if order == 0:
        rows, cols = np.floor(rows + 0.5), np.floor(cols + 0.5)
        corners = [(rows, cols, np.ones_like(rows))]
        inside = (rows >= 0) & (rows <= height - 1) & (cols >= 0) & (cols <= width - 1)
    else:
        top, left = np.floor(rows), np.floor(cols)
        down, right = rows - top, cols - left
        corners = [(top, left, (1 - down) * (1 - right)), (top, left + 1, (1 - down) * right),
                   (top + 1, left, down * (1 - right)), (top + 1, left + 1, down * right)]
        tolerance = _EDGE_TOLERANCE
        inside = ((rows >= -tolerance) & (rows <= height - 1 + tolerance)
                  & (cols >= -tolerance) & (cols <= width - 1 + tolerance))
    result = np.zeros(image.shape, np.float64)
    for row, col, weight in corners:
        result += weight[..., None] * image[_fold(row, height, fill_mode),
                                            _fold(col, width, fill_mode)]
    if fill_mode == "constant":
        result[~inside] = cval
    return result


def _fold(index, size, fill_mode):
    """Integer pixel indices in [0, size) for the float indices ``index``."""
    index = index.astype(np.intp)
    if fill_mode == "reflect":
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    if fill_mode == "wrap":
        return np.mod(index, size)
    return np.clip(index, 0, size - 1)
