"""``image_dataset_from_directory``: a ``Dataset`` of image files, labelled by
their class subfolders, as Keras 3's ``keras.utils.image_dataset_from_directory``."""

import os

import numpy as np

from . import image_utils
from ._checks import as_pair, check_choice, check_int
from .dataset import AUTOTUNE, Dataset

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Keras's names of resizing methods -> Pillow's filters (which antialias when
# downscaling, as tf.image.resize(antialias=True)).
INTERPOLATIONS = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic",
                  "area": "box", "lanczos3": "lanczos"}
LABEL_MODES = ("int", "categorical", "binary", None)


def list_image_files(directory, formats, follow_links=False):
    """Paths relative to ``directory`` of the files below it whose names end
    with one of ``formats`` (any case), folder by folder in sorted order."""
    found = []
    walk = sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0])
    for root, _, files in walk:
        found += [os.path.relpath(os.path.join(root, name), directory)
                  for name in sorted(files) if name.lower().endswith(formats)]
    return found


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True):
    """A ``Dataset`` of the images in ``directory``, with Keras 3's arguments.

    With ``labels='inferred'`` each subfolder is a class (alphabetical order,
    or the order of ``class_names``); ``labels`` may instead be a list of
    integer labels, one per file in sorted path order, or None.  Elements are
    ``(images, labels)`` batches of ``batch_size`` (single samples for None):
    images float32 ``(batch, height, width, channels)`` in [0, 255] with 1, 3
    or 4 channels for ``color_mode`` 'grayscale', 'rgb' or 'rgba'; labels int32
    ``(batch,)`` for ``label_mode='int'``, float32 one-hot ``(batch, classes)``
    for 'categorical', float32 ``(batch, 1)`` for 'binary'; images alone for
    ``label_mode=None``.  Files are .bmp, .gif (first frame), .jpeg, .jpg and
    .png, decoded while the dataset is iterated (in the prefetch thread) and
    resized to ``image_size`` with ``interpolation`` ('bilinear', 'nearest',
    'bicubic', 'area' or 'lanczos3'), optionally cropped or padded to its
    aspect ratio first.  ``validation_split`` with ``subset`` 'training',
    'validation' or 'both' (a pair of datasets) keeps the last fraction of
    the shuffled files for validation; shuffling with a split needs a
    ``seed``.  The dataset has ``class_names`` and ``file_paths``.
    """
    image_utils.pil_image()  # fail now, not when the dataset is read, without Pillow
    interpolation, image_size = _check_arguments(
        labels, label_mode, class_names, color_mode, image_size, interpolation,
        crop_to_aspect_ratio, pad_to_aspect_ratio, data_format)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    _check_validation_split(validation_split, subset, shuffle, seed)
    if seed is None:
        from .utils import random_generator
        seed = int(random_generator().integers(1_000_000))
    if labels is None or label_mode is None:
        labels = label_mode = None

    paths, labels, class_names = _index_directory(directory, labels, class_names, follow_links,
                                                  verbose)
    if shuffle:  # globally, as Keras: one seed orders paths and labels alike
        np.random.RandomState(seed).shuffle(paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f'When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    targets = None if labels is None else _encode_labels(labels, label_mode, len(class_names))

    def load(path):
        return _load_image(path, image_size, color_mode, interpolation, crop_to_aspect_ratio,
                           pad_to_aspect_ratio)

    def make_dataset(part, shuffled):
        part_paths, part_targets = _split(paths, targets, validation_split, part)
        if not part_paths:
            which = f"{part} " if subset == "both" else ""
            raise ValueError(f"No {which}images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        if part_targets is None:
            dataset = Dataset.from_tensor_slices(np.array(part_paths))
        else:
            dataset = Dataset.from_tensor_slices((np.array(part_paths), part_targets))
        if shuffled:
            dataset = dataset.shuffle(8 * batch_size if batch_size else 1024, seed=seed)
        if part_targets is None:
            dataset = dataset.map(load)
        else:
            dataset = dataset.map(lambda path, target: (load(path), target))
        if batch_size is not None:
            dataset = dataset.batch(batch_size)
        dataset = dataset.prefetch(AUTOTUNE)
        dataset.class_names = class_names
        dataset.file_paths = part_paths
        return dataset

    if subset == "both":
        return make_dataset("training", shuffle), make_dataset("validation", False)
    return make_dataset(subset, shuffle)


def _check_arguments(labels, label_mode, class_names, color_mode, image_size, interpolation,
                     crop_to_aspect_ratio, pad_to_aspect_ratio, data_format):
    """Keras's checks; returns (Pillow's interpolation, (height, width))."""
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of the "
                             "same size as the number of image files in the target directory. "
                             "Pass `labels=\"inferred\"` to infer them from the subdirectory "
                             f"names, or `labels=None` for images only. Received: labels={labels}")
        if class_names:
            raise ValueError(f'You can only pass `class_names` if `labels="inferred"`. '
                             f"Received: labels={labels}, and class_names={class_names}")
    check_choice(label_mode, "label_mode", LABEL_MODES)
    check_choice(color_mode, "color_mode", image_utils.COLOR_MODES)
    name = interpolation.lower() if isinstance(interpolation, str) else interpolation
    if name not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of "
                         f"{', '.join(repr(known) for known in INTERPOLATIONS)} (Keras's "
                         f"'lanczos5', 'gaussian' and 'mitchellcubic' have no Pillow filter), "
                         f"got {interpolation!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be "
                         "set to `True`.")
    if data_format not in (None, "channels_last"):
        raise ValueError(f"fastconv supports only data_format='channels_last', "
                         f"got {data_format!r}")
    return INTERPOLATIONS[name], as_pair(image_size, "image_size")


