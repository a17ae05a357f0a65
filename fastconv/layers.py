"""Keras-style layers running on the fastconv kernels.

Images are NHWC batches (batch, height, width, channels).  Weights use
Keras's layouts, so ``get_weights``/``set_weights`` trade arrays with Keras
one to one: Conv2D kernel (kernel_h, kernel_w, in_channels, filters) and
bias (filters,); Dense kernel (in_features, units) and bias (units,).

Shapes carry the batch axis as None, as Keras prints them: a Conv2D built
for 28x28 grey images has ``input_shape == (None, 28, 28, 1)``.

Arrays are float32 unless a layer is given ``dtype='float64'``, or is built
by its first call on float64 data.  Conv2D, Dense and MaxPooling2D call
``fastconv.backend.kernels()`` on every call, so ``fastconv.set_backend``
switches them at once.

A layer computes into arrays it owns and reuses (one per batch shape), so
``forward`` returns a buffer that its next call overwrites; calling the
layer, ``layer(x)``, returns a copy.
"""

import math

import numpy as np

from . import activations, utils
from ._checks import as_pair, check_padding, window_output
from .backend import kernels

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# --------------------------------------------------------------- initialisers


def _fans(shape):
    """Keras's (fan_in, fan_out): a conv kernel counts its receptive field,
    fan_in = kh * kw * in_channels, fan_out = kh * kw * out_channels."""
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _variance_scaling(scale, mode, distribution):
    """Keras's VarianceScaling: variance scale / fan (fan_in, or the average
    of fan_in and fan_out); uniform, or normal truncated at 2 deviations."""

    def initialize(shape):
        fan_in, fan_out = _fans(shape)
        fan = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2
        variance = scale / max(1.0, fan)
        rng = utils.random_generator()
        if distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return rng.uniform(-limit, limit, shape)
        values = rng.standard_normal(shape)
        outside = np.abs(values) > 2
        while outside.any():
            values[outside] = rng.standard_normal(np.count_nonzero(outside))
            outside = np.abs(values) > 2
        # 0.8796... is the deviation of a unit normal truncated at 2.
        return values * (math.sqrt(variance) / 0.87962566103423978)

    return initialize


INITIALIZERS = {
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "truncated_normal"),
    "zeros": np.zeros,
    "ones": np.ones,
}


def _initializer(name, argument):
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be an initializer name such as 'glorot_uniform', "
                        f"got {name!r}")
    if name not in INITIALIZERS:
        raise ValueError(f"unknown {argument} {name!r}; valid initializers: "
                         f"{', '.join(repr(key) for key in INITIALIZERS)}")
    return name


def initialize(name, shape, dtype="float32"):
    """A new array of ``shape`` drawn by the initializer ``name`` (e.g. 'he_normal')."""
    return INITIALIZERS[_initializer(name, "initializer")](tuple(shape)).astype(dtype)


# --------------------------------------------------------------------- layers


