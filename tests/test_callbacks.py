"""fastconv.callbacks against Keras 3's callbacks, on a fake model driven by a
scripted loop that calls the hooks as the module docstring's contract says
(Keras 3's fit: keras/src/backend/torch/trainer.py)."""

import csv
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from fastconv import callbacks, utils


class FakeOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    """What the callbacks use of a model; ``weights`` is one array holding the
    number of the epoch that produced it, and saving writes that number."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.weights = [np.zeros(2)]
        self.saved = []  # (method, path, epoch of the weights)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path):
        self._write("save", path)

    def save_weights(self, path):
        self._write("save_weights", path)

    def _write(self, method, path):
        with open(path, "w") as file:
            file.write(str(self.weights[0][0]))
        self.saved.append((method, str(path), self.weights[0][0]))


def fit(callback_list, model, epoch_logs, steps=3, validation_steps=2, batch_logs=None):
    """Runs the loop of the contract over the scripted ``epoch_logs`` (one dict
    per epoch; 'val_' keys mean a validation pass, which reports the
    unprefixed values).  Train batches log the epoch's training values unless
    ``batch_logs(epoch, step)`` says otherwise.  Returns the epochs run."""
    model.stop_training = False
    callback_list.on_train_begin()
    training_logs, epochs_run = {}, 0
    for epoch, scripted in enumerate(epoch_logs):
        epochs_run += 1
        callback_list.on_epoch_begin(epoch)
        train = {k: v for k, v in scripted.items() if not k.startswith("val_")}
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            model.weights = [np.full(2, float(epoch))]
            logs = batch_logs(epoch, step) if batch_logs else dict(train)
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_log = dict(train)
        validation = {k[4:]: v for k, v in scripted.items() if k.startswith("val_")}
        if validation:
            callback_list.on_test_begin()
            for step in range(validation_steps):
                callback_list.on_test_batch_begin(step)
                callback_list.on_test_batch_end(step, dict(validation))
            callback_list.on_test_end(dict(validation))
            epoch_log.update((f"val_{k}", v) for k, v in validation.items())
        callback_list.on_epoch_end(epoch, epoch_log)
        training_logs = epoch_log
        if model.stop_training:
            break
    callback_list.on_train_end(logs=training_logs)
    return epochs_run


def run(callback, epoch_logs, model=None, **fit_arguments):
    """(model, epochs run) of a silent fit with one callback."""
    model = model or FakeModel()
    callback_list = callbacks.CallbackList([callback], add_history=True, model=model,
                                           verbose=0, epochs=len(epoch_logs), steps=3)
    return model, fit(callback_list, model, epoch_logs, **fit_arguments)


def losses(*values, name="val_loss"):
    return [{"loss": 1.0, name: value} for value in values]


class Recorder(callbacks.Callback):
    """Records every hook call as 'hook index' (the index omitted when there
    is none) and the logs it received."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.logs = []

    def _record(self, hook, index, logs):
        self.calls.append(hook if index is None else f"{hook} {index}")
        self.logs.append(logs)


def _recording(hook, indexed):
    base = getattr(callbacks.Callback, hook)

    def record(self, *args, logs=None):
        index = args[0] if indexed else None
        if len(args) > indexed:  # logs given by position
            logs = args[indexed]
        self._record(hook, index, logs)
        base(self, *args[:indexed], logs=logs)  # the train batch hooks call their aliases

    return record


for _hook in callbacks.HOOKS:
    setattr(Recorder, _hook, _recording(_hook, "batch" in _hook or "epoch" in _hook))


# ------------------------------------------------------------ CallbackList


def test_hooks_follow_keras_3_fit_order():
    """Two epochs of three steps with validation over two batches: Keras 3's
    fit runs validation through the same callbacks (evaluate with
    callbacks=callbacks) between the last batch and on_epoch_end."""
    recorder = Recorder()
    model = FakeModel()
    callback_list = callbacks.CallbackList([recorder], add_history=True, model=model,
                                           verbose=0, epochs=2, steps=3)
    fit(callback_list, model, [{"loss": 1.0, "val_loss": 2.0}] * 2)
    epoch = []
    for step in range(3):
        epoch += [f"on_train_batch_begin {step}", f"on_batch_begin {step}",
                  f"on_train_batch_end {step}", f"on_batch_end {step}"]
    epoch += ["on_test_begin", "on_test_batch_begin 0", "on_test_batch_end 0",
              "on_test_batch_begin 1", "on_test_batch_end 1", "on_test_end"]
    assert recorder.calls == (["on_train_begin", "on_epoch_begin 0"] + epoch
                              + ["on_epoch_end 0", "on_epoch_begin 1"] + epoch
                              + ["on_epoch_end 1", "on_train_end"])
    assert recorder.logs[-1] == {"loss": 1.0, "val_loss": 2.0}
    assert all(logs == {} for logs in recorder.logs[:2])  # train and epoch begin


