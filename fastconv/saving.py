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
"""

import contextlib
import json
import os
import re
import secrets
import zipfile
import zlib

import numpy as np

from . import keras_format, losses, metrics, optimizers

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
            header, arrays = _read_npz(path)
            self._set_saved_weights(header, arrays, path)
            return
        self._require_built("load_weights")
        keras_format.load_weights(self, path)

    def _set_saved_weights(self, header, arrays, path):
        saved = _layer_classes(header)
        if not self.built and header["version"] == 1 and header["model"].get("build_input_shape"):
            self.build(header["model"]["build_input_shape"])
        elif not self.built and _config(header).get("build_input_shape"):
            self.build(_config(header)["build_input_shape"])
        self._require_built("load_weights")
        ours = [type(layer).__name__ for layer in self.leaf_layers()]
        if saved != ours:
            raise ValueError(f"{path} holds the weights of layers {saved}, but model "
                             f"{self.name!r} has layers {ours}")
        weights = [_array(arrays, key, path) for key in self._weight_arrays()]
        try:
            self.set_weights(weights)
        except ValueError as error:
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

    def _load_optimizer_state(self, arrays, path):
        if "optimizer/iterations" not in arrays:
            return
        keys = self._trained_keys()
        if keys and any(key.startswith(f"optimizer/{keys[0]}/") for key in arrays):
            weights = self._weight_arrays()
            self.optimizer.build([weights[key] for key in keys])
            for key, slots in zip(keys, self.optimizer.slots):
                for name, value in slots.items():
                    saved = _array(arrays, f"optimizer/{key}/{name}", path)
                    if saved.shape != value.shape:
                        raise ValueError(f"{path}: optimizer/{key}/{name} has shape "
                                         f"{saved.shape}, expected {value.shape}")
                    value[...] = saved
        self.optimizer.iterations = int(arrays["optimizer/iterations"])


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


def _load_npz_model(path):
    from .models import Model, Sequential

    header, arrays = _read_npz(path)
    if header["kind"] != "model":
        raise ValueError(f"{path} holds only weights (written by save_weights): build the "
                         "model and call load_weights")
    try:
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
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} holds an invalid model description: {error}") from None
    model._set_saved_weights(header, arrays, path)
    if model.optimizer is not None:
        model._load_optimizer_state(arrays, path)
    return model


def _extension(path, extensions):
    """The first of ``extensions`` that the file name ``path`` ends in (any case), or None."""
    name = os.fspath(path).lower()
    return next((extension for extension in extensions if name.endswith(extension)), None)


def _config(header):
    return header["model"]["config"] if header["version"] > 1 else header["model"]


def _layer_classes(header):
    """The classes of the saved model's layers (nested models opened)."""
    if header["version"] > 1:
        return header.get("layer_classes")
    return [layer.get("class_name") for layer in header["model"].get("layers", [])]


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


def _write_npz(path, header, arrays):
    """Writes ``arrays`` and the JSON ``header`` to the .npz file ``path``."""
    _write_file(path, lambda stream: np.savez(stream, **{HEADER_KEY: np.array(json.dumps(header))},
                                              **arrays))


def _write_file(path, content):
    """Writes ``content`` (bytes, or a function that writes to a binary
    stream) to ``path`` through a temporary
    file in the same directory, '.<name>.<pid>.<random>.tmp', then
    ``os.replace``.  Temporary files that killed processes left behind for
    ``path`` are deleted first.  The file gets the permissions open() gives
    (0o666 less the umask), not mkstemp's 0o600."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    _delete_abandoned_temporaries(directory, name)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
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


def _delete_abandoned_temporaries(directory, name):
    """Deletes the temporary files of saves to ``name`` whose writer is gone:
    a process that no longer runs, or this process (its pid reused, as in a
    restarted container) when it is not writing them.  POSIX only."""
    if os.name != "posix":
        return  # os.kill(pid, 0) would end the process on Windows
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[^.]+\.tmp")
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not _writer_alive(int(match.group(1)), entry.path):
                with contextlib.suppress(OSError):
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


def _read_npz(path):
    """(header, {key: array}) of a file written by ``_write_npz``; ValueError
    if it is truncated, corrupted or not ours."""
    damaged = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    with open(path, "rb") as stream:  # closed even when numpy fails on a damaged file
        try:
            archive = np.load(stream, allow_pickle=False)
        except damaged as error:
            raise ValueError(f"{path} is not a readable .npz file (truncated or corrupted?): "
                             f"{error}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} is a single .npy array, not a fastconv .npz file")
        with archive:
            try:
                arrays = {key: archive[key] for key in archive.files}
            except damaged as error:
                raise ValueError(f"{path} is damaged (truncated or corrupted?): "
                                 f"{error}") from None
    if HEADER_KEY not in arrays:
        raise ValueError(f"{path} is not a fastconv model or weights file (it has no "
                         f"{HEADER_KEY!r} entry)")
    try:
        header = json.loads(str(arrays.pop(HEADER_KEY)[()]))
        valid = (header.get("format") == "fastconv" and header.get("kind") in ("model", "weights")
                 and isinstance(header.get("model"), dict))
    except (ValueError, AttributeError, IndexError):
        valid = False
    if not valid:
        raise ValueError(f"{path} has an invalid {HEADER_KEY!r} header")
    if header.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{path} has format version {header.get('version')!r}; this fastconv "
                         f"reads versions {READABLE_VERSIONS}")
    return header, arrays


def _array(arrays, key, path):
    if key not in arrays:
        raise ValueError(f"{path} has no array {key!r}: it does not fit this model")
    return arrays[key]
