"""model.profile (fastconv.profiling) and the FMA-peak figures of bench/."""

import os
import shutil
import sys

import numpy as np
import pytest

import fastconv
from fastconv import layers
from fastconv.models import functional

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)


def small_model(compiled=True):
    """8x8x2 -> Conv2D 4 (3x3) -> MaxPooling2D -> Flatten -> Dense 3 softmax."""
    model = fastconv.Sequential([
        fastconv.Input((8, 8, 2)),
        layers.Conv2D(4, (3, 3), activation="relu", name="conv"),
        layers.MaxPooling2D((2, 2), name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(3, activation="softmax", name="dense"),
    ])
    if compiled:
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy",
                      metrics=["accuracy"])
    return model


def data(count=6):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((count, 8, 8, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, count)]
    return x, y


def test_one_row_per_layer_with_hand_counted_multiply_adds():
    model = small_model()
    x, y = data()
    printed = []
    result = model.profile(x, y, batch_size=4, repeat=2, peak_gflops=50.0,
                           print_fn=printed.append)
    assert [row["layer"] for row in result.rows] == ["conv", "pool", "flatten", "dense"]
    assert [row["type"] for row in result.rows] == ["Conv2D", "MaxPooling2D", "Flatten",
                                                    "Dense"]
    # conv: 4 images x 6x6x4 outputs x 3x3x2 taps; dense: 4 x 3 outputs x 3x3x4 inputs
    assert [row["macs"] for row in result.rows] == [4 * 6 * 6 * 4 * 18, 0, 0, 4 * 3 * 36]
    assert result.batch_size == 4 and result.repeat == 2 and result.step == "train_on_batch"
    assert result.threads == fastconv.get_num_threads()
    # the pool runs fused with the conv (fastconv.models.functional.FUSE): the
    # conv's row holds the pair's time, the pool's none
    assert [row["fused_with"] for row in result.rows] == ["pool", "conv", None, None]
    for row in result.rows:
        fused_pool = row["fused_with"] == "conv"
        assert row["forward_ms"] > 0 and row["backward_ms"] > 0 or fused_pool
        assert row["forward_ms"] == row["backward_ms"] == 0 or not fused_pool
    conv, dense = result.rows[0], result.rows[3]
    assert conv["forward_gflops"] == pytest.approx(2 * conv["macs"] / conv["forward_ms"] / 1e6)
    # the first layer's backward computes the weight gradient only: one product
    assert conv["backward_gflops"] == pytest.approx(2 * conv["macs"] / conv["backward_ms"] / 1e6)
    assert dense["backward_gflops"] == pytest.approx(4 * dense["macs"] / dense["backward_ms"]
                                                     / 1e6)
    assert conv["forward_peak_percent"] == pytest.approx(2 * conv["forward_gflops"])
    assert result.rows[1]["forward_gflops"] is None
    assert result.rows[1]["forward_peak_percent"] is None
    assert result.forward_ms == pytest.approx(sum(r["forward_ms"] for r in result.rows))
    assert result.backward_ms == pytest.approx(sum(r["backward_ms"] for r in result.rows))
    assert result.macs == 4 * 6 * 6 * 4 * 18 + 4 * 3 * 36
    assert result.backward_macs == 4 * 6 * 6 * 4 * 18 + 2 * 4 * 3 * 36
    assert result.forward_gflops == pytest.approx(2 * result.macs / result.forward_ms / 1e6)
    assert result.step_ms > 0 and 0 < result.outside_ms < result.step_ms
    assert printed == [str(result)]
    text = printed[0]
    for name in ["conv (Conv2D) + pool", "pool (MaxPooling2D) in conv", "dense (Dense)", "Total",
                 "fwd % peak", "train_on_batch"]:
        assert name in text


def test_profile_leaves_weights_optimizer_and_metrics_as_they_were():
    model = small_model()
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=3, verbose=0)
    before = model.get_weights()
    iterations = model.optimizer.iterations
    slots = [{k: v.copy() for k, v in slot.items()} for slot in model.optimizer.slots]
    model.profile(x, y, batch_size=4, repeat=1, print_fn=lambda text: None)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert model.optimizer.iterations == iterations
    for old, new in zip(slots, model.optimizer.slots):
        for name in old:
            np.testing.assert_array_equal(old[name], new[name])
    # the timing wrappers are gone: the layers' own methods run again
    assert not any({"forward", "backward"} & set(vars(layer)) for layer in model.layers)


def test_without_labels_a_forward_and_backward_pass_of_an_uncompiled_model():
    model = small_model(compiled=False)
    x, _ = data(3)
    result = fastconv.profiling.profile(model, x, batch_size=32, repeat=1,
                                        print_fn=lambda text: None)
    assert result.step == "forward + backward" and result.batch_size == 3
    assert result.rows[0]["macs"] == 3 * 6 * 6 * 4 * 18
    assert result.rows[0]["forward_peak_percent"] is None


