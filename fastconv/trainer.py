"""The training loop of every model: compile, fit, evaluate, predict and
their ``*_on_batch`` forms, as Keras 3's ``trainers/trainer.py``.

Data are NumPy arrays, batch axis first: one array per model input (a list,
or a dict by input name) and one label array per output.  Each output has
its loss (``compile(loss=...)``: one for all, a list, or a dict by output
name) and its metrics.  Log names follow Keras 3: 'loss' and the metric
names for one output; 'loss', '<output>_loss' and '<output>_<metric>' for
several.

When an output layer ends in the activation that its loss can fold in
(softmax before a categorical cross-entropy, sigmoid before a binary one),
the loop computes that loss from the logits: the fused, numerically stable
form.  The metrics still see probabilities.

As with Keras's TerminateOnNaN callback, a batch whose loss is NaN or Inf
ends training with the message "Batch <i>: Invalid loss, terminating
training" (and a non-finite gradient with "Invalid gradient").  Unlike
Keras, that batch's update is not applied: the weights stay those of the
last good step.  Its epoch is still logged and validated, and
``model.stop_training`` is True after fit.

Interruptions: Ctrl-C (SIGINT) is held back while the optimizer updates the
weights, so a KeyboardInterrupt in ``fit`` lands before or after a whole step,
never inside one.
"""

import contextlib
import math
import signal
import threading
import warnings

import numpy as np

from . import activations, data_adapters, losses, optimizers, utils
from . import callbacks as callbacks_module
from . import metrics as metrics_module
from ._checks import check_int, check_number


