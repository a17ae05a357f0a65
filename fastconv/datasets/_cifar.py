"""What the CIFAR-10 and CIFAR-100 loaders share: the archive description,
reading the pickled batch files safely, and the search for the data.

A location holds a CIFAR dataset when it is (or contains) the directory the
archive unpacks to, holding every batch file, or when it is (or contains)
the archive itself, which is then verified and unpacked into the cache.
Verified: the archive's SHA-256 as in Keras's source, each batch file's MD5
as published by torchvision (torchvision/datasets/cifar.py), then the
structure, size and label range of every batch.
"""

import functools
import pickle
from collections import namedtuple

import numpy as np

from . import _files

Batch = namedtuple("Batch", "name count md5")
Batch.__doc__ = "A batch file of a CIFAR archive: its name, how many images it holds, its MD5."

Archive = namedtuple("Archive", "name sha256 folder train test label_classes label_dtype")
Archive.__doc__ = (
    "A CIFAR archive: its file name and SHA-256, the directory it unpacks to, "
    "the training and test ``Batch`` tuples, the number of classes by label "
    "key (e.g. ``{b'labels': 10}``) and the dtype of the labels returned.")

IMAGE_SIZE = 32
CHANNELS = 3
ROW_LENGTH = CHANNELS * IMAGE_SIZE * IMAGE_SIZE

# The batches are pickled dicts of bytes, lists and numpy arrays.  Rebuilding
# an array takes exactly these globals (numpy 1 names its module
# numpy.core.multiarray, numpy 2 numpy._core.multiarray); they are mapped to
# the running numpy's objects and every other global is refused.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else callable,
    so a malicious batch file cannot run code."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}") from None


def make_dataset(name, title, archive, keras_paths):
    """The ``_files.Dataset`` of ``archive``, cached under ``name``."""
    batch_names = ", ".join(batch.name for batch in archive.train + archive.test)
    return _files.Dataset(name, title, keras_paths=keras_paths, contents=(
        f"the archive {archive.name}, or the directory {archive.folder} unpacked from it "
        f"(holding {batch_names}),"))


def load(dataset, archive, mirrors, urlopen, path, label_key):
    """``(x_train, y_train), (x_test, y_test)`` of ``archive``, found by
    ``dataset`` (a ``_files.Dataset``) or downloaded from ``mirrors``.

    Images are uint8 of shape (n, 32, 32, 3) (channels last, as Keras's
    default data format); labels, those under ``label_key``, have shape
    (n, 1) and dtype ``archive.label_dtype``.
    """
    return dataset.load(path, functools.partial(_read, dataset, archive, label_key),
                        functools.partial(_download, dataset, archive, mirrors, urlopen))


def read_batch(path, label_key):
    """``(data, labels)`` of a CIFAR python batch file: ``data`` uint8 of shape
    (n, 3072), each row the red, green then blue 32x32 planes in row-major
    order; ``labels`` int64 of shape (n,), those stored under ``label_key``.

    Raises ValueError naming the file when it is not such a batch, including
    when its pickle refers to anything but numpy array reconstruction.
    """
    with open(path, "rb") as stream:
        try:
            batch = _BatchUnpickler(stream, encoding="bytes").load()
        except Exception as exc:  # a damaged pickle can fail in many ways
            raise ValueError(f"{path}: not a readable CIFAR batch "
                             f"({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(f"{path}: not a CIFAR batch (a dict with the keys b'data' and "
                         f"{label_key!r})")
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == ROW_LENGTH):
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (n, {ROW_LENGTH}), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} of shape "
                         f"{getattr(data, 'shape', None)}")
    labels = batch[label_key]
    if not (isinstance(labels, list) and all(type(label) is int for label in labels)
            and len(labels) == len(data)):
        raise ValueError(f"{path}: {label_key!r} must be a list of {len(data)} ints, one per image")
    return data, np.array(labels, np.int64)


def _read(dataset, archive, label_key, location):
    """The arrays of ``archive`` at ``location`` (see the module docstring); None if it has none."""
    folder = _batch_folder(location, archive)
    if folder is None:
        tarball = location if location.is_file() else location / archive.name
        if not tarball.is_file():
            return None
        _files.check_file(tarball, archive.sha256)
        folder = dataset.cache_dir() / archive.folder
        _files.extract_tar(tarball, archive.folder, folder)
    read_split = functools.partial(_read_split, folder, archive, label_key)
    return read_split(archive.train), read_split(archive.test)


def _batch_folder(location, archive):
    """``location``, or its subdirectory ``archive.folder``, when it holds every batch file."""
    for folder in (location, location / archive.folder):
        if all((folder / batch.name).is_file() for batch in archive.train + archive.test):
            return folder
    return None


def _read_split(folder, archive, label_key, batches):
    """``(images, labels)`` of the verified ``batches`` in ``folder``, in order."""
    total = sum(batch.count for batch in batches)
    images = np.empty((total, IMAGE_SIZE, IMAGE_SIZE, CHANNELS), np.uint8)
    labels = np.empty((total, 1), archive.label_dtype)
    classes = archive.label_classes[label_key]
    start = 0
    for batch in batches:
        path = folder / batch.name
        _files.check_file(path, batch.md5, "md5")
        data, batch_labels = read_batch(path, label_key)
        if len(data) != batch.count:
            raise ValueError(f"{path}: holds {len(data)} images, expected {batch.count}")
        if batch_labels.min(initial=0) < 0 or batch_labels.max(initial=0) >= classes:
            raise ValueError(f"{path}: {label_key!r} outside 0..{classes - 1}")
        stop = start + batch.count
        images[start:stop] = data.reshape(-1, CHANNELS, IMAGE_SIZE,
                                          IMAGE_SIZE).transpose(0, 2, 3, 1)
        labels[start:stop, 0] = batch_labels
        start = stop
    return images, labels


def _download(dataset, archive, mirrors, urlopen):
    """Download ``archive`` (verified) and unpack it into the cache directory."""
    tarball = dataset.download(archive.name, mirrors, _files.verify_digest(archive.sha256), urlopen)
    try:
        _files.extract_tar(tarball, archive.folder, dataset.cache_dir() / archive.folder)
    finally:
        tarball.unlink()
