"""Thread scaling: how the compiled kernels' work splits over 16 and 64
cores at batch 64 and 256, and a simulation of those shares on 2 cores.

    python bench/bench_thread_scaling.py           # work items, then the timings
    python bench/bench_thread_scaling.py --units   # work items only: no timing, about a second
    python bench/bench_thread_scaling.py --quick   # work items and a smoke run of the timings

Work items.  The models are the MNIST notebook convnet and the Deep
Learning with Python 5.2 convnet, built by the code the other benchmarks
build them with; their layers, and which ReLU convolutions run fused with
their max pooling, are read from the built models.  For each compiled call
of a training step the script counts its work items (the iterations of the
call's parallel loop), asks ``ops._threads_for``'s rule (one thread per
``ops.MIN_WORK_PER_THREAD`` of work) how many threads the call may start,
and prints, for 16 and 64 cores, how many threads are busy, the most items
one thread runs, and the share of the cores' time spent on items
(items / (cores x most items per thread)).  The weight gradient's split is
``ops._gradient_split``'s, the input gradient's path
``ops._input_gradient_path``'s, the forward's tiles the build's
``_conv.TILE_PIXELS``; the loops' item counts are restated in the
functions below, each naming the loop it mirrors.
Left out: the finite checks of the weights (``_optim.all_finite``, one
pass over them, split like ``_optim.step``) and the work done in NumPy
(dropout, the loss, the copies that pad weights and output gradients to
whole vectors of channels).

Simulation.  Each core of a 16- or 64-core machine gets a share of the
batch: 256 images on 64 cores are 4 per thread, 64 on 16 are 4, 256 on 16
are 16, 64 on 64 is 1.  For every share s the script times each layer's
forward and backward pass on 1 thread with a batch of s and on 2 threads
with a batch of 2s, so both threads hold the share a big machine would give
them, and reports images per second per thread and the parallel efficiency
(2-thread rate / (2 x 1-thread rate)), each from the fastest of up to 30
calls of at most 1 s in all (see ``best_ms``); then the model's whole batch
on 1 and 2 threads.  A fused convolution and pooling is timed as one step,
as the models run it.  The thread count is pinned with
``fastconv.set_num_threads`` (OMP_NUM_THREADS is ignored); "threads used"
is what ``MIN_WORK_PER_THREAD`` allows the 2-thread calls of the pass.
``--quick`` times the share of 1 image per thread only, a few calls each.
"""

import argparse
import dataclasses
import math
import os

import numpy as np
from bench_images import book_model
from common import budget_times_ms, describe_machine, print_table

import fastconv
from fastconv import _checks, activations, ops
from fastconv.examples.mnist import notebook_model
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import functional

_conv = ops._conv

# Images per thread that 16 and 64 cores give batches of 64 and 256.
SHARES = {1: "64 on 64 cores", 4: "64 on 16, 256 on 64 cores", 16: "256 on 16 cores"}
BATCHES = (64, 256)
CORES = (16, 64)
# Layers that run in NumPy (no compiled call, no threads).
NUMPY_LAYERS = (Dropout, Flatten)


@dataclasses.dataclass(frozen=True)
class Step:
    """One layer's work in a training step, on compiled kernels: a
    convolution (a Dense layer as a 1x1 one over 1x1 images), with the max
    pooling that the model fuses after it when ``pool`` is set; or a max
    pooling alone (``kernel`` None).  Shapes are per sample."""

    name: str
    image: tuple  # (H, W, C) of the input
    kernel: tuple  # (KH, KW, C, CO), or None
    strides: tuple
    padding: str
    pool: tuple  # the pool size, or None
    relu: bool
    input_gradient: bool  # whether the backward pass computes dx

    def geometry(self):
        """The convolution's (or the pooling's) ``_checks.Geometry``."""
        window = self.kernel[:2] if self.kernel else self.pool
        channels = self.kernel[3] if self.kernel else self.image[2]
        return _checks.geometry((None,) + self.image, window, self.strides, self.padding,
                                "window", channels)


