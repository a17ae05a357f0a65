"""The one home of argument checks.

Every public kernel runs its arguments through these functions first, so
both backends accept the same inputs and raise the same errors, and the
compiled code only ever sees C-contiguous float32/float64 arrays of sizes
it can index.  Layers, models, optimizers, losses, metrics, callbacks and
datasets check their scalar arguments with ``check_int``, ``check_number``
and ``check_choice``, so one kind of mistake always gets one kind of error.
"""

import math
import numbers
import operator
from collections import namedtuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
ACTIVATIONS = (None, "linear", "relu")
# The most elements of one image (input, output, kernel or a kernel's
# scratch): the kernels index in 64 bits, but a larger image would only
# exhaust memory (2**31 float32 values are 8 GB).
MAX_ELEMENTS = 2**31 - 1

Geometry = namedtuple("Geometry",
                      "out_h out_w stride_h stride_w pad_top pad_left dilation_h dilation_w",
                      defaults=(1, 1))
Geometry.__doc__ = ("Output size, strides, leading padding and kernel dilation of a 2-D "
                    "window operation.")


def as_pair(value, name, allow_zero=False):
    """``value`` as two positive (or, with ``allow_zero``, non-negative) ints;
    an int stands for both (as in Keras)."""
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    pair = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{name} must be integers, got {value!r}")
        try:
            number = operator.index(item)
        except TypeError:
            raise TypeError(f"{name} must be integers, got {value!r}") from None
        if number < (0 if allow_zero else 1):
            raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, "
                             f"got {value!r}")
        if number > MAX_ELEMENTS:
            raise ValueError(f"{name} is too large: {value!r}")
        pair.append(number)
    return tuple(pair)


def check_padding(padding):
    """'valid' or 'same' (any case)."""
    if not isinstance(padding, str):
        raise TypeError(f"padding must be 'valid' or 'same', got {padding!r}")
    mode = padding.lower()
    if mode not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return mode


def check_data_format(data_format):
    """None or 'channels_last' (NHWC, the only layout fastconv runs); returns 'channels_last'."""
    if data_format is None or data_format == "channels_last":
        return "channels_last"
    if data_format == "channels_first":
        raise ValueError("data_format='channels_first' is not supported: fastconv runs NHWC "
                         "(channels_last) images only")
    raise ValueError(f"data_format must be 'channels_last' or 'channels_first', "
                     f"got {data_format!r}")


def check_dilation(strides, dilation_rate):
    """``dilation_rate`` as a pair; as Keras, strides > 1 and dilation > 1 exclude each other."""
    dilation_rate = as_pair(dilation_rate, "dilation_rate")
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                         f"Received: strides={tuple(strides)} and "
                         f"dilation_rate={dilation_rate}")
    return dilation_rate


def dilated_window(window, dilation_rate):
    """The extent (height, width) of a ``window`` whose taps are ``dilation_rate`` apart."""
    return tuple((size - 1) * rate + 1 for size, rate in zip(window, dilation_rate))


def check_activation(activation):
    """None, 'linear' or 'relu'; returns whether ReLU is applied."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None, 'linear' or 'relu', got {activation!r}")
    return activation == "relu"


def as_float_array(value, name, ndim, layout, batched=True):
    """``value`` as a C-contiguous, aligned float32/float64 array of rank ``ndim``.

    Only the first axis of a ``batched`` array may be empty."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {array.shape}")
    sizes = array.shape[1:] if batched else array.shape
    if 0 in sizes:
        raise ValueError(f"{name} has a zero-size dimension: shape {array.shape}")
    if math.prod(sizes) > MAX_ELEMENTS:
        raise ValueError(f"{name} is too large: shape {array.shape}")
    array = np.ascontiguousarray(array)
    return array if array.flags.aligned else array.copy()   # C reads whole elements


def check_elements(count, what):
    """A per-image array (or scratch array) of ``count`` elements is within MAX_ELEMENTS."""
    if count > MAX_ELEMENTS:
        raise ValueError(f"{what} is too large: {count} elements, more than {MAX_ELEMENTS}")


