"""See what a convnet learned ("Deep Learning with Python", 5.4 / 2nd ed. 9.4).

Training curves (``plot_history``), the channels of intermediate
activations (``plot_feature_maps``), the input patterns each filter answers
most (``filter_pattern``, ``plot_filters``), class-activation heatmaps
(``gradcam_heatmap``, ``plot_gradcam``) and the layer graph
(``plot_model``, also ``keras.utils.plot_model``, and ``model_to_figure``).

Every ``plot_*`` function writes an image to ``path`` (PNG, or any format
matplotlib knows from the file name) and returns the matplotlib Figure.
The figure is closed in pyplot once saved, so loops do not pile figures
up; it is still drawn when a notebook cell returns it.  matplotlib is an
optional extra (``pip install "fastconv[plots]"``), imported on first use,
with the Agg backend when there is no display.
"""

import math
import os
import sys

import numpy as np

from . import utils
from ._checks import check_int, check_number

INSTALL_HINT = 'pip install "fastconv[plots]"'
DPI = 100  # dots per inch of the saved images of the plot_* functions but plot_model


def require_matplotlib():
    """matplotlib.pyplot, imported with the Agg backend when there is no
    display (and no backend was chosen); ImportError naming the extra to
    install when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"fastconv's plots need matplotlib: {INSTALL_HINT}") from None
    headless = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY"))
    if headless and "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, figure, path, dpi=DPI):
    figure.savefig(os.fspath(path), dpi=dpi)
    plt.close(figure)
    return figure


# ------------------------------------------------------------------ history


def plot_history(history, path):
    """Loss and every metric per epoch, training against validation (the
    ``val_`` entries), one subplot per quantity, as the book's curves.

    history: the ``History`` that ``fit`` returns, or its ``history`` dict.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"history must be a keras.callbacks.History or its history dict, "
                        f"got {type(history).__name__}")
    quantities = [name for name in logs if not name.startswith("val_")]
    quantities += [name[4:] for name in logs if name.startswith("val_")
                   and name[4:] not in logs]
    if not quantities or not any(len(values) for values in logs.values()):
        raise ValueError("history holds no epochs: train with fit() first")
    quantities.sort(key=lambda name: name != "loss")  # loss first, as Keras logs it
    epochs = getattr(history, "epoch", None) or range(max(map(len, logs.values())))
    epochs = [epoch + 1 for epoch in epochs]
    plt = require_matplotlib()
    figure, axes = plt.subplots(1, len(quantities), figsize=(5 * len(quantities), 4),
                                squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], quantities):
        for key, style, label in ((name, "bo", "Training"), ("val_" + name, "b", "Validation")):
            if key in logs:
                ax.plot(epochs[:len(logs[key])], logs[key], style, label=f"{label} {name}")
        ax.set_title(f"Training and validation {name}")
        ax.set_xlabel("Epochs")
        ax.set_ylabel(name)
        ax.legend()
    return _save(plt, figure, path)


# ------------------------------------------------------------- feature maps


def plot_feature_maps(model, image, path, layers=None, images_per_row=16):
    """Every channel of the activations of ``layers`` for one ``image``: a
    grid of ``images_per_row`` channel images per layer, each channel
    standardised (mean 128, standard deviation 64 on 0..255) as in the book.

    image: one image (height, width, channels) or a batch of one.  layers:
    layers or layer names of ``model`` with 4-D outputs (default: its
    convolution and pooling layers, in order).
    """
    check_int(images_per_row, "images_per_row", minimum=1)
    x = _one_image(model, image)
    if layers is None:
        layers = [layer for layer in _graph_layers(model) if _is_feature_layer(model, layer)]
        if not layers:
            raise ValueError(f"model {model.name!r} has no convolution or pooling layer; "
                             f"pass layers=")
    layers = [_layer_of(model, layer) for layer in layers]
    outputs = [_output_of(model, layer) for layer in layers]
    for layer, output in zip(layers, outputs):
        if output.ndim != 4:
            raise ValueError(f"layer {layer.name!r} has output shape {output.shape}; feature "
                             f"maps need a 4-D output (batch, height, width, channels)")
    activations = _sub_model(model, outputs)(x)
    if len(outputs) == 1:
        activations = [activations]
    grids = [_channel_grid(activation[0], images_per_row) for activation in activations]
    plt = require_matplotlib()
    width = max(2.0, 0.5 * min(images_per_row, max(a.shape[-1] for a in activations)))
    heights = [width * grid.shape[0] / grid.shape[1] + 0.4 for grid in grids]  # + title
    figure, axes = plt.subplots(len(grids), 1, squeeze=False, layout="constrained",
                                figsize=(width, round(sum(heights), 2)),
                                gridspec_kw={"height_ratios": heights})
    for ax, layer, grid in zip(axes[:, 0], layers, grids):
        ax.imshow(grid, cmap="viridis", aspect="equal")
        ax.set_title(layer.name)
        ax.axis("off")
    return _save(plt, figure, path)


