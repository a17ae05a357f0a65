"""Keras 3's callbacks: objects whose hooks ``fit``, ``evaluate`` and
``predict`` call at fixed points of their loops.

How the training loop drives them (Keras 3's order, from its
``trainers/trainer.py`` and ``backend/torch/trainer.py``)::

    callbacks = CallbackList(user_callbacks, add_history=True,
                             add_progbar=verbose != 0, model=model,
                             verbose=verbose, epochs=epochs, steps=steps_per_epoch)
    model.stop_training = False
    callbacks.on_train_begin()
    training_logs = {}
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        for step, batch in enumerate(batches):
            callbacks.on_train_batch_begin(step)
            logs = train_step(batch)          # running epoch means so far,
            callbacks.on_train_batch_end(step, logs)   # {'loss': .., 'accuracy': ..}
            if model.stop_training:
                break
        epoch_logs = dict(logs)              # the epoch's means
        if validating:                       # evaluate() with the same list:
            callbacks.on_test_begin()
            for step, batch in enumerate(validation_batches):
                callbacks.on_test_batch_begin(step)
                callbacks.on_test_batch_end(step, running_validation_means)
            callbacks.on_test_end(validation_logs)       # unprefixed names
            epoch_logs.update(('val_' + name, value)
                              for name, value in validation_logs.items())
        callbacks.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if model.stop_training:
            break
    callbacks.on_train_end(logs=training_logs)
    return callbacks.history                 # also model.history

``evaluate`` builds ``CallbackList(user_callbacks, add_progbar=verbose != 0,
model=model, verbose=verbose, epochs=1, steps=steps)`` and calls
``on_test_begin()``, ``on_test_batch_begin(step)`` /
``on_test_batch_end(step, running_means)`` per batch, ``on_test_end(results)``;
``predict`` likewise ``on_predict_begin()``, ``on_predict_batch_begin(step)`` /
``on_predict_batch_end(step, {'outputs': batch_outputs})`` and
``on_predict_end()``.  ``steps`` may be None when the number of batches is
unknown.  During ``fit`` the ProgbarLogger stays silent for validation.

Logs: every hook of a ``CallbackList`` hands its callbacks one new dict per
call, as Keras's ``pythonify_logs`` does: keys sorted, nested dicts
flattened, NumPy scalars as Python floats.  The loop's own dict is never
changed; the callbacks of one call share that dict, so a key a callback adds
(ReduceLROnPlateau's 'learning_rate') reaches the ones after it, History
included (it comes last).  An exception raised by a callback propagates
unchanged.

The model the callbacks use needs: ``stop_training`` (bool, read by the loop
after each batch and epoch), ``get_weights()``, ``set_weights(list)``,
``save(path)``, ``save_weights(path)`` and ``optimizer.learning_rate`` (a float,
read and assigned); CallbackList sets ``model.history``.
"""

import csv
import inspect
import numbers
import os
import warnings

import numpy as np

from . import utils
from ._checks import check_choice, check_int, check_number
from ._registry import Registry

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end",
         "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
         "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
         "on_predict_batch_end")

# Directions of Keras's built-in metrics (their ``_direction``), for mode='auto'.
MAXIMIZED = frozenset((
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "auc", "precision", "recall", "f1_score",
    "fbeta_score", "iou", "mean_iou", "pearson_correlation", "concordance_correlation",
    "cosine_similarity", "r2_score"))
MINIMIZED = frozenset((
    "loss", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "mean_squared_error", "mse",
    "mean_absolute_error", "mae", "mean_absolute_percentage_error", "mape",
    "mean_squared_logarithmic_error", "msle", "root_mean_squared_error", "logcosh",
    "hinge", "squared_hinge", "categorical_hinge"))