def model_steps(model):
    """The Steps of ``model`` (a Sequential model) in the order they run."""
    fused = {}
    if functional.FUSE:
        fused = {node.layer: step.pool_node.layer
                 for node, step in model._conv_pool_steps.items()}
    counts, steps, trained_before = {}, [], False
    for layer in model.layers:
        if layer in fused.values() or isinstance(layer, NUMPY_LAYERS):
            continue
        kind = {Dense: "dense", Conv2D: "conv", MaxPooling2D: "pool"}.get(type(layer))
        if kind is None or (kind == "conv" and (layer.groups, layer.dilation_rate) != (1, (1, 1))):
            raise ValueError(f"no work-item accounting for layer {layer.name!r} "
                             f"({type(layer).__name__})")
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}{counts[kind]}"
        shape = layer.input_shape[1:]
        image = shape if len(shape) == 3 else (1, 1) + shape
        if kind == "pool":
            steps.append(Step(name, image, None, layer.strides, layer.padding, layer.pool_size,
                              False, trained_before))
            continue
        pool = fused.get(layer)
        if pool is not None:
            counts["pool"] = counts.get("pool", 0) + 1
            name += f"+pool{counts['pool']}"
        steps.append(Step(name, image, layer.as_hwio(layer.params["kernel"]).shape,
                          layer.strides, layer.padding, pool and pool.pool_size,
                          layer.activation is activations.relu, trained_before))
        trained_before = True
    return steps


# ------------------------------------------------------------ work items

