"""Tests of fastconv.datasets on tiny generated files in the real formats; no
test reaches the internet."""

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import re
import struct
import tarfile
import threading
import tracemalloc
import urllib.error
import urllib.request

import numpy as np
import pytest

import fastconv.datasets
from fastconv.datasets import _files, cifar10, cifar100, fashion_mnist, mnist

REAL_MNIST_DIR = os.environ.get("FASTCONV_MNIST_DIR")
TINY_COUNTS = {"train": 6, "test": 4}


def idx_bytes(array):
    """``array`` (uint8) encoded as an IDX file."""
    header = struct.pack(f">I{array.ndim}I", 0x800 | array.ndim, *array.shape)
    return header + array.tobytes()


def write_idx(path, array, gzipped):
    """Write ``array`` as an IDX file at ``path`` (plus .gz when gzipped); return the path."""
    if gzipped:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(idx_bytes(array)))
    else:
        path.write_bytes(idx_bytes(array))
    return path


def write_mnist_dir(directory, arrays, gzipped=True):
    """Write ``arrays`` (by Keras name) into ``directory`` as the four MNIST IDX files."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(directory / mnist.FILES[key].name, array, gzipped)
    return directory


def corrupted(arrays):
    """A copy of ``arrays`` with one pixel and one label changed, keeping shapes and label range."""
    changed = {key: array.copy() for key, array in arrays.items()}
    for key in changed:
        changed[key].flat[0] = (changed[key].flat[0] + 1) % 10
    return changed


def refuse_network(url, timeout=None):
    """Stand-in for urlopen that fails the test."""
    raise AssertionError(f"test tried to reach the network: {url}")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the real home, cache, FASTCONV_DATA and network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    for loader in (mnist, fashion_mnist, cifar10, cifar100):
        monkeypatch.setattr(loader, "urlopen", refuse_network)


def tiny_arrays():
    """A tiny MNIST-like dataset by Keras name: 6 training and 4 test images."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in TINY_COUNTS.items():
        arrays[f"x_{split}"] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, count, dtype=np.uint8)
    return arrays


@pytest.fixture
def tiny(monkeypatch):
    """``tiny_arrays()``, made the expected dataset by patching mnist.FILES."""
    arrays = tiny_arrays()
    monkeypatch.setattr(mnist, "FILES", {
        key: mnist.MnistFile(spec.name, arrays[key].shape,
                             hashlib.sha256(idx_bytes(arrays[key])).hexdigest())
        for key, spec in mnist.FILES.items()})
    return arrays


def assert_loaded(result, arrays):
    """``result`` of load_data holds exactly ``arrays``."""
    (x_train, y_train), (x_test, y_test) = result
    for key, loaded in zip(("x_train", "y_train", "x_test", "y_test"),
                           (x_train, y_train, x_test, y_test)):
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, arrays[key])


# --- read_idx ---------------------------------------------------------------

@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("shape", [(3, 28, 28), (3,), (2, 3, 4)])
def test_read_idx_round_trips(tmp_path, gzipped, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    loaded = mnist.read_idx(write_idx(tmp_path / "data-idx", array, gzipped))
    assert loaded.dtype == np.uint8 and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("content, problem", [
    (struct.pack(">II", 0x00000D01, 1) + b"\0\0\0\0", "bad magic number 0x00000d01"),
    (struct.pack(">II", 0x01000801, 1) + b"\0", "bad magic number 0x01000801"),
    (b"\0\0", "too short"),
    (struct.pack(">II", 0x803, 2), "header truncated"),
    (struct.pack(">II", 0x801, 5) + bytes(4), "truncated: shape (5,) needs 5 bytes, found 4"),
    (struct.pack(">II", 0x801, 5) + bytes(6), "trailing bytes"),
])
@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_rejects_malformed_files(tmp_path, content, problem, gzipped):
    path = tmp_path / ("bad-idx.gz" if gzipped else "bad-idx")
    path.write_bytes(gzip.compress(content) if gzipped else content)
    with pytest.raises(ValueError, match="bad-idx") as caught:
        mnist.read_idx(path)
    assert problem in str(caught.value)


@pytest.mark.parametrize("damage", [
    lambda packed: b"not gzip at all",
    lambda packed: packed[: len(packed) // 2],
    lambda packed: packed[:-8] + bytes(8),  # wrong CRC and size
])
def test_read_idx_rejects_damaged_gzip(tmp_path, damage):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(damage(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8) % 10))))
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte\.gz: damaged gzip data"):
        mnist.read_idx(path)


# --- load_data from local files ---------------------------------------------

@pytest.mark.parametrize("gzipped", [False, True])
def test_load_data_reads_an_idx_directory(tmp_path, tiny, gzipped):
    assert_loaded(mnist.load_data(write_mnist_dir(tmp_path / "idx", tiny, gzipped)), tiny)


