"""Optimizers and learning-rate schedules against Keras 3: update equations
computed by hand, values from Keras's own tests, clipping, weight decay,
schedules, Keras 2 spellings, state and serialisation."""

import json
import math
import tracemalloc
import warnings

import numpy as np
import pytest

from fastconv import optimizers
from fastconv.optimizers import schedules

# ------------------------------------------------------- reference equations

# Each takes (w, g, state, t, lr, config) in float64, updates ``state`` (a dict,
# empty at t = 1) and returns the new w: Keras 3's update_step written out.


def sgd_step(w, g, s, t, lr, c):
    momentum = c.get("momentum", 0.0)
    if not momentum:
        return w - lr * g
    m = s["m"] = momentum * s.get("m", 0.0) - lr * g
    return w + momentum * m - lr * g if c.get("nesterov") else w + m


def rmsprop_step(w, g, s, t, lr, c):
    rho, eps, momentum = c.get("rho", 0.9), c.get("epsilon", 1e-7), c.get("momentum", 0.0)
    v = s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g ** 2
    if c.get("centered"):
        a = s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g
        increment = lr * g / np.sqrt(v - a ** 2 + eps)
    else:
        increment = lr * g / np.sqrt(v + eps)
    if momentum:
        increment = s["m"] = momentum * s.get("m", 0.0) + increment
    return w - increment


def adam_step(w, g, s, t, lr, c):
    b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    if c.get("amsgrad"):
        v = s["v_hat"] = np.maximum(s.get("v_hat", 0.0), v)
    return w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)


def adagrad_step(w, g, s, t, lr, c):
    a = s["a"] = s.get("a", c.get("initial_accumulator_value", 0.1)) + g ** 2
    return w - lr * g / np.sqrt(a + c.get("epsilon", 1e-7))


def adadelta_step(w, g, s, t, lr, c):
    rho, eps = c.get("rho", 0.95), c.get("epsilon", 1e-7)
    a = s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g ** 2
    delta = -np.sqrt(s.get("d", 0.0) + eps) * g / np.sqrt(a + eps)
    s["d"] = rho * s.get("d", 0.0) + (1 - rho) * delta ** 2
    return w + lr * delta


def adamax_step(w, g, s, t, lr, c):
    b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    u = s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
    return w - lr / (1 - b1 ** t) * m / (u + eps)


def nadam_step(w, g, s, t, lr, c):
    b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
    u = [b1 * (1 - 0.5 * 0.96 ** k) for k in range(t + 2)]
    product = math.prod(u[1:t + 1])
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    m_hat = u[t + 1] * m / (1 - product * u[t + 1]) + (1 - u[t]) * g / (1 - product)
    return w - lr * m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps)


STEPS = {"sgd": (sgd_step, 0.01), "rmsprop": (rmsprop_step, 0.001), "adam": (adam_step, 0.001),
         "adamw": (adam_step, 0.001), "adagrad": (adagrad_step, 0.001),
         "adadelta": (adadelta_step, 0.001), "adamax": (adamax_step, 0.001),
         "nadam": (nadam_step, 0.001)}


def reference(name, config, weight, gradients):
    """The weight after one update per gradient, in float64, with decoupled
    weight decay (w -= w * wd * lr) before each update."""
    step, default_lr = STEPS[name]
    lr = config.get("learning_rate", default_lr)
    decay = config.get("weight_decay", 0.004 if name == "adamw" else None)
    w, state = weight.astype(np.float64), {}
    for t, g in enumerate(gradients, start=1):
        if decay is not None:
            w = w - w * decay * lr
        w = step(w, g.astype(np.float64), state, t, lr, config)
    return w


