"""Robustness of Sequential models as Keras and PyTorch users expect it.

1. numerics: a NaN/Inf loss or gradient stops ``fit`` before its update
   (Keras's TerminateOnNaN); huge logits stay finite
2. interruption: KeyboardInterrupt in ``fit`` keeps the last completed step;
   Ctrl-C waits for the update to finish; a killed ``save`` keeps the
   earlier file and its temporary file is cleaned up by the next save
3. threads: two models training at once get the weights they get alone
4. memory: no growth over 200 training steps; ``predict`` and ``evaluate``
   hold one batch of intermediates, not the whole input's
5. batches too large for memory raise MemoryError (in a subprocess with a
   capped address space), and the model stays usable
6. the progress bar redraws at most every 0.1 s and reads the logs only then
7. weights and files: ``set_weights`` and ``load_weights`` change nothing
   unless everything fits (an unbuilt model stays unbuilt); a loaded .npz
   file's members are read only when the model needs them, after their
   declared shape and size are checked; forged, fuzzed or bomb-like files
   raise ValueError naming the file; concurrent saves from other PID
   namespaces keep each other's temporary files

The subprocesses run ``tests/helpers/model_subprocess.py``.  The kernels run on one
thread here: with OpenMP threads spinning at barriers, small calls slow down
a hundredfold when another process keeps the cores busy.
"""

import gc
import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fastconv
from fastconv import layers, models, optimizers, saving, utils
from helpers.model_subprocess import wide_model
from helpers.toy_data import bars

HELPER = Path(__file__).parent / "helpers" / "model_subprocess.py"
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
MB = 2**20


@pytest.fixture(autouse=True)
def one_kernel_thread():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    yield
    fastconv.set_num_threads(before)


