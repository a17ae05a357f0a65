"""A ReLU Conv2D and the MaxPooling2D after it, fused: the kernels
(conv2d_relu_max_pool2d_forward, relu_max_pool2d_backward,
conv2d_relu_max_pool2d_backward) against the unfused ones, bit for bit,
and the executor's fused step (fastconv.models.functional.FUSE) against
the same model run layer by layer."""

import numpy as np
import pytest

import fastconv
from fastconv import layers, ops, reference
from fastconv.models import functional

# (x shape, kernel size, filters, strides, padding, pool_size)
CASES = [
    ((2, 28, 28, 1), (3, 3), 32, (1, 1), "valid", (2, 2)),    # MNIST's 26x26x32
    ((5, 13, 13, 3), (3, 3), 20, (1, 1), "valid", (2, 2)),    # 11x11: row/column 10 unused
    ((1, 11, 11, 4), (3, 3), 17, (1, 1), "same", (3, 3)),     # padded; rows 9, 10 unused
    ((5, 15, 14, 3), (3, 3), 24, (2, 2), "same", (2, 2)),     # strides 2
    ((2, 12, 13, 5), (2, 3), 18, (1, 2), "valid", (3, 2)),    # unequal sizes
    ((1, 9, 9, 2), (1, 1), 40, (1, 1), "valid", (4, 4)),      # 16 cells
]
DTYPES = [np.float32, np.float64]


def bits(array):
    """The array's bytes with its dtype and shape: equal means bit-identical."""
    return array.dtype, array.shape, array.tobytes()


def case_arrays(case, dtype, seed=0, integers=False):
    """x, kernel, bias for ``case``; with ``integers``, small integer values
    that every backend sums exactly."""
    shape, size, filters = case[:3]
    rng = np.random.default_rng(seed)
    draw = ((lambda s: rng.integers(-3, 4, s)) if integers else rng.standard_normal)
    x = draw(shape).astype(dtype)
    kernel = draw(size + (shape[3], filters)).astype(dtype)
    bias = draw((filters,)).astype(dtype)
    return x, kernel, bias


def unfused(module, x, kernel, bias, strides, padding, pool_size, dy):
    """(y, dz, (dx, dkernel, dbias)) of the layers run one by one."""
    z = module.conv2d_forward(x, kernel, bias, strides, padding, activation="relu")
    y = module.max_pool2d_forward(z, pool_size)
    routed = module.max_pool2d_backward(z, dy, pool_size)
    dz = np.where(z > 0, routed, routed.dtype.type(0))
    grads = module.conv2d_backward(x, kernel, routed, strides, padding, activation="relu", y=z)
    return y, dz, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_kernels_are_bit_identical_to_the_unfused_ones(case, dtype, threads,
                                                             threads_on_small_shapes):
    ops.set_num_threads(threads)
    x, kernel, bias = case_arrays(case, dtype)
    strides, padding, pool_size = case[3:]
    y, winners = ops.conv2d_relu_max_pool2d_forward(x, kernel, bias, strides, padding,
                                                    pool_size)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    expected_y, expected_dz, expected_grads = unfused(ops, x, kernel, bias, strides, padding,
                                                      pool_size, dy)
    assert winners.dtype == np.uint8 and winners.shape == y.shape
    assert bits(y) == bits(expected_y)
    z_shape = expected_dz.shape
    assert bits(ops.relu_max_pool2d_backward(dy, y, winners, z_shape, pool_size)) == \
        bits(expected_dz)
    grads = ops.conv2d_relu_max_pool2d_backward(x, kernel, dy, y, winners, strides, padding,
                                                pool_size)
    for grad, expected in zip(grads, expected_grads):
        assert bits(grad) == bits(expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[1:4])
