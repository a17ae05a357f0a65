"""Pure-NumPy Conv2D, depthwise conv and pooling kernels (the 'numpy' backend).

Same functions, arguments, checks and results as :mod:`fastconv.ops`; the
test oracle and the benchmark baseline.  Convolution is im2col (a strided
window view, dilated by slicing its taps) followed by one matrix product
per group; depthwise convolution is an einsum over the same view.  The
fused ReLU convolution and max pooling compose the functions here.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import (
    check_activation,
    check_activation_output,
    check_bias,
    check_conv2d,
    check_conv2d_relu_max_pool2d,
    check_depthwise_conv2d,
    check_out,
    check_output_gradient,
    check_pool,
    check_relu_max_pool2d_backward,
    dilated_window,
    group_channels,
)


def _pad(x, window, geo, value=0.0):
    """x padded as TensorFlow's 'same' does (extra row/column at the end) for
    a ``window`` whose taps are geo's dilation apart; unchanged for 'valid'."""
    extent = dilated_window(window, (geo.dilation_h, geo.dilation_w))
    extra_h = max((geo.out_h - 1) * geo.stride_h + extent[0] - x.shape[1], 0)
    extra_w = max((geo.out_w - 1) * geo.stride_w + extent[1] - x.shape[2], 0)
    if extra_h == 0 and extra_w == 0:
        return x
    return np.pad(x, ((0, 0), (geo.pad_top, extra_h - geo.pad_top),
                      (geo.pad_left, extra_w - geo.pad_left), (0, 0)),
                  constant_values=value)


def _windows(padded, window, geo):
    """View (N, OH, OW, KH, KW, C) of the taps of every window of the padded input."""
    view = sliding_window_view(padded, dilated_window(window, (geo.dilation_h, geo.dilation_w)),
                               axis=(1, 2))
    view = view[:, ::geo.stride_h, ::geo.stride_w][:, :geo.out_h, :geo.out_w]
    view = view[..., ::geo.dilation_h, ::geo.dilation_w]
    return view.transpose(0, 1, 2, 4, 5, 3)


def _scatter_windows(values, padded_shape, window, geo):
    """Adjoint of _windows: sums (N, OH, OW, KH, KW, C) window values back
    onto a zero array of ``padded_shape``."""
    total = np.zeros(padded_shape, values.dtype)
    rows = (geo.out_h - 1) * geo.stride_h + 1
    cols = (geo.out_w - 1) * geo.stride_w + 1
    for i in range(window[0]):
        top = i * geo.dilation_h
        for j in range(window[1]):
            left = j * geo.dilation_w
            total[:, top:top + rows:geo.stride_h, left:left + cols:geo.stride_w] += \
                values[:, :, :, i, j]
    return total


def _crop(padded, x_shape, geo):
    return padded[:, geo.pad_top:geo.pad_top + x_shape[1],
                  geo.pad_left:geo.pad_left + x_shape[2]]


def _result(value, out):
    """``value``, written into ``out`` when one is given."""
    if out is None:
        return np.ascontiguousarray(value)
    out[...] = value
    return out


