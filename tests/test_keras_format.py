"""Keras 3's file formats (.keras, legacy .h5, .weights.h5): round trips
through fastconv, the file layout Keras 3.15 writes (checked against files
real Keras wrote), bad files and names, and, where Keras 3 imports (with
the torch backend, in a subprocess), exchange with real Keras."""

import inspect
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastconv as fk
from conftest import subprocess_env
from fastconv import keras_format, layers

h5py = pytest.importorskip("h5py")


def sequential_model():
    model = fk.Sequential([
        fk.Input((8, 8, 2)),
        layers.Conv2D(3, 3, padding="same", activation="relu", kernel_regularizer="l2"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(2, 2),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(3, activation="softmax", bias_initializer="ones"),
    ], name="stack")
    model.compile(fk.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def functional_model():
    """Two parallel Conv2D branches (whose weight-group names depend on
    Keras's layer order), Add, Concatenate and global pooling."""
    inputs = fk.Input((8, 8, 1), name="image")
    left = layers.Conv2D(4, 3, padding="same", activation="relu", name="left")(inputs)
    right = layers.Conv2D(4, 1, name="right")(inputs)
    merged = layers.BatchNormalization()(layers.Add()([left, right]))
    pooled = layers.GlobalAveragePooling2D()(layers.MaxPooling2D()(merged))
    maxed = layers.GlobalMaxPooling2D()(merged)
    features = layers.Dropout(0.5)(layers.Concatenate()([pooled, maxed]))
    outputs = layers.Dense(2, name="head")(features)
    model = fk.Model(inputs, outputs, name="branches")
    model.compile(fk.optimizers.Adam(0.01),
                  fk.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                  metrics=[fk.metrics.CategoricalAccuracy()])
    return model


def every_layer(layers, Input, Model):  # noqa: N803 (fastconv's or Keras's namespace)
    """A functional model with every layer class fastconv has."""
    inputs = Input((8, 8, 2))
    a = layers.ZeroPadding2D(((1, 0), (0, 1)))(inputs)
    a = layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh")(a)
    a = layers.ReLU(max_value=0.5, negative_slope=0.1)(a)
    b = layers.Cropping2D(((1, 0), (0, 1)))(layers.ZeroPadding2D(((1, 0), (0, 1)))(inputs))
    b = layers.Conv2D(4, 3, activation="elu", use_bias=False)(b)
    b = layers.UpSampling2D(2, interpolation="bilinear")(b)
    b = layers.LeakyReLU(negative_slope=0.2)(layers.MaxPooling2D(3, strides=2)(b))
    c = layers.Maximum()([layers.Subtract()([a, b]), layers.Multiply()([a, b])])
    c = layers.Minimum()([layers.Average()([a, b]), c])
    c = layers.ELU(alpha=0.5)(layers.BatchNormalization(momentum=0.9, epsilon=0.01)(c))
    c = layers.SpatialDropout2D(0.2)(c)
    c = layers.GaussianDropout(0.1)(layers.GaussianNoise(0.1)(c))
    c = layers.Reshape((5, 20))(layers.Permute((2, 1, 3))(c))
    c = layers.Flatten()(layers.Dense(5, activation="gelu")(c))
    pooled = layers.Concatenate()([layers.GlobalMaxPooling2D()(a),
                                   layers.GlobalAveragePooling2D()(b)])
    c = layers.Activation("sigmoid")(layers.Concatenate()([c, pooled]))
    c = layers.Dropout(0.1)(c)
    return Model(inputs, layers.Softmax()(layers.Dense(3)(c)))


def nested(layers, Input, Model, Sequential):  # noqa: N803 (fastconv's or Keras's namespace)
    """Models nested two deep in a functional model: DLwP 8.2's augmentation
    Sequential, a conv block Sequential (BatchNormalization between convs, so
    the legacy .h5 order of its weights, trainable ones first, is not its
    layers' order) and a functional head holding a Sequential."""
    augmentation = Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                               layers.RandomZoom(0.2)], name="augmentation")
    block = Sequential([layers.Conv2D(3, 3, padding="same", activation="relu"),
                        layers.BatchNormalization(), layers.Conv2D(3, 1)], name="block")
    head_inputs = Input((6, 6, 3))
    deeper = Sequential([layers.Conv2D(2, 1, name="deep")], name="deeper")
    head = Model(head_inputs, layers.Flatten()(deeper(head_inputs)), name="head")
    inputs = Input((8, 8, 2), name="image")
    x = block(layers.Conv2D(3, 3)(augmentation(inputs)))
    return Model(inputs, layers.Dense(2, activation="softmax")(head(x)), name="nested")


