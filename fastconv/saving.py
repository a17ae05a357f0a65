"""Saving models and weights (Keras's ``saving/``), in the format the file
name's extension asks for:

* ``.keras`` (``save``, ``load_model``, ``load_weights``), ``.h5``/``.hdf5``
  (legacy Keras model file) and ``.weights.h5`` (``save_weights``,
  ``load_weights``): Keras 3's own formats, exchanged with Keras itself
  (``keras_format``; needs h5py, ``pip install "fastconv[keras-format]"``);
* ``.npz``: fastconv's format, NumPy only.  The weights are under
  ``layer_<i>/<name>`` (e.g. ``layer_0/kernel``; i counts the layers, nested
  models opened, in ``model.weights`` order), the optimizer state under
  ``optimizer/...`` and a JSON header (architecture, compile settings) under
  ``__fastconv__``.  Version 2 headers describe any model as
  ``{'class_name', 'config'}``; version 1 files (Sequential models of
  fastconv 0.1) still load.

Other extensions raise ValueError.  Files are written to a temporary file
in the same directory and moved into place, so an interrupted save never
damages an earlier file.

Loading checks everything before it changes anything: a failed
``load_weights`` leaves the model as it was (unbuilt, if it was), and
``load_model`` returns only a complete model.  An ``.npz`` file is read
member by member (``NpzArchive``): the header, then only the arrays the
model needs, each checked against the model's shape and its member's size
before its data is read; a model described by the header may create no more
weight values than the file holds.  Every problem with a file is a
ValueError naming it.
"""

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import time
import zipfile
import zlib

import numpy as np

from . import initializers, keras_format, losses, metrics, optimizers