class Callback:
    """Base class: every hook does nothing (``on_train_batch_begin/end`` call
    their aliases ``on_batch_begin/end``).  ``model`` and ``params`` (a dict
    with 'verbose', 'epochs' and 'steps') are set by the CallbackList."""

    def __init__(self):
        self.model = None
        self.params = None

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        """Before the first epoch of ``fit``."""

    def on_train_end(self, logs=None):
        """After the last epoch; logs are the last epoch's logs."""

    def on_epoch_begin(self, epoch, logs=None):
        """Before epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        """After epoch ``epoch``; logs: the epoch's means, and 'val_' ones
        when validating."""

    def on_batch_begin(self, batch, logs=None):
        """Alias of ``on_train_batch_begin`` (Keras's older name)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of ``on_train_batch_end`` (Keras's older name)."""

    def on_train_batch_begin(self, batch, logs=None):
        """Before training batch ``batch`` (counted from 0 in each epoch)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """After training batch ``batch``; logs: the epoch's running means."""
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        """Before ``evaluate``, or the validation of an epoch in ``fit``."""

    def on_test_end(self, logs=None):
        """After evaluation; logs: its results (without 'val_')."""

    def on_test_batch_begin(self, batch, logs=None):
        """Before evaluation batch ``batch``."""

    def on_test_batch_end(self, batch, logs=None):
        """After evaluation batch ``batch``; logs: the running means."""

    def on_predict_begin(self, logs=None):
        """Before ``predict``."""

    def on_predict_end(self, logs=None):
        """After ``predict``."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Before prediction batch ``batch``."""

    def on_predict_batch_end(self, batch, logs=None):
        """After prediction batch ``batch``; logs: {'outputs': the batch's outputs}."""


CALLBACKS = Registry("callback", Callback)


class CallbackList(Callback):
    """Calls each hook on every callback, in order.

    callbacks: a Callback, a list of them (nested lists are flattened) or
    None.  add_history / add_progbar append a History / ProgbarLogger unless
    the list holds one already.  model and params (``verbose``, ``epochs``,
    ``steps``) are passed on to every callback.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        self.callbacks = _flatten(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be fastconv.callbacks.Callback instances, "
                                f"got {callback!r}")
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self.set_model(model)
        self.set_params(params)

    @property
    def history(self):
        """The History callback of the list (None when there is none)."""
        return self._history

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def _call(self, hook, *args, logs=None, logs_by_name=False):
        """Calls ``hook`` of every callback with ``args`` and one plain copy of
        the logs, passed by name to the batch hooks (as Keras does)."""
        logs = _plain_logs(logs)
        for callback in self.callbacks:
            if logs_by_name:
                getattr(callback, hook)(*args, logs=logs)
            else:
                getattr(callback, hook)(*args, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs=logs, logs_by_name=True)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs=logs, logs_by_name=True)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs, logs_by_name=True)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs, logs_by_name=True)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs, logs_by_name=True)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs, logs_by_name=True)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs, logs_by_name=True)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs, logs_by_name=True)


class History(Callback):
    """Records the logs of every epoch: ``history[name]`` lists one value per
    epoch, ``epoch`` the epoch indices; ``fit`` returns it (``model.history``)."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints progress: "Epoch i/n" (when n > 1) and a bar per epoch drawn
    from the batch logs and finished with the epoch logs (verbose=1), or one
    line per epoch (verbose=2); a bar for ``evaluate`` and ``predict`` too,
    but not for the validation inside ``fit``.  Reads 'verbose', 'epochs' and
    'steps' (None: unknown, a running count) from the params."""

    def __init__(self):
        super().__init__()
        self.verbose = 1
        self.epochs = 1
        self.target = None
        self.seen = 0
        self.progbar = None
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._start_progbar()
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish_progbar(logs)

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._start_progbar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finish_progbar(logs)

    def on_predict_begin(self, logs=None):
        self._start_progbar()

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)  # the outputs are not shown

    def on_predict_end(self, logs=None):
        self._finish_progbar(logs)

    def _start_progbar(self):
        self.seen = 0
        # The logs are the running means already: shown as they are.
        self.progbar = utils.Progbar(self.target, verbose=self.verbose, stateless_metrics=())

    def _update_progbar(self, batch, logs):
        if self.progbar is None:
            self._start_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finish_progbar(self, logs):
        if self.progbar is None:
            self._start_progbar()
        if self.target is None:
            self.target = self.progbar.target = self.seen
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)


class _MonitorCallback(Callback):
    """A callback that watches ``monitor`` in the epoch logs.

    mode 'min' / 'max', or 'auto': from the name without 'val_', 'max' for
    Keras's accuracy-like metrics (accuracy, acc, auc, ...), 'min' for the
    loss and error metrics; other names need an explicit mode.  A value
    improves on a reference when it beats it by more than ``min_delta``."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str (a key of the logs), got {monitor!r}")
        self.monitor = monitor
        self.mode = check_choice(mode, "mode", ("auto", "min", "max"))
        self.min_delta = abs(check_number(min_delta, "min_delta"))
        self.best = None
        self.maximize = mode == "max"
        if mode == "auto":
            name = monitor.removeprefix("val_")
            if name not in MAXIMIZED | MINIMIZED:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={monitor}, but "
                    "fastconv isn't able to automatically determine whether that metric "
                    "should be maximized or minimized. Pass `mode='max'` in order to "
                    "monitor based on the highest metric value, or pass `mode='min'` in "
                    "order to use the lowest value.")
            self.maximize = name in MAXIMIZED

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.maximize:
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def _config(self):
        return {"monitor": self.monitor, "mode": self.mode}