def sequential_in_sequential(layers, Input, Sequential):  # noqa: N803
    """A Sequential whose first layer is a built, frozen Sequential (as DLwP
    8.3 extracts features with a frozen convolutional base)."""
    inner = Sequential([Input((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization()],
                       name="inner")
    inner.trainable = False
    return Sequential([inner, layers.Flatten(), layers.Dense(2, activation="softmax")],
                      name="outer")


def nested_model():
    model = nested(layers, fk.Input, fk.Model, fk.Sequential)
    model.compile(fk.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    return model


def sequential_in_sequential_model():
    model = sequential_in_sequential(layers, fk.Input, fk.Sequential)
    model.compile(fk.optimizers.SGD(0.05, momentum=0.9), "categorical_crossentropy")
    return model


def trained(model, epochs=2):
    """``model`` after a few steps (same data and dropout masks each call), so
    BatchNormalization's statistics and the optimizer's state moved."""
    rng = np.random.default_rng(0)
    x = rng.random((6,) + model.input_shape[1:], dtype=np.float32)
    classes = model.output_shape[-1]
    labels = np.arange(6) % classes
    y = labels if model.name == "stack" else np.eye(classes, dtype=np.float32)[labels]
    fk.utils.set_random_seed(3)
    model.fit(x, y, epochs=epochs, batch_size=3, verbose=0)
    return model


def assert_same_optimizer_state(loaded, model):
    ours = keras_format.optimizer_variables(loaded)
    theirs = keras_format.optimizer_variables(model)
    assert [name for name, _ in ours] == [name for name, _ in theirs]
    assert len(ours) > 2  # the slots are there
    for (_, mine), (_, expected) in zip(ours, theirs):
        np.testing.assert_array_equal(mine, expected)


def names(group, attribute):
    """The list of names an h5py attribute holds (Keras writes them as bytes)."""
    return [name.decode() if isinstance(name, bytes) else name for name in group.attrs[attribute]]


def sample(model, count=5, seed=1):
    return np.random.default_rng(seed).random((count,) + model.input_shape[1:], dtype=np.float32)


def assert_same_model(loaded, model, same_names=True):
    assert type(loaded) is type(model)
    if same_names:
        assert loaded.name == model.name
        assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for ours, theirs in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    x = sample(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def every_layer_model():
    model = every_layer(layers, fk.Input, fk.Model)
    rng = np.random.default_rng(2)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in model.weights])
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            variance = layer.params["moving_variance"]
            variance[...] = rng.uniform(0.5, 1.5, variance.shape)
    # Keras 3.15 cannot read its own legacy .h5 files compiled with 'mse' (it looks
    # for keras.metrics.mse): the full name works.
    model.compile("rmsprop", "mean_squared_error")
    return model


@pytest.mark.parametrize("make", [sequential_model, functional_model, every_layer_model,
                                  nested_model, sequential_in_sequential_model])
@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_round_trip_keeps_architecture_weights_and_compile_settings(tmp_path, make, extension):
    model = trained(make())
    path = tmp_path / f"model{extension}"
    model.save(path)
    loaded = fk.models.load_model(path)
    assert_same_model(loaded, model)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.optimizer) is type(model.optimizer)
    loss, _, metric_spec = model._compile_specs
    loaded_loss, _, loaded_metrics = loaded._compile_specs
    if isinstance(loss, str):
        assert loaded_loss == loss and loaded_metrics == metric_spec
    else:
        assert loaded_loss.get_config() == loss.get_config()
        assert [m.get_config() for m in loaded_metrics] == [m.get_config() for m in metric_spec]
    assert_same_optimizer_state(loaded, model)
    assert_same_model(trained(loaded, epochs=1), trained(model, epochs=1))
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("make", [sequential_model, functional_model, nested_model,
                                  sequential_in_sequential_model])
def test_weights_file_round_trip_and_keras_model_file_weights(tmp_path, make):
    model = trained(make())
    model.save_weights(tmp_path / "model.weights.h5")
    model.save(tmp_path / "model.keras")
    model.save(tmp_path / "model.h5")
    for name in ("model.weights.h5", "model.keras", "model.h5"):
        fresh = make()
        fresh.load_weights(tmp_path / name)
        assert_same_model(fresh, model, same_names=False)


def test_optimizer_variables_in_keras_order():
    """Keras 3.15 lists Adam's slots weight by weight (momentum, velocity),
    RMSprop's slot by slot (all velocities, then all momentums); it names them
    by the weights' paths, which a Sequential prefixes with its name."""
    model = fk.Sequential([fk.Input((3,)), layers.Dense(2, name="d")], name="m")
    model.compile(fk.optimizers.Adam(0.5), "mse")
    model.optimizer.build(model.trainable_weights)
    assert [name for name, _ in keras_format.optimizer_variables(model)] == [
        "iteration", "learning_rate", "m_d_kernel_momentum", "m_d_kernel_velocity",
        "m_d_bias_momentum", "m_d_bias_velocity"]
    model.compile(fk.optimizers.RMSprop(momentum=0.5), "mse")
    model.optimizer.build(model.trainable_weights)
    assert [name for name, _ in keras_format.optimizer_variables(model)] == [
        "iteration", "learning_rate", "m_d_kernel_velocity", "m_d_bias_velocity",
        "m_d_kernel_momentum", "m_d_bias_momentum"]
    model.compile(fk.optimizers.Nadam(fk.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
                  "mse")
    model.optimizer.build(model.trainable_weights)
    assert [name for name, _ in keras_format.optimizer_variables(model)] == [
        "iteration", "m_d_kernel_momentum", "m_d_kernel_velocity", "m_d_bias_momentum",
        "m_d_bias_velocity", "u_product"]


@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_several_inputs_and_outputs_and_a_shared_layer_round_trip(tmp_path, extension):
    first, second = fk.Input((6, 6, 1), name="first"), fk.Input((6, 6, 1), name="second")
    shared = layers.Conv2D(2, 3, name="shared")
    a, b = shared(first), shared(second)
    scores = layers.Dense(3)(layers.Concatenate()([layers.Flatten()(a), layers.Flatten()(b)]))
    total = layers.Dense(1)(layers.GlobalAveragePooling2D()(layers.Add()([a, b])))
    model = fk.Model([first, second], [scores, total])
    model.compile("adam", ["mean_squared_error", "mean_absolute_error"])
    model.save(tmp_path / f"model{extension}")
    loaded = fk.models.load_model(tmp_path / f"model{extension}")
    assert loaded.input_names == ["first", "second"]
    assert len(loaded.get_layer("shared").inbound_nodes) == 2
    x = [np.random.default_rng(seed).random((2, 6, 6, 1), dtype=np.float32) for seed in (0, 1)]
    for ours, theirs in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(ours, theirs)
    assert loaded._compile_specs[0] == ["mean_squared_error", "mean_absolute_error"]


def test_keras_archive_layout_matches_keras_3(tmp_path):
    """The entries, config structure and weight paths Keras 3.15.1 writes
    for this graph (read from a file real Keras saved)."""
    model = functional_model()
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json",
                                              "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json"))
        weights = archive.read("model.weights.h5")
    assert metadata["keras_version"].startswith("3.")
    assert (config["module"], config["class_name"], config["registered_name"]) == \
        ("keras.src.models.functional", "Functional", "Functional")
    inner = config["config"]
    assert inner["input_layers"] == ["image", 0, 0]
    assert inner["output_layers"] == ["head", 0, 0]
    # Keras's order (decreasing depth from the output: image 8, left and right 7,
    # add 6, batch norm 5, max pooling 4, the global poolings 3, ...) is the call order here.
    assert [layer["name"] for layer in inner["layers"]] == [layer.name for layer in model.layers]
    assert [layer["class_name"] for layer in inner["layers"]] == [
        "InputLayer", "Conv2D", "Conv2D", "Add", "BatchNormalization", "MaxPooling2D",
        "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Concatenate", "Dropout", "Dense"]
    left = inner["layers"][1]
    assert left["module"] == "keras.layers" and left["registered_name"] is None
    assert left["build_config"] == {"input_shape": [None, 8, 8, 1]}
    assert left["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert left["config"]["kernel_initializer"] == {
        "module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
        "registered_name": None}
    assert left["inbound_nodes"] == [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 8, 8, 1], "dtype": "float32", "keras_history": ["image", 0, 0]}}],
        "kwargs": {}}]
    add = inner["layers"][3]
    assert [t["config"]["keras_history"] for t in add["inbound_nodes"][0]["args"][0]] == \
        [["left", 0, 0], ["right", 0, 0]]
    compile_config = config["compile_config"]
    assert compile_config["optimizer"]["class_name"] == "Adam"
    assert compile_config["optimizer"]["module"] == "keras.optimizers"
    assert compile_config["loss"]["config"]["label_smoothing"] == 0.1
    with h5py.File(io.BytesIO(weights), "r") as store:
        assert store["vars"].attrs["name"] == "branches"
        assert sorted(store["layers"]) == [
            "add", "batch_normalization", "concatenate", "conv2d", "conv2d_1", "dense",
            "dropout", "global_average_pooling2d", "global_max_pooling2d", "input_layer",
            "max_pooling2d"]
        assert store["layers/conv2d/vars"].attrs["name"] == "left"
        np.testing.assert_array_equal(store["layers/conv2d_1/vars/0"],
                                      model.get_layer("right").get_weights()[0])
        assert sorted(store["layers/batch_normalization/vars"]) == ["0", "1", "2", "3"]