def test_evaluate_and_predict_hook_order():
    recorder = Recorder()
    callback_list = callbacks.CallbackList(recorder, model=FakeModel(), verbose=0,
                                           epochs=1, steps=1)
    callback_list.on_test_begin()
    callback_list.on_test_batch_begin(0)
    callback_list.on_test_batch_end(0, {"loss": 0.5})
    callback_list.on_test_end({"loss": 0.5})
    callback_list.on_predict_begin()
    callback_list.on_predict_batch_begin(0)
    callback_list.on_predict_batch_end(0, {"outputs": np.ones((1, 2))})
    callback_list.on_predict_end()
    assert recorder.calls == ["on_test_begin", "on_test_batch_begin 0", "on_test_batch_end 0",
                              "on_test_end", "on_predict_begin", "on_predict_batch_begin 0",
                              "on_predict_batch_end 0", "on_predict_end"]
    np.testing.assert_array_equal(recorder.logs[6]["outputs"], np.ones((1, 2)))


def test_callback_list_adds_history_and_progbar_once_and_sets_model_and_params():
    model = FakeModel()
    recorder = Recorder()
    callback_list = callbacks.CallbackList([[recorder]], add_history=True, add_progbar=True,
                                           model=model, verbose=1, epochs=2, steps=3)
    history, progbar = callback_list.callbacks[1:]
    assert callback_list.callbacks[0] is recorder
    assert isinstance(history, callbacks.History)
    assert isinstance(progbar, callbacks.ProgbarLogger)
    assert callback_list.history is history and model.history is history
    params = {"verbose": 1, "epochs": 2, "steps": 3}
    assert all(c.model is model and c.params == params for c in callback_list.callbacks)

    mine = callbacks.History()
    given = callbacks.CallbackList([mine, callbacks.ProgbarLogger()], add_history=True,
                                   add_progbar=True, model=model)
    assert len(given.callbacks) == 2 and given.history is mine and model.history is mine
    assert callbacks.CallbackList().callbacks == []
    assert callbacks.CallbackList().history is None


def test_history_records_every_epoch():
    model = FakeModel()
    callback_list = callbacks.CallbackList(add_history=True, model=model, verbose=0,
                                           epochs=3, steps=3)
    scripted = [{"loss": 1.0, "accuracy": 0.5, "val_loss": 2.0},
                {"loss": 0.5, "accuracy": 0.75, "val_loss": 1.0}]
    fit(callback_list, model, scripted)
    history = callback_list.history
    assert history.history == {"accuracy": [0.5, 0.75], "loss": [1.0, 0.5],
                               "val_loss": [2.0, 1.0]}
    assert history.epoch == [0, 1] and model.history is history
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 3}


def test_logs_are_plain_sorted_copies_shared_along_the_list():
    """Each hook call hands its callbacks one new dict (Keras's
    pythonify_logs): the loop's dict is untouched, NumPy numbers become
    floats, keys are sorted, nested dicts are flattened, None becomes {}; a
    key one callback adds reaches the callbacks after it."""
    seen = []

    class Adder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["extra"] = 1.0

    class Reader(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs)

        def on_train_begin(self, logs=None):
            seen.append(logs)

    callback_list = callbacks.CallbackList([Adder(), Reader()], model=FakeModel())
    loop_logs = {"loss": np.float32(0.5), "accuracy": np.array(0.25),
                 "nested": {"b": np.int64(3)}}
    callback_list.on_epoch_end(0, loop_logs)
    callback_list.on_train_begin()
    assert list(seen[0]) == ["accuracy", "loss", "b", "extra"]
    assert seen[0] == {"accuracy": 0.25, "b": 3.0, "loss": 0.5, "extra": 1.0}
    assert all(type(value) is float for value in seen[0].values())
    assert set(loop_logs) == {"loss", "accuracy", "nested"}
    assert seen[1] == {}


