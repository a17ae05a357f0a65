"""``model.profile(x, y)``: where a training step's time goes, layer by layer.

Each timed pass is one training step on a batch of ``x``: the model's own
executor runs, and every layer's ``forward`` and ``backward`` call is timed
(``time.perf_counter`` around the very calls the executor makes), as is the
whole step.  The table gives per layer the median forward and backward
milliseconds over the passes, the multiply-adds of one forward pass, the
GFLOP/s and, given ``peak_gflops`` (e.g. the FMA peak of
``bench/fma_peak.py``), the share of that peak; then the totals and the
step, so that the time outside the layers (loss, optimizer, checks, the
executor itself) shows as the gap between the two.

A ReLU Conv2D and the MaxPooling2D the executor runs fused with it (see
``fastconv.models.functional.ConvPoolStep``) are timed as one: the
convolution's row carries the pair's time (its label names the pooling
layer), the pooling's row says which row holds its time.

Multiply-adds counted: those of the computation each pass runs.  A
forward convolution fused with its max pooling counts only its output rows
and columns inside a pooling window (e.g. 16x16 of a 17x17 output under
2x2 windows), which are all the fused kernel computes; its backward, which
runs on the whole convolution output, counts them all.  A backward counts
the forward's products once for the weight gradient and once more when it
computes the input gradient.
"""

import math
import statistics
import time

import numpy as np

from ._checks import check_int, check_number
from .layers import Conv2D, Dense, DepthwiseConv2D, SeparableConv2D
from .ops import get_num_threads


class Profile:
    """The result of ``profile``: ``rows`` (one dict per layer, in the
    order the layers run: "layer", "type", "forward_ms", "backward_ms",
    "macs" (of the forward pass, as it runs: see the module docstring),
    "backward_macs", "forward_gflops",
    "backward_gflops", "forward_peak_percent", "backward_peak_percent";
    GFLOP/s are None for a layer without
    multiply-adds, percentages None without ``peak_gflops``),
    ``forward_ms``/``backward_ms``/``macs``/``backward_macs`` (the sums
    over the rows), ``forward_gflops``/``backward_gflops`` (of the sums),
    ``step_ms`` (the median whole step), ``outside_ms`` (the median over
    the steps of a step's time outside its layers' calls: loss, optimizer,
    checks, the executor; the medians of the rows need not add up to
    ``step_ms`` on a noisy machine), ``batch_size``, ``repeat``,
    ``peak_gflops``, ``step`` (what a timed step ran) and ``threads``
    (fastconv's thread count).  A row's "fused_with" names the layer that
    ran fused with it (None for most): the convolution's row holds the
    pair's time, the max pooling's none.  ``str()`` gives the printed table."""

    def __init__(self, rows, step_ms, outside_ms, batch_size, repeat, peak_gflops, step,
                 threads):
        self.rows, self.step_ms, self.outside_ms = rows, step_ms, outside_ms
        self.batch_size = batch_size
        self.repeat, self.peak_gflops, self.step = repeat, peak_gflops, step
        self.threads = threads
        self.forward_ms = sum(row["forward_ms"] for row in rows)
        self.backward_ms = sum(row["backward_ms"] for row in rows)
        self.macs = sum(row["macs"] for row in rows)
        self.backward_macs = sum(row["backward_macs"] for row in rows)
        self.forward_gflops = _gflops(self.macs, self.forward_ms)
        self.backward_gflops = _gflops(self.backward_macs, self.backward_ms)

    def __str__(self):
        peak = self.peak_gflops is not None
        headers = ["Layer (type)", "fwd ms", "bwd ms", "MMACs", "fwd GFLOP/s", "bwd GFLOP/s"]
        headers += ["fwd % peak", "bwd % peak"] if peak else []
        rows = [[_label(r), _ms(r["forward_ms"]), _ms(r["backward_ms"]),
                 _mmacs(r["macs"]), _rate(r["forward_gflops"]),
                 _rate(r["backward_gflops"])]
                + ([_percent(r["forward_peak_percent"]), _percent(r["backward_peak_percent"])]
                   if peak else [])
                for r in self.rows]
        layers_ms = self.forward_ms + self.backward_ms
        rows.append(["Total", _ms(self.forward_ms), _ms(self.backward_ms), _mmacs(self.macs),
                     _rate(self.forward_gflops), _rate(self.backward_gflops)]
                    + ([_percent(_share(self.forward_gflops, self.peak_gflops)),
                        _percent(_share(self.backward_gflops, self.peak_gflops))] if peak else []))
        widths = [max(len(row[i]) for row in [headers] + rows) for i in range(len(headers))]

        def line(row):
            return "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(row, widths)))

        rule = "-" * len(line(headers))
        lines = [f"Profile: batch {self.batch_size}, {self.threads} threads, median of "
                 f"{self.repeat} timed steps"
                 + (f", peak {self.peak_gflops:g} GFLOP/s" if peak else ""),
                 rule, line(headers), rule] + [line(row) for row in rows[:-1]]
        lines += [rule, line(rows[-1]), rule,
                  f"Step ({self.step}): {_ms(self.step_ms)} ms; layers' forward + backward "
                  f"{_ms(layers_ms)} ms; outside the layers {_ms(self.outside_ms)} ms "
                  f"per step ({100 * self.outside_ms / self.step_ms:.0f}% of the step)"]
        return "\n".join(lines)