HEADER_KEY = "__fastconv__"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class Saving:
    """Mixed into Model: save, save_weights, load_weights."""

    def save_weights(self, path):
        """Writes the weights to ``path`` (atomically): a Keras ``.weights.h5``
        file or a fastconv ``.npz`` file; ValueError for other names."""
        self._require_built("save_weights")
        if _extension(path, (".weights.h5", ".npz")) is None:
            raise ValueError("The filename must end in `.weights.h5` (or `.npz`, fastconv's "
                             f"NumPy-only format). Received: filepath={os.fspath(path)}")
        if _extension(path, (".npz",)):
            _write_npz(path, self._header("weights"), self._weight_arrays())
        else:
            _write_file(path, keras_format.weights_file(self))

    def load_weights(self, path):
        """Reads weights saved by ``save_weights`` or ``save`` (``.weights.h5``,
        ``.keras``, ``.h5``/``.hdf5``, ``.npz``) into a model of the same
        architecture; ValueError if the file does not fit (nothing changes)."""
        extension = _extension(path, (".npz", ".weights.h5", ".keras", ".h5", ".hdf5"))
        if extension is None:
            raise ValueError("load_weights reads .weights.h5, .keras, .h5, .hdf5 and .npz "
                             f"files. Received: filepath={os.fspath(path)}")
        if extension == ".npz":
            with NpzArchive(path) as archive:
                self._set_saved_weights(archive)
            return
        self._require_built("load_weights")
        keras_format.load_weights(self, path)

    def _set_saved_weights(self, archive):
        """Sets the weights held by ``archive`` (an ``NpzArchive``), building an
        unbuilt model for the file's input shape; ValueError naming the file
        if they do not fit, and then the model is as it was (unbuilt too)."""
        path = archive.path
        saved = _layer_classes(archive.header)
        ours = [type(layer).__name__ for layer in self.leaf_layers()]
        if saved != ours:
            raise ValueError(f"{path} holds the weights of layers {saved}, but model "
                             f"{self.name!r} has layers {ours}")
        with _unbuilt_on_error(self):
            shape = _build_input_shape(archive.header)
            if not self.built and shape is not None:
                try:
                    with archive.weight_budget():
                        self.build(shape)
                except DESCRIPTION_ERRORS as error:
                    raise ValueError(f"{path} does not fit model {self.name!r} built for its "
                                     f"input shape {shape!r}: {error}") from None
            self._require_built("load_weights")
            weights = [archive.array(key, layer.params[name].shape, f"model {self.name!r}")
                       for key, layer, name in self._weight_keys()]
            try:
                self.set_weights(weights)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path} does not fit model {self.name!r}: {error}") from None

    def save(self, path):
        """Writes the whole model to ``path`` (atomically): architecture,
        weights, compile settings and optimizer state, as a Keras ``.keras``
        or legacy ``.h5``/``.hdf5`` file, or a fastconv ``.npz`` file;
        ValueError for other names."""
        self._require_built("save")
        extension = _extension(path, (".keras", ".h5", ".hdf5", ".npz"))
        if extension is None:
            raise ValueError("Invalid filepath extension for saving. Please add either a "
                             "`.keras` extension for the native Keras format (recommended), a "
                             "`.h5` extension (legacy Keras format) or `.npz` (fastconv's "
                             f"NumPy-only format). Received: filepath={os.fspath(path)}")
        if extension == ".keras":
            _write_file(path, keras_format.keras_archive(self))
            return
        if extension != ".npz":
            _write_file(path, keras_format.legacy_h5_file(self))
            return
        arrays = self._weight_arrays()
        if self.optimizer is not None and self.optimizer.slots:
            for key, slots in zip(self._trained_keys(), self.optimizer.slots):
                arrays.update((f"optimizer/{key}/{name}", value) for name, value in slots.items())
        if self.optimizer is not None:
            arrays["optimizer/iterations"] = np.array(self.optimizer.iterations, np.int64)
        _write_npz(path, self._header("model"), arrays)

    def _require_built(self, method):
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built yet, so it has no weights to "
                             f"{method.split('_')[0]}: give the first layer an input_shape or "
                             "call the model on data first")

    def _header(self, kind):
        header = {"format": "fastconv", "version": FORMAT_VERSION, "kind": kind,
                  "model": {"class_name": type(self).__name__, "config": self.get_config()},
                  "layer_classes": [type(layer).__name__ for layer in self.leaf_layers()]}
        if kind == "model" and self.optimizer is not None:
            loss, loss_weights, metrics_spec = self._compile_specs
            header["compile"] = {"optimizer": optimizers.serialize(self.optimizer),
                                 "loss": _serialize_losses(loss), "loss_weights": loss_weights,
                                 "metrics": _serialize_metrics(metrics_spec)}
        return header

    def _weight_keys(self):
        """(key, layer, weight name) of every weight, in ``weights`` order."""
        return [(f"layer_{i}/{name}", layer, name) for i, layer in enumerate(self.leaf_layers())
                for name in layer.params]

    def _weight_arrays(self):
        return {key: layer.params[name] for key, layer, name in self._weight_keys()}

    def _trained_keys(self):
        """The keys of the weights the optimizer updates, in its slot order."""
        trained = {id(layer) for layer in self._trained_layers}
        return [key for key, layer, name in self._weight_keys()
                if id(layer) in trained and name in layer.grads]

    def _load_optimizer_state(self, archive):
        """Sets the optimizer's iterations and slots from ``archive`` (an
        ``NpzArchive``) when it holds them; ValueError naming the file if they
        do not fit, and then the optimizer is as it was."""
        if "optimizer/iterations" not in archive:
            return
        iterations = archive.array("optimizer/iterations", (), "an optimizer's iteration count")
        if iterations.dtype.kind not in "iu" or iterations < 0:
            raise ValueError(f"{archive.path}: optimizer/iterations must be an integer >= 0, "
                             f"got {iterations.dtype} {iterations.item()!r}")
        keys, names = self._trained_keys(), self.optimizer.slot_names
        if keys and names and f"optimizer/{keys[0]}/{names[0]}" in archive:
            weights = self._weight_arrays()
            saved = [{name: archive.array(f"optimizer/{key}/{name}", weights[key].shape,
                                          f"the optimizer of model {self.name!r}")
                      for name in names} for key in keys]
            self.optimizer.build([weights[key] for key in keys])
            for slots, values in zip(self.optimizer.slots, saved):
                for name, value in values.items():
                    slots[name][...] = value
        self.optimizer.iterations = int(iterations)