def check_same_dtype(**arrays):
    """All given arrays (None ignored) share one dtype."""
    named = [(name, a) for name, a in arrays.items() if a is not None]
    first_name, first = named[0]
    for name, array in named[1:]:
        if array.dtype != first.dtype:
            raise TypeError(f"{name} is {array.dtype} but {first_name} is {first.dtype}: "
                            "the arrays of one call must share one dtype")


def window_output(size, window, stride, padding, what):
    """(output length, padding before) along one axis, as TensorFlow defines them."""
    if padding == "valid":
        if window > size:
            raise ValueError(f"{what} {window} is larger than the input size {size} "
                             "with padding='valid'")
        return (size - window) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + window - size, 0) // 2


def geometry(x_shape, window, strides, padding, what, out_channels, dilation_rate=(1, 1)):
    """The Geometry of a window (taps ``dilation_rate`` apart) sliding over NHWC ``x_shape``."""
    extent = dilated_window(window, dilation_rate)
    if tuple(dilation_rate) != (1, 1):
        what = f"dilated {what}"
    if max(extent) > MAX_ELEMENTS:
        raise ValueError(f"the {what} {extent} is too large")
    out_h, pad_top = window_output(x_shape[1], extent[0], strides[0], padding, what)
    out_w, pad_left = window_output(x_shape[2], extent[1], strides[1], padding, what)
    if math.prod((out_h, out_w, out_channels)) > MAX_ELEMENTS:
        raise ValueError(f"the output of shape {(out_h, out_w, out_channels)} per image "
                         "is too large")
    return Geometry(out_h, out_w, strides[0], strides[1], pad_top, pad_left, *dilation_rate)


Conv2DCall = namedtuple("Conv2DCall", "strides padding dilation_rate groups geo")
Conv2DCall.__doc__ = ("The checked arguments of a convolution (strides and dilation_rate as "
                      "pairs, padding lower case, groups an int) and its Geometry on one "
                      "input shape: what a trusted caller of the kernels may keep and reuse.")


def check_conv2d_call(x, kernel, strides, padding, dilation_rate=(1, 1), groups=1):
    """Checks the arguments common to the conv kernels; returns (x, kernel, Conv2DCall).

    The kernel is (KH, KW, C / groups, CO): input channels and filters are
    split into ``groups`` blocks, block g of the output seeing block g of x."""
    x, kernel = _images_and_kernel(x, kernel, "HWIO (height, width, in_channels, out_channels)")
    groups = check_int(groups, "groups")
    _check_kernel_channels(x, kernel, groups)
    if kernel.shape[3] % groups:
        raise ValueError(f"the kernel's {kernel.shape[3]} output channels (shape "
                         f"{kernel.shape}) do not split into groups={groups}")
    strides = as_pair(strides, "strides")
    padding = check_padding(padding)
    dilation_rate = check_dilation(strides, dilation_rate)
    geo = geometry(x.shape, kernel.shape[:2], strides, padding, "kernel size", kernel.shape[3],
                   dilation_rate)
    return x, kernel, Conv2DCall(strides, padding, dilation_rate, groups, geo)


def check_conv2d(x, kernel, strides, padding, dilation_rate=(1, 1), groups=1):
    """``check_conv2d_call`` returning (x, kernel, geometry)."""
    x, kernel, call = check_conv2d_call(x, kernel, strides, padding, dilation_rate, groups)
    return x, kernel, call.geo


def group_channels(kernel_shape, groups):
    """(input-channel slice, output-channel slice) of each group of a grouped
    convolution with an HWIO kernel of ``kernel_shape`` (checked by check_conv2d)."""
    cin, cout = kernel_shape[2], kernel_shape[3] // groups
    return [(slice(g * cin, (g + 1) * cin), slice(g * cout, (g + 1) * cout))
            for g in range(groups)]


def check_depthwise_conv2d(x, kernel, strides, padding, dilation_rate):
    """Checks depthwise conv arguments: x (N, H, W, C), kernel (KH, KW, C,
    depth_multiplier); returns (x, kernel, geometry)."""
    x, kernel = _images_and_kernel(x, kernel, "(height, width, in_channels, depth_multiplier)")
    _check_kernel_channels(x, kernel, 1)
    return x, kernel, _kernel_geometry(x, kernel, strides, padding, dilation_rate,
                                       kernel.shape[2] * kernel.shape[3])


