"""The compiled optimizer step (fastconv/_optim.pyx) against the NumPy
``update`` methods (the reference, run on the 'numpy' backend): every
variant over several steps, float32 and float64, odd and empty shapes; the
finite check that leaves everything untouched; thread-count independence."""

import numpy as np
import pytest

import fastconv
from fastconv import ops, optimizers
from fastconv._kernels import _optim
from fastconv.optimizers import schedules

SHAPES = [(3, 3, 2, 5), (7,), (0, 4), (13, 1)]

VARIANTS = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.5, "weight_decay": 0.05}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"centered": True, "momentum": 0.3, "rho": 0.8}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "beta_1": 0.8}),
    ("adamw", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": schedules.ExponentialDecay(0.01, 2, 0.5)}),
    ("rmsprop", {"clipnorm": 0.5}),
    ("adam", {"clipvalue": 0.3}),
    ("sgd", {"global_clipnorm": 1.0, "momentum": 0.5}),
]


def make(name, config):
    return optimizers.get({"class_name": name, "config": dict(config)})


def run_steps(optimizer, weights, gradients, backend):
    """The weights and slots after one step per gradient list, on ``backend``."""
    fastconv.set_backend(backend)
    weights = [w.copy() for w in weights]
    for grads in gradients:
        optimizer.apply(weights, grads)
    return weights, optimizer.slots


def random_problem(dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    gradients = [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
                 for _ in range(steps)]
    return weights, gradients


@pytest.mark.parametrize("name, config", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_step_matches_the_numpy_update(name, config, dtype, restore_backend):
    weights, gradients = random_problem(dtype, steps=4)
    compiled = make(name, config)
    got, got_slots = run_steps(compiled, weights, gradients, "cython")
    expected, expected_slots = run_steps(make(name, config), weights, gradients, "numpy")
    assert compiled._table is not None and compiled.iterations == 4
    tolerance = {"rtol": 2e-5, "atol": 1e-6} if dtype == np.float32 else \
        {"rtol": 1e-12, "atol": 1e-14}
    for w, e in zip(got, expected):
        assert w.dtype == dtype
        np.testing.assert_allclose(w, e, **tolerance)
    for slots, reference in zip(got_slots, expected_slots):
        assert slots.keys() == reference.keys()
        for key in slots:
            np.testing.assert_allclose(slots[key], reference[key], **tolerance)


def test_a_subset_of_the_weights_in_another_order_updates_only_those(restore_backend):
    weights, gradients = random_problem(np.float32, steps=2)
    compiled, reference = make("adam", {}), make("adam", {})
    got, expected = [w.copy() for w in weights], [w.copy() for w in weights]
    for optimizer, arrays, backend in ((compiled, got, "cython"),
                                       (reference, expected, "numpy")):
        fastconv.set_backend(backend)
        optimizer.apply(arrays, gradients[0])
        optimizer.apply([arrays[3], arrays[0]], [gradients[1][3], gradients[1][0]])
    for w, e in zip(got, expected):
        np.testing.assert_allclose(w, e, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name, config", [("rmsprop", {"momentum": 0.5, "centered": True}),
                                          ("sgd", {"momentum": 0.9}),
                                          ("adam", {"amsgrad": True}),
                                          ("adam", {"clipvalue": 0.1})])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("threads", [1, 3])
def test_a_non_finite_gradient_changes_nothing_when_checked(name, config, bad, threads,
                                                            threads_on_small_shapes):
    fastconv.set_num_threads(min(threads, ops.max_threads()))
    weights, gradients = random_problem(np.float32, steps=2)
    optimizer = make(name, config)
    assert optimizer._apply(weights, gradients[0], check_finite=True)
    before = [w.copy() for w in weights]
    slots = [{key: s.copy() for key, s in slot.items()} for slot in optimizer.slots]
    gradients[1][-1][5, 0] = bad  # in the last weight: the others must stay untouched too
    assert not optimizer._apply(weights, gradients[1], check_finite=True)
    assert optimizer.iterations == 1
    for w, b in zip(weights, before):
        np.testing.assert_array_equal(w, b)
    for slot, saved in zip(optimizer.slots, slots):
        for key in slot:
            np.testing.assert_array_equal(slot[key], saved[key])
    optimizer.apply(weights, gradients[1])  # unchecked, as Keras: the step is taken
    assert optimizer.iterations == 2 and weights[-1][5, 0] != before[-1][5, 0]


def test_mixed_dtypes_and_strided_gradients_take_the_numpy_update(restore_backend):
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(5).astype(np.float32), rng.standard_normal(4)]
    grads = [np.ones(10, np.float32)[::2], np.ones(4)]
    mixed = make("rmsprop", {})
    mixed.apply(weights, grads)
    assert mixed._table is None
    strided = make("rmsprop", {})
    w_strided, w_contiguous = weights[0].copy(), weights[0].copy()
    strided.apply([w_strided], [grads[0]])
    assert strided._table is not None
    make("rmsprop", {}).apply([w_contiguous], [np.ascontiguousarray(grads[0])])
    np.testing.assert_array_equal(w_strided, w_contiguous)