def _channel_grid(activation, images_per_row):
    """The channels of one activation (height, width, channels) side by side,
    ``images_per_row`` to a row, 1-pixel borders between them (uint8)."""
    height, width, channels = activation.shape
    per_row = min(images_per_row, channels)
    rows = math.ceil(channels / per_row)
    grid = np.zeros((rows * (height + 1) - 1, per_row * (width + 1) - 1), np.uint8)
    for channel in range(channels):
        row, column = divmod(channel, per_row)
        grid[row * (height + 1):row * (height + 1) + height,
             column * (width + 1):column * (width + 1) + width] = _standardised(
                 activation[..., channel])
    return grid


def _standardised(array):
    """``array`` as uint8 with mean 128 and standard deviation 64 (clipped), the
    book's display of channels and filter patterns; black when constant."""
    array = np.asarray(array, np.float64)
    std = array.std()
    if std == 0:
        return np.zeros(array.shape, np.uint8)
    return np.clip((array - array.mean()) / std * 64 + 128, 0, 255).astype(np.uint8)


# ---------------------------------------------------------- filter patterns


def filter_pattern(model, layer, channel, size=None, steps=30, step_size=10.0):
    """The input image that ``channel`` of ``layer`` answers most: gradient
    ascent on the mean of that channel's activation, from a random image
    (values in 0.4..0.6, drawn from fastconv's seeded generator), each step
    adding ``step_size`` times the l2-normalised gradient.

    size: the image's (height, width), or one int for both (default: the
    model's input size).  Returns the image, float (height, width, channels)
    in the model's dtype, unscaled (``plot_filters`` standardises it).
    """
    layer = _layer_of(model, layer)
    output = _output_of(model, layer)
    check_int(channel, "channel", minimum=0, maximum=output.shape[-1] - 1)
    check_int(steps, "steps", minimum=0)
    check_number(step_size, "step_size", low=0, low_open=True)
    height, width = _input_size(model, size)
    extractor = _sub_model(model, [output])
    x = utils.random_generator().uniform(0.4, 0.6, (1, height, width, model.input.shape[-1]))
    x = x.astype(model.input.dtype)
    dy = np.zeros(extractor(x).shape, x.dtype)  # d mean(activation[..., channel]) / d activation
    dy[..., channel] = 1.0 / dy[..., channel].size
    for _ in range(steps):
        grad = extractor.gradients(x, dy)
        norm = np.sqrt(np.sum(np.square(grad, dtype=np.float64)))
        x += (step_size / max(norm, 1e-12)) * grad
    return x[0]


def plot_filters(model, layer, path, size=None, steps=30, step_size=10.0, filters=None):
    """The ``filter_pattern`` of every channel of ``layer`` (or of the channel
    indices in ``filters``) in a square grid, 5-pixel margins, as the book."""
    layer = _layer_of(model, layer)
    channels = _output_of(model, layer).shape[-1]
    filters = range(channels) if filters is None else list(filters)
    if not filters:
        raise ValueError("filters is empty: pass channel indices or None for all")
    patterns = [_standardised(filter_pattern(model, layer, channel, size, steps, step_size))
                for channel in filters]
    per_row = math.ceil(math.sqrt(len(patterns)))
    rows = math.ceil(len(patterns) / per_row)
    height, width, depth = patterns[0].shape
    margin = 5
    grid = np.full((rows * (height + margin) - margin, per_row * (width + margin) - margin,
                    depth), 255, np.uint8)
    for index, pattern in enumerate(patterns):
        row, column = divmod(index, per_row)
        grid[row * (height + margin):row * (height + margin) + height,
             column * (width + margin):column * (width + margin) + width] = pattern
    plt = require_matplotlib()
    inches = max(4.0, 0.6 * per_row)
    figure = plt.figure(figsize=(inches, round(inches * rows / per_row + 0.4, 2)),
                        layout="constrained")
    ax = figure.add_subplot()
    ax.imshow(grid if depth == 3 else grid[..., 0], cmap=None if depth == 3 else "gray")
    ax.set_title(f"Filter patterns of {layer.name}")
    ax.axis("off")
    return _save(plt, figure, path)