def conv2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid", activation=None,
                   out=None, dilation_rate=(1, 1), groups=1):
    """2-D convolution: x (N, H, W, C), kernel (KH, KW, C / groups, CO) -> (N, OH, OW, CO)."""
    x, kernel, geo = check_conv2d(x, kernel, strides, padding, dilation_rate, groups)
    bias = check_bias(bias, kernel)
    relu = check_activation(activation)
    kh, kw, cin, cout = kernel.shape
    out = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, cout), x.dtype,
                    (x, kernel, bias), allocate=False)
    columns = _windows(_pad(x, (kh, kw), geo), (kh, kw), geo).reshape(-1, kh, kw, x.shape[3])
    y = np.empty((columns.shape[0], cout), x.dtype)
    for inputs, outputs in group_channels(kernel.shape, groups):
        y[:, outputs] = (columns[..., inputs].reshape(len(y), kh * kw * cin)
                         @ kernel[..., outputs].reshape(-1, cout // groups))
    y = y.reshape(x.shape[0], geo.out_h, geo.out_w, cout)
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return _result(y, out)


def conv2d_backward(x, kernel, dy, strides=(1, 1), padding="valid", compute_dx=True,
                    activation=None, y=None, out=None, dilation_rate=(1, 1), groups=1,
                    compute_dkernel=True):
    """Gradients (dx, dkernel, dbias) of conv2d_forward given dy = dL/dy
    (of the activated output y with activation='relu'); dx is None unless
    ``compute_dx``, dkernel and dbias are None unless ``compute_dkernel``."""
    x, kernel, geo = check_conv2d(x, kernel, strides, padding, dilation_rate, groups)
    kh, kw, cin, cout = kernel.shape
    dy = check_output_gradient(dy, x, cout, geo)
    y = check_activation_output(activation, y, dy)
    dx_out, dk_out, db_out = (None, None, None) if out is None else out
    if compute_dkernel:
        dk_out = check_out(dk_out, "out[1] (dkernel)", kernel.shape, x.dtype, (x, kernel, dy),
                           allocate=False)
        db_out = check_out(db_out, "out[2] (dbias)", (cout,), x.dtype, (x, kernel, dy, dk_out),
                           allocate=False)
    if compute_dx:
        dx_out = check_out(dx_out, "out[0] (dx)", x.shape, x.dtype,
                           (x, kernel, dy, dk_out, db_out), allocate=False)
    if y is not None:
        dy = np.where(y > 0, dy, 0)
    padded = _pad(x, (kh, kw), geo)
    dy_rows = dy.reshape(-1, cout)
    columns = _windows(padded, (kh, kw), geo).reshape(-1, kh, kw, x.shape[3])
    dkernel = np.empty(kernel.shape, x.dtype) if compute_dkernel else None
    dcolumns = np.empty(columns.shape, x.dtype) if compute_dx else None
    for inputs, outputs in group_channels(kernel.shape, groups):
        group_columns = columns[..., inputs].reshape(len(dy_rows), kh * kw * cin)
        if compute_dkernel:
            dkernel[..., outputs] = (group_columns.T @ dy_rows[:, outputs]).reshape(
                kh, kw, cin, -1)
        if compute_dx:
            dcolumns[..., inputs] = (dy_rows[:, outputs] @ kernel[..., outputs].reshape(
                -1, cout // groups).T).reshape(-1, kh, kw, cin)
    dx = None
    if compute_dx:
        dcolumns = dcolumns.reshape(x.shape[0], geo.out_h, geo.out_w, kh, kw, x.shape[3])
        dx = _result(_crop(_scatter_windows(dcolumns, padded.shape, (kh, kw), geo), x.shape,
                           geo), dx_out)
    if not compute_dkernel:
        return dx, None, None
    return dx, _result(dkernel, dk_out), _result(dy_rows.sum(axis=0), db_out)


def depthwise_conv2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid",
                             dilation_rate=(1, 1), out=None):
    """Depthwise 2-D convolution: x (N, H, W, C), kernel (KH, KW, C, M) ->
    (N, OH, OW, C * M), output channel c * M + m = channel c convolved with
    kernel[:, :, c, m] (Keras's order); bias (C * M,) or None."""
    x, kernel, geo = check_depthwise_conv2d(x, kernel, strides, padding, dilation_rate)
    kh, kw, channels, multiplier = kernel.shape
    bias = check_bias(bias, kernel, channels * multiplier)
    out = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, channels * multiplier),
                    x.dtype, (x, kernel, bias), allocate=False)
    windows = _windows(_pad(x, (kh, kw), geo), (kh, kw), geo)
    y = np.einsum("nyxijc,ijcm->nyxcm", windows, kernel).reshape(
        x.shape[0], geo.out_h, geo.out_w, channels * multiplier)
    if bias is not None:
        y += bias
    return _result(y, out)


def depthwise_conv2d_backward(x, kernel, dy, strides=(1, 1), padding="valid",
                              dilation_rate=(1, 1), compute_dx=True, out=None):
    """Gradients (dx, dkernel, dbias) of depthwise_conv2d_forward given dy = dL/dy;
    dx is None when ``compute_dx`` is False; ``out`` may give the arrays to fill."""
    x, kernel, geo = check_depthwise_conv2d(x, kernel, strides, padding, dilation_rate)
    kh, kw, channels, multiplier = kernel.shape
    dy = check_output_gradient(dy, x, channels * multiplier, geo)
    dx_out, dk_out, db_out = (None, None, None) if out is None else out
    dk_out = check_out(dk_out, "out[1] (dkernel)", kernel.shape, x.dtype, (x, kernel, dy),
                       allocate=False)
    db_out = check_out(db_out, "out[2] (dbias)", (channels * multiplier,), x.dtype,
                       (x, kernel, dy, dk_out), allocate=False)
    if compute_dx:
        dx_out = check_out(dx_out, "out[0] (dx)", x.shape, x.dtype,
                           (x, kernel, dy, dk_out, db_out), allocate=False)
    padded = _pad(x, (kh, kw), geo)
    dy_split = dy.reshape(dy.shape[:3] + (channels, multiplier))
    if len(x):
        dkernel = np.einsum("nyxijc,nyxcm->ijcm", _windows(padded, (kh, kw), geo), dy_split)
    else:  # numpy's einsum may leave a sum over no images uninitialised
        dkernel = np.zeros(kernel.shape, x.dtype)
    dbias = dy.sum(axis=(0, 1, 2))
    dx = None
    if compute_dx:
        dwindows = np.einsum("nyxcm,ijcm->nyxijc", dy_split, kernel)
        dx = _result(_crop(_scatter_windows(dwindows, padded.shape, (kh, kw), geo), x.shape,
                           geo), dx_out)
    return dx, _result(dkernel, dk_out), _result(dbias, db_out)


def max_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """2-D max pooling: x (N, H, W, C) -> (N, OH, OW, C); padded cells are ignored."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    out = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, x.shape[3]), x.dtype, (x,),
                    allocate=False)
    windows = _windows(_pad(x, pool_size, geo, -np.inf), pool_size, geo)
    return _result(windows.max(axis=(3, 4)), out)


def _max_pool_winners(x, pool_size, geo):
    """(N, OH, OW, C): the row-major index within its window of each window's
    first NaN, else its first maximal cell inside the input."""
    padded = _pad(x, pool_size, geo, -np.inf)
    inside = _pad(np.ones(x.shape[1:3] + (1,), bool)[None], pool_size, geo, False)
    shape = (x.shape[0], geo.out_h, geo.out_w, pool_size[0] * pool_size[1], x.shape[3])
    values = _windows(padded, pool_size, geo).reshape(shape)
    valid = _windows(inside, pool_size, geo).reshape((1,) + shape[1:4] + (1,))
    best = values.max(axis=3, keepdims=True)
    is_best = valid & ((values == best) | (np.isnan(values) & np.isnan(best)))
    return is_best.argmax(axis=3)


def _route_to_winners(dy, winners, x_shape, pool_size, geo):
    """dx of ``x_shape``: each window's dy at the cell its ``winners`` index names."""
    cells = pool_size[0] * pool_size[1]
    routed = np.where(winners[:, :, :, None] == np.arange(cells)[:, None], dy[:, :, :, None], 0)
    routed = routed.reshape(dy.shape[:3] + pool_size + (x_shape[3],))
    padded_shape = _pad(np.empty((1,) + x_shape[1:3] + (1,)), pool_size, geo).shape
    dx = _scatter_windows(routed.astype(dy.dtype, copy=False),
                          (x_shape[0],) + padded_shape[1:3] + (x_shape[3],), pool_size, geo)
    return _crop(dx, x_shape, geo)


def max_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """Gradient of max_pool2d_forward: each window's dy goes to its first
    maximal element in row-major order (its first NaN, if it holds one)."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    dy = check_output_gradient(dy, x, x.shape[3], geo)
    out = check_out(out, "out", x.shape, x.dtype, (x, dy), allocate=False)
    return _result(_route_to_winners(dy, _max_pool_winners(x, pool_size, geo), x.shape,
                                     pool_size, geo), out)


def conv2d_relu_max_pool2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid",
                                   pool_size=(2, 2), out=None):
    """(y, winners) = (max_pool2d_forward(conv2d_forward(..., activation='relu'),
    pool_size), each pooled value's window index of its gradient's cell as uint8)."""
    x, kernel, geo, pool_size, pool_geo = check_conv2d_relu_max_pool2d(x, kernel, strides,
                                                                       padding, pool_size)
    bias = check_bias(bias, kernel)
    shape = (x.shape[0], pool_geo.out_h, pool_geo.out_w, kernel.shape[3])
    y_out, winners_out = (None, None) if out is None else out
    y_out = check_out(y_out, "out[0] (y)", shape, x.dtype, (x, kernel, bias), allocate=False)
    winners_out = check_out(winners_out, "out[1] (winners)", shape, np.uint8,
                            (x, kernel, bias, y_out), allocate=False)
    z = conv2d_forward(x, kernel, bias, strides, padding, activation="relu")
    winners = _max_pool_winners(z, pool_size, pool_geo).astype(np.uint8)
    return (_result(max_pool2d_forward(z, pool_size), y_out), _result(winners, winners_out))


def relu_max_pool2d_backward(dy, y, winners, z_shape, pool_size=(2, 2), out=None):
    """dz of z (z_shape) under y = max_pool2d(relu(z), pool_size): dy at each
    window's winner where y > 0, zero elsewhere."""
    dy, y, winners, z_shape, pool_size, geo = check_relu_max_pool2d_backward(
        dy, y, winners, z_shape, pool_size)
    out = check_out(out, "out", z_shape, y.dtype, (dy, y, winners), allocate=False)
    masked = np.where(y > 0, dy, dy.dtype.type(0))
    return _result(_route_to_winners(masked, winners, z_shape, pool_size, geo), out)


def conv2d_relu_max_pool2d_backward(x, kernel, dy, y, winners, strides=(1, 1), padding="valid",
                                    pool_size=(2, 2), compute_dx=True, out=None):
    """Gradients (dx, dkernel, dbias) of conv2d_relu_max_pool2d_forward given
    dy = dL/dy, y and winners; dx is None unless ``compute_dx``."""
    x, kernel, geo, pool_size, _ = check_conv2d_relu_max_pool2d(x, kernel, strides, padding,
                                                                pool_size)
    dz = relu_max_pool2d_backward(dy, y, winners, (x.shape[0], geo.out_h, geo.out_w,
                                                   kernel.shape[3]), pool_size)
    return conv2d_backward(x, kernel, dz, strides, padding, compute_dx=compute_dx, out=out)


def _window_counts(x_shape, pool_size, geo, dtype):
    """(1, OH, OW, 1): how many cells of each window lie inside the input."""
    inside = _pad(np.ones((1,) + x_shape[1:3] + (1,), dtype), pool_size, geo)
    return _windows(inside, pool_size, geo).sum(axis=(3, 4))


def avg_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """2-D average pooling: x (N, H, W, C) -> (N, OH, OW, C); a 'same' window
    averages only its cells inside the input (as TensorFlow and Keras)."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    out = check_out(out, "out", (x.shape[0], geo.out_h, geo.out_w, x.shape[3]), x.dtype, (x,),
                    allocate=False)
    sums = _windows(_pad(x, pool_size, geo), pool_size, geo).sum(axis=(3, 4))
    return _result(sums / _window_counts(x.shape, pool_size, geo, x.dtype), out)


def avg_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """Gradient of avg_pool2d_forward: each window's dy, divided by its count
    of cells inside the input, added to those cells."""
    x, pool_size, geo = check_pool(x, pool_size, strides, padding)
    dy = check_output_gradient(dy, x, x.shape[3], geo)
    out = check_out(out, "out", x.shape, x.dtype, (x, dy), allocate=False)
    shares = dy / _window_counts(x.shape, pool_size, geo, x.dtype)
    values = np.broadcast_to(shares[:, :, :, None, None], shares.shape[:3] + pool_size
                             + shares.shape[3:])
    padded_shape = _pad(np.empty((1,) + x.shape[1:3] + (1,)), pool_size, geo).shape
    dx = _scatter_windows(values, (x.shape[0],) + padded_shape[1:3] + (x.shape[3],), pool_size,
                          geo)
    return _result(_crop(dx, x.shape, geo), out)