@CALLBACKS.register()
class EarlyStopping(_MonitorCallback):
    """Stops training (``model.stop_training = True``) when ``monitor`` has
    not improved by more than ``min_delta`` for ``patience`` epochs, counting
    from epoch ``start_from_epoch``.

    With a ``baseline``, the count of epochs without improvement restarts
    only at epochs that also beat the baseline.  ``restore_best_weights``
    puts back, at the end of training (whoever stopped it), the weights of
    the epoch with the best monitored value.  ``stopped_epoch`` is the epoch
    this callback stopped training at (0 when it did not)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = check_int(patience, "patience", minimum=0)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.baseline = None if baseline is None else check_number(baseline, "baseline")
        self.restore_best_weights = check_choice(restore_best_weights,
                                                 "restore_best_weights", (False, True))
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", minimum=0)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored_value(logs, self.monitor, "Early stopping conditioned on")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.", flush=True)
            self.model.set_weights(self.best_weights)

    def get_config(self):
        return {**self._config(), "min_delta": self.min_delta, "patience": self.patience,
                "verbose": self.verbose, "baseline": self.baseline,
                "restore_best_weights": self.restore_best_weights,
                "start_from_epoch": self.start_from_epoch}


@CALLBACKS.register()
class ModelCheckpoint(_MonitorCallback):
    """Saves the model (``model.save(path)``) or its weights
    (``model.save_weights(path)``) after every epoch, or every ``save_freq``
    batches.

    ``filepath`` may hold format fields filled from the epoch (counted from 1),
    the batch (from 1, when saving by batches) and the logs, e.g.
    'ckpt-{epoch:02d}-{val_loss:.2f}.keras'; missing directories are created.
    It must end in .keras, .h5 or .npz (.weights.h5 or .npz with
    ``save_weights_only``), as Keras 3 checks.
    With ``save_best_only`` it saves only when ``monitor`` improves on the
    best value so far (at first ``initial_value_threshold``), and whenever the
    value is missing from the logs (with a warning)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, 0)
        self.filepath = _path(filepath, "filepath")
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.save_best_only = check_choice(save_best_only, "save_best_only", (False, True))
        self.save_weights_only = check_choice(save_weights_only, "save_weights_only",
                                              (False, True))
        endings = (".weights.h5", ".npz") if self.save_weights_only else (".keras", ".h5", ".npz")
        if not self.filepath.endswith(endings):
            what = ("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath"
                    if self.save_weights_only else "The filepath")
            raise ValueError(f"{what} provided must end in {' or '.join(endings)} (the Keras "
                             f"and fastconv formats). Received: filepath={self.filepath}")
        if save_freq != "epoch":
            if isinstance(save_freq, str):
                raise ValueError(f"save_freq must be 'epoch' or a number of batches, "
                                 f"got {save_freq!r}")
            check_int(save_freq, "save_freq")
        self.save_freq = save_freq
        self.initial_value_threshold = None if initial_value_threshold is None else \
            check_number(initial_value_threshold, "initial_value_threshold")
        self.best = self.initial_value_threshold
        self._current_epoch = 0
        self._batches_since_saving = 0
        self._last_batch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        # A batch index not above the last one starts a new epoch.
        new_epoch = self._last_batch is None or batch <= self._last_batch
        self._batches_since_saving += batch + 1 if new_epoch else batch - self._last_batch
        self._last_batch = batch
        if self._batches_since_saving >= self.save_freq:
            self._batches_since_saving = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            filepath = self.filepath.format(**fields)
        except KeyError as error:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {error}") from None
        if not self._should_save(epoch, logs, filepath):
            return
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}", flush=True)

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}", flush=True)
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                      f"{current:.5f}, saving model to {filepath}", flush=True)
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}",
                  flush=True)
        return False

    def get_config(self):
        return {**self._config(), "filepath": self.filepath, "verbose": self.verbose,
                "save_best_only": self.save_best_only,
                "save_weights_only": self.save_weights_only, "save_freq": self.save_freq,
                "initial_value_threshold": self.initial_value_threshold}