def test_legacy_h5_layout(tmp_path):
    model = sequential_model()
    model.save(tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "r") as store:
        config = json.loads(store.attrs["model_config"])
        training = json.loads(store.attrs["training_config"])
        group = store["model_weights"]
        assert names(group, "layer_names") == [layer.name for layer in model.layers]
        # Keras's variable paths: a Sequential builds its layers in its name scope
        dense = model.layers[-1]
        assert names(group[dense.name], "weight_names") == [
            f"stack/{dense.name}/kernel", f"stack/{dense.name}/bias"]
        np.testing.assert_array_equal(group[f"{dense.name}/stack/{dense.name}/bias"],
                                      dense.get_weights()[1])
    assert config["class_name"] == "Sequential"
    assert config["config"]["layers"][0]["class_name"] == "InputLayer"
    assert "module" not in config["config"]["layers"][1]
    assert training["optimizer_config"] == {"class_name": "SGD",
                                            "config": model.optimizer.get_config()}
    assert training["loss"] == "sparse_categorical_crossentropy"


def test_keras_layer_order_is_by_depth_then_first_visit():
    inputs = fk.Input((4,))
    a = layers.Dense(2, name="a")(inputs)
    b = layers.Dense(2, name="b")(a)
    c = layers.Dense(2, name="c")(inputs)
    model = fk.Model(inputs, layers.Add(name="add")([c, b]))
    # depths from the output: add 0, c 1, b 1, a 2, input 3 (c is visited before b).
    assert [layer.name for layer in keras_format.keras_layer_order(model)] == \
        [model.layers[0].name, "a", "c", "b", "add"]