class Layer:
    """Base of every layer: a function of the batch, its gradient, and weights.

    Keyword arguments of every layer: ``input_shape`` (one sample's shape,
    without the batch axis; a model builds its first layer from it at once),
    ``name`` (default: Keras's automatic name, e.g. 'conv2d_1') and ``dtype``
    ('float32' or 'float64'; default float32, or float64 when the layer is
    built by a call on float64 data).

    Subclasses define ``compute_output_shape``, ``call``, ``call_backward``,
    ``get_config`` and, when they have weights, ``make_params``.  The base
    class applies the layer's ``activation`` derivative before ``call_backward``,
    unless the subclass lists it in ``fused_activations`` (it then applies it
    itself, as the compiled convolution does for ReLU).
    """

    def __init__(self, input_shape=None, name=None, dtype=None):
        if name is not None and not (isinstance(name, str) and name):
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name or utils.unique_name(type(self).__name__)
        self.dtype = None if dtype is None else _float_dtype(dtype)
        self.declared_input_shape = None if input_shape is None else _sample_shape(input_shape)
        self.activation = activations.linear
        self.input_shape = self.output_shape = None
        self.built = False
        self.params = {}  # weight name -> array, in Keras's order
        self.grads = {}  # the same names -> gradient arrays, filled by backward
        self._buffers = utils.Buffers()
        self._cache = None  # (x, y, activation) of the last training forward

    # -- to define in subclasses

    fused_activations = ()  # activations whose derivative call_backward applies

    def compute_output_shape(self, input_shape):
        """Output shape for inputs of ``input_shape`` (batch axis first, None);
        ValueError if the layer cannot take such inputs."""
        raise NotImplementedError

    def make_params(self, input_shape, dtype):
        """New weights {name: array} for inputs of ``input_shape``."""
        return {}

    def call(self, x, training, activation):
        """``activation`` of the layer's function of batch x, in a buffer of the layer."""
        raise NotImplementedError

    def call_backward(self, x, y, dy, activation, need_input_grad):
        """Fills ``self.grads`` and returns dL/dx (None when ``need_input_grad``
        is False) given the output y = activation(f(x)) and dy = dL/dy;
        ``activation`` is linear unless it is one of ``fused_activations``."""
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments (JSON-serialisable)."""
        config = {"name": self.name, "dtype": None if self.dtype is None else self.dtype.name}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    # -- common machinery

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def output_shape_for(self, input_shape):
        """The output shape for inputs of ``input_shape`` (batch axis first, any
        size); ValueError if the layer cannot take them.  Builds nothing."""
        input_shape = (None,) + tuple(input_shape[1:])
        declared = self.declared_input_shape
        if declared is not None and input_shape[1:] != declared:
            raise ValueError(f"layer {self.name!r} was declared with input_shape={declared}, "
                             f"got inputs of shape {input_shape}")
        if self.built:
            self._check_input_shape(input_shape)
            return self.output_shape
        return self.compute_output_shape(input_shape)

    def build(self, input_shape, dtype=None):
        """Creates the weights for inputs of ``input_shape`` (batch axis first,
        any size).  ``dtype`` is the inputs' one, used when the layer has none.
        Building again for the same shape does nothing."""
        output_shape = self.output_shape_for(input_shape)
        if self.built:
            return
        if self.dtype is None:
            floating = dtype is not None and np.dtype(dtype) in FLOAT_DTYPES
            self.dtype = np.dtype(dtype if floating else np.float32)
        self.params = self.make_params(input_shape, self.dtype)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.input_shape, self.output_shape = (None,) + tuple(input_shape[1:]), output_shape
        self.built = True

    def forward(self, x, training=False, activate=True):
        """The layer's output for batch ``x`` (a buffer reused by the next call).

        training: keep what ``backward`` needs (and apply dropout).
        activate=False skips the layer's activation (for a loss computed from logits).
        """
        if not self.built:
            self.build(np.shape(x), getattr(x, "dtype", None))
        x = np.ascontiguousarray(x, dtype=self.dtype)
        self._check_input_shape(x.shape)
        activation = self.activation if activate else activations.linear
        self._cache = None
        y = self.call(x, training, activation)
        if training:
            self._cache = (x, y, activation)
        return y

    def backward(self, dy, need_input_grad=True):
        """dL/dx given dy = dL/dy for the last ``forward(training=True)``;
        fills ``self.grads``.  None when ``need_input_grad`` is False."""
        if self._cache is None:
            raise RuntimeError(f"layer {self.name!r}: backward() needs a "
                               "forward(x, training=True) first")
        x, y, activation = self._cache
        dy = np.asarray(dy)
        if dy.shape != y.shape or dy.dtype != y.dtype:
            raise ValueError(f"layer {self.name!r}: dy must be {y.dtype} of the output's shape "
                             f"{y.shape}, got {dy.dtype} {dy.shape}")
        if activation not in self.fused_activations and activation is not activations.linear:
            dy = activation.backward(y, dy, self._buffers.get("d_activation", y.shape, y.dtype))
            activation = activations.linear
        return self.call_backward(x, y, dy, activation, need_input_grad)

    def __call__(self, x):
        """The layer's output for batch ``x``, as a new array (inference)."""
        return self.forward(x).copy()

    def count_params(self):
        return sum(value.size for value in self.params.values())

    def get_weights(self):
        """Copies of the weights, in Keras's order (kernel, then bias)."""
        return [value.copy() for value in self.params.values()]

    def set_weights(self, weights):
        """Copies ``weights`` (arrays in Keras's order and shapes) into the layer."""
        for current, new in zip(self.params.values(), self.check_weights(weights)):
            current[...] = new

    def check_weights(self, weights):
        """``weights`` as arrays once their number and shapes fit the layer's
        (ValueError otherwise); nothing is assigned."""
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: give it an input_shape "
                             "or call it on data before setting its weights")
        arrays = [np.asarray(w) for w in weights]
        if len(arrays) != len(self.params):
            raise ValueError(f"layer {self.name!r} expects {len(self.params)} weight arrays "
                             f"({', '.join(self.params) or 'none'}), got {len(arrays)}")
        for (key, current), new in zip(self.params.items(), arrays):
            if new.shape != current.shape:
                raise ValueError(f"layer {self.name!r} {key} has shape {current.shape}, "
                                 f"the given array has shape {new.shape}")
        return arrays

    def _check_input_shape(self, shape):
        expected = self.input_shape
        if len(shape) != len(expected) or tuple(shape[1:]) != expected[1:]:
            raise ValueError(f"input of layer {self.name!r} is incompatible with the layer: "
                             f"expected shape {expected}, found shape {tuple(shape)}")

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


