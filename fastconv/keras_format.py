"""Keras 3's file formats, to trade models with Keras itself.

* ``.keras``: a zip of ``metadata.json``, ``config.json`` (the model as
  Keras's ``serialize_keras_object`` writes it, with its ``compile_config``)
  and ``model.weights.h5``;
* ``.weights.h5``: the weights alone, in the layout of ``model.weights.h5``:
  ``layers/<key>/vars/0``, ``1``, ... where ``<key>`` is the layer's class
  name in snake case, numbered ``_1``, ``_2`` ... for repeats in the order
  Keras lists the model's layers; a nested model's layers are under its
  own key (``layers/sequential/layers/conv2d/vars/0``);
* ``.h5``: Keras's legacy HDF5 model file: the config in the
  ``model_config`` attribute, the weights under ``model_weights/<layer
  name>`` named by the ``weight_names`` attributes (a nested model's group
  holds all its weights, the trainable ones first).

Models nest at any depth (a Sequential or functional model used as a
layer): their configs are nested in the model's, as Keras writes them.

Reading translates Keras's configs to fastconv's constructors: a key
fastconv lacks is dropped when it holds Keras's default, and ValueError
names the layer and key otherwise (and names a layer class fastconv lacks).
The optimizer state is stored as Keras lists ``optimizer.variables``:
iterations, the learning rate (unless a schedule), the slots of each
trained weight (e.g. Adam's momentum and velocity) and Nadam's product of
momentum factors.  Needs h5py, the ``keras-format`` extra.
"""

import datetime
import inspect
import io
import json
import os
import re
import warnings
import zipfile
from collections import namedtuple

import numpy as np

from . import losses, metrics, optimizers
from .layers.base import LAYERS
from .layers.merging import Merge

INSTALL_HINT = 'pip install "fastconv[keras-format]"'
KERAS_VERSION = "3.15.1"  # the Keras release whose files these match
CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE = "config.json", "metadata.json", "model.weights.h5"

# Keras config keys that fastconv has no argument for, with the values (Keras's
# defaults) that fastconv honours by ignoring the key.
KERAS_DEFAULTS = {
    "data_format": ["channels_last"], "dilation_rate": [[1, 1], 1], "groups": [1],
    "kernel_constraint": [None], "bias_constraint": [None], "beta_constraint": [None],
    "gamma_constraint": [None], "quantization_config": [None], "lora_rank": [None],
    "lora_alpha": [None], "renorm": [False], "renorm_clipping": [None],
    "renorm_momentum": [0.99], "seed": [None], "noise_shape": [None], "sparse": [False],
    "ragged": [False], "optional": [False], "input_tensor": [None], "input_axes": [None],
    "output_axes": [None], "use_ema": [False], "ema_momentum": [0.99],
    "ema_overwrite_frequency": [None], "loss_scale_factor": [None],
    "gradient_accumulation_steps": [None], "autocast": [True], "dtype": [None, "float32"],
}
# Keys of fastconv layer configs that a Keras 3 constructor lacks, with the
# value Keras behaves as (SpatialDropout2D has no weights to freeze).
KERAS_LACKS = {("SpatialDropout2D", "trainable"): (True, False),
               ("SpatialDropout2D", "activity_regularizer"): (None,)}
# The order of an optimizer's slots in Keras's variables: one group after
# another, the slots of a group interleaved weight by weight.
KERAS_SLOT_GROUPS = {
    "SGD": [("momentum",)], "RMSprop": [("velocity",), ("momentum",), ("average_gradient",)],
    "Adam": [("momentum", "velocity"), ("velocity_hat",)],
    "AdamW": [("momentum", "velocity"), ("velocity_hat",)], "Adagrad": [("accumulator",)],
    "Adadelta": [("accumulated_grad", "accumulated_delta_var")],
    "Adamax": [("momentum", "norm")], "Nadam": [("momentum", "velocity")],
}
MODEL_CLASSES = ("Sequential", "Functional", "Model")  # Keras's classes of model configs
IGNORED_COMPILE_KEYS = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")


def require_h5py():
    """The h5py module; ImportError naming the extra to install when it is missing."""
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras's .keras and .h5 files are HDF5 inside: reading and writing "
                          f"them needs h5py ({INSTALL_HINT})") from None
    return h5py


# ------------------------------------------------------------------ writing