def test_compiled_and_reference_agree_exactly_on_exact_sums(case, dtype):
    x, kernel, bias = case_arrays(case, dtype, integers=True)
    strides, padding, pool_size = case[3:]
    y, winners = ops.conv2d_relu_max_pool2d_forward(x, kernel, bias, strides, padding,
                                                    pool_size)
    ref_y, ref_winners = reference.conv2d_relu_max_pool2d_forward(x, kernel, bias, strides,
                                                                  padding, pool_size)
    assert bits(y) == bits(ref_y) and bits(winners) == bits(ref_winners)
    dy = np.random.default_rng(2).integers(-3, 4, y.shape).astype(dtype)
    for module in (ops, reference):
        expected_y, expected_dz, expected_grads = unfused(module, x, kernel, bias, strides,
                                                          padding, pool_size, dy)
        assert bits(module.conv2d_relu_max_pool2d_forward(x, kernel, bias, strides, padding,
                                                          pool_size)[0]) == bits(expected_y)
        dz = module.relu_max_pool2d_backward(dy, y, winners, expected_dz.shape, pool_size)
        assert bits(dz) == bits(expected_dz)
        grads = module.conv2d_relu_max_pool2d_backward(x, kernel, dy, y, winners, strides,
                                                       padding, pool_size)
        for grad, expected in zip(grads, expected_grads):
            assert bits(grad) == bits(expected)


@pytest.mark.parametrize("module", [ops, reference])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nans_and_ties_follow_the_pooling_rule(module, dtype):
    """With a 1x1 kernel of 1 the convolution is relu(x): each window's
    winner is its first NaN, else its first maximum (ties and the zeros of
    ReLU included), and its gradient counts only where the maximum is > 0."""
    image = np.array([[1, 2, 2, 0], [2, np.nan, -1, -2],
                      [-1, -3, 3, np.nan], [-2, -1, np.nan, 3]], dtype)
    x = np.stack([image, image[::-1], np.zeros_like(image), -np.abs(image)])[..., None]
    kernel = np.ones((1, 1, 1, 1), dtype)
    y, winners = module.conv2d_relu_max_pool2d_forward(x, kernel)
    # image 0: windows (1 2 / 2 nan), (2 0 / 0 0), (0 0 / 0 0), (3 nan / nan 3) after relu
    assert winners[..., 0].tolist() == [[[3, 0], [0, 1]],
                                        [[0, 0], [1, 2]],    # the rows upside down
                                        [[0, 0], [0, 0]],    # all zeros: the first cell
                                        [[3, 0], [0, 1]]]    # zeros but for the NaNs
    assert np.isnan(y[0, ..., 0]).tolist() == [[True, False], [False, True]]
    assert y[0, 0, 1, 0] == 2 and y[0, 1, 0, 0] == 0
    z = module.conv2d_forward(x, kernel, activation="relu")
    assert bits(y) == bits(module.max_pool2d_forward(z))
    dy = np.arange(1, 17, dtype=dtype).reshape(y.shape)
    dz = module.relu_max_pool2d_backward(dy, y, winners, z.shape)
    assert bits(dz) == bits(unfused(module, x, kernel, None, 1, "valid", 2, dy)[1])
    assert dz[0, 0, 2, 0] == dy[0, 0, 1, 0] and dz[1, 3, 2, 0] == dy[1, 1, 1, 0]
    assert np.count_nonzero(dz) == 2


def test_the_fused_backward_keeps_the_sign_of_a_negative_zero_gradient():
    x = np.array([[[[1.0], [3.0]], [[2.0], [0.5]]]], np.float32)
    y, winners = ops.conv2d_relu_max_pool2d_forward(x, np.ones((1, 1, 1, 1), np.float32))
    dz = ops.relu_max_pool2d_backward(np.full(y.shape, -0.0, np.float32), y, winners, x.shape)
    assert np.signbit(dz).ravel().tolist() == [False, True, False, False]


def test_out_arrays_are_filled_and_checked():
    x, kernel, bias = case_arrays(CASES[1], np.float32)
    y = np.empty((5, 5, 5, 20), np.float32)
    winners = np.empty(y.shape, np.uint8)
    returned = ops.conv2d_relu_max_pool2d_forward(x, kernel, bias, out=(y, winners))
    assert returned[0] is y and returned[1] is winners
    dz = np.empty((5, 11, 11, 20), np.float32)
    assert ops.relu_max_pool2d_backward(y, y.copy(), winners, dz.shape, out=dz) is dz
    with pytest.raises(TypeError, match="winners"):
        ops.conv2d_relu_max_pool2d_forward(x, kernel, bias, out=(y, winners.astype(np.int8)))
    with pytest.raises(ValueError, match=r"out\[0\]"):
        ops.conv2d_relu_max_pool2d_forward(x, kernel, bias, out=(y[:4], winners))


