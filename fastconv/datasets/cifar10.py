"""CIFAR-10 small colour images, loaded as ``keras.datasets.cifar10.load_data`` does.

``load_data(path=None)`` takes the first of these sources that holds the data
(the search shared by all loaders, see ``fastconv.datasets._files``):

1. ``path``, when given (and then only ``path``).
2. ``$FASTCONV_DATA/cifar10``.
3. The cache directory ``cache_dir()``: ``$FASTCONV_CACHE_DIR/cifar10`` when
   that variable is set, else ``~/.fastconv/datasets/cifar10``.
4. Keras's own extracted copy, ``~/.keras/datasets/cifar-10-batches-py``
   (``$KERAS_HOME`` in place of ``~/.keras`` when set).
5. A download of ``cifar-10-python.tar.gz`` from ``MIRRORS`` (through the
   module attribute ``urlopen``), unpacked into the cache directory.

A source holds the data when it is, or contains, the directory
``cifar-10-batches-py`` with the batch files of ``ARCHIVE``, or the archive
``cifar-10-python.tar.gz``, which is then verified and unpacked (safely and
atomically) into the cache.  Verified: the archive's SHA-256 (as in Keras's
source), each batch's MD5 (as published by torchvision), then each batch's
structure, size and labels; the batches are unpickled by an unpickler that
refuses everything but numpy arrays.  A file that fails raises a
``ValueError`` naming it.

Labels: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog,
7 horse, 8 ship, 9 truck.
"""

import urllib.request

import numpy as np

from . import _cifar

__all__ = ["load_data", "cache_dir"]

ARCHIVE = _cifar.Archive(
    name="cifar-10-python.tar.gz",
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    folder="cifar-10-batches-py",
    train=(_cifar.Batch("data_batch_1", 10000, "c99cafc152244af753f735de768cd75f"),
           _cifar.Batch("data_batch_2", 10000, "d4bba439e000b95fd0a9bffe97cbabec"),
           _cifar.Batch("data_batch_3", 10000, "54ebc095f3ab1f0389bbae665268c751"),
           _cifar.Batch("data_batch_4", 10000, "634d18415352ddfa80567beed471001a"),
           _cifar.Batch("data_batch_5", 10000, "482c414d41f54cd18b22e5b47cb7c3cb")),
    test=(_cifar.Batch("test_batch", 10000, "40351d587109b95175f43aff81a1287e"),),
    label_classes={b"labels": 10},
    label_dtype=np.uint8,
)
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
urlopen = urllib.request.urlopen  # tests replace this to stay off the network

_DATASET = _cifar.make_dataset("cifar10", "CIFAR-10", ARCHIVE, keras_paths=[ARCHIVE.folder])


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images of shapes
    (50000, 32, 32, 3) and (10000, 32, 32, 3) (channels last), uint8 labels
    in 0..9 of shapes (50000, 1) and (10000, 1).

    Raises ``fastconv.datasets.DatasetNotFoundError`` (a FileNotFoundError)
    when no source holds the data and the download fails, ValueError when a
    file found is damaged or is not CIFAR-10's.
    """
    return _cifar.load(_DATASET, ARCHIVE, MIRRORS, urlopen, path, b"labels")


def cache_dir():
    """Where CIFAR-10 is cached: ``$FASTCONV_CACHE_DIR/cifar10``, else
    ``~/.fastconv/datasets/cifar10``."""
    return _DATASET.cache_dir()
