"""Fashion-MNIST (Zalando's article images), loaded as
``keras.datasets.fashion_mnist.load_data`` does.

``load_data(path=None)`` takes the first of these sources that holds the data
(the search shared by all loaders, see ``fastconv.datasets._files``):

1. ``path``, when given (and then only ``path``).
2. ``$FASTCONV_DATA/fashion_mnist``.
3. The cache directory ``cache_dir()``: ``$FASTCONV_CACHE_DIR/fashion_mnist``
   when that variable is set, else ``~/.fastconv/datasets/fashion_mnist``.
4. Keras's own copy, ``~/.keras/datasets/fashion-mnist`` (``$KERAS_HOME`` in
   place of ``~/.keras`` when set).
5. A download of the missing files from ``MIRRORS`` (tried in turn, through
   the module attribute ``urlopen``) into the cache directory.

A source holds the data when it is a directory with the four gzipped IDX
files of ``FILES``, named as published.  Verified: each ``.gz`` file must
have the SHA-256 that Keras's own loader checks (keras/src/datasets/
fashion_mnist.py; the Fashion-MNIST README publishes MD5s of the same
files); then its IDX header must be valid and announce the shape in
``FILES``.  No checksum of the decompressed files is published, so plain
(gunzipped) copies are not accepted.  A file that fails raises a
``ValueError`` naming it.

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.
"""

import urllib.request
from collections import namedtuple

from . import _files
from .mnist import read_idx

__all__ = ["load_data", "cache_dir"]

FashionFile = namedtuple("FashionFile", "name shape sha256")
FashionFile.__doc__ = "Gzipped IDX file name, array shape and SHA-256 of the .gz file."

# By Keras's array names; the SHA-256s are those in Keras's source.
FILES = {
    "x_train": FashionFile("train-images-idx3-ubyte.gz", (60000, 28, 28),
                           "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "y_train": FashionFile("train-labels-idx1-ubyte.gz", (60000,),
                           "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "x_test": FashionFile("t10k-images-idx3-ubyte.gz", (10000, 28, 28),
                          "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "y_test": FashionFile("t10k-labels-idx1-ubyte.gz", (10000,),
                          "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}
MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the README's
)
urlopen = urllib.request.urlopen  # tests replace this to stay off the network

_DATASET = _files.Dataset(
    "fashion_mnist", "Fashion-MNIST",
    contents=f"the gzipped files {', '.join(spec.name for spec in FILES.values())}",
    keras_paths=["fashion-mnist"])


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,); labels in 0..9.

    Raises ``fastconv.datasets.DatasetNotFoundError`` (a FileNotFoundError)
    when no source holds the data and the download fails, ValueError when a
    file found is damaged or is not Fashion-MNIST's.
    """
    arrays = _DATASET.load(path, _load_from, _download_missing)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def cache_dir():
    """Where Fashion-MNIST is cached: ``$FASTCONV_CACHE_DIR/fashion_mnist``,
    else ``~/.fastconv/datasets/fashion_mnist``."""
    return _DATASET.cache_dir()


def _load_from(directory):
    """The verified arrays, by Keras name, of the four files in ``directory``;
    None unless all four are there."""
    paths = {key: directory / spec.name for key, spec in FILES.items()}
    if not all(path.is_file() for path in paths.values()):
        return None
    arrays = {}
    for key, path in paths.items():
        spec = FILES[key]
        _files.check_file(path, spec.sha256)
        arrays[key] = read_idx(path)
        if arrays[key].shape != spec.shape:
            raise ValueError(f"{path}: holds data of shape {arrays[key].shape}, "
                             f"Fashion-MNIST's {spec.name} has shape {spec.shape}")
    return arrays


def _download_missing():
    """Download into the cache directory each file of ``FILES`` it lacks, verified."""
    for spec in FILES.values():
        if not (cache_dir() / spec.name).is_file():
            _DATASET.download(spec.name, MIRRORS, _files.verify_digest(spec.sha256), urlopen)