def load_model(path):
    """The model saved by ``save`` (or by Keras 3): architecture, weights,
    compile settings and optimizer state.
    ValueError if the file is truncated, corrupted, describes what fastconv
    cannot build, or its name ends in none of .keras, .h5, .hdf5, .npz."""
    extension = _extension(path, (".keras", ".h5", ".hdf5", ".npz"))
    if extension is None:
        raise ValueError("File format not supported: filepath={}. load_model reads .keras, "
                         ".h5, .hdf5 and .npz files.".format(os.fspath(path)))
    if extension == ".keras":
        return keras_format.load_keras_model(path)
    if extension != ".npz":
        return keras_format.load_legacy_h5_model(path)
    return _load_npz_model(path)


# What a malformed model description can make building it raise.
DESCRIPTION_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError,
                      RecursionError, MemoryError)


def _load_npz_model(path):
    from .models import Model, Sequential

    with NpzArchive(path) as archive:
        header = archive.header
        if header["kind"] != "model":
            raise ValueError(f"{path} holds only weights (written by save_weights): build the "
                             "model and call load_weights")
        try:
            with archive.weight_budget():
                if header["version"] == 1:
                    model = Sequential.from_config(header["model"])
                else:
                    classes = {"Sequential": Sequential, "Functional": Model, "Model": Model}
                    model = classes[header["model"]["class_name"]].from_config(_config(header))
            compile_config = header.get("compile")
            if compile_config:
                model.compile(optimizers.deserialize(compile_config["optimizer"]),
                              _deserialize_losses(compile_config["loss"]),
                              compile_config.get("loss_weights"),
                              compile_config.get("metrics"))
        except DESCRIPTION_ERRORS as error:
            raise ValueError(f"{path} holds an invalid model description: "
                             f"{type(error).__name__}: {error}") from None
        model._set_saved_weights(archive)
        if model.optimizer is not None:
            model._load_optimizer_state(archive)
    return model


def _extension(path, extensions):
    """The first of ``extensions`` that the file name ``path`` ends in (any case), or None."""
    name = os.fspath(path).lower()
    return next((extension for extension in extensions if name.endswith(extension)), None)


def _config(header):
    return header["model"]["config"] if header["version"] > 1 else header["model"]


def _layer_classes(header):
    """The classes of the saved model's layers (nested models opened), as
    the header lists them (any JSON value when it is malformed)."""
    if header["version"] > 1:
        return header.get("layer_classes")
    layers = header["model"].get("layers")
    if not isinstance(layers, list):
        return layers
    return [layer.get("class_name") if isinstance(layer, dict) else layer for layer in layers]


def _build_input_shape(header):
    """The input shape the saved model was built for, or None."""
    config = _config(header)
    return config.get("build_input_shape") if isinstance(config, dict) else None


@contextlib.contextmanager
def _unbuilt_on_error(model):
    """Undoes whatever the block builds in an unbuilt ``model`` if it raises:
    the model and every layer in it get their attributes back (no weights,
    no shapes, no graph nodes)."""
    if model.built:
        yield
        return
    saved = [(layer, dict(vars(layer)), len(layer.inbound_nodes))
             for layer in _layers_within(model)]
    try:
        yield
    except BaseException:
        for layer, attributes, nodes in saved:
            del layer.inbound_nodes[nodes:]
            vars(layer).clear()
            vars(layer).update(attributes)
        raise


def _layers_within(model):
    """``model`` and every layer in it, nested models opened."""
    found = [model]
    for layer in model.layers:
        found += _layers_within(layer) if hasattr(layer, "leaf_layers") else [layer]
    return found