def test_load_data_reads_npz_file_and_directory(tmp_path, tiny):
    (tmp_path / "npz").mkdir()
    np.savez_compressed(tmp_path / "npz" / "mnist.npz", **tiny)
    assert_loaded(mnist.load_data(tmp_path / "npz" / "mnist.npz"), tiny)
    assert_loaded(mnist.load_data(str(tmp_path / "npz")), tiny)


def test_load_data_rejects_npz_missing_an_array(tmp_path, tiny):
    np.savez(tmp_path / "mnist.npz", **{key: tiny[key] for key in ("x_train", "y_train", "x_test")})
    with pytest.raises(ValueError, match=r"mnist\.npz: no array named y_test"):
        mnist.load_data(tmp_path / "mnist.npz")


def test_load_data_rejects_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"plain text")
    with pytest.raises(ValueError, match="not an .npz archive"):
        mnist.load_data(path)


def test_load_data_insists_on_the_standard_layout(tmp_path):
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: .*shape \(6, 28, 28\)"):
        mnist.load_data(write_mnist_dir(tmp_path / "idx", tiny_arrays()))


def test_load_data_rejects_mismatched_label_count(tmp_path, tiny):
    arrays = dict(tiny, y_test=tiny["y_test"][:-1])
    with pytest.raises(ValueError,
                       match=r"t10k-labels-idx1-ubyte\.gz: .*shape \(3,\).*shape \(4,\)"):
        mnist.load_data(write_mnist_dir(tmp_path / "idx", arrays))


def test_load_data_rejects_labels_outside_0_to_9(tmp_path, tiny):
    arrays = dict(tiny, y_train=np.full_like(tiny["y_train"], 10))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: labels outside 0\.\.9"):
        mnist.load_data(write_mnist_dir(tmp_path / "idx", arrays))


@pytest.mark.parametrize("fmt", ["idx", "npz"])
def test_load_data_rejects_content_with_the_wrong_checksum(tmp_path, tiny, fmt):
    if fmt == "idx":
        location = write_mnist_dir(tmp_path / "idx", corrupted(tiny), gzipped=False)
    else:
        location = tmp_path / "mnist.npz"
        np.savez(location, **corrupted(tiny))
    with pytest.raises(ValueError, match="SHA-256 of the content is"):
        mnist.load_data(location)