def keras_archive(model):
    """The bytes of ``model`` as a ``.keras`` zip."""
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(METADATA_FILE, json.dumps(metadata))
        archive.writestr(CONFIG_FILE, json.dumps(model_config(model)))
        archive.writestr(WEIGHTS_FILE, weights_file(model), zipfile.ZIP_STORED)
    return buffer.getvalue()


def weights_file(model):
    """The bytes of ``model``'s weights as a ``.weights.h5`` file."""
    h5py = require_h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as store:
        store.create_group("layers")
        for key, layer in _weight_groups(model):
            group = store.create_group(f"{key}/vars")
            group.attrs["name"] = layer.name
            for index, value in enumerate(layer.params.values()):
                group.create_dataset(str(index), data=value)
        store.create_group("vars").attrs["name"] = model.name
        if model.optimizer is not None:
            group = store.create_group("optimizer/vars")
            group.attrs["name"] = model.optimizer.name
            for index, (_, value) in enumerate(optimizer_variables(model)):
                group.create_dataset(str(index), data=value)
    return buffer.getvalue()


def legacy_h5_file(model):
    """The bytes of ``model`` as a legacy Keras ``.h5`` model file."""
    h5py = require_h5py()
    config = model_config(model, legacy=True)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as store:
        store.attrs["keras_version"] = KERAS_VERSION
        store.attrs["backend"] = "fastconv"
        store.attrs["model_config"] = json.dumps(config)
        compile_config = _compile_config(model)
        if compile_config is not None:
            optimizer = _strip_modules(compile_config.pop("optimizer"))
            store.attrs["training_config"] = json.dumps(
                {**_strip_modules(compile_config), "optimizer_config": optimizer})
        weights = store.create_group("model_weights")
        layers = keras_layer_order(model)
        _set_names(weights, "layer_names", [layer.name for layer in layers])
        weights.attrs["keras_version"] = KERAS_VERSION
        weights.attrs["backend"] = "fastconv"
        for layer in layers:
            _write_named(weights.create_group(layer.name),
                         [(weight.path, weight.value) for weight in _legacy_weights(layer, model)])
        _write_named(weights.create_group("top_level_model_weights"), [])
        if model.optimizer is not None:
            prefix = model.optimizer.name
            _write_named(store.create_group("optimizer_weights"),
                         [(f"{prefix}/{name}", value)
                          for name, value in optimizer_variables(model)])
    return buffer.getvalue()


def model_config(model, legacy=False):
    """``model`` as Keras serializes it: ``{'module', 'class_name', 'config',
    'registered_name', 'build_config', 'compile_config'}`` (the compile
    config is ``{}`` unless the model is compiled), its nested models
    serialized in their entries alike; ``legacy``: the .h5 file's form, each
    entry with only ``class_name`` and ``config`` (and a functional model's
    ``name`` and ``inbound_nodes``)."""
    if _is_sequential(model):
        config = {"name": model.name, "trainable": model.trainable,
                  "dtype": _dtype_policy("float32"),
                  "layers": [_input_layer_entry(model.inputs[0].node.layer, legacy)]
                  + [_layer_entry(layer, legacy) for layer in model.layers],
                  "build_input_shape": list(model.input_shape)}
        result = _keras_object("keras", "Sequential", config)
        result["build_config"] = {"input_shape": config["build_input_shape"]}
    else:
        config = {"name": model.name, "trainable": model.trainable,
                  "layers": [_functional_entry(model, layer, legacy)
                             for layer in keras_layer_order(model)],
                  "input_layers": _tensor_refs(model, model.inputs, model._single_input),
                  "output_layers": _tensor_refs(model, model.outputs, model._single_output)}
        result = _keras_object("keras.src.models.functional", "Functional", config, "Functional")
        result["build_config"] = {"input_shape": None}
    if legacy:
        return _legacy_entry(result)
    result["compile_config"] = _compile_config(model) or {}
    return result


