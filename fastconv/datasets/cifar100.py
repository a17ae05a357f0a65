"""CIFAR-100 small colour images, loaded as ``keras.datasets.cifar100.load_data`` does.

``load_data(label_mode='fine', path=None)`` takes the first of these sources
that holds the data (the search shared by all loaders, see
``fastconv.datasets._files``):

1. ``path``, when given (and then only ``path``).
2. ``$FASTCONV_DATA/cifar100``.
3. The cache directory ``cache_dir()``: ``$FASTCONV_CACHE_DIR/cifar100`` when
   that variable is set, else ``~/.fastconv/datasets/cifar100``.
4. Keras's own extracted copy, ``~/.keras/datasets/cifar-100-python`` or
   ``~/.keras/datasets/cifar-100-python-target`` (where Keras versions put
   it; ``$KERAS_HOME`` in place of ``~/.keras`` when set).
5. A download of ``cifar-100-python.tar.gz`` from ``MIRRORS`` (through the
   module attribute ``urlopen``), unpacked into the cache directory.

A source holds the data when it is, or contains, the directory
``cifar-100-python`` with the files ``train`` and ``test``, or the archive
``cifar-100-python.tar.gz``, which is then verified and unpacked (safely and
atomically) into the cache.  Verified: the archive's SHA-256 (as in Keras's
source), each batch's MD5 (as published by torchvision), then each batch's
structure, size and labels; the batches are unpickled by an unpickler that
refuses everything but numpy arrays.  A file that fails raises a
``ValueError`` naming it.
"""

import urllib.request

import numpy as np

from .._checks import check_choice
from . import _cifar

__all__ = ["load_data", "cache_dir"]

LABEL_MODES = ("fine", "coarse")
ARCHIVE = _cifar.Archive(
    name="cifar-100-python.tar.gz",
    sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    folder="cifar-100-python",
    train=(_cifar.Batch("train", 50000, "16019d7e3df5f24257cddd939b257f8d"),),
    test=(_cifar.Batch("test", 10000, "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
    label_classes={b"fine_labels": 100, b"coarse_labels": 20},
    label_dtype=np.int64,  # Keras reshapes the pickled lists of ints without a cast
)
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
urlopen = urllib.request.urlopen  # tests replace this to stay off the network

_DATASET = _cifar.make_dataset("cifar100", "CIFAR-100", ARCHIVE,
                               keras_paths=[ARCHIVE.folder, "cifar-100-python-target"])


def load_data(label_mode="fine", path=None):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images of shapes
    (50000, 32, 32, 3) and (10000, 32, 32, 3) (channels last), int64 labels
    of shapes (50000, 1) and (10000, 1): the 100 fine classes (0..99) when
    ``label_mode`` is 'fine', the 20 coarse superclasses (0..19) when it is
    'coarse'.

    Raises ValueError for another ``label_mode`` or when a file found is
    damaged or is not CIFAR-100's, ``fastconv.datasets.DatasetNotFoundError``
    (a FileNotFoundError) when no source holds the data and the download fails.
    """
    check_choice(label_mode, "label_mode", LABEL_MODES)
    return _cifar.load(_DATASET, ARCHIVE, MIRRORS, urlopen, path, f"{label_mode}_labels".encode())


def cache_dir():
    """Where CIFAR-100 is cached: ``$FASTCONV_CACHE_DIR/cifar100``, else
    ``~/.fastconv/datasets/cifar100``."""
    return _DATASET.cache_dir()
