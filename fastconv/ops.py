"""Compiled Conv2D and max-pooling kernels (the 'cython' backend).

Activations are NHWC, kernels HWIO (as in Keras); the arrays of one call
share one dtype, float32 or float64.  Every function checks its arguments
here, in Python, and raises ``TypeError``/``ValueError`` naming the bad one
before any compiled code runs.  :mod:`fastconv.reference` has the same
functions in plain NumPy.

``out`` arguments take preallocated, C-contiguous results of the exact
shape and dtype, so that a training loop can reuse its buffers.

The compiled convolution multiplies the weights by the zeros of padding
and of the gaps between strided gradients; with a NaN or Inf weight those
products are NaN where the definition has no product at all, so kernels
holding non-finite weights take the reference's exact path instead.
"""

import collections
import os
import threading

import numpy as np

from . import _conv, _pool, reference
from ._checks import (check_activation, check_activation_output, check_bias, check_conv2d,
                      check_out, check_output_gradient, check_pool)


def _default_threads():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_num_threads = _default_threads()


def set_num_threads(n):
    """Threads the compiled kernels use (default: OMP_NUM_THREADS, else all cores)."""
    global _num_threads
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the thread count must be a positive int, got {n!r}")
    _num_threads = int(n)


def get_num_threads():
    """Threads the compiled kernels use; 1 when fastconv was built without OpenMP."""
    return _num_threads if _conv.OPENMP else 1


def _threads_for(work):
    """Threads worth starting for ``work`` multiply-adds (or elements): one
    per 100,000 at least, so that tiny calls do not pay for a thread team."""
    return max(1, min(get_num_threads(), work // 100_000))


class _Workspace(threading.local):
    """Scratch arrays kept per Python thread and reused by later calls with
    the same shapes, so that a training loop does not pay for fresh
    allocations (and their page faults) on every step.  The most recently
    used ones are kept: ``max_arrays`` of them, ``max_bytes`` in all."""

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
                   out=None):
    """2-D convolution (cross-correlation, as in Keras).

    x (N, H, W, C), kernel (KH, KW, C, CO), bias (CO,) or None;
    activation None/'linear' or 'relu' (fused).  Returns y (N, OH, OW, CO).
    """
    x, kernel, geo = check_conv2d(x, kernel, strides, padding)
    bias = check_bias(bias, kernel)
    relu = check_activation(activation)
    y = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, kernel.shape[3]), x.dtype,
                  (x, kernel, bias))
    if not np.isfinite(kernel).all():
        y[...] = reference.conv2d_forward(x, kernel, bias, strides, padding, activation)
        return y
    if bias is not None:
        bias = _padded_channels(bias, "bias")
    threads = _threads_for(y.size * kernel.shape[0] * kernel.shape[1] * kernel.shape[2])
    _conv.forward(x, _padded_channels(kernel, "kernel"), bias, y, geo.stride_h, geo.stride_w,
                  1, 1, geo.pad_top, geo.pad_left, relu, threads)
    return y


def conv2d_backward(x, kernel, dy, strides=(1, 1), padding="valid", compute_dx=True,
                    activation=None, y=None, out=None):
    """Gradients of ``conv2d_forward`` given dy = dL/dy.

    With activation='relu', dy is the gradient of the activated output and
    ``y`` that output (as conv2d_forward returned it): dy counts where y > 0.
    Returns (dx, dkernel, dbias) shaped like x, kernel and (CO,); dx is None
    when ``compute_dx`` is False (a first layer needs no input gradient).
    ``out`` may give the three arrays to fill (dx may be None).
    """
    x, kernel, geo = check_conv2d(x, kernel, strides, padding)
    kh, kw, cin, cout = kernel.shape
    dy = check_output_gradient(dy, x, cout, geo)
    y = check_activation_output(activation, y, dy)
    dx_out, dk_out, db_out = (None, None, None) if out is None else out
    dkernel = check_out(dk_out, "out[1] (dkernel)", kernel.shape, x.dtype, (x, kernel, dy))
    dbias = check_out(db_out, "out[2] (dbias)", (cout,), x.dtype, (x, kernel, dy, dkernel))
    dx = check_out(dx_out, "out[0] (dx)", x.shape, x.dtype,
                   (x, kernel, dy, dkernel, dbias)) if compute_dx else None
    threads = _threads_for(dy.size * kh * kw * cin)
    if y is not None:
        masked = _workspace.get("relu_dy", dy.shape, dy.dtype)
        _conv.relu_backward(y.reshape(-1), dy.reshape(-1), masked.reshape(-1),
                            _threads_for(dy.size))
        dy = masked

    padded_dy = _padded_channels(dy, "dy")
    parts = _workspace.get("parts", (threads, kh * kw * cin + 1, padded_dy.shape[3]), x.dtype)
    parts.fill(0)
    _conv.weight_gradient(x, padded_dy, parts, geo.stride_h, geo.stride_w, geo.pad_top,
                          geo.pad_left, kh, kw, threads)
    summed = parts[0] if threads == 1 else np.sum(parts, axis=0)
    dkernel[...] = summed[:-1, :cout].reshape(kernel.shape)
    dbias[...] = summed[-1, :cout]

    if not compute_dx:
        return None, dkernel, dbias
    if not np.isfinite(kernel).all():
        dx[...] = reference.conv2d_backward(x, kernel, dy, strides, padding)[0]
        return dx, dkernel, dbias
    # dx is the convolution of dy, dilated by the strides and padded by
    # (kernel - 1 - padding), with the flipped, transposed kernel.
    flipped = _workspace.get("flipped", (kh, kw, cout, cin), x.dtype)
    np.copyto(flipped, kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    _conv.forward(dy, _padded_channels(flipped, "flipped_padded"), None, dx, 1, 1,
                  geo.stride_h, geo.stride_w, kh - 1 - geo.pad_top, kw - 1 - geo.pad_left,
                  False, threads)
    return dx, dkernel, dbias


def max_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """2-D max pooling: x (N, H, W, C) -> (N, OH, OW, C); strides default to pool_size."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    y = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, x.shape[3]), x.dtype, (x,))
    _pool.forward(x, y, pool_size[0], pool_size[1], geo.stride_h, geo.stride_w,
                  geo.pad_top, geo.pad_left, _threads_for(x.size))
    return y


def max_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """Gradient of ``max_pool2d_forward``: dy (N, OH, OW, C) -> dx shaped like x.

    Each window's gradient goes to its first maximal element (row-major)."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    dy = check_output_gradient(dy, x, x.shape[3], geo)
    dx = check_out(out, "out", x.shape, x.dtype, (x, dy))
    _pool.backward(x, dy, dx, pool_size[0], pool_size[1], geo.stride_h, geo.stride_w,
                   geo.pad_top, geo.pad_left, _threads_for(x.size))
    return dx