@CALLBACKS.register()
class ReduceLROnPlateau(_MonitorCallback):
    """Multiplies ``model.optimizer.learning_rate`` by ``factor`` (not below
    ``min_lr``) when ``monitor`` has not improved by more than ``min_delta``
    for ``patience`` epochs, then waits ``cooldown`` epochs before counting
    again.  Adds the learning rate to each epoch's logs as 'learning_rate'."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        self.factor = check_number(factor, "factor", 0, 1, high_open=True)
        self.patience = check_int(patience, "patience", minimum=0)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.cooldown = check_int(cooldown, "cooldown", minimum=0)
        self.min_lr = check_number(min_lr, "min_lr", 0)
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = _monitored_value(logs, self.monitor,
                                   "Learning rate reduction is conditioned on")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_learning_rate(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce_learning_rate(self, epoch):
        """Lowers the learning rate; False when it is at ``min_lr`` already."""
        optimizer = self.model.optimizer
        old = float(optimizer.learning_rate)
        if old <= self.min_lr:
            return False
        new = max(old * self.factor, self.min_lr)
        optimizer.learning_rate = new
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.",
                  flush=True)
        return True

    def get_config(self):
        return {**self._config(), "factor": self.factor, "patience": self.patience,
                "verbose": self.verbose, "min_delta": self.min_delta,
                "cooldown": self.cooldown, "min_lr": self.min_lr}


class LearningRateScheduler(Callback):
    """Sets ``model.optimizer.learning_rate`` at the start of every epoch to
    ``schedule(epoch, learning_rate)``, or ``schedule(epoch)`` for a function
    of one argument (epoch counted from 0).  Adds the learning rate to each
    epoch's logs as 'learning_rate'."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be a function of (epoch, learning_rate) or of "
                            f"epoch, got {schedule!r}")
        self.schedule = schedule
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self._takes_learning_rate = _accepts(schedule, 0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if self._takes_learning_rate:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            learning_rate = self.schedule(epoch)
        if isinstance(learning_rate, (bool, np.bool_)) \
                or not isinstance(learning_rate, numbers.Real) or not learning_rate >= 0:
            raise ValueError("The output of the `schedule` function should be a float. "
                             f"Got: {learning_rate!r}")
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{learning_rate}.", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)


@CALLBACKS.register()
class TerminateOnNaN(Callback):
    """Stops training at a batch whose 'loss' is NaN or infinite: prints
    "Batch <i>: Invalid loss, terminating training" and sets
    ``model.stop_training``, or raises RuntimeError with ``raise_error``."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = check_choice(raise_error, "raise_error", (False, True))

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. "
                               f"Loss value: {loss}. Terminating training immediately.")
        print(f"Batch {batch}: Invalid loss, terminating training", flush=True)
        self.model.stop_training = True

    def get_config(self):
        return {"raise_error": self.raise_error}


@CALLBACKS.register()
class CSVLogger(Callback):
    """Writes one CSV row per epoch to ``filename``: 'epoch', then the log
    names in sorted order (fixed by the first epoch; when it has no 'val_'
    names, 'val_' columns are added for each, as in Keras, holding 'NA').
    ``append`` continues an existing file (a header only if it is empty)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = _path(filename, "filename")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be a one-character string, got {separator!r}")
        self.sep = separator
        self.append = check_choice(append, "append", (False, True))
        self.keys = None
        self.csv_file = None
        self.writer = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        write_header = not (self.append and os.path.exists(self.filename)
                            and os.path.getsize(self.filename) > 0)
        self._close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = csv.writer(self.csv_file, delimiter=self.sep)
        self.keys = None
        self._write_header = write_header

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
            if self._write_header:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [_csv_value(logs.get(key, "NA")) for key in self.keys])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None

    def get_config(self):
        return {"filename": self.filename, "separator": self.sep, "append": self.append}