class _KernelLayer(Layer):
    """Shared by Conv2D and Dense: y = activation(convolve(x, kernel) + bias),
    run on the compiled kernels (a ReLU activation fused into them).

    Subclasses give ``kernel_shape`` and may view arrays as NHWC images and the
    kernel as HWIO (``as_images``, ``as_hwio``), as Dense does.
    """

    strides = (1, 1)
    padding = "valid"
    fused_activations = (activations.relu,)

    def __init__(self, activation, use_bias, kernel_initializer, bias_initializer, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializer(bias_initializer, "bias_initializer")

    def kernel_shape(self, input_shape):
        raise NotImplementedError

    def as_images(self, array):
        return array

    def as_hwio(self, kernel):
        return kernel

    def make_params(self, input_shape, dtype):
        shape = self.kernel_shape(input_shape)
        params = {"kernel": initialize(self.kernel_initializer, shape, dtype)}
        if self.use_bias:
            params["bias"] = initialize(self.bias_initializer, shape[-1:], dtype)
        return params

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        fused = activation is activations.relu
        kernels().conv2d_forward(self.as_images(x), self.as_hwio(self.params["kernel"]),
                                 self.params.get("bias"), self.strides, self.padding,
                                 activation="relu" if fused else None, out=self.as_images(y))
        return y if fused else activation.forward(y, y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        kernel = self.params["kernel"]
        dx = self._buffers.get("dx", x.shape, x.dtype) if need_input_grad else None
        dbias = (self.grads["bias"] if self.use_bias
                 else self._buffers.get("unused_dbias", kernel.shape[-1:], x.dtype))
        fused = activation is activations.relu
        kernels().conv2d_backward(
            self.as_images(x), self.as_hwio(kernel), self.as_images(dy), self.strides,
            self.padding, compute_dx=need_input_grad, activation="relu" if fused else None,
            y=self.as_images(y) if fused else None,
            out=(dx if dx is None else self.as_images(dx), self.as_hwio(self.grads["kernel"]),
                 dbias))
        return dx

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}


class Conv2D(_KernelLayer):
    """2-D convolution (cross-correlation, as Keras) of NHWC images.

    (batch, height, width, channels) -> (batch, out_height, out_width, filters),
    with kernel (kernel_h, kernel_w, channels, filters) and bias (filters,).

    Args:
        filters: number of output channels.
        kernel_size: int or pair (height, width).
        strides: int or pair.
        padding: 'valid' (no padding) or 'same' (TensorFlow's).
        activation: activation name or None (linear); 'relu' runs fused in the kernel.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializer names.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        return _window_output_shape(self, input_shape, self.kernel_size, self.strides,
                                    self.padding, self.filters)

    def kernel_shape(self, input_shape):
        return self.kernel_size + (input_shape[-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding}


class MaxPooling2D(Layer):
    """2-D max pooling of NHWC images: (batch, height, width, channels) ->
    (batch, out_height, out_width, channels).

    Args:
        pool_size: int or pair, the window.
        strides: int or pair; None means pool_size.
        padding: 'valid' or 'same'.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        return _window_output_shape(self, input_shape, self.pool_size, self.strides,
                                    self.padding, input_shape[-1])

    def call(self, x, training, activation):
        y = self._buffers.get("y", (len(x),) + self.output_shape[1:], x.dtype)
        return kernels().max_pool2d_forward(x, self.pool_size, self.strides, self.padding, out=y)

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad:
            return None
        return kernels().max_pool2d_backward(x, dy, self.pool_size, self.strides, self.padding,
                                             out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...), in row-major order:
    an NHWC image flattens in (height, width, channels) order, as in Keras."""

    def compute_output_shape(self, input_shape):
        return (None, math.prod(input_shape[1:]))

    def call(self, x, training, activation):
        return x.reshape(len(x), math.prod(x.shape[1:]))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy.reshape(x.shape) if need_input_grad else None


class Dense(_KernelLayer):
    """Fully connected layer on the last axis: (batch, ..., in_features) ->
    (batch, ..., units), y = activation(x @ kernel + bias), kernel
    (in_features, units), bias (units,).

    It runs as a 1x1 convolution on the same compiled kernels
    as Conv2D, so a model uses one thread pool (NumPy's BLAS threads would
    fight the kernels' OpenMP threads for the cores).

    Args:
        units: output features.
        activation: activation name or None (linear).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializer names.
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.units = _positive_int(units, "units")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense layer {self.name!r} needs inputs with a feature axis, "
                             f"got shape {input_shape}")
        return tuple(input_shape[:-1]) + (self.units,)

    def kernel_shape(self, input_shape):
        return (input_shape[-1], self.units)

    def as_images(self, array):
        """Each sample as a 1x1 image."""
        return array.reshape(-1, 1, 1, array.shape[-1])

    def as_hwio(self, kernel):
        return kernel.reshape((1, 1) + kernel.shape)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Dropout(Layer):
    """Inverted dropout: in training, zeroes each input with probability
    ``rate`` and scales the others by 1 / (1 - rate); identity in inference."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
                or not 0 <= rate < 1:
            raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training, activation):
        if not training or self.rate == 0:
            return x
        mask = self._buffers.get("mask", x.shape, x.dtype)
        utils.random_generator().random(dtype=x.dtype, out=mask)
        np.greater_equal(mask, self.rate, out=mask)  # keep with probability 1 - rate
        mask *= 1 / (1 - self.rate)
        return np.multiply(x, mask, out=self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        if not need_input_grad or self.rate == 0:
            return dy if need_input_grad else None
        mask = self._buffers.get("mask", x.shape, x.dtype)
        return np.multiply(dy, mask, out=self._buffers.get("dx", x.shape, x.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class Activation(Layer):
    """Applies an activation ('relu', 'softmax', ...) to its input."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training, activation):
        return activation.forward(x, self._buffers.get("y", x.shape, x.dtype))

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name}