@pytest.mark.parametrize("method, name, message", [
    ("save", "model.txt", "Invalid filepath extension for saving"),
    ("save", "model", "Invalid filepath extension for saving"),
    ("save_weights", "model.h5", "must end in `.weights.h5`"),
    ("save_weights", "model.keras", "must end in `.weights.h5`"),
    ("load_weights", "model.bin", "load_weights reads"),
])
def test_unsupported_extensions_raise(tmp_path, method, name, message):
    model = sequential_model()
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(tmp_path / name)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="File format not supported"):
        fk.models.load_model(tmp_path / "model.pkl")


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "model.weights.h5"])
def test_damaged_files_raise_value_error(tmp_path, name):
    model = sequential_model()
    path = tmp_path / name
    (model.save_weights if name.endswith(".weights.h5") else model.save)(path)
    data = path.read_bytes()
    for damaged in (data[:len(data) // 2], b"not a model at all"):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match="truncated or corrupted"):
            if name.endswith(".weights.h5"):
                model.load_weights(path)
            else:
                fk.models.load_model(path)


def test_keras_file_without_its_parts_raises(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="lacks.*model.weights.h5"):
        fk.models.load_model(path)
    with h5py.File(tmp_path / "plain.h5", "w") as store:
        store.create_group("data")
    with pytest.raises(ValueError, match="model_config"):
        fk.models.load_model(tmp_path / "plain.h5")


def test_weights_of_another_architecture_raise_and_change_nothing(tmp_path):
    model = trained(sequential_model())
    model.save_weights(tmp_path / "model.weights.h5")
    other = fk.Sequential([fk.Input((8, 8, 2)), layers.Flatten(), layers.Dense(3)])
    before = other.get_weights()
    with pytest.raises(ValueError, match="model.weights.h5"):
        other.load_weights(tmp_path / "model.weights.h5")
    for now, then in zip(other.get_weights(), before):
        np.testing.assert_array_equal(now, then)


def keras_archive_with_layer(tmp_path, layer_entry):
    """A .keras file (as Keras writes it) of Input(4,) -> ``layer_entry``."""
    model = fk.Sequential([fk.Input((4,)), layers.Dense(2, name="dense")])
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    config["config"]["layers"][1] = layer_entry(config["config"]["layers"][1])
    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


def test_keras_keys_at_their_defaults_are_dropped(tmp_path):
    def with_defaults(entry):
        entry["config"].update(kernel_constraint=None, bias_constraint=None, lora_rank=None,
                               quantization_config=None)
        entry["config"]["kernel_initializer"]["config"].update(input_axes=None,
                                                               output_axes=None)
        return entry

    loaded = fk.models.load_model(keras_archive_with_layer(tmp_path, with_defaults))
    assert loaded.layers[0].units == 2


@pytest.mark.parametrize("edit, message", [
    (lambda entry: {**entry, "class_name": "LSTM"},
     "layer 'dense': Keras layer class 'LSTM' has no fastconv counterpart"),
    (lambda entry: {**entry, "config": {**entry["config"], "lora_rank": 4}},
     "layer 'dense': Keras argument lora_rank=4 is not supported"),
    (lambda entry: {**entry, "config": {**entry["config"], "kernel_constraint": {
        "module": "keras.constraints", "class_name": "MaxNorm", "config": {}}}},
     "layer 'dense': Keras argument kernel_constraint="),
    (lambda entry: {**entry, "config": {**entry["config"], "dtype": "mixed_float16"}},
     "layer 'dense': dtype 'mixed_float16' is not supported"),
])
def test_what_fastconv_cannot_honour_raises_naming_layer_and_key(tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        fk.models.load_model(keras_archive_with_layer(tmp_path, edit))


@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_nested_models_load_as_nested_models(tmp_path, extension):
    model = trained(nested_model())
    model.save(tmp_path / f"model{extension}")
    loaded = fk.models.load_model(tmp_path / f"model{extension}")
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "InputLayer", "Sequential", "Conv2D", "Sequential", "Model", "Dense"]
    head = loaded.get_layer("head")
    assert [layer.name for layer in head.get_layer("deeper").layers] == ["deep"]
    assert [type(layer).__name__ for layer in loaded.get_layer("augmentation").layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom"]
    assert loaded.get_layer("augmentation").get_layer(index=1).get_config()["factor"] == 0.1
    model = sequential_in_sequential_model()
    model.save(tmp_path / f"outer{extension}")
    loaded = fk.models.load_model(tmp_path / f"outer{extension}")
    assert [type(layer).__name__ for layer in loaded.layers] == ["Sequential", "Flatten", "Dense"]
    assert [weight.shape for weight in loaded.trainable_weights] == [(48, 2), (2,)]


def test_nested_model_layout_matches_keras_3(tmp_path):
    """The nested entries, weight groups and legacy weight lists Keras 3.15.1
    writes for the same models (read from files real Keras saved)."""
    model = nested_model()
    model.save(tmp_path / "model.keras")
    model.save(tmp_path / "model.h5")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    entries = {entry["name"]: entry for entry in config["config"]["layers"]}
    block = entries["block"]
    assert (block["module"], block["class_name"], block["registered_name"]) == (
        "keras", "Sequential", None)
    assert block["build_config"] == {"input_shape": [None, 6, 6, 3]}
    assert block["compile_config"] == {}
    assert block["inbound_nodes"][0]["kwargs"] == {"mask": None}
    assert [entry["class_name"] for entry in block["config"]["layers"]] == [
        "InputLayer", "Conv2D", "BatchNormalization", "Conv2D"]
    assert block["config"]["build_input_shape"] == [None, 6, 6, 3]
    head = entries["head"]
    assert (head["module"], head["class_name"], head["registered_name"]) == (
        "keras.src.models.functional", "Functional", "Functional")
    assert head["build_config"] == {"input_shape": None}
    assert head["config"]["layers"][1]["class_name"] == "Sequential"
    assert head["config"]["layers"][1]["inbound_nodes"][0]["args"][0]["config"][
        "keras_history"] == [head["config"]["layers"][0]["name"], 0, 0]
    assert config["config"]["layers"][-1]["config"]["dtype"]["module"] == "keras"
    with h5py.File(io.BytesIO(weights), "r") as store:
        assert sorted(store["layers"]) == ["conv2d", "dense", "functional", "input_layer",
                                           "sequential", "sequential_1"]
        assert sorted(store["layers/sequential/layers"]) == [
            "random_flip", "random_rotation", "random_zoom"]
        assert store["layers/sequential/vars"].attrs["name"] == "augmentation"
        assert sorted(store["layers/sequential_1/layers"]) == [
            "batch_normalization", "conv2d", "conv2d_1"]
        np.testing.assert_array_equal(store["layers/sequential_1/layers/conv2d_1/vars/0"],
                                      model.get_layer("block").layers[2].get_weights()[0])
        assert sorted(store["layers/functional/layers"]) == [
            "flatten", "input_layer", "sequential"]
        np.testing.assert_array_equal(
            store["layers/functional/layers/sequential/layers/conv2d/vars/1"],
            model.get_layer("head").get_layer("deeper").get_layer("deep").get_weights()[1])
    with h5py.File(tmp_path / "model.h5", "r") as store:
        legacy = json.loads(store.attrs["model_config"])
        group = store["model_weights"]
        conv, norm, last = (layer.name for layer in model.get_layer("block").layers)
        assert names(group["block"], "weight_names") == [
            f"block/{conv}/kernel", f"block/{conv}/bias", f"block/{norm}/gamma",
            f"block/{norm}/beta", f"block/{last}/kernel", f"block/{last}/bias",
            f"block/{norm}/moving_mean", f"block/{norm}/moving_variance"]
        np.testing.assert_array_equal(group[f"block/block/{norm}/moving_variance"],
                                      model.get_layer("block").layers[1].get_weights()[3])
        assert names(group["head"], "weight_names")[:2] == ["deeper/deep/kernel",
                                                            "deeper/deep/bias"]
        assert names(group["augmentation"], "weight_names") == []
    block = next(entry for entry in legacy["config"]["layers"] if entry["name"] == "block")
    assert sorted(block) == ["class_name", "config", "inbound_nodes", "name"]
    assert all(sorted(entry) == ["class_name", "config"] for entry in block["config"]["layers"])


def test_float64_models_round_trip(tmp_path):
    inputs = fk.Input((4, 4, 1), dtype="float64")
    model = fk.Model(inputs, layers.Dense(2)(layers.Flatten()(layers.Conv2D(2, 3)(inputs))))
    model.save(tmp_path / "model.keras")
    loaded = fk.models.load_model(tmp_path / "model.keras")
    assert loaded.dtype == np.float64 and loaded.weights[0].dtype == np.float64
    assert_same_model(loaded, model)


def test_optimizer_state_of_another_layout_is_skipped_with_a_warning(tmp_path):
    model = trained(sequential_model())
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    config["compile_config"]["optimizer"]["config"]["momentum"] = 0.0  # no slots
    with zipfile.ZipFile(tmp_path / "edited.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    with pytest.warns(UserWarning, match="skipping the optimizer state"):
        loaded = fk.models.load_model(tmp_path / "edited.keras")
    assert loaded.optimizer.slots is None and loaded.optimizer.iterations == 0
    assert_same_model(loaded, model)


def test_without_h5py_the_keras_formats_name_the_extra(tmp_path, monkeypatch):
    model = sequential_model()
    monkeypatch.setitem(sys.modules, "h5py", None)
    for save in (lambda: model.save(tmp_path / "m.keras"), lambda: model.save(tmp_path / "m.h5"),
                 lambda: model.save_weights(tmp_path / "m.weights.h5")):
        with pytest.raises(ImportError, match=r'pip install "fastconv\[keras-format\]"'):
            save()
    model.save(tmp_path / "m.npz")  # NumPy only
    assert os.listdir(tmp_path) == ["m.npz"]


# ------------------------------------------------------------- real Keras 3

KERAS_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        sys.exit(3)
    import numpy as np
    directory = sys.argv[1]
    join = lambda name: os.path.join(directory, name)

    # Files fastconv wrote: Keras loads them, predicts and lists its optimizer state.
    import warnings
    def optimizer_state(model):
        return {str(i): keras.ops.convert_to_numpy(v)
                for i, v in enumerate(model.optimizer.variables)}
    for name in ("seq", "fun", "all", "nest", "seqseq"):
        x = np.load(join(name + "_x.npy"))
        for extension in (".keras", ".h5"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = keras.models.load_model(join(name + extension))
            np.save(join(name + extension + "_keras.npy"), model.predict(x, verbose=0))
            np.savez(join(name + extension + "_optimizer.npz"), **optimizer_state(model))
            with open(join(name + extension + "_keras.txt"), "w") as stream:
                stream.write(type(model.optimizer).__name__ + "\\n")
                stream.write("\\n".join(str(w.message) for w in caught))

    # Files Keras writes: fastconv loads them.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    left = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    right = keras.layers.Conv2D(4, 1)(inputs)
    merged = keras.layers.BatchNormalization()(keras.layers.Add()([left, right]))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D()(merged))
    maxed = keras.layers.GlobalMaxPooling2D()(merged)
    features = keras.layers.Dropout(0.5)(keras.layers.Concatenate()([pooled, maxed]))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(features))
    model.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((6, 8, 8, 1), dtype=np.float32)
    model.fit(x, np.eye(2)[np.arange(6) % 2], epochs=2, verbose=0)
    sequential = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3),
                                   keras.layers.ReLU(), keras.layers.Flatten(),
                                   keras.layers.Dense(2)])
    every = every_layer(keras.layers, keras.Input, keras.Model)
    nest = nested(keras.layers, keras.Input, keras.Model, keras.Sequential)
    nest.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy")
    x = np.random.default_rng(0).random((6, 8, 8, 2), dtype=np.float32)
    nest.fit(x, np.eye(2)[np.arange(6) % 2], epochs=2, verbose=0)
    seqseq = sequential_in_sequential(keras.layers, keras.Input, keras.Sequential)
    for name, model in (("keras_fun", model), ("keras_seq", sequential), ("keras_all", every),
                        ("keras_nest", nest), ("keras_seqseq", seqseq)):
        x = np.random.default_rng(1).random((5,) + model.input_shape[1:], dtype=np.float32)
        np.save(join(name + "_x.npy"), x)
        np.save(join(name + "_pred.npy"), model.predict(x, verbose=0))
        model.save(join(name + ".keras"))
        model.save(join(name + ".h5"))
        model.save_weights(join(name + ".weights.h5"))
        if name in ("keras_fun", "keras_nest"):
            np.savez(join(name + "_optimizer.npz"), **optimizer_state(model))
