"""``keras.Input``: the symbolic entry point of a functional model."""


from .base import LAYERS, Layer, float_dtype, sample_shape
from .symbolic import Node


@LAYERS.register()
class InputLayer(Layer):
    """The layer behind ``Input``: it has no weights and passes its input on.

    shape: one sample's shape (no batch axis); or batch_shape: the full
    shape, batch axis first (None or a size, which is not enforced).
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 **kwargs):
        if "input_shape" in kwargs:  # Keras 2's name
            shape = kwargs.pop("input_shape")
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("give Input either shape or batch_shape, not both")
            batch_shape = tuple(batch_shape)
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise ValueError("Input needs a shape, e.g. keras.Input(shape=(28, 28, 1))")
        super().__init__(name=name, dtype=float_dtype(dtype or "float32"), **kwargs)
        self.declared_input_shape = sample_shape(shape)
        self.batch_size = batch_size
        self.build((None,) + self.declared_input_shape)
        node = Node(self, [], self.output_shape, self.dtype)
        self.inbound_nodes.append(node)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training, activation):
        return x

    def call_backward(self, x, y, dy, activation, need_input_grad):
        return dy if need_input_grad else None

    def get_config(self):
        return {"batch_shape": [self.batch_size, *self.declared_input_shape],
                "dtype": self.dtype.name, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):  # noqa: N802
    """A symbolic tensor for a model input: ``Input(shape=(28, 28, 1))``."""
    return InputLayer(shape, batch_size, dtype, batch_shape, name).output