CASES = [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("rmsprop", {}), ("rmsprop", {"momentum": 0.5, "centered": True, "rho": 0.8}),
    ("adam", {"learning_rate": 0.1}), ("adam", {"amsgrad": True, "beta_2": 0.5}),
    ("adamw", {}), ("adamw", {"weight_decay": 0.1, "learning_rate": 0.05, "amsgrad": True}),
    ("adagrad", {}), ("adagrad", {"initial_accumulator_value": 0.5, "learning_rate": 0.1}),
    ("adadelta", {}), ("adadelta", {"rho": 0.5, "learning_rate": 1.0}),
    ("adamax", {}), ("adamax", {"beta_1": 0.5, "epsilon": 1e-3}),
    ("nadam", {}), ("nadam", {"beta_1": 0.5, "beta_2": 0.67, "learning_rate": 0.5}),
    ("sgd", {"weight_decay": 0.1, "learning_rate": 0.1}), ("nadam", {"weight_decay": 0.01}),
]


def three_steps(dtype, seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((3, 4)).astype(dtype)
    # Gradients of decreasing size, so that sign flips and the max of Adamax
    # and AMSGrad both matter.
    gradients = [(rng.standard_normal((3, 4)) * 10.0 ** -k).astype(dtype) for k in range(3)]
    return weight, gradients


@pytest.mark.parametrize("name, config", CASES)
def test_three_steps_follow_the_keras_equations_in_float64(name, config):
    weight, gradients = three_steps(np.float64)
    optimizer = optimizers.OPTIMIZERS.lookup(name)(**config)
    updated = weight.copy()
    for g in gradients:
        optimizer.apply([updated], [g])
    np.testing.assert_allclose(updated, reference(name, config, weight, gradients),
                               rtol=1e-12, atol=1e-15)
    assert optimizer.iterations == 3


@pytest.mark.parametrize("name, config", CASES)
def test_float32_weights_stay_float32_and_follow_the_equations(name, config):
    weight, gradients = three_steps(np.float32)
    optimizer = optimizers.OPTIMIZERS.lookup(name)(**config)
    updated = weight.copy()
    for g in gradients:
        optimizer.apply([updated], [g])
    assert updated.dtype == np.float32
    assert all(a.dtype == np.float32 for slots in optimizer.slots for a in slots.values())
    np.testing.assert_allclose(updated, reference(name, config, weight, gradients),
                               rtol=2e-5, atol=1e-6)


# Keras 3's test_single_step of each optimizer: learning_rate=0.5, one step.
KERAS_SINGLE_STEPS = {
    "sgd": [0.5, -1.0, -0.5, 3.0], "rmsprop": [-0.5811, 0.4189, 1.4189, 2.4189],
    "adam": [0.5, 1.5, 2.5, 3.5], "adagrad": [0.5233, 1.5007, 2.5005, 3.5061],
    "adadelta": [0.9993, 1.9993, 2.9993, 3.9993], "adamax": [0.5, 1.5, 2.5, 3.5],
    "nadam": [0.4686, 1.4686, 2.4686, 3.4686], "adamw": [0.4980, 1.4960, 2.494, 3.492],
}


@pytest.mark.parametrize("name", sorted(KERAS_SINGLE_STEPS))
def test_single_step_matches_keras_tests(name):
    weight = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    optimizer = optimizers.OPTIMIZERS.lookup(name)(learning_rate=0.5)
    optimizer.apply([weight], [np.array([1.0, 6.0, 7.0, 2.0], np.float32)])
    np.testing.assert_allclose(weight, KERAS_SINGLE_STEPS[name], rtol=1e-4, atol=1e-4)


def test_rmsprop_docstring_example_and_nadam_golden_values_of_keras():
    var = np.array(10.0)
    optimizers.RMSprop(learning_rate=0.1).apply([var], [var.copy()])  # loss = var**2 / 2
    assert var == pytest.approx(9.683772, abs=1e-6)

    nadam = optimizers.Nadam(learning_rate=0.5, beta_1=0.5, beta_2=0.67, epsilon=1e-5)
    x = np.ones(10, np.float32)
    golden = [[0.4281] * 10,
              [-0.1738, -0.1731, -0.1726, -0.1723, -0.1721, -0.172, -0.1719, -0.1718, -0.1718,
               -0.1717],
              [-1.7492, -1.7478, -1.7469, -1.7464, -1.7461, -1.7459, -1.7457, -1.7456, -1.7455,
               -1.7454]]
    nadam.apply([x], [np.full(10, 0.01, np.float32)])
    np.testing.assert_allclose(x, golden[0], rtol=5e-4, atol=5e-4)
    grads = np.arange(1, 11, dtype=np.float32) / 10
    nadam.apply([x], [grads])
    np.testing.assert_allclose(x, golden[1], rtol=5e-4, atol=5e-4)
    for _ in range(3):
        nadam.apply([x], [grads])
    np.testing.assert_allclose(x, golden[2], rtol=5e-4, atol=5e-4)


def test_nadam_continues_exactly_after_its_state_is_restored():
    """Nadam's running product of momentum factors is rebuilt from
    ``iterations`` when the state comes from elsewhere (a loaded model)."""
    weight, gradients = three_steps(np.float64)
    continuous, restored = optimizers.Nadam(), optimizers.Nadam()
    w1, w2 = weight.copy(), weight.copy()
    for g in gradients[:2]:
        continuous.apply([w1], [g])
    w2[...] = w1
    restored.build([w2])
    for slots, saved in zip(restored.slots, continuous.slots):
        for key in slots:
            slots[key][...] = saved[key]
    restored.iterations = continuous.iterations
    continuous.apply([w1], [gradients[2]])
    restored.apply([w2], [gradients[2]])
    np.testing.assert_array_equal(w1, w2)


# ------------------------------------------------------- weight decay, clipping


def test_weight_decay_as_keras_tests_it():
    """Keras's test_weight_decay: a zero gradient, learning_rate 1 and
    weight_decay 0.004 applied by three optimizers leave 2 * 0.996**3."""
    for name in KERAS_SINGLE_STEPS:
        var = np.array(2.0, np.float32)
        for _ in range(3):
            optimizers.OPTIMIZERS.lookup(name)(learning_rate=1.0, weight_decay=0.004).apply(
                [var], [np.zeros((), np.float32)])
        assert var == pytest.approx(1.9760959, abs=1e-6), name


def test_weight_decay_uses_the_scheduled_learning_rate_of_the_step():
    schedule = schedules.PiecewiseConstantDecay([0], [1.0, 0.5])
    optimizer = optimizers.SGD(learning_rate=schedule, weight_decay=0.1)
    w = np.array([10.0])
    optimizer.apply([w], [np.array([1.0])])            # lr 1.0: 10 - 1 - 1
    assert w[0] == pytest.approx(8.0)
    optimizer.apply([w], [np.array([1.0])])            # lr 0.5: 8 - 0.4 - 0.5
    assert w[0] == pytest.approx(7.1)
    assert optimizers.AdamW().weight_decay == 0.004


def clipped_sgd_step(grads, **clip):
    """The update of SGD(learning_rate=1): minus the clipped gradients."""
    weights = [np.zeros_like(g) for g in grads]
    optimizers.SGD(learning_rate=1.0, **clip).apply(weights, grads)
    return [-w for w in weights]


def test_clipnorm_clips_each_gradient_to_the_norm():
    big, small = np.array([3.0, 4.0]), np.array([0.3, 0.4])
    clipped = clipped_sgd_step([big, small], clipnorm=1.0)
    np.testing.assert_allclose(clipped[0], [0.6, 0.8])
    np.testing.assert_allclose(clipped[1], [0.3, 0.4])
    np.testing.assert_array_equal(big, [3.0, 4.0])       # the caller's gradient is untouched
    np.testing.assert_allclose(clipped_sgd_step([np.array([100.0, 100.0])],
                                                clipnorm=1)[0], [2 ** 0.5 / 2] * 2)
    # As Keras's g * clipnorm / max(norm, clipnorm): an infinite norm zeroes the
    # finite elements, a NaN norm makes all NaN.
    with np.errstate(invalid="ignore"):                  # inf * 0
        infinite = clipped_sgd_step([np.array([np.inf, 1.0])], clipnorm=1.0)[0]
    assert np.isnan(infinite[0]) and infinite[1] == 0
    assert np.isnan(clipped_sgd_step([np.array([np.nan, 1.0])], clipnorm=1.0)[0]).all()


def test_global_clipnorm_scales_all_gradients_together():
    grads = [np.array([3.0, 0.0]), np.array([0.0, 4.0])]  # global norm 5
    clipped = clipped_sgd_step(grads, global_clipnorm=2.5)
    np.testing.assert_allclose(clipped[0], [1.5, 0.0])
    np.testing.assert_allclose(clipped[1], [0.0, 2.0])
    unchanged = clipped_sgd_step(grads, global_clipnorm=10.0)
    np.testing.assert_allclose(unchanged[1], [0.0, 4.0])
    # As in Keras, an infinite global norm makes every gradient NaN.
    infinite = clipped_sgd_step([np.array([np.inf]), np.array([1.0])], global_clipnorm=1.0)
    assert np.isnan(infinite[1]).all()


def test_clipvalue_clips_each_element():
    clipped = clipped_sgd_step([np.array([-5.0, 0.5, 100.0])], clipvalue=1.0)
    np.testing.assert_allclose(clipped[0], [-1.0, 0.5, 1.0])


def test_clipping_applies_before_an_adam_update():
    weight, gradients = three_steps(np.float64)
    optimizer, updated = optimizers.Adam(learning_rate=0.1, clipvalue=0.2), weight.copy()
    for g in gradients:
        optimizer.apply([updated], [g])
    expected = reference("adam", {"learning_rate": 0.1}, weight,
                         [np.clip(g, -0.2, 0.2) for g in gradients])
    np.testing.assert_allclose(updated, expected, rtol=1e-12)


def test_a_step_allocates_nothing_of_the_weights_size():
    weights = [np.zeros(100_000, np.float32), np.zeros(1000, np.float32)]
    grads = [np.full_like(w, 3.0) for w in weights]
    for optimizer in (optimizers.Adagrad(clipnorm=1.0), optimizers.Adadelta(weight_decay=0.1),
                      optimizers.Adamax(global_clipnorm=1.0), optimizers.Nadam(clipvalue=0.5),
                      optimizers.AdamW(amsgrad=True), optimizers.SGD(
                          learning_rate=schedules.CosineDecay(0.1, 100), momentum=0.9)):
        optimizer.apply(weights, grads)  # builds the slots
        tracemalloc.start()
        optimizer.apply(weights, grads)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 40_000, type(optimizer).__name__


# ------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule, expected", [
    (schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5),
     {0: 0.1, 5: 0.1 * 0.5 ** 0.5, 10: 0.05, 20: 0.025}),
    (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
     {0: 0.1, 9: 0.1, 10: 0.05, 19: 0.05, 20: 0.025}),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]),
     {0: 1.0, 10: 1.0, 11: 0.5, 20: 0.5, 21: 0.1, 1000: 0.1}),
    (schedules.InverseTimeDecay(1.0, decay_steps=2, decay_rate=0.5),
     {0: 1.0, 1: 0.8, 4: 0.5, 6: 0.4}),
    (schedules.InverseTimeDecay(1.0, 2, 0.5, staircase=True), {1: 1.0, 3: 2 / 3, 4: 0.5}),
    (schedules.PolynomialDecay(1.0, decay_steps=10), {0: 1.0, 5: 0.50005, 10: 1e-4, 30: 1e-4}),
    (schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0),
     {5: 0.25, 10: 0.0, 20: 0.0}),
    (schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0, cycle=True),
     {0: 1.0, 5: 0.25, 10: 0.0, 15: 0.0625, 25: 1 / 36}),
    (schedules.CosineDecay(1.0, decay_steps=10), {0: 1.0, 5: 0.5, 10: 0.0, 20: 0.0}),
    (schedules.CosineDecay(1.0, 10, alpha=0.1), {0: 1.0, 5: 0.55, 10: 0.1, 50: 0.1}),
    (schedules.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4),
     {0: 0.0, 2: 0.5, 3: 0.75, 4: 1.0, 9: 0.5, 14: 0.0, 100: 0.0}),
    (schedules.CosineDecay(0.2, 10, alpha=0.5, warmup_target=1.0, warmup_steps=4),
     {2: 0.6, 9: 0.75, 20: 0.5}),
    (schedules.CosineDecayRestarts(1.0, first_decay_steps=10, m_mul=0.5),
     {0: 1.0, 5: 0.5, 10: 0.5, 20: 0.25, 30: 0.25, 40: 0.125 * (1 + 0.5 ** 0.5)}),
    (schedules.CosineDecayRestarts(1.0, 10, t_mul=1.0, alpha=0.2), {5: 0.6, 10: 1.0, 15: 0.6}),
])
def test_schedules_at_hand_computed_steps(schedule, expected):
    for step, value in expected.items():
        assert schedule(step) == pytest.approx(value, abs=1e-12), step
    twin = schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule))))
    assert type(twin) is type(schedule) and twin.get_config() == schedule.get_config()
    assert [twin(step) for step in expected] == [schedule(step) for step in expected]


