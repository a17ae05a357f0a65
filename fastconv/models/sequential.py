"""``keras.Sequential``: a linear stack of layers, run as a functional graph."""

import numpy as np

from .. import utils
from ..layers.base import Layer
from ..layers.input_layer import InputLayer
from ..layers.symbolic import KerasTensor
from .functional import Model


class Sequential(Model):
    """A linear stack of layers, built and trained as in Keras.

    ``Sequential([layer, ...])`` or ``add`` one layer at a time; a
    ``keras.Input(shape=...)`` may come first.  When the input shape is
    known (an Input, or ``input_shape=`` on the first layer), every layer is
    built on ``add`` (so ``summary`` works at once); otherwise the model is
    built by ``build(input_shape)`` or its first call on data.
    ``layers`` does not list the input layer, as in Keras.
    """

    def __init__(self, layers=None, name=None, trainable=True):
        Layer.__init__(self, name=name or utils.unique_name("Sequential"), trainable=trainable)
        self._init_trainer()
        self._stack = []
        self._input_layer = None
        self._layers, self._nodes, self.built = [], [], False
        for layer in layers or ():
            self.add(layer)

    def add(self, layer):
        """Appends ``layer`` (or sets the input, for a ``keras.Input``)."""
        if isinstance(layer, KerasTensor) and layer.node is not None and layer.node.is_input:
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("an Input can only be the first entry of a Sequential model")
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"the added layer must be a fastconv.layers.Layer, "
                            f"got {type(layer).__name__}: {layer!r}")
        if any(layer.name == other.name for other in self._stack):
            raise ValueError(f"all layers of a Sequential model need unique names: "
                             f"{layer.name!r} is already in {self.name!r}")
        if self.built:
            output = layer(self.outputs[0])  # check and build it before adding it
            self._stack.append(layer)
            self._set_graph(self.inputs[0], output)
            return
        self._stack.append(layer)
        if len(self._stack) == 1 and self._input_layer is None:
            shape = _known_input_shape(layer)
            if shape is not None:
                self._input_layer = InputLayer(shape=shape, dtype=layer.dtype)
        if self._input_layer is not None:
            self._connect(self._input_layer.output)

    def pop(self):
        """Removes the last layer."""
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        if self.built:
            if self._stack:
                self._set_graph(self.inputs[0], self._stack[-1].inbound_nodes[-1].output)
            else:
                self._layers, self._nodes, self.built = [], [], False
        return layer

    def build(self, input_shape=None, dtype=None):
        """Builds every layer for inputs of ``input_shape`` (batch axis first)."""
        if self.built:
            return Model.build(self, input_shape)
        if not self._stack:
            raise ValueError(f"model {self.name!r} has no layers")
        if input_shape is None:
            raise ValueError("build() needs the input shape, e.g. model.build((None, 28, 28, 1))")
        shape = tuple(input_shape)
        for layer in self._stack:  # check every shape before building any layer
            shape = layer.output_shape_for(shape)
        floating = dtype is not None and str(dtype) in ("float32", "float64")
        self._input_layer = InputLayer(batch_shape=tuple(input_shape),
                                       dtype=dtype if floating else None)
        self._connect(self._input_layer.output)

    def _symbolic_input_shape(self, tensors):
        if not self.built and len(tensors) == 1:  # built by its first call, as in Keras
            self.build(tensors[0].shape, tensors[0].dtype)
        return super()._symbolic_input_shape(tensors)

    def __call__(self, inputs, training=None):
        if not self.built and isinstance(inputs, np.ndarray):
            self.build(inputs.shape, inputs.dtype)
        return super().__call__(inputs, training)

    def _connect(self, inputs):
        x = inputs
        for layer in self._stack:
            x = layer(x)
        self._set_graph(inputs, x)

    @property
    def layers(self):
        return list(self._stack)

    def leaf_layers(self):
        return [leaf for layer in self._stack
                for leaf in (layer.leaf_layers() if isinstance(layer, Model) else [layer])]

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._stack],
                "build_input_shape": list(self.input_shape) if self.built else None}

    @classmethod
    def from_config(cls, config):
        from ..layers import deserialize
        model = cls([deserialize(layer) for layer in config["layers"]], name=config.get("name"))
        if not model.built and config.get("build_input_shape"):
            model.build(config["build_input_shape"])
        return model



def _known_input_shape(layer):
    """One sample's shape that ``layer`` takes, when it says: its
    ``input_shape=`` argument, or the input of a built one-input layer or
    model; else None."""
    if layer.declared_input_shape is not None:
        return layer.declared_input_shape
    shape = layer.input_shape if layer.built else None
    if isinstance(shape, tuple) and shape and shape[0] is None:
        return shape[1:]
    return None