@dataclasses.dataclass(frozen=True)
class Call:
    """One compiled call: its items (independent iterations of its parallel
    loop) and the work ``ops._threads_for`` sizes its thread team by."""

    kernel: str
    unit: str
    items: int
    work: int
    split: str = ""  # how the items are formed, where it is not one per unit

    def threads(self, cores):
        """The threads busy on ``cores`` cores: ``ops._threads_for``'s team
        (at most one per MIN_WORK_PER_THREAD), at most one per item."""
        return min(cores, max(1, self.work // ops.MIN_WORK_PER_THREAD), self.items)

    def cell(self, cores):
        """'threads x most items per thread (share of the cores' time)'."""
        threads = self.threads(cores)
        most = -(-self.items // threads)
        return f"{threads} x {most:,} ({self.items / (cores * most):.0%})"


def padded_channels(channels, itemsize):
    """``channels`` rounded up to whole vectors, as ``ops._padded_channels`` pads."""
    lanes = _conv.VECTOR_BYTES // itemsize
    return -(-channels // lanes) * lanes


def forward_items(batch, image, out_hw, window, geo, weight_channels, itemsize):
    """(items, unit) of ``_conv.forward`` on ``batch`` inputs of (H, W) =
    ``image`` into outputs of (OH, OW) = ``out_hw``, with weights (KH, KW,
    ``weight_channels``, CO) where ``window`` = (KH, KW, CO), and the
    strides, dilation and padding of ``geo``.  As in ``_conv.forward``: the
    direct path (no dilation or padding under the windows) loops over tiles
    of TILE_PIXELS output pixels (times blocks of TILE_VECTORS vectors of
    output channels for weights over _conv.FORWARD_WEIGHT_BYTES), the gather path
    over output rows."""
    kh, kw, channels_out = window
    out_h, out_w = out_hw
    direct = (geo.dilation_h == geo.dilation_w == 1 and geo.pad_top == geo.pad_left == 0
              and (out_h - 1) * geo.stride_h + kh <= image[0]
              and (out_w - 1) * geo.stride_w + kw <= image[1])
    if not direct:
        return batch * out_h, "output row"
    tiles = -(-batch * out_h * out_w // _conv.TILE_PIXELS)
    padded = padded_channels(channels_out, itemsize)
    if kh * kw * weight_channels * padded * itemsize <= _conv.FORWARD_WEIGHT_BYTES:
        return tiles, f"tile of {_conv.TILE_PIXELS} pixels"
    blocks = -(-padded * itemsize // (_conv.TILE_VECTORS * _conv.VECTOR_BYTES))
    return tiles * blocks, f"{_conv.TILE_PIXELS} pixels x {_conv.TILE_VECTORS} vectors"


def weight_gradient_calls(step, batch, geo, work, itemsize):
    """The Calls of ``_conv.weight_gradient``, as ``ops._weight_gradient``
    makes it: its phases (``wgrad_phase``) one after the other, each shared
    among all threads: one unit per image to pad an input that needs
    padding; ``ops._gradient_split``'s P batch parts x G row groups; with
    P > 1, the sum of the P partial gradients, one unit per gradient row
    (KH x KW x C rows, then the bias)."""
    kh, kw, channels, channels_out = step.kernel
    image = _conv.padded_image_shape(geo.out_h, geo.out_w, geo.stride_h, geo.stride_w, kh, kw,
                                     channels)
    rows = kh * kw * channels
    parts, groups = ops._gradient_split(batch, image[0] * image[1], channels,
                                        geo.out_h * geo.out_w, rows, channels_out, itemsize)
    calls = [Call("_conv.weight_gradient", "batch part x row group", parts * groups, work,
                  f"{parts} x {groups}")]
    if geo.pad_top or geo.pad_left or image[0] > step.image[0] or image[1] > step.image[1]:
        calls.insert(0, Call("_conv.weight_gradient (padding)", "image", batch, work))
    if parts > 1:
        partials = parts * (rows + 1) * padded_channels(channels_out, itemsize) * itemsize
        calls.append(Call("_conv.weight_gradient (sum of parts)", "gradient row", rows + 1, work,
                          f"{parts} parts, {partials / 1e6:.3g} MB"))
    return calls


def input_gradient_call(step, batch, geo, work, itemsize):
    """The Call computing dx on the path ``ops._input_gradient_path`` picks,
    as ``ops._backward`` makes it: the transposed product of a Dense-like
    1x1 layer; one image per unit of ``_conv.input_gradient`` for small
    images; else a forward pass of dy with the flipped kernel, dilated by
    the strides and padded by KH - 1 - pad."""
    kh, kw, channels, channels_out = step.kernel
    height, width = step.image[:2]
    pixels = batch * geo.out_h * geo.out_w
    path = ops._input_gradient_path(step.kernel, (batch, geo.out_h, geo.out_w, channels_out),
                                    geo, itemsize)
    if path == "scatter":
        return Call("_conv.input_gradient", "image", batch, work)
    if path == "pointwise":
        # dx^T = kernel @ dy^T: the kernel is the 'image', dy^T the weights.
        transposed = _checks.Geometry(1, channels, 1, 1, 0, 0)
        items, unit = forward_items(1, (1, channels), (1, channels), (1, 1, pixels),
                                    transposed, channels_out, itemsize)
        return Call("_conv.forward (transposed)", unit, items, work)
    flipped_geo = _checks.Geometry(height, width, 1, 1, kh - 1 - geo.pad_top,
                                   kw - 1 - geo.pad_left, geo.stride_h, geo.stride_w)
    items, unit = forward_items(batch, (geo.out_h, geo.out_w), (height, width),
                                (kh, kw, channels), flipped_geo, channels_out, itemsize)
    return Call("_conv.forward (dx)", unit, items, work)


def step_calls(step, batch, itemsize=4):
    """{"forward": [Call], "backward": [Call]} of one training step's pass
    through ``step`` at ``batch``, in the order ``ops`` makes them."""
    geo = step.geometry()
    if step.kernel is None:
        elements = batch * math.prod(step.image)
        return {"forward": [Call("_pool.forward", "output row", batch * geo.out_h, elements)],
                "backward": [Call("_pool.backward", "image", batch, elements)]}
    kh, kw, channels, channels_out = step.kernel
    out_elements = batch * geo.out_h * geo.out_w * channels_out
    work = out_elements * kh * kw * channels
    backward = []
    if step.pool:
        pooled_h = geo.out_h // step.pool[0]
        pooled = batch * pooled_h * (geo.out_w // step.pool[1]) * channels_out
        macs = pooled * step.pool[0] * step.pool[1] * kh * kw * channels
        forward = [Call("_conv.forward_relu_max_pool", "pooled row", batch * pooled_h, macs)]
        backward.append(Call("_pool.relu_max_pool_backward", "pooled row", batch * pooled_h,
                             out_elements))
    else:
        items, unit = forward_items(batch, step.image[:2], (geo.out_h, geo.out_w),
                                    (kh, kw, channels_out), geo, channels, itemsize)
        forward = [Call("_conv.forward", unit, items, work)]
        if step.relu:
            backward.append(Call("_conv.relu_backward", "element", out_elements, out_elements))
    backward += weight_gradient_calls(step, batch, geo, work, itemsize)
    if step.input_gradient:
        backward.append(input_gradient_call(step, batch, geo, work, itemsize))
    return {"forward": forward, "backward": backward}


def optimizer_call(model):
    """``_optim.step``: all weights' elements cut into one equal range per thread."""
    elements = sum(weight.size for weight in model.trainable_weights)
    return Call("_optim.step", "element (a range per thread)", elements, elements)


def unit_rows(models):
    """One row per model, step and compiled call: its items and the cells
    of ``Call.cell`` at 16 and 64 cores, for each of BATCHES."""
    rows = []
    for title, model, _ in models:
        for step in model_steps(model):
            per_batch = [step_calls(step, batch) for batch in BATCHES]
            for phase in ("forward", "backward"):
                # A call may run at one batch size only (a sum of parts, the
                # transposed input gradient): rows are matched by kernel.
                kernels = dict.fromkeys(call.kernel for passes in per_batch
                                        for call in passes[phase])
                for kernel in kernels:
                    rows.append(call_row(title, step.name, [
                        next((c for c in passes[phase] if c.kernel == kernel), None)
                        for passes in per_batch]))
        rows.append(call_row(title, "optimizer", [optimizer_call(model)] * len(BATCHES)))
    return rows


def call_row(title, step, calls):
    """A table row: the call, then per batch its items and cells per core
    count ("-" where the call is not made at that batch size)."""
    first = next(call for call in calls if call is not None)
    row = [title, step, f"{first.kernel}: {first.unit}"]
    for call in calls:
        if call is None:
            row += ["-"] * (1 + len(CORES))
            continue
        items = f"{call.items:,}" + (f" ({call.split})" if call.split else "")
        row += [items] + [call.cell(cores) for cores in CORES]
    return row


def unit_headers():
    headers = ["model", "step", "compiled call: work item"]
    for batch in BATCHES:
        headers += [f"items at {batch}"] + [f"{batch} on {cores} cores" for cores in CORES]
    return headers


# ------------------------------------------------------------ timings

def step_passes(rng, step, batch):
    """(forward, backward) closures of ``step`` at ``batch`` (float32), as
    the model's training step runs it."""
    x = rng.standard_normal((batch,) + step.image, dtype=np.float32)
    if step.kernel is None:
        y = ops.max_pool2d_forward(x, step.pool, step.strides, step.padding)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        return (lambda: ops.max_pool2d_forward(x, step.pool, step.strides, step.padding),
                lambda: ops.max_pool2d_backward(x, dy, step.pool, step.strides, step.padding))
    kernel = rng.standard_normal(step.kernel, dtype=np.float32) * 0.1
    bias = np.zeros(step.kernel[3], np.float32)
    conv = (x, kernel, bias, step.strides, step.padding)
    if step.pool:
        y, winners = ops.conv2d_relu_max_pool2d_forward(*conv, step.pool)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        return (lambda: ops.conv2d_relu_max_pool2d_forward(*conv, step.pool),
                lambda: ops.conv2d_relu_max_pool2d_backward(
                    x, kernel, dy, y, winners, step.strides, step.padding, step.pool,
                    compute_dx=step.input_gradient))
    activation = "relu" if step.relu else None
    y = ops.conv2d_forward(*conv, activation=activation)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return (lambda: ops.conv2d_forward(*conv, activation=activation),
            lambda: ops.conv2d_backward(x, kernel, dy, step.strides, step.padding,
                                        compute_dx=step.input_gradient,
                                        activation=activation, y=y if step.relu else None))


def best_ms(fn, repeat, budget_s):
    """The fastest of up to ``repeat`` calls of ``fn`` (``budget_s`` seconds):
    on a shared machine the other processes only ever slow a call down, and
    a team of 2 threads waits for whichever of its cores is taken."""
    return min(budget_times_ms(fn, repeat, budget_s))


def pass_cells(batch1, ms1, batch2, ms2, calls):
    """Images/s per thread on 1 and 2 threads, efficiency, threads used by
    the 2-thread pass's calls."""
    rate1 = batch1 / ms1 * 1e3
    rate2 = batch2 / ms2 * 1e3 / 2
    used = sorted({call.threads(2) for call in calls})
    return [f"{rate1:,.0f}", f"{rate2:,.0f}", f"{rate2 / rate1:.0%}",
            "-".join(map(str, (used[0], used[-1]) if len(used) > 1 else used))]


def scaling_rows(rng, models, shares, whole_batch, repeat, budget_s):
    """One row per model, step and share (images per thread, or the whole
    batch): rates per thread and efficiency, forward and backward."""
    rows = []
    for title, model, whole in models:
        for step in model_steps(model):
            runs = [(f"{s} ({SHARES[s]})", s, 2 * s) for s in shares]
            if whole_batch:
                runs.append((f"whole batch {whole}", whole, whole))
            for label, batch1, batch2 in runs:
                times = []
                for threads, batch in ((1, batch1), (2, batch2)):
                    fastconv.set_num_threads(threads)
                    times.append([best_ms(fn, repeat, budget_s)
                                  for fn in step_passes(rng, step, batch)])
                calls = step_calls(step, batch2)
                rows.append([title, step.name, label]
                            + pass_cells(batch1, times[0][0], batch2, times[1][0],
                                         calls["forward"])
                            + pass_cells(batch1, times[0][1], batch2, times[1][1],
                                         calls["backward"]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--units", action="store_true", help="print the work items only")
    modes.add_argument("--quick", action="store_true",
                       help="time 1 image per thread only, a few calls each")
    args = parser.parse_args()
    models = [("MNIST", notebook_model(), 64), ("DLwP 5.2", book_model(), 32)]
    print("\n".join(describe_machine()))
    print(f"work items of one training step (float32; tiles of {_conv.TILE_PIXELS} pixels, "
          f"{_conv.TILE_ROWS} weight-gradient rows; a cell is threads busy x most items "
          "per thread (share of the cores' time on items))\n")
    print_table(unit_headers(), unit_rows(models))
    if args.units:
        return
    rng = np.random.default_rng(0)
    print("\nthreads pinned with fastconv.set_num_threads (1, then 2); float32; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    shares, whole_batch, repeat, budget_s = (([1], False, 3, 0.05) if args.quick
                                             else (list(SHARES), True, 30, 1.0))
    print_table(["model", "step", "images per thread",
                 "fwd img/s/thread 1T", "fwd img/s/thread 2T", "fwd efficiency", "fwd threads used",
                 "bwd img/s/thread 1T", "bwd img/s/thread 2T", "bwd efficiency",
                 "bwd threads used"],
                scaling_rows(rng, models, shares, whole_batch, repeat, budget_s))
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (other processes share the cores)")


if __name__ == "__main__":
    main()
