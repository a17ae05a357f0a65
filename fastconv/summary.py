"""``model.summary()``: Keras 3's table of layers, output shapes and
parameter counts (Keras's ``utils/summary_utils.py``), drawn in plain text
exactly as the ``rich`` table Keras renders it looks without colours.

Sequential models, and functional graphs that are a plain chain, get three
columns (default line length 88); other functional models get a fourth,
"Connected to", listing each layer's inputs as ``'<layer>[<node>][<tensor>]'``
(default 108).  Either default is capped at the terminal's width less 4
(76 when the output is not a terminal, as in a notebook).

The table: a column's width is its share of ``line_length`` (``positions``
are cumulative fractions) plus one space of padding on each side; when that
overflows the line, every column gives up an equal part of the excess, as
rich does.  A cell wraps at spaces; a word longer than its column ends with
'…'.  Param counts are right-aligned.
"""

import re
import shutil
import sys

from ._checks import check_int

# rich's default table box (HEAVY_HEAD): the header in heavy lines, rows in light ones.
_TOP, _HEAD_ROW, _HEAD_BOTTOM = "┏━┳┓", "┃┃┃", "┡━╇┩"
_ROW, _ROW_RULE, _BOTTOM = "│││", "├─┼┤", "└─┴┘"


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
                  show_trainable=False, layer_range=None):
    """Prints ``model``'s table, then its parameter counts and sizes.

    ``print_fn`` (default: write to stdout) is called once with the whole
    text, lines ended by newlines, as Keras 3 does.  ValueError when the
    line is too short for the columns (one narrower than 4 characters).
    """
    layers, graph_nodes = _listed_layers(model)
    sequential_like = graph_nodes is None
    if sequential_like:
        default_length, fractions = 88, [0.45, 0.80, 1.0]
        header, justify = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default_length, fractions = 108, [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        justify = ["left", "left", "right", "left"]
    if positions is not None:
        fractions = list(positions)
        if len(fractions) != len(header):
            raise ValueError(f"positions must have {len(header)} entries (one per column: "
                             f"{', '.join(header)}), got {positions!r}")
    if show_trainable:
        default_length += 12
        fractions = [fraction * 0.9 for fraction in fractions] + [1.0]
        header, justify = header + ["Trainable"], justify + ["center"]
    if line_length is None:
        line_length = min(default_length, shutil.get_terminal_size().columns - 4)
    else:
        line_length = check_int(line_length, "line_length")
    widths = _column_widths(fractions, line_length)

    first, last = _layer_index_range(layers, layer_range)
    rows = []
    for layer in layers[first:last]:
        rows.extend(_rows(layer, graph_nodes, show_trainable, expand_nested))
    lines = [f'Model: "{model.name}"'] + _table(header, rows, widths, justify)
    lines += _totals(model)
    text = "".join(line + "\n" for line in lines)
    if print_fn is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        print_fn(text)


# ---------------------------------------------------------------- the rows

def _listed_layers(model):
    """(the layers the table lists, the graph's nodes by id or None when the
    model is sequential-like).  A functional model lists its input layers
    too, in Keras's order: by decreasing depth, then as first met walking
    back from the outputs."""
    from .models.sequential import Sequential
    if isinstance(model, Sequential):
        return model.layers, None
    first_seen, done, post_order = {}, set(), []

    def visit(node):
        if id(node) in done:
            return
        first_seen.setdefault(id(node.layer), len(first_seen))
        for tensor in node.inputs:
            visit(tensor.node)
        done.add(id(node))
        post_order.append(node)

    for tensor in model.outputs:
        visit(tensor.node)
    # Depth 0 at the outputs; a node is one deeper than the deepest node
    # reading its output, and a shared layer's nodes are at least as deep as
    # the layer's deepest node met so far (Keras's map_graph).
    node_depth, layer_depth, layers = {}, {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers[id(node.layer)] = node.layer
        for tensor in node.inputs:
            parent = id(tensor.node)
            node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for tensor in model.inputs:  # inputs that no output depends on
        if id(tensor.node.layer) not in layer_depth:
            layer_depth[id(tensor.node.layer)], first_seen[id(tensor.node.layer)] = 0, -1
            node_depth[id(tensor.node)] = 0
            layers[id(tensor.node.layer)] = tensor.node.layer
    ordered = sorted(layers.values(),
                     key=lambda layer: (-layer_depth[id(layer)], first_seen[id(layer)]))
    nodes = {id(node): node for node in post_order}
    nodes.update((id(t.node), t.node) for t in model.inputs)
    depths = [node_depth[key] for key in nodes]
    chain = (len(set(depths)) == len(depths)
             and all(len(node.inputs) <= 1 for node in nodes.values())
             and all(sum(id(node) in nodes for node in layer.inbound_nodes) <= 1
                     for layer in ordered))
    return ordered, (None if chain else nodes)


def _rows(layer, graph_nodes, show_trainable, expand_nested, level=0):
    """The table rows of ``layer``, then of its layers when it is a model
    and ``expand_nested`` (names indented under a '└ ')."""
    prefix = "   " * level + "└ " if level else ""
    params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
    fields = [f"{prefix}{layer.name} ({_class_name(layer)})", _output_shape(layer), params]
    if graph_nodes is not None:
        fields.append(_connections(layer, graph_nodes))
    if show_trainable:
        fields.append(("Y" if layer.trainable else "N") if layer.weights else "-")
    rows = [fields]
    if expand_nested and getattr(layer, "layers", None):
        for inner in _listed_layers(layer)[0]:
            rows.extend(_rows(inner, graph_nodes, show_trainable, expand_nested, level + 1))
    return rows


def _class_name(layer):
    """The layer's class name; 'Functional' for a functional model, whose
    class Keras 3 names so."""
    from .models.functional import Model
    return "Functional" if type(layer) is Model else type(layer).__name__


def _output_shape(layer):
    """'(None, 26, 26, 32)': the output of the layer's last call ('?' when
    it was never called nor built)."""
    if layer.inbound_nodes:
        shape = layer.inbound_nodes[-1].output.shape
    elif layer.built and layer.output_shape is not None:
        shape = layer.output_shape
    else:
        return "?"
    return "(" + ", ".join(str(size) for size in shape) + ")"


def _connections(layer, graph_nodes):
    """'conv2d[0][0], max_pooling2d[0][0]': the tensors the layer reads in
    this graph, each as its layer, node index and tensor index; '-' for none."""
    sources = []
    for node in layer.inbound_nodes:
        if id(node) in graph_nodes:
            for tensor in node.inputs:
                source = tensor.node.layer
                sources.append(f"{source.name}[{source.inbound_nodes.index(tensor.node)}][0]")
    return ", ".join(sources) or "-"


def _layer_index_range(layers, layer_range):
    """[first, last + 1) of the layers from the first matching
    ``layer_range[0]`` to the last matching ``layer_range[1]`` (regexes)."""
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2 or not all(isinstance(name, str) for name in layer_range):
        raise ValueError(f"layer_range must be a list or tuple of 2 strings (layer names or "
                         f"regexes), got {layer_range!r}")
    starts = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    ends = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not starts or not ends:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. "
                         f"Received: {layer_range}")
    if min(starts) > max(ends):
        return min(ends), max(starts) + 1
    return min(starts), max(ends) + 1


# ---------------------------------------------------------------- the totals

def _totals(model):
    """' Total params: 93,322 (364.54 KB)' and the trainable, non-trainable
    and (once the optimizer has its state) optimizer lines."""
    trainable, frozen = model.trainable_weights, model.non_trainable_weights
    counts = [("Trainable", sum(w.size for w in trainable), _nbytes(trainable)),
              ("Non-trainable", sum(w.size for w in frozen), _nbytes(frozen))]
    optimizer = model.optimizer if getattr(model, "compiled", False) else None
    if optimizer is not None and optimizer.slots is not None:
        # Keras's optimizer variables: the int64 step count, the float32
        # learning rate (unless a schedule or callable gives it) and the slots.
        slots = [array for slots in optimizer.slots for array in slots.values()]
        scalars = 1 if callable(optimizer._learning_rate) else 2
        counts.append(("Optimizer", scalars + sum(a.size for a in slots),
                       8 + 4 * (scalars - 1) + _nbytes(slots)))
    total = ("Total", sum(count for _, count, _ in counts), sum(size for _, _, size in counts))
    return [f" {name} params: {count:,} ({_readable_size(size)})"
            for name, count, size in [total] + counts]


def _nbytes(arrays):
    return sum(a.nbytes for a in {id(a): a for a in arrays}.values())


def _readable_size(size):
    """Keras's readable_memory_size: 373288 -> '364.54 KB' (units of 1024)."""
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


# ---------------------------------------------------------------- the table

def _column_widths(fractions, line_length):
    """Each column's width between the borders, padding included, as rich
    lays out Keras's table of ``line_length`` characters."""
    widths, used = [], 0
    for fraction in fractions:
        width = int(fraction * line_length) - used
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        used += width
    inside = line_length - (len(widths) + 1)  # less the vertical borders
    widths = [min(width + 2, inside) for width in widths]
    excess = sum(widths) - inside
    if excess > 0:  # rich's ratio_reduce with equal ratios
        shares = len(widths)
        for i, width in enumerate(widths):
            cut = min(width, round(excess / shares))
            widths[i] -= cut
            excess -= cut
            shares -= 1
    return widths


def _table(header, rows, widths, justify):
    """The lines of the boxed table: the header, then the rows with a rule
    between them."""
    def rule(corners):
        left, line, cross, right = corners
        return left + cross.join(line * width for width in widths) + right

    def cells(fields, borders, bottom=False):
        """The lines of one row, its cells aligned to the top (the header's
        to the bottom)."""
        columns = [_cell_lines(text, width, how)
                   for text, width, how in zip(fields, widths, justify)]
        height = max(len(lines) for lines in columns)
        for lines, width in zip(columns, widths):
            blank = [" " * width] * (height - len(lines))
            lines[:] = blank + lines if bottom else lines + blank
        left, middle, right = borders
        return [left + middle.join(row) + right for row in zip(*columns)]

    lines = [rule(_TOP)] + cells(header, _HEAD_ROW, bottom=True) + [rule(_HEAD_BOTTOM)]
    for i, fields in enumerate(rows):
        if i:
            lines.append(rule(_ROW_RULE))
        lines += cells(fields, _ROW)
    return lines + [rule(_BOTTOM)]


def _cell_lines(text, width, justify):
    """``text`` wrapped into lines of exactly ``width`` characters, one
    space of padding each side, as a rich table cell."""
    inner = width - 2
    if inner < 1:
        return [" " * width]
    lines = []
    for line in _split_words(text, inner):
        if len(line) > inner:  # trailing spaces past the width go first
            line = line[:inner] + line[inner:].rstrip()
        if justify != "left":
            line = line.rstrip()
        if len(line) > inner:
            line = line[:inner - 1] + "…"
        space = inner - len(line)
        before = {"left": 0, "right": space, "center": space // 2}[justify]
        lines.append(" " * (before + 1) + line + " " * (space - before + 1))
    return lines


def _split_words(text, width):
    """rich's word wrap (no folding): a word moves to the next line when it
    does not fit the rest of this one; a longer word starts a line of its own."""
    breaks, used = [], 0
    for word in re.finditer(r"\s*\S+\s*", text):
        if used + len(word.group().rstrip()) > width and word.start():
            breaks.append(word.start())
            used = 0
        used += len(word.group())
    bounds = [0] + breaks + [len(text)]
    return [text[start:end] for start, end in zip(bounds, bounds[1:])]