def _check_validation_split(validation_split, subset, shuffle, seed):
    """Keras's checks of validation_split and subset."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, "
                         f"received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    check_choice(subset, "subset", ("training", "validation", "both", None))
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide "
                         "a `seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")


def _index_directory(directory, labels, class_names, follow_links, verbose):
    """(file paths, int32 labels or None, class names or None), as Keras's
    ``index_directory``, printing what it found."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No such directory: {os.fspath(directory)!r}")
    if labels == "inferred":
        subdirs = sorted(name for name in os.listdir(directory)
                         if os.path.isdir(os.path.join(directory, name))
                         and not name.startswith("."))
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 "subdirectories of the target directory. Expected: "
                                 f"{subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)
        files, indices = [], []
        for index, subdir in enumerate(subdirs):
            found = list_image_files(os.path.join(directory, subdir), ALLOWLIST_FORMATS,
                                     follow_links)
            files += [os.path.join(subdir, name) for name in found]
            indices += [index] * len(found)
        labels, class_names = np.array(indices, dtype=np.int32), subdirs
    else:
        files = list_image_files(directory, ALLOWLIST_FORMATS, follow_links)
        if labels is not None:
            if len(labels) != len(files):
                raise ValueError(f"Expected the lengths of `labels` to match the number of files "
                                 f"in the target directory. len(labels) is {len(labels)} while "
                                 f"we found {len(files)} files in directory {directory}.")
            class_names = [str(label) for label in sorted(set(labels))]
            labels = np.array(labels, dtype=np.int32)
    if verbose:
        if labels is None:
            print(f"Found {len(files)} files.")
        else:
            print(f"Found {len(files)} files belonging to {len(class_names)} classes.")
    return [os.path.join(directory, name) for name in files], labels, class_names


def _encode_labels(labels, label_mode, num_classes):
    """int32 labels as label_mode asks: themselves, float32 one-hot, or float32 (n, 1)."""
    if label_mode == "categorical":
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}) for label_mode="
                             f"'categorical', got values from {labels.min()} to {labels.max()}")
        return np.eye(num_classes, dtype=np.float32)[labels]
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    return labels


def _split(paths, targets, validation_split, subset):
    """The training part (first) or validation part (last ``validation_split``)
    of the files, announced as Keras does."""
    if not validation_split:
        return paths, targets
    num_val = int(validation_split * len(paths))
    if subset == "training":
        print(f"Using {len(paths) - num_val} files for training.")
        part = slice(0, len(paths) - num_val)
    else:
        print(f"Using {num_val} files for validation.")
        part = slice(len(paths) - num_val, len(paths))
    return paths[part], None if targets is None else targets[part]


def _load_image(path, image_size, color_mode, interpolation, crop_to_aspect_ratio,
                pad_to_aspect_ratio):
    """The image file at ``path`` as float32 (height, width, channels),
    resized (in float, band by band) to ``image_size``."""
    img = image_utils.open_image(str(path), color_mode)
    height, width = image_size
    box, fit = None, (width, height)
    if crop_to_aspect_ratio:
        box = image_utils.center_crop_box(*img.size, width, height)
    elif pad_to_aspect_ratio:
        ratio = max(img.size[0] / width, img.size[1] / height)
        fit = (max(int(img.size[0] / ratio), 1), max(int(img.size[1] / ratio), 1))
    resample = image_utils.pil_resample(interpolation)
    bands = [band.convert("F") for band in img.split()]
    if fit != img.size or box is not None:
        bands = [band.resize(fit, resample, box=box) for band in bands]
    pixels = np.stack([np.asarray(band, dtype=np.float32) for band in bands], axis=-1)
    if fit == (width, height):
        return pixels
    padded = np.zeros((height, width, pixels.shape[2]), np.float32)
    top, left = (height - fit[1]) // 2, (width - fit[0]) // 2
    padded[top:top + fit[1], left:left + fit[0]] = pixels
    return padded