def profile(model, x, y=None, batch_size=32, repeat=5, peak_gflops=None, print_fn=None):
    """Times every layer of ``model`` over ``repeat`` training steps on the
    first ``batch_size`` samples of ``x`` (fewer when ``x`` holds fewer),
    after one untimed warm-up step; prints the table (with ``print_fn``,
    default ``print``) and returns it as a ``Profile``.

    With labels ``y`` (the model must be compiled) a step is
    ``train_on_batch``'s: forward, loss, backward, checks and the optimizer
    update.  Without, it is a forward and a backward pass from an output
    gradient of ones.  Afterwards the weights (non-trainable ones included)
    and the optimizer's state are put back as they were; with ``y`` the
    running loss and metrics are reset.  Multiply-adds are counted for
    Conv2D, DepthwiseConv2D, SeparableConv2D and Dense layers (nested
    models: the sum of theirs); other layers count 0.  Do not use the model
    from another thread meanwhile.
    """
    from .models import functional  # it imports this module

    if not isinstance(model, functional.Model):
        raise TypeError(f"profile needs a fastconv Model, got {type(model).__name__}")
    batch_size, repeat = check_int(batch_size, "batch_size"), check_int(repeat, "repeat")
    if peak_gflops is not None:
        peak_gflops = check_number(peak_gflops, "peak_gflops", 0, low_open=True)
    xs = [array[:batch_size] for array in model._prepare_inputs(x)]
    count = len(xs[0])
    if y is None:
        step, name = _forward_backward_step(model, xs), "forward + backward"
    else:
        model._require_compiled("profile")
        labels = _first(y, batch_size)
        _, targets, raw_labels = model._prepare(xs if len(xs) > 1 else xs[0], labels)
        step, name = lambda: model._train_step(xs, targets, raw_labels), "train_on_batch"
    nodes = [node for node in model._nodes if not node.is_input]
    layers = list(dict.fromkeys(node.layer for node in nodes))  # a shared layer once
    weights = model.get_weights()
    optimizer_state = _optimizer_state(model.optimizer)
    pairs = list(model._conv_pool_steps.values()) if functional.FUSE else []
    fused_with = {}
    for pair in pairs:
        conv, pool = pair.conv_node.layer, pair.pool_node.layer
        fused_with[id(conv)], fused_with[id(pool)] = pool.name, conv.name
    timers = {}
    try:
        for layer in layers:
            timers[id(layer)] = _LayerTimer(layer, [pair for pair in pairs
                                                    if pair.conv_node.layer is layer])
        passes = []
        for timed in [False] + [True] * repeat:
            for timer in timers.values():
                timer.start_pass()
            start = time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            if timed:
                passes.append((elapsed, [timer.totals() for timer in timers.values()]))
    finally:
        for timer in timers.values():
            timer.remove()
        model.set_weights(weights)
        _restore_optimizer_state(model.optimizer, optimizer_state)
        if y is not None:
            model.reset_metrics()
    macs = {id(layer): 0 for layer in layers}
    forward_macs = dict(macs)
    pools = {pair.conv_node: pair.pool_node.layer for pair in pairs}
    for node in nodes:
        macs[id(node.layer)] += _macs(node, count)
        forward_macs[id(node.layer)] += _macs(node, count, pools.get(node))
    rows = []
    for i, layer in enumerate(layers):
        forward_ms = 1e3 * statistics.median(p[1][i][0] for p in passes)
        backward_ms = 1e3 * statistics.median(p[1][i][1] for p in passes)
        backward_macs = macs[id(layer)] * timers[id(layer)].products
        rows.append(_row(layer, forward_ms, backward_ms, forward_macs[id(layer)], backward_macs,
                         peak_gflops, fused_with.get(id(layer))))
    step_ms = 1e3 * statistics.median(elapsed for elapsed, _ in passes)
    outside_ms = 1e3 * statistics.median(elapsed - sum(map(sum, totals))
                                         for elapsed, totals in passes)
    result = Profile(rows, step_ms, outside_ms, count, repeat, peak_gflops, name,
                     get_num_threads())
    (print_fn or print)(str(result))
    return result


