"""Merge layers: combine a list of tensors (residual blocks, branches).

Add, Subtract, Multiply, Average, Maximum and Minimum take inputs of one
shape and work elementwise; Concatenate joins them along ``axis``.  Called
on a list of arrays they return a new array; in a functional model, on a
list of KerasTensors.
"""

import numpy as np

from .base import LAYERS, Layer


class Merge(Layer):
    """Base of the merge layers: ``merge(xs)`` -> y and ``merge_backward(xs,
    y, dy)`` -> [dx for each input] define a subclass."""

    def merge(self, xs):
        raise NotImplementedError

    def merge_backward(self, xs, y, dy):
        raise NotImplementedError

    def compute_output_shape(self, input_shapes):
        first = tuple(input_shapes[0])
        for shape in input_shapes[1:]:
            if tuple(shape[1:]) != first[1:]:
                raise ValueError(f"{type(self).__name__} layer {self.name!r} needs inputs of one "
                                 f"shape, got shapes {[tuple(s) for s in input_shapes]}")
        return (None,) + first[1:]

    def _symbolic_input_shape(self, tensors):
        return [t.shape for t in tensors]

    def output_shape_for(self, input_shapes):
        if not isinstance(input_shapes, (list, tuple)) or len(input_shapes) < 2 \
                or not all(isinstance(s, (list, tuple)) for s in input_shapes):
            raise ValueError(f"A merge layer should be called on a list of at least 2 inputs; "
                             f"layer {self.name!r} got {input_shapes!r}")
        shapes = [(None,) + tuple(s[1:]) for s in input_shapes]
        if self.built and shapes != self.input_shape:
            raise ValueError(f"layer {self.name!r} was built for inputs of shapes "
                             f"{self.input_shape}, got {shapes}")
        return self.compute_output_shape(shapes)

    def build(self, input_shapes, dtype=None):
        output_shape = self.output_shape_for(input_shapes)
        if self.built:
            return
        if self.dtype is None:
            floating = dtype is not None and np.dtype(dtype) in (np.float32, np.float64)
            self.dtype = np.dtype(dtype if floating else np.float32)
        self.input_shape = [(None,) + tuple(s[1:]) for s in input_shapes]
        self.output_shape = output_shape
        self.built = True

    def forward(self, xs, training=False, activate=True, record=None):
        xs = [np.ascontiguousarray(x, dtype=self.dtype or np.result_type(*xs)) for x in xs]
        if not self.built:
            self.build([x.shape for x in xs], xs[0].dtype)
        self.output_shape_for([x.shape for x in xs])
        if len({len(x) for x in xs}) > 1:
            raise ValueError(f"the inputs of layer {self.name!r} hold different numbers of "
                             f"samples: {[len(x) for x in xs]}")
        y = self.merge(xs)
        self._cache = (xs, y, None) if (training if record is None else record) else None
        return y

    def backward(self, dy, need_input_grad=True):
        if self._cache is None:
            raise RuntimeError(f"layer {self.name!r}: backward() needs a "
                               "forward(x, training=True) first")
        xs, y, _ = self._cache
        return self.merge_backward(xs, y, np.asarray(dy)) if need_input_grad else None

    def __call__(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs; layer "
                             f"{self.name!r} got {type(inputs).__name__}")
        return super().__call__(list(inputs), training)

    def _check_input_shape(self, shape):
        """Merge layers check their list of shapes in ``output_shape_for``."""


@LAYERS.register()
class Add(Merge):
    """The sum of the inputs."""

    def merge(self, xs):
        return np.sum(xs, axis=0)

    def merge_backward(self, xs, y, dy):
        return [dy] * len(xs)


@LAYERS.register()
class Subtract(Merge):
    """inputs[0] - inputs[1] (exactly two inputs)."""

    def compute_output_shape(self, input_shapes):
        if len(input_shapes) != 2:
            raise ValueError(f"A Subtract layer should be called on exactly 2 inputs; layer "
                             f"{self.name!r} got {len(input_shapes)}")
        return super().compute_output_shape(input_shapes)

    def merge(self, xs):
        return xs[0] - xs[1]

    def merge_backward(self, xs, y, dy):
        return [dy, -dy]


@LAYERS.register()
class Multiply(Merge):
    """The elementwise product of the inputs."""

    def merge(self, xs):
        return np.prod(xs, axis=0)

    def merge_backward(self, xs, y, dy):
        return [dy * np.prod([x for j, x in enumerate(xs) if j != i], axis=0)
                for i in range(len(xs))]


@LAYERS.register()
class Average(Merge):
    """The elementwise mean of the inputs."""

    def merge(self, xs):
        return np.mean(xs, axis=0, dtype=xs[0].dtype)

    def merge_backward(self, xs, y, dy):
        return [dy / len(xs)] * len(xs)


class _Extremum(Merge):
    """Maximum or Minimum: the gradient goes to the first input holding the extremum."""

    reduce = None

    def merge(self, xs):
        return self.reduce(xs, axis=0)

    def merge_backward(self, xs, y, dy):
        taken = np.zeros(y.shape, bool)
        grads = []
        for x in xs:
            chosen = (x == y) & ~taken
            taken |= chosen
            grads.append(np.where(chosen, dy, 0).astype(dy.dtype))
        return grads


@LAYERS.register()
class Maximum(_Extremum):
    """The elementwise maximum of the inputs."""

    reduce = staticmethod(np.max)


@LAYERS.register()
class Minimum(_Extremum):
    """The elementwise minimum of the inputs."""

    reduce = staticmethod(np.min)


@LAYERS.register()
class Concatenate(Merge):
    """The inputs joined along ``axis`` (default -1: channels); the other
    axes must agree."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(f"axis must be a non-zero int (axis 0 is the batch), got {axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shapes):
        rank = len(input_shapes[0])
        axis = self.axis % rank
        if self.axis >= rank or self.axis < -rank or axis == 0:
            raise ValueError(f"Concatenate layer {self.name!r}: axis {self.axis} does not fit "
                             f"inputs of rank {rank}")
        for shape in input_shapes[1:]:
            if len(shape) != rank or any(a != b for i, (a, b) in enumerate(
                    zip(shape[1:], input_shapes[0][1:]), 1) if i != axis):
                raise ValueError(
                    "A `Concatenate` layer requires inputs with matching shapes except for the "
                    f"concatenation axis. Received: input_shape="
                    f"{[tuple(s) for s in input_shapes]}")
        shape = list(input_shapes[0])
        shape[0] = None
        shape[axis] = sum(s[axis] for s in input_shapes)
        return tuple(shape)

    def merge(self, xs):
        return np.concatenate(xs, axis=self.axis)

    def merge_backward(self, xs, y, dy):
        bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(dy, bounds, axis=self.axis)]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Keras's functional shortcut: ``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Keras's functional shortcut: ``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
