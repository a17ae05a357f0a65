"""Fuzzer for the kernels of ``fastconv.ops`` (conv2d and max_pool2d forward
and backward, the fused conv2d_relu_max_pool2d forward and backward and
relu_max_pool2d_backward), run as a separate process by
``tests/test_robustness.py`` so that a crash of the interpreter shows up as
a failing return code instead of killing the test run.  CI's sanitizer step
runs it as is: 10,400 calls.

    python tests/helpers/fuzz_kernels.py [--examples N]   # hypothesis fuzzing
    python tests/helpers/fuzz_kernels.py --large          # inputs too large for memory

Every generated call must either return what ``fastconv.reference`` returns
(within a tolerance by dtype, NaNs equal) or raise ValueError, TypeError or
MemoryError, as the reference does.  The fuzzer prints ``CALLS <n>`` (calls
made to ``fastconv.ops``) and ``STATS`` (calls and results per function, and
how often conv2d_backward took each input-gradient path and split its
weight gradient into batch parts), and exits with 1 if any check failed.

The address space is capped (``RLIMIT_AS``, 2 GB above what the process uses
after start-up) so that "more memory than exists" means the same thing on
every machine and an oversized allocation fails with MemoryError rather than
waking the OOM killer.  Environment: ``CI`` makes hypothesis derandomized;
``FUZZ_VERBOSE=1`` prints every call before making it (to find the call
that crashed the interpreter); ``FUZZ_SEED`` fixes the seed of a local run.
"""

import argparse
import faulthandler
import json
import os
import random
import resource
import sys
import traceback
import warnings
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _checks, ops, reference

faulthandler.enable()
warnings.simplefilter("ignore")          # casts of NaN to int, Inf - Inf in the reference
np.seterr(all="ignore")

ALLOWED = (ValueError, TypeError, MemoryError)
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
VERBOSE = os.environ.get("FUZZ_VERBOSE") == "1"
HEADROOM = 2 * 2**30
STATS = Counter()                         # outcomes, printed at the end


def cap_address_space():
    """Limits the address space to the current size plus HEADROOM.  Under
    AddressSanitizer (preloaded), whose shadow memory needs terabytes of
    address space, ASAN_OPTIONS=allocator_may_return_null=1:
    max_allocation_size_mb=2048 bounds allocations instead."""
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        return
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + HEADROOM, size + HEADROOM))


# ------------------------------------------------------------------ describing calls