class _LayerTimer:
    """Wraps a layer's ``forward`` and ``backward`` (as instance attributes
    that shadow the methods until ``remove``) to add up their wall time per
    pass, and those of the fused ``steps`` that run it (ConvPoolSteps whose
    convolution it is).  ``products``: how many products of the forward's
    size a backward ran: 2 when it computed the input gradient (that and
    the weight gradient), 1 without it (the weight gradient), 0 when it
    never ran."""

    def __init__(self, layer, steps=()):
        self.layer, self.products, self.wrapped = layer, 0, []
        backward = layer.backward

        def counted_backward(dy, need_input_grad=True):
            try:
                return backward(dy, need_input_grad=need_input_grad)
            finally:
                self.products = max(self.products, 2 if need_input_grad else 1)

        layer.backward = counted_backward  # then timed, as the layer's forward
        for owner in [layer, *steps]:
            self._time(owner, "forward", "forward_s")
            self._time(owner, "backward", "backward_s")

    def _time(self, owner, method, total):
        """Shadows owner.<method> by a call that adds its wall time to self.<total>."""
        call = getattr(owner, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                setattr(self, total, getattr(self, total) + time.perf_counter() - start)

        setattr(owner, method, timed)
        self.wrapped.append((owner, method))

    def start_pass(self):
        self.forward_s = self.backward_s = 0.0

    def totals(self):
        return self.forward_s, self.backward_s

    def remove(self):
        for owner, method in self.wrapped:
            delattr(owner, method)


def _forward_backward_step(model, xs):
    """A step without loss or update: a training forward, then a backward
    from output gradients of ones."""
    grads = None

    def step():
        nonlocal grads
        outputs = model.run_forward(xs, training=True)
        grads = grads or [np.ones_like(output) for output in outputs]
        model.run_backward(grads)

    return step


def _first(y, count):
    """The first ``count`` labels of each output's labels (an array, list or dict)."""
    if isinstance(y, dict):
        return {name: np.asarray(labels)[:count] for name, labels in y.items()}
    if isinstance(y, (list, tuple)):
        return [np.asarray(labels)[:count] for labels in y]
    return np.asarray(y)[:count]


def _macs(node, batch, fused_pool=None):
    """Multiply-adds of a graph node's forward pass on ``batch`` samples,
    from its layer's weight shapes and its output shape; 0 for a layer
    without convolution or matrix product.  A nested model adds up those of
    its nodes.  A convolution run fused with the max pooling ``fused_pool``
    counts only the output rows and columns inside a pooling window, the
    ones the fused kernel computes."""
    from .models.functional import Model  # it imports this module

    layer = node.layer
    if isinstance(layer, Model):
        return sum(_macs(inner, batch) for inner in layer._nodes if not inner.is_input)
    if not isinstance(layer, (Conv2D, Dense, DepthwiseConv2D, SeparableConv2D)):
        return 0
    shape = node.output.shape[1:]
    if fused_pool is not None:  # strides equal to pool_size, 'valid'
        (height, width, channels), (pool_h, pool_w) = shape, fused_pool.pool_size
        shape = (height // pool_h * pool_h, width // pool_w * pool_w, channels)
    outputs = batch * math.prod(shape)
    if isinstance(layer, SeparableConv2D):
        kh, kw, channels, multiplier = layer.params["depthwise_kernel"].shape
        positions = outputs // layer.filters
        return positions * channels * multiplier * (kh * kw + layer.filters)
    kernel = layer.params["kernel"].shape
    if isinstance(layer, DepthwiseConv2D):
        return outputs * kernel[0] * kernel[1]
    return outputs * math.prod(kernel[:-1])  # Conv2D (kh, kw, in/groups, out), Dense (in, out)


def _row(layer, forward_ms, backward_ms, macs, backward_macs, peak_gflops, fused_with):
    forward_gflops = _gflops(macs, forward_ms)
    backward_gflops = _gflops(backward_macs, backward_ms)
    return {"layer": layer.name, "type": type(layer).__name__, "fused_with": fused_with,
            "forward_ms": forward_ms,
            "backward_ms": backward_ms, "macs": macs, "backward_macs": backward_macs,
            "forward_gflops": forward_gflops, "backward_gflops": backward_gflops,
            "forward_peak_percent": _share(forward_gflops, peak_gflops),
            "backward_peak_percent": _share(backward_gflops, peak_gflops)}


def _label(row):
    """'name (Type)'; for a fused pair 'conv (Conv2D) + pool' on the row
    holding the time, 'pool (MaxPooling2D) in conv' on the other."""
    label = f"{row['layer']} ({row['type']})"
    if row["fused_with"] is None:
        return label
    if row["type"] == "MaxPooling2D":
        return f"{label} in {row['fused_with']}"
    return f"{label} + {row['fused_with']}"


def _gflops(macs, ms):
    """GFLOP/s of ``macs`` multiply-adds in ``ms`` milliseconds (None for no work or no time)."""
    return 2 * macs / ms / 1e6 if macs and ms else None


def _share(gflops, peak_gflops):
    return None if gflops is None or peak_gflops is None else 100 * gflops / peak_gflops


def _optimizer_state(optimizer):
    """(iterations, copies of the slot arrays or None) of ``optimizer`` (None: no optimizer)."""
    if optimizer is None:
        return None
    slots = optimizer.slots
    return optimizer.iterations, None if slots is None else [
        {name: array.copy() for name, array in slot.items()} for slot in slots]


def _restore_optimizer_state(optimizer, state):
    if state is None:
        return
    optimizer.iterations, slots = state
    if slots is None:
        optimizer.slots = None  # unbuilt again: the next apply builds it afresh
        return
    for slot, saved in zip(optimizer.slots, slots):
        for name, array in saved.items():
            slot[name][...] = array


def _ms(value):
    return f"{value:.3f}"


def _mmacs(macs):
    return f"{macs / 1e6:.3f}" if macs < 1e7 else f"{macs / 1e6:.1f}"


def _rate(gflops):
    return "-" if gflops is None else f"{gflops:.1f}"


def _percent(percent):
    return "-" if percent is None else f"{percent:.0f}%"