@pytest.mark.parametrize("module", [ops, reference])
def test_bad_arguments_raise(module):
    x, kernel, bias = case_arrays(CASES[1], np.float32)
    forward = module.conv2d_relu_max_pool2d_forward
    with pytest.raises(ValueError, match="at most 16 cells"):
        forward(x, kernel, bias, pool_size=(5, 4))
    with pytest.raises(ValueError, match="pool_size"):
        forward(x, kernel, bias, pool_size=12)
    with pytest.raises(ValueError, match="channels"):
        forward(x, kernel[:, :, :2], bias)
    y, winners = forward(x, kernel, bias)
    backward = module.relu_max_pool2d_backward
    z_shape = (5, 11, 11, 20)
    with pytest.raises(TypeError, match="winners must be a uint8"):
        backward(y, y, winners.astype(np.int64), z_shape)
    with pytest.raises(ValueError, match="dy must have the pooled shape"):
        backward(y[:, :4], y, winners, z_shape)
    with pytest.raises(ValueError, match="winners must have the pooled shape"):
        backward(y, y, winners[:, :4], z_shape)
    with pytest.raises(TypeError, match="dy is float64"):
        backward(y.astype(np.float64), y, winners, z_shape)
    with pytest.raises(TypeError, match="z_shape"):
        backward(y, y, winners, 11)
    with pytest.raises(ValueError, match="z_shape"):
        backward(y, y, winners, (5, 0, 11, 20))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 in the matmul
def test_a_non_finite_kernel_takes_the_reference_path():
    x, kernel, bias = case_arrays(CASES[1], np.float64, integers=True)
    kernel[0, 0, 0, 3] = np.inf
    y, winners = ops.conv2d_relu_max_pool2d_forward(x, kernel, bias)
    ref_y, ref_winners = reference.conv2d_relu_max_pool2d_forward(x, kernel, bias)
    assert bits(y) == bits(ref_y) and bits(winners) == bits(ref_winners)


# ------------------------------------------------------------------ the executor