@pytest.mark.parametrize("name, config", [("rmsprop", {"centered": True, "momentum": 0.5}),
                                          ("adam", {"amsgrad": True, "weight_decay": 0.1}),
                                          ("sgd", {"momentum": 0.9, "nesterov": True})])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(name, config, dtype,
                                                   threads_on_small_shapes):
    """The threads' element ranges cut through weights of several sizes."""
    rng = np.random.default_rng(2)
    shapes = [(3, 3, 2, 5), (1001,), (0, 4), (13, 1), (7,)]
    weights = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = [[rng.standard_normal(shape).astype(dtype) for shape in shapes]
                 for _ in range(3)]
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(min(threads, ops.max_threads()))
        optimizer, arrays = make(name, config), [w.copy() for w in weights]
        for grads in gradients:
            assert optimizer._apply(arrays, grads, check_finite=True)
        results.append(arrays)
    for arrays in results[1:]:
        for w, first in zip(arrays, results[0]):
            np.testing.assert_array_equal(w, first)


def test_the_step_checks_its_arrays():
    weight, table = np.zeros(4, np.float32), np.empty((1, _optim.TABLE_COLUMNS), np.intp)
    arguments = {"algorithm": _optim.SGD_STEP, "rate": 0.1, "decay": 0.0}
    with pytest.raises(ValueError, match="grads must have the weights' dtype"):
        _optim.step(table, [weight], [np.zeros(4)], (), **arguments)
    with pytest.raises(ValueError, match="slots must have their weight's size 4"):
        _optim.step(table, [weight], [weight.copy()], ([np.zeros(3, np.float32)],), **arguments)
    with pytest.raises(ValueError, match="weights must be C-contiguous"):
        _optim.step(table, [np.zeros(8, np.float32)[::2]], [weight], (), **arguments)
    with pytest.raises(ValueError, match="table must have at least 2 rows"):
        _optim.step(table, [weight, weight], [weight, weight], (), **arguments)
    with pytest.raises(ValueError, match="needs 2 slot lists"):
        _optim.step(table, [weight], [weight], ([weight.copy()], None),
                    **{**arguments, "algorithm": _optim.ADAM_STEP})
    with pytest.raises(ValueError, match="unknown algorithm"):
        _optim.step(table, [weight], [weight], (), **{**arguments, "algorithm": 9})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_agrees_with_numpy(dtype, threads_on_small_shapes):
    rng = np.random.default_rng(3)
    for threads in (1, 2, 3):
        fastconv.set_num_threads(min(threads, ops.max_threads()))
        for size in (0, 1, 7, 1000):
            clean = rng.standard_normal(size).astype(dtype)
            assert ops._all_finite(clean)
            for position in {0, size // 2, size - 1} if size else ():
                for bad in (np.nan, np.inf, -np.inf):
                    dirty = clean.copy()
                    dirty[position] = bad
                    assert not ops._all_finite(dirty.reshape(1, -1))
    strided = np.full(10, np.nan, dtype)[::2]  # not contiguous: NumPy's scan
    assert not ops._all_finite(strided)
    assert ops._all_finite(np.arange(4))


def test_all_finite_checks_its_array():
    with pytest.raises(ValueError, match="array must be float32 or float64"):
        _optim.all_finite(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="array must be C-contiguous"):
        _optim.all_finite(np.zeros(6)[::2])
