"""Where the dataset loaders look for their files, and how they download,
verify and cache them.

Each loader describes its dataset with a ``Dataset`` and passes it a
``read(location)`` function (the loaded arrays, or None when ``location``
does not hold the dataset) and a ``download()`` function.
``Dataset.load(path, read, download)`` returns what ``read`` returns for the
first of these locations that holds the data:

1. ``path``, when given (and then only ``path``).
2. ``$FASTCONV_DATA/<name>`` (``FASTCONV_DATA`` names a directory laid out
   like the cache: one subdirectory per dataset).
3. The cache directory ``$FASTCONV_CACHE_DIR/<name>``, by default
   ``~/.fastconv/datasets/<name>``.
4. Keras's copies, under ``$KERAS_HOME/datasets`` (default ``~/.keras``).
5. The cache directory again, after ``download()``; it fetches each file
   with ``Dataset.download``, which tries the mirrors in turn and moves a
   file into the cache only once its checksum matched.

When nothing holds the data and the download fails, the loader raises a
``DatasetNotFoundError`` that names the files needed and where to put them.
"""

import contextlib
import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

DOWNLOAD_TIMEOUT = 60  # seconds, per blocking network operation
DOWNLOAD_CHUNK = 1 << 20  # bytes
# What a failed download may raise: network and HTTP errors, a damaged gzip
# stream and a checksum mismatch reported by the verification.
DOWNLOAD_ERRORS = (OSError, EOFError, zlib.error, http.client.HTTPException, ValueError)
ALGORITHM_NAMES = {"sha256": "SHA-256", "md5": "MD5"}
# tarfile's "data" filter (Python 3.12, backported to 3.8.17+, 3.9.17+,
# 3.10.12+, 3.11.4+) refuses members that would escape the destination.
TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the places its ``load_data`` looks and cannot be downloaded."""


def cache_root():
    """``$FASTCONV_CACHE_DIR``, else ``~/.fastconv/datasets``: the parent of every
    dataset's cache."""
    return Path(os.environ.get("FASTCONV_CACHE_DIR") or "~/.fastconv/datasets").expanduser()


def keras_datasets_dir():
    """Where Keras caches datasets: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "datasets"


class Dataset:
    """The places where one dataset is looked for (see the module docstring).

    ``name`` is its directory under the cache and under ``$FASTCONV_DATA``,
    ``title`` its name in messages, ``contents`` a description of the files
    a user should provide (for the not-found advice), ``keras_paths`` the
    paths relative to Keras's datasets directory where Keras keeps it.
    ``error`` is the ``DatasetNotFoundError`` subclass raised.  With
    ``flat_data_dir``, ``$FASTCONV_DATA`` itself is searched after
    ``$FASTCONV_DATA/<name>``.
    """

    def __init__(self, name, title, contents, keras_paths=(), error=DatasetNotFoundError,
                 flat_data_dir=False):
        self.name = name
        self.title = title
        self.contents = contents
        self.keras_paths = tuple(keras_paths)
        self.error = error
        self.flat_data_dir = flat_data_dir

    def cache_dir(self):
        """``$FASTCONV_CACHE_DIR/<name>``, else ``~/.fastconv/datasets/<name>``."""
        return cache_root() / self.name

    def local_locations(self):
        """The places searched when ``load`` gets no path, in order."""
        data_dir = os.environ.get("FASTCONV_DATA")
        data_dirs = []
        if data_dir:
            data_dir = Path(data_dir).expanduser()
            data_dirs = [data_dir / self.name] + ([data_dir] if self.flat_data_dir else [])
        keras_dir = keras_datasets_dir()
        return data_dirs + [self.cache_dir()] + [keras_dir / path for path in self.keras_paths]

    def load(self, path, read, download):
        """What ``read`` returns for ``path`` when given, else for the first local
        location holding the dataset, else for the cache after ``download()``."""
        if path is not None:
            return self._read_present(read, Path(path).expanduser())
        for location in self.local_locations():
            found = read(location)
            if found is not None:
                return found
        download()
        return self._read_present(read, self.cache_dir())

    def _read_present(self, read, location):
        found = read(location)
        if found is None:
            raise self.not_found(f"{location} holds no {self.title}.")
        return found

    def download(self, file_name, mirrors, verify, urlopen):
        """Download ``file_name`` into the cache directory from the first of
        ``mirrors`` (base URLs) whose copy passes ``verify(path)``; return its path.

        ``verify`` raises ValueError (or a gzip error) when the file is wrong;
        the file then never appears in the cache and the next mirror is tried.
        ``urlopen`` is called as ``urlopen(url, timeout=DOWNLOAD_TIMEOUT)``.
        Raises the dataset's not-found error listing every mirror's failure.
        """
        destination = self.cache_dir() / file_name
        failures = []
        for mirror in mirrors:
            url = f"{mirror}{file_name}"
            try:
                with _temporary_file_beside(destination) as (stream, temporary):
                    with urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                        shutil.copyfileobj(response, stream, DOWNLOAD_CHUNK)
                    stream.flush()
                    os.fsync(stream.fileno())
                    verify(temporary)
                    os.replace(temporary, destination)
                return destination
            except DOWNLOAD_ERRORS as exc:
                failures.append(f"{url}: {exc}")
        raise self.not_found(f"{self.title} is not available locally and {file_name} could not be "
                             f"downloaded:\n  " + "\n  ".join(failures))

    def not_found(self, problem):
        """The dataset's not-found error: ``problem``, then where to put the files."""
        return self.error(f"{problem}\n{self.advice()}")

    def advice(self):
        """Where a user whose dataset cannot be found or downloaded should put it."""
        data_dirs = f"$FASTCONV_DATA/{self.name}" + (" or $FASTCONV_DATA itself"
                                                     if self.flat_data_dir else "")
        return (f"Put {self.contents} in the directory given as load_data(path=...), "
                f"in {data_dirs} (FASTCONV_DATA names a directory of datasets), or in the "
                f"cache directory {self.cache_dir()} (FASTCONV_CACHE_DIR=<dir> moves it to "
                f"<dir>/{self.name}).")