def test_depthwise_separable_and_shared_layers_count_every_call():
    inputs = fastconv.Input((8, 8, 2))
    depthwise = layers.DepthwiseConv2D((3, 3), depth_multiplier=2, name="depthwise")(inputs)
    separable = layers.SeparableConv2D(5, (3, 3), name="separable")(inputs)
    shared = layers.Dense(2, name="shared")
    left = shared(layers.Flatten()(depthwise))
    right = shared(layers.Flatten()(layers.Conv2D(4, 3)(inputs)))
    model = fastconv.Model(inputs, [left, right, separable])
    result = model.profile(data(2)[0], batch_size=2, repeat=1, print_fn=lambda text: None)
    macs = {row["layer"]: row["macs"] for row in result.rows}
    assert macs["depthwise"] == 2 * 6 * 6 * 4 * 9
    # depthwise 6x6x2 positions x 9 taps, then pointwise 6x6x2 -> 5
    assert macs["separable"] == 2 * 6 * 6 * 2 * (9 + 5)
    assert macs["shared"] == 2 * 2 * 144 * 2  # called twice on 144 features
    assert [row["layer"] for row in result.rows] == [layer.name for layer in model.layers[1:]]


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_size": 0}, ValueError), ({"batch_size": 2.5}, TypeError),
    ({"repeat": 0}, ValueError), ({"repeat": "3"}, TypeError),
    ({"peak_gflops": 0}, ValueError), ({"peak_gflops": "fast"}, TypeError),
])
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error):
        small_model().profile(data()[0], print_fn=lambda text: None, **kwargs)


def test_labels_need_a_compiled_model_and_inputs_must_fit():
    x, y = data()
    with pytest.raises(TypeError, match="Model"):
        fastconv.profiling.profile(layers.Dense(2), x)
    with pytest.raises(RuntimeError, match="compile"):
        small_model(compiled=False).profile(x, y)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        small_model().profile(np.zeros((2, 9, 9, 2), np.float32), y[:2])


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_fma_probe_compiles_and_measures_a_positive_rate():
    from fma_peak import fma_line, fma_peak_gflops, fma_probe

    assert fma_peak_gflops(1, runs=1) > 0
    probe = fma_probe(2, runs=1)
    assert probe["gflops"] > 0 and probe["threads"] == 2
    assert probe["isa"] in ("avx512", "avx2+fma", "neon", "generic-16-byte")
    assert f"{probe['gflops']:.0f} GFLOP/s on 2 threads" in fma_line(probe)
    with pytest.raises(ValueError):
        fma_probe(0)


def test_report_tables_give_the_fma_peak_next_to_the_matmul_peak():
    from bench_kernels import kernel_table
    from common import percent_of_peaks
    from report import sweep_table

    peaks = {"fma": 200.0, "matmul": 100.0}
    records = [{"kernel": "conv2 forward", "flops": 2e8, "ms": {"fastconv": 2.0, "numpy": 8.0},
                "speedup_vs_numpy": 4.0, "gflops": 100.0,
                "percent_of_peak": percent_of_peaks(100.0, peaks)},
               {"kernel": "pool1 forward", "flops": None, "ms": {"fastconv": 1.0, "numpy": 2.0},
                "speedup_vs_numpy": 2.0}]
    headers, rows = kernel_table(records)
    assert headers[-3:] == ["GFLOP/s", "% of FMA peak", "% of matmul peak"]
    assert rows[0][-3:] == ["100", "50%", "100%"] and rows[1][-3:] == ["-", "-", "-"]
    no_probe = percent_of_peaks(100.0, {"fma": None, "matmul": 100.0})
    sweep = {"axis": "batch size", "points": [
        {"value": 64, "flops": 1e9, "ms": {"fastconv": 10.0}, "gflops": {"fastconv": 100.0},
         "percent_of_peak": {"fastconv": no_probe}}]}
    headers, rows = sweep_table(sweep)
    assert headers[-2:] == ["fastconv % of FMA peak", "fastconv % of matmul peak"]
    assert rows[0][-2:] == ["-", "100%"]


@pytest.mark.parametrize("fuse", [True, False])
def test_a_fused_convolution_counts_the_outputs_its_forward_computes(monkeypatch, fuse):
    """9x9 -> a 7x7 convolution output under 2x2 pooling windows: fused, its
    forward computes the 6x6 outputs inside the windows; its backward (the
    weight gradient, a first layer's only product) runs on all 7x7."""
    monkeypatch.setattr(functional, "FUSE", fuse)
    model = fastconv.Sequential([
        fastconv.Input((9, 9, 2)),
        layers.Conv2D(4, (3, 3), activation="relu", name="conv"),
        layers.MaxPooling2D((2, 2), name="pool"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9, 9, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]
    conv = model.profile(x, y, batch_size=4, repeat=1, print_fn=lambda _: None).rows[0]
    computed = 6 if fuse else 7
    assert conv["macs"] == 4 * computed * computed * 4 * 18
    assert conv["backward_macs"] == 4 * 7 * 7 * 4 * 18
