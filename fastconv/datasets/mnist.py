"""MNIST handwritten digits, loaded as ``keras.datasets.mnist.load_data`` does.

``load_data(path=None)`` takes the first of these sources that holds the data
(the search shared by all loaders, see ``fastconv.datasets._files``):

1. ``path``, when given (and then only ``path``): a directory holding the
   four LeCun IDX files (see ``FILES``), each plain or gzipped with a ``.gz``
   suffix, or holding a Keras ``mnist.npz``; or the path of such an ``.npz``.
2. ``$FASTCONV_DATA/mnist``, then the directory named by ``FASTCONV_DATA``
   itself.
3. The cache directory ``cache_dir()``: ``$FASTCONV_CACHE_DIR/mnist`` when
   that variable is set, else ``~/.fastconv/datasets/mnist``.
4. Keras's own copy, ``~/.keras/datasets/mnist.npz`` (``$KERAS_HOME`` in
   place of ``~/.keras`` when set).
5. A download of the missing files from ``MIRRORS`` (tried in turn, through
   the module attribute ``urlopen``) into the cache directory.

Every array must have the standard MNIST shape, labels in 0..9, and the
SHA-256 in ``FILES`` (computed over the decompressed IDX content, so it is
the same for plain, gzipped and ``.npz`` copies); anything else raises a
``ValueError`` naming the file.  ``read_idx`` reads one IDX file of any size.
"""

import functools
import gzip
import hashlib
import math
import struct
import urllib.request
import zipfile
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np

from . import _files

__all__ = ["load_data", "read_idx", "cache_dir", "MNISTNotFoundError"]

MnistFile = namedtuple("MnistFile", "name shape sha256")
MnistFile.__doc__ = "IDX file name (without .gz), array shape and SHA-256 of the decompressed file."

# By the array names of Keras's mnist.npz.
FILES = {
    "x_train": MnistFile("train-images-idx3-ubyte", (60000, 28, 28),
                         "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "y_train": MnistFile("train-labels-idx1-ubyte", (60000,),
                         "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "x_test": MnistFile("t10k-images-idx3-ubyte", (10000, 28, 28),
                        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "y_test": MnistFile("t10k-labels-idx1-ubyte", (10000,),
                        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
IDX_UNSIGNED_BYTE = 0x08
urlopen = urllib.request.urlopen  # tests replace this to stay off the network


class MNISTNotFoundError(_files.DatasetNotFoundError):
    """MNIST is in none of the places ``load_data`` looks and cannot be downloaded."""


_DATASET = _files.Dataset(
    "mnist", "MNIST",
    contents=f"the files {', '.join(spec.name for spec in FILES.values())} (each may be gzipped, "
             f"with a .gz suffix), or a Keras mnist.npz,",
    keras_paths=["mnist.npz"], error=MNISTNotFoundError, flat_data_dir=True)


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    Raises MNISTNotFoundError when no source holds the data and the download
    fails, ValueError when a file found is damaged or is not MNIST.
    """
    arrays = _DATASET.load(path, _load_from, _download_missing)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def read_idx(path):
    """The uint8 array stored in an IDX file (gzipped when the name ends in .gz).

    Raises ValueError naming the file when its magic number is not that of
    unsigned-byte IDX data, when it holds fewer or more bytes than its header
    announces, or when its gzip stream is damaged.
    """
    path = Path(path)
    open_file = gzip.open if path.suffix == ".gz" else open
    try:
        with open_file(path, "rb") as stream:
            content = stream.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: damaged gzip data ({exc})") from None
    if len(content) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(content)} bytes)")
    zeros, data_type, ndim = struct.unpack_from(">HBB", content)
    if zeros != 0 or data_type != IDX_UNSIGNED_BYTE or ndim == 0:
        raise ValueError(f"{path}: bad magic number 0x{content[:4].hex()}, expected unsigned-byte "
                         f"IDX data (0x00000801 for labels, 0x00000803 for images)")
    data_start = 4 + 4 * ndim
    if len(content) < data_start:
        raise ValueError(f"{path}: header truncated, {ndim} dimensions announced")
    shape = struct.unpack_from(f">{ndim}I", content, 4)
    data_size, data_needed = len(content) - data_start, math.prod(shape)
    if data_size != data_needed:
        problem = "truncated" if data_size < data_needed else "has trailing bytes"
        raise ValueError(f"{path}: data {problem}: shape {shape} needs {data_needed} bytes, "
                         f"found {data_size}")
    return np.frombuffer(content, np.uint8, offset=data_start).reshape(shape).copy()


def cache_dir():
    """Where MNIST is cached: ``$FASTCONV_CACHE_DIR/mnist``, else ``~/.fastconv/datasets/mnist``."""
    return _DATASET.cache_dir()


def _load_from(location):
    """The verified arrays, by Keras name, stored at ``location`` (an .npz file, or a
    directory of IDX files or with mnist.npz); None when it holds no MNIST."""
    if location.is_file():
        return _read_npz(location)
    idx_paths = _idx_paths(location)
    if len(idx_paths) == len(FILES):
        paths = {key: idx_paths[spec.name] for key, spec in FILES.items()}
        return _verified({key: read_idx(path) for key, path in paths.items()}, paths)
    if (location / "mnist.npz").is_file():
        return _read_npz(location / "mnist.npz")
    return None


def _idx_paths(directory):
    """The path of each MNIST IDX file present in ``directory``, plain or gzipped, by file name."""
    found = {}
    for spec in FILES.values():
        for candidate in (directory / spec.name, directory / f"{spec.name}.gz"):
            if candidate.is_file():
                found[spec.name] = candidate
                break
    return found


def _read_npz(path):
    """The verified arrays, by name, of a Keras-style mnist.npz; ValueError
    naming the file if it is not one."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive; pass an .npz file or a directory")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in FILES if key in archive.files}
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError) as exc:
        raise ValueError(f"{path}: damaged .npz archive ({exc})") from None
    missing = [key for key in FILES if key not in arrays]
    if missing:
        raise ValueError(f"{path}: no array named {', '.join(missing)}")
    return _verified(arrays, {key: f"{path}[{key}]" for key in FILES})