@contextlib.contextmanager
def _temporary_file_beside(path):
    """A new empty file in ``path``'s directory (created if needed), as
    ``(binary stream, its path)``; removed on exit unless renamed meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream, Path(temporary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def read_gzip(path, size):
    """The decompressed content of the gzip file at ``path``, which must be
    ``size`` bytes: ValueError as soon as it is longer (a decompression bomb
    is never held in memory) or when it is shorter; gzip's errors (EOFError,
    zlib.error, gzip.BadGzipFile) when it is damaged."""
    with gzip.open(path, "rb") as stream:
        content = stream.read(size + 1)
    if len(content) != size:
        longer = "more" if len(content) > size else f"only {len(content)}"
        raise ValueError(f"decompresses to {longer} bytes, expected {size}")
    return content


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file at ``path`` ("sha256" or "md5"), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(DOWNLOAD_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_digest(digest, expected, algorithm="sha256", of="file"):
    """ValueError "<algorithm> of the <of> is <digest>, expected <expected>" when they differ."""
    if digest != expected:
        raise ValueError(f"{ALGORITHM_NAMES[algorithm]} of the {of} is {digest}, "
                         f"expected {expected}")


def verify_digest(expected, algorithm="sha256"):
    """A ``verify`` for ``Dataset.download``: ValueError unless the file's
    digest is ``expected``."""
    return lambda path: check_digest(file_digest(path, algorithm), expected, algorithm)


def check_file(path, expected, algorithm="sha256"):
    """ValueError naming ``path`` unless its ``algorithm`` digest is ``expected``."""
    try:
        check_digest(file_digest(path, algorithm), expected, algorithm)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def extract_tar(archive, folder, destination):
    """Extract the directory ``folder`` of the tar archive ``archive`` (any
    compression) to the directory ``destination``, replacing it.

    The archive is unpacked into a temporary directory beside
    ``destination``, so ``destination`` appears complete or not at all.
    Raises ValueError naming the archive when it is damaged, lacks
    ``folder``, or holds anything but plain files and directories below its
    root (absolute names, ``..``, links and devices are refused before
    anything is written).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.",
                                    suffix=".part"))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_tar_member(archive, member)
                tar.extractall(staging, members=members, **TAR_FILTER)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(f"{archive}: damaged tar archive ({exc})") from None
        extracted = staging / folder
        if not extracted.is_dir():
            raise ValueError(f"{archive}: holds no directory {folder}")
        if destination.exists():  # an incomplete earlier copy
            shutil.rmtree(destination)
        os.replace(extracted, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_tar_member(archive, member):
    """ValueError unless ``member`` is a plain file or directory that stays
    below the archive root."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: refusing to extract {member.name!r}: only plain files and "
                         f"directories below the archive root are allowed")