# ------------------------------------------------------------------ Grad-CAM


def gradcam_heatmap(model, image, layer=None, class_index=None):
    """Grad-CAM: which places of ``layer``'s output make ``model`` score
    ``class_index`` (default: its top class) for one ``image``.

    The channels of the layer's output are weighted by the mean over the
    image of the gradient of the class score (the model's output, after its
    activation: the softmax probability, as in the book) with
    respect to them, summed, passed through ReLU and divided by their
    maximum.  layer: a layer or name with a 4-D output (default: the last
    such layer, the one before the flatten/pooling head).  Returns a float
    (height, width) array of the layer's output size, values in 0..1 (all
    zero when no place raises the score).
    """
    x = _one_image(model, image)
    layer = _layer_of(model, layer) if layer is not None else _last_4d_layer(model)
    output = _output_of(model, layer)
    if output.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with a 4-D output, layer {layer.name!r} "
                         f"has output shape {output.shape}")
    if len(model.outputs) != 1 or model.outputs[0].ndim != 2:
        raise ValueError("Grad-CAM needs a model with one output of class scores "
                         "(batch, classes)")
    grad_model = _sub_model(model, [output, model.outputs[0]])
    feature_maps, scores = grad_model(x)
    classes = scores.shape[-1]
    if class_index is None:
        class_index = int(np.argmax(scores[0]))
    check_int(class_index, "class_index", minimum=0, maximum=classes - 1)
    one_hot = np.zeros_like(scores)
    one_hot[0, class_index] = 1.0
    (grads,) = grad_model.gradients(x, [None, one_hot], wrt=[output])
    weights = grads[0].mean(axis=(0, 1))
    heatmap = np.maximum(feature_maps[0] @ weights, 0)
    peak = heatmap.max()
    return heatmap / peak if peak > 0 else heatmap


def plot_gradcam(model, image, path, layer=None, class_index=None):
    """The ``gradcam_heatmap`` alone and laid over ``image`` (jet colours, as
    keras.io's Grad-CAM example)."""
    x = _one_image(model, image)
    heatmap = gradcam_heatmap(model, x, layer, class_index)
    plt = require_matplotlib()
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
    left.matshow(heatmap, cmap="jet", vmin=0, vmax=1)
    left.set_title("Grad-CAM heatmap")
    height, width = x.shape[1:3]
    right.imshow(_displayable(x[0]), cmap="gray", extent=(0, width, height, 0))
    right.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0, vmax=1, interpolation="bilinear",
                 extent=(0, width, height, 0))
    right.set_title("Superimposed")
    for ax in (left, right):
        ax.axis("off")
    return _save(plt, figure, path)


def _displayable(image):
    """One image scaled to 0..1 for imshow (one channel as a 2-D array)."""
    image = np.asarray(image, np.float64)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image[..., 0] if image.shape[-1] == 1 else image


# ---------------------------------------------------------------- plot_model


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, **kwargs):
    """Writes ``model_to_figure``'s drawing of ``model`` to ``to_file`` (any
    format matplotlib knows from the name) at ``dpi``; Graphviz is not needed.

    Returns, as Keras, an ``IPython.display.Image`` of the file when IPython
    is installed and the file is not a PDF, else None.
    """
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {sorted(kwargs)}")
    figure = model_to_figure(model, show_shapes, show_dtype, show_layer_names, rankdir,
                             expand_nested, show_layer_activations, show_trainable)
    figure.savefig(os.fspath(to_file), dpi=dpi)
    if os.fspath(to_file).lower().endswith(".pdf"):
        return None
    try:
        from IPython import display
    except ImportError:
        return None
    return display.Image(filename=os.fspath(to_file))


