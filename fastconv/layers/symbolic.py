"""Symbolic tensors: what the functional API passes between layers.

``keras.Input(shape=...)`` returns a ``KerasTensor``; calling a layer on
KerasTensors returns a new one and records a ``Node``: the layer, the
tensors it was called on and the tensor it made.  A model walks the nodes
back from its outputs to its inputs to find the graph it runs.
"""

import itertools

_ids = itertools.count()


class KerasTensor:
    """The shape (batch axis None) and dtype of a value in a layer graph, and
    the node that computes it (``node``, None for an input)."""

    def __init__(self, shape, dtype, node=None, name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.name = name
        self.id = next(_ids)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return (f"<KerasTensor shape={self.shape}, dtype={getattr(self.dtype, 'name', self.dtype)}"
                f", name={self.name}>")

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values. Symbolic tensors go into "
                        "layers and keras.Model(inputs, outputs); call a model's predict() "
                        "on data to get arrays")


class Node:
    """One call of ``layer`` on ``inputs`` (a list of KerasTensors) making ``output``."""

    def __init__(self, layer, inputs, output_shape, dtype):
        self.layer = layer
        self.inputs = list(inputs)
        self.output = KerasTensor(output_shape, dtype, node=self, name=layer.name)

    @property
    def is_input(self):
        return not self.inputs

    def __repr__(self):
        return f"<Node {self.layer.name} <- {[t.name for t in self.inputs]}>"


def flatten(structure):
    """The KerasTensors or arrays of ``structure`` (one, or a list/tuple/dict of them)."""
    if isinstance(structure, dict):
        return list(structure.values())
    if isinstance(structure, (list, tuple)):
        return list(structure)
    return [structure]


def is_symbolic(structure):
    return any(isinstance(item, KerasTensor) for item in flatten(structure))