def describe(value):
    """A short, reproducible description of an argument."""
    if isinstance(value, np.ndarray):
        flags = "".join(f for f, on in [("C", value.flags.c_contiguous),
                                         ("F", value.flags.f_contiguous),
                                         ("W", value.flags.writeable),
                                         ("A", value.flags.aligned)] if on)
        kind = "" if type(value) is np.ndarray else type(value).__name__
        return f"{kind}ndarray{value.shape} {value.dtype} strides={value.strides} [{flags}]"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (np.ndarray, list))
                                                 for v in value):
        inner = ", ".join(describe(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, list):
        return f"list(shape={np.shape(value)})"
    return repr(value)


def describe_call(name, kwargs):
    return f"{name}(" + ", ".join(f"{k}={describe(v)}" for k, v in kwargs.items()) + ")"


# ----------------------------------------------------------------- oracle for pooling

def naive_pool(x, dy, pool_size, strides, padding):
    """Pooling by explicit loops over clipped windows: (y, dx or None).

    Used only where the reference runs out of memory (its padding is
    materialised: pool_size 2**31 - 1 with 'same' pads by 2**30 rows)."""
    x, pool, geo = _checks.check_pool(x, pool_size, strides, padding)
    n, h, w, c = x.shape
    y = np.empty((n, geo.out_h, geo.out_w, c), x.dtype)
    dx = None if dy is None else np.zeros(x.shape, x.dtype)
    for oh in range(geo.out_h):
        top = oh * geo.stride_h - geo.pad_top
        rows = slice(max(top, 0), min(top + pool[0], h))
        for ow in range(geo.out_w):
            left = ow * geo.stride_w - geo.pad_left
            cols = slice(max(left, 0), min(left + pool[1], w))
            window = x[:, rows, cols, :]
            y[:, oh, ow] = window.max(axis=(1, 2))
            if dx is None:
                continue
            flat = window.reshape(n, window.shape[1] * window.shape[2], c)
            nan = np.isnan(flat)
            first = np.where(nan.any(axis=1), nan.argmax(axis=1), flat.argmax(axis=1))
            for b in range(n):
                for ch in range(c):
                    r, q = divmod(int(first[b, ch]), cols.stop - cols.start)
                    dx[b, rows.start + r, cols.start + q, ch] += dy[b, oh, ow, ch]
    return y, dx


# ------------------------------------------------------------------- checking a call

def small_arrays(kwargs):
    """(name, array, copy) of the ndarray inputs small enough to copy."""
    return [(k, v, v.copy()) for k, v in kwargs.items()
            if isinstance(v, np.ndarray) and v.size <= 10**6 and v.dtype != object]


def finite_scale(*arrays):
    """Largest finite magnitude in the arrays (0 if none)."""
    scale = 0.0
    for a in arrays:
        if isinstance(a, np.ndarray) and a.size:
            finite = a[np.isfinite(a)]
            if finite.size:
                scale = max(scale, float(np.max(np.abs(finite))))
    return scale


def assert_same(got, want, what, exact=False, scale=None, factor=1.0):
    """got matches want: same structure, shape, dtype; values within
    TOLERANCE * scale * factor (scale: of ``want`` unless given), or equal
    when ``exact``; NaNs equal."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: got {got!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{what}[{i}]", exact, scale, factor)
        return
    if want is None:
        assert got is None, f"{what}: expected None, got {describe(got)}"
        return
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    exact = exact or want.dtype.kind in "biu"               # winners: indices, not values
    scale = finite_scale(want) if scale is None else scale
    atol = 0.0 if exact else TOLERANCE[want.dtype] * scale * factor
    np.testing.assert_allclose(got, want, rtol=0, atol=atol, equal_nan=True,
                               err_msg=what)


def check_call(name, kwargs, make_out=None):
    """Calls ops.<name> and reference.<name> on the same arguments (each with a
    fresh ``out`` from make_out) and checks they agree as the contract says."""
    call = describe_call(name, kwargs)
    out_ops = make_out() if make_out else None
    if make_out:
        call += f" out={describe(out_ops)}"
    if VERBOSE:
        print("CALL", call, flush=True)
    inputs = small_arrays(kwargs)
    STATS["calls"] += 1
    STATS["calls " + name] += 1
    extra = {} if make_out is None else {"out": out_ops}
    try:
        got, got_error = getattr(ops, name)(**kwargs, **extra), None
    except Exception as error:                              # noqa: BLE001 - judged below
        got, got_error = None, error
    if got_error is not None and not isinstance(got_error, ALLOWED):
        raise AssertionError(f"ops raised {type(got_error).__name__}: {got_error}\n"
                             f"call: {call}") from got_error
    for arg, array, before in inputs:
        assert np.array_equal(array, before, equal_nan=True), f"ops modified {arg}: {call}"

    extra = {} if make_out is None else {"out": make_out()}
    try:
        want, want_error = getattr(reference, name)(**kwargs, **extra), None
    except Exception as error:                              # noqa: BLE001
        want, want_error = None, error
    if want_error is not None and not isinstance(want_error, ALLOWED):
        raise AssertionError(f"reference raised {type(want_error).__name__}: {want_error}\n"
                             f"call: {call}") from want_error

    if got_error is not None:
        assert want_error is not None, (
            f"ops raised {type(got_error).__name__}: {got_error} but the reference "
            f"returned a result\ncall: {call}")
        STATS["raised " + type(got_error).__name__] += 1
        return
    if want_error is not None and rejected_by_checks(want_error):
        raise AssertionError(f"ops returned but the reference raised "
                             f"{type(want_error).__name__}: {want_error}\ncall: {call}")
    if want_error is not None:              # the reference could not compute the answer
        want = naive_result(name, kwargs, got)
        STATS["checked by the naive oracle" if want is not None else "unverified"] += 1
        if want is None:
            return
    else:
        STATS["returned"] += 1
        STATS["returned " + name] += 1
    try:
        assert_same(got, want, name, exact=(name == "max_pool2d_forward"))
        if isinstance(out_ops, np.ndarray):
            assert got is out_ops, "the result is not the out buffer"
        elif isinstance(out_ops, tuple):
            for g, o in zip(got, out_ops):
                assert o is None or g is None or g is o, "a result is not its out buffer"
    except AssertionError as error:
        raise AssertionError(f"{error}\ncall: {call}") from None


def rejected_by_checks(error):
    """Whether ``error`` came from the shared argument checks (the arguments are
    invalid), not from the reference running out of memory or hitting a NumPy
    limit while it computes an answer to valid arguments."""
    if isinstance(error, MemoryError):
        return False
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _checks.__file__:
            return True
        tb = tb.tb_next
    return False


def naive_result(name, kwargs, got):
    """The naive pooling oracle's answer, when it applies (small x)."""
    x = kwargs["x"]
    if not name.startswith("max_pool") or np.asarray(x).size > 10**4:
        return None
    args = (kwargs["pool_size"], kwargs["strides"], kwargs["padding"])
    if name == "max_pool2d_forward":
        return naive_pool(x, None, *args)[0]
    return naive_pool(x, np.asarray(kwargs["dy"]), *args)[1]


# --------------------------------------------------------------------- generated data

FLOATS = [np.float32, np.float64]
BAD_DTYPES = [np.int32, np.int64, np.float16, np.bool_, object, np.complex64,
              np.complex128, np.longdouble, np.dtype(">f8"), np.dtype(">f4"), np.uint8]
GOOD_STRIDES = [1, 2, 3, (1, 2), (3, 1), [2, 2], (np.int64(2), 1), np.int32(1), 2**31 - 1,
                (1, 2**31 - 1)]
BAD_STRIDES = [0, -1, (1, 0), (-2, 1), 2**31, 2**40, (1, 2**31), (2**40, 2**40), 10**30,
               -(2**31), np.uint64(2**63), 1.5, (1, 2.0), "2", None, True, (True, 1), (),
               (1,), (1, 2, 3), [1, None], np.float64(2), float("nan"), np.array([1, 2])]
GOOD_PADDINGS = ["valid", "same", "VALID", "Same"]
BAD_PADDINGS = ["full", "", " same", "causal", None, 1, b"valid", ["same"]]
GOOD_POOLS = [1, 2, 3, (2, 1), (1, 3), (3, 2), [2, 2], np.int64(2), 2**31 - 1, (1, 2**31 - 1)]
BAD_POOLS = BAD_STRIDES
ACTIVATIONS = [None, "linear", "relu", "relu"]
BAD_ACTIVATIONS = ["sigmoid", "RELU", "", 0, True]
# Virtual shapes for np.broadcast_to: rejected as too large per image, or
# (batch and all) needing far more memory than the capped address space.
HUGE_SHAPES = [(1, 100000, 100000, 64), (10**7, 28, 28, 32), (2**34, 1, 1, 1),
               (1, 2**31, 1, 1), (1, 1, 2**40, 1), (1, 46340, 46340, 1),
               (2**20, 2**20, 2**19, 1), (0, 100000, 100000, 64), (0, 4000, 4000, 3)]
HUGE_KERNELS = [(1, 1, 1, 2**31), (46341, 46341, 1, 1), (1, 1, 1, 2**30), (2**31, 1, 1, 1),
                (2**40, 1, 1, 1), (3, 3, 2**31, 1)]


class Sub(np.ndarray):
    """An ndarray subclass (the kernels must treat it as a plain array)."""


def every_other(a):
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = big[(slice(None, None, 2),) * a.ndim]
    view[...] = a
    return view


def reversed_all(a):
    flip = (slice(None, None, -1),) * a.ndim
    return np.ascontiguousarray(a[flip])[flip]


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def unaligned(a):
    if a.dtype == object or a.dtype.itemsize == 1:
        return a
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def batch_broadcast(a):
    """Every image the first one, with a zero stride on the batch axis."""
    return np.broadcast_to(a[:1], a.shape) if a.ndim and a.shape[0] else a


LAYOUTS = {
    "fortran": np.asfortranarray,
    "every_other": every_other,
    "reversed": reversed_all,
    "read_only": read_only,
    "unaligned": unaligned,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "broadcast": batch_broadcast,
    "subclass": lambda a: a.view(Sub),
    "list": lambda a: a.tolist() if a.size <= 200 else a,
}


def values(rng, shape, dtype, kind):
    """Random data: 0 normal, 1 small integers (ties), 2 normal with NaN/+-Inf."""
    a = rng.integers(-2, 3, shape).astype(float) if kind == 1 else rng.standard_normal(shape)
    if kind == 2:
        where = rng.random(shape) < 0.1
        a[where] = rng.choice([np.nan, np.inf, -np.inf], int(where.sum()))
    return a.astype(dtype)


@st.composite
def variant(draw, a, huge_shapes):
    """``a`` itself (mostly), or in an odd layout, with a wrong dtype, rank or
    zero-size dimension, or broadcast to a huge virtual shape."""
    k = draw(st.integers(0, 99))
    if k < 55:
        return a
    if k < 82:
        return LAYOUTS[draw(st.sampled_from(sorted(LAYOUTS)))](a)
    if k < 89:
        dtype = draw(st.sampled_from(BAD_DTYPES + FLOATS))
        return a.astype(dtype)
    if k < 93:
        how = draw(st.integers(0, 3))
        if how == 0 or a.ndim == 0:
            return a[..., None]
        if how == 1 and a.shape[0]:
            return a[0]
        return a.reshape(-1) if how == 2 else np.asarray(a.reshape(-1)[:1].sum())
    if k < 96:
        shape = list(a.shape)
        shape[draw(st.integers(0, len(shape) - 1))] = 0
        return np.zeros(shape, a.dtype)
    shape = draw(st.sampled_from(huge_shapes))
    return np.broadcast_to(np.ones((1,) * len(shape), a.dtype), shape)


def pick(draw, good, bad, bad_percent=8):
    """A good value, or a bad one bad_percent% of the time."""
    return draw(st.sampled_from(bad if draw(st.integers(0, 99)) < bad_percent else good))


def out_size(size, window, stride, padding):
    if str(padding).lower() == "same":
        return -(-size // stride)
    return max((size - window) // stride + 1, 1)


def pair(value, default):
    """Two Python ints from a good size argument, else ``default``."""
    try:
        items = value if isinstance(value, (tuple, list)) else (value, value)
        result = tuple(int(v) for v in items)
    except (TypeError, ValueError, OverflowError):
        return default
    return result if len(result) == 2 and min(result) > 0 else default


@st.composite
def out_buffer(draw, shape, dtype):
    """A factory of ``out``: None, a right buffer (NaN-filled; 255 for winners),
    or a wrong one."""
    fill = 255 if np.dtype(dtype) == np.uint8 else np.nan
    k = draw(st.integers(0, 99))
    if k < 65:
        return None
    if k < 82:
        return lambda: np.full(shape, fill, dtype)
    if k < 88:                                   # right, inside a bigger array
        return lambda: np.full((shape[0] + 2,) + shape[1:], fill, dtype)[1:-1]
    wrong = draw(st.sampled_from(["dtype", "shape", "strided", "fortran", "read_only",
                                  "list", "broadcast", "unaligned"]))
    bad_shape = shape[:-1] + (shape[-1] + 1,)
    makers = {
        "dtype": lambda: np.zeros(shape, np.float32 if dtype == np.float64 else np.float64),
        "shape": lambda: np.zeros(bad_shape, dtype),
        "strided": lambda: np.zeros(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2],
        "fortran": lambda: np.zeros(shape, dtype, order="F"),
        "read_only": lambda: read_only(np.zeros(shape, dtype)),
        "list": lambda: np.zeros(shape, dtype).tolist(),
        "broadcast": lambda: np.broadcast_to(np.zeros(1, dtype), shape),
        "unaligned": lambda: unaligned(np.full(shape, fill, dtype)),
    }
    return makers[wrong]


# One-channel rows of about 2**16 pixels under 'same' kernels about 2**15
# rows tall (or just over 2**31 bytes' worth): small arrays whose padded
# images hold about 2**31 elements or bytes, products that wrapped around in
# C ints.  The kernels and the reference both run out of memory (or reject).
TALL_WIDTHS = [65535, 65536, 65537]
TALL_HEIGHTS = {np.float32: [32767, 32768, 32769, 8193, 8194],
                np.float64: [32767, 32768, 32769, 4097, 4098]}


@st.composite
def tall_kernel_calls(draw):
    """conv2d_forward and conv2d_backward of a (1, 1, W, 1) image with a
    (KH, 1, 1, 1) kernel, 'same': the kernels' scratch sizes lie near 2**31
    elements or bytes.  Each raises ValueError (too large) or MemoryError."""
    dtype = draw(st.sampled_from(FLOATS))
    width, height = draw(st.sampled_from(TALL_WIDTHS)), draw(st.sampled_from(TALL_HEIGHTS[dtype]))
    x = np.ones((1, 1, width, 1), dtype)
    kernel = np.ones((height, 1, 1, 1), dtype)
    common = dict(x=x, kernel=kernel, strides=1, padding="same")
    return draw(st.integers(1, 3)), [
        ("conv2d_forward", dict(common, bias=None, activation=None), None),
        ("conv2d_backward", dict(common, dy=np.ones_like(x),
                                 compute_dx=draw(st.booleans())), None)]


@st.composite
def conv_shapes(draw, rng):
    """(batch, h, w, cin, cout, kh, kw, strides) of a convolution: mostly small
    random shapes; 30% a 1x1 stride-1 kernel on few pixels and many channels
    (the pointwise input gradient); 15% an image too large for the scattered
    input gradient (the convolution of dy); batches up to 6, so that the
    weight gradient is split into several parts of the batch."""
    # from the rng, as hypothesis's own draws here came out strongly skewed
    regime = rng.choice(["pointwise", "large", "small"], p=[0.3, 0.15, 0.55])
    if regime == "pointwise":
        return (draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 3)),
                draw(st.sampled_from([17, 23, 33, 40])), draw(st.sampled_from([17, 24, 35])),
                1, 1, 1)
    if regime == "large":
        return (draw(st.integers(1, 2)), draw(st.integers(16, 21)), draw(st.integers(16, 21)),
                draw(st.sampled_from([19, 29, 31])), draw(st.integers(1, 5)),
                draw(st.integers(2, 3)), draw(st.integers(2, 3)), draw(st.sampled_from([1, 1, 2])))
    return (draw(st.integers(0, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 12)),
            draw(st.integers(1, 5)), draw(st.sampled_from([1, 2, 3, 5, 8, 9, 16, 17, 32, 33])),
            draw(st.integers(1, 4)), draw(st.integers(1, 4)),
            pick(draw, GOOD_STRIDES, BAD_STRIDES))


@st.composite
def conv_calls(draw):
    """A conv2d_forward and a conv2d_backward call on shared random arrays
    (2% of them: tall_kernel_calls)."""
    if draw(st.integers(0, 99)) < 2:
        return draw(tall_kernel_calls())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from(FLOATS))
    batch, h, w, cin, cout, kh, kw, strides = draw(conv_shapes(rng))
    kcin = cin + 1 if draw(st.integers(0, 99)) < 3 else cin       # mismatched channels
    padding = pick(draw, GOOD_PADDINGS, BAD_PADDINGS)
    kind = draw(st.integers(0, 2))
    x = values(rng, (batch, h, w, cin), dtype, kind)
    kernel = values(rng, (kh, kw, kcin, cout), dtype, draw(st.sampled_from([0, 0, 0, 2])))
    bias = values(rng, (cout,), dtype, draw(st.sampled_from([0, 0, 0, 2]))) \
        if draw(st.booleans()) else None
    sh, sw = pair(strides, (1, 1))
    out_shape = (batch, out_size(h, kh, sh, padding), out_size(w, kw, sw, padding), cout)
    dy = values(rng, out_shape, dtype, draw(st.sampled_from([0, 0, 0, 2])))
    if draw(st.integers(0, 99)) < 4:                             # dy of a wrong shape
        axis = draw(st.integers(0, 3))
        dy = values(rng, tuple(s + (i == axis) for i, s in enumerate(dy.shape)), dtype, 0)
    x = draw(variant(x, HUGE_SHAPES))
    kernel = draw(variant(kernel, HUGE_KERNELS))
    if bias is not None:
        bias = draw(variant(bias, [(2**31,), (2**30,), (2**40,)]))
    dy = draw(variant(dy, HUGE_SHAPES))
    forward = dict(x=x, kernel=kernel, bias=bias, strides=strides, padding=padding,
                   activation=pick(draw, ACTIVATIONS, BAD_ACTIVATIONS, 4))
    compute_dx = draw(st.sampled_from([True, True, False, 0, None]))
    backward = dict(x=x, kernel=kernel, dy=dy, strides=strides, padding=padding,
                    compute_dx=compute_dx)
    forward_out = draw(out_buffer(out_shape, dtype))
    k = draw(st.integers(0, 99))
    if k < 70:
        backward_out = None
    else:
        parts = [draw(out_buffer((batch, h, w, cin), dtype)),
                 draw(out_buffer((kh, kw, cin, cout), dtype)),
                 draw(out_buffer((cout,), dtype))]
        if k > 96:
            parts = parts[:2]                                    # a tuple of the wrong length

        def backward_out():
            return tuple(None if p is None else p() for p in parts)
    threads = draw(st.integers(1, 3))
    return threads, [("conv2d_forward", forward, forward_out),
                     ("conv2d_backward", backward, backward_out)]