def keras_layer_order(model):
    """``model.layers`` in the order Keras 3 lists them for the same graph
    (Sequential: as added; functional: by decreasing depth from the outputs,
    ties by first visit of a depth-first walk from the outputs), which names
    the weight groups."""
    if type(model).__name__ == "Sequential":
        return model.layers
    first_visit, finished, post_order = {}, set(), []

    def visit(node):
        if node in finished:
            return
        first_visit.setdefault(node.layer, len(first_visit))
        for tensor in node.inputs:
            visit(tensor.node)
        finished.add(node)
        post_order.append(node)

    for tensor in model.outputs:
        visit(tensor.node)
    node_depth, layer_depth = {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.get(node, 0), layer_depth.get(node.layer, 0))
        node_depth[node] = layer_depth[node.layer] = depth
        for tensor in node.inputs:
            node_depth[tensor.node] = max(node_depth.get(tensor.node, 0), depth + 1)
    return sorted(layer_depth, key=lambda layer: (-layer_depth[layer], first_visit[layer]))


def optimizer_variables(model):
    """The state of ``model``'s optimizer as Keras's ``optimizer.variables``
    lists it: (name, array) pairs for the iterations, the learning rate
    (unless a schedule or callable), once the optimizer is built the slots
    of the trained weights (in Keras's order), and Nadam's product of
    momentum factors."""
    optimizer = model.optimizer
    variables = _optimizer_scalars(optimizer)
    if optimizer.slots is None:
        return variables
    slots = _slots_by_weight(model)
    for group in _slot_groups(optimizer):
        for weight, values in slots:
            variables.extend((f"{weight.path.replace('/', '_')}_{slot}", values[slot])
                             for slot in group)
    if type(optimizer).__name__ == "Nadam":
        product = optimizer._u_product_at(optimizer.iterations)
        variables.append(("u_product", np.array(product, np.float32)))
    return variables


def set_optimizer_variables(model, values, path):
    """Restores ``model``'s optimizer state from ``values`` (arrays in the
    order of ``optimizer_variables``).  A file with fewer values than a
    built optimizer has (the saving optimizer had not been built) restores
    the iterations and learning rate only; other counts are skipped with a
    warning, as Keras does."""
    optimizer = model.optimizer
    scalars = len(_optimizer_scalars(optimizer))
    if len(values) > scalars:
        keys = model._trained_keys()
        weights = model._weight_arrays()
        optimizer.build([weights[key] for key in keys])
        expected = optimizer_variables(model)
        if len(values) != len(expected) or any(np.shape(value) != np.shape(array)
                                                for value, (_, array) in zip(values, expected)):
            optimizer.slots = None
            warnings.warn(f"{path}: skipping the optimizer state: optimizer "
                          f"{optimizer.name!r} has {len(expected)} variables whereas the saved "
                          f"optimizer has {len(values)}", stacklevel=3)
            return
        for value, (_, array) in zip(values[scalars:], expected[scalars:]):
            array[...] = value  # the slots themselves (Nadam's product is recomputed)
    elif len(values) < scalars:
        warnings.warn(f"{path}: skipping the optimizer state: it has {len(values)} variables, "
                      f"optimizer {optimizer.name!r} needs at least {scalars}", stacklevel=3)
        return
    optimizer.iterations = int(values[0])
    if scalars == 2 and np.float32(optimizer.learning_rate) != values[1]:
        optimizer.learning_rate = float(values[1])  # changed since compile (float32 in the file)


def _optimizer_scalars(optimizer):
    variables = [("iteration", np.array(optimizer.iterations, np.int64))]
    if not callable(optimizer._learning_rate):
        variables.append(("learning_rate", np.array(optimizer.learning_rate, np.float32)))
    return variables


def _slots_by_weight(model):
    """(weight, its slots) of the weights the optimizer trains, in Keras's order."""
    weights_by_key = {key: (layer, name) for key, layer, name in model._weight_keys()}
    slots = {weights_by_key[key]: slot for key, slot in zip(model._trained_keys(),
                                                             model.optimizer.slots)}
    return [(weight, slots[weight.layer, weight.name]) for weight in _keras_weights(model)
            if (weight.layer, weight.name) in slots]


def _slot_groups(optimizer):
    groups = KERAS_SLOT_GROUPS.get(type(optimizer).__name__, [(name,) for name in
                                                               optimizer.slot_names])
    groups = [tuple(name for name in group if name in optimizer.slot_names) for group in groups]
    return [group for group in groups if group]


