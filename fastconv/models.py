"""Keras's Sequential model on fastconv layers: summary, compile, fit,
evaluate, predict, and saving to ``.npz`` files.

A saved file is an ordinary ``.npz`` archive: the weights under
``layer_<i>/<name>`` (e.g. ``layer_0/kernel``), the optimizer state under
``optimizer/...`` and a JSON header (architecture, compile settings) under
``__fastconv__``.  Files are written to a temporary file in the same
directory and moved into place, so an interrupted save never damages an
earlier file.

Interruptions: Ctrl-C (SIGINT) is held back while the optimizer updates the
weights, so a KeyboardInterrupt in ``fit`` lands before or after a whole step,
never inside one; the model keeps the weights and optimizer state of its last
completed step and can be trained or used again.
"""

import contextlib
import json
import math
import numbers
import os
import re
import secrets
import signal
import threading
import zipfile
import zlib

import numpy as np

from . import activations, losses, optimizers, utils
from .layers import Layer
from .layers import deserialize as deserialize_layer

HEADER_KEY = "__fastconv__"
FORMAT_VERSION = 1
METRICS = ("accuracy", "acc")


class History:
    """What ``fit`` returns: ``history[name]`` lists one value per epoch for
    'loss', the metrics, and 'val_...' when validating.

    ``stopped_early`` is True when training stopped at a batch whose loss or
    gradients were not finite (see ``Sequential.fit``)."""

    def __init__(self, model, params):
        self.model = model
        self.params = params
        self.epoch = []
        self.history = {}
        self.stopped_early = False

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)