def test_learning_rate_added_to_the_logs_reaches_history():
    model = FakeModel(learning_rate=0.25)
    run(callbacks.ReduceLROnPlateau(monitor="loss"), losses(1.0, 1.0), model)
    assert model.history.history["learning_rate"] == [0.25, 0.25]


def test_callback_exception_propagates_unchanged():
    error = KeyError("mine")

    class Failing(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise error

    recorder = Recorder()
    model = FakeModel()
    callback_list = callbacks.CallbackList([Failing(), recorder], model=model)
    with pytest.raises(KeyError) as caught:
        fit(callback_list, model, losses(1.0))
    assert caught.value is error
    assert recorder.calls[-1] == "on_batch_begin 1"  # batch 1 ends with the error


def test_callback_list_rejects_what_is_not_a_callback():
    with pytest.raises(TypeError, match="Callback"):
        callbacks.CallbackList([callbacks.History(), print])


# ---------------------------------------------------------- EarlyStopping


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_early_stopping_patience(patience):
    """Keras's early_stopping_test: stops at epoch max(patience, 1) + 2."""
    stopper = callbacks.EarlyStopping(monitor="loss", patience=patience)
    _, epochs = run(stopper, [{"loss": v} for v in [10, 9, 8, 9, 8.9, 8.8, 8.7, 8.6, 8.5]])
    assert stopper.stopped_epoch == max(patience, 1) + 2
    assert epochs == stopper.stopped_epoch + 1


def test_early_stopping_restores_the_best_epoch(capsys):
    """Keras's test: best val_loss at epoch 2, patience 2: stops at epoch 4
    and puts back epoch 2's weights."""
    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    model, epochs = run(stopper, losses(0.2, 0.15, 0.1, 0.11, 0.12, 0.05))
    assert epochs == 5 and stopper.stopped_epoch == 4 and stopper.best_epoch == 2
    np.testing.assert_array_equal(model.weights[0], [2.0, 2.0])
    assert capsys.readouterr().out == ("Epoch 5: early stopping\nRestoring model weights "
                                       "from the end of the best epoch: 3.\n")


def test_early_stopping_with_a_baseline_none_beats():
    """Keras's test: no epoch beats the baseline 0.5, so training runs
    patience=5 epochs and restores the best of them (epoch 2)."""
    stopper = callbacks.EarlyStopping(patience=5, baseline=0.5, restore_best_weights=True)
    model, epochs = run(stopper, losses(0.9, 0.8, 0.7, 0.71, 0.72, 0.73))
    assert epochs == 5 and stopper.stopped_epoch == 4
    np.testing.assert_array_equal(model.weights[0], [2.0, 2.0])


def test_early_stopping_restores_at_train_end_when_another_callback_stops():
    """Keras's test: stopped by someone else at epoch 3, the weights of the
    best epoch (2) come back anyway; stopped_epoch stays 0 and nothing is
    printed."""
    stopper = callbacks.EarlyStopping(patience=5, baseline=0.5, restore_best_weights=True)
    other = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(other.model, "stop_training", epoch == 3))
    model = FakeModel()
    callback_list = callbacks.CallbackList([stopper, other], model=model)
    assert fit(callback_list, model, losses(0.9, 0.8, 0.7, 0.71, 0.72, 0.73)) == 4
    assert stopper.stopped_epoch == 0
    np.testing.assert_array_equal(model.weights[0], [2.0, 2.0])


def test_early_stopping_min_delta():
    """Improvements of 0.05 count with min_delta 0.01 and not with 0.1."""
    sequence = losses(1.0, 0.95, 0.9, 0.85)
    small, large = callbacks.EarlyStopping(min_delta=0.01), callbacks.EarlyStopping(min_delta=0.1)
    assert run(small, sequence)[1] == 4 and small.stopped_epoch == 0
    assert run(large, sequence)[1] == 2 and large.stopped_epoch == 1
    assert large.best == 1.0