class _KerasWeight(namedtuple("KerasWeight", "container layer name trainable")):
    """A weight as Keras sees it: ``name`` in ``layer.params``, ``container``
    the model whose layer ``layer`` is (None if not known), ``trainable``
    whether it is among Keras's trainable weights."""

    @property
    def value(self):
        return self.layer.params[self.name]

    @property
    def path(self):
        """Keras's variable path: ``<layer>/<weight>``, under the name of the
        Sequential model that holds the layer (it builds its layers in its
        name scope; a functional model's layers are built before it exists).
        It names legacy .h5 datasets and optimizer slots; Keras reads both by
        position."""
        path = f"{self.layer.name}/{self.name}"
        return f"{self.container.name}/{path}" if _is_sequential(self.container) else path


def _keras_weights(layer, container=None, trainable=True, seen=None):
    """The weights (_KerasWeight) of ``layer`` (a layer, or a model: the weights of its
    layers at every depth, each layer once) in the order of Keras's
    ``layer.weights``.  ``trainable``: whether the models around ``layer`` are."""
    seen = set() if seen is None else seen
    trainable = trainable and layer.trainable
    if _is_model(layer):
        return [weight for inner in keras_layer_order(layer)
                for weight in _keras_weights(inner, layer, trainable, seen)]
    if id(layer) in seen:
        return []
    seen.add(id(layer))
    return [_KerasWeight(container, layer, name, trainable and name in layer.grads)
            for name in layer.params]


def _legacy_weights(layer, container):
    """The weights of ``layer`` (a layer of ``container``) in the order a
    legacy .h5 file lists them: Keras's trainable weights, then the others."""
    weights = _keras_weights(layer, container)
    return ([weight for weight in weights if weight.trainable]
            + [weight for weight in weights if not weight.trainable])


def _weight_groups(model):
    """(group path, layer) of ``model``'s layers at every depth, as Keras's
    weights store names them: ``layers/<key>`` under the group of the model
    holding the layer, ``<key>`` its class name in snake case, numbered
    ``_1``, ``_2`` ... for repeats among that model's layers in Keras's
    order.  A layer met before gets a key but no group, as in Keras."""
    groups, seen = [], {id(model)}

    def walk(container, prefix):
        used = {}
        for layer in keras_layer_order(container):
            key = _snake_case(_keras_class_name(layer))
            used[key] = used.get(key, -1) + 1
            path = f"{prefix}layers/{key}" + (f"_{used[key]}" if used[key] else "")
            if id(layer) not in seen:
                seen.add(id(layer))
                groups.append((path, layer))
                if _is_model(layer):
                    walk(layer, path + "/")

    walk(model, "")
    return groups


def _snake_case(class_name):
    """'MaxPooling2D' -> 'max_pooling2d', 'ReLU' -> 're_lu', as Keras names objects."""
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def _is_model(layer):
    return hasattr(layer, "leaf_layers")


def _is_sequential(layer):
    return type(layer).__name__ == "Sequential"


def _keras_class_name(layer):
    """The class Keras gives ``layer``: a functional model is a 'Functional'."""
    if _is_model(layer) and not _is_sequential(layer):
        return "Functional"
    return type(layer).__name__


def _keras_object(module, class_name, config, registered_name=None):
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": registered_name}


def _dtype_policy(name):
    return _keras_object("keras", "DTypePolicy", {"name": name})


def _layer_entry(layer, legacy):
    """A layer's Keras serialization: its config with Keras's dtype policy and
    nested objects (initializers, regularizers) tagged with their module; a
    model's is ``model_config``."""
    if _is_model(layer):
        return model_config(layer, legacy)
    class_name = type(layer).__name__
    config = {}
    for key, value in layer.get_config().items():
        if (class_name, key) not in KERAS_LACKS and key != "input_shape":
            config[key] = value
        elif key != "input_shape" and value not in KERAS_LACKS[class_name, key]:
            raise ValueError(f"layer {layer.name!r}: Keras's {class_name} takes no {key}, so "
                             f"{key}={value!r} cannot be saved in a Keras file")
    for key, value in config.items():
        if isinstance(value, dict) and "class_name" in value:
            config[key] = _tag_module(value, "keras." + key.rsplit("_", 1)[-1] + "s")
    config["dtype"] = _dtype_policy(layer.dtype.name if layer.dtype is not None else "float32")
    entry = _keras_object("keras.layers", class_name, config)
    if layer.params:
        entry["build_config"] = {"input_shape": list(layer.input_shape)}
    return _legacy_entry(entry) if legacy else entry