class Trainer:
    """Mixed into Model: everything about training.  The model supplies
    ``inputs``, ``outputs``, ``output_names``, ``run_forward``,
    ``run_backward``, ``leaf_layers`` and ``regularization_loss``."""

    def _init_trainer(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._resolved = False
        self._batch_buffers = utils.Buffers()

    # ------------------------------------------------------------ compile

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto"):
        """Sets the optimizer, the loss of each output and its metrics.

        loss: a name, a fastconv.losses object or a function fn(y_true,
        y_pred); for several outputs one for all, a list, or a dict by
        output name.  metrics: a list (for several outputs: a list per
        output, or a dict by output name).  The layers' ``trainable``
        flags are read now: change them, then compile again (as in Keras).
        run_eagerly, steps_per_execution and jit_compile are accepted for
        compatibility and change nothing.
        """
        optimizer = optimizers.get(optimizer)
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        specs = (loss, loss_weights, metrics)
        if self.built:
            resolved = self._resolve(*specs)
        else:  # resolved when the first data build the model; the names are checked now
            for item in _flat(loss):
                losses.get(item)
            for item in _flat(metrics):
                if not (isinstance(item, str) and item.lower() in ("accuracy", "acc")):
                    metrics_module.get(item)
            resolved = None
        self.optimizer, self.loss, self._compile_specs = optimizer, loss, specs
        self._set_resolved(resolved)
        self.compiled = True

    def _resolve(self, loss_spec, loss_weights_spec, metrics_spec):
        """Per output: its loss, loss weight and metrics, from the compile
        arguments; which outputs fold their activation into the loss; the
        layers training updates (their ``trainable`` flags as they are now)."""
        names = self.output_names
        output_losses = _per_output(loss_spec, names, "loss", losses.get)
        weights = _per_output(loss_weights_spec, names, "loss_weights",
                              lambda w: check_number(w, "loss_weights"))
        metric_lists = _per_output(metrics_spec, names, "metrics", _as_list, broadcast=False)
        output_metrics = [[metrics_module.resolve(item, loss, self.outputs[i].shape)
                           for item in items or ()]
                          for i, (loss, items) in enumerate(zip(output_losses, metric_lists))]
        fused = [i for i, loss in enumerate(output_losses)
                 if loss is not None and self._folds_activation(i, loss)]
        return {
            "_output_losses": output_losses,
            "_loss_weights": [1.0 if w is None else w for w in weights],
            "_output_metrics": output_metrics,
            "_fused": fused,
            "_activated_by_loss": [i for i in fused if output_metrics[i] and (
                self.outputs[i].node.layer.activation
                is activations.get(output_losses[i].fused_activation))],
            "_trained_layers": [layer for layer in self.leaf_layers() if layer.trainable],
            "_has_regularizers": any(layer.regularizers for layer in self.leaf_layers()),
        }

    def _set_resolved(self, resolved):
        self._resolved = resolved is not None
        if resolved:
            self.__dict__.update(resolved)
            self.reset_metrics()

    def _folds_activation(self, index, loss):
        layer = self.outputs[index].node.layer
        fused = getattr(loss, "fused_activation", None)
        return (fused is not None and not getattr(loss, "from_logits", False)
                and getattr(getattr(layer, "activation", None), "name", None) == fused
                and not hasattr(layer, "leaf_layers"))

    @property
    def metrics_names(self):
        """The names of the logged values, in order: the loss(es), then the metrics."""
        return list(self._log_names())

    def _log_names(self):
        return self._loss_names() + self._metric_names()

    def _loss_names(self):
        if len(self.outputs) == 1:
            return ["loss"]
        return ["loss"] + [f"{name}_loss" for name, loss in
                           zip(self.output_names, self._output_losses) if loss is not None]

    def _metric_names(self):
        if len(self.outputs) == 1:
            return [m.name for m in self._output_metrics[0]]
        return [f"{name}_{m.name}" for name, metric_list in
                zip(self.output_names, self._output_metrics) for m in metric_list]

    def reset_metrics(self):
        """Starts the running means of the loss and metrics afresh."""
        self._loss_means = {name: _Mean() for name in self._loss_names()}
        for metric_list in self._output_metrics:
            for metric in metric_list:
                metric.reset_state()

    def _logs(self):
        """The running loss and metric values, by log name."""
        logs = {name: mean.result() for name, mean in self._loss_means.items()}
        values = [m.result() for metric_list in self._output_metrics for m in metric_list]
        logs.update(zip(self._metric_names(), (float(v) for v in values)))
        return logs

    # ------------------------------------------------------------ fitting

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Trains for ``epochs`` passes over the data and returns the ``History``.

        x, y: arrays (cut into shuffled batches of ``batch_size``, the last
        one partial), or x a stream of (x, y) batches with y None: a
        ``PyDataset``, a ``fastconv.dataset.Dataset``, a generator (see
        ``fastconv.data_adapters``).  validation_split takes the last
        fraction of array data, before shuffling; validation_data is an
        (x, y) pair or a stream (``validation_steps`` limits it).  verbose:
        0 silent, 1 (or 'auto') progress bar, 2 one line per epoch.
        steps_per_epoch limits the batches of an epoch.
        """
        self._require_compiled("fit")
        _unsupported(class_weight=class_weight, sample_weight=sample_weight)
        epochs = check_int(epochs, "epochs", 0)
        initial_epoch = check_int(initial_epoch, "initial_epoch", 0)
        verbose = _verbosity(verbose)
        validation_freq = check_int(validation_freq, "validation_freq")
        check_number(validation_split, "validation_split", 0, 1, high_open=True)
        steps_per_epoch = _optional_steps(steps_per_epoch, "steps_per_epoch")
        validation_steps = _optional_steps(validation_steps, "validation_steps")
        batch_size = _batch_size(batch_size)
        validation = None
        if data_adapters.is_stream(x):
            if validation_split:
                raise ValueError("validation_split is only supported for arrays: give "
                                 "validation_data for a stream")
            batches = self._batches_of(x, y, batch_size, steps_per_epoch, shuffle=shuffle)
        else:
            data = self._prepare(x, y)
            if validation_split:
                samples = len(data[0][0])
                split_at = int(samples * (1 - validation_split))
                if split_at in (0, samples):
                    raise ValueError(f"{samples} samples are too few to split with "
                                     f"validation_split={validation_split}")
                validation = tuple([a[split_at:] for a in arrays] for arrays in data)
                data = tuple([a[:split_at] for a in arrays] for arrays in data)
            batches = data_adapters.ArrayBatches(data, batch_size, shuffle, steps_per_epoch,
                                                 utils.random_generator(), self._batch_buffers)
        validation_batch_size = _batch_size(validation_batch_size or batch_size)
        if validation is not None:
            validation = data_adapters.ArrayBatches(validation, validation_batch_size)
        elif validation_data is not None:
            validation = self._validation_batches(validation_data, validation_batch_size,
                                                  validation_steps)
        callback_list = callbacks_module.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=batches.steps)
        self.stop_training = False
        callback_list.on_train_begin()
        epoch_logs = None
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            invalid, steps_done = None, 0
            for step, batch in enumerate(batches.epoch()):
                steps_done = step + 1
                callback_list.on_train_batch_begin(step)
                invalid = self._train_step(*batch)
                callback_list.on_train_batch_end(step, self._logs())
                if invalid:
                    self.stop_training = True
                if self.stop_training:
                    break
            batches.end_epoch()
            if getattr(batches, "exhausted", False):
                self.stop_training = True
                if steps_done == 0:  # a generator with nothing left: no epoch to log
                    break
            epoch_logs = self._logs()
            if validation is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_batches(validation, callback_list)
                epoch_logs.update((f"val_{name}", value) for name, value in val_logs.items())
            callback_list.on_epoch_end(epoch, epoch_logs)
            if invalid:
                print(f"Batch {step}: Invalid {invalid}, terminating training", flush=True)
            if self.stop_training:
                break
        callback_list.on_train_end(epoch_logs)
        return self.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss and metrics over (x, y) (or a stream of batches, ``steps``
        of them at most): a scalar when there is only the loss, else a list
        in ``metrics_names`` order (a dict with return_dict)."""
        self._require_compiled("evaluate")
        _unsupported(sample_weight=sample_weight)
        verbose = _verbosity(verbose)
        batches = self._batches_of(x, y, _batch_size(batch_size),
                                   _optional_steps(steps, "steps"))
        callback_list = callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=batches.steps)
        return _results(self._evaluate_batches(batches, callback_list), return_dict)

    def _validation_batches(self, validation_data, batch_size, steps):
        if data_adapters.is_stream(validation_data):
            return self._batches_of(validation_data, None, batch_size, steps)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val) or a stream of "
                             "(x, y) batches")
        return self._batches_of(*validation_data, batch_size, steps)

    def _batches_of(self, x, y, batch_size, steps, shuffle=False):
        """The batches of arrays (x, y) or of a stream x, prepared for the steps."""
        if data_adapters.is_stream(x):
            if y is not None:
                raise ValueError("y must be None when x is a stream of (x, y) batches")
            return data_adapters.StreamBatches(x, self._prepare, steps)
        return data_adapters.ArrayBatches(self._prepare(x, y), batch_size, shuffle, steps,
                                          utils.random_generator(), self._batch_buffers)

    def _evaluate_batches(self, batches, callback_list):
        self.reset_metrics()
        callback_list.on_test_begin()
        for step, batch in enumerate(batches.epoch()):
            callback_list.on_test_batch_begin(step)
            self._test_step(*batch)
            callback_list.on_test_batch_end(step, self._logs())
        logs = self._logs()
        callback_list.on_test_end(logs)
        return logs

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x (arrays, or a stream of batches: x, or
        (x, y) whose y is ignored), in its dtype: one array, or a list for
        several outputs."""
        batch_size = _batch_size(batch_size)
        verbose = _verbosity(verbose)
        steps = _optional_steps(steps, "steps")
        if data_adapters.is_stream(x):
            batches = data_adapters.StreamBatches(
                x, lambda x_batch, _: (self._prepare_inputs(x_batch),), steps)
        else:
            batches = data_adapters.ArrayBatches(([*self._prepare_inputs(x)],), batch_size,
                                                 steps=steps)
        callback_list = callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=batches.steps)
        callback_list.on_predict_begin()
        # Arrays: the outputs go straight into arrays of the known size; a
        # stream's batches are kept and joined at the end.
        known = getattr(batches, "samples", None)
        if known is not None:
            count = min(known, batches.steps * batch_size)
            results = [np.empty((count,) + tuple(t.shape[1:]), self.dtype) for t in self.outputs]
        else:
            results = [[] for _ in self.outputs]
        start = 0
        for step, (x_batch,) in enumerate(batches.epoch()):
            callback_list.on_predict_batch_begin(step)
            outputs = self._forward(x_batch)
            for result, output in zip(results, outputs):
                if known is not None:
                    result[start:start + len(output)] = output
                else:
                    result.append(output.copy())
            start += len(outputs[0])
            callback_list.on_predict_batch_end(
                step, {"outputs": outputs[0] if len(outputs) == 1 else outputs})
        callback_list.on_predict_end()
        if known is None:
            results = [np.concatenate(parts) if parts else
                       np.empty((0,) + tuple(t.shape[1:]), self.dtype)
                       for parts, t in zip(results, self.outputs)]
        return results[0] if self._single_output else results

    def fit_generator(self, generator, *args, **kwargs):
        """Keras 2's name for ``fit`` on a generator (deprecated)."""
        _warn_deprecated("fit_generator", "fit")
        return self.fit(generator, None, *args, **kwargs)

    def evaluate_generator(self, generator, *args, **kwargs):
        """Keras 2's name for ``evaluate`` on a generator (deprecated)."""
        _warn_deprecated("evaluate_generator", "evaluate")
        return self.evaluate(generator, None, *args, **kwargs)

    def predict_generator(self, generator, *args, **kwargs):
        """Keras 2's name for ``predict`` on a generator (deprecated)."""
        _warn_deprecated("predict_generator", "predict")
        return self.predict(generator, *args, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on (x, y); the running loss and metrics since
        the last ``reset_metrics`` (as Keras 3), a scalar or a list."""
        self._require_compiled("train_on_batch")
        _unsupported(sample_weight=sample_weight, class_weight=class_weight)
        self._train_step(*self._prepare(x, y))
        return _results(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss and metrics of (x, y), accumulated like train_on_batch's."""
        self._require_compiled("test_on_batch")
        _unsupported(sample_weight=sample_weight)
        self._test_step(*self._prepare(x, y))
        return _results(self._logs(), return_dict)

    def predict_on_batch(self, x):
        outputs = [o.copy() for o in self._forward(self._prepare_inputs(x))]
        return outputs[0] if self._single_output else outputs

    def compute_gradients(self, x, y):
        """(loss, gradients) of the batch (x, y): dL/dw for every trainable
        weight, in ``trainable_weights`` order, as new arrays.  The weights
        do not change."""
        self._require_compiled("compute_gradients")
        xs, targets, _ = self._prepare(x, y)
        loss = self._backpropagate(xs, targets)[0]
        return loss, [grad.copy() for layer in self._trained_layers
                      for _, grad in layer.trainable_pairs()]

    # ---------------------------------------------------------- the steps

    def _train_step(self, xs, targets, raw_labels):
        """One optimizer step on a batch; returns None, or 'loss' or 'gradient'
        when that is not finite (then nothing is updated).  The update runs
        with Ctrl-C held back, so that it is applied wholly or not at all."""
        loss, outputs = self._backpropagate(xs, targets)
        self._update_metrics(outputs, raw_labels, len(xs[0]))
        pairs = [pair for layer in self._trained_layers for pair in layer.trainable_pairs()]
        if not math.isfinite(loss):
            return "loss"
        with _interrupts_held_back():
            applied = self.optimizer._apply([w for w, _ in pairs], [g for _, g in pairs],
                                            check_finite=True)
        return None if applied else "gradient"

    def _backpropagate(self, xs, targets):
        """(total loss, outputs) of a training forward; fills every layer's grads."""
        with _batch_memory(len(xs[0])):
            outputs = self.run_forward(xs, training=True, logits_of=self._fused)
            grads = [None if loss is None else
                     self._batch_buffers.get(f"d_output_{i}", out.shape, out.dtype)
                     for i, (loss, out) in enumerate(zip(self._output_losses, outputs))]
            total = self._losses(outputs, targets, len(xs[0]), grads)
            self.run_backward(grads)
        return total, outputs

    def _test_step(self, xs, targets, raw_labels):
        outputs = self._forward(xs, logits=True)
        self._losses(outputs, targets, len(xs[0]))
        self._update_metrics(outputs, raw_labels, len(xs[0]))

    def _forward(self, xs, logits=False):
        with _batch_memory(len(xs[0])):
            return self.run_forward(xs, training=False, logits_of=self._fused if logits else ())

    def _losses(self, outputs, targets, count, grads=None):
        """The weighted total loss of a batch (regularization included), added
        to the running means; fills ``grads`` (scaled by the loss weights).
        Fused outputs (logits) whose metrics need their activation are
        replaced in the list ``outputs`` by it, which their loss computes."""
        values, total = [], 0.0
        for i, (loss, weight) in enumerate(zip(self._output_losses, self._loss_weights)):
            if loss is None:
                continue
            gradient = None if grads is None else grads[i]
            activated = (self._batch_buffers.get(f"activated_{i}", outputs[i].shape,
                                                 outputs[i].dtype)
                         if i in self._activated_by_loss else None)
            value = loss.value_and_gradient(targets[i], outputs[i], gradient,
                                            True if i in self._fused else None, activated)
            if activated is not None:
                outputs[i] = activated
            if gradient is not None and weight != 1:
                gradient *= weight
            values.append(value)
            total += weight * value
        if self._has_regularizers:
            total += self.regularization_loss()
        means = list(self._loss_means.values())
        means[0].add(total, count)
        for mean, value in zip(means[1:], values):
            mean.add(value, count)
        return total

    def _update_metrics(self, outputs, raw_labels, count):
        """Feeds each output's metrics, after ``_losses`` on ``outputs``:
        fused outputs it did not activate are logits until their activation
        is applied here (in place: their backward is done)."""
        if not any(self._output_metrics):
            return
        for i, (output, metric_list) in enumerate(zip(outputs, self._output_metrics)):
            if not metric_list:
                continue
            if i in self._fused and i not in self._activated_by_loss:
                output = self.outputs[i].node.layer.activation.forward(output, output)
            for metric in metric_list:
                metric.update_state(raw_labels[i], output)

    # ------------------------------------------------------------ checking

    def _require_compiled(self, method):
        if self.optimizer is None:
            raise RuntimeError(f"You must compile your model before {method}(): use "
                               "model.compile(optimizer, loss, metrics)")

    def _prepare_inputs(self, x):
        """The inputs as a list of C-contiguous arrays of the model's dtype,
        one per model input, checked against the input shapes; builds a
        model that is not built yet."""
        arrays = self._per_input(x)
        for array in arrays:
            if not (np.issubdtype(array.dtype, np.integer)
                    or np.issubdtype(array.dtype, np.floating)):
                raise TypeError(f"inputs must be numbers, got dtype {array.dtype}")
            if array.ndim == 0 or len(array) == 0:
                raise ValueError(f"inputs must hold at least one sample, got shape "
                                 f"{array.shape}")
        if not self.built:
            self.build(arrays[0].shape, arrays[0].dtype)
        if len(arrays) != len(self.inputs):
            raise ValueError(f"model {self.name!r} has {len(self.inputs)} inputs, got "
                             f"{len(arrays)} arrays")
        prepared = []
        for array, tensor in zip(arrays, self.inputs):
            expected = tensor.shape
            if array.shape[1:] != expected[1:]:
                hint = ""
                if array.ndim == len(expected) == 4 and array.shape[1:3] == expected[1:3]:
                    hint = (f": the images have {array.shape[3]} channels, the model takes "
                            f"{expected[3]}")
                elif len(expected) == 4 and array.shape[1:] == expected[1:3]:
                    hint = ": add the channel axis, e.g. x.reshape(x.shape + (1,))"
                raise ValueError(f"model {self.name!r} expects inputs of shape {expected}, "
                                 f"got {array.shape}{hint}")
            prepared.append(np.ascontiguousarray(array, dtype=self.dtype))
        if len({len(a) for a in prepared}) > 1:
            raise ValueError(f"all inputs must hold the same number of samples, got "
                             f"{[len(a) for a in prepared]}")
        return prepared

    def _per_input(self, x):
        if isinstance(x, dict):
            if self.built:
                missing = [name for name in self.input_names if name not in x]
                if missing:
                    raise ValueError(f"the input dict has no entry for input(s) {missing}; "
                                     f"it has {list(x)}")
                return [np.asarray(x[name]) for name in self.input_names]
            x = list(x.values())
        if isinstance(x, (list, tuple)) and (not self.built or len(self.inputs) > 1):
            if x and all(isinstance(item, np.ndarray) for item in x):
                return [np.asarray(item) for item in x]
        return [np.asarray(x)]

    def _prepare(self, x, y):
        """(inputs, targets, raw labels): lists with one array per input, and
        per output the loss's dense targets and the labels as given."""
        if y is None:
            raise ValueError("training and evaluation need labels y")
        xs = self._prepare_inputs(x)
        if not self._resolved:
            self._set_resolved(self._resolve(*self._compile_specs))
        labels = _per_output(y, self.output_names, "y", np.asarray, broadcast=False)
        targets = []
        for i, (label, loss) in enumerate(zip(labels, self._output_losses)):
            if loss is None:
                targets.append(None)
                continue
            if label.ndim == 0 or len(label) != len(xs[0]):
                raise ValueError(f"x and y must hold the same number of samples, got "
                                 f"{len(xs[0])} inputs and "
                                 f"{label.shape[0] if label.ndim else 'a scalar'} labels")
            targets.append(loss.prepare_targets(label, self.outputs[i].shape, self.dtype))
        return xs, targets, labels


class _Mean:
    """A running mean weighted by batch sizes, as Keras's loss tracker."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, value, count):
        self.total += value * count
        self.count += count

    def result(self):
        return self.total / self.count if self.count else 0.0


def _per_output(spec, names, what, convert, broadcast=True):
    """One converted entry per output (None where ``spec`` has none) from
    ``spec``: a dict by output name; for several outputs a list in output
    order, or (when ``broadcast``) one value for all; for one output, the
    value itself."""
    if isinstance(spec, dict):
        unknown = [key for key in spec if key not in names]
        if unknown:
            raise ValueError(f"{what} names unknown outputs {unknown}; the outputs are {names}")
        return [None if spec.get(name) is None else convert(spec[name]) for name in names]
    if len(names) == 1:
        if what in ("loss", "loss_weights") and isinstance(spec, (list, tuple)) \
                and len(spec) == 1:
            spec = spec[0]
        return [None if spec is None else convert(spec)]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"For a model with multiple outputs, when providing the `{what}` "
                             f"argument as a list, it should have as many entries as the model "
                             f"has outputs. Received: {what}={spec!r} of length {len(spec)} "
                             f"whereas the model has {len(names)} outputs.")
        return [None if item is None else convert(item) for item in spec]
    if spec is None or broadcast:
        return [None if spec is None else convert(spec) for _ in names]
    raise ValueError(f"the model has {len(names)} outputs: give {what} as a list or a dict "
                     f"by output name ({names})")


def _flat(spec):
    """The items of a compile argument: one, a list, a dict, or lists within
    them (None stands for no item at the top only)."""
    if spec is None:
        return []
    if isinstance(spec, dict):
        spec = list(spec.values())
    if not isinstance(spec, (list, tuple)):
        return [spec]
    return [item for part in spec
            for item in (_flat(part) if isinstance(part, (list, tuple, dict)) else [part])]


def _as_list(item):
    return list(item) if isinstance(item, (list, tuple)) else [item]


def _results(logs, return_dict):
    if return_dict:
        return dict(logs)
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _unsupported(**arguments):
    for name, value in arguments.items():
        if value is not None:
            raise NotImplementedError(f"{name} is not supported by fastconv yet")


def _optional_steps(value, name):
    return None if value is None else check_int(value, name)


def _warn_deprecated(old, new):
    warnings.warn(f"`Model.{old}` is deprecated and will be removed in a future version. "
                  f"Please use `Model.{new}`, which supports generators.", UserWarning,
                  stacklevel=3)


def _batch_size(value):
    return 32 if value is None else check_int(value, "batch_size")


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


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
