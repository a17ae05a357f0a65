"""``keras.Model(inputs, outputs)``: a directed acyclic graph of layers.

The graph is found by walking back from the output KerasTensors to the
input ones.  One executor runs every model, Sequential ones included:
``forward`` evaluates the nodes in topological order, ``backward`` walks
them in reverse, summing the gradients of tensors that feed several layers.
A layer called at several nodes (a shared layer) gets the sum of its
gradients over the nodes.

A model is itself a layer: it can be called on KerasTensors, added to a
Sequential model, or nested in another functional model.

A ReLU Conv2D whose output only a MaxPooling2D reads runs with it as one
fused step (``ConvPoolStep``), in training and at inference: the
convolution's output is never stored.  ``FUSE = False`` runs every layer
on its own instead (the same results, bit for bit).
"""

import numpy as np

from .. import activations, ops, utils
from .._checks import MAX_FUSED_POOL_CELLS
from ..backend import kernels
from ..layers.base import Layer
from ..layers.symbolic import KerasTensor, flatten
from ..profiling import profile
from ..saving import Saving
from ..summary import print_summary
from ..tensor import Tensor
from ..trainer import Trainer

# Whether the executor runs each ConvPoolStep of a model as one fused step.
FUSE = True


class ConvPoolStep:
    """A ReLU Conv2D node and the MaxPooling2D node that alone reads its
    output, run as one step: ``forward`` computes the pooled output without
    storing the convolution's, ``backward`` the convolution's pre-activation
    gradient, on which the convolution's own (linear) backward then runs.
    Its methods are the executor's calls, which ``model.profile`` times."""

    def __init__(self, conv_node, pool_node):
        self.conv_node, self.pool_node = conv_node, pool_node

    def forward(self, x, record):
        """(pooled output, winners) for the convolution's input x.  With
        ``record`` the convolution keeps what its backward needs: x, and
        the buffer of the gradient dz that ``backward`` fills standing for
        its output, whose shape alone a linear backward reads."""
        conv, pool = self.conv_node.layer, self.pool_node.layer
        x = np.ascontiguousarray(x, dtype=conv.dtype)
        conv._check_input_shape(x.shape)
        shape = (len(x),) + pool.output_shape[1:]
        y = pool._buffers.get("y", shape, conv.dtype)
        winners = pool._buffers.get("winners", shape, np.uint8)
        kernel, bias = conv.params["kernel"], conv.params.get("bias")
        if kernels() is ops:  # the layers' own arrays, their call checked once by _conv2d_call
            ops._conv2d_relu_max_pool2d_forward(x, kernel, bias, y, winners,
                                                conv._conv2d_call(x, kernel), pool.pool_size)
        else:
            kernels().conv2d_relu_max_pool2d_forward(x, kernel, bias, conv.strides, conv.padding,
                                                     pool.pool_size, out=(y, winners))
        conv._cache = pool._cache = None
        if record:
            dz = conv._buffers.get("dz", (len(x),) + conv.output_shape[1:], conv.dtype)
            conv._cache = (x, dz, activations.linear)
        return y, winners

    def backward(self, dy, y, winners):
        """The convolution's pre-activation gradient dz (the buffer its
        cache holds) given dy = dL/d(pooled output)."""
        _, dz, _ = self.conv_node.layer._cache
        pool_size = self.pool_node.layer.pool_size
        if kernels() is ops:
            return ops._relu_max_pool2d_backward(np.ascontiguousarray(dy), y, winners, dz,
                                                 pool_size)
        return kernels().relu_max_pool2d_backward(dy, y, winners, dz.shape, pool_size, out=dz)