def test_an_optimizer_follows_its_schedule_step_by_step():
    optimizer = optimizers.SGD(learning_rate=schedules.ExponentialDecay(1.0, 1, 0.5))
    w = np.zeros(1)
    rates = []
    for _ in range(3):
        rates.append(optimizer.learning_rate)
        optimizer.apply([w], [np.ones(1)])
    assert rates == [1.0, 0.5, 0.25] and w[0] == -1.75
    assert optimizer.learning_rate == 0.125


# ------------------------------------------------------- the learning rate


def test_learning_rate_can_be_assigned_unless_it_is_a_schedule():
    optimizer = optimizers.SGD(learning_rate=0.1)
    w = np.zeros(1)
    optimizer.learning_rate = np.float32(0.5)     # as ReduceLROnPlateau does
    optimizer.apply([w], [np.ones(1)])
    assert w[0] == -0.5 and optimizer.get_config()["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        optimizer.learning_rate = -1.0
    optimizer.learning_rate = schedules.InverseTimeDecay(1.0, 1, 1.0)
    assert optimizer.learning_rate == 0.5          # iterations == 1
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate = 0.1


def test_a_callable_learning_rate_is_read_at_each_step():
    rate = [0.5]
    optimizer = optimizers.SGD(learning_rate=lambda: rate[0])
    w = np.zeros(1)
    optimizer.apply([w], [np.ones(1)])
    rate[0] = 0.25
    optimizer.apply([w], [np.ones(1)])
    assert w[0] == -0.75 and optimizer.get_config()["learning_rate"] == 0.25


def test_keras2_lr_and_decay_warn_and_keep_their_meaning():
    with pytest.warns(DeprecationWarning, match="learning_rate=0.5") as record:
        optimizer = optimizers.AdamW(lr=0.5)
    assert optimizer.learning_rate == 0.5
    assert record[0].filename == __file__           # points at the caller
    message = r"InverseTimeDecay\(0.1, decay_steps=1, decay_rate=0.5\)"
    with pytest.warns(DeprecationWarning, match=message) as record:
        optimizer = optimizers.SGD(learning_rate=0.1, decay=0.5)
    assert record[0].filename == __file__
    assert isinstance(optimizer.get_config()["learning_rate"], dict)
    w = np.zeros(1)
    for _ in range(3):
        optimizer.apply([w], [np.ones(1)])
    # Keras 2: lr / (1 + decay * iterations) before each step.
    assert w[0] == pytest.approx(-(0.1 + 0.1 / 1.5 + 0.1 / 2.0))
    with pytest.raises(ValueError, match="decay"):
        optimizers.SGD(learning_rate=schedules.CosineDecay(0.1, 10), decay=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizers.SGD(learning_rate=0.1)          # the Keras 3 spelling does not warn


# ------------------------------------------------------- state


def test_an_optimizer_refuses_arrays_it_was_not_built_for():
    a, b = np.ones(3), np.ones(2)
    optimizer = optimizers.Adam()
    optimizer.apply([a, b], [np.ones(3), np.ones(2)])
    velocity_b = optimizer.slots[1]["velocity"].copy()
    optimizer.apply([a], [np.ones(3)])             # a subset (frozen layers) is fine
    np.testing.assert_array_equal(optimizer.slots[1]["velocity"], velocity_b)
    assert optimizer.slots[0]["velocity"][0] > velocity_b[0] and optimizer.iterations == 2
    other_model = np.ones(3)                       # same shape, another array
    with pytest.raises(ValueError, match=r"Unknown variable: .*shape=\(3,\).*"
                                         "recreate a new optimizer instance"):
        optimizer.apply([other_model], [np.ones(3)])
    assert optimizer.iterations == 2


def test_apply_checks_its_gradients():
    optimizer, w = optimizers.SGD(), np.ones((3, 4))
    with pytest.raises(ValueError, match="shape"):
        optimizer.apply([w], [np.ones(4)])
    with pytest.raises(ValueError, match="2 gradients for 1 weights"):
        optimizer.apply([w], [np.ones((3, 4))] * 2)
    with pytest.raises(ValueError, match="No gradients"):
        optimizer.apply([w], [None])
    optimizer.apply([], [])
    assert optimizer.iterations == 0
    with pytest.raises(TypeError, match="numpy float arrays"):
        optimizers.SGD().apply([[1.0, 2.0]], [[1.0, 1.0]])
    with pytest.raises(TypeError, match="numpy float arrays.*int64"):
        optimizers.SGD().apply([np.ones(2, np.int64)], [np.ones(2)])


def test_apply_gradients_takes_keras_pairs():
    optimizer, w = optimizers.SGD(learning_rate=0.5), np.ones(2)
    assert optimizer.apply_gradients([([1.0, 2.0], w)]) == 1
    np.testing.assert_array_equal(w, [0.5, 0.0])


@pytest.mark.parametrize("name, slots", [
    ("sgd", []), ("rmsprop", ["velocity"]), ("adam", ["momentum", "velocity"]),
    ("adagrad", ["accumulator"]), ("adadelta", ["accumulated_grad", "accumulated_delta_var"]),
    ("adamax", ["momentum", "norm"]), ("nadam", ["momentum", "velocity"]),
])
def test_slots_carry_keras_names(name, slots):
    optimizer = optimizers.get(name)
    optimizer.build([np.zeros(2), np.zeros(3)])
    assert [list(s) for s in optimizer.slots] == [slots, slots]
    if name == "adagrad":
        assert (optimizer.slots[1]["accumulator"] == 0.1).all()


# ------------------------------------------------------- names and configs


def test_names_and_config_round_trips():
    for name, cls in [("sgd", optimizers.SGD), ("RMSprop", optimizers.RMSprop),
                      ("adagrad", optimizers.Adagrad), ("Adadelta", optimizers.Adadelta),
                      ("adamax", optimizers.Adamax), ("nadam", optimizers.Nadam),
                      ("AdamW", optimizers.AdamW), ("adam", optimizers.Adam)]:
        assert type(optimizers.get(name)) is cls
    optimizer = optimizers.AdamW(learning_rate=schedules.CosineDecay(0.1, 100, warmup_target=1.0,
                                                                     warmup_steps=5),
                                 amsgrad=True, clipnorm=2.0, name="my_adamw")
    config = json.loads(json.dumps(optimizers.serialize(optimizer)))
    assert config["config"]["learning_rate"]["class_name"] == "CosineDecay"
    twin = optimizers.deserialize(config)
    assert type(twin) is optimizers.AdamW and twin.get_config() == optimizer.get_config()
    assert isinstance(twin._learning_rate, schedules.CosineDecay)
    assert optimizers.get(optimizers.serialize(optimizers.SGD(0.2))).learning_rate == 0.2
    assert optimizers.SGD().name != optimizers.SGD().name    # Keras's automatic names


def test_a_config_written_by_keras_3_loads():
    """The shape of keras.optimizers.serialize(Adam(ExponentialDecay(...))),
    with the Keras arguments fastconv leaves at their defaults."""
    schedule = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.01, "decay_steps": 100,
                           "decay_rate": 0.9, "staircase": True, "name": "ExponentialDecay"},
                "registered_name": None}
    config = {"module": "keras.optimizers", "class_name": "Adam", "registered_name": None,
              "config": {"name": "adam", "learning_rate": schedule, "weight_decay": None,
                         "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                         "use_ema": False, "ema_momentum": 0.99,
                         "ema_overwrite_frequency": None, "loss_scale_factor": None,
                         "gradient_accumulation_steps": None, "beta_1": 0.9,
                         "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}
    optimizer = optimizers.deserialize(config)
    assert isinstance(optimizer, optimizers.Adam) and optimizer.name == "adam"
    optimizer.iterations = 150
    assert optimizer.learning_rate == pytest.approx(0.009)


@pytest.mark.parametrize("make, error, match", [
    (lambda: optimizers.SGD(learning_rate=-1.0), ValueError, "learning_rate"),
    (lambda: optimizers.SGD(learning_rate="0.1"), TypeError, "learning_rate"),
    (lambda: optimizers.SGD(momentum=1.5), ValueError, "momentum"),
    (lambda: optimizers.SGD(nesterov="yes"), ValueError, "nesterov"),
    (lambda: optimizers.RMSprop(rho=-0.1), ValueError, "rho"),
    (lambda: optimizers.Adam(beta_1=2.0), ValueError, "beta_1"),
    (lambda: optimizers.Nadam(beta_2=float("nan")), ValueError, "beta_2"),
    (lambda: optimizers.Adam(epsilon=-1e-7), ValueError, "epsilon"),
    (lambda: optimizers.Adam(amsgrad=1), ValueError, "amsgrad"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1), ValueError,
     "initial_accumulator_value"),
    (lambda: optimizers.Adadelta(rho=1.1), ValueError, "rho"),
    (lambda: optimizers.SGD(clipnorm=0.0), ValueError, "clipnorm"),
    (lambda: optimizers.SGD(clipvalue=-1.0), ValueError, "clipvalue"),
    (lambda: optimizers.SGD(global_clipnorm="1"), TypeError, "global_clipnorm"),
    (lambda: optimizers.SGD(clipnorm=1.0, clipvalue=1.0), ValueError, "Only one of"),
    (lambda: optimizers.SGD(weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, "weight_decay"),
    (lambda: optimizers.SGD(momentun=0.9), ValueError, "not recognized.*momentun"),
    (lambda: optimizers.Adam(use_ema=True), ValueError, "use_ema"),
    (lambda: optimizers.SGD(decay=-0.1), ValueError, "decay"),
    (lambda: optimizers.get("adagard"), ValueError, "unknown optimizer 'adagard'.*'adagrad'"),
    (lambda: optimizers.get(3), TypeError, "optimizer"),
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps"),
    (lambda: schedules.InverseTimeDecay(-0.1, 1, 0.5), ValueError, "initial_learning_rate"),
    (lambda: schedules.ExponentialDecay(0.1, 10, 0.5, staircase=None), ValueError, "staircase"),
    (lambda: schedules.PiecewiseConstantDecay([10, 20], [1.0]), ValueError, "length"),
    (lambda: schedules.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]), ValueError,
     "increasing"),
    (lambda: schedules.CosineDecay(0.1, 10, alpha=2.0), ValueError, "alpha"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.0), ValueError, "t_mul"),
    (lambda: schedules.deserialize({"class_name": "StepDecay"}), ValueError,
     "unknown learning rate schedule"),
])
def test_bad_arguments_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()