class Sequential:
    """A linear stack of layers, built and trained as in Keras.

    ``Sequential([layer, ...])`` or ``add`` one layer at a time.  When the
    first layer has an ``input_shape``, every layer is built on ``add`` (so
    ``summary`` works at once); otherwise the model is built by its first
    call on data.
    """

    def __init__(self, layers=None, name=None):
        self.name = name or utils.unique_name("Sequential")
        self.layers = []
        self.optimizer = self.loss = None
        self.metrics = []
        self._buffers = utils.Buffers()
        for layer in layers or ():
            self.add(layer)

    # -------------------------------------------------------------- building

    def add(self, layer):
        """Appends ``layer``, building it when the model's output shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"the added layer must be a fastconv.layers.Layer, "
                            f"got {type(layer).__name__}: {layer!r}")
        if any(layer.name == other.name for other in self.layers):
            raise ValueError(f"all layers of a Sequential model need unique names: "
                             f"{layer.name!r} is already in {self.name!r}")
        if self.layers and self.layers[-1].built:
            previous = self.layers[-1]
            layer.build(previous.output_shape, previous.dtype)
        elif not self.layers and layer.declared_input_shape is not None:
            layer.build((None,) + layer.declared_input_shape)
        self.layers.append(layer)

    def build(self, input_shape, dtype=None):
        """Builds every layer for inputs of ``input_shape`` (batch axis first)."""
        if not self.layers:
            raise ValueError(f"model {self.name!r} has no layers")
        shape = input_shape
        for layer in self.layers:  # check every shape before building any layer
            shape = layer.output_shape_for(shape)
        shape = input_shape
        for layer in self.layers:
            layer.build(shape, dtype)
            shape, dtype = layer.output_shape, layer.dtype

    @property
    def built(self):
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_shape(self):
        return self.layers[0].input_shape if self.built else None

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    @property
    def dtype(self):
        return self.layers[0].dtype if self.built else None

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, line_length=65, print_fn=None):
        """Prints Keras 2's table of layers, output shapes and parameter counts."""
        if not self.built:
            raise ValueError("This model has not yet been built. Build the model first by "
                             "calling build(), by giving the first layer an input_shape, or "
                             "by calling the model on a batch of data.")
        print_fn = print_fn or print
        positions = [int(line_length * fraction) for fraction in (0.45, 0.85, 1.0)]
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        _print_row(["Layer (type)", "Output Shape", "Param #"], positions, print_fn)
        print_fn("=" * line_length)
        for layer in self.layers:
            _print_row([f"{layer.name} ({type(layer).__name__})", layer.output_shape,
                        layer.count_params()], positions, print_fn)
            print_fn(" " * line_length)
        print_fn("=" * line_length)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total:,}")
        print_fn("Non-trainable params: 0")
        print_fn("_" * line_length)

    # ------------------------------------------------------------- training

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Sets the optimizer (name or fastconv.optimizers object), the loss
        ('categorical_crossentropy', 'sparse_categorical_crossentropy' or a
        fastconv.losses object) and the metrics (None or ['accuracy'])."""
        optimizer = optimizers.get(optimizer)
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        loss = losses.get(loss)
        metrics = [metrics] if isinstance(metrics, str) else list(metrics or ())
        for metric in metrics:
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r}; valid metrics: "
                                 f"{', '.join(repr(name) for name in METRICS)}")
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics[:1]

    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", validation_split=0.0,
            validation_data=None, shuffle=True):
        """Trains for ``epochs`` passes over (x, y) in shuffled batches (the
        last one partial) and returns a ``History``.

        x: (samples,) + input shape; y: labels for the loss (one-hot, or
        class indices for the sparse loss).  validation_split takes the last
        fraction of the data, before shuffling; validation_data is an (x, y) pair.
        verbose: 0 silent, 1 (or 'auto') progress bar, 2 one line per epoch.

        As with Keras's TerminateOnNaN callback, a batch whose loss is NaN or
        Inf ends training with the message "Batch <i>: Invalid loss,
        terminating training" (<i> counts from 0 in the epoch), and so does a
        batch with a non-finite gradient ("Invalid gradient").  Unlike Keras,
        that batch's update is not applied: the weights stay those of the last
        good step (an update that overflows by itself, from finite gradients
        and an enormous learning rate, shows in the next batch's loss only).
        Its epoch is still logged (with that batch's loss) and validated, and
        the History has ``stopped_early`` set.
        """
        self._require_compiled("fit")
        batch_size = _batch_size(batch_size)
        epochs = _count(epochs, "epochs")
        verbose = _verbosity(verbose)
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
                or not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be a number in [0, 1), "
                             f"got {validation_split!r}")
        data = self._prepare(x, y)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            validation = self._prepare(*validation_data)
        elif validation_split:
            split_at = int(len(data[0]) * (1 - validation_split))
            if split_at in (0, len(data[0])):
                raise ValueError(f"{len(data[0])} samples are too few to split with "
                                 f"validation_split={validation_split}")
            validation = tuple(array[split_at:] for array in data)
            data = tuple(array[:split_at] for array in data)

        steps = math.ceil(len(data[0]) / batch_size)
        history = History(self, {"verbose": verbose, "epochs": epochs, "steps": steps})
        for epoch in range(epochs):
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            progbar = utils.Progbar(steps, verbose)
            means = _RunningMeans(self._log_names())
            order = utils.random_generator().permutation(len(data[0])) if shuffle else None
            for step, (x_batch, targets, labels) in enumerate(
                    self._batches(data, batch_size, order)):
                values, invalid = self._train_step(x_batch, targets, labels)
                means.add(len(x_batch), values)
                if invalid:
                    history.stopped_early = True
                    break
                if step + 1 < steps:
                    progbar.update(step + 1, means)  # read only when the bar is redrawn
            logs = means.result()
            if validation is not None:
                logs.update((f"val_{name}", value) for name, value
                            in self._test(validation, batch_size).items())
            progbar.update(step + 1, logs.items(), finalize=True)
            history._append(epoch, logs)
            if history.stopped_early:
                print(f"Batch {step}: Invalid {invalid}, terminating training", flush=True)
                break
        return history

    def evaluate(self, x, y, batch_size=32, verbose="auto"):
        """[loss, accuracy] over (x, y) (just the loss when compiled without metrics)."""
        self._require_compiled("evaluate")
        batch_size = _batch_size(batch_size)
        data = self._prepare(x, y)
        progbar = utils.Progbar(math.ceil(len(data[0]) / batch_size), _verbosity(verbose))
        results = self._test(data, batch_size, progbar)
        return list(results.values()) if self.metrics else results["loss"]

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for x, in its dtype (float32 unless built float64)."""
        batch_size = _batch_size(batch_size)
        verbose = _verbosity(verbose)
        x = self._prepare_inputs(x)
        outputs = np.empty((len(x),) + self.output_shape[1:], self.dtype)
        progbar = utils.Progbar(math.ceil(len(x) / batch_size), verbose)
        for step, (x_batch,) in enumerate(self._batches((x,), batch_size)):
            start = step * batch_size
            outputs[start:start + len(x_batch)] = self._forward(x_batch)
            progbar.update(step + 1)
        return outputs

    def compute_gradients(self, x, y):
        """(loss, gradients) of the batch (x, y): dL/dw for every weight, in
        ``get_weights`` order, as new arrays.  The weights do not change."""
        self._require_compiled("compute_gradients")
        values = self._backpropagate(*self._prepare(x, y))
        return values[0], [g.copy() for layer in self.layers for g in layer.grads.values()]

    def _train_step(self, x, targets, labels):
        """One optimizer step on a batch: (logged values (loss, metric), None),
        or (values, 'loss' or 'gradient') with nothing updated when that is
        not finite.  The update runs with Ctrl-C held back, so that it is
        applied wholly or not at all."""
        values = self._backpropagate(x, targets, labels)
        grads = [g for layer in self.layers for g in layer.grads.values()]
        if not math.isfinite(values[0]):
            return values, "loss"
        if not all(np.isfinite(g).all() for g in grads):
            return values, "gradient"
        with _interrupts_held_back():
            self.optimizer.apply(self._weights(), grads)
        return values, None

    def _backpropagate(self, x, targets, labels):
        """The logged values of a batch; fills every layer's grads."""
        outputs = self._forward(x, training=True, logits=self._skips_softmax())
        with _batch_memory(len(x)):
            grad = self._buffers.get("d_outputs", outputs.shape, outputs.dtype)
            values = self._batch_values(targets, labels, outputs, grad)
            for i in reversed(range(len(self.layers))):
                grad = self.layers[i].backward(grad, need_input_grad=i > 0)
        return values

    def _test(self, data, batch_size, progbar=None):
        """Sample-weighted means of loss and metric over ``data`` (inference)."""
        means = _RunningMeans(self._log_names())
        for step, (x, targets, labels) in enumerate(self._batches(data, batch_size)):
            outputs = self._forward(x, logits=self._skips_softmax())
            means.add(len(x), self._batch_values(targets, labels, outputs))
            if progbar is not None:
                progbar.update(step + 1, means)
        return means.result()

    def _batch_values(self, targets, labels, outputs, gradient=None):
        """(loss,) or (loss, accuracy) of a batch; fills ``gradient`` if given."""
        from_logits = self.loss.from_logits or self._skips_softmax()
        loss = self.loss.value_and_gradient(targets, outputs, gradient, from_logits)
        if not self.metrics:
            return (loss,)
        return loss, float(np.mean(outputs.argmax(axis=-1) == labels))

    def _forward(self, x, training=False, logits=False):
        """The outputs for batch x; with ``logits``, the last layer's softmax is skipped."""
        last = len(self.layers) - 1
        with _batch_memory(len(x)):
            for i, layer in enumerate(self.layers):
                x = layer.forward(x, training, activate=not (logits and i == last))
        return x

    def _skips_softmax(self):
        """Whether training computes the loss from the logits under a final softmax
        (the fused, numerically stable softmax + cross-entropy)."""
        return (not self.loss.from_logits
                and self.layers[-1].activation is activations.softmax)

    def _batches(self, arrays, batch_size, order=None):
        """Batches of ``arrays`` (sliced alike): in order, or gathered by ``order``
        into buffers reused from batch to batch."""
        for start in range(0, len(arrays[0]), batch_size):
            if order is None:
                yield tuple(array[start:start + batch_size] for array in arrays)
                continue
            indices = order[start:start + batch_size]
            yield tuple(np.take(array, indices, axis=0, out=self._buffers.get(
                f"batch_{i}", (len(indices),) + array.shape[1:], array.dtype))
                for i, array in enumerate(arrays))

    def _log_names(self):
        return ["loss"] + self.metrics

    def _weights(self):
        return [w for layer in self.layers for w in layer.params.values()]

    # ------------------------------------------------------------ checking

    def _require_compiled(self, method):
        if self.optimizer is None:
            raise RuntimeError(f"You must compile your model before {method}(): use "
                               "model.compile(optimizer, loss, metrics)")

    def _prepare_inputs(self, x):
        """x checked against the model's input shape, as a C-contiguous array
        of the model's dtype; builds a model that is not built yet."""
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise TypeError(f"inputs must be numbers, got dtype {x.dtype}")
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"inputs must hold at least one sample, got shape {x.shape}")
        if not self.built:
            self.build(x.shape, x.dtype)
        expected = self.input_shape
        if x.shape[1:] != expected[1:]:
            hint = ""
            if x.ndim == len(expected) == 4 and x.shape[1:3] == expected[1:3]:
                hint = f": the images have {x.shape[3]} channels, the model takes {expected[3]}"
            elif len(expected) == 4 and x.shape[1:] == expected[1:3]:
                hint = ": add the channel axis, e.g. x.reshape(x.shape + (1,))"
            raise ValueError(f"model {self.name!r} expects inputs of shape {expected}, "
                             f"got {x.shape}{hint}")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _prepare(self, x, y):
        """(x, targets, class labels) checked against the model and the loss."""
        x = self._prepare_inputs(x)
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"x and y must hold the same number of samples, got {len(x)} "
                             f"inputs and {y.shape[0] if y.ndim else 'a scalar'} labels")
        targets = self.loss.prepare_targets(y, self.output_shape, self.dtype)
        return x, targets, targets.argmax(axis=-1)

    # --------------------------------------------------------------- weights

    def get_weights(self):
        """Copies of every layer's weights, in order (as Keras)."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Sets every layer's weights from one flat list; nothing changes if any
        array does not fit."""
        weights = list(weights)
        expected = sum(len(layer.params) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r} has {expected} weight arrays, got "
                             f"{len(weights)}")
        chunks, start = [], 0
        for layer in self.layers:
            chunks.append(layer.check_weights(weights[start:start + len(layer.params)]))
            start += len(layer.params)
        for layer, chunk in zip(self.layers, chunks):
            layer.set_weights(chunk)

    def get_config(self):
        return {"name": self.name,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers],
                "build_input_shape": list(self.input_shape) if self.built else None}

    @classmethod
    def from_config(cls, config):
        model = cls([deserialize_layer(layer) for layer in config["layers"]],
                    name=config["name"])
        if not model.built and config.get("build_input_shape"):
            model.build(config["build_input_shape"])
        return model

    def save_weights(self, path):
        """Writes the weights to the .npz file ``path`` (atomically)."""
        self._require_built("save_weights")
        _write_npz(path, self._header("weights"), self._weight_arrays())

    def load_weights(self, path):
        """Reads weights saved by ``save_weights`` or ``save`` from a model of the
        same architecture; ValueError if the file does not fit (nothing changes)."""
        self._set_saved_weights(*_read_npz(path), path)

    def _set_saved_weights(self, header, arrays, path):
        saved = [layer.get("class_name") for layer in header["model"].get("layers", [])]
        ours = [type(layer).__name__ for layer in self.layers]
        if saved != ours:
            raise ValueError(f"{path} holds the weights of layers {saved}, but model "
                             f"{self.name!r} has layers {ours}")
        if not self.built and header["model"].get("build_input_shape"):
            self.build(header["model"]["build_input_shape"])
        self._require_built("load_weights")
        weights = [_array(arrays, key, path) for key in self._weight_arrays()]
        try:
            self.set_weights(weights)
        except ValueError as error:
            raise ValueError(f"{path} does not fit model {self.name!r}: {error}") from None

    def save(self, path):
        """Writes the whole model to the .npz file ``path`` (atomically):
        architecture, weights, compile settings and optimizer state."""
        self._require_built("save")
        arrays = self._weight_arrays()
        if self.optimizer is not None:
            for key, slots in zip(list(arrays), self.optimizer.slots or ()):
                arrays.update((f"optimizer/{key}/{name}", value) for name, value in slots.items())
            arrays["optimizer/iterations"] = np.array(self.optimizer.iterations, np.int64)
        _write_npz(path, self._header("model"), arrays)

    def _require_built(self, method):
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built yet, so it has no weights to "
                             f"{method.split('_')[0]}: give the first layer an input_shape or "
                             "call the model on data first")

    def _header(self, kind):
        header = {"format": "fastconv", "version": FORMAT_VERSION, "kind": kind,
                  "model": self.get_config()}
        if kind == "model" and self.optimizer is not None:
            header["compile"] = {
                "optimizer": {"class_name": type(self.optimizer).__name__,
                              "config": self.optimizer.get_config()},
                "loss": {"class_name": type(self.loss).__name__,
                         "config": self.loss.get_config()},
                "metrics": self.metrics}
        return header

    def _weight_arrays(self):
        return {f"layer_{i}/{key}": value for i, layer in enumerate(self.layers)
                for key, value in layer.params.items()}

    def _load_optimizer_state(self, arrays, path):
        if "optimizer/iterations" not in arrays:
            return
        keys = list(self._weight_arrays())
        if keys and any(key.startswith(f"optimizer/{keys[0]}/") for key in arrays):
            self.optimizer.build(self._weights())
            for key, slots in zip(keys, self.optimizer.slots):
                for name, value in slots.items():
                    saved = _array(arrays, f"optimizer/{key}/{name}", path)
                    if saved.shape != value.shape:
                        raise ValueError(f"{path}: optimizer/{key}/{name} has shape "
                                         f"{saved.shape}, expected {value.shape}")
                    value[...] = saved
        self.optimizer.iterations = int(arrays["optimizer/iterations"])