def _input_layer_entry(layer, legacy):
    entry = _keras_object("keras.layers", "InputLayer", {**layer.get_config(), "sparse": False})
    return _legacy_entry(entry) if legacy else entry


def _legacy_entry(entry):
    """A serialization in the legacy .h5 form: class name and config only."""
    return {"class_name": entry["class_name"], "config": entry["config"]}


def _functional_entry(model, layer, legacy):
    """A layer of a functional config: its serialization, name and the nodes
    that call it, with their input tensors (and for a model, its mask
    argument) as Keras writes them."""
    if type(layer).__name__ == "InputLayer":
        return {**_input_layer_entry(layer, legacy), "name": layer.name, "inbound_nodes": []}
    several = isinstance(layer, Merge) or (_is_model(layer) and not layer._single_input)
    calls = []
    for node in _own_nodes(model, layer):
        tensors = [_keras_tensor(model, tensor) for tensor in node.inputs]
        kwargs = {}
        if _is_model(layer):
            kwargs["mask"] = [None] * len(tensors) if several else None
        calls.append({"args": [tensors if several else tensors[0]], "kwargs": kwargs})
    return {**_layer_entry(layer, legacy), "name": layer.name, "inbound_nodes": calls}


def _own_nodes(model, layer):
    """The nodes of ``layer`` in ``model``'s graph, in call order."""
    return [node for node in layer.inbound_nodes if node in model._nodes]


def _tensor_ref(model, tensor):
    layer = tensor.node.layer
    return [layer.name, _own_nodes(model, layer).index(tensor.node), 0]


def _keras_tensor(model, tensor):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(tensor.shape), "dtype": tensor.dtype.name,
                       "keras_history": _tensor_ref(model, tensor)}}


def _tensor_refs(model, tensors, single):
    refs = [_tensor_ref(model, tensor) for tensor in tensors]
    return refs[0] if single else refs


def _tag_module(config, module):
    """``config`` ({'class_name', 'config'}) with Keras's 'module' and
    'registered_name' keys; a nested schedule is tagged too."""
    inner = config.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("learning_rate"), dict):
        inner = {**inner, "learning_rate": _tag_module(inner["learning_rate"],
                                                       "keras.optimizers.schedules")}
    return _keras_object(module, config["class_name"], inner)


def _strip_modules(value):
    """``value`` without the 'module' and 'registered_name' keys (legacy .h5 form)."""
    if isinstance(value, dict):
        return {key: _strip_modules(item) for key, item in value.items()
                if key not in ("module", "registered_name")}
    if isinstance(value, list):
        return [_strip_modules(item) for item in value]
    return value


def _compile_config(model):
    """Keras's compile_config of a compiled model (None otherwise)."""
    from .saving import _serialize_losses, _serialize_metrics

    if model.optimizer is None:
        return None
    loss, loss_weights, metrics_spec = model._compile_specs

    def tagged(value, module):
        if isinstance(value, dict) and "class_name" in value:
            return _tag_module(value, module)
        if isinstance(value, dict):
            return {key: tagged(item, module) for key, item in value.items()}
        if isinstance(value, list):
            return [tagged(item, module) for item in value]
        return value

    return {"optimizer": _tag_module(optimizers.serialize(model.optimizer), "keras.optimizers"),
            "loss": tagged(_serialize_losses(loss), "keras.losses"),
            "loss_weights": loss_weights,
            "metrics": tagged(_serialize_metrics(metrics_spec), "keras.metrics"),
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def _write_named(group, arrays):
    """Writes (name, array) pairs into ``group`` and their names to its
    ``weight_names`` attribute, as legacy .h5 files hold weights."""
    _set_names(group, "weight_names", [name for name, _ in arrays])
    for name, value in arrays:
        group.create_dataset(name, data=value)


def _set_names(group, attribute, names):
    """Writes a list of names as Keras does: UTF-8 bytes, an empty float array when empty."""
    group.attrs[attribute] = ([name.encode("utf8") for name in names] if names
                              else np.array([], np.float64))


# ------------------------------------------------------------------ reading


def load_keras_model(path):
    """The model in the ``.keras`` file ``path``, compiled and with its
    optimizer state when the file has them."""
    config, weights = read_keras_archive(path)
    model = model_from_keras_config(config, path)
    with open_h5(weights, path) as store:
        load_weights_store(model, store, path, optimizer=True)
    return model


def load_legacy_h5_model(path):
    """The model in the legacy Keras ``.h5`` file ``path``, compiled and with
    its optimizer state when the file has them."""
    with open_h5(path, path) as store:
        try:
            config = json.loads(store.attrs["model_config"])
            training = store.attrs.get("training_config")
            training = None if training is None else json.loads(training)
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path} is not a Keras model file (no readable model_config "
                             f"attribute: {error!r})") from None
        if "model_weights" not in store:
            raise ValueError(f"{path} is not a Keras model file (no model_weights group)")
        model = model_from_keras_config(config, path)
        if training:
            compile_from_keras(model, training, path, "optimizer_config")
        load_legacy_weights(model, store["model_weights"], path)
        load_legacy_optimizer(model, store, path)
    return model