def test_explicit_path_without_data_is_an_error_with_advice(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(write_mnist_dir(tmp_path / "env", tiny)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(mnist.MNISTNotFoundError, match="t10k-labels-idx1-ubyte") as caught:
        mnist.load_data(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(caught.value)


# --- where load_data looks, in order ----------------------------------------

def test_explicit_path_comes_before_fastconv_data(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(write_mnist_dir(tmp_path / "env", corrupted(tiny))))
    assert_loaded(mnist.load_data(write_mnist_dir(tmp_path / "explicit", tiny)), tiny)


def test_fastconv_data_comes_before_the_cache(tmp_path, tiny, monkeypatch):
    write_mnist_dir(mnist.cache_dir(), corrupted(tiny))
    monkeypatch.setenv("FASTCONV_DATA", str(write_mnist_dir(tmp_path / "env", tiny)))
    assert_loaded(mnist.load_data(), tiny)


def test_cache_is_used_when_fastconv_data_lacks_the_data(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "nothing-here"))
    write_mnist_dir(mnist.cache_dir(), tiny, gzipped=False)
    assert mnist.cache_dir() == tmp_path / "cache" / "mnist"
    assert_loaded(mnist.load_data(), tiny)


def test_cache_defaults_to_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTCONV_CACHE_DIR")
    assert mnist.cache_dir() == tmp_path / "home" / ".fastconv" / "datasets" / "mnist"


@pytest.mark.parametrize("keras_home", [None, "custom-keras"])
def test_keras_copy_is_reused(tmp_path, tiny, monkeypatch, keras_home):
    keras_dir = tmp_path / "home" / ".keras"
    if keras_home:
        keras_dir = tmp_path / keras_home
        monkeypatch.setenv("KERAS_HOME", str(keras_dir))
    (keras_dir / "datasets").mkdir(parents=True)
    np.savez(keras_dir / "datasets" / "mnist.npz", **tiny)
    assert_loaded(mnist.load_data(), tiny)


# --- downloads --------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory without logging each request."""

    def log_message(self, format, *args):
        pass


def local_only_urlopen(url, timeout=None):
    """urlopen restricted to 127.0.0.1, ignoring proxy settings, with a short timeout."""
    assert url.startswith("http://127.0.0.1:"), url
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5)


@pytest.fixture
def http_mirror(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/served``: yields
    (directory, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    monkeypatch.setattr(mnist, "urlopen", local_only_urlopen)
    try:
        yield served, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def cached_files():
    """Names of the files in the cache directory (none when it does not exist)."""
    directory = mnist.cache_dir()
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_download_tries_mirrors_in_turn_and_caches_atomically(tiny, http_mirror, monkeypatch):
    served, base_url = http_mirror
    write_mnist_dir(served / "corrupt", corrupted(tiny))
    write_mnist_dir(served / "good", tiny)
    monkeypatch.setattr(mnist, "MIRRORS",
                        (base_url + "absent/", base_url + "corrupt/", base_url + "good/"))
    replacements = []
    real_replace = os.replace

    def recording_replace(source, destination):
        replacements.append((os.path.dirname(source), os.fspath(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    assert_loaded(mnist.load_data(), tiny)
    expected = sorted(f"{spec.name}.gz" for spec in mnist.FILES.values())
    assert cached_files() == expected
    cache = os.fspath(mnist.cache_dir())
    assert sorted(replacements) == [(cache, os.path.join(cache, name)) for name in expected]
    monkeypatch.setattr(mnist, "urlopen", refuse_network)
    assert_loaded(mnist.load_data(), tiny)


def test_download_downloads_only_missing_files(tiny, http_mirror, monkeypatch):
    served, base_url = http_mirror
    write_mnist_dir(served, tiny)
    write_mnist_dir(mnist.cache_dir(), {key: tiny[key] for key in ("x_train", "y_train")},
                    gzipped=False)
    requested = []
    monkeypatch.setattr(mnist, "MIRRORS", (base_url,))
    monkeypatch.setattr(mnist, "urlopen",
                        lambda url, timeout: requested.append(url) or local_only_urlopen(url))
    assert_loaded(mnist.load_data(), tiny)
    assert [url.rsplit("/", 1)[1] for url in requested] == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_with_the_wrong_checksum_caches_nothing(tiny, http_mirror, monkeypatch):
    served, base_url = http_mirror
    write_mnist_dir(served, corrupted(tiny))
    monkeypatch.setattr(mnist, "MIRRORS", (base_url,))
    with pytest.raises(mnist.MNISTNotFoundError, match="SHA-256 of the content is"):
        mnist.load_data()
    assert cached_files() == []


def test_download_of_damaged_gzip_caches_nothing(monkeypatch):
    monkeypatch.setattr(mnist, "urlopen",
                        lambda url, timeout: io.BytesIO(gzip.compress(b"x" * 100)[:-20]))
    with pytest.raises(mnist.MNISTNotFoundError,
                       match="train-images-idx3-ubyte.gz: Compressed file ended"):
        mnist.load_data()
    assert cached_files() == []


def test_gzip_bomb_from_a_mirror_is_discarded_unread_and_the_next_mirror_used(tiny, monkeypatch):
    """The first mirror serves each file followed by 64 MB of zeros (a 64 KB
    download): the download decompresses no more than the file's known size,
    fails, and the second mirror's copy is cached."""
    bomb, good = "https://bomb.example/", "https://good.example/"
    payloads = {}
    for key, spec in mnist.FILES.items():
        content = idx_bytes(tiny[key])
        payloads[f"{bomb}{spec.name}.gz"] = gzip.compress(content + bytes(64 * 2**20), 1)
        payloads[f"{good}{spec.name}.gz"] = gzip.compress(content)
    monkeypatch.setattr(mnist, "MIRRORS", (bomb, good))
    monkeypatch.setattr(mnist, "urlopen", FakeMirrors(payloads))
    tracemalloc.start()
    try:
        assert_loaded(mnist.load_data(), tiny)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    assert cached_files() == sorted(f"{spec.name}.gz" for spec in mnist.FILES.values())


def test_offline_without_local_data_explains_where_to_put_files(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(mnist, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as caught:
        mnist.load_data()
    message = str(caught.value)
    assert isinstance(caught.value, mnist.MNISTNotFoundError)
    for needed in ("Temporary failure in name resolution", *mnist.MIRRORS, "path=", "FASTCONV_DATA",
                   "FASTCONV_CACHE_DIR", str(tmp_path / "cache" / "mnist"),
                   *(spec.name for spec in mnist.FILES.values())):
        assert needed in message
    assert cached_files() == []


# --- shared by the other loaders --------------------------------------------

class FakeMirrors:
    """Stand-in for urlopen serving ``payloads`` (bytes by URL) and recording the URLs asked for."""

    def __init__(self, payloads):
        self.payloads = payloads
        self.requested = []

    def __call__(self, url, timeout):
        assert timeout == _files.DOWNLOAD_TIMEOUT
        self.requested.append(url)
        if url not in self.payloads:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
        return io.BytesIO(self.payloads[url])


def offline(url, timeout):
    """Stand-in for urlopen without a network."""
    raise urllib.error.URLError("Temporary failure in name resolution")


def sha256(content):
    return hashlib.sha256(content).hexdigest()


def flipped(content):
    """``content`` with its middle byte changed."""
    middle = len(content) // 2
    return content[:middle] + bytes([content[middle] ^ 0xFF]) + content[middle + 1:]


def write_files(directory, files):
    """Write ``files`` (bytes by file name) into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


def listing(directory):
    """Names in ``directory`` (none when it does not exist); temporary files start with a dot."""
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_the_package_exposes_every_loader():
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        assert callable(getattr(fastconv.datasets, name).load_data)
    assert issubclass(fastconv.datasets.DatasetNotFoundError, FileNotFoundError)
    assert issubclass(mnist.MNISTNotFoundError, fastconv.datasets.DatasetNotFoundError)


# --- fashion_mnist ------------------------------------------------------------

@pytest.fixture
def fashion(monkeypatch):
    """Tiny Fashion-MNIST stand-ins made the expected files by patching
    fashion_mnist.FILES: returns (gzipped IDX bytes by file name, arrays by Keras name)."""
    arrays = tiny_arrays()
    files = {spec.name: gzip.compress(idx_bytes(arrays[key]))
             for key, spec in fashion_mnist.FILES.items()}
    monkeypatch.setattr(fashion_mnist, "FILES", {
        key: spec._replace(shape=arrays[key].shape, sha256=sha256(files[spec.name]))
        for key, spec in fashion_mnist.FILES.items()})
    return files, arrays


def test_fashion_mnist_has_keras_file_names_and_shapes():
    assert {key: (spec.name, spec.shape) for key, spec in fashion_mnist.FILES.items()} == {
        "x_train": ("train-images-idx3-ubyte.gz", (60000, 28, 28)),
        "y_train": ("train-labels-idx1-ubyte.gz", (60000,)),
        "x_test": ("t10k-images-idx3-ubyte.gz", (10000, 28, 28)),
        "y_test": ("t10k-labels-idx1-ubyte.gz", (10000,)),
    }
    assert fashion_mnist.MIRRORS[0] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def test_fashion_download_tries_the_next_mirror_after_a_bad_copy_then_uses_the_cache(
        tmp_path, fashion, monkeypatch):
    files, arrays = fashion
    bad, good = "https://bad.example/", "https://good.example/"
    mirrors = FakeMirrors({**{bad + name: flipped(content) for name, content in files.items()},
                           **{good + name: content for name, content in files.items()}})
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (bad, good))
    monkeypatch.setattr(fashion_mnist, "urlopen", mirrors)
    assert_loaded(fashion_mnist.load_data(), arrays)
    assert mirrors.requested == [mirror + name for name in files for mirror in (bad, good)]
    assert fashion_mnist.cache_dir() == tmp_path / "cache" / "fashion_mnist"
    assert listing(fashion_mnist.cache_dir()) == sorted(files)
    monkeypatch.setattr(fashion_mnist, "urlopen", refuse_network)
    assert_loaded(fashion_mnist.load_data(), arrays)


def test_fashion_download_fetches_only_missing_files(fashion, monkeypatch):
    files, arrays = fashion
    present = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    write_files(fashion_mnist.cache_dir(), {name: files[name] for name in present})
    mirrors = FakeMirrors({"https://good.example/" + name: content
                           for name, content in files.items()})
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ("https://good.example/",))
    monkeypatch.setattr(fashion_mnist, "urlopen", mirrors)
    assert_loaded(fashion_mnist.load_data(), arrays)
    assert [url.rsplit("/", 1)[1] for url in mirrors.requested] == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("keras_home", [None, "custom-keras"])
def test_fashion_reuses_the_keras_cache(tmp_path, fashion, monkeypatch, keras_home):
    files, arrays = fashion
    keras_dir = tmp_path / "home" / ".keras"
    if keras_home:
        keras_dir = tmp_path / keras_home
        monkeypatch.setenv("KERAS_HOME", str(keras_dir))
    write_files(keras_dir / "datasets" / "fashion-mnist", files)
    assert_loaded(fashion_mnist.load_data(), arrays)
    assert listing(fashion_mnist.cache_dir()) == []


def test_fashion_looks_in_its_own_directory_of_fastconv_data(tmp_path, fashion, monkeypatch):
    files, arrays = fashion
    data_dir = tmp_path / "data"
    write_mnist_dir(data_dir, corrupted(arrays))  # MNIST's files, same names, flat in FASTCONV_DATA
    monkeypatch.setenv("FASTCONV_DATA", str(data_dir))
    monkeypatch.setattr(fashion_mnist, "urlopen", offline)
    with pytest.raises(fastconv.datasets.DatasetNotFoundError):
        fashion_mnist.load_data()
    write_files(data_dir / "fashion_mnist", files)
    assert_loaded(fashion_mnist.load_data(), arrays)


def test_fashion_rejects_a_file_with_the_wrong_checksum(tmp_path, fashion):
    files, _ = fashion
    directory = write_files(tmp_path / "fashion", dict(
        files, **{"t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.zeros(4, np.uint8)))}))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 of the file is"):
        fashion_mnist.load_data(directory)


def test_fashion_rejects_a_verified_file_of_the_wrong_shape(tmp_path, fashion, monkeypatch):
    files, _ = fashion
    monkeypatch.setitem(fashion_mnist.FILES, "y_test",
                        fashion_mnist.FILES["y_test"]._replace(shape=(5,)))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: holds data of shape \(4,\)"):
        fashion_mnist.load_data(write_files(tmp_path / "fashion", files))


def test_fashion_offline_error_names_the_files_and_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "urlopen", offline)
    with pytest.raises(fastconv.datasets.DatasetNotFoundError) as caught:
        fashion_mnist.load_data()
    message = str(caught.value)
    for needed in ("Temporary failure in name resolution", *fashion_mnist.MIRRORS, "path=",
                   "$FASTCONV_DATA/fashion_mnist", "FASTCONV_CACHE_DIR",
                   str(tmp_path / "cache" / "fashion_mnist"),
                   *(spec.name for spec in fashion_mnist.FILES.values())):
        assert needed in message
    assert listing(fashion_mnist.cache_dir()) == []


# --- cifar10 and cifar100 -----------------------------------------------------

# Images per batch file of the stand-ins: 20 in all.
STAND_IN_COUNTS = {cifar10: (3, 3, 3, 3, 3, 5), cifar100: (15, 5)}


class Raw(bytes):
    """Pickle opcodes that ``py2_pickle`` emits as they are."""


def py2_pickle(value):
    """The opcodes with which Python 2's cPickle (protocol 2) and numpy 1 pickle ``value``,
    as in the real CIFAR batches: bytes stand for Python 2 str, which unpickle as
    bytes with encoding='bytes'; numpy arrays must be uint8."""
    if isinstance(value, Raw):
        return value
    if value is None:
        return pickle.NONE
    if isinstance(value, bool):
        return pickle.NEWTRUE if value else pickle.NEWFALSE
    if isinstance(value, int):
        return pickle.BININT + struct.pack("<i", value)
    if isinstance(value, bytes):
        if len(value) < 256:
            return pickle.SHORT_BINSTRING + bytes([len(value)]) + value
        return pickle.BINSTRING + struct.pack("<i", len(value)) + value
    if isinstance(value, tuple):
        return pickle.MARK + b"".join(map(py2_pickle, value)) + pickle.TUPLE
    if isinstance(value, list):
        return pickle.EMPTY_LIST + pickle.MARK + b"".join(map(py2_pickle, value)) + pickle.APPENDS
    if isinstance(value, dict):
        return pickle.EMPTY_DICT + pickle.MARK + b"".join(
            py2_pickle(key) + py2_pickle(item) for key, item in value.items()) + pickle.SETITEMS
    assert isinstance(value, np.ndarray) and value.dtype == np.uint8
    dtype = Raw(pickle.GLOBAL + b"numpy\ndtype\n" + py2_pickle((b"u1", 0, 1)) + pickle.REDUCE
                + py2_pickle((3, b"|", None, None, None, -1, -1, 0)) + pickle.BUILD)
    return (pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n"
            + py2_pickle((Raw(pickle.GLOBAL + b"numpy\nndarray\n"), (0,), b"b")) + pickle.REDUCE
            + py2_pickle((1, value.shape, dtype, False, value.tobytes())) + pickle.BUILD)


def pickled_batch(data, labels):
    """A CIFAR python batch of ``data`` (uint8 rows) and ``labels`` (lists by key) in the
    real files' format: a dict with (Python 2) str keys, pickled by Python 2."""
    batch = {b"batch_label": b"stand-in batch", b"data": data, **labels,
             b"filenames": [b"image_%d.png" % index for index in range(len(data))]}
    return pickle.PROTO + bytes([2]) + py2_pickle(batch) + pickle.STOP


def file_entry(name, content):
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def typed_entry(name, kind, linkname=""):
    """A tar member without content: a directory, a link, a FIFO..."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def dir_entry(name):
    return typed_entry(name, tarfile.DIRTYPE)


def tar_gz(entries):
    """The bytes of a .tar.gz archive of ``entries`` ((TarInfo, content or None) pairs)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, content in entries:
            tar.addfile(info, None if content is None else io.BytesIO(content))
    return buffer.getvalue()


class CifarStandIn:
    """A 20-image stand-in for ``loader``'s archive (cifar10 or cifar100) in the real
    format, made the expected one by patching ``loader.ARCHIVE``."""

    def __init__(self, loader, monkeypatch):
        archive = loader.ARCHIVE
        rng = np.random.default_rng(7)
        self.loader, self.monkeypatch = loader, monkeypatch
        self.batches = {}  # pickled bytes by file name
        self.data = {}  # uint8 rows by file name
        self.labels = {key: {} for key in archive.label_classes}  # label lists by key, file name
        patched = []
        for batch, count in zip(archive.train + archive.test, STAND_IN_COUNTS[loader]):
            self.data[batch.name] = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
            labels = {key: rng.integers(0, classes, count).tolist()
                      for key, classes in archive.label_classes.items()}
            for key, values in labels.items():
                self.labels[key][batch.name] = values
            self.batches[batch.name] = pickled_batch(self.data[batch.name], labels)
            md5 = hashlib.md5(self.batches[batch.name]).hexdigest()
            patched.append(batch._replace(count=count, md5=md5))
        self.tarball = tar_gz([dir_entry(archive.folder)] + [
            file_entry(f"{archive.folder}/{name}", content)
            for name, content in self.batches.items()])
        self.archive = archive._replace(sha256=sha256(self.tarball),
                                        train=tuple(patched[:len(archive.train)]),
                                        test=tuple(patched[len(archive.train):]))
        monkeypatch.setattr(loader, "ARCHIVE", self.archive)

    def expected(self, label_key):
        """((x_train, y_train), (x_test, y_test)) as load_data should return them."""
        splits = []
        for batches in (self.archive.train, self.archive.test):
            rows = np.concatenate([self.data[batch.name] for batch in batches])
            labels = sum((self.labels[label_key][batch.name] for batch in batches), [])
            splits.append((rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
                           np.array(labels, self.archive.label_dtype).reshape(-1, 1)))
        return tuple(splits)

    def replace_batch(self, name, content):
        """Use ``content`` as the batch file ``name``, with its MD5 as the expected one."""
        self.batches[name] = content
        digest = hashlib.md5(content).hexdigest()
        self.archive = self.archive._replace(**{
            split: tuple(batch._replace(md5=digest) if batch.name == name else batch
                         for batch in getattr(self.archive, split)) for split in ("train", "test")})
        self.monkeypatch.setattr(self.loader, "ARCHIVE", self.archive)


@pytest.fixture(params=[cifar10, cifar100], ids=["cifar10", "cifar100"])
def cifar(request, monkeypatch):
    return CifarStandIn(request.param, monkeypatch)


@pytest.fixture
def cifar10_stand_in(monkeypatch):
    return CifarStandIn(cifar10, monkeypatch)


def assert_cifar_loaded(result, expected, label_dtype):
    for (images, labels), (expected_images, expected_labels) in zip(result, expected):
        assert images.dtype == np.uint8 and images.shape == expected_images.shape
        assert images.shape[1:] == (32, 32, 3) and images.flags.c_contiguous
        assert labels.dtype == label_dtype and labels.shape == (len(images), 1)
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


def test_cifar_archives_match_keras():
    assert (cifar10.ARCHIVE.name, cifar10.ARCHIVE.folder) == ("cifar-10-python.tar.gz",
                                                               "cifar-10-batches-py")
    assert (cifar100.ARCHIVE.name, cifar100.ARCHIVE.folder) == ("cifar-100-python.tar.gz",
                                                                 "cifar-100-python")
    assert sum(batch.count for batch in cifar10.ARCHIVE.train) == 50000
    assert sum(batch.count for batch in cifar100.ARCHIVE.train) == 50000
    assert cifar10.ARCHIVE.test[0].count == cifar100.ARCHIVE.test[0].count == 10000
    # Keras casts CIFAR-10's labels to uint8 and leaves CIFAR-100's as numpy's default int.
    assert (cifar10.ARCHIVE.label_dtype, cifar100.ARCHIVE.label_dtype) == (np.uint8, np.int64)
    assert cifar10.MIRRORS == cifar100.MIRRORS == ("https://www.cs.toronto.edu/~kriz/",)


def test_cifar_download_tries_the_next_mirror_unpacks_into_the_cache_and_reuses_it(
        cifar, monkeypatch):
    loader, archive = cifar.loader, cifar.archive
    bad, good = "https://bad.example/", "https://good.example/"
    mirrors = FakeMirrors({bad + archive.name: flipped(cifar.tarball),
                           good + archive.name: cifar.tarball})
    monkeypatch.setattr(loader, "MIRRORS", (bad, good))
    monkeypatch.setattr(loader, "urlopen", mirrors)
    label_key = next(iter(archive.label_classes))
    assert_cifar_loaded(loader.load_data(), cifar.expected(label_key), archive.label_dtype)
    assert mirrors.requested == [bad + archive.name, good + archive.name]
    # The archive and temporary files are gone.
    assert listing(loader.cache_dir()) == [archive.folder]
    assert listing(loader.cache_dir() / archive.folder) == sorted(cifar.batches)
    monkeypatch.setattr(loader, "urlopen", refuse_network)
    assert_cifar_loaded(loader.load_data(), cifar.expected(label_key), archive.label_dtype)


def test_cifar_images_are_channels_last_rows_of_the_pickled_planes(tmp_path, cifar10_stand_in):
    directory = write_files(tmp_path / "batches", cifar10_stand_in.batches)
    (x_train, _), (x_test, _) = cifar10.load_data(directory)
    rows = cifar10_stand_in.data["data_batch_2"][1]  # the 5th training image
    for row, column in ((0, 0), (0, 1), (1, 0), (31, 17)):
        for channel in range(3):
            assert x_train[4, row, column, channel] == rows[channel * 1024 + row * 32 + column]
    assert x_test[4, 2, 3, 2] == cifar10_stand_in.data["test_batch"][4][2048 + 2 * 32 + 3]


def test_cifar100_label_modes(tmp_path, monkeypatch):
    stand_in = CifarStandIn(cifar100, monkeypatch)
    directory = write_files(tmp_path / "cifar-100-python", stand_in.batches)
    for mode in ("fine", "coarse"):
        expected = stand_in.expected(f"{mode}_labels".encode())
        assert_cifar_loaded(cifar100.load_data(mode, path=tmp_path), expected, np.int64)
        assert_cifar_loaded(cifar100.load_data(label_mode=mode, path=directory), expected, np.int64)
    assert cifar100.load_data(path=directory)[0][1].max() >= 20  # fine by default
    for mode in ("medium", "Fine", None, b"fine"):
        with pytest.raises(ValueError, match="label_mode must be one of 'fine', 'coarse'"):
            cifar100.load_data(mode, path=directory)


@pytest.mark.parametrize("loader, keras_path", [
    (cifar10, "cifar-10-batches-py"),  # Keras 3 before get_file unpacked into <fname>
    (cifar10, "cifar-10-batches-py/cifar-10-batches-py"),
    (cifar100, "cifar-100-python"),
    (cifar100, "cifar-100-python-target/cifar-100-python"),
])
def test_cifar_reuses_the_keras_extracted_cache(tmp_path, monkeypatch, loader, keras_path):
    stand_in = CifarStandIn(loader, monkeypatch)
    write_files(tmp_path / "home" / ".keras" / "datasets" / keras_path, stand_in.batches)
    label_key = next(iter(stand_in.archive.label_classes))
    assert_cifar_loaded(loader.load_data(), stand_in.expected(label_key),
                        stand_in.archive.label_dtype)
    assert listing(loader.cache_dir()) == []


def test_cifar_archive_put_by_hand_is_verified_and_unpacked_offline(tmp_path, cifar10_stand_in,
                                                                     monkeypatch):
    expected = cifar10_stand_in.expected(b"labels")
    write_files(cifar10.cache_dir(), {"cifar-10-python.tar.gz": cifar10_stand_in.tarball})
    assert_cifar_loaded(cifar10.load_data(), expected, np.uint8)
    assert listing(cifar10.cache_dir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    elsewhere = write_files(tmp_path / "elsewhere", {"copy.tgz": cifar10_stand_in.tarball})
    assert_cifar_loaded(cifar10.load_data(elsewhere / "copy.tgz"), expected, np.uint8)
    with pytest.raises(ValueError, match=r"copy\.tgz: SHA-256 of the file is"):
        cifar10.load_data(write_files(elsewhere, {"copy.tgz": flipped(cifar10_stand_in.tarball)})
                          / "copy.tgz")


def test_cifar_rejects_a_batch_with_the_wrong_md5(tmp_path, cifar10_stand_in):
    batches = dict(cifar10_stand_in.batches, data_batch_3=cifar10_stand_in.batches["data_batch_4"])
    with pytest.raises(ValueError, match=r"data_batch_3: MD5 of the file is"):
        cifar10.load_data(write_files(tmp_path / "batches", batches))


class RunsShell:
    """Pickles as a call of os.system, as a malicious batch would."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_cifar_refuses_a_pickle_that_would_run_code(tmp_path, cifar10_stand_in):
    marker = tmp_path / "code-ran"
    evil = pickle.dumps({b"data": RunsShell(f"touch {marker}"), b"labels": []}, protocol=3)
    cifar10_stand_in.replace_batch("data_batch_1", evil)
    with pytest.raises(ValueError, match=r"data_batch_1: not a readable CIFAR batch "
                                         r"\(UnpicklingError: refusing to load the global "
                                         r"\w+\.system\)"):
        cifar10.load_data(write_files(tmp_path / "batches", cifar10_stand_in.batches))
    assert not marker.exists()


@pytest.mark.parametrize("make, problem", [
    (lambda batch: batch[: len(batch) // 2], "not a readable CIFAR batch"),
    (lambda batch: b"not a pickle", "not a readable CIFAR batch"),
    (lambda batch: pickle.dumps([1, 2, 3]), "not a CIFAR batch"),
    (lambda batch: pickle.dumps({b"data": np.zeros((3, 3072), np.int16), b"labels": [0, 1, 2]}),
     "b'data' must be a uint8 array of shape"),
    (lambda batch: pickle.dumps({b"data": np.zeros((3, 1024), np.uint8), b"labels": [0, 1, 2]}),
     "b'data' must be a uint8 array of shape"),
    (lambda batch: pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}),
     "b'labels' must be a list of 3 ints"),
    (lambda batch: pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 10]}),
     r"b'labels' outside 0\.\.9"),
    (lambda batch: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}),
     "holds 2 images, expected 3"),
])
def test_cifar_rejects_damaged_batches(tmp_path, cifar10_stand_in, make, problem):
    cifar10_stand_in.replace_batch("data_batch_5", make(cifar10_stand_in.batches["data_batch_5"]))
    with pytest.raises(ValueError, match=r"data_batch_5: ") as caught:
        cifar10.load_data(write_files(tmp_path / "batches", cifar10_stand_in.batches))
    assert re.search(problem, str(caught.value))


def test_cifar_download_with_path_traversal_writes_nothing(tmp_path, cifar10_stand_in, monkeypatch):
    folder = cifar10_stand_in.archive.folder
    tarball = tar_gz([dir_entry(folder), file_entry(f"{folder}/../../../escaped", b"x")] + [
        file_entry(f"{folder}/{name}", content)
        for name, content in cifar10_stand_in.batches.items()])
    monkeypatch.setattr(cifar10, "ARCHIVE",
                        cifar10_stand_in.archive._replace(sha256=sha256(tarball)))
    monkeypatch.setattr(cifar10, "urlopen",
                        FakeMirrors({cifar10.MIRRORS[0] + "cifar-10-python.tar.gz": tarball}))
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz: refusing to extract "
                                         r"'cifar-10-batches-py/\.\./\.\./\.\./escaped'"):
        cifar10.load_data()
    assert not any(path.name == "escaped" for path in tmp_path.rglob("*"))
    assert listing(cifar10.cache_dir()) == []


@pytest.mark.parametrize("entry", [
    file_entry("../escaped", b"x"),
    file_entry("/tmp/fastconv-test-escaped", b"x"),
    typed_entry("top/link", tarfile.SYMTYPE, "/etc/passwd"),
    typed_entry("top/link", tarfile.SYMTYPE, "../../escaped"),
    typed_entry("top/hard", tarfile.LNKTYPE, "/etc/passwd"),
    typed_entry("top/fifo", tarfile.FIFOTYPE),
], ids=["dotdot", "absolute", "symlink-out", "symlink-up", "hardlink", "fifo"])
def test_extract_tar_refuses_unsafe_members(tmp_path, entry):
    info, _ = entry
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(tar_gz([dir_entry("top"), file_entry("top/a", b"a"), entry]))
    with pytest.raises(ValueError,
                       match=f"archive.tar.gz: refusing to extract {re.escape(repr(info.name))}"):
        _files.extract_tar(archive, "top", tmp_path / "out" / "top")
    assert listing(tmp_path / "out") == []
    assert not os.path.exists("/tmp/fastconv-test-escaped")


def test_extract_tar_replaces_an_incomplete_copy_and_reports_damage(tmp_path):
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(tar_gz([dir_entry("top"), file_entry("top/a", b"a"),
                                file_entry("top/b", b"b")]))
    destination = write_files(tmp_path / "out" / "top", {"a": b"stale"})
    _files.extract_tar(archive, "top", destination)
    contents = {name: (destination / name).read_bytes() for name in listing(destination)}
    assert contents == {"a": b"a", "b": b"b"}
    assert listing(tmp_path / "out") == ["top"]
    with pytest.raises(ValueError, match="archive.tar.gz: holds no directory other"):
        _files.extract_tar(archive, "other", tmp_path / "out" / "other")
    archive.write_bytes(archive.read_bytes()[:-30])
    with pytest.raises(ValueError, match="archive.tar.gz: damaged tar archive"):
        _files.extract_tar(archive, "top", tmp_path / "out" / "top")
    assert listing(tmp_path / "out") == ["top"]


@pytest.mark.parametrize("loader", [cifar10, cifar100])
def test_cifar_offline_error_names_the_archive_and_where_to_put_it(tmp_path, monkeypatch, loader):
    monkeypatch.setattr(loader, "urlopen", offline)
    with pytest.raises(fastconv.datasets.DatasetNotFoundError) as caught:
        loader.load_data()
    message = str(caught.value)
    name = loader.__name__.rsplit(".", 1)[1]
    for needed in ("Temporary failure in name resolution", loader.MIRRORS[0] + loader.ARCHIVE.name,
                   loader.ARCHIVE.name, loader.ARCHIVE.folder, "path=", f"$FASTCONV_DATA/{name}",
                   "FASTCONV_CACHE_DIR", str(tmp_path / "cache" / name),
                   *(batch.name for batch in loader.ARCHIVE.train + loader.ARCHIVE.test)):
        assert needed in message
    assert listing(loader.cache_dir()) == []


def test_cifar_explicit_path_without_data_is_an_error_with_advice(tmp_path, cifar10_stand_in):
    partial = write_files(tmp_path / "partial",
                          {"data_batch_1": cifar10_stand_in.batches["data_batch_1"]})
    with pytest.raises(fastconv.datasets.DatasetNotFoundError, match="holds no CIFAR-10") as caught:
        cifar10.load_data(partial)
    assert "cifar-10-python.tar.gz" in str(caught.value)


# --- the real data ----------------------------------------------------------

@pytest.mark.skipif(not REAL_MNIST_DIR,
                    reason="FASTCONV_MNIST_DIR is unset; point it at a directory holding "
                           "the four MNIST IDX files to test the real data")
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(REAL_MNIST_DIR)
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == (
        (60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert {x_train.dtype, y_train.dtype, x_test.dtype, y_test.dtype} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842,
                                             5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
