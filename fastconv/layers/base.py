"""The ``Layer`` base class and the registry of layer classes.

Images are NHWC batches (batch, height, width, channels).  Weights use
Keras's layouts, so ``get_weights``/``set_weights`` trade arrays with Keras
one to one.  Shapes carry the batch axis as None, as Keras prints them: a
Conv2D built for 28x28 grey images has ``input_shape == (None, 28, 28, 1)``.

Arrays are float32 unless a layer is given ``dtype='float64'``, or is built
by its first call on float64 data.  Layers call ``fastconv.backend.kernels()``
on every call, so ``fastconv.set_backend`` switches them at once.

A layer computes into arrays it owns and reuses (one per batch shape), so
``forward`` returns a buffer that its next call overwrites; calling the
layer on an array, ``layer(x)``, returns a copy.  Calling it on symbolic
tensors (``keras.Input``) records a node of a functional graph instead.
"""

import threading

import numpy as np

from .. import activations, regularizers, utils
from .._checks import window_output
from .._registry import Registry
from ..tensor import Tensor
from .symbolic import KerasTensor, Node, flatten, is_symbolic

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Layer:
    """Base of every layer: a function of the batch, its gradient, and weights.

    Keyword arguments of every layer: ``input_shape`` (one sample's shape,
    without the batch axis; a model builds its first layer from it at once),
    ``name`` (default: Keras's automatic name, e.g. 'conv2d_1'), ``dtype``
    ('float32' or 'float64'; default float32, or float64 when the layer is
    built by a call on float64 data), ``trainable`` (False freezes the
    weights in ``fit``; the model must be compiled again, as in Keras) and
    ``activity_regularizer`` (a regularizer of the layer's output: its
    penalty on the output of the last training forward joins
    ``regularization_loss``, its gradient the ``dy`` of ``backward``).

    Subclasses define ``compute_output_shape``, ``call``, ``call_backward``,
    ``get_config`` and, when they have weights, ``make_params``.  Weights
    named in ``non_trainable_params`` (e.g. BatchNormalization's moving
    statistics) get no gradient.  The base class applies the layer's
    ``activation`` derivative before ``call_backward``, unless the subclass
    lists it in ``fused_activations`` (it then applies it itself, as the
    compiled convolution does for ReLU), and adds the regularizers'
    gradients after it.
    """

    def __init__(self, input_shape=None, name=None, dtype=None, trainable=True,
                 activity_regularizer=None):
        if name is not None and not (isinstance(name, str) and name):
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name or utils.unique_name(type(self).__name__)
        self.dtype = None if dtype is None else float_dtype(dtype)
        self.declared_input_shape = None if input_shape is None else sample_shape(input_shape)
        self.activation = activations.linear
        self.input_shape = self.output_shape = None
        self.built = False
        self._trainable = bool(trainable)
        self.params = {}  # weight name -> array, in Keras's order
        self.grads = {}  # trainable weight name -> gradient array, filled by backward
        self.regularizers = {}  # weight name -> Regularizer, added to the model's loss
        self.activity_regularizer = regularizers.get(activity_regularizer,
                                                     "activity_regularizer")
        self._activity_penalty = 0.0  # of the output of the last training forward
        self.inbound_nodes = []  # the nodes of the functional graphs this layer is in
        self._buffers = utils.Buffers()
        self._thread_state = threading.local()  # the cache below, per thread

    def _plan(self, key, make):
        """``make()``, computed once per ``key`` and reused: what a layer's
        calls of the compiled kernels check and derive from its arguments
        and its input's shape (``key``), which cannot change between steps."""
        plan = getattr(self, "_last_plan", None)
        if plan is None or plan[0] != key:
            plan = self._last_plan = (key, make())
        return plan[1]

    @property
    def _cache(self):
        """(x, y, activation) of this thread's last recorded forward, or None."""
        return getattr(self._thread_state, "cache", None)

    @_cache.setter
    def _cache(self, value):
        self._thread_state.cache = value

    # -- to define in subclasses

    fused_activations = ()  # activations whose derivative call_backward applies
    non_trainable_params = ()  # weights that training never updates

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

    def activation_input(self, x):
        """The array the activation was applied to in the last training forward
        on ``x``, read by activations that ``needs_input`` (e.g. 'gelu'): x
        itself here; layers that apply the activation to a result of their
        own keep that result in ``call`` and override this."""
        return x

    def get_config(self):
        """The constructor arguments (JSON-serialisable)."""
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": None if self.dtype is None else self.dtype.name}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    # -- common machinery

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

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
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()
                      if name not in self.non_trainable_params}
        self.input_shape, self.output_shape = (None,) + tuple(input_shape[1:]), output_shape
        self.built = True

    def forward(self, x, training=False, activate=True, record=None):
        """The layer's output for batch ``x`` (a buffer reused by the next call).

        training: run in training mode (dropout, batch statistics, ...).
        activate=False skips the layer's activation (for a loss computed from logits).
        record: keep what ``backward`` needs (default: ``training``).
        """
        if not self.built:
            self.build(np.shape(x), getattr(x, "dtype", None))
        x = np.ascontiguousarray(x, dtype=self.dtype)
        self._check_input_shape(x.shape)
        activation = self.activation if activate else activations.linear
        self._cache = None
        y = self.call(x, training, activation)
        self._activity_penalty = 0.0
        if training if record is None else record:
            self._cache = (x, y, activation)
            if self.activity_regularizer is not None:
                self._activity_penalty = self.activity_regularizer(y)
        return y

    def backward(self, dy, need_input_grad=True):
        """dL/dx given dy = dL/dy for the last ``forward(training=True)``;
        fills ``self.grads`` (regularizers' gradients included).  None when
        ``need_input_grad`` is False."""
        if self._cache is None:
            raise RuntimeError(f"layer {self.name!r}: backward() needs a "
                               "forward(x, training=True) first")
        x, y, activation = self._cache
        dy = np.asarray(dy)
        if dy.shape != y.shape or dy.dtype != y.dtype:
            raise ValueError(f"layer {self.name!r}: dy must be {y.dtype} of the output's shape "
                             f"{y.shape}, got {dy.dtype} {dy.shape}")
        if self.activity_regularizer is not None:
            penalized = self._buffers.get("d_activity", y.shape, y.dtype)
            np.copyto(penalized, dy)
            self.activity_regularizer.add_gradient(y, penalized)
            dy = penalized
        if activation not in self.fused_activations and activation is not activations.linear:
            activation_input = self.activation_input(x) if activation.needs_input else None
            dy = activation.backward(y, dy, self._buffers.get("d_activation", y.shape, y.dtype),
                                     activation_input)
            activation = activations.linear
        dx = self.call_backward(x, y, dy, activation, need_input_grad)
        for name, regularizer in self.regularizers.items():
            regularizer.add_gradient(self.params[name], self.grads[name])
        return dx

    def __call__(self, inputs, training=None):
        """On arrays: the layer's output as a new array (inference unless
        ``training``).  On KerasTensors: the symbolic output, recorded as a
        node of a functional graph."""
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        return self.forward(inputs, training=bool(training)).copy().view(Tensor)

    def _call_symbolic(self, inputs):
        tensors = flatten(inputs)
        if not all(isinstance(t, KerasTensor) for t in tensors):
            raise TypeError(f"layer {self.name!r} was called on a mix of symbolic tensors "
                            f"and arrays: {inputs!r}")
        shape = self._symbolic_input_shape(tensors)
        dtype = self.dtype or tensors[0].dtype
        if not self.built:
            self.build(shape, dtype)
        node = Node(self, tensors, self.output_shape_for(shape), self.dtype)
        self.inbound_nodes.append(node)
        return node.output

    def _symbolic_input_shape(self, tensors):
        """The input shape a call on these KerasTensors builds the layer for."""
        if len(tensors) != 1:
            raise TypeError(f"layer {self.name!r} takes one input, got {len(tensors)}")
        return tensors[0].shape

    # -- weights

    def count_params(self):
        return sum(value.size for value in self.params.values())

    @property
    def weights(self):
        """The weight arrays themselves (not copies), in Keras's order."""
        return list(self.params.values())

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [value for name, value in self.params.items() if name in self.grads]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [value for name, value in self.params.items() if name not in self.grads]

    def trainable_pairs(self):
        """(weight, gradient) pairs of the weights ``fit`` updates."""
        if not self.trainable:
            return []
        return [(self.params[name], grad) for name, grad in self.grads.items()]

    def regularization_loss(self):
        """The sum of the regularizers' penalties on the current weights, and
        the activity regularizer's on the output of the last training forward."""
        return self._activity_penalty + sum(regularizer(self.params[name])
                                            for name, regularizer in self.regularizers.items())

    def get_weights(self):
        """Copies of the weights, in Keras's order (kernel, then bias)."""
        return [value.copy() for value in self.params.values()]

    def set_weights(self, weights):
        """Copies ``weights`` (arrays in Keras's order and shapes) into the layer."""
        for current, new in zip(self.params.values(), self.check_weights(weights)):
            current[...] = new

    def check_weights(self, weights):
        """``weights`` as arrays once their number and shapes fit the layer's
        (ValueError otherwise) and they hold bools, ints or floats, which
        assigning casts to the weights' dtype as Keras does (TypeError for
        strings, objects and complex numbers); nothing is assigned."""
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
            if new.dtype.kind not in "biuf":
                raise TypeError(f"layer {self.name!r} {key} takes an array of bools, ints or "
                                f"floats, the given array has dtype {new.dtype}")
        return arrays

    # -- functional graph

    @property
    def input(self):
        """The symbolic input of the layer's one node (a list for several inputs)."""
        node = self._only_node("input")
        return node.inputs[0] if len(node.inputs) == 1 else list(node.inputs)

    @property
    def output(self):
        """The symbolic output of the layer's one node."""
        return self._only_node("output").output

    def _only_node(self, what):
        if not self.inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has never been called and thus has no "
                                 f"defined {what}.")
        if len(self.inbound_nodes) > 1:
            raise AttributeError(f"Layer {self.name!r} has multiple inbound nodes, hence the "
                                 f"notion of 'layer {what}' is ill-defined. Use the "
                                 f"{what} of one node instead.")
        return self.inbound_nodes[0]

    def _check_input_shape(self, shape):
        expected = self.input_shape
        if len(shape) != len(expected) or tuple(shape[1:]) != expected[1:]:
            raise ValueError(f"input of layer {self.name!r} is incompatible with the layer: "
                             f"expected shape {expected}, found shape {tuple(shape)}")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