class Model(Trainer, Saving, Layer):
    """A model with inputs and outputs given as KerasTensors (one, a list, or
    a dict by name); ``model.layers`` lists its layers in the order they run."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True):
        Layer.__init__(self, name=name or utils.unique_name("Functional"), trainable=trainable)
        self._init_trainer()
        if inputs is None or outputs is None:
            raise TypeError("keras.Model takes inputs and outputs, e.g. keras.Model(inputs="
                            "inputs, outputs=outputs); subclassed models are not supported yet")
        self._set_graph(inputs, outputs)

    # ------------------------------------------------------------- the graph

    def _set_graph(self, inputs, outputs):
        """Finds the nodes between ``inputs`` and ``outputs`` and orders them."""
        self._single_input = not isinstance(inputs, (list, tuple, dict))
        self._single_output = not isinstance(outputs, (list, tuple, dict))
        self.inputs, self.outputs = flatten(inputs), flatten(outputs)
        for role, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            bad = [t for t in tensors if not isinstance(t, KerasTensor)]
            if bad or not tensors:
                raise TypeError(f"the {role} of a Model must be KerasTensors (from keras.Input "
                                f"and layer calls), got {bad[0] if bad else tensors!r}")
        for tensor in self.inputs:
            if tensor.node is None or not tensor.node.is_input:
                raise ValueError(f"model inputs must come straight from keras.Input(), got "
                                 f"{tensor!r} (the output of layer {tensor.node.layer.name!r})")
        self._nodes = _topological_order(self.outputs, self.inputs)
        layers = []
        for node in self._nodes:
            if node.layer not in layers:
                layers.append(node.layer)
        self._layers = layers
        counts = {}
        for node in self._nodes:
            counts[id(node.layer)] = counts.get(id(node.layer), 0) + 1
        self._shared = {layer_id for layer_id, count in counts.items() if count > 1}
        self._inference_folds = self._batch_norm_folds()
        self._conv_pool_steps = self._fusable_conv_pools()
        self.built = True

    def _tensors_after_trainable_weights(self):
        """The ids of the tensors computed with trainable weights somewhere
        upstream: the tensors whose gradient training needs (the input
        gradient of a layer with nothing to train before it, such as an
        augmentation layer or a frozen convolutional base, is never used)."""
        after = set()
        for node in self._nodes:
            if node.layer.trainable_weights or any(t.id in after for t in node.inputs):
                after.add(node.output.id)
        return after

    def _readers(self):
        """{tensor id: the nodes that read it}."""
        readers = {}
        for node in self._nodes:
            for tensor in node.inputs:
                readers.setdefault(tensor.id, []).append(node)
        return readers

    def _batch_norm_folds(self):
        """{convolution node: BatchNormalization node} of the pairs whose
        normalisation folds into the convolution at inference: a linear
        Conv2D or Dense whose output feeds only a channels-last
        BatchNormalization, neither of them shared nor a model output."""
        from ..layers import BatchNormalization, Conv2D, Dense

        readers = self._readers()
        outputs = {t.id for t in self.outputs}
        folds = {}
        for node in self._nodes:
            norm = node.layer
            if type(norm) is not BatchNormalization or id(norm) in self._shared \
                    or len(node.inputs) != 1:
                continue
            source = node.inputs[0].node
            conv = source.layer
            rank = len(node.inputs[0].shape)
            if (type(conv) in (Conv2D, Dense) and conv.activation.name == "linear"
                    and id(conv) not in self._shared and norm.axis % rank == rank - 1
                    and readers[source.output.id] == [node] and source.output.id not in outputs):
                folds[source] = node
        return folds

    def _fusable_conv_pools(self):
        """{Conv2D node: ConvPoolStep} of the pairs the executor may fuse: a
        ReLU Conv2D (undilated, one group) whose output feeds only a
        MaxPooling2D of its dtype whose strides are its pool size ('valid',
        at most MAX_FUSED_POOL_CELLS cells); neither layer shared nor with
        an activity regularizer, the convolution's output not a model output."""
        from ..layers import Conv2D, MaxPooling2D

        readers = self._readers()
        outputs = {t.id for t in self.outputs}
        steps = {}
        for node in self._nodes:
            pool = node.layer
            if type(pool) is not MaxPooling2D or len(node.inputs) != 1:
                continue
            source = node.inputs[0].node
            conv = source.layer
            if (type(conv) is Conv2D and conv.activation is activations.relu
                    and conv.dilation_rate == (1, 1) and conv.groups == 1
                    and conv.dtype == pool.dtype and pool.padding == "valid"
                    and pool.strides == pool.pool_size
                    and pool.pool_size[0] * pool.pool_size[1] <= MAX_FUSED_POOL_CELLS
                    and conv.activity_regularizer is None and pool.activity_regularizer is None
                    and id(conv) not in self._shared and id(pool) not in self._shared
                    and readers[source.output.id] == [node] and source.output.id not in outputs):
                steps[source] = ConvPoolStep(source, node)
        return steps

    @property
    def layers(self):
        return list(self._layers)

    @property
    def input_shape(self):
        if not self.built:
            return None
        return self.inputs[0].shape if self._single_input else [t.shape for t in self.inputs]

    @property
    def output_shape(self):
        if not self.built:
            return None
        return self.outputs[0].shape if self._single_output else [t.shape for t in self.outputs]

    @property
    def dtype(self):
        return self.inputs[0].dtype if self.built else None

    @input_shape.setter
    def input_shape(self, value):
        """Set by Layer.__init__ only: a model's shapes come from its graph."""

    @output_shape.setter
    def output_shape(self, value):
        """Set by Layer.__init__ only: a model's shapes come from its graph."""

    @dtype.setter
    def dtype(self, value):
        """Set by Layer.__init__ only: a model's dtype is its inputs'."""

    @property
    def input(self):
        return self.inputs[0] if self._single_input else list(self.inputs)

    @property
    def output(self):
        return self.outputs[0] if self._single_output else list(self.outputs)

    @property
    def input_names(self):
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self):
        return [t.node.layer.name for t in self.outputs]

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or the one at ``index`` in ``layers``."""
        if (name is None) == (index is None):
            raise ValueError("get_layer takes either a name or an index, not both or neither")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}.")

    def leaf_layers(self):
        """Every layer that holds weights itself, nested models opened, once each."""
        leaves = []
        for layer in self._layers:
            for leaf in (layer.leaf_layers() if isinstance(layer, Model) else [layer]):
                if leaf not in leaves:
                    leaves.append(leaf)
        return leaves

    # ---------------------------------------------------------- as a layer

    @Layer.trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = value

    def _symbolic_input_shape(self, tensors):
        if len(tensors) != len(self.inputs):
            raise ValueError(f"model {self.name!r} takes {len(self.inputs)} inputs, got "
                             f"{len(tensors)}")
        shapes = [t.shape for t in tensors]
        return shapes[0] if self._single_input else shapes

    def output_shape_for(self, input_shape):
        shapes = [input_shape] if self._single_input else list(input_shape)
        for shape, tensor in zip(shapes, self.inputs):
            if tuple(shape[1:]) != tensor.shape[1:]:
                raise ValueError(f"model {self.name!r} expects inputs of shape {tensor.shape}, "
                                 f"got {tuple(shape)}")
        return self.output_shape

    def build(self, input_shape, dtype=None):
        self.output_shape_for(input_shape)

    def forward(self, x, training=False, activate=True, record=None):
        """The model's outputs for ``x`` (one array, or a list for several inputs)."""
        arrays = [x] if self._single_input else list(x)
        outputs = self.run_forward(arrays, training, () if activate else range(len(self.outputs)),
                                   record)
        return outputs[0] if self._single_output else outputs

    def backward(self, dy, need_input_grad=True):
        grads = self.run_backward([dy] if self._single_output else list(dy), need_input_grad)
        return grads[0] if self._single_input else grads

    def __call__(self, inputs, training=None):
        if not any(isinstance(t, KerasTensor) for t in flatten(inputs)):
            arrays = [np.asarray(a) for a in flatten(inputs)]
            outputs = self.forward(arrays[0] if self._single_input else arrays, bool(training))
            return ([o.copy().view(Tensor) for o in outputs] if isinstance(outputs, list)
                    else outputs.copy().view(Tensor))
        return Layer.__call__(self, inputs, training)

    # ------------------------------------------------------------ executor

    def run_forward(self, arrays, training=False, logits_of=(), record=None, keep=()):
        """The outputs (a list) for the input ``arrays`` (a list, one per
        input).  Outputs whose index is in ``logits_of`` skip their layer's
        activation.  With ``record`` (default: in training), every layer
        keeps what backward needs.  At inference, a BatchNormalization after
        a linear convolution is folded into it (see _batch_norm_folds).
        With FUSE, each ConvPoolStep runs fused unless its convolution's
        output is among the tensor ids in ``keep`` (whose values or
        gradients the caller reads)."""
        record = training if record is None else record
        values = {tensor.id: array for tensor, array in zip(self.inputs, arrays)}
        logits = {self.outputs[i].id for i in logits_of}
        node_caches = self._thread_state.node_caches = {}
        # {pool node: (its ConvPoolStep, pooled output, winners)} of this forward
        fused = self._thread_state.fused_pools = {}
        steps = {} if not FUSE else self._conv_pool_steps if not keep else {
            node: step for node, step in self._conv_pool_steps.items()
            if node.output.id not in keep}
        folds = {} if training or record else self._inference_folds
        skipped = set()
        for node in self._nodes:
            if node.is_input or node in skipped:
                continue
            layer = node.layer
            args = [values[t.id] for t in node.inputs]
            if node in folds:  # a convolution and its BatchNormalization in one pass
                norm = folds[node]
                x = np.ascontiguousarray(args[0], dtype=layer.dtype)
                values[norm.output.id] = layer.call_with_affine(x, *norm.layer.inference_affine())
                skipped.add(norm)
                continue
            if node in steps:  # a convolution and its max pooling in one pass
                step = steps[node]
                y, winners = step.forward(args[0], record)
                values[step.pool_node.output.id] = y
                if record:
                    fused[step.pool_node] = (step, y, winners)
                skipped.add(step.pool_node)
                continue
            y = layer.forward(args[0] if len(args) == 1 else args, training,
                              activate=node.output.id not in logits, record=record)
            if id(layer) in self._shared:  # its buffers and cache serve its next node too
                y = _copy(y)
                if record and layer._cache is not None:
                    x, _, activation = layer._cache
                    node_caches[node] = (_copy(x), y, activation)
            values[node.output.id] = y
        return [values[t.id] for t in self.outputs]

    def run_backward(self, output_grads, need_input_grads=False, wanted=None):
        """Backpropagates dL/d(outputs) (a list, None for an output the loss
        does not use) through the last recorded forward; fills every
        layer's ``grads``.  With ``need_input_grads`` it computes the
        gradient of every tensor and returns dL/d(inputs) (a list), and
        stores the gradients of the KerasTensors whose ids are in ``wanted``
        (a dict) into it; without, only the gradients training needs (a
        list of None).  A fused ConvPoolStep passes its convolution the
        pre-activation gradient; ``wanted`` cannot hold the output that
        step never stored (give it to run_forward's ``keep``)."""
        grads = {}
        for tensor, grad in zip(self.outputs, output_grads):
            if grad is not None:
                _accumulate(grads, tensor.id, grad)
        shared_sums = {}
        node_caches = getattr(self._thread_state, "node_caches", {})
        fused = getattr(self._thread_state, "fused_pools", {})
        if wanted and any(pool.inputs[0].id in wanted for pool in fused):
            raise ValueError("wanted holds the output of a convolution that the last forward "
                             "fused with its max pooling: pass its id to run_forward's keep")
        trained_upstream = None if need_input_grads else self._tensors_after_trainable_weights()
        for node in reversed(self._nodes):
            if node.is_input:
                continue
            layer = node.layer
            dy = grads.pop(node.output.id, None)
            if wanted is not None and node.output.id in wanted:
                wanted[node.output.id] = None if dy is None else dy.copy()
            if dy is None:
                if id(layer) not in self._shared:
                    _zero_grads(layer)
                continue
            need = need_input_grads or any(t.id in trained_upstream for t in node.inputs)
            if node in fused:  # the convolution's backward runs at its node on this dz
                step, y, winners = fused[node]
                if need:
                    grads[step.conv_node.output.id] = step.backward(dy, y, winners)
                continue
            if node in node_caches:
                layer._cache = node_caches[node]
            dx = layer.backward(dy, need_input_grad=need)
            if id(layer) in self._shared:
                _add_grads(shared_sums.setdefault(id(layer), {}), layer)
            if need:
                for tensor, grad in zip(node.inputs, dx if len(node.inputs) > 1 else [dx]):
                    _accumulate(grads, tensor.id, _copy(grad) if id(layer) in self._shared
                                else grad)
        for layer in self._layers:
            if id(layer) in self._shared:
                _set_grads(layer, shared_sums.get(id(layer)))
        return [grads.get(t.id) for t in self.inputs]

    def gradients(self, x, output_gradients, wrt=None, training=False):
        """Backpropagation from the outputs to the inputs or to any tensor of
        the graph, for gradient ascent on images (filter patterns) and
        class-activation maps (Grad-CAM).

        x: the inputs (as for predict).  output_gradients: dL/d(output) for
        each output (an array shaped like the output for x, or None for an
        output that does not count; one array for a one-output model).
        wrt: None for dL/d(inputs), or a list of KerasTensors of this
        model's graph (e.g. ``layer.output``).  Runs in inference mode
        unless ``training``; the weights do not change.  Returns one array
        per input (an array for one input) or per ``wrt`` tensor (a list).
        """
        arrays = self._prepare_inputs(x)
        grads = ([output_gradients] if self._single_output and not isinstance(
            output_gradients, (list, tuple)) else list(output_gradients))
        if len(grads) != len(self.outputs):
            raise ValueError(f"output_gradients needs one entry per output ({len(self.outputs)}),"
                             f" got {len(grads)}")
        known = {t.id for t in self.inputs} | {n.output.id for n in self._nodes}
        tensors = list(wrt or ())
        for tensor in tensors:
            if not isinstance(tensor, KerasTensor) or tensor.id not in known:
                raise ValueError(f"wrt must hold KerasTensors of model {self.name!r}'s graph, "
                                 f"got {tensor!r}")
        outputs = self.run_forward(arrays, training, record=True, keep={t.id for t in tensors})
        checked = []
        for grad, output in zip(grads, outputs):
            if grad is not None:
                grad = np.asarray(grad, dtype=output.dtype)
                if grad.shape != output.shape:
                    raise ValueError(f"an output gradient of shape {grad.shape} does not fit "
                                     f"the output's shape {output.shape}")
            checked.append(grad)
        wanted = {t.id: None for t in tensors}
        input_grads = self.run_backward(checked, need_input_grads=True, wanted=wanted)
        if wrt is not None:
            by_input = {t.id: g for t, g in zip(self.inputs, input_grads)}
            return [by_input[t.id] if t.id in by_input else wanted[t.id] for t in tensors]
        input_grads = [np.zeros_like(a) if g is None else np.array(g)
                       for a, g in zip(arrays, input_grads)]
        return input_grads[0] if self._single_input else input_grads

    # ------------------------------------------------------------- weights

    @property
    def params(self):
        """Not used for models: their weights live in their layers."""
        return {}

    @params.setter
    def params(self, value):
        pass

    @property
    def weights(self):
        return [w for layer in self.leaf_layers() for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.leaf_layers() for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self.leaf_layers() for w in layer.non_trainable_weights]

    def trainable_pairs(self):
        return [pair for layer in self.leaf_layers() for pair in layer.trainable_pairs()]

    def regularization_loss(self):
        return sum(layer.regularization_loss() for layer in self.leaf_layers())

    def count_params(self):
        return sum(layer.count_params() for layer in self.leaf_layers())

    def get_weights(self):
        """Copies of every layer's weights, in order (as Keras)."""
        return [w for layer in self.leaf_layers() for w in layer.get_weights()]

    def set_weights(self, weights):
        """Sets every layer's weights from one flat list; nothing changes if any
        array does not fit."""
        weights = list(weights)
        leaves = self.leaf_layers()
        expected = sum(len(layer.params) for layer in leaves)
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r} has {expected} weight arrays, got "
                             f"{len(weights)}")
        chunks, start = [], 0
        for layer in leaves:
            chunks.append(layer.check_weights(weights[start:start + len(layer.params)]))
            start += len(layer.params)
        for layer, chunk in zip(leaves, chunks):
            layer.set_weights(chunk)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Prints the table of layers, output shapes and parameter counts
        (see ``fastconv.summary.print_summary``)."""
        print_summary(self, line_length, positions, print_fn, expand_nested, show_trainable,
                      layer_range)

    def profile(self, x, y=None, batch_size=32, repeat=5, peak_gflops=None, print_fn=None):
        """Prints and returns each layer's forward and backward time over
        training steps (see ``fastconv.profiling.profile``)."""
        return profile(self, x, y, batch_size, repeat, peak_gflops, print_fn)

    def get_config(self):
        """Layers with their inbound nodes, and the model's inputs and outputs
        as [layer name, node index, tensor index], as Keras's functional config."""
        def ref(tensor):
            layer = tensor.node.layer
            return [layer.name, layer.inbound_nodes.index(tensor.node), 0]

        nodes_of = {}
        for node in self._nodes:
            nodes_of.setdefault(node.layer.name, []).append(node)
        return {
            "name": self.name, "trainable": self.trainable,
            "layers": [{"class_name": type(layer).__name__, "name": layer.name,
                        "config": layer.get_config(),
                        "inbound_nodes": [[ref(t) for t in node.inputs]
                                          for node in nodes_of[layer.name] if node.inputs]}
                       for layer in self._layers],
            "input_layers": [ref(t) for t in self.inputs],
            "output_layers": [ref(t) for t in self.outputs],
        }

    @classmethod
    def from_config(cls, config):
        from ..layers import deserialize
        tensors = {}
        layers = {}
        pending = list(config["layers"])
        while pending:
            progressed = False
            for entry in list(pending):
                name = entry["name"]
                if name not in layers:
                    layers[name] = deserialize(entry)
                layer = layers[name]
                if type(layer).__name__ == "InputLayer":
                    tensors[(name, 0)] = layer.output
                    pending.remove(entry)
                    progressed = True
                    continue
                calls = entry.get("inbound_nodes", [])
                done = sum(1 for key in tensors if key[0] == name)
                while done < len(calls) and all((n, i) in tensors for n, i, _ in calls[done]):
                    args = [tensors[(n, i)] for n, i, _ in calls[done]]
                    tensors[(name, done)] = layer(args[0] if len(args) == 1 else args)
                    done += 1
                    progressed = True
                if done == len(calls):
                    pending.remove(entry)
            if not progressed:
                raise ValueError("the model config has inbound nodes that refer to unknown "
                                 "layers or form a cycle")
        inputs = [tensors[(n, i)] for n, i, _ in config["input_layers"]]
        outputs = [tensors[(n, i)] for n, i, _ in config["output_layers"]]
        return cls(inputs if len(inputs) > 1 else inputs[0],
                   outputs if len(outputs) > 1 else outputs[0], name=config.get("name"))