def load_model(path):
    """The model saved by ``Sequential.save``: architecture, weights, compile
    settings and optimizer state.  ValueError if the file is truncated,
    corrupted or not a fastconv model."""
    header, arrays = _read_npz(path)
    if header["kind"] != "model":
        raise ValueError(f"{path} holds only weights (written by save_weights): build the "
                         "model and call load_weights")
    try:
        model = Sequential.from_config(header["model"])
        compile_config = header.get("compile")
        if compile_config:
            model.compile(optimizers.deserialize(compile_config["optimizer"]),
                          losses.deserialize(compile_config["loss"]),
                          compile_config["metrics"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} holds an invalid model description: {error}") from None
    model._set_saved_weights(header, arrays, path)
    if model.optimizer is not None:
        model._load_optimizer_state(arrays, path)
    return model


# ------------------------------------------------------------------ helpers


class _RunningMeans:
    """Sample-weighted means of the logged values over an epoch, as Keras's metrics."""

    def __init__(self, names):
        self.sums = dict.fromkeys(names, 0.0)
        self.count = 0

    def add(self, count, values):
        for name, value in zip(self.sums, values):
            self.sums[name] += value * count
        self.count += count

    def result(self):
        return dict(self)

    def __iter__(self):
        """(name, mean) pairs, computed as they are read."""
        return ((name, total / max(self.count, 1)) for name, total in self.sums.items())


@contextlib.contextmanager
def _interrupts_held_back():
    """Runs the block with SIGINT (Ctrl-C) held back: a signal arriving
    inside it is handed to the program's handler (KeyboardInterrupt by
    default) when the block ends.  Only the main thread receives signals;
    elsewhere, or when SIGINT is ignored or not handled by Python, the
    block runs as it is."""
    handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(handler):
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda *arguments: received.append(arguments))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        if received:
            handler(*received[0])