""")


@pytest.fixture(scope="module")
def keras_exchange(tmp_path_factory):
    """The directory where fastconv's files were read by real Keras and Keras
    wrote its own; skips where Keras 3 (torch backend) does not import."""
    directory = tmp_path_factory.mktemp("keras")
    for name, model in (("seq", trained(sequential_model())),
                        ("fun", trained(functional_model())),
                        ("all", trained(every_layer_model())),
                        ("nest", trained(nested_model())),
                        ("seqseq", trained(sequential_in_sequential_model()))):
        np.save(directory / f"{name}_x.npy", sample(model))
        np.save(directory / f"{name}_pred.npy", model.predict(sample(model), verbose=0))
        model.save(directory / f"{name}.keras")
        model.save(directory / f"{name}.h5")
    environment = subprocess_env(KERAS_BACKEND="torch")
    script = "".join(inspect.getsource(builder) for builder in (
        every_layer, nested, sequential_in_sequential)) + KERAS_SCRIPT
    result = subprocess.run([sys.executable, "-c", script, str(directory)],
                            capture_output=True, text=True, env=environment, timeout=600)
    if result.returncode == 3:
        pytest.skip("keras (with the torch backend) is not installed")
    assert result.returncode == 0, result.stderr[-3000:]
    return directory


@pytest.mark.parametrize("name", ["seq", "fun", "all", "nest", "seqseq"])
@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_keras_loads_fastconv_files_and_predicts_the_same(keras_exchange, name, extension):
    np.testing.assert_allclose(np.load(keras_exchange / f"{name}{extension}_keras.npy"),
                               np.load(keras_exchange / f"{name}_pred.npy"), atol=1e-5)
    optimizer, *warnings = (keras_exchange / f"{name}{extension}_keras.txt").read_text().split("\n")
    assert optimizer == {"seq": "SGD", "fun": "Adam", "all": "RMSprop", "nest": "Adam",
                         "seqseq": "SGD"}[name]
    assert not any("optimizer" in warning for warning in warnings), warnings
    model = fk.models.load_model(keras_exchange / f"{name}.keras")
    with np.load(keras_exchange / f"{name}{extension}_optimizer.npz") as keras_state:
        theirs = [keras_state[str(i)] for i in range(len(keras_state.files))]
    ours = [value for _, value in keras_format.optimizer_variables(model)]
    if extension == ".h5":  # Keras 3.15 restores only these from .h5 files, even its own
        ours = ours[:2]
    assert len(theirs) == len(ours) > (1 if extension == ".h5" else 2)
    for mine, expected in zip(ours, theirs):
        np.testing.assert_allclose(mine, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["keras_seq", "keras_fun", "keras_all", "keras_nest",
                                  "keras_seqseq"])
@pytest.mark.parametrize("extension", [".keras", ".h5"])
def test_fastconv_loads_keras_files_and_predicts_the_same(keras_exchange, name, extension):
    model = fk.models.load_model(keras_exchange / f"{name}{extension}")
    x = np.load(keras_exchange / f"{name}_x.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.load(keras_exchange / f"{name}_pred.npy"), atol=1e-5)
    if name == "keras_fun":
        assert isinstance(model.optimizer, fk.optimizers.Adam)
        assert model.optimizer.learning_rate == pytest.approx(0.01)
        assert model._compile_specs[0] == "categorical_crossentropy"
        with np.load(keras_exchange / "keras_fun_optimizer.npz") as keras_state:
            theirs = [keras_state[str(i)] for i in range(len(keras_state.files))]
        ours = [value for _, value in keras_format.optimizer_variables(model)]
        assert len(ours) == len(theirs) == 2 + 2 * 8  # Adam: 2 slots of 8 weights
        for mine, expected in zip(ours, theirs):
            np.testing.assert_allclose(mine, expected, rtol=1e-6)
    if name == "keras_nest" and extension == ".keras":
        assert isinstance(model.get_layer("block"), fk.Sequential)
        with np.load(keras_exchange / "keras_nest_optimizer.npz") as keras_state:
            theirs = [keras_state[str(i)] for i in range(len(keras_state.files))]
        ours = [value for _, value in keras_format.optimizer_variables(model)]
        assert len(ours) == len(theirs) == 2 + 2 * 12  # Adam: 2 slots of 12 weights
        for mine, expected in zip(ours, theirs):
            np.testing.assert_allclose(mine, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["keras_seq", "keras_fun", "keras_all", "keras_nest",
                                  "keras_seqseq"])
def test_fastconv_loads_keras_weights_files(keras_exchange, name):
    model = fk.models.load_model(keras_exchange / f"{name}.keras")
    for weights in model.weights:
        weights[...] = 0
    model.load_weights(keras_exchange / f"{name}.weights.h5")
    x = np.load(keras_exchange / f"{name}_x.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.load(keras_exchange / f"{name}_pred.npy"), atol=1e-5)