def load_weights(model, path):
    """Sets the built ``model``'s weights from a ``.weights.h5``, ``.keras``
    or legacy ``.h5``/``.hdf5`` file; ValueError (nothing changes) if they do
    not fit."""
    name = os.fspath(path).lower()
    source = read_keras_archive(path)[1] if name.endswith(".keras") else path
    with open_h5(source, path) as store:
        if name.endswith((".keras", ".weights.h5")):
            load_weights_store(model, store, path)
        else:  # a legacy model file
            load_legacy_weights(model, store.get("model_weights", store), path)


def read_keras_archive(path):
    """(Keras config dict, the bytes of model.weights.h5) of a ``.keras`` file;
    ValueError if it is damaged or not a Keras archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = {CONFIG_FILE, WEIGHTS_FILE} - set(archive.namelist())
            if missing:
                raise ValueError(f"{path} is not a Keras model archive: it lacks "
                                 f"{sorted(missing)}")
            config = json.loads(archive.read(CONFIG_FILE))
            weights = archive.read(WEIGHTS_FILE)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, UnicodeDecodeError,
            json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable .keras file (truncated or corrupted?): "
                         f"{error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: {CONFIG_FILE} does not describe a model")
    return config, weights


def open_h5(source, path):
    """An open read-only h5py File of ``source`` (a path or bytes); ValueError
    naming ``path`` if it is not an HDF5 file."""
    h5py = require_h5py()
    try:
        return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path} is not a readable HDF5 file (truncated or corrupted?): "
                         f"{error}") from None


def model_from_keras_config(config, path):
    """The fastconv model a Keras model config describes (``{'class_name',
    'config', ...}``), compiled when it has a compile_config (or a legacy
    training_config)."""
    from .layers import deserialize

    class_name = config.get("class_name")
    if class_name not in MODEL_CLASSES or not isinstance(config.get("config"), dict):
        raise ValueError(f"{path} describes a {class_name!r}: fastconv reads Sequential and "
                         "functional models")
    try:
        model = deserialize(_fastconv_model(config))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} holds an invalid Keras model config: {error!r}") from None
    if config.get("compile_config"):
        compile_from_keras(model, config["compile_config"], path)
    return model


def compile_from_keras(model, compile_config, path, optimizer_key="optimizer"):
    """Compiles ``model`` as Keras's compile_config (or a legacy
    training_config, whose optimizer is under 'optimizer_config') says;
    ValueError naming ``path`` for settings fastconv cannot honour."""
    extra = [key for key in compile_config
             if key not in ("optimizer", "optimizer_config", "loss", "loss_weights", "metrics",
                            "weighted_metrics") + IGNORED_COMPILE_KEYS]
    if extra or compile_config.get("weighted_metrics"):
        raise ValueError(f"{path}: compile settings {extra or ['weighted_metrics']} are not "
                         "supported by fastconv")
    try:
        optimizer = compile_config[optimizer_key]
        if isinstance(optimizer, dict):
            optimizer = _fastconv_object(optimizers.OPTIMIZERS, optimizer, "optimizer")
        model.compile(optimizer, _objects(compile_config.get("loss"), losses.LOSSES, "loss"),
                      compile_config.get("loss_weights"),
                      _objects(compile_config.get("metrics"), metrics.METRICS, "metric"))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} holds invalid compile settings: {error!r}") from None


def _objects(spec, registry, what):
    """Losses or metrics of a compile config: names stay, configs become objects."""
    if isinstance(spec, dict) and "class_name" in spec:
        return _fastconv_object(registry, spec, what)
    if isinstance(spec, dict):
        return {key: _objects(value, registry, what) for key, value in spec.items()}
    if isinstance(spec, list):
        return [_objects(value, registry, what) for value in spec]
    return spec


def _fastconv_object(registry, config, owner):
    """The object a Keras ``{'class_name', 'config'}`` describes, its config
    translated by ``_arguments``."""
    cls = registry.lookup(config["class_name"], owner)
    if not isinstance(cls, type):
        return cls
    arguments = dict(config.get("config") or {})
    if isinstance(arguments.get("learning_rate"), dict):
        arguments["learning_rate"] = _fastconv_object(optimizers.schedules.SCHEDULES,
                                                      arguments["learning_rate"], owner)
    return cls.from_config(_arguments(cls, arguments, owner))


def _fastconv_model(config):
    """fastconv's ``{'class_name', 'config'}`` for a Keras model's
    serialization (Sequential or functional; its nested models translated alike)."""
    inner = config["config"]
    layers = [_fastconv_layer(entry) for entry in inner["layers"]]
    if config["class_name"] == "Sequential":
        return {"class_name": "Sequential",
                "config": {"name": inner.get("name"), "layers": layers,
                           "build_input_shape": inner.get("build_input_shape")}}
    for layer, entry in zip(layers, inner["layers"]):
        layer["name"] = entry["name"]
        layer["inbound_nodes"] = [_node_refs(node, entry["name"])
                                  for node in entry.get("inbound_nodes", [])]
    return {"class_name": "Functional",
            "config": {"name": inner.get("name"), "layers": layers,
                       "input_layers": _refs(inner["input_layers"]),
                       "output_layers": _refs(inner["output_layers"])}}


def _fastconv_layer(entry):
    """A fastconv ``{'class_name', 'config'}`` for a Keras layer entry."""
    class_name, config = entry["class_name"], dict(entry["config"])
    if class_name in MODEL_CLASSES:
        return _fastconv_model(entry)
    name = config.get("name", entry.get("name"))
    if class_name not in LAYERS.names():
        raise ValueError(f"layer {name!r}: Keras layer class {class_name!r} has no fastconv "
                         f"counterpart; fastconv has {', '.join(LAYERS.names())}")
    cls = LAYERS.lookup(class_name)
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = (config["dtype"].get("config") or {}).get("name")
    if config.get("dtype") not in (None, "float32", "float64"):
        raise ValueError(f"layer {name!r}: dtype {config['dtype']!r} is not supported "
                         "(fastconv computes in float32 or float64)")
    owner = f"layer {name!r}"
    for key, value in config.items():
        if isinstance(value, dict) and "class_name" in value:
            registry = _nested_registry(key)
            config[key] = (registry.serialize(_fastconv_object(registry, value, f"{owner} {key}"))
                           if registry is not None else value)
    return {"class_name": class_name, "config": _arguments(cls, config, owner)}


def _nested_registry(key):
    from . import initializers, regularizers

    if key.endswith("_initializer"):
        return initializers.INITIALIZERS
    if key.endswith("_regularizer"):
        return regularizers.REGULARIZERS
    return None


def _arguments(cls, config, owner):
    """``config`` without the keys ``cls`` takes no argument for; ValueError
    naming ``owner`` and the key when such a key is not at Keras's default."""
    accepted = _parameters(cls)
    arguments = {}
    for key, value in config.items():
        if key in accepted:
            arguments[key] = value
        elif key == "shared_object_id" or value in KERAS_DEFAULTS.get(key, ()):
            continue
        else:
            raise ValueError(f"{owner}: Keras argument {key}={value!r} is not supported by "
                             f"fastconv's {cls.__name__}")
    return arguments