def _topological_order(outputs, inputs):
    """The nodes that compute ``outputs`` from ``inputs``, each after the
    nodes it reads; ValueError for a graph that is disconnected from the
    inputs or has a cycle."""
    input_ids = {t.id for t in inputs}
    order, state = [], {}  # state: 1 while visiting, 2 when done

    def visit(tensor, path):
        node = tensor.node
        if node is None:
            raise ValueError(f"{tensor!r} was not made by keras.Input or a layer")
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise ValueError(f"the layer graph has a cycle through layer {node.layer.name!r}")
        if node.is_input and tensor.id not in input_ids:
            raise ValueError(
                f"Graph disconnected: cannot obtain value for tensor {tensor!r} at layer "
                f"{node.layer.name!r}: it is an Input that is not among the model's inputs. "
                f"The following previous layers were accessed without issue: {path}")
        state[node] = 1
        for parent in node.inputs:
            visit(parent, path)
        state[node] = 2
        order.append(node)
        path.append(node.layer.name)

    for tensor in outputs:
        visit(tensor, [])
    return order


def _copy(value):
    return [v.copy() for v in value] if isinstance(value, list) else value.copy()


def _accumulate(grads, key, grad):
    grads[key] = grad if key not in grads else grads[key] + grad


def _zero_grads(layer):
    for grad in (layer.grads.values() if not isinstance(layer, Model)
                 else [g for leaf in layer.leaf_layers() for g in leaf.grads.values()]):
        grad[...] = 0


def _leaf_grads(layer):
    leaves = layer.leaf_layers() if isinstance(layer, Model) else [layer]
    return [(leaf, name, grad) for leaf in leaves for name, grad in leaf.grads.items()]


def _add_grads(sums, layer):
    for leaf, name, grad in _leaf_grads(layer):
        key = (id(leaf), name)
        sums[key] = grad.copy() if key not in sums else sums[key] + grad


def _set_grads(layer, sums):
    for leaf, name, grad in _leaf_grads(layer):
        grad[...] = 0 if sums is None else sums[(id(leaf), name)]