def _verified(arrays, sources):
    """``arrays`` once each has the shape, labels and SHA-256 given in ``FILES``;
    otherwise ValueError naming the offending array's source (from ``sources``)."""
    for key, array in arrays.items():
        spec = FILES[key]
        source = sources[key]
        if array.dtype != np.uint8 or array.shape != spec.shape:
            raise ValueError(f"{source}: holds {array.dtype} data of shape {array.shape}, "
                             f"MNIST's {spec.name} is uint8 of shape {spec.shape}")
        if array.ndim == 1 and array.max(initial=0) > 9:  # the label files
            raise ValueError(f"{source}: labels outside 0..9")
        digest = _idx_sha256(array)
        if digest != spec.sha256:
            raise ValueError(f"{source}: SHA-256 of the content is {digest}, "
                             f"MNIST's {spec.name} has {spec.sha256}")
    return arrays


def _idx_sha256(array):
    """SHA-256 of ``array`` encoded as an unsigned-byte IDX file (header, then the bytes)."""
    digest = hashlib.sha256(struct.pack(f">HBB{array.ndim}I", 0, IDX_UNSIGNED_BYTE, array.ndim,
                                        *array.shape))
    digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def _download_missing():
    """Download into the cache directory each MNIST IDX file it lacks,
    verified, as ``<name>.gz``."""
    present = _idx_paths(cache_dir())
    for spec in FILES.values():
        if spec.name not in present:
            _DATASET.download(f"{spec.name}.gz", MIRRORS, functools.partial(_check_download, spec),
                              urlopen)


def _check_download(spec, path):
    """ValueError unless the gzipped file at ``path`` decompresses to ``spec``'s
    content (decompressing no more than that content's size)."""
    content = _files.read_gzip(path, 4 + 4 * len(spec.shape) + math.prod(spec.shape))
    _files.check_digest(hashlib.sha256(content).hexdigest(), spec.sha256, of="content")