LAYERS = Registry("layer class", Layer)


def deserialize(config):
    """The layer described by ``{'class_name': ..., 'config': ...}`` (not built)."""
    return LAYERS.deserialize(config)


def serialize(layer):
    return LAYERS.serialize(layer)


def check_image_shape(layer, input_shape):
    """ValueError naming ``layer`` unless ``input_shape`` is 4-D (NHWC images)."""
    if len(input_shape) != 4:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} expects 4-D NHWC inputs "
                         f"(batch, height, width, channels), got shape {tuple(input_shape)}")


def window_output_shape(layer, input_shape, window, strides, padding, channels):
    """Output shape of a 2-D window operation on NHWC inputs of ``input_shape``."""
    check_image_shape(layer, input_shape)
    what = f"{type(layer).__name__} layer {layer.name!r}: window"
    out_h, _ = window_output(input_shape[1], window[0], strides[0], padding, what)
    out_w, _ = window_output(input_shape[2], window[1], strides[1], padding, what)
    return (None, out_h, out_w, channels)


def sample_shape(shape):
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


def float_dtype(value):
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")
    return dtype


def regularizer_for(layer, name, identifier):
    """Registers ``identifier`` (None, a name, config or object) as the
    regularizer of weight ``name`` of ``layer``; returns it."""
    regularizer = regularizers.get(identifier, f"{name}_regularizer")
    if regularizer is not None:
        layer.regularizers[name] = regularizer
    return regularizer