def _images_and_kernel(x, kernel, kernel_layout):
    x = as_float_array(x, "x", 4, "NHWC (batch, height, width, channels)")
    kernel = as_float_array(kernel, "kernel", 4, kernel_layout, batched=False)
    check_same_dtype(x=x, kernel=kernel)
    return x, kernel


def _check_kernel_channels(x, kernel, groups):
    """The kernel's input channels, times ``groups``, are x's channels."""
    if kernel.shape[2] * groups != x.shape[3]:
        per_group = "" if groups == 1 else f" x {groups} groups"
        raise ValueError(f"x has {x.shape[3]} channels (shape {x.shape}) but kernel expects "
                         f"{kernel.shape[2]}{per_group} (shape {kernel.shape})")


def _kernel_geometry(x, kernel, strides, padding, dilation_rate, out_channels):
    strides = as_pair(strides, "strides")
    return geometry(x.shape, kernel.shape[:2], strides, check_padding(padding), "kernel size",
                    out_channels, check_dilation(strides, dilation_rate))


def check_bias(bias, kernel, out_channels=None):
    """None, or a (out_channels,) array of the kernel's dtype; ``out_channels``
    defaults to the last axis of the (HWIO) kernel."""
    if bias is None:
        return None
    out_channels = kernel.shape[3] if out_channels is None else out_channels
    bias = as_float_array(bias, "bias", 1, "(out_channels,)", batched=False)
    check_same_dtype(kernel=kernel, bias=bias)
    if bias.shape[0] != out_channels:
        raise ValueError(f"bias has shape {bias.shape} but kernel {kernel.shape} has "
                         f"{out_channels} output channels")
    return bias


def check_pool(x, pool_size, strides, padding):
    """Checks pooling arguments; returns (x, pool_size, geometry)."""
    x = as_float_array(x, "x", 4, "NHWC (batch, height, width, channels)")
    pool_size = as_pair(pool_size, "pool_size")
    strides = pool_size if strides is None else as_pair(strides, "strides")
    geo = geometry(x.shape, pool_size, strides, check_padding(padding), "pool_size",
                   x.shape[3])
    return x, pool_size, geo


# The most cells of a pooling window fused after a convolution (its winners'
# indices are kept as uint8).
MAX_FUSED_POOL_CELLS = 16


def check_fused_pool_size(pool_size):
    """The pool_size (a pair) of a max pooling fused after a ReLU: strides
    equal to it, 'valid', at most MAX_FUSED_POOL_CELLS cells."""
    pool_size = as_pair(pool_size, "pool_size")
    if pool_size[0] * pool_size[1] > MAX_FUSED_POOL_CELLS:
        raise ValueError(f"a fused max pooling window holds at most {MAX_FUSED_POOL_CELLS} "
                         f"cells, got pool_size={pool_size}")
    return pool_size


def check_conv2d_relu_max_pool2d_call(x, kernel, strides, padding, pool_size):
    """Checks the arguments of a ReLU convolution (undilated, one group)
    followed by a max pooling of ``pool_size`` (strides equal to it,
    'valid'); returns (x, kernel, Conv2DCall, pool_size, pool geometry)."""
    x, kernel, call = check_conv2d_call(x, kernel, strides, padding)
    pool_size = check_fused_pool_size(pool_size)
    pool_geo = geometry((x.shape[0], call.geo.out_h, call.geo.out_w), pool_size, pool_size,
                        "valid", "pool_size", kernel.shape[3])
    return x, kernel, call, pool_size, pool_geo


def check_conv2d_relu_max_pool2d(x, kernel, strides, padding, pool_size):
    """``check_conv2d_relu_max_pool2d_call`` returning (x, kernel, conv
    geometry, pool_size, pool geometry)."""
    x, kernel, call, pool_size, pool_geo = check_conv2d_relu_max_pool2d_call(
        x, kernel, strides, padding, pool_size)
    return x, kernel, call.geo, pool_size, pool_geo