@st.composite
def pool_calls(draw):
    """A max_pool2d_forward and a max_pool2d_backward call on shared random arrays."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from(FLOATS))
    batch, h, w = draw(st.integers(0, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    channels = draw(st.integers(1, 6))
    pool_size = pick(draw, GOOD_POOLS, BAD_POOLS)
    strides = draw(st.one_of(st.none(), st.just("pick")))
    strides = None if strides is None else pick(draw, GOOD_STRIDES, BAD_STRIDES)
    padding = pick(draw, GOOD_PADDINGS, BAD_PADDINGS)
    x = values(rng, (batch, h, w, channels), dtype, draw(st.integers(0, 2)))
    ph, pw = pair(pool_size, (1, 1))
    sh, sw = pair(strides, (ph, pw)) if strides is not None else (ph, pw)
    out_shape = (batch, out_size(h, ph, sh, padding), out_size(w, pw, sw, padding), channels)
    dy = values(rng, out_shape, dtype, draw(st.sampled_from([0, 0, 0, 2])))
    if draw(st.integers(0, 99)) < 4:
        axis = draw(st.integers(0, 3))
        dy = values(rng, tuple(s + (i == axis) for i, s in enumerate(dy.shape)), dtype, 0)
    x = draw(variant(x, HUGE_SHAPES))
    dy = draw(variant(dy, HUGE_SHAPES))
    common = dict(pool_size=pool_size, strides=strides, padding=padding)
    threads = draw(st.integers(1, 3))
    return threads, [
        ("max_pool2d_forward", dict(x=x, **common), draw(out_buffer(out_shape, dtype))),
        ("max_pool2d_backward", dict(x=x, dy=dy, **common),
         draw(out_buffer((batch, h, w, channels), dtype))),
    ]


GOOD_FUSED_POOLS = [2, (2, 2), 1, 3, (2, 3), (3, 1), (4, 4), (1, 16), [2, 1], np.int64(2)]
BAD_FUSED_POOLS = [(4, 5), 5, (17, 1), (1, 17), 2**31 - 1, 0, (2, 0), -1, 1.5, None, "2",
                   (2, 2, 2), 64]                        # over 16 cells, or not a size
BAD_WINNERS = {
    "int64": lambda w: w.astype(np.int64),
    "float": lambda w: w.astype(np.float32),
    "int8": lambda w: w.astype(np.int8),
    "list": lambda w: w.tolist(),
    "shape": lambda w: np.zeros(w.shape[:-1] + (w.shape[-1] + 1,), np.uint8),
    "rank": lambda w: w[0] if w.shape[0] else w[..., None],
    "strided": every_other,
    "fortran": np.asfortranarray,
    "out of range": lambda w: np.full(w.shape, 255, np.uint8),
}


@st.composite
def fused_calls(draw):
    """A conv2d_relu_max_pool2d_forward, a relu_max_pool2d_backward and a
    conv2d_relu_max_pool2d_backward call on shared random arrays; the
    backward calls get the reference's y and winners (mostly)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from(FLOATS))
    batch = draw(st.integers(0, 4))
    cin = draw(st.sampled_from([1, 2, 3, 5, 17]))
    cout = draw(st.sampled_from([1, 2, 3, 5, 8, 9, 17, 33]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = pick(draw, [1, 2, 3, (1, 2), (3, 1), [2, 3]], BAD_STRIDES, 5)
    padding = pick(draw, GOOD_PADDINGS, BAD_PADDINGS, 5)
    pool_size = pick(draw, GOOD_FUSED_POOLS, BAD_FUSED_POOLS)
    sh, sw = pair(strides, (1, 1))
    ph, pw = pair(pool_size, (2, 2))
    if draw(st.integers(0, 99)) < 90:       # images that one pooling window fits in, odd sizes
        h = (min(ph, 16) - 1) * min(sh, 3) + kh + draw(st.integers(0, 5))
        w = (min(pw, 16) - 1) * min(sw, 3) + kw + draw(st.integers(0, 5))
    else:
        h, w = draw(st.integers(1, 11)), draw(st.integers(1, 13))
    x = values(rng, (batch, h, w, cin), dtype, draw(st.integers(0, 2)))
    kernel = values(rng, (kh, kw, cin, cout), dtype, draw(st.sampled_from([0, 0, 0, 1, 2])))
    bias = values(rng, (cout,), dtype, draw(st.sampled_from([0, 0, 1, 2]))) \
        if draw(st.booleans()) else None
    z_shape = (batch, out_size(h, kh, sh, padding), out_size(w, kw, sw, padding), cout)
    pooled = (batch, max(z_shape[1] // ph, 1), max(z_shape[2] // pw, 1), cout)
    try:
        y, winners = reference.conv2d_relu_max_pool2d_forward(x, kernel, bias, strides,
                                                              padding, pool_size)
    except ALLOWED:
        y = values(rng, pooled, dtype, 0)
        winners = rng.integers(0, ph * pw, pooled).astype(np.uint8)
    dy = values(rng, y.shape, dtype, draw(st.sampled_from([0, 0, 0, 2])))
    if draw(st.integers(0, 99)) < 6:
        winners = BAD_WINNERS[draw(st.sampled_from(sorted(BAD_WINNERS)))](winners)
    shapes = x.shape, kernel.shape, y.shape
    if draw(st.booleans()):                                 # else all arrays as made
        x, kernel, dy, y = (draw(variant(a, HUGE_SHAPES)) for a in (x, kernel, dy, y))
        if bias is not None:
            bias = draw(variant(bias, [(2**31,)]))
    common = dict(strides=strides, padding=padding, pool_size=pool_size)
    x_shape, kernel_shape, y_shape = shapes
    y_out, winners_out = (draw(out_buffer(y_shape, dtype)),
                          draw(out_buffer(y_shape, np.uint8)))
    forward_out = None if y_out is None and winners_out is None else (
        lambda: (None if y_out is None else y_out(),
                 None if winners_out is None else winners_out()))
    k = draw(st.integers(0, 99))
    backward_out = None
    if k >= 75:
        parts = [draw(out_buffer(x_shape, dtype)), draw(out_buffer(kernel_shape, dtype)),
                 draw(out_buffer((cout,), dtype))]

        def backward_out():
            return tuple(None if p is None else p() for p in parts)
    z_arg = z_shape if draw(st.integers(0, 99)) < 95 else draw(
        st.sampled_from([z_shape[:3], list(z_shape), (batch, 0, 1, cout), None,
                         (batch, z_shape[1] + 1, z_shape[2], cout), (batch, 2**31, 1, cout)]))
    return draw(st.integers(1, 3)), [
        ("conv2d_relu_max_pool2d_forward",
         dict(x=x, kernel=kernel, bias=bias, **common), forward_out),
        ("relu_max_pool2d_backward",
         dict(dy=dy, y=y, winners=winners, z_shape=z_arg, pool_size=pool_size),
         draw(out_buffer(z_shape, dtype))),
        ("conv2d_relu_max_pool2d_backward",
         dict(x=x, kernel=kernel, dy=dy, y=y, winners=winners, **common,
              compute_dx=draw(st.sampled_from([True, True, False]))), backward_out),
    ]


def count_paths():
    """Counts in STATS the input-gradient path and the weight gradient's
    split into batch parts that each compiled conv2d_backward takes."""
    path, split = ops._input_gradient_path, ops._gradient_split

    def counted_path(*args):
        result = path(*args)
        STATS["input gradient " + result] += 1
        return result

    def counted_split(*args):
        parts, groups = split(*args)
        STATS["weight gradient in " + ("1 part" if parts == 1 else "parts > 1")] += 1
        STATS["weight gradient in row groups > 1"] += groups > 1
        return parts, groups

    ops._input_gradient_path, ops._gradient_split = counted_path, counted_split


def run_calls(threads, calls):
    fastconv.set_num_threads(threads)
    for name, kwargs, make_out in calls:
        check_call(name, kwargs, make_out)


def fuzz(examples):
    """Runs the conv and pool fuzzers (``examples`` each) and the fused
    conv-ReLU-pool fuzzer (2/5 as many); returns the number of failed ones."""
    options = dict(max_examples=examples, deadline=None, database=None,
                   derandomize=bool(os.environ.get("CI")),
                   suppress_health_check=list(HealthCheck), print_blob=True)
    run_seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    if not options["derandomize"]:
        print(f"seed {run_seed} (rerun with FUZZ_SEED={run_seed})", flush=True)
    failures = 0
    fused_examples = 2 * examples // 5                      # three calls each, dearer ones
    for strategy, count in [(conv_calls(), examples), (pool_calls(), examples),
                            (fused_calls(), fused_examples)]:
        @settings(**dict(options, max_examples=count))
        @given(case=strategy)
        def test(case):
            run_calls(*case)
        if not options["derandomize"]:
            test = seed(run_seed)(test)
        try:
            test()
        except Exception:                                   # noqa: BLE001 - reported
            failures += 1
            traceback.print_exc()
    return failures


# --------------------------------------------------------------------- large inputs

def huge(shape, dtype=np.float32):
    """A read-only zero-stride array of a huge virtual shape."""
    return np.broadcast_to(np.zeros((1,) * len(shape), dtype), shape)


def large_cases():
    """(name, function, kwargs): calls whose arrays or results cannot fit in memory."""
    f32 = np.float32
    batch = (10**7, 28, 28, 32)            # 1 TB as float32
    k = np.ones((3, 3, 32, 8), f32)
    small_x = np.zeros((1000, 28, 28, 1), f32)
    wide = np.ones((1, 1, 1, 2**20), f32)  # -> output of 1000 x 28 x 28 x 2**20 floats
    row = np.ones((1, 1, 65536, 1), f32)
    return [
        ("conv_forward_huge_batch", "conv2d_forward", dict(x=huge(batch), kernel=k)),
        ("conv_forward_huge_batch_f64", "conv2d_forward",
         dict(x=huge(batch, np.float64), kernel=k.astype(np.float64), padding="same")),
        ("conv_forward_huge_output", "conv2d_forward", dict(x=small_x, kernel=wide)),
        ("conv_forward_huge_output_per_image", "conv2d_forward",
         dict(x=np.zeros((1, 28, 28, 1), f32), kernel=np.ones((1, 1, 1, 2**22), f32))),
        ("conv_backward_huge_batch", "conv2d_backward",
         dict(x=huge(batch), kernel=k, dy=huge((10**7, 26, 26, 8)))),
        ("conv_backward_huge_dy", "conv2d_backward",
         dict(x=small_x, kernel=wide, dy=huge((1000, 28, 28, 2**20)))),
        ("pool_forward_huge_batch", "max_pool2d_forward", dict(x=huge(batch))),
        ("pool_backward_huge_batch", "max_pool2d_backward",
         dict(x=huge(batch), dy=huge((10**7, 14, 14, 32)))),
        ("conv_forward_huge_image", "conv2d_forward",
         dict(x=huge((1, 100000, 100000, 64)), kernel=np.ones((3, 3, 64, 8), f32))),
        ("conv_backward_huge_image", "conv2d_backward",
         dict(x=huge((1, 100000, 100000, 64)), kernel=np.ones((3, 3, 64, 8), f32),
              dy=huge((1, 99998, 99998, 8)))),
        ("pool_forward_huge_image", "max_pool2d_forward", dict(x=huge((1, 100000, 100000, 64)))),
        ("pool_backward_huge_image", "max_pool2d_backward",
         dict(x=huge((1, 100000, 100000, 64)), dy=huge((1, 50000, 50000, 64)))),
        ("conv_forward_kernel_2_31", "conv2d_forward",
         dict(x=np.zeros((1, 4, 4, 1), f32), kernel=huge((2**31, 1, 1, 1)), padding="same")),
        ("conv_forward_strides_2_40", "conv2d_forward",
         dict(x=np.zeros((1, 4, 4, 1), f32), kernel=np.ones((1, 1, 1, 1), f32),
              strides=2**40)),
        ("pool_forward_size_2_31", "max_pool2d_forward",
         dict(x=np.zeros((1, 4, 4, 1), f32), pool_size=2**31, padding="same")),
        # A 256 kB image whose padded copy holds 32769 x 65536 > 2**31 values:
        # the weight gradient's scratch size wrapped around in C ints (segfault).
        ("conv_backward_scratch_above_2_31", "conv2d_backward",
         dict(x=row, kernel=np.ones((32769, 1, 1, 1), f32), dy=row, padding="same",
              compute_dx=False)),
        ("conv_forward_scratch_above_2_31", "conv2d_forward",
         dict(x=row, kernel=np.ones((32769, 1, 1, 1), f32), padding="same")),
        # 2**31 - 65536 values (8 GB): within the kernels' range, beyond memory
        ("conv_backward_scratch_below_2_31", "conv2d_backward",
         dict(x=row, kernel=np.ones((32767, 1, 1, 1), f32), dy=row, padding="same")),
        ("conv_forward_scratch_below_2_31", "conv2d_forward",
         dict(x=row, kernel=np.ones((32767, 1, 1, 1), f32), padding="same")),
        # just over 2**31 bytes of float32 and of float64
        ("conv_backward_scratch_2_31_bytes", "conv2d_backward",
         dict(x=row, kernel=np.ones((8193, 1, 1, 1), f32), dy=row, padding="same")),
        ("conv_backward_scratch_2_31_bytes_f64", "conv2d_backward",
         dict(x=row.astype(np.float64), kernel=np.ones((4097, 1, 1, 1)),
              dy=row.astype(np.float64), padding="same")),
    ]


def run_large():
    """Runs each large case, printing one JSON line per case: its outcome."""
    for case, name, kwargs in large_cases():
        print("CALL", case, flush=True)
        try:
            result = getattr(ops, name)(**kwargs)
            outcome = {"outcome": "returned", "message": describe(result)}
        except Exception as error:                          # noqa: BLE001 - reported
            outcome = {"outcome": type(error).__name__, "message": str(error)}
        print(json.dumps({"case": case, **outcome}), flush=True)
        STATS["calls"] += 1


def record_unraisable(report):
    """sys.unraisablehook: an exception inside compiled code that cannot
    raise (a bounds-check failure in a nogil function of the debug build)
    is printed and counted as a failure."""
    STATS["unraisable exceptions"] += 1
    sys.__unraisablehook__(report)


def main():
    sys.unraisablehook = record_unraisable
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000,
                        help="hypothesis examples of the conv and pool fuzzers (each "
                             "makes two calls; the fused fuzzer: 2/5 as many, three calls)")
    parser.add_argument("--large", action="store_true", help="run the large-input cases")
    args = parser.parse_args()
    ops.conv2d_forward(np.ones((1, 3, 3, 2)), np.ones((2, 2, 2, 3)))   # start OpenMP
    cap_address_space()
    failures = 0
    if args.large:
        run_large()
    else:
        count_paths()
        failures = fuzz(args.examples)
    print("STATS", json.dumps(dict(sorted(STATS.items()))), flush=True)
    print("CALLS", STATS["calls"], flush=True)
    return 1 if failures or STATS["unraisable exceptions"] else 0


if __name__ == "__main__":
    sys.exit(main())
