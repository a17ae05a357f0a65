"""Compiled Conv2D, depthwise conv and pooling kernels (the 'cython' backend).

Activations are NHWC, kernels HWIO (as in Keras); the arrays of one call
share one dtype, float32 or float64.  Every function checks its arguments
here, in Python, and raises ``TypeError``/``ValueError`` naming the bad one
before any compiled code runs.  :mod:`fastconv.reference` has the same
functions in plain NumPy.

``out`` arguments take preallocated, C-contiguous results of the exact
shape and dtype, so that a training loop can reuse its buffers.

Each public function used by the layers is its checks followed by a
private entry point of the same name with a leading underscore
(``_conv2d_forward``, ``_conv2d_backward``, ``_max_pool2d_forward``, ...)
that takes the arguments as the checks leave them: C-contiguous arrays of
one float dtype, the outputs given, and the ``Conv2DCall`` (or pooling
``Geometry``) of the input's shape.  The layers, which own their arrays,
call those, having checked their call once per input shape
(``Layer._plan``) rather than on every training step.

The compiled convolution multiplies the weights by the zeros of padding
and of the gaps between strided gradients; with a NaN or Inf weight those
products are NaN where the definition has no product at all, so kernels
holding non-finite weights take the reference's exact path instead.  The
compiled depthwise kernels skip the padding that the reference multiplies
(0 * Inf is NaN there), so they too defer to the reference for a
non-finite kernel (forward) or dy (kernel gradient): both backends agree.

A dilated convolution (taps dh, dw apart; strides 1, as Keras requires)
runs as dh * dw undilated ones on the phases of the input (see
``_dilation_phases``); a grouped one as one compiled call per group on
copies of its channel blocks.  Depthwise convolution and average pooling
have compiled kernels of their own (``_depthwise``, ``_pool``).

A ReLU convolution followed by a max pooling whose strides are its window
also runs fused (``conv2d_relu_max_pool2d_forward`` and its backward), in
one pass over the pooled output, bit-identical to the two run in turn.
"""

import collections
import functools
import math
import os
import threading
import warnings

import numpy as np

from . import keras_ops, reference
from ._checks import (
    Geometry,
    check_activation,
    check_activation_output,
    check_bias,
    check_conv2d_call,
    check_conv2d_relu_max_pool2d_call,
    check_depthwise_conv2d,
    check_elements,
    check_out,
    check_output_gradient,
    check_pool,
    check_relu_max_pool2d_backward,
    group_channels,
)
from ._kernels import _conv, _cpu, _depthwise, _optim, _pool

# Threads: the count follows the OpenMP runtime (OMP_NUM_THREADS, or
# threadpoolctl's limits) until set_num_threads pins it.  It never exceeds
# THREADS_PER_CPU threads per CPU this process may run on: more only contend.
THREADS_PER_CPU = 4
_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_num_threads = None         # set by set_num_threads, else follow the OpenMP runtime
_threads_started = False    # this process, or one it was forked from, ran a team of threads
_forked = False             # ... and was forked since: GNU libgomp's threads did not come along
_warned = set()


def max_threads():
    """The most threads the kernels run: THREADS_PER_CPU (4) per CPU this
    process may use (``os.sched_getaffinity``)."""
    return THREADS_PER_CPU * _cpus


def set_num_threads(n):
    """Threads the compiled kernels use, from now on: an int in [1, max_threads()].

    Without a call, the count follows the OpenMP runtime's (``OMP_NUM_THREADS``
    or all CPUs, lowered by ``threadpoolctl.threadpool_limits``), capped at
    ``max_threads()``.  A call pins it, whatever those say."""
    global _num_threads
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the thread count must be a positive int, got {n!r}")
    if n > max_threads():
        raise ValueError(f"the thread count must be at most {max_threads()} "
                         f"({THREADS_PER_CPU} per CPU this process may use), got {n!r}")
    _num_threads = int(n)


def get_num_threads():
    """Threads the compiled kernels use; 1 when fastconv was built without
    OpenMP, and in a process forked after its parent ran threads (see
    ``_threads_for``)."""
    if not _conv.OPENMP or _forked:
        return 1
    if _num_threads is not None:
        return _num_threads
    runtime = _conv.omp_max_threads()
    if runtime > max_threads():
        _warn_once("cap", f"the OpenMP runtime asks for {runtime} threads (OMP_NUM_THREADS?); "
                          f"fastconv runs at most {max_threads()} ({THREADS_PER_CPU} per CPU "
                          "this process may use)")
    return min(runtime, max_threads())


# Flush-to-zero of denormal floats in the compiled kernels (off until
# set_flush_denormal turns it on); passed to every kernel call.
_flush_denormal = False


def set_flush_denormal(mode):
    """Whether the compiled kernels read denormal floats as zero and flush
    denormal results to zero (as ``torch.set_flush_denormal``): denormal
    arithmetic runs about 100x slower.  ``mode`` is a bool; off by default.

    Returns True when this CPU supports it (x86 with SSE3), else False and
    the call has no effect.  The mode holds inside the kernels only (FTZ
    and DAZ in each kernel thread's MXCSR, restored on return): NumPy and
    other code keep IEEE denormals."""
    global _flush_denormal
    if not isinstance(mode, (bool, np.bool_)):
        raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
    if not (_conv.FLUSH_DENORMAL and _cpu.supports("sse3")):
        return False
    _flush_denormal = bool(mode)
    return True


def get_flush_denormal():
    """True when the compiled kernels flush denormals to zero (see
    ``set_flush_denormal``)."""
    return _flush_denormal