def check_relu_max_pool2d_backward(dy, y, winners, z_shape, pool_size):
    """Checks the arguments of the backward pass of max_pool(relu(z)):
    y (N, PH, PW, C) the pooled output, dy its gradient, winners its uint8
    window indices, z_shape (N, H, W, C) relu's input shape; returns (dy, y,
    winners, z_shape, pool_size)."""
    pool_size = check_fused_pool_size(pool_size)
    if not isinstance(z_shape, (tuple, list)) or len(z_shape) != 4:
        raise TypeError(f"z_shape must be a tuple of 4 ints (N, H, W, C), got {z_shape!r}")
    z_shape = tuple(check_int(size, "z_shape", minimum=0 if axis == 0 else 1)
                    for axis, size in enumerate(z_shape))
    check_elements(math.prod(z_shape[1:]), "an image of z_shape")
    pool_geo = geometry(z_shape, pool_size, pool_size, "valid", "pool_size", z_shape[3])
    expected = (z_shape[0], pool_geo.out_h, pool_geo.out_w, z_shape[3])
    y = as_float_array(y, "y", 4, "NHWC (batch, height, width, channels)")
    dy = as_float_array(dy, "dy", 4, "NHWC (batch, height, width, channels)")
    check_same_dtype(dy=dy, y=y)
    if not isinstance(winners, np.ndarray) or winners.dtype != np.uint8:
        raise TypeError(f"winners must be a uint8 numpy array, got "
                        f"{getattr(winners, 'dtype', type(winners).__name__)}")
    winners = np.ascontiguousarray(winners)
    for name, array in (("y", y), ("dy", dy), ("winners", winners)):
        if array.shape != expected:
            raise ValueError(f"{name} must have the pooled shape {expected}, got {array.shape}")
    return dy, y, winners, z_shape, pool_size, pool_geo


def check_output_gradient(dy, x, channels, geo):
    """dy matches the forward output of x: (N, OH, OW, channels)."""
    dy = as_float_array(dy, "dy", 4, "NHWC (batch, height, width, channels)")
    check_same_dtype(x=x, dy=dy)
    expected = (x.shape[0], geo.out_h, geo.out_w, channels)
    if dy.shape != expected:
        raise ValueError(f"dy must have the forward output's shape {expected}, "
                         f"got {dy.shape}")
    return dy


def check_activation_output(activation, y, dy):
    """For a backward pass through ``activation``: None when there is none to
    undo, else the forward's output ``y``, checked against ``dy``."""
    if not check_activation(activation):
        if y is not None:
            raise ValueError("y (the forward output) is only used with activation='relu'")
        return None
    if y is None:
        raise ValueError("activation='relu' needs y, the output of the forward pass")
    y = as_float_array(y, "y", 4, "NHWC (batch, height, width, channels)")
    check_same_dtype(dy=dy, y=y)
    if y.shape != dy.shape:
        raise ValueError(f"y must have dy's shape {dy.shape}, got {y.shape}")
    return y


def check_out(out, name, shape, dtype, inputs=(), allocate=True):
    """A caller-supplied output array: exactly ``shape`` and ``dtype``,
    C-contiguous, aligned, writeable and sharing no memory with ``inputs``.  When
    ``out`` is None: a new array if ``allocate``, else None."""
    if out is None:
        return np.empty(shape, dtype) if allocate else None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not (out.flags.c_contiguous and out.flags.aligned and out.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous, aligned and writeable")
    check_apart(out, name, inputs)
    return out


def check_apart(out, name, inputs):
    """The output array ``out`` shares no memory with any of ``inputs`` (None ignored)."""
    if any(a is not None and np.may_share_memory(out, a) for a in inputs):
        raise ValueError(f"{name} overlaps an input or another output: pass a separate array")


# ---------------------------------------------- scalar arguments of the API


def check_int(value, name, minimum=1, maximum=None):
    """``value`` as an int in [minimum, maximum]: TypeError for a non-integer
    (bools included), ValueError when out of range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")
    return int(value)


def check_number(value, name, low=-np.inf, high=np.inf, low_open=False, high_open=False):
    """``value`` as a float in the interval from low to high (closed unless
    ``low_open``/``high_open``): TypeError for a non-number (bools
    included), ValueError when outside or NaN."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def check_choice(value, name, choices):
    """``value`` when it is one of ``choices`` (ValueError listing them otherwise)."""
    if not any(value == choice and type(value) is type(choice) for choice in choices):
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, "
                         f"got {value!r}")
    return value
