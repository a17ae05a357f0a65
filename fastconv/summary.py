"""``model.summary()``: Keras's table of layers, output shapes and
parameter counts (Keras's ``utils/summary_utils.py``).

Sequential models, and functional ones that are a plain chain, get the
three-column table (line length 65); other functional models get a fourth
column, "Connected to", listing each layer's inputs as
``'<layer>[<node>][<tensor>]'`` (line length 98), as Keras 2 prints them.
"""


def print_summary(model, line_length=None, positions=None, print_fn=None):
    """Prints ``model``'s table with ``print_fn`` (default: print)."""
    if not model.built:
        raise ValueError("This model has not yet been built. Build the model first by "
                         "calling build(), by giving the first layer an input_shape, or "
                         "by calling the model on a batch of data.")
    print_fn = print_fn or print
    chain = _is_chain(model)
    line_length = line_length or (65 if chain else 98)
    if line_length < 40:
        raise ValueError(f"line_length must be at least 40, got {line_length!r}")
    fractions = positions or ((0.45, 0.85, 1.0) if chain else (0.33, 0.55, 0.67, 1.0))
    if positions is not None and len(positions) != (3 if chain else 4):
        raise ValueError(f"positions must have {3 if chain else 4} entries, got {positions!r}")
    positions = [int(line_length * f) if f <= 1 else int(f) for f in fractions]
    headers = ["Layer (type)", "Output Shape", "Param #"] + ([] if chain else ["Connected to"])
    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    _print_row(headers, positions, print_fn)
    print_fn("=" * line_length)
    for layer in model.layers:
        fields = [f"{layer.name} ({type(layer).__name__})", _output_shape(model, layer),
                  layer.count_params()]
        if not chain:
            fields.append(_connections(model, layer))
        _print_row(fields, positions, print_fn)
        print_fn(" " * line_length)
    print_fn("=" * line_length)
    total = model.count_params()
    trainable = sum(w.size for w in model.trainable_weights)
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)


def _is_chain(model):
    """True for Sequential models and for graphs where every node reads one
    tensor and no layer runs twice (Keras's 'sequential_like')."""
    if type(model).__name__ == "Sequential":
        return True
    nodes = [node for node in model._nodes if not node.is_input]
    layers = [node.layer for node in nodes]
    return (len(model.inputs) == len(model.outputs) == 1
            and all(len(node.inputs) == 1 for node in nodes)
            and len(set(map(id, layers))) == len(layers)
            and all(sum(node.inputs[0] is other.inputs[0] for other in nodes) == 1
                    for node in nodes))


def _model_nodes(model, layer):
    return [node for node in model._nodes if node.layer is layer]


def _output_shape(model, layer):
    nodes = _model_nodes(model, layer)
    if type(layer).__name__ == "InputLayer":
        return [nodes[0].output.shape]
    return nodes[0].output.shape if len(nodes) == 1 else "multiple"


def _connections(model, layer):
    names = []
    for node in _model_nodes(model, layer):
        for tensor in node.inputs:
            source = tensor.node.layer
            names.append(f"{source.name}[{source.inbound_nodes.index(tensor.node)}][0]")
    return names


def _print_row(fields, positions, print_fn):
    """One row of Keras 2's summary table: each field in its column, wrapped
    onto further lines when too long."""
    left = [str(field) for field in fields]
    while any(left):
        line = ""
        for col, text in enumerate(left):
            start = positions[col - 1] if col else 0
            space = 2 if col != len(positions) - 1 else 0
            cutoff = positions[col] - start - space
            fit = text[:cutoff]
            breaks = [fit.find(end) + len(end) for end in ("),", "},", "],", "',")
                      if fit.find(end) >= 0]
            if breaks:
                cutoff = min(breaks)
                fit = fit[:cutoff]
            line += (" " if col == 0 else "") + fit + " " * space
            left[col] = text[cutoff:]
            line += " " * (positions[col] - len(line))
        print_fn(line)