def small_model(optimizer="rmsprop", size=8, filters=4, weights=None):
    model = models.Sequential([
        layers.Conv2D(filters, (3, 3), activation="relu", input_shape=(size, size, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizers.get(optimizer), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if weights is not None:
        model.set_weights(weights)
    return model


def same_state(model, twin):
    """Exactly equal weights, optimizer iterations and optimizer slots."""
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == twin.optimizer.iterations
    for slots, twin_slots in zip(model.optimizer.slots, twin.optimizer.slots, strict=True):
        assert slots.keys() == twin_slots.keys()
        for name in slots:
            np.testing.assert_array_equal(slots[name], twin_slots[name])


def all_finite(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


# ------------------------------------------------------------------- 1. numerics


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input_stops_training_before_its_update(capsys, value):
    """A NaN/Inf pixel in sample 50 (batch 3 of 16) stops fit at that batch,
    with the weights and optimizer state of the 3 steps before it."""
    x, y = bars(160)
    x[50, 4, 4, 0] = value
    model = small_model()
    twin = small_model(weights=model.get_weights())
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        validation_data=(x[100:], y[100:]))
    assert capsys.readouterr().out == "Batch 3: Invalid loss, terminating training\n"
    assert model.stop_training and history.epoch == [0]
    assert not math.isfinite(history.history["loss"][0])
    assert math.isfinite(history.history["val_loss"][0])
    assert all_finite(model) and model.optimizer.iterations == 3

    twin.fit(x[:48], y[:48], batch_size=16, shuffle=False, verbose=0)
    same_state(model, twin)
    # The model goes on as usual on clean data.
    history = model.fit(x[:48], y[:48], batch_size=16, verbose=0)
    assert not model.stop_training and all_finite(model)
    assert np.isfinite(model.predict(x[:48], verbose=0)).all()


def test_non_finite_gradient_with_a_finite_loss_stops_training(capsys):
    """-inf into a ReLU that outputs 0 hides it from the loss, but the kernel
    gradient gets -inf * 0 = NaN: training stops before that update too."""
    model = models.Sequential([layers.Conv2D(1, 1, activation="relu", input_shape=(1, 1, 1)),
                               layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.set_weights([np.ones((1, 1, 1, 1)), np.zeros(1), np.ones((1, 2)), np.zeros(2)])
    x, y = np.array([[[[1.0]]], [[[-np.inf]]]], np.float32), np.array([0, 1])
    history = model.fit(x, y, batch_size=1, epochs=2, shuffle=False, verbose=0)
    assert capsys.readouterr().out == "Batch 1: Invalid gradient, terminating training\n"
    assert model.stop_training and math.isfinite(history.history["loss"][0])
    assert all_finite(model) and model.optimizer.iterations == 1


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_diverging_training_stops_with_finite_weights(capsys):
    """A learning rate of 1e20 makes the second batch's loss overflow.  (With
    other initial weights the first update itself can overflow to Inf; then
    training stops at the next batch, but with those weights.)"""
    x, y = bars(64)
    utils.set_random_seed(0)
    model = small_model(optimizers.SGD(learning_rate=1e20))
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert model.stop_training and all_finite(model)


def test_verbose_training_ends_the_bar_before_the_message(capsys):
    """The bar of the stopped epoch ends (at the full count, as Keras's), then the message
    follows."""
    x, y = bars(64)
    x[20] = np.nan
    small_model().fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=1)
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "Epoch 1/2"
    last_frame = re.sub(r"\x1b\[[0-9;]*m", "", lines[1].split("\r")[-1])
    assert re.fullmatch(r"4/4 ━{20} \d+s .*accuracy: .* - loss: nan.*", last_frame)
    assert lines[2:] == ["Batch 1: Invalid loss, terminating training", ""]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_on_huge_logits_goes_on(dtype):
    """Logits of +-1e4 under the final softmax: the fused softmax +
    cross-entropy gives finite losses and gradients, so nothing stops."""
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(1,),
                                            dtype=dtype)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.set_weights([np.array([[1e4, -1e4, 0]]), np.zeros(3)])
    x, y = np.array([[1.0], [-1.0]] * 4), np.array([0, 0] * 4)
    history = model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    assert not model.stop_training and model.optimizer.iterations == 8
    assert history.history["loss"][0] == pytest.approx(1e4, rel=0.01)
    assert all_finite(model)


# --------------------------------------------------------------- 2. interruption


def test_keyboard_interrupt_in_fit_keeps_the_last_completed_step(monkeypatch):
    """KeyboardInterrupt from the first layer's backward on step 8 (the last
    layer to run backward: every other gradient is done) leaves the weights
    and optimizer state of a twin trained 8 steps; both then train alike."""
    x, y = bars(96)                                  # 6 batches of 16 per epoch
    model = small_model(optimizers.RMSprop(momentum=0.5, centered=True))
    twin = small_model(optimizers.RMSprop(momentum=0.5, centered=True),
                       weights=model.get_weights())
    calls = []
    backward = model.layers[0].backward

    def interrupted_backward(*args, **kwargs):
        calls.append(None)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return backward(*args, **kwargs)

    monkeypatch.setattr(model.layers[0], "backward", interrupted_backward)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    monkeypatch.undo()

    twin.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    twin.fit(x[:32], y[:32], batch_size=16, shuffle=False, verbose=0)
    same_state(model, twin)
    for each in (model, twin):
        each.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    same_state(model, twin)
    np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))


def test_ctrl_c_during_the_update_waits_for_the_whole_step(monkeypatch):
    """A real SIGINT arriving while the optimizer has updated only the first
    weight of step 3 is raised once all weights are updated.  (Nadam runs its
    NumPy update weight by weight; the compiled step of SGD, RMSprop and Adam
    is one call into C, which Python's signal handler cannot split.)"""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    x, y = bars(96)
    model = small_model("nadam")
    twin = small_model("nadam", weights=model.get_weights())
    updates = []
    update = model.optimizer.update

    def update_then_ctrl_c(*args, **kwargs):
        update(*args, **kwargs)
        updates.append(None)
        if len(updates) == 2 * 4 + 1:                # step 3, after its first weight
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(model.optimizer, "update", update_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    assert len(updates) == 3 * 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    twin.fit(x[:48], y[:48], batch_size=16, shuffle=False, verbose=0)
    same_state(model, twin)

    # The control: without the hold-back the interrupt lands inside the step.
    updates.clear()
    weights = model.trainable_weights
    grads = [np.ones_like(w) for w in weights]
    with pytest.raises(KeyboardInterrupt):
        for _ in range(3):
            model.optimizer.apply(weights, grads)
    assert len(updates) == 9 and model.optimizer.iterations == 5


def kill_mid_save(path, delay):
    """Runs the save loop until it has saved once, waits ``delay`` seconds and
    kills it; returns the number of the last save it reported."""
    proc = subprocess.Popen([sys.executable, str(HELPER), "save-loop", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=SUBPROCESS_ENV)
    try:
        first = proc.stdout.readline()
        assert first == "saved 0\n", proc.stderr.read()
        time.sleep(delay)
    finally:
        proc.kill()
        rest, errors = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, errors
    return int((first + rest).split()[-1])


def test_killed_saves_keep_the_earlier_file(tmp_path):
    """SIGKILL at several moments of a loop saving a 16 MB model: the file
    always loads, holding the last reported save or the one after it; at most
    one temporary file (the killed one) is left, and the next save removes it."""
    path = tmp_path / "model.npz"
    left_behind = 0
    for delay in (0, 0.002, 0.005, 0.01, 0.02, 0.04):
        last = kill_mid_save(path, delay)
        saved = models.load_model(path).layers[0].params["bias"][0]
        assert saved in (last, last + 1), (delay, last, saved)
        temporaries = [name for name in os.listdir(tmp_path) if name != "model.npz"]
        assert len(temporaries) <= 1 and all(name.endswith(".tmp") for name in temporaries)
        left_behind += len(temporaries)
    assert left_behind > 0, "no kill landed in the middle of a save: the test is broken"
    models.load_model(path).save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_save_removes_only_abandoned_temporary_files(tmp_path):
    """Temporary files of this pid space whose writer is gone (a dead pid, or
    this process's pid reused after a restart and not writing them) go; those
    of running processes go not, nor those of other pid spaces (containers
    sharing the volume) or of older versions unless they are a day old."""
    model = small_model()
    space = saving._pid_space()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    abandoned = [f".model.npz.{space}.{os.getpid()}.0123abcd.tmp",
                 f".model.npz.{space}.{dead}.0123abcd.tmp",
                 f".model.npz.0123456789ab.{os.getpid()}.0123abcd.tmp",  # a day old
                 ".model.npz.999999999.0123abcd.tmp"]  # an older version's, a day old
    kept = [f".model.npz.{space}.1.0123abcd.tmp",  # pid 1 always runs
            f".model.npz.0123456789ab.{dead}.0123abcd.tmp",  # another container's, new
            ".model.npz.999999999.4567cdef.tmp",  # an older version's, new
            ".other.npz.999999999.0123abcd.tmp", "notes.tmp"]
    a_day_ago = time.time() - saving.FOREIGN_TEMPORARY_AGE - 60
    for name in abandoned + kept:
        (tmp_path / name).write_bytes(b"PK")
    for name in abandoned[2:]:
        os.utime(tmp_path / name, (a_day_ago, a_day_ago))
    model.save(tmp_path / "model.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz"] + kept)


def test_saves_from_two_pid_namespaces_keep_each_others_temporary_files(tmp_path, monkeypatch):
    """A process of another PID namespace (another container) is writing a
    temporary file whose pid is dead here: a save from this namespace leaves
    it alone, and the other one's own save then succeeds."""
    model = small_model()
    path = tmp_path / "model.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(saving, "_pid_space", lambda: "0123456789ab")
    monkeypatch.setattr(os, "getpid", lambda: int(dead))
    other_writes = []

    def save_in_the_other_namespace(stream):
        other_writes.extend(name for name in os.listdir(tmp_path) if name.endswith(".tmp"))
        monkeypatch.undo()  # back in this namespace
        model.save(path)  # while the other one writes
        stream.write(b"the other container's model")

    saving._write_file(path, save_in_the_other_namespace)
    assert other_writes == [f".model.npz.0123456789ab.{dead}.{other_writes[0].split('.')[-2]}.tmp"]
    assert path.read_bytes() == b"the other container's model"
    assert os.listdir(tmp_path) == ["model.npz"]


# -------------------------------------------------------------------- 3. threads


def test_two_models_training_in_threads_do_not_interfere():
    """Two models with their own initial weights and data, trained at once in
    two threads, end with exactly the weights each gets trained alone.
    shuffle=False: the shuffling order (like initial weights and dropout
    masks) comes from the one module-level generator, so with shuffling the
    two runs would split its numbers between them in no fixed way."""
    rng = np.random.default_rng(5)
    initial = [[rng.normal(0, 0.3, w.shape).astype(np.float32)
                for w in small_model(size=16, filters=8).get_weights()] for _ in range(2)]
    data = [bars(320, seed=seed, size=16) for seed in (1, 2)]

    def train(i, barrier=None, spans=None):
        model = small_model(size=16, filters=8, weights=initial[i])
        if barrier is not None:
            barrier.wait()
        start = time.monotonic()
        model.fit(*data[i], batch_size=16, epochs=5, shuffle=False, verbose=0)
        if spans is not None:
            spans[i] = (start, time.monotonic())
        return model.get_weights()

    alone = [train(0), train(1)]
    together, spans = [None, None], [None, None]
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(
        i, train(i, barrier, spans))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the runs did not overlap"
    for i in range(2):
        for a, b in zip(alone[i], together[i], strict=True):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------- 4. memory


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_training_steps_do_not_grow_memory():
    """200 steps (10 epochs of 20, shuffled, with validation) after a warm-up
    grow the resident set by < 20 MB and traced memory by < 64 kB."""
    x, y = bars(640, size=28)
    model = small_model(size=28, filters=16)

    def train():
        model.fit(x, y, batch_size=32, epochs=10, verbose=0, validation_data=(x[:64], y[:64]))

    model.fit(x[:160], y[:160], batch_size=32, epochs=2, verbose=0,
              validation_data=(x[:64], y[:64]))
    gc.collect()
    before = resident_bytes()
    train()
    gc.collect()
    grown = resident_bytes() - before
    assert grown < 20 * MB, f"resident memory grew by {grown / MB:.1f} MB"

    tracemalloc.start()
    try:
        train()                                     # also warms up tracemalloc's tables
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        train()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"traced memory grew by {grown} bytes"


def test_predict_and_evaluate_hold_one_batch_of_intermediates():
    """predict and evaluate on 20,000 28x28 images in batches of 64: the
    traced peak stays below 40 MB (the outputs, one batch's 13 MB of
    intermediates, labels), while the whole input at once would need 4 GB."""
    rng = np.random.default_rng(0)
    x = rng.random((20_000, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    model = wide_model()
    full_batch = len(x) * 28 * 28 * 64 * 4
    one_batch = 64 * 28 * 28 * 64 * 4
    model.predict(x[:100], verbose=0)
    gc.collect()
    tracemalloc.start()
    try:
        outputs = model.predict(x, batch_size=64, verbose=0)
        predict_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        loss, accuracy = model.evaluate(x, y, batch_size=64, verbose=0)
        evaluate_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outputs.shape == (20_000, 10) and np.isfinite(outputs).all()
    assert math.isfinite(loss) and 0 <= accuracy <= 1
    assert full_batch > 3 * 2**30
    for name, peak in [("predict", predict_peak), ("evaluate", evaluate_peak)]:
        assert peak < 3 * one_batch, f"{name}: traced peak {peak / MB:.0f} MB"


# ---------------------------------------------------------------- 5. huge batches


def test_batches_too_large_for_memory_raise_memory_error_in_subprocess():
    """With the address space capped at 1 GB above its start-up size, predict,
    evaluate and fit with one batch of 20,000 images (4 GB of intermediates)
    raise MemoryError naming the batch size; the same model then runs in
    batches of 64, its weights finite."""
    proc = subprocess.run([sys.executable, str(HELPER), "huge-batch"], capture_output=True,
                          text=True, timeout=300, env=SUBPROCESS_ENV)
    assert proc.returncode == 0, f"return code {proc.returncode}\n{proc.stderr[-4000:]}"
    outcomes = {r["case"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(outcomes) == {f"{call}_{size}" for call in ("predict", "evaluate", "fit")
                             for size in ("huge_batch", "batch_64")}, proc.stdout
    for case, result in outcomes.items():
        assert result["finite_weights"], result
        if case.endswith("huge_batch"):
            assert result["outcome"] == "MemoryError", result
            assert "batch of 20000 samples" in result["message"], result
            assert "smaller batch_size" in result["message"], result
        else:
            assert result["outcome"] == "ok", result


# --------------------------------------------------------------- 6. progress bar


def test_progress_bar_redraws_every_interval(monkeypatch, capsys):
    """1,000 steps of 10 ms on a fake clock: 10 s, so about 200 redraws
    (Keras 3's interval, 0.05 s, or 0.06 s when rounding makes 5 steps fall
    short), not one per step, nor only the first and last."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(utils, "time", SimpleNamespace(monotonic=lambda: clock.now))
    progbar = utils.Progbar(1000, verbose=1)
    for step in range(1, 1001):
        clock.now += 0.01
        progbar.update(step, [("loss", 0.5)])
    out = capsys.readouterr().out
    assert 10 / 0.06 <= out.count("\r") <= 10 / 0.05 + 2
    assert out.endswith(" - loss: 0.5000\n")


def test_verbose_fit_redraws_at_most_every_twentieth_of_a_second(capsys):
    """Training 300 small steps with verbose=1 redraws the bar at most once
    per 0.05 s, Keras 3's interval (plus the first and last frames of each
    epoch)."""
    x, y = bars(1600)
    model = small_model()
    start = time.monotonic()
    model.fit(x, y, batch_size=16, epochs=3, verbose=1)
    elapsed = time.monotonic() - start
    frames = capsys.readouterr().out.count("\r")
    assert frames <= elapsed / 0.05 + 3 * 2, (frames, elapsed)


# ------------------------------------------------------- 7. weights and files


def tiny_model(units=2, build=True):
    """A compiled Conv2D-Flatten-Dense model for 6x6 images (unbuilt unless ``build``)."""
    model = models.Sequential([
        layers.Conv2D(2, 3, activation="relu", **({"input_shape": (6, 6, 1)} if build else {})),
        layers.Flatten(),
        layers.Dense(units),
    ])
    model.compile("adam", "mse")
    return model


def assert_weights_equal(model, weights):
    for a, b in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("last, error, message", [
    (np.zeros(3), ValueError, r"'dense\w*' bias has shape \(2,\), the given array has shape"),
    (np.array([1 + 2j, 0j]), TypeError, r"'dense\w*' bias takes an array of bools, ints or "
                                         r"floats, the given array has dtype complex128"),
    (np.array(["1", "2"]), TypeError, "dtype <U1"),
    (np.array([1.0, None]), TypeError, "dtype object"),
])
def test_set_weights_changes_nothing_unless_every_array_fits(last, error, message):
    """One bad array, the last one: nothing is assigned; strings, objects and
    complex numbers (which would lose their imaginary part) are refused."""
    model = tiny_model()
    before = model.get_weights()
    new = [np.ones_like(w) for w in before[:-1]] + [last]
    with pytest.raises(error, match=message):
        model.set_weights(new)
    assert_weights_equal(model, before)
    with pytest.raises(error, match=message):
        model.layers[-1].set_weights(new[-2:])
    assert_weights_equal(model, before)


def test_set_weights_casts_bools_ints_and_floats_to_the_weights_dtype():
    model = tiny_model()
    kernel, bias, dense_kernel, _ = model.get_weights()
    model.set_weights([np.ones(kernel.shape, np.int64), np.array([True, False]),
                       np.full(dense_kernel.shape, 0.5, np.float64), np.array([3, -4], np.int8)])
    assert [w.dtype for w in model.get_weights()] == [np.float32] * 4
    np.testing.assert_array_equal(model.get_weights()[1], [1, 0])
    np.testing.assert_array_equal(model.get_weights()[3], [3, -4])


def test_failed_load_weights_leaves_an_unbuilt_model_unbuilt(tmp_path):
    """The file's Dense has 2 units, the model's 3: the model, built for the
    file's input shape to compare, is unbuilt again, and builds and loads
    its own weights afterwards."""
    path = tmp_path / "weights.npz"
    tiny_model().save_weights(path)
    model = tiny_model(units=3, build=False)
    with pytest.raises(ValueError, match="does not fit model"):
        model.load_weights(path)
    assert not model.built and not any(layer.built for layer in model.layers)
    assert all(layer.inbound_nodes == [] and layer.params == {} for layer in model.layers)
    model.build((None, 6, 6, 1))
    model.save_weights(path)
    saved = model.get_weights()
    model.set_weights([np.zeros_like(w) for w in saved])
    model.load_weights(path)
    assert_weights_equal(model, saved)


def rewrite_npz(path, members):
    """Rewrites the .npz file ``path`` (deflated) with ``members`` replacing
    or joining its own: key -> array, or key -> (.npy header dict, number of
    zero bytes that follow it)."""
    with zipfile.ZipFile(path) as archive:
        kept = {info.filename: archive.read(info) for info in archive.infolist()
                if info.filename[:-len(".npy")] not in members}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in kept.items():
            archive.writestr(name, data)
        for key, member in members.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as stream:
                if isinstance(member, np.ndarray):
                    np.lib.format.write_array(stream, member)
                    continue
                header, zeros = member
                np.lib.format.write_array_header_1_0(stream, header)
                for start in range(0, zeros, MB):
                    stream.write(bytes(min(MB, zeros - start)))


def header_of(path):
    with zipfile.ZipFile(path) as archive, archive.open(f"{saving.HEADER_KEY}.npy") as stream:
        return json.loads(str(np.lib.format.read_array(stream)[()]))


def peak_memory_of(function, *args):
    """(what ``function(*args)`` raised or returned, the peak bytes it traced)."""
    tracemalloc.start()
    try:
        try:
            outcome = function(*args)
        except Exception as error:  # noqa: BLE001 - the caller checks it
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loading_never_reads_unknown_members(tmp_path):
    """A 64 MB member (of zeros: 64 KB in the file) that the model does not
    know is never decompressed."""
    path = tmp_path / "model.npz"
    model = tiny_model()
    model.save(path)
    rewrite_npz(path, {"notes": ({"descr": "|u1", "fortran_order": False,
                                  "shape": (64 * MB,)}, 64 * MB)})
    assert path.stat().st_size < MB
    loaded, peak = peak_memory_of(models.load_model, path)
    assert_weights_equal(loaded, model.get_weights())
    assert peak < 8 * MB


@pytest.mark.parametrize("member, message", [
    (np.zeros((3, 3, 1, 2), np.float64), None),  # another dtype: cast, as set_weights does
    (np.zeros((3, 3, 1, 3), np.float32), r"layer_0/kernel has shape \(3, 3, 1, 3\) in the "
                                         r"file, \(3, 3, 1, 2\) in model"),
    (({"descr": "<f4", "fortran_order": False, "shape": (4096, 4096)}, 64 * MB),
     r"layer_0/kernel has shape \(4096, 4096\) in the file"),  # a zip bomb
    (({"descr": "<f4", "fortran_order": False, "shape": (3, 3, 1, 2)}, 64 * MB),
     r"layer_0/kernel declares float32 \(3, 3, 1, 2\) but holds 67108992 bytes"),  # a zip bomb
    (({"descr": "<f4", "fortran_order": False, "shape": (3, 3, 1, 2)}, 8),
     r"layer_0/kernel declares float32 \(3, 3, 1, 2\) but holds 136 bytes"),  # truncated
    (np.array(["abc"] * 18).reshape(3, 3, 1, 2), "dtype <U3"),
])
def test_members_are_checked_against_the_model_before_they_are_read(tmp_path, member, message):
    path = tmp_path / "model.npz"
    model = tiny_model()
    model.save(path)
    rewrite_npz(path, {"layer_0/kernel": member})
    before = model.get_weights()
    for load in (models.load_model, model.load_weights):
        outcome, peak = peak_memory_of(load, path)
        assert peak < 8 * MB
        if message is None:
            assert not isinstance(outcome, Exception), outcome
            continue
        assert isinstance(outcome, ValueError) and str(path) in str(outcome), repr(outcome)
        assert re.search(message, str(outcome)), outcome
    if message is not None:
        assert_weights_equal(model, before)


def test_header_declaring_a_huge_layer_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    tiny_model().save(path)
    header = header_of(path)
    header["model"]["config"]["layers"][2]["config"]["units"] = 10**12
    rewrite_npz(path, {saving.HEADER_KEY: np.array(json.dumps(header))})
    outcome, peak = peak_memory_of(models.load_model, path)
    assert isinstance(outcome, ValueError) and str(path) in str(outcome), repr(outcome)
    assert peak < 8 * MB


@pytest.mark.parametrize("iterations, message", [
    (np.array(-1), r"optimizer/iterations must be an integer >= 0, got int64 -1"),
    (np.array(2.5), r"optimizer/iterations must be an integer >= 0, got float64 2.5"),
    (np.array([3]), r"optimizer/iterations has shape \(1,\) in the file, \(\) in"),
])
def test_invalid_optimizer_iterations_are_refused(tmp_path, iterations, message):
    path = tmp_path / "model.npz"
    tiny_model().save(path)
    rewrite_npz(path, {"optimizer/iterations": iterations})
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        models.load_model(path)


def mutations(value, rng):
    """Malformed versions of the JSON ``value``: one node replaced by
    another type, a huge number or deep nesting, or a key removed."""
    nodes = []

    def walk(node, path):
        nodes.append(path)
        children = node.items() if isinstance(node, dict) else (
            enumerate(node) if isinstance(node, list) else ())
        for key, child in children:
            walk(child, path + (key,))

    walk(value, ())
    replacements = [None, True, "x", -1, 0, 1.5, 10**30, -10**30, 1e308, [], {}, [1, "x"],
                    {"class_name": "Dense"}, "DEEP"]
    for _ in range(200):
        path = nodes[rng.integers(len(nodes))]
        if not path:
            continue
        mutated = json.loads(json.dumps(value))
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.25:
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacements[rng.integers(len(replacements))]
        text = json.dumps(mutated)
        yield text.replace('"DEEP"', "[" * 10000 + "]" * 10000)  # nesting depth 10000


def optimizer_state_mutations(rng):
    """(member, malformed array) replacing one optimizer state array."""
    keys = ["optimizer/iterations", "optimizer/layer_0/kernel/momentum",
            "optimizer/layer_2/bias/velocity"]
    values = [np.array(-5), np.array(2**62), np.array(1.5), np.array("x"), np.array(True),
              np.zeros((3, 3, 1, 2), np.complex64), np.zeros((3, 3, 1, 2), "U1"),
              np.zeros(2, np.float64), np.zeros((3, 3, 1, 2), np.float64), np.zeros(0),
              np.zeros((2, 0)), np.array([np.nan, np.inf])]
    for _ in range(40):
        yield keys[rng.integers(len(keys))], values[rng.integers(len(values))]


def test_fuzzed_headers_and_optimizer_state_raise_only_value_error(tmp_path):
    """200 mutations of a saved model's header and 40 of its optimizer
    state: each loads or raises a ValueError naming the file, never another
    error (nor a warning: a complex array would lose its imaginary part)."""
    path = tmp_path / "model.npz"
    model = tiny_model()
    model.fit(np.ones((2, 6, 6, 1), np.float32), np.ones((2, 2), np.float32), verbose=0)
    model.save(path)
    saved = path.read_bytes()
    header = header_of(path)
    rng = np.random.default_rng(0)
    changes = [{saving.HEADER_KEY: np.array(text)} for text in mutations(header, rng)]
    changes += [{key: value} for key, value in optimizer_state_mutations(rng)]
    outcomes = {}
    for change in changes:
        path.write_bytes(saved)
        rewrite_npz(path, change)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                models.load_model(path)
            outcomes["loaded"] = outcomes.get("loaded", 0) + 1
        except ValueError as error:
            assert str(path) in str(error), error
            outcomes["ValueError"] = outcomes.get("ValueError", 0) + 1
    assert outcomes["ValueError"] > 100, outcomes