def test_early_stopping_maximizes_accuracy_in_auto_mode():
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    _, epochs = run(stopper, losses(0.5, 0.6, 0.7, 0.65, 0.6, 0.9, name="val_accuracy"))
    assert epochs == 4 and stopper.best == 0.7 and stopper.best_epoch == 2
    minimizing = callbacks.EarlyStopping(monitor="val_accuracy", mode="min")
    assert run(minimizing, losses(0.5, 0.6, name="val_accuracy"))[1] == 2
    assert minimizing.stopped_epoch == 1


def test_early_stopping_start_from_epoch():
    """Epochs before start_from_epoch are not monitored: with a loss rising
    from the start, the first monitored epoch is the best and training stops
    ``patience`` epochs after it."""
    stopper = callbacks.EarlyStopping(monitor="loss", patience=1, start_from_epoch=2,
                                      restore_best_weights=True)
    model, epochs = run(stopper, [{"loss": float(v)} for v in range(1, 9)])
    assert epochs == 4 and stopper.stopped_epoch == 3 and stopper.best == 3.0
    np.testing.assert_array_equal(model.weights[0], [2.0, 2.0])


def test_early_stopping_state_resets_on_train_begin():
    stopper = callbacks.EarlyStopping(monitor="loss")
    run(stopper, [{"loss": 1.0}, {"loss": 2.0}])
    assert stopper.stopped_epoch == 1
    _, epochs = run(stopper, [{"loss": 5.0}, {"loss": 4.0}, {"loss": 3.0}])
    assert epochs == 3 and stopper.stopped_epoch == 0 and stopper.best == 3.0