LAYERS = {cls.__name__: cls for cls in (Conv2D, MaxPooling2D, Flatten, Dense, Dropout,
                                        Activation)}


def deserialize(config):
    """The layer described by ``{'class_name': ..., 'config': ...}`` (not built)."""
    class_name = config.get("class_name")
    if class_name not in LAYERS:
        raise ValueError(f"unknown layer class {class_name!r}; known: {', '.join(LAYERS)}")
    return LAYERS[class_name].from_config(config.get("config", {}))


def _window_output_shape(layer, input_shape, window, strides, padding, channels):
    """Output shape of a 2-D window operation on NHWC inputs of ``input_shape``."""
    if len(input_shape) != 4:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} expects 4-D NHWC inputs "
                         f"(batch, height, width, channels), got shape {tuple(input_shape)}")
    what = f"{type(layer).__name__} layer {layer.name!r}: window"
    out_h, _ = window_output(input_shape[1], window[0], strides[0], padding, what)
    out_w, _ = window_output(input_shape[2], window[1], strides[1], padding, what)
    return (None, out_h, out_w, channels)


def _sample_shape(shape):
    """``input_shape`` (one sample's shape) as a tuple of positive ints."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = (shape,)
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                           and d > 0 for d in dims):
        raise ValueError(f"input_shape must be a tuple of positive ints (one sample's shape, "
                         f"without the batch axis), got {shape!r}")
    return tuple(int(d) for d in dims)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _float_dtype(value):
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")
    return dtype