def mnist_like(seed=3, frozen_first=False):
    """12x12x1 -> Conv2D 8 relu -> MaxPool -> Conv2D 12 relu (same) -> MaxPool
    -> Flatten -> Dense 3 softmax: two fusable pairs."""
    fastconv.utils.set_random_seed(seed)
    model = fastconv.Sequential([
        fastconv.Input((12, 12, 1)),
        layers.Conv2D(8, 3, activation="relu", trainable=not frozen_first),
        layers.MaxPooling2D(),
        layers.Conv2D(12, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def batch(count=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 12, 12, 1)).astype(np.float32), rng.integers(0, 3, count)


@pytest.fixture
def fuse_switch(monkeypatch):
    """Sets functional.FUSE for the test; restored afterwards."""
    def switch(value):
        monkeypatch.setattr(functional, "FUSE", value)
    return switch


@pytest.fixture
def count_fused_calls(monkeypatch):
    """Counts the fused forward passes on both backends (the layers call the
    compiled one through its trusted entry point, which the public one calls)."""
    calls = []
    for module, name in ((ops, "_conv2d_relu_max_pool2d_forward"),
                         (reference, "conv2d_relu_max_pool2d_forward")):
        original = getattr(module, name)

        def counted(*args, _original=original, **kwargs):
            calls.append(1)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return calls


def train_and_predict(model, steps=3):
    x, y = batch()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model.get_weights() + [model.predict(x, verbose=0)]


@pytest.mark.parametrize("frozen_first", [False, True])
def test_training_with_fusion_gives_the_weights_of_training_without(
        backend, frozen_first, fuse_switch, count_fused_calls):
    fuse_switch(False)
    expected = train_and_predict(mnist_like(frozen_first=frozen_first))
    assert not count_fused_calls
    fuse_switch(True)
    model = mnist_like(frozen_first=frozen_first)
    assert len(model._conv_pool_steps) == 2
    result = train_and_predict(model)
    assert len(count_fused_calls) == 2 * 3 + 2  # 3 training steps, one predict
    assert [bits(a) for a in result] == [bits(b) for b in expected]


def test_a_nested_model_fuses_its_own_pairs(fuse_switch, count_fused_calls):
    def nested():
        inner = mnist_like()
        inputs = fastconv.Input((12, 12, 1))
        outputs = layers.Dense(3, activation="softmax")(inner(inputs))
        model = fastconv.Model(inputs, outputs)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    fuse_switch(False)
    expected = train_and_predict(nested(), steps=2)
    fuse_switch(True)
    result = train_and_predict(nested(), steps=2)
    assert len(count_fused_calls) == 2 * 2 + 2
    assert [bits(a) for a in result] == [bits(b) for b in expected]


def test_fusion_does_not_depend_on_the_thread_count(threads_on_small_shapes):
    results = []
    for threads in (1, 2, 3):
        ops.set_num_threads(threads)
        results.append([bits(a) for a in train_and_predict(mnist_like(), steps=2)])
    assert results[0] == results[1] == results[2]


def functional_model(conv_is_output=False, second_reader=False):
    fastconv.utils.set_random_seed(5)
    inputs = fastconv.Input((12, 12, 1))
    conv = layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    pooled = layers.MaxPooling2D(name="pool")(conv)
    outputs = layers.Dense(2, name="dense")(layers.Flatten()(pooled))
    if second_reader:
        side = layers.Dense(2)(layers.GlobalAveragePooling2D()(conv))
        outputs = layers.Add()([outputs, side])
    return fastconv.Model(inputs, [outputs, conv] if conv_is_output else outputs)


def test_only_a_pool_that_alone_reads_a_relu_convolution_fuses():
    assert len(functional_model()._conv_pool_steps) == 1
    assert not functional_model(conv_is_output=True)._conv_pool_steps
    assert not functional_model(second_reader=True)._conv_pool_steps
    inputs = fastconv.Input((12, 12, 1))
    for conv, pool in [(layers.Conv2D(4, 3), layers.MaxPooling2D()),
                       (layers.Conv2D(4, 3, activation="relu", dilation_rate=2),
                        layers.MaxPooling2D()),
                       (layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2, 1)),
                       (layers.Conv2D(4, 3, activation="relu"),
                        layers.MaxPooling2D(padding="same")),
                       (layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(5)),
                       (layers.Conv2D(4, 3, activation="relu"), layers.AveragePooling2D())]:
        assert not fastconv.Model(inputs, pool(conv(inputs)))._conv_pool_steps


def test_gradients_with_respect_to_a_convolution_output_skip_its_fusion(fuse_switch,
                                                                      count_fused_calls):
    model = functional_model()
    x = batch(3)[0]
    grad = np.ones((3, 2), np.float32)
    conv, pool = model.get_layer("conv").output, model.get_layer("pool").output
    by_conv = model.gradients(x, grad, wrt=[conv, pool])
    assert not count_fused_calls
    by_pool = model.gradients(x, grad, wrt=[pool])
    by_input = model.gradients(x, grad)
    assert len(count_fused_calls) == 2
    fuse_switch(False)
    assert [bits(g) for g in model.gradients(x, grad, wrt=[conv, pool])] == \
        [bits(g) for g in by_conv]
    assert bits(model.gradients(x, grad, wrt=[pool])[0]) == bits(by_pool[0])
    assert bits(model.gradients(x, grad)) == bits(by_input)
    fuse_switch(True)
    model.run_forward([x], training=True)
    with pytest.raises(ValueError, match="keep"):
        model.run_backward([grad], need_input_grads=True, wanted={conv.id: None})


def test_profile_times_a_fused_pair_on_the_convolution_row():
    model = functional_model()
    model.compile(optimizer="sgd", loss="mse")
    x = batch(4)[0]
    result = model.profile(x, np.zeros((4, 2), np.float32), batch_size=4, repeat=1,
                           print_fn=lambda text: None)
    rows = {row["layer"]: row for row in result.rows}
    assert rows["conv"]["fused_with"] == "pool" and rows["pool"]["fused_with"] == "conv"
    assert rows["conv"]["forward_ms"] > 0 and rows["conv"]["backward_ms"] > 0
    assert rows["pool"]["forward_ms"] == rows["pool"]["backward_ms"] == 0
    assert "conv (Conv2D) + pool" in str(result) and "pool (MaxPooling2D) in conv" in str(result)