def test_early_stopping_warns_when_the_monitor_is_missing():
    stopper = callbacks.EarlyStopping()
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_loss` "
                                         "which is not available. Available metrics are: loss"):
        _, epochs = run(stopper, [{"loss": 1.0}] * 3)
    assert epochs == 3


# --------------------------------------------------------- ModelCheckpoint


def test_model_checkpoint_names_files_from_the_epoch_and_logs(tmp_path, capsys):
    model, _ = run(callbacks.ModelCheckpoint(str(tmp_path / "new" / "m-{epoch:02d}-"
                                                 "{val_loss:.2f}.npz"), verbose=1),
                   losses(0.5, 0.25))
    paths = [str(tmp_path / "new" / name) for name in ("m-01-0.50.npz", "m-02-0.25.npz")]
    assert model.saved == [("save", paths[0], 0.0), ("save", paths[1], 1.0)]
    assert capsys.readouterr().out == "".join(
        f"\nEpoch {i + 1}: saving model to {path}\n"
        f"\nEpoch {i + 1}: finished saving model to {path}\n" for i, path in enumerate(paths))


def test_model_checkpoint_save_best_only(tmp_path, capsys):
    path = str(tmp_path / "best.npz")
    model, _ = run(callbacks.ModelCheckpoint(path, save_best_only=True,
                                             save_weights_only=True, verbose=1),
                   losses(0.5, 0.6, 0.4, 0.4))
    assert model.saved == [("save_weights", path, 0.0), ("save_weights", path, 2.0)]
    assert open(path).read() == "2.0"
    out = capsys.readouterr().out
    assert (f"\nEpoch 1: val_loss improved from None to 0.50000, saving model to {path}\n"
            in out)
    assert "\nEpoch 2: val_loss did not improve from 0.50000\n" in out
    assert "\nEpoch 3: val_loss improved from 0.50000 to 0.40000, saving model" in out
    assert "\nEpoch 4: val_loss did not improve from 0.40000\n" in out


def test_model_checkpoint_threshold_and_max_mode(tmp_path):
    accuracy = callbacks.ModelCheckpoint(str(tmp_path / "{epoch}.npz"),
                                         monitor="val_accuracy", save_best_only=True,
                                         initial_value_threshold=0.55)
    model, _ = run(accuracy, losses(0.5, 0.6, 0.55, 0.7, name="val_accuracy"))
    assert [epoch for _, _, epoch in model.saved] == [1.0, 3.0]


def test_model_checkpoint_saves_when_the_monitor_is_missing(tmp_path):
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "m.npz"), save_best_only=True)
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        model, _ = run(checkpoint, [{"loss": 1.0}] * 2)
    assert len(model.saved) == 2


def test_model_checkpoint_every_two_batches(tmp_path):
    """save_freq=2 with 3 batches per epoch: the count carries over epochs
    (Keras's _should_save_on_batch), so saves follow batches 2, 4 and 6."""
    model, _ = run(callbacks.ModelCheckpoint(str(tmp_path / "{epoch}-{batch}.npz"),
                                             save_freq=2), losses(0.5, 0.4))
    assert [path[len(str(tmp_path)) + 1:] for _, path, _ in model.saved] == \
        ["1-2.npz", "2-1.npz", "2-3.npz"]


def test_model_checkpoint_unknown_field(tmp_path):
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        run(callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.npz")), losses(0.5))


# ------------------------------------------------------- ReduceLROnPlateau


def test_reduce_lr_on_plateau_with_cooldown_and_min_lr(capsys):
    """Worked through Keras's on_epoch_end by hand: the cooldown counter
    drops before the plateau check, a reduction stops at min_lr, and each
    epoch logs the rate it trained with."""
    model = FakeModel(learning_rate=0.1)
    reducer = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2,
                                          min_lr=0.02, verbose=1)
    run(reducer, [{"loss": v} for v in [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]], model)
    assert model.history.history["learning_rate"] == \
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02, 0.02]
    assert model.optimizer.learning_rate == 0.02
    assert capsys.readouterr().out == (
        "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.05.\n"
        "\nEpoch 4: ReduceLROnPlateau reducing learning rate to 0.025.\n"
        "\nEpoch 7: ReduceLROnPlateau reducing learning rate to 0.02.\n")


def test_reduce_lr_on_plateau_min_delta_and_accuracy():
    """Accuracy rising by less than min_delta is a plateau."""
    model = FakeModel(learning_rate=1.0)
    reducer = callbacks.ReduceLROnPlateau(monitor="val_accuracy", patience=2, min_delta=0.01)
    run(reducer, losses(0.5, 0.505, 0.508, 0.6, name="val_accuracy"), model)
    assert model.history.history["learning_rate"] == [1.0, 1.0, 1.0, 0.1]
    assert reducer.best == 0.6


# --------------------------------------------------- LearningRateScheduler


def test_learning_rate_scheduler_of_the_epoch(capsys):
    model = FakeModel(learning_rate=1.0)
    run(callbacks.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch, verbose=1),
        losses(1, 1, 1), model)
    assert model.history.history["learning_rate"] == [0.1, 0.05, 0.025]
    assert capsys.readouterr().out.splitlines()[1] == \
        "Epoch 1: LearningRateScheduler setting learning rate to 0.1."


def test_learning_rate_scheduler_of_the_epoch_and_rate():
    model = FakeModel(learning_rate=1.0)
    run(callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2 if epoch else lr),
        losses(1, 1, 1), model)
    assert model.history.history["learning_rate"] == [1.0, 0.5, 0.25]


def test_learning_rate_scheduler_errors():
    with pytest.raises(ValueError, match="should be a float"):
        run(callbacks.LearningRateScheduler(lambda epoch: "fast"), losses(1))

    def broken(epoch, learning_rate):
        raise TypeError("inside the schedule")

    with pytest.raises(TypeError, match="inside the schedule"):
        run(callbacks.LearningRateScheduler(broken), losses(1))


# ----------------------------------------------- TerminateOnNaN, CSVLogger


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_terminate_on_nan(bad, capsys):
    model = FakeModel()
    steps_run = []
    callback_list = callbacks.CallbackList(
        [callbacks.TerminateOnNaN(),
         callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps_run.append(b))],
        add_history=True, model=model)
    epochs = fit(callback_list, model, losses(1, 1),
                 batch_logs=lambda epoch, step: {"loss": bad if step == 1 else 1.0})
    assert epochs == 1 and steps_run == [0, 1] and model.stop_training
    assert capsys.readouterr().out == "Batch 1: Invalid loss, terminating training\n"


def test_terminate_on_nan_raise_error():
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        run(callbacks.TerminateOnNaN(raise_error=True), [{"loss": math.nan}])


def test_csv_logger_writes_keras_columns(tmp_path):
    """Sorted log names after 'epoch'; without validation Keras adds 'val_'
    columns holding NA."""
    path = tmp_path / "log.csv"
    run(callbacks.CSVLogger(path), [{"loss": 0.5, "accuracy": 0.75},
                                    {"loss": 0.25, "accuracy": 1.0}])
    assert path.read_bytes() == (b"epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                                 b"0,0.75,0.5,NA,NA\r\n1,1.0,0.25,NA,NA\r\n")


def test_csv_logger_appends_with_a_separator(tmp_path):
    path = tmp_path / "log.csv"
    logger = callbacks.CSVLogger(str(path), separator=";", append=True)
    run(logger, [{"loss": 0.5, "val_loss": 0.75}])
    run(logger, [{"loss": 0.25, "val_loss": 0.5}])
    rows = list(csv.reader(path.open(newline=""), delimiter=";"))
    assert rows == [["epoch", "loss", "val_loss"], ["0", "0.5", "0.75"], ["0", "0.25", "0.5"]]
    assert logger.csv_file.closed


# ------------------------------------------------------------- LambdaCallback


def test_lambda_callback_calls_its_functions_with_the_hook_arguments():
    calls = []
    lambdas = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin", logs)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, logs)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch)),
        on_test_end=lambda logs: calls.append(("test_end", logs)))
    run(lambdas, [{"loss": 1.0, "val_loss": 2.0}], steps=2)
    assert calls == [("train_begin", {}), ("batch_end", 0), ("batch_end", 1),
                     ("test_end", {"loss": 2.0}),
                     ("epoch_end", 0, {"loss": 1.0, "val_loss": 2.0})]


def test_lambda_callback_rejects_unknown_hooks_and_non_functions():
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_finish'"):
        callbacks.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="on_epoch_end must be a function"):
        callbacks.LambdaCallback(on_epoch_end=3)


# ------------------------------------------------------------- ProgbarLogger

# Keras 3's bar once the ANSI styles and the backspaces before each redraw
# are taken out: count, 20 '━', the elapsed time (the ETA while running).
BAR_END = r"\r3/3 ━{20} \d+s \d+[mu]?s/step"


def plain(text):
    """What a terminal shows of the bar's text: no colours, no backspaces."""
    return re.sub(r"\x1b\[[0-9;]*m|\x08", "", text)


def progbar_fit(verbose, epoch_logs, steps=3):
    model = FakeModel()
    callback_list = callbacks.CallbackList(add_progbar=True, model=model, verbose=verbose,
                                           epochs=len(epoch_logs), steps=steps)
    fit(callback_list, model, epoch_logs)


def test_progbar_logger_draws_a_bar_per_epoch(capsys):
    """Keras 3's output: 'Epoch i/n', a bar from the batch logs finished with
    the epoch logs (sorted names, val_ included); validation draws nothing."""
    progbar_fit(1, [{"loss": 0.5, "accuracy": 0.75, "val_loss": 0.25}] * 2)
    out = plain(capsys.readouterr().out)
    epoch = BAR_END + r" - accuracy: 0\.7500 - loss: 0\.5000 - val_loss: 0\.2500 *\n"
    assert re.fullmatch(rf"Epoch 1/2\n.*?{epoch}Epoch 2/2\n.*?{epoch}", out, re.S), out
    assert out.count("val_loss") == 2


def test_progbar_logger_shows_the_logs_as_given(capsys, monkeypatch):
    """The logs are running means already: each frame shows the batch's
    values, not an average of them (Keras 3 passes stateless_metrics=set())."""
    monkeypatch.setattr(utils.Progbar, "__init__", _redrawing_init)
    model = FakeModel()
    callback_list = callbacks.CallbackList(add_progbar=True, model=model, verbose=1,
                                           epochs=1, steps=3)
    fit(callback_list, model, [{"loss": 0.25}],
        batch_logs=lambda epoch, step: {"loss": [1.0, 0.5, 0.75][step]})
    frames = plain(capsys.readouterr().out).split("\r")[1:]
    assert [frame.split(" - ")[1].strip() for frame in frames] == [
        "loss: 1.0000", "loss: 0.5000", "loss: 0.7500", "loss: 0.2500"]


def test_progbar_logger_verbose_2_prints_a_line_per_epoch(capsys):
    progbar_fit(2, [{"loss": 0.5}, {"loss": 0.25}])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step - loss: 0\.5000", lines[1])
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step - loss: 0\.2500", lines[3])
    assert len(lines) == 4


def test_progbar_logger_single_epoch_has_no_epoch_line(capsys):
    progbar_fit(1, [{"loss": 0.5}])
    out = plain(capsys.readouterr().out)
    assert "Epoch" not in out and re.search(BAR_END + r" - loss: 0\.5000 *\n$", out)


def test_progbar_logger_silent_with_verbose_0(capsys):
    progbar_fit(0, [{"loss": 0.5}] * 2)
    assert capsys.readouterr().out == ""


def test_progbar_logger_counts_unknown_steps(capsys, monkeypatch):
    """steps=None: a running count, then a full bar once the epoch shows
    how many steps it had."""
    monkeypatch.setattr(utils.Progbar, "__init__", _redrawing_init)
    progbar_fit(1, [{"loss": 0.5}, {"loss": 0.5}], steps=None)
    out = plain(capsys.readouterr().out)
    assert re.search(r"\r      1/Unknown \d+s \d+[mu]?s/step - loss: 0\.5000", out), out
    assert "\r      3/Unknown " in out
    assert re.search(BAR_END + r" - loss: 0\.5000 *\nEpoch 2/2\n\r1/3 ━{20} ", out), out


_original_init = utils.Progbar.__init__


def _redrawing_init(self, target, **kwargs):
    _original_init(self, target, **{**kwargs, "interval": 0.0})  # draw every update


def test_progbar_logger_for_evaluate_and_predict(capsys):
    progbar = callbacks.ProgbarLogger()
    callback_list = callbacks.CallbackList([progbar], model=FakeModel(), verbose=1,
                                           epochs=1, steps=2)
    callback_list.on_test_begin()
    for step in range(2):
        callback_list.on_test_batch_end(step, {"loss": 0.5})
    callback_list.on_test_end({"loss": 0.5})
    callback_list.on_predict_begin()
    for step in range(2):
        callback_list.on_predict_batch_end(step, {"outputs": np.zeros((4, 3))})
    callback_list.on_predict_end()
    lines = plain(capsys.readouterr().out).split("\n")
    assert re.search(r"\r2/2 ━{20} \d+s \d+[mu]?s/step - loss: 0\.5000 *$", lines[0])
    assert re.search(r"\r2/2 ━{20} \d+s \d+[mu]?s/step *$", lines[1])
    assert lines[2] == ""


def fake_clock(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(utils, "time", SimpleNamespace(monotonic=lambda: clock.now))
    return clock


def test_progbar_frames_are_keras_3s(monkeypatch, capsys):
    """Keras 3's bytes: backspaces over the last frame and '\\r', the count in
    bold, 20 '━' green for the steps done and white for the rest, the ETA
    (whole seconds) in bold, the time a step (the first step left out once
    there are others), the values; the elapsed time once finished."""
    clock = fake_clock(monkeypatch)
    progbar = utils.Progbar(3)
    for now, step, loss in [(2.0, 1, 0.5), (2.5, 2, 0.25), (3.0, 3, 0.125)]:
        clock.now = now
        progbar.update(step, [("loss", loss)])
    bold, green, white, end = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
    assert capsys.readouterr().out == (
        f"\r{bold}1/3{end} {green}{'━' * 6}{end}{white}{'━' * 14}{end} {bold}4s{end}"
        f" 2s/step - loss: 0.5000"
        f"{chr(8) * 50}\r{bold}2/3{end} {green}{'━' * 13}{end}{white}{'━' * 7}{end} {bold}0s{end}"
        f" 500ms/step - loss: 0.3750"  # the mean of the two values over the steps
        f"{chr(8) * 53}\r{bold}3/3{end} {green}{'━' * 20}{end}{white}{end} {bold}3s{end}"
        f" 500ms/step - loss: 0.1250\n")


def test_progbar_unknown_target_pads_a_shorter_line(monkeypatch, capsys):
    clock = fake_clock(monkeypatch)
    progbar = utils.Progbar(None, interval=0)
    clock.now = 0.0005
    progbar.update(1, [("loss", 0.5)])
    clock.now = 2.0005
    progbar.update(2)
    frames = capsys.readouterr().out.split("\r")
    assert frames[1] == "      1/Unknown \x1b[1m0s\x1b[0m 500us/step - loss: 0.5000" + "\b" * 44
    assert frames[2] == "      2/Unknown \x1b[1m2s\x1b[0m 2s/step - loss: 0.5000" + " " * 3


def test_progbar_averages_values_unless_stateful(monkeypatch, capsys):
    """By default a value is averaged over the steps each update covers;
    when finishing, the values given are shown.  verbose=2 prints one line
    then, in scientific notation for values not above 1e-3 (negative ones
    too, as Keras 3's verbose=2 does)."""
    clock = fake_clock(monkeypatch)
    progbar = utils.Progbar(4, verbose=2, stateful_metrics=["acc"])
    clock.now = 1.0
    progbar.update(1, [("loss", 1.0), ("acc", 0.25)])
    progbar.update(3, [("loss", 0.5), ("acc", 0.75)])
    assert progbar._metrics(lambda value: True) == " - loss: 0.6667 - acc: 0.7500"
    clock.now = 3.0
    progbar.update(4, [("loss", -0.5), ("acc", 0.0001)])
    assert capsys.readouterr().out == ("4/4 - 3s - 667ms/step - loss: -5.0000e-01 - "
                                       "acc: 1.0000e-04\n")
    with pytest.raises(ValueError, match="Only one of"):
        utils.Progbar(2, stateful_metrics=["a"], stateless_metrics=["b"])


# ------------------------------------------------------------ arguments


@pytest.mark.parametrize("make, error, message", [
    (lambda: callbacks.EarlyStopping(monitor=3), TypeError, "monitor"),
    (lambda: callbacks.EarlyStopping(mode="biggest"), ValueError, "mode"),
    (lambda: callbacks.EarlyStopping(monitor="val_f1"), ValueError, "mode='max'"),
    (lambda: callbacks.EarlyStopping(patience=-1), ValueError, "patience"),
    (lambda: callbacks.EarlyStopping(patience=1.5), TypeError, "patience"),
    (lambda: callbacks.EarlyStopping(min_delta="0.1"), TypeError, "min_delta"),
    (lambda: callbacks.EarlyStopping(baseline=[1]), TypeError, "baseline"),
    (lambda: callbacks.EarlyStopping(restore_best_weights=1), ValueError,
     "restore_best_weights"),
    (lambda: callbacks.EarlyStopping(start_from_epoch=-2), ValueError, "start_from_epoch"),
    (lambda: callbacks.ModelCheckpoint(None), TypeError, "filepath"),
    (lambda: callbacks.ModelCheckpoint("m.npz", save_freq="batch"), ValueError, "save_freq"),
    (lambda: callbacks.ModelCheckpoint("m.npz", save_freq=0), ValueError, "save_freq"),
    (lambda: callbacks.ModelCheckpoint("m.npz", save_best_only="yes"), ValueError,
     "save_best_only"),
    (lambda: callbacks.ModelCheckpoint("m.npz", verbose=-1), ValueError, "verbose"),
    (lambda: callbacks.ReduceLROnPlateau(factor=1.0), ValueError, "factor"),
    (lambda: callbacks.ReduceLROnPlateau(min_lr=-1), ValueError, "min_lr"),
    (lambda: callbacks.ReduceLROnPlateau(cooldown=None), TypeError, "cooldown"),
    (lambda: callbacks.LearningRateScheduler(0.1), TypeError, "schedule"),
    (lambda: callbacks.TerminateOnNaN(raise_error="no"), ValueError, "raise_error"),
    (lambda: callbacks.CSVLogger("log.csv", separator=", "), ValueError, "separator"),
    (lambda: callbacks.CSVLogger("log.csv", append=None), ValueError, "append"),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_auto_mode_directions():
    assert callbacks.EarlyStopping(monitor="val_auc").maximize
    assert callbacks.EarlyStopping(monitor="acc").maximize
    assert not callbacks.EarlyStopping(monitor="val_mse").maximize
    assert callbacks.EarlyStopping(monitor="val_f1", mode="max").maximize


def test_serialize_round_trip():
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=3, baseline=0.5,
                                      restore_best_weights=True)
    config = callbacks.serialize(stopper)
    assert config["class_name"] == "EarlyStopping"
    copy = callbacks.deserialize(config)
    assert isinstance(copy, callbacks.EarlyStopping) and copy.get_config() == stopper.get_config()
    assert callbacks.get("ReduceLROnPlateau").patience == 10
    assert callbacks.get(stopper) is stopper
    with pytest.raises(ValueError, match="unknown callback 'Stopper'"):
        callbacks.get("Stopper")