def _serialize_losses(spec):
    """The compile loss(es) as JSON: names stay names, objects become configs."""
    if isinstance(spec, dict):
        return {key: _serialize_losses(value) for key, value in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [_serialize_losses(item) for item in spec]
    return spec if spec is None or isinstance(spec, str) else losses.serialize(losses.get(spec))


def _deserialize_losses(spec):
    if isinstance(spec, dict) and "class_name" not in spec:
        return {key: _deserialize_losses(value) for key, value in spec.items()}
    if isinstance(spec, list):
        return [_deserialize_losses(item) for item in spec]
    return spec if spec is None or isinstance(spec, str) else losses.deserialize(spec)


def _serialize_metrics(spec):
    """The compile metrics as JSON: names stay names, objects become configs."""
    if isinstance(spec, dict):
        return {key: _serialize_metrics(value) for key, value in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [_serialize_metrics(item) for item in spec]
    return spec if spec is None or isinstance(spec, str) else metrics.serialize(spec)


_writing = set()  # the temporary files this process is writing
# Another machine's or PID namespace's temporary file is deleted only when
# it is this old: its writer's pid means nothing here.
FOREIGN_TEMPORARY_AGE = 24 * 3600  # seconds


def _write_npz(path, header, arrays):
    """Writes ``arrays`` and the JSON ``header`` to the .npz file ``path``."""
    _write_file(path, lambda stream: np.savez(stream, **{HEADER_KEY: np.array(json.dumps(header))},
                                              **arrays))


def _write_file(path, content):
    """Writes ``content`` (bytes, or a function that writes to a binary
    stream) to ``path`` through a temporary file in the same directory,
    '.<name>.<pid space>.<pid>.<random>.tmp', then ``os.replace``.
    Temporary files that killed processes left behind for ``path`` are
    deleted first.  The file gets the permissions open() gives (0o666 less
    the umask), not mkstemp's 0o600."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    _delete_abandoned_temporaries(directory, name)
    temporary = os.path.join(directory, f".{name}.{_pid_space()}.{os.getpid()}."
                                        f"{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_BINARY", 0), 0o666)
    _writing.add(temporary)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            if isinstance(content, bytes):
                stream.write(content)
            else:
                content(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    finally:
        _writing.discard(temporary)


def _pid_space():
    """Names the space in which this process's pid means something: 12 hex
    digits of a hash of the host name and the PID namespace, so that
    containers sharing a volume, or hosts sharing a network file system,
    never judge each other's pids."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:12]


def _delete_abandoned_temporaries(directory, name):
    """Deletes the temporary files of saves to ``name`` whose writer is gone:
    a process of this pid space (see ``_pid_space``) that no longer runs, or
    this process (its pid reused, as in a restarted container) when it is not
    writing them.  Other temporary files (of other pid spaces, or of older
    fastconv versions, '.<name>.<pid>.<random>.tmp') go only once they are
    ``FOREIGN_TEMPORARY_AGE`` old.  POSIX only."""
    if os.name != "posix":
        return  # os.kill(pid, 0) would end the process on Windows
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:([0-9a-f]{{12}})\.)?(\d+)\.[^.]+\.tmp")
    here = _pid_space()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if not match:
                continue
            with contextlib.suppress(OSError):
                if match.group(1) == here:
                    abandoned = not _writer_alive(int(match.group(2)), entry.path)
                else:
                    age = time.time() - entry.stat(follow_symlinks=False).st_mtime
                    abandoned = age > FOREIGN_TEMPORARY_AGE
                if abandoned:
                    os.unlink(entry.path)


def _writer_alive(pid, temporary):
    if pid == os.getpid():
        return temporary in _writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # e.g. PermissionError: another user's process
        pass
    return True


# What reading a damaged archive can raise.
DAMAGED_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
HEADER_LIMIT = 2**26  # bytes of the JSON header's array


class NpzArchive:
    """A fastconv ``.npz`` file (written by ``_write_npz``) opened for
    reading one member at a time; a context manager.

    Opening reads the archive's directory and the JSON ``header`` only.
    Members are read when asked for, and only after their ``.npy`` header
    declares the shape asked for and a size that fills the member exactly,
    so a member is never decompressed beyond its declared size and unknown
    members are never read.  ValueError naming the file if it is truncated,
    corrupted, not ours, or a member does not fit.
    """

    def __init__(self, path):
        self.path = path
        self._stream = open(path, "rb")
        try:
            try:
                self._zip = zipfile.ZipFile(self._stream)
            except DAMAGED_ERRORS as error:
                raise ValueError(f"{path} is not a readable .npz file (truncated or "
                                 f"corrupted?): {error}") from None
            self._members = {info.filename[:-len(".npy")]: info
                             for info in self._zip.infolist() if info.filename.endswith(".npy")}
            self.header = self._read_header()
        except BaseException:
            self._stream.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()

    def __contains__(self, key):
        return key in self._members

    def array(self, key, shape, of):
        """The array of bools, ints or floats stored under ``key``, which must
        have ``shape`` (that of ``of``'s array, e.g. "model 'mnist'", named in
        the error)."""
        if key not in self._members:
            raise ValueError(f"{self.path} has no array {key!r}: it does not fit {of}")
        with self._open(key) as stream:
            declared, dtype, fortran = self._array_header(key, stream)
            if declared != tuple(shape):
                raise ValueError(f"{self.path} does not fit {of}: {key} has shape {declared} "
                                 f"in the file, {tuple(shape)} in {of}")
            if dtype.kind not in "biuf":
                raise ValueError(f"{self.path}: {key} holds dtype {dtype}, not bools, ints or "
                                 "floats")
            return self._read_data(key, stream, declared, dtype, fortran)

    def weight_budget(self):
        """A context (``initializers.weight_budget``) in which building a model
        creates no more weight values than the file's ``layer_*`` members
        declare (their declared sizes fill the members)."""
        values = 0
        for key in self._members:
            if key.startswith("layer_"):
                with self._open(key) as stream:
                    values += math.prod(self._array_header(key, stream)[0])
        return initializers.weight_budget(values, self.path)

    def _read_header(self):
        if HEADER_KEY not in self._members:
            raise ValueError(f"{self.path} is not a fastconv model or weights file (it has no "
                             f"{HEADER_KEY!r} entry)")
        with self._open(HEADER_KEY) as stream:
            shape, dtype, fortran = self._array_header(HEADER_KEY, stream)
            valid = shape == () and dtype.kind == "U" and dtype.itemsize <= HEADER_LIMIT
            text = self._read_data(HEADER_KEY, stream, shape, dtype, fortran) if valid else None
        try:
            header = json.loads(str(text[()]))
            valid = (isinstance(header, dict) and header.get("format") == "fastconv"
                     and header.get("kind") in ("model", "weights")
                     and isinstance(header.get("model"), dict))
        except (TypeError, ValueError, RecursionError):
            valid = False
        if not valid:
            raise ValueError(f"{self.path} has an invalid {HEADER_KEY!r} header")
        if header.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"{self.path} has format version {header.get('version')!r}; this "
                             f"fastconv reads versions {READABLE_VERSIONS}")
        return header

    def _open(self, key):
        try:
            return self._zip.open(self._members[key])
        except DAMAGED_ERRORS as error:
            raise ValueError(f"{self.path} is damaged (truncated or corrupted?): "
                             f"{error}") from None

    def _array_header(self, key, stream):
        """(shape, dtype, fortran order) that member ``key`` declares, once its
        data size fills the member exactly."""
        readers = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
        try:
            shape, fortran, dtype = readers[np.lib.format.read_magic(stream)](stream)
        except (KeyError, *DAMAGED_ERRORS) as error:
            raise ValueError(f"{self.path}: {key} is not a readable array: {error!r}") from None
        size = stream.tell() + math.prod(shape) * dtype.itemsize
        if dtype.hasobject or size != self._members[key].file_size:
            raise ValueError(f"{self.path}: {key} declares {dtype} {shape} but holds "
                             f"{self._members[key].file_size} bytes (damaged or forged?)")
        return shape, dtype, fortran

    def _read_data(self, key, stream, shape, dtype, fortran):
        try:
            data = stream.read(math.prod(shape) * dtype.itemsize)
            stream.read(1)  # at the member's end: checks its CRC
        except DAMAGED_ERRORS as error:
            raise ValueError(f"{self.path} is damaged (truncated or corrupted?): {key}: "
                             f"{error}") from None
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"{self.path} is damaged (truncated?): {key} ends early")
        array = np.frombuffer(data, dtype)
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