def model_to_figure(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                    rankdir="TB", expand_nested=False, show_layer_activations=False,
                    show_trainable=False):
    """``model``'s layer graph as a matplotlib Figure (Keras's ``model_to_dot``
    without Graphviz): one box per layer of ``model.layers`` holding one text
    (its name and class; shapes, dtype, activation, trainable on request),
    one arrow (an annotation) from a layer to each layer that reads its
    output, ranks from top to bottom (rankdir 'TB') or left to right ('LR').
    Nested models are drawn as one box.
    """
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' or 'LR', got {rankdir!r}")
    if expand_nested:
        raise NotImplementedError("plot_model draws nested models as one box; "
                                  "expand_nested=True is not supported")
    if not getattr(model, "built", False) or not getattr(model, "_nodes", None):
        raise ValueError("This model has not yet been built. Build the model first by calling "
                         "`build()` or by calling the model on a batch of data.")
    layers, edges, ranks = _layer_graph(model)
    labels = [_box_label(model, layer, show_shapes, show_dtype, show_layer_names,
                         show_layer_activations, show_trainable) for layer in layers]
    plt = require_matplotlib()
    from matplotlib.patches import FancyBboxPatch
    box_width = 0.075 * max(len(line) for label in labels for line in label.split("\n")) + 0.3
    box_height = 0.16 * max(label.count("\n") + 1 for label in labels) + 0.25
    centres, size = _box_centres(ranks, box_width, box_height, rankdir)
    figure = plt.figure(figsize=size)
    plt.close(figure)  # not kept by pyplot: the caller saves or shows it
    ax = figure.add_axes((0, 0, 1, 1), xlim=(0, size[0]), ylim=(size[1], 0))
    ax.axis("off")
    for (x, y), label in zip(centres, labels):
        ax.add_patch(FancyBboxPatch((x - box_width / 2, y - box_height / 2), box_width,
                                    box_height, boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor="#e8eef7", edgecolor="#34495e"))
        ax.text(x, y, label, ha="center", va="center", fontsize=9)
    for source, target in edges:
        skips = ranks[target] - ranks[source] > 1  # around the boxes between, not through
        ax.annotate("", xy=_box_side(centres[target], box_width, box_height, rankdir, skips, 1),
                    xytext=_box_side(centres[source], box_width, box_height, rankdir, skips, 0),
                    arrowprops={"arrowstyle": "-|>", "color": "#34495e", "shrinkA": 0,
                                "shrinkB": 0, "connectionstyle": (
                                    "arc,angleA=0,angleB=0,armA=25,armB=25,rad=8"
                                    if skips and rankdir == "TB" else
                                    "arc,angleA=-90,angleB=-90,armA=25,armB=25,rad=8"
                                    if skips else "arc3")})
    return figure


def _layer_graph(model):
    """(layers, edges, ranks): the layers of ``model.layers`` in run order
    (so input layers for functional models, not for Sequential ones, as
    Keras draws them); (source, target) index pairs, one per tensor a node
    reads; each layer's rank, the length of the longest path to it."""
    shown = {id(layer) for layer in model.layers}
    layers, index_of = [], {}
    for node in model._nodes:
        if id(node.layer) in shown and id(node.layer) not in index_of:
            index_of[id(node.layer)] = len(layers)
            layers.append(node.layer)
    edges, ranks = [], [0] * len(layers)
    for node in model._nodes:  # topological order: sources are ranked first
        target = index_of.get(id(node.layer))
        for tensor in node.inputs:
            source = index_of.get(id(tensor.node.layer))
            if target is None or source is None:
                continue
            if (source, target) not in edges:
                edges.append((source, target))
            ranks[target] = max(ranks[target], ranks[source] + 1)
    return layers, edges, ranks


def _box_centres(ranks, box_width, box_height, rankdir):
    """The centre of each box (inches from the top left) and the figure's
    (width, height): ranks top to bottom ('TB') or left to right ('LR'),
    the boxes of one rank side by side, centred."""
    by_rank = {}
    for index, rank in enumerate(ranks):
        by_rank.setdefault(rank, []).append(index)
    across = max(len(indices) for indices in by_rank.values())
    margin = 0.6  # room for the arrows that skip ranks, beside the boxes
    if rankdir == "TB":
        step_across, step_along = box_width + margin, box_height + 0.5
    else:
        step_across, step_along = box_height + margin, box_width + 0.5
    centres = [None] * len(ranks)
    for rank, indices in by_rank.items():
        for slot, index in enumerate(indices):
            across_at = (slot + (across - len(indices)) / 2 + 0.5) * step_across
            along_at = (rank + 0.5) * step_along
            centres[index] = (across_at, along_at) if rankdir == "TB" else (along_at, across_at)
    spans = (across * step_across, len(by_rank) * step_along)
    return centres, (spans if rankdir == "TB" else spans[::-1])