def _parameters(cls):
    """The keyword arguments ``cls(...)`` takes (following ``**kwargs`` to the bases)."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                             p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    names.discard("self")
    return names


def _node_refs(node, layer_name):
    """A Keras inbound node (``{'args', 'kwargs'}``, or the legacy list of
    ``[layer, node, tensor, kwargs]``) as fastconv's list of [layer, node, tensor]."""
    if isinstance(node, list):
        return [list(ref[:3]) for ref in node]
    # Keras records the training flag of symbolic calls, but fit and predict override it,
    # and a model's mask argument, None for each input (fastconv has no masks).
    kwargs = {key: value for key, value in node.get("kwargs", {}).items()
              if key != "training" and not _all_none(value)}
    if kwargs:
        raise ValueError(f"layer {layer_name!r} is called with {kwargs}: fastconv layers take "
                         "no call arguments")
    refs = []

    def collect(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            refs.append(list(value["config"]["keras_history"]))
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            raise ValueError(f"layer {layer_name!r} is called with {value!r}, not a tensor")

    collect(node.get("args", []))
    return refs


def _all_none(value):
    return value is None or isinstance(value, list) and all(_all_none(item) for item in value)


def _refs(value):
    """Keras's input_layers/output_layers (one [name, node, tensor] or a list of them)."""
    return [value] if value and isinstance(value[0], str) else list(value)


def load_weights_store(model, store, path, optimizer=False):
    """Sets ``model``'s weights (and with ``optimizer``, its optimizer's
    state, when both are there) from an open ``.weights.h5`` store;
    ValueError (no weight changes) if it does not fit."""
    weights = {}
    for key, layer in _weight_groups(model):
        if _is_model(layer):
            continue  # its layers have their own groups
        group = store.get(f"{key}/vars")
        if group is None:
            if layer.params:
                raise ValueError(f"{path} has no weights for layer {layer.name!r} "
                                 f"({key}/vars): it does not fit model {model.name!r}")
            continue
        saved = [np.asarray(group[str(index)]) for index in range(len(group))
                 if str(index) in group]
        if len(saved) != len(group) or len(saved) != len(layer.params):
            raise ValueError(f"{path}: {key}/vars holds {len(group)} arrays, layer "
                             f"{layer.name!r} has {len(layer.params)} weights")
        weights[layer] = saved
    _set_weights(model, weights, path)
    group = store.get("optimizer/vars")
    if optimizer and model.optimizer is not None and group is not None:
        set_optimizer_variables(model, [np.asarray(group[str(index)])
                                        for index in range(len(group))], path)


def load_legacy_optimizer(model, store, path):
    """Restores the optimizer state from a legacy .h5 file's ``optimizer_weights``."""
    group = store.get("optimizer_weights")
    if model.optimizer is not None and group is not None:
        set_optimizer_variables(model, [np.asarray(group[name])
                                        for name in _names(group, "weight_names")], path)


def load_legacy_weights(model, group, path):
    """Sets ``model``'s weights from the ``model_weights`` group of a legacy
    .h5 file: the saved layers that have weights, in order, to the model's
    (as Keras matches them; a nested model takes all its weights in
    ``_legacy_weights`` order); ValueError (nothing changes) if they do not fit."""
    saved = [group[name] for name in _names(group, "layer_names")
             if name in group and _names(group[name], "weight_names")]
    ours = [(layer, weights) for layer in keras_layer_order(model)
            for weights in [_legacy_weights(layer, model)] if weights]
    if len(saved) != len(ours):
        raise ValueError(f"{path} holds the weights of {len(saved)} layers, model "
                         f"{model.name!r} has {len(ours)} layers with weights")
    arrays = {}  # {leaf layer: {weight name: array}}
    for (layer, weights), layer_group in zip(ours, saved):
        names = _names(layer_group, "weight_names")
        if len(names) != len(weights):
            raise ValueError(f"{path}: {layer_group.name} holds {len(names)} weights, layer "
                             f"{layer.name!r} of model {model.name!r} has {len(weights)}")
        for weight, name in zip(weights, names):
            arrays.setdefault(weight.layer, {})[weight.name] = np.asarray(layer_group[name])
    _set_weights(model, {leaf: [values[name] for name in leaf.params]
                         for leaf, values in arrays.items()}, path)


def _names(group, attribute):
    return [name.decode("utf8") if isinstance(name, bytes) else str(name)
            for name in group.attrs.get(attribute, [])]


def _set_weights(model, weights, path):
    """Sets each layer's weights from ``weights`` ({layer: arrays}) once all fit."""
    try:
        checked = [(layer, layer.check_weights(arrays)) for layer, arrays in weights.items()]
    except ValueError as error:
        raise ValueError(f"{path} does not fit model {model.name!r}: {error}") from None
    for layer, arrays in checked:
        layer.set_weights(arrays)