def _warn_once(key, message):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _after_fork_in_child():
    global _forked
    _forked = _forked or _threads_started


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# Work (multiply-adds or elements) worth one more thread: tiny calls run on
# one thread rather than pay for a team.  Tests lower it to run threads on
# small shapes.
MIN_WORK_PER_THREAD = 100_000


def _threads_for(work):
    """Threads worth starting for ``work`` multiply-adds (or elements): one
    per MIN_WORK_PER_THREAD at least.

    A process forked after it (or its parent) ran a team of threads gets 1,
    and the kernels then enter no OpenMP region at all: GNU libgomp keeps
    its thread pool across fork(), and a child entering a parallel region
    would wait forever for threads it does not have."""
    global _threads_started
    if _forked:
        _warn_once("fork", "fastconv runs on one thread in this process: it was forked after "
                           "OpenMP threads had run, and GNU libgomp cannot start threads in "
                           "such a child.  For full speed in worker processes, use the "
                           "'spawn' or 'forkserver' start method (multiprocessing.get_context"
                           "('spawn'), joblib's default 'loky' backend).")
        return 1
    threads = max(1, min(get_num_threads(), work // MIN_WORK_PER_THREAD))
    _threads_started = _threads_started or threads > 1
    return threads


class _Workspace(threading.local):
    """The one owner of the kernels' scratch memory: arrays that live for one
    call of this module's functions (a compiled kernel's per-thread rows,
    weights and gradients padded to whole vectors, the phases of a dilated
    convolution, the channel blocks of a grouped one).  The compiled kernels
    allocate nothing: a helper of theirs (``_conv.gather_elements``) sizes
    what they need, which is checked and taken from here.

    Arrays are kept per Python thread and reused by later calls with the
    same shapes, so that a training loop does not pay for fresh allocations
    (and their page faults) on every step.  The most recently used ones are
    kept: ``max_arrays`` of them, ``max_bytes`` in all.

    Arrays that outlive a call are not scratch: a layer's outputs and
    gradients, read by the next layer and by the backward pass, and the
    trainer's batches.  Each layer and trainer keeps those in a
    ``utils.Buffers`` of its own, since one array shared by name among
    layers would be overwritten while still needed."""

    max_arrays = 32
    max_bytes = 64 << 20

    def __init__(self):
        self.arrays = collections.OrderedDict()
        self.nbytes = 0

    def get(self, name, shape, dtype):
        key = (name, shape, np.dtype(dtype))
        array = self.arrays.pop(key, None)
        if array is None:
            array = np.empty(shape, dtype)
            if array.nbytes > self.max_bytes:
                return array
            self.nbytes += array.nbytes
        self.arrays[key] = array
        while self.nbytes > self.max_bytes or len(self.arrays) > self.max_arrays:
            self.nbytes -= self.arrays.popitem(last=False)[1].nbytes
        return array


_workspace = _Workspace()


def _padded_channels(array, name):
    """``array`` with its last axis zero-padded to whole vectors, as the
    compiled kernels read whole vectors of output channels."""
    lanes = _conv.VECTOR_BYTES // array.itemsize
    channels = array.shape[-1]
    if channels % lanes == 0:
        return array
    padded = _workspace.get(name, array.shape[:-1] + (-(-channels // lanes) * lanes,),
                            array.dtype)
    padded[..., channels:] = 0
    padded[..., :channels] = array
    return padded


def conv2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid", activation=None,
                   out=None, dilation_rate=(1, 1), groups=1):
    """2-D convolution (cross-correlation, as in Keras).

    x (N, H, W, C), kernel (KH, KW, C / groups, CO), bias (CO,) or None;
    activation None/'linear' or 'relu' (fused); kernel taps ``dilation_rate``
    apart (strides must then be 1, as in Keras); ``groups`` splits the input
    channels and the filters into that many blocks, output block g seeing
    input block g only.  Returns y (N, OH, OW, CO).
    """
    x, kernel, conv = check_conv2d_call(x, kernel, strides, padding, dilation_rate, groups)
    bias = check_bias(bias, kernel)
    relu = check_activation(activation)
    y = check_out(out, "out", (x.shape[0], conv.geo.out_h, conv.geo.out_w, kernel.shape[3]),
                  x.dtype, (x, kernel, bias))
    return _conv2d_forward(x, kernel, bias, y, conv, relu)


def _conv2d_forward(x, kernel, bias, y, conv, relu):
    """``conv2d_forward`` into ``y`` on checked arguments (as the public
    function's checks leave them), for a trusted caller: ``conv`` the
    Conv2DCall of x's shape, ``relu`` a bool.  Returns y."""
    geo, groups = conv.geo, conv.groups
    if not _all_finite(kernel):
        y[...] = reference.conv2d_forward(x, kernel, bias, conv.strides, conv.padding,
                                          "relu" if relu else None,
                                          dilation_rate=conv.dilation_rate, groups=groups)
        return y
    if not _is_dilated(geo):
        _grouped_forward(x, kernel, bias, geo, groups, relu, y)
        return y
    for phase in _dilation_phases(x.shape, kernel.shape, geo):
        phase_y = _workspace.get("phase_y", (x.shape[0], phase.geo.out_h, phase.geo.out_w,
                                             kernel.shape[3]), x.dtype)
        _grouped_forward(_phase_input(x, phase), kernel, bias, phase.geo, groups, relu, phase_y)
        y[:, phase.out_rows, phase.out_cols] = phase_y
    return y


def conv2d_backward(x, kernel, dy, strides=(1, 1), padding="valid", compute_dx=True,
                    activation=None, y=None, out=None, dilation_rate=(1, 1), groups=1,
                    compute_dkernel=True):
    """Gradients of ``conv2d_forward`` given dy = dL/dy.

    With activation='relu', dy is the gradient of the activated output and
    ``y`` that output (as conv2d_forward returned it): dy counts where y > 0.
    Returns (dx, dkernel, dbias) shaped like x, kernel and (CO,); dx is None
    when ``compute_dx`` is False (a first layer needs no input gradient),
    dkernel and dbias are None when ``compute_dkernel`` is False (a transposed
    convolution's forward pass needs dx only).  ``out`` may give the three
    arrays to fill (None for those not computed).
    """
    x, kernel, conv = check_conv2d_call(x, kernel, strides, padding, dilation_rate, groups)
    cout = kernel.shape[3]
    dy = check_output_gradient(dy, x, cout, conv.geo)
    y = check_activation_output(activation, y, dy)
    dx_out, dk_out, db_out = (None, None, None) if out is None else out
    dkernel = check_out(dk_out, "out[1] (dkernel)", kernel.shape, x.dtype,
                        (x, kernel, dy)) if compute_dkernel else None
    dbias = check_out(db_out, "out[2] (dbias)", (cout,), x.dtype,
                      (x, kernel, dy, dkernel)) if compute_dkernel else None
    dx = check_out(dx_out, "out[0] (dx)", x.shape, x.dtype,
                   (x, kernel, dy, dkernel, dbias)) if compute_dx else None
    _conv2d_backward(x, kernel, dy, conv, y, dx, dkernel, dbias)
    return dx, dkernel, dbias


def _conv2d_backward(x, kernel, dy, conv, y, dx, dkernel, dbias):
    """``conv2d_backward`` on checked arguments, for a trusted caller: fills
    dx and dkernel with dbias (each unless None); ``y`` is the forward's
    output of a ReLU convolution, else None; ``conv`` the Conv2DCall of x's
    shape."""
    if y is not None:
        masked = _workspace.get("relu_dy", dy.shape, dy.dtype)
        _conv.relu_backward(y.reshape(-1), dy.reshape(-1), masked.reshape(-1),
                            num_threads=_threads_for(dy.size))
        dy = masked
    geo, groups = conv.geo, conv.groups
    finite = _all_finite(kernel)
    compiled_dx = dx if finite else None
    if not _is_dilated(geo):
        _grouped_backward(x, kernel, dy, geo, groups, compiled_dx, dkernel, dbias)
    else:
        _dilated_backward(x, kernel, dy, geo, groups, compiled_dx, dkernel, dbias)
    if dx is not None and not finite:
        dx[...] = reference.conv2d_backward(x, kernel, dy, conv.strides, conv.padding,
                                            dilation_rate=conv.dilation_rate, groups=groups,
                                            compute_dkernel=False)[0]


def _is_dilated(geo):
    return geo.dilation_h > 1 or geo.dilation_w > 1


def _all_finite(array):
    """``np.isfinite(array).all()``: one compiled pass without a temporary
    for a C-contiguous float32/float64 array (the kernels' operands)."""
    if array.dtype in (np.float32, np.float64) and array.flags.c_contiguous:
        return _optim.all_finite(array, num_threads=_threads_for(array.size))
    return bool(np.isfinite(array).all())


Phase = collections.namedtuple("Phase", "out_rows out_cols x_rows x_cols in_rows in_cols shape geo")
Phase.__doc__ = """One phase of a dilated convolution (see _dilation_phases): its outputs
y[:, out_rows, out_cols]; its input, of ``shape``, is zero but for
[:, in_rows, in_cols] = x[:, x_rows, x_cols]; ``geo``: its undilated Geometry."""


def _axis_phases(out_size, dilation, pad, size, taps):
    """The phases of a stride-1 convolution along one axis: for each a <
    dilation with outputs, (outputs a::dilation, their count, the phase
    input length, the slice of x it holds, where that lands in the phase)."""
    for a in range(min(dilation, out_size)):
        outputs = len(range(a, out_size, dilation))
        length = outputs + taps - 1  # positions a + t * dilation of the padded grid
        start = a - pad  # the x index of t = 0
        lo = max(0, -(start // dilation))
        hi = max(lo, min(length, -((start - size) // dilation)))
        held = (slice(start + lo * dilation, start + (hi - 1) * dilation + 1, dilation)
                if hi > lo else slice(0, 0))
        yield slice(a, None, dilation), outputs, length, held, slice(lo, hi)


def _dilation_phases(x_shape, kernel_shape, geo):
    """A stride-1 convolution whose taps are (dh, dw) apart, split exactly
    into undilated 'valid' ones: outputs [a::dh, b::dw] read only the rows
    a::dh and columns b::dw of the padded input, with the undilated kernel.
    Yields a Phase for each (a, b) that has outputs: at most dh * dw
    compiled calls, on inputs that hold each cell of x once, padding
    included only where a window reaches it."""
    rows = _axis_phases(geo.out_h, geo.dilation_h, geo.pad_top, x_shape[1], kernel_shape[0])
    cols = list(_axis_phases(geo.out_w, geo.dilation_w, geo.pad_left, x_shape[2],
                             kernel_shape[1]))
    for out_rows, out_h, height, x_rows, in_rows in rows:
        for out_cols, out_w, width, x_cols, in_cols in cols:
            yield Phase(out_rows, out_cols, x_rows, x_cols, in_rows, in_cols,
                        (x_shape[0], height, width, x_shape[3]),
                        Geometry(out_h, out_w, 1, 1, 0, 0))


def _phase_input(x, phase):
    """The input of ``phase``, in a scratch array."""
    phase_x = _workspace.get("phase_x", phase.shape, x.dtype)
    phase_x.fill(0)
    phase_x[:, phase.in_rows, phase.in_cols] = x[:, phase.x_rows, phase.x_cols]
    return phase_x


def _dilated_backward(x, kernel, dy, geo, groups, dx, dkernel, dbias):
    """conv2d_backward of a dilated convolution, phase by phase (see
    _dilation_phases): the kernel and bias gradients are the phases' sums;
    each cell of x is in one phase, which gives its gradient (zero for the
    cells of phases without outputs).  dkernel and dbias may be None."""
    weights = dkernel is not None
    phase_dkernel = _workspace.get("phase_dkernel", kernel.shape, x.dtype) if weights else None
    phase_dbias = _workspace.get("phase_dbias", dbias.shape, x.dtype) if weights else None
    if weights:
        dkernel.fill(0)
        dbias.fill(0)
    if dx is not None:
        dx.fill(0)
    for phase in _dilation_phases(x.shape, kernel.shape, geo):
        phase_dx = None if dx is None else _workspace.get("phase_dx", phase.shape, x.dtype)
        _grouped_backward(_phase_input(x, phase), kernel,
                          np.ascontiguousarray(dy[:, phase.out_rows, phase.out_cols]),
                          phase.geo, groups, phase_dx, phase_dkernel, phase_dbias)
        if weights:
            dkernel += phase_dkernel
            dbias += phase_dbias
        if dx is not None:
            dx[:, phase.x_rows, phase.x_cols] = phase_dx[:, phase.in_rows, phase.in_cols]


def _channel_block(array, channels, name):
    """array[..., channels] copied into a C-contiguous scratch array."""
    block = _workspace.get(name, array[..., channels].shape, array.dtype)
    np.copyto(block, array[..., channels])
    return block


def _grouped_forward(x, kernel, bias, geo, groups, relu, y):
    """y = the undilated convolution of x, one compiled call per group."""
    if groups == 1:
        _forward(x, kernel, bias, geo, relu, y)
        return
    for inputs, outputs in group_channels(kernel.shape, groups):
        group_y = _workspace.get("group_y", y[..., outputs].shape, y.dtype)
        _forward(_channel_block(x, inputs, "group_x"),
                 _channel_block(kernel, outputs, "group_kernel"),
                 None if bias is None else _channel_block(bias, outputs, "group_bias"), geo,
                 relu, group_y)
        y[..., outputs] = group_y


def _grouped_backward(x, kernel, dy, geo, groups, dx, dkernel, dbias):
    """Fills dx, dkernel and dbias (each unless None) for an undilated
    convolution given dy (ReLU already undone), one compiled call per group."""
    if groups == 1:
        _backward(x, kernel, dy, geo, dx, dkernel, dbias)
        return
    for inputs, outputs in group_channels(kernel.shape, groups):
        group_dx = None if dx is None else _workspace.get("group_dx", dx[..., inputs].shape,
                                                          dx.dtype)
        _backward(_channel_block(x, inputs, "group_x"),
                  _channel_block(kernel, outputs, "group_kernel"),
                  _channel_block(dy, outputs, "group_dy"), geo, group_dx,
                  None if dkernel is None else dkernel[..., outputs],
                  None if dbias is None else dbias[outputs])
        if dx is not None:
            dx[..., inputs] = group_dx


def _forward(x, kernel, bias, geo, relu, y):
    """y = the undilated, ungrouped convolution of x (finite kernel)."""
    if bias is not None:
        bias = _padded_channels(bias, "bias")
    threads = _threads_for(y.size * kernel.shape[0] * kernel.shape[1] * kernel.shape[2])
    _compiled_forward(x, _padded_channels(kernel, "kernel"), bias, y, stride_h=geo.stride_h,
                      stride_w=geo.stride_w, dilation_h=1, dilation_w=1, pad_top=geo.pad_top,
                      pad_left=geo.pad_left, relu=relu, threads=threads)


def _compiled_forward(src, weights, bias, out, *, stride_h, stride_w, dilation_h, dilation_w,
                      pad_top, pad_left, relu, threads):
    """_conv.forward on ``threads`` threads (weights and bias padded to whole
    vectors), its scratch rows taken from the workspace."""
    elements = _check_gather(weights.shape, out.shape[2], stride_w, src.shape[3])
    scratch = _workspace.get("gather_rows", (threads, elements), src.dtype)
    _conv.forward(src, weights, bias, out, scratch, stride_h=stride_h, stride_w=stride_w,
                  dilation_h=dilation_h, dilation_w=dilation_w, pad_top=pad_top,
                  pad_left=pad_left, relu=relu, num_threads=threads,
                  flush_denormal=_flush_denormal)


def _check_gather(kernel_shape, out_w, stride_w, channels):
    """The elements of a scratch row of _conv.forward (the rows of input one
    output row reads), checked to be within bounds."""
    elements = _conv.gather_elements(kernel_shape[0], out_w, stride_w, kernel_shape[1], channels)
    check_elements(elements, "the padded input rows of one output row")
    return elements


# The depthwise kernel gradients are summed in GRADIENT_PARTS parts of the
# batch (or one per image, for smaller batches), whatever the thread count,
# and the parts added in order: the result is bit-identical for any thread count.
GRADIENT_PARTS = 16


def _gradient_parts(batch):
    return max(1, min(batch, GRADIENT_PARTS))


# The Conv2D weight gradient's work items: (part of the batch, group of row
# tiles), chosen from the shapes alone (never the thread count): at least
# GRADIENT_ITEMS items where the shapes have them (work for 64 threads), and
# of those splits the one with the least memory traffic.  A row group costs
# reading dy (and the input's channels in its band) once more, from the
# caches.  A batch part beyond the first costs a partial gradient, written,
# read back and added up (PARTIAL_PASSES passes), which leave the caches once
# the partials add up to more than they hold: each of its elements counts
# PARTIAL_COST reads, and when the row tiles alone are too few, the split
# asks only for as many items as repay their partials -- ITEM_WORK_PER_PARTIAL
# multiply-adds an item per element of a partial's traffic -- rounded down to
# a power of two, and at least MIN_GRADIENT_ITEMS.
GRADIENT_ITEMS = 64
MIN_GRADIENT_ITEMS = 4
ITEM_WORK_PER_PARTIAL = 256
PARTIAL_PASSES = 3
PARTIAL_COST = 8


@functools.lru_cache(maxsize=256)
def _gradient_split(batch, in_pixels, channels, out_pixels, rows, channels_out, itemsize):
    """(parts, row_groups) of ``_conv.weight_gradient`` for a batch of
    ``batch`` images of in_pixels x channels (on the padded grid) with
    out_pixels output pixels, and a gradient of rows x channels_out."""
    tiles = _conv.gradient_tiles(rows)
    lanes = _conv.VECTOR_BYTES // itemsize
    co_pad = -(-channels_out // lanes) * lanes
    partial = PARTIAL_PASSES * (rows + 1) * co_pad
    needed = min(GRADIENT_ITEMS, tiles * batch)
    if tiles < needed:
        worth = batch * out_pixels * rows * co_pad // (ITEM_WORK_PER_PARTIAL * partial)
        needed = min(needed, max(MIN_GRADIENT_ITEMS, 1 << max(0, worth.bit_length() - 1)))

    def traffic(split):
        parts, groups = split
        band = min(channels, rows // groups + lanes)
        reads = groups * batch * (in_pixels * band + out_pixels * co_pad)
        return reads + (PARTIAL_COST * parts * partial if parts > 1 else 0)

    splits = []
    for groups in sorted({min(2 ** k, tiles) for k in range(tiles.bit_length() + 1)}):
        parts = min(batch, -(-needed // groups))
        if parts * groups >= needed:
            splits.append((parts, groups))
    return min(splits, key=traffic)


def _rows(array):
    """A 2-D view (rows, last axis) of ``array``: a C-contiguous array, or
    a block of channels of one (its leading axes merge into rows)."""
    view = array.view()
    view.shape = (-1, array.shape[-1])  # raises rather than copy
    return view


def _backward(x, kernel, dy, geo, dx, dkernel, dbias):
    """Fills dkernel, dbias (arrays or views) and dx (C-contiguous), each
    unless None, for an undilated, ungrouped convolution with a finite kernel."""
    kh, kw, cin, cout = kernel.shape
    path = None if dx is None else _input_gradient_path(kernel.shape, dy.shape, geo, x.itemsize)
    if path == "convolution":
        _check_gather((kh, kw), x.shape[2], 1, cout)
    threads = _threads_for(dy.size * kh * kw * cin)
    if dkernel is not None:
        _weight_gradient(x, dy, geo, kh, kw, dkernel, dbias, threads)
    if path is None:
        return
    if path == "pointwise":
        _pointwise_input_gradient(kernel, dy, dx, threads)
        return
    if path == "scatter":
        _scatter_input_gradient(kernel, dy, geo, dx, threads)
        return
    # dx is the convolution of dy, dilated by the strides and padded by
    # (kernel - 1 - padding), with the flipped, transposed kernel.
    flipped = _workspace.get("flipped", (kh, kw, cout, cin), x.dtype)
    np.copyto(flipped, kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    _compiled_forward(dy, _padded_channels(flipped, "flipped_padded"), None, dx, stride_h=1,
                      stride_w=1, dilation_h=geo.stride_h, dilation_w=geo.stride_w,
                      pad_top=kh - 1 - geo.pad_top, pad_left=kw - 1 - geo.pad_left,
                      relu=False, threads=threads)


# An input gradient whose window contributions of one image (OH x OW x KH x
# KW x C) fit in SCATTER_BYTES (a share of a core's L2 cache) is computed
# image by image as those contributions, added up where windows overlap:
# only the products the definition has.  Larger images take the padded
# convolution of dy, whose products with padding (and with the zeros between
# strided gradients) are then a small share; so do 1x1 stride-1 kernels,
# which have none (and whose images may be single pixels: Dense layers).
SCATTER_BYTES = 256 * 1024


def _input_gradient_path(kernel_shape, dy_shape, geo, itemsize):
    """How ``_backward`` computes dx of an undilated, ungrouped convolution
    with a kernel of ``kernel_shape`` (KH, KW, C, CO), output gradient of
    ``dy_shape`` (N, OH, OW, CO) and the strides of ``geo``: "pointwise" (a
    1x1 stride-1 kernel with fewer pixels than weights: dx^T = kernel @
    dy^T), "scatter" (one image's window contributions fit SCATTER_BYTES,
    not 1x1 stride 1: ``_conv.input_gradient``) or "convolution" (the padded
    convolution of dy with the flipped kernel)."""
    kh, kw, cin, cout = kernel_shape
    batch, out_h, out_w = dy_shape[:3]
    if kh == kw == geo.stride_h == geo.stride_w == 1:  # windows of one pixel
        return "pointwise" if batch * out_h * out_w * (cin + cout) < cin * cout else "convolution"
    if _conv.scatter_elements(out_h, out_w, kh, kw, cin) * itemsize <= SCATTER_BYTES:
        return "scatter"
    return "convolution"


def _scatter_input_gradient(kernel, dy, geo, dx, threads):
    """dx (C-contiguous) of an undilated, ungrouped convolution by
    ``_conv.input_gradient``."""
    kh, kw, cin, cout = kernel.shape
    elements = _conv.scatter_elements(dy.shape[1], dy.shape[2], kh, kw, cin)
    transposed = _workspace.get("kernel_t", (1, 1, cout, kh * kw * cin), kernel.dtype)
    np.copyto(transposed[0, 0], kernel.reshape(kh * kw * cin, cout).T)
    scratch = _workspace.get("scatter_rows", (threads, elements), dy.dtype)
    weights = _padded_channels(transposed, "kernel_t_padded")
    _conv.input_gradient(np.ascontiguousarray(dy), weights, dx, scratch, stride_h=geo.stride_h,
                         stride_w=geo.stride_w, pad_top=geo.pad_top, pad_left=geo.pad_left,
                         kernel_h=kh, kernel_w=kw, num_threads=threads,
                         flush_denormal=_flush_denormal)


def _pointwise_input_gradient(kernel, dy, dx, threads):
    """dx = dy @ kernel^T for a 1x1, stride-1 convolution with fewer pixels
    than weights (a Dense layer's): computed transposed, dx^T = kernel @ dy^T,
    as a convolution whose 'image' is the kernel, so that only dy and dx are
    transposed (copied), not the kernel."""
    cin, cout = kernel.shape[2:]
    pixels = dy.shape[0] * dy.shape[1] * dy.shape[2]
    dy_t = _workspace.get("dy_t", (1, 1, cout, pixels), dy.dtype)
    np.copyto(dy_t[0, 0], dy.reshape(pixels, cout).T)
    dx_t = _workspace.get("dx_t", (1, 1, cin, pixels), dy.dtype)
    _compiled_forward(kernel.reshape(1, 1, cin, cout), _padded_channels(dy_t, "dy_t_padded"),
                      None, dx_t, stride_h=1, stride_w=1, dilation_h=1, dilation_w=1,
                      pad_top=0, pad_left=0, relu=False, threads=threads)
    np.copyto(dx.reshape(pixels, cin), dx_t[0, 0].T)


def _weight_gradient(x, dy, geo, kh, kw, dkernel, dbias, threads):
    """dkernel (KH, KW, C, CO), dbias (CO,) = the weight gradients of an
    undilated, ungrouped convolution (both may be views of larger arrays)."""
    batch, height, width, cin = x.shape
    if dy.size == 0:
        dkernel.fill(0)
        dbias.fill(0)
        return
    image = _conv.padded_image_shape(geo.out_h, geo.out_w, geo.stride_h, geo.stride_w, kh, kw,
                                     cin)
    check_elements(math.prod(image), "the padded input image")
    direct = (geo.pad_top == 0 and geo.pad_left == 0 and image[0] <= height
              and image[1] <= width)
    padded = None if direct else _workspace.get("padded_x", (batch,) + image, x.dtype)
    rows = kh * kw * cin
    parts, groups = _gradient_split(batch, image[0] * image[1], cin, geo.out_h * geo.out_w,
                                    rows, dy.shape[3], x.itemsize)
    padded_dy = _padded_channels(dy, "dy")
    partials = None if parts == 1 else _workspace.get(
        "gradient_partials", (parts, rows + 1, padded_dy.shape[3]), x.dtype)
    _conv.weight_gradient(x, padded_dy, _rows(dkernel), dbias, partials, padded,
                          stride_h=geo.stride_h, stride_w=geo.stride_w, pad_top=geo.pad_top,
                          pad_left=geo.pad_left, kernel_h=kh, kernel_w=kw, row_groups=groups,
                          num_threads=threads, flush_denormal=_flush_denormal)


def depthwise_conv2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid",
                             dilation_rate=(1, 1), out=None):
    """Depthwise 2-D convolution: x (N, H, W, C), kernel (KH, KW, C, M),
    bias (C * M,) or None -> y (N, OH, OW, C * M), whose channel c * M + m is
    input channel c convolved with kernel[:, :, c, m] (Keras's order)."""
    x, kernel, geo = check_depthwise_conv2d(x, kernel, strides, padding, dilation_rate)
    kh, kw, channels, multiplier = kernel.shape
    bias = check_bias(bias, kernel, channels * multiplier)
    y = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, channels * multiplier),
                  x.dtype, (x, kernel, bias))
    if not _all_finite(kernel):
        y[...] = reference.depthwise_conv2d_forward(x, kernel, bias, strides, padding,
                                                    dilation_rate)
        return y
    _depthwise.forward(x, kernel, bias, y, stride_h=geo.stride_h, stride_w=geo.stride_w,
                       dilation_h=geo.dilation_h, dilation_w=geo.dilation_w,
                       pad_top=geo.pad_top, pad_left=geo.pad_left,
                       num_threads=_threads_for(y.size * kh * kw),
                       flush_denormal=_flush_denormal)
    return y


def depthwise_conv2d_backward(x, kernel, dy, strides=(1, 1), padding="valid",
                              dilation_rate=(1, 1), compute_dx=True, out=None):
    """Gradients of ``depthwise_conv2d_forward`` given dy = dL/dy (N, OH, OW, C * M).

    Returns (dx, dkernel, dbias) shaped like x, kernel and (C * M,); dx is
    None when ``compute_dx`` is False.  ``out`` may give the three arrays to
    fill (dx may be None).  The kernel gradient is summed in parts over
    contiguous shares of the images, then added up in order: bit-identical
    for any thread count."""
    x, kernel, geo = check_depthwise_conv2d(x, kernel, strides, padding, dilation_rate)
    kh, kw, channels, multiplier = kernel.shape
    width = channels * multiplier
    dy = check_output_gradient(dy, x, width, geo)
    dx_out, dk_out, db_out = (None, None, None) if out is None else out
    dkernel = check_out(dk_out, "out[1] (dkernel)", kernel.shape, x.dtype, (x, kernel, dy))
    dbias = check_out(db_out, "out[2] (dbias)", (width,), x.dtype, (x, kernel, dy, dkernel))
    dx = check_out(dx_out, "out[0] (dx)", x.shape, x.dtype,
                   (x, kernel, dy, dkernel, dbias)) if compute_dx else None
    threads = _threads_for(dy.size * kh * kw)
    parts = _workspace.get("depthwise_parts", (_gradient_parts(x.shape[0]),
                                               (kh * kw + 1) * width), x.dtype)
    parts.fill(0)
    _depthwise.kernel_gradient(x, dy, parts, kernel_h=kh, kernel_w=kw, stride_h=geo.stride_h,
                               stride_w=geo.stride_w, dilation_h=geo.dilation_h,
                               dilation_w=geo.dilation_w, pad_top=geo.pad_top,
                               pad_left=geo.pad_left, num_threads=threads,
                               flush_denormal=_flush_denormal)
    summed = parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
    dkernel[...] = summed[:-width].reshape(kernel.shape)
    dbias[...] = summed[-width:]
    if not _all_finite(dy):
        dkernel[...] = reference.depthwise_conv2d_backward(x, kernel, dy, strides, padding,
                                                           dilation_rate, compute_dx=False)[1]
    if compute_dx:
        _depthwise.input_gradient(kernel, dy, dx, stride_h=geo.stride_h, stride_w=geo.stride_w,
                                  dilation_h=geo.dilation_h, dilation_w=geo.dilation_w,
                                  pad_top=geo.pad_top, pad_left=geo.pad_left,
                                  num_threads=threads, flush_denormal=_flush_denormal)
    return dx, dkernel, dbias


def max_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """2-D max pooling: x (N, H, W, C) -> (N, OH, OW, C); strides default to pool_size."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    y = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, x.shape[3]), x.dtype, (x,))
    return _max_pool2d_forward(x, y, pool_size, geo)


def _max_pool2d_forward(x, y, pool_size, geo):
    """``max_pool2d_forward`` into ``y`` on checked arguments (a trusted
    caller's): ``geo`` the Geometry of x's shape.  Returns y."""
    _pool.forward(x, y, pool_h=pool_size[0], pool_w=pool_size[1], stride_h=geo.stride_h,
                  stride_w=geo.stride_w, pad_top=geo.pad_top, pad_left=geo.pad_left,
                  num_threads=_threads_for(x.size), flush_denormal=_flush_denormal)
    return y


def max_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """Gradient of ``max_pool2d_forward``: dy (N, OH, OW, C) -> dx shaped like x.

    Each window's gradient goes to its first maximal element (row-major)."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    dy = check_output_gradient(dy, x, x.shape[3], geo)
    dx = check_out(out, "out", x.shape, x.dtype, (x, dy))
    return _max_pool2d_backward(x, dy, dx, pool_size, geo)


def _max_pool2d_backward(x, dy, dx, pool_size, geo):
    """``max_pool2d_backward`` into ``dx`` on checked arguments.  Returns dx."""
    _pool.backward(x, dy, dx, pool_h=pool_size[0], pool_w=pool_size[1], stride_h=geo.stride_h,
                   stride_w=geo.stride_w, pad_top=geo.pad_top, pad_left=geo.pad_left,
                   num_threads=_threads_for(x.size), flush_denormal=_flush_denormal)
    return dx


def conv2d_relu_max_pool2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid",
                                   pool_size=(2, 2), out=None):
    """``max_pool2d_forward(conv2d_forward(x, kernel, bias, strides, padding,
    activation='relu'), pool_size)`` in one pass, bit-identical to it: the
    convolution's output is never stored, and its rows and columns that no
    window covers are not computed.

    x (N, H, W, C), kernel (KH, KW, C, CO), bias (CO,) or None; the
    convolution is undilated, with one group; the pooling has strides equal
    to ``pool_size`` and 'valid' padding, its window at most 16 cells.
    Returns (y, winners), both (N, PH, PW, CO): the pooled output and, as
    uint8, the row-major index within its window of the cell each pooled
    value's gradient goes to (its first NaN, else its first maximum), for
    ``relu_max_pool2d_backward``.  ``out`` may give the two arrays to fill.
    """
    x, kernel, conv, pool_size, pool_geo = check_conv2d_relu_max_pool2d_call(
        x, kernel, strides, padding, pool_size)
    bias = check_bias(bias, kernel)
    shape = (x.shape[0], pool_geo.out_h, pool_geo.out_w, kernel.shape[3])
    y_out, winners_out = (None, None) if out is None else out
    y = check_out(y_out, "out[0] (y)", shape, x.dtype, (x, kernel, bias))
    winners = check_out(winners_out, "out[1] (winners)", shape, np.uint8, (x, kernel, bias, y))
    return _conv2d_relu_max_pool2d_forward(x, kernel, bias, y, winners, conv, pool_size)


def _conv2d_relu_max_pool2d_forward(x, kernel, bias, y, winners, conv, pool_size):
    """``conv2d_relu_max_pool2d_forward`` into ``y`` and ``winners`` on
    checked arguments (a trusted caller's): ``conv`` the Conv2DCall of x's
    shape, ``pool_size`` a pair.  Returns (y, winners)."""
    if not _all_finite(kernel):
        reference.conv2d_relu_max_pool2d_forward(x, kernel, bias, conv.strides, conv.padding,
                                                 pool_size, out=(y, winners))
        return y, winners
    geo = conv.geo
    if bias is not None:
        bias = _padded_channels(bias, "bias")
    elements = _conv.relu_max_pool_elements(kernel.shape[0], kernel.shape[1], x.shape[3],
                                            kernel.shape[3], geo.stride_w, pool_size[0],
                                            pool_size[1], y.shape[2])
    check_elements(elements, "the convolution rows under one pooled row")
    macs = y.size * pool_size[0] * pool_size[1] * kernel.shape[0] * kernel.shape[1] * x.shape[3]
    threads = _threads_for(macs)
    scratch = _workspace.get("relu_max_pool", (threads, elements), x.dtype)
    _conv.forward_relu_max_pool(x, _padded_channels(kernel, "kernel"), bias, y, winners,
                                scratch, stride_h=geo.stride_h, stride_w=geo.stride_w,
                                pad_top=geo.pad_top, pad_left=geo.pad_left,
                                pool_h=pool_size[0], pool_w=pool_size[1], num_threads=threads,
                                flush_denormal=_flush_denormal)
    return y, winners


def relu_max_pool2d_backward(dy, y, winners, z_shape, pool_size=(2, 2), out=None):
    """The gradient dz of z under y = max_pool2d(relu(z), pool_size) (strides
    equal to pool_size, 'valid'), given dy = dL/dy, y and the ``winners`` of
    ``conv2d_relu_max_pool2d_forward``: dy at each window's winner where y
    is > 0, zero elsewhere (rows and columns no window covers included).
    z_shape is (N, H, W, C); returns dz of that shape, bit-identical to
    ``max_pool2d_backward`` followed by the ReLU mask."""
    dy, y, winners, z_shape, pool_size, _ = check_relu_max_pool2d_backward(
        dy, y, winners, z_shape, pool_size)
    dz = check_out(out, "out", z_shape, y.dtype, (dy, y, winners))
    return _relu_max_pool2d_backward(dy, y, winners, dz, pool_size)


def _relu_max_pool2d_backward(dy, y, winners, dz, pool_size):
    """``relu_max_pool2d_backward`` into ``dz`` on checked arguments.  Returns dz."""
    _pool.relu_max_pool_backward(dy, y, winners, dz, pool_h=pool_size[0], pool_w=pool_size[1],
                                 num_threads=_threads_for(dz.size),
                                 flush_denormal=_flush_denormal)
    return dz


def conv2d_relu_max_pool2d_backward(x, kernel, dy, y, winners, strides=(1, 1), padding="valid",
                                    pool_size=(2, 2), compute_dx=True, out=None):
    """Gradients (dx, dkernel, dbias) of ``conv2d_relu_max_pool2d_forward``
    given dy = dL/dy and its outputs y and winners: ``relu_max_pool2d_backward``
    gives the convolution's pre-activation gradient, then
    ``conv2d_backward`` runs without activation.  dx is None unless
    ``compute_dx``; ``out`` may give the three arrays to fill."""
    x, kernel, conv, pool_size, _ = check_conv2d_relu_max_pool2d_call(x, kernel, strides,
                                                                      padding, pool_size)
    z_shape = (x.shape[0], conv.geo.out_h, conv.geo.out_w, kernel.shape[3])
    dz = relu_max_pool2d_backward(dy, y, winners, z_shape, pool_size,
                                  out=_workspace.get("relu_max_pool_dz", z_shape, x.dtype))
    return conv2d_backward(x, kernel, dz, strides, padding, compute_dx=compute_dx, out=out)


def avg_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """2-D average pooling: x (N, H, W, C) -> (N, OH, OW, C); strides default
    to pool_size.  A 'same' window averages only its cells inside the input,
    as TensorFlow and Keras do."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    y = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, x.shape[3]), x.dtype, (x,))
    return _avg_pool2d_forward(x, y, pool_size, geo)


def _avg_pool2d_forward(x, y, pool_size, geo):
    """``avg_pool2d_forward`` into ``y`` on checked arguments.  Returns y."""
    threads = _threads_for(y.size * pool_size[0] * pool_size[1])
    _pool.average_forward(x, y, pool_h=pool_size[0], pool_w=pool_size[1],
                          stride_h=geo.stride_h, stride_w=geo.stride_w, pad_top=geo.pad_top,
                          pad_left=geo.pad_left, num_threads=threads,
                          flush_denormal=_flush_denormal)
    return y


def avg_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """Gradient of ``avg_pool2d_forward``: dy (N, OH, OW, C) -> dx shaped like
    x; each window's dy is shared equally among its cells inside the input."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    dy = check_output_gradient(dy, x, x.shape[3], geo)
    dx = check_out(out, "out", x.shape, x.dtype, (x, dy))
    return _avg_pool2d_backward(x, dy, dx, pool_size, geo)


def _avg_pool2d_backward(x, dy, dx, pool_size, geo):
    """``avg_pool2d_backward`` into ``dx`` on checked arguments.  Returns dx."""
    threads = _threads_for(dy.size * pool_size[0] * pool_size[1])
    _pool.average_backward(dy, dx, pool_h=pool_size[0], pool_w=pool_size[1],
                           stride_h=geo.stride_h, stride_w=geo.stride_w, pad_top=geo.pad_top,
                           pad_left=geo.pad_left, num_threads=threads,
                           flush_denormal=_flush_denormal)
    return dx


def __getattr__(name):
    """Keras's ``keras.ops`` functions (``fastconv.keras_ops``, NumPy), served
    here since ``import fastconv as keras`` makes this module ``keras.ops``.
    Looked up on demand rather than imported, so that ``max``, ``min``,
    ``sum`` and ``abs`` do not shadow the builtins this module uses."""
    if name in keras_ops.__all__:
        return getattr(keras_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(keras_ops.__all__))