def _box_side(centre, box_width, box_height, rankdir, skips, is_target):
    """Where an arrow leaves (is_target 0) or enters (1) a box: the side
    facing the next rank, or for an arrow that skips ranks the side along
    which it runs past the boxes between (right in 'TB', bottom in 'LR')."""
    x, y = centre
    if skips:
        return (x + box_width / 2, y) if rankdir == "TB" else (x, y + box_height / 2)
    sign = 1 if is_target else -1
    return (x, y - sign * box_height / 2) if rankdir == "TB" else (x - sign * box_width / 2, y)


def _box_label(model, layer, show_shapes, show_dtype, show_layer_names,
               show_layer_activations, show_trainable):
    class_name = type(layer).__name__
    lines = [f"{layer.name} ({class_name})" if show_layer_names else class_name]
    nodes = [node for node in model._nodes if node.layer is layer]
    if show_shapes:
        inputs = [tuple(t.shape) for node in nodes for t in node.inputs]
        outputs = [tuple(node.output.shape) for node in nodes]
        lines.append(f"Input shape: {_shapes_text(inputs or outputs)}")
        lines.append(f"Output shape: {_shapes_text(outputs)}")
    if show_dtype:
        lines.append(f"dtype: {np.dtype(nodes[0].output.dtype).name}")
    activation = layer.get_config().get("activation") if show_layer_activations else None
    if activation:
        lines.append(f"Activation: {activation}")
    if show_trainable:
        lines.append(f"Trainable: {'T' if layer.trainable else 'F'}")
    return "\n".join(lines)


def _shapes_text(shapes):
    shapes = list(dict.fromkeys(shapes))
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


# ------------------------------------------------------------------- helpers


def _graph_layers(model):
    """The layers of ``model``'s graph in run order, input layers left out."""
    return [node.layer for node in model._nodes if not node.is_input]


def _layer_of(model, layer):
    """A layer of ``model`` given as a layer or a name."""
    if isinstance(layer, str):
        return model.get_layer(layer)
    if not any(node.layer is layer for node in model._nodes):
        raise ValueError(f"{layer!r} is not a layer of model {model.name!r}")
    return layer


def _output_of(model, layer):
    """The KerasTensor ``layer`` makes in ``model``'s graph (it must run once)."""
    outputs = [node.output for node in model._nodes if node.layer is layer]
    if len(outputs) != 1:
        raise ValueError(f"layer {layer.name!r} runs {len(outputs)} times in model "
                         f"{model.name!r}: its output is ambiguous")
    return outputs[0]


def _is_feature_layer(model, layer):
    name = type(layer).__name__
    return (("Conv" in name or "Pooling" in name) and "Global" not in name
            and _output_of(model, layer).ndim == 4)


def _last_4d_layer(model):
    layers = [layer for layer in _graph_layers(model) if _output_of(model, layer).ndim == 4]
    if not layers:
        raise ValueError(f"model {model.name!r} has no layer with a 4-D output for Grad-CAM")
    return layers[-1]


def _sub_model(model, outputs):
    """A model from ``model``'s input to ``outputs`` (KerasTensors of its graph)."""
    from .models import Model
    if len(model.inputs) != 1:
        raise ValueError(f"these plots need a model with one image input, model "
                         f"{model.name!r} has {len(model.inputs)}")
    return Model(inputs=model.inputs[0], outputs=outputs[0] if len(outputs) == 1 else outputs)


def _one_image(model, image):
    """``image`` (height, width, channels), or a batch of one, as a batch of
    one in the model's input dtype."""
    if not getattr(model, "built", False):
        raise ValueError(f"model {model.name!r} is not built: give it an input shape first")
    x = np.asarray(image)
    if x.ndim == 3:
        x = x[None]
    expected = model.inputs[0].shape
    if x.ndim != 4 or len(x) != 1 or any(want is not None and want != got for want, got
                                         in zip(expected[1:], x.shape[1:])):
        raise ValueError(f"image must be one image of shape {expected[1:]} (or a batch of "
                         f"one), got shape {np.shape(image)}")
    return x.astype(model.inputs[0].dtype)


def _input_size(model, size):
    """(height, width) of the images fed to ``model``: ``size`` or its input's."""
    fixed = model.inputs[0].shape[1:3]
    if size is None:
        if None in fixed:
            raise ValueError(f"model {model.name!r} takes images of any size: pass size=")
        return tuple(fixed)
    size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(size) != 2:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    for value in size:
        check_int(value, "size", minimum=1)
    if any(want is not None and want != got for want, got in zip(fixed, size)):
        raise ValueError(f"size {size} does not fit model {model.name!r}'s input size {fixed}")
    return size