class LambdaCallback(Callback):
    """A callback made of functions, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs['loss']))``.

    Each function is called with the hook's arguments, positionally: (epoch,
    logs), (batch, logs) or (logs).  Other hooks (``on_test_end=...``, any name
    of ``HOOKS``) are given as further keyword arguments."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        functions = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                         on_train_begin=on_train_begin, on_train_end=on_train_end,
                         on_train_batch_begin=on_train_batch_begin,
                         on_train_batch_end=on_train_batch_end, **kwargs)
        for hook, function in functions.items():
            if hook not in HOOKS:
                raise ValueError(f"unknown hook {hook!r}; valid hooks: "
                                 f"{', '.join(repr(name) for name in HOOKS)}")
            if function is None:
                continue
            if not callable(function):
                raise TypeError(f"{hook} must be a function, got {function!r}")
            setattr(self, hook, function)


def serialize(callback):
    """``{'class_name': ..., 'config': ...}`` of a registered callback."""
    return CALLBACKS.serialize(callback)


def deserialize(config):
    """The callback ``serialize`` described."""
    return CALLBACKS.deserialize(config)


def get(identifier):
    """A callback from a Callback, a registered class name or a serialized dict."""
    return CALLBACKS.get(identifier)


# ------------------------------------------------------------------ helpers


def _flatten(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, (list, tuple)):
        return [callback for item in callbacks for callback in _flatten(item)]
    return [callbacks]


def _plain_logs(logs):
    """A new dict of ``logs`` as callbacks see them: keys sorted, nested
    dicts flattened, real numbers (NumPy scalars, 0-d arrays) as floats."""
    plain = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            plain.update(_plain_logs(value))
        elif isinstance(value, numbers.Real) or (isinstance(value, np.ndarray)
                                                 and value.ndim == 0
                                                 and np.issubdtype(value.dtype, np.number)):
            plain[key] = float(value)
        else:
            plain[key] = value
    return plain


def _monitored_value(logs, monitor, action):
    """``logs[monitor]``, or None with a warning naming the available logs."""
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        warnings.warn(f"{action} metric `{monitor}` which is not available. Available "
                      f"metrics are: {','.join(logs)}", stacklevel=3)
    return value


def _path(value, name):
    try:
        path = os.fspath(value)
    except TypeError:
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r}") from None
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a str path, got {value!r}")
    return path


def _accepts(function, *args):
    """Whether ``function`` can be called with ``args`` (True when its
    signature cannot be read)."""
    try:
        inspect.signature(function).bind(*args)
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _csv_value(value):
    """Keras's CSV cell: a 1-D iterable as '"[a, b]"', anything else as is."""
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return f'"[{", ".join(map(str, value))}]"'
    return value