@contextlib.contextmanager
def _batch_memory(batch):
    """Adds the batch size to a MemoryError raised in the block."""
    try:
        yield
    except MemoryError as error:
        raise MemoryError(f"{error} (running a batch of {batch} samples; a smaller "
                          "batch_size needs less memory)") from error


def _print_row(fields, positions, print_fn):
    """One row of Keras 2's summary table: each field in its column, wrapped
    onto further lines when too long."""
    left = [str(field) for field in fields]
    while any(left):
        line = ""
        for col, text in enumerate(left):
            start = positions[col - 1] if col else 0
            space = 2 if col != len(positions) - 1 else 0
            cutoff = positions[col] - start - space
            fit = text[:cutoff]
            breaks = [fit.find(end) + len(end) for end in ("),", "},", "],", "',")
                      if fit.find(end) >= 0]
            if breaks:
                cutoff = min(breaks)
                fit = fit[:cutoff]
            line += (" " if col == 0 else "") + fit + " " * space
            left[col] = text[cutoff:]
            line += " " * (positions[col] - len(line))
        print_fn(line)


_writing = set()  # the temporary files this process is writing


def _write_npz(path, header, arrays):
    """Writes ``arrays`` and the JSON ``header`` to ``path`` through a temporary
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
            np.savez(stream, **{HEADER_KEY: np.array(json.dumps(header))}, **arrays)
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
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {header.get('version')!r}; this fastconv "
                         f"reads version {FORMAT_VERSION}")
    return header, arrays


def _array(arrays, key, path):
    if key not in arrays:
        raise ValueError(f"{path} has no array {key!r}: it does not fit this model")
    return arrays[key]


def _batch_size(value):
    return 32 if value is None else _count(value, "batch_size", minimum=1)


def _count(value, name, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)
