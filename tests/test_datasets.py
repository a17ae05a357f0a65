"""Tests of fastconv.datasets.mnist on tiny generated files; no test reaches the internet."""

import functools
import gzip
import hashlib
import http.server
import io
import os
import struct
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from fastconv.datasets import mnist

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
    monkeypatch.setattr(mnist, "urlopen", refuse_network)


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
    for key, loaded in zip(("x_train", "y_train", "x_test", "y_test"), (x_train, y_train, x_test, y_test)):
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
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: .*shape \(3,\).*shape \(4,\)"):
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
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/served``: yields (directory, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
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
    monkeypatch.setattr(mnist, "MIRRORS", (base_url + "absent/", base_url + "corrupt/", base_url + "good/"))
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
    write_mnist_dir(mnist.cache_dir(), {key: tiny[key] for key in ("x_train", "y_train")}, gzipped=False)
    requested = []
    monkeypatch.setattr(mnist, "MIRRORS", (base_url,))
    monkeypatch.setattr(mnist, "urlopen", lambda url, timeout: requested.append(url) or local_only_urlopen(url))
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
    monkeypatch.setattr(mnist, "urlopen", lambda url, timeout: io.BytesIO(gzip.compress(b"x" * 100)[:-20]))
    with pytest.raises(mnist.MNISTNotFoundError, match="train-images-idx3-ubyte.gz: Compressed file ended"):
        mnist.load_data()
    assert cached_files() == []


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


# --- the real data ----------------------------------------------------------

@pytest.mark.skipif(not REAL_MNIST_DIR, reason="FASTCONV_MNIST_DIR is unset; point it at a directory "
                                                "holding the four MNIST IDX files to test the real data")
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(REAL_MNIST_DIR)
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == (
        (60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert {x_train.dtype, y_train.dtype, x_test.dtype, y_test.dtype} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
