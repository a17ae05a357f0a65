"""Fuzzer for the public layer API (``fastconv.layers`` and
``fastconv.models.Sequential``), run as a separate process by
``tests/test_robustness.py`` so that a crash of the interpreter shows up as a
failing return code instead of killing the test run.

    python tests/helpers/fuzz_layers.py [--examples N] [--only NAME ...]

Five hypothesis fuzzers, each making several calls per example:

  construct  layer constructors with random and junk arguments, then
             get_config / from_config, build() on good and junk shapes and
             a first call on a small batch
  forward    forward / __call__ of layers on random inputs: odd layouts and
             dtypes, wrong rank or channels, empty batches, NaN/Inf, junk;
             set_weights with good (NaN/Inf too) and junk weights
  backward   forward(training=True) then backward(dy), also with junk dy,
             and backward before any training forward
  predict    small Sequential models from random valid stacks
  fit        compile / fit / evaluate with junk arguments, labels and batch sizes

Every call must return or raise ValueError, TypeError or MemoryError
(RuntimeError only where it is documented: backward before a training
forward, fit/evaluate before compile).  Calls that compute are made on both
backends (``fastconv.set_backend('cython')`` and ``'numpy'``, same weights,
same dropout seed) and must agree: both raise (the same type, unless one ran
out of memory) or both return results equal within a tolerance by dtype,
scaled by the terms the kernels sum (NaNs equal; exact for the layers that
run no compiled kernel, and for max pooling).  Only the reference may fail
by a limit of its own (it materialises padding); max pooling is then
checked against fuzz_kernels' naive loop.  Beyond that, arguments the
documentation rules out must be rejected, and well-formed ones (a built
layer's input shape, any numeric dtype and layout, any batch size including
0) must be accepted.

The fuzzer prints ``CALLS <n>`` (calls made to the layer API) and ``STATS``,
and exits with 1 if any check failed; each failure names the call
(``call: ...``) after hypothesis's falsifying example.  The address space is
capped as in ``fuzz_kernels.py``, whose helpers this script shares.
Environment: ``CI`` makes hypothesis derandomized; ``FUZZ_VERBOSE=1`` prints
every call before making it; ``FUZZ_SEED`` fixes the seed of a local run.
"""

import argparse
import contextlib
import io
import json
import math
import os
import random
import sys
import traceback
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import fastconv
from fastconv import activations, callbacks, initializers, layers, models, utils
from fuzz_kernels import (
    LAYOUTS,
    assert_same,
    cap_address_space,
    describe,
    finite_scale,
    naive_pool,
    values,
)

ALLOWED = (ValueError, TypeError, MemoryError)
VERBOSE = os.environ.get("FUZZ_VERBOSE") == "1"
BACKENDS = ("cython", "numpy")
STATS = Counter()

# What the documentation says of a generated argument or input: it must be
# accepted (GOOD), must be rejected with ValueError/TypeError (BAD), or either.
GOOD, EITHER, BAD = "good", "either", "bad"


# ------------------------------------------------------------------ describing calls

def show(value):
    """A short, reproducible description of an argument."""
    if isinstance(value, np.ndarray) and value.size <= 4 and value.ndim <= 1:
        return f"np.array({value.tolist()!r}, dtype={value.dtype})"
    if isinstance(value, (np.ndarray, list)) and len(repr(value)) > 60:
        return describe(value)
    return repr(value)


def signature(args=(), kwargs=None):
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


def worst(*tags):
    return BAD if BAD in tags else EITHER if EITHER in tags else GOOD


# ------------------------------------------------------------------- making calls

@contextlib.contextmanager
def backend(name):
    """Runs the block on backend ``name``, then restores the one in use before."""
    before = fastconv.get_backend()
    fastconv.set_backend(name)
    try:
        yield
    finally:
        fastconv.set_backend(before)


def attempt(kind, call, function, allowed=ALLOWED):
    """(function(), None) or (None, error) for an ``allowed`` error; any other
    exception fails the check."""
    if VERBOSE:
        print("CALL", call, flush=True)
    STATS["calls"] += 1
    STATS["calls " + kind] += 1
    try:
        with contextlib.redirect_stdout(io.StringIO()):      # progress bars, messages
            return function(), None
    except allowed as error:
        STATS[f"raised {type(error).__name__}"] += 1
        return None, error
    except Exception as error:                              # noqa: BLE001 - the finding
        raise AssertionError(f"raised {type(error).__name__}: {error}\ncall: {call}") \
            from error


def check_tag(tag, error, call):
    """A BAD call must have raised, a GOOD one must have returned."""
    if tag == BAD and error is None:
        raise AssertionError(f"accepted an argument the documentation rules out\ncall: {call}")
    if tag == GOOD and error is not None:
        raise AssertionError(f"rejected a well-formed call with {type(error).__name__}: "
                             f"{error}\ncall: {call}")


def on_both(kind, call, function, dropout_seed=0):
    """function() on each backend (the dropout generator reseeded alike):
    {backend: (result, error)}."""
    outcomes = {}
    for name in BACKENDS:
        def run():
            utils.set_random_seed(dropout_seed)
            return function()
        with backend(name):
            outcomes[name] = attempt(kind, f"{call}  [backend {name}]", run)
    return outcomes


UNCOMPUTED = "the reference could not compute the answer"


def reference_limit(error):
    """Whether ``error`` is the NumPy reference running out of memory or into
    a NumPy limit inside a kernel (it materialises padding: pool_size 2**31 - 1
    with 'same' pads by 2**30 rows), not a rejection of the arguments."""
    if isinstance(error, MemoryError):
        return True
    files, tb = set(), error.__traceback__
    while tb is not None:
        files.add(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return fastconv.reference.__file__ in files and fastconv._checks.__file__ not in files


def agree(outcomes, call):
    """Both backends raised (the same error type, unless one ran out of
    memory): returns None.  Both returned: returns (got, want), the compiled
    and the reference results; want is UNCOMPUTED when only the reference
    failed, by a limit of its own."""
    (got, got_error), (want, want_error) = outcomes["cython"], outcomes["numpy"]
    if got_error is None and want_error is not None and reference_limit(want_error):
        STATS["reference could not compute"] += 1
        return got, UNCOMPUTED
    same_type = type(got_error) is type(want_error) or \
        MemoryError in (type(got_error), type(want_error))
    if (got_error is None) != (want_error is None) or not same_type:
        def say(error):
            return "returned" if error is None else f"raised {type(error).__name__}: {error}"
        raise AssertionError(f"backends disagree: cython {say(got_error)}; numpy "
                             f"{say(want_error)}\ncall: {call}")
    return None if got_error is not None else (got, want)


def assert_close(got, want, what, call, scale=None, exact=False, factor=1.0):
    """assert_same, naming the call when the backends differ."""
    try:
        assert_same(got, want, what, exact, scale, factor)
    except AssertionError as error:
        raise AssertionError(f"cython and numpy backends differ: {error}\ncall: {call}") \
            from None


def copied(value):
    return value.copy() if isinstance(value, np.ndarray) else value


def runs_kernels(layer):
    """Whether the layer runs the compiled kernels (and so may round differently)."""
    return isinstance(layer, (layers.Conv2D, layers.Dense))


def magnitude(array, axis=None):
    """Sum of the finite magnitudes of ``array`` along ``axis`` (None: max of it all)."""
    a = np.abs(np.where(np.isfinite(array), array, 0)).astype(np.float64)
    return float(a.max(initial=0.0)) if axis is None else a.sum(axis=axis)


def term_bounds(layer, x, dy=None, y=None):
    """Bounds on the terms the compiled kernels of a Conv2D or Dense layer sum
    (finite parts): the tolerances scale with them, as a sum that cancels to
    about 0 rounds to different tiny values on the two backends.  Returns
    {'output': ...} for forward, and {'dx', 'dkernel', 'dbias'} given dy and y."""
    kernel = layer.as_hwio(layer.params["kernel"])              # HWIO
    x_max = magnitude(np.ascontiguousarray(x, layer.dtype))
    bias = magnitude(layer.params["bias"]) if "bias" in layer.params else 0.0
    bounds = {"output": x_max * float(magnitude(kernel, (0, 1, 2)).max(initial=0)) + bias}
    if dy is not None:
        dz_max = 2 * magnitude(dy)             # |activation'| <= 1, softmax's dz <= 2 |dy|
        positions = y.size // y.shape[-1] if y.size else 0
        bounds.update(dx=dz_max * float(magnitude(kernel, (0, 1, 3)).max(initial=0)),
                      dkernel=x_max * dz_max * positions, dbias=dz_max * positions)
    return bounds


# --------------------------------------------------------------- generated arguments

nan, inf = float("nan"), float("inf")

POSITIVE = dict(good=[1, 2, 3, 8, 64, np.int64(4), np.int32(2), np.uint8(3)],
                bad=[0, -1, -2**63, 2.0, 1.5, True, False, "8", None, [8], np.float64(8),
                     nan, inf, np.int64(0), np.int32(-1), b"2"],
                either=[2**40, 10**30, np.array(3)])
PAIR = dict(good=[1, 2, 3, (1, 2), [2, 1], (np.int64(2), 1), np.int32(3), (3, 3), 2**31 - 1],
            bad=[0, -1, (1, 0), (), (1,), (1, 2, 3), 1.5, (1, 2.0), "3", "ab", None, True,
                 (True, 1), 2**31, 2**40, (1, -2), np.float64(2), [None, 1], np.bool_(True),
                 10**30, [1.0, 1.0]],
            either=[np.array([2, 2]), np.array(2), {1, 2}, range(1, 3)])
POOL_STRIDES = dict(PAIR, good=PAIR["good"] + [None],
                    bad=[s for s in PAIR["bad"] if s is not None])
PADDING = dict(good=["valid", "same", "VALID", "Same"],
               bad=["full", "", " same", "causal", None, 1, b"valid", ["same"]])
ACTIVATION = dict(good=[None, "linear", "relu", "sigmoid", "tanh", "softmax", activations.relu,
                        activations.tanh, "gelu", "elu"],
                  bad=["RELU", "gelu_tanh", "", 1, True, b"relu", ["relu"], np.tanh, "elux",
                       "Softmax"])
INITIALIZER = dict(good=initializers.INITIALIZERS.names(),
                   bad=["uniform", "", None, 1, np.zeros, "glorot", "he",
                        b"zeros"])
USE_BIAS = dict(good=[True, False, 0, 1, None, "yes"], either=[np.array([1, 2])])
INPUT_SHAPE = dict(good=[None, (4, 4, 1), [3, 5, 2], (6,), 7, (np.int64(3), 4, 2), (2, 2, 3)],
                   bad=[(), (0, 3), (-1,), (None, 3), (3.0,), "abc", 3.5, [[1, 2]], (True, 2),
                        {}, (2, 0, 1), -3, 0, "4"],
                   either=[np.array([3, 3, 1]), np.array([[2, 2]])])
NAME = dict(good=[None, "a", "my_layer", "x" * 50, "é"], bad=["", 1, b"x", ["a"], 0.5])
DTYPE = dict(good=[None, "float32", "float64", np.float32, np.float64, "f4", "f8",
                   np.dtype("float64"), "<f4"],
             bad=["float16", "int32", "foo", "complex64", np.int64, 3.5, object(), "f4,f4",
                  [], "bool", "float13", 1],
             either=["float", "double", ">f8"])
RATE = dict(good=[0, 0.0, 0.5, 0.999, np.float32(0.25), np.float64(0.1), 1e-300],
            bad=[1, 1.0, -0.1, -1, nan, inf, -inf, "0.5", None, True, False, [0.5], 2,
                 1 + 1e-9],
            either=[np.int64(0), np.array(0.5), np.float16(0.5)])

COMMON = [("input_shape", INPUT_SHAPE), ("name", NAME), ("dtype", DTYPE)]
KERNEL_OPTIONS = [("activation", ACTIVATION), ("use_bias", USE_BIAS),
                  ("kernel_initializer", INITIALIZER), ("bias_initializer", INITIALIZER)]
SIGNATURES = {  # class: (required arguments, optional keyword arguments)
    "Conv2D": ([("filters", POSITIVE), ("kernel_size", PAIR)],
               [("strides", PAIR), ("padding", PADDING)] + KERNEL_OPTIONS),
    "Dense": ([("units", POSITIVE)], KERNEL_OPTIONS),
    "MaxPooling2D": ([], [("pool_size", PAIR), ("strides", POOL_STRIDES), ("padding", PADDING)]),
    "Flatten": ([], []),
    "Dropout": ([("rate", RATE)], []),
    "Activation": ([("activation", ACTIVATION)], []),
}


def pick(draw, choices, bad_percent=12):
    """(value, tag) drawn from a dict of good/bad/either values (shrinking
    towards good ones)."""
    k = 99 - draw(st.integers(0, 99))
    for tag, share in ((BAD, bad_percent), (EITHER, 4)):
        if choices.get(tag) and k < share:
            return draw(st.sampled_from(choices[tag])), tag
        k -= share
    return draw(st.sampled_from(choices["good"])), GOOD


@st.composite
def constructions(draw):
    """(class name, positional args, keyword args, tag) of a constructor call."""
    name = draw(st.sampled_from(sorted(SIGNATURES)))
    required, optional = SIGNATURES[name]
    positional = draw(st.booleans())
    args, kwargs, tags = [], {}, []
    for arg, choices in required:
        if draw(st.integers(0, 99)) >= 98:                        # a required argument missing
            tags.append(BAD)
            positional = False
            continue
        value, tag = pick(draw, choices)
        tags.append(tag)
        if positional:
            args.append(value)
        else:
            kwargs[arg] = value
    for arg, choices in optional + COMMON:
        if draw(st.booleans()):
            kwargs[arg], tag = pick(draw, choices, bad_percent=8)
            tags.append(tag)
    k = 99 - draw(st.integers(0, 99))
    if k < 2:
        kwargs["kernel_regulariser"] = None                       # misspelt: no such argument
        tags.append(BAD)
    elif k < 6 and name in ("Dropout", "Activation") and positional and args:
        args.append(draw(st.sampled_from([1, "x", None])))        # one positional too many
        tags.append(BAD)
    return name, tuple(args), kwargs, worst(*tags)


# ------------------------------------------------------------------ generated inputs

INPUT_DTYPES = [np.float32, np.float64]
CONVERTIBLE = [np.float16, np.int32, np.int64, np.uint8, np.int8, np.bool_, np.dtype(">f4"),
               np.dtype(">f8"), np.longdouble]


@st.composite
def small_layers(draw):
    """(class name, kwargs, sample shape): a layer built from good arguments
    (a few of them out of the ordinary) and the shape of one input sample."""
    name = draw(st.sampled_from(["Conv2D", "Conv2D", "MaxPooling2D", "Dense", "Dense",
                                 "Flatten", "Dropout", "Activation"]))
    activation = draw(st.sampled_from(["relu", "relu", None, "linear", "sigmoid", "tanh",
                                       "softmax"]))
    kwargs = {}
    if name in ("Conv2D", "MaxPooling2D"):
        sample = (draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 4)))
        window = draw(st.sampled_from([1, 2, 3, (1, 2), (3, 1), (2, 3), [2, 2]]))
        strides = draw(st.sampled_from([1, 1, 2, (1, 2), (2, 1), 3]))
        kwargs["padding"] = draw(st.sampled_from(["valid", "same", "same", "SAME"]))
        if name == "Conv2D":
            kwargs.update(filters=draw(st.sampled_from([1, 2, 3, 5, np.int64(4)])),
                          kernel_size=window, strides=strides)
        else:
            kwargs.update(pool_size=window,
                          strides=draw(st.sampled_from([None, strides])))
    else:
        rank = draw(st.integers(1, 3))
        sample = tuple(draw(st.integers(1, 3)) for _ in range(rank - 1)) + \
            (draw(st.integers(1, 6)),)
    if name == "Dense":
        kwargs["units"] = draw(st.sampled_from([1, 2, 3, 5, np.int32(4)]))
    if name in ("Conv2D", "Dense"):
        kwargs["activation"] = activation
        kwargs["use_bias"] = draw(st.booleans())
        kwargs["kernel_initializer"] = draw(st.sampled_from(
            ["glorot_uniform", "glorot_uniform", "he_normal", "lecun_uniform", "ones"]))
        kwargs["bias_initializer"] = draw(st.sampled_from(["zeros", "ones", "he_uniform"]))
    if name == "Dropout":
        kwargs["rate"] = draw(st.sampled_from([0, 0.25, 0.5, 0.9, np.float32(0.5)]))
    if name == "Activation":
        kwargs["activation"] = activation
    dtype = draw(st.sampled_from([None, None, "float32", "float64"]))
    if dtype:
        kwargs["dtype"] = dtype
    if draw(st.integers(0, 99)) >= 85:
        kwargs["input_shape"] = sample
    return name, kwargs, sample


def make_layer(name, args, kwargs):
    return getattr(layers, name)(*args, **kwargs)


@st.composite
def input_variant(draw, x0):
    """(input, tag, how): the clean batch x0 itself, in another layout or
    dtype, with NaN/Inf, another batch size (0 too), or of a wrong rank or
    sample shape, junk objects, or too large for memory.  The tag says what a
    layer built on x0's sample shape must do with it."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sample = x0.shape[1:]
    k = draw(st.integers(0, 99))
    if k < 22:
        return x0, GOOD, "as built"
    if k < 40:
        how = draw(st.sampled_from(sorted(LAYOUTS)))
        x = LAYOUTS[how](x0)
        return x, shape_tag(x, x0), how
    if k < 50:
        dtype = draw(st.sampled_from(CONVERTIBLE + INPUT_DTYPES))
        return x0.astype(dtype), GOOD, f"as {np.dtype(dtype)}"
    if k < 60:
        batch = draw(st.integers(0, 4))
        return values(rng, (batch,) + sample, x0.dtype, draw(st.integers(0, 2))), GOOD, \
            f"batch of {batch}"
    if k < 70:                                                    # a wrong rank
        options = [x0[..., None], x0.reshape((len(x0), math.prod(sample))), x0.reshape(-1),
                   x0.reshape((1,) + x0.shape)]
        if len(x0):
            options.append(x0[0])
        x = options[draw(st.integers(0, len(options) - 1))]
        return x, shape_tag(x, x0), f"reshaped to {x.shape}"
    if k < 80:                                                    # a wrong sample size
        axis = draw(st.integers(1, len(x0.shape) - 1))
        shape = list(x0.shape)
        shape[axis] = draw(st.sampled_from([s for s in (shape[axis] - 1, shape[axis] + 1,
                                                        shape[axis] * 3, 0) if s >= 0]))
        x = values(rng, tuple(shape), x0.dtype, 0)
        return x, shape_tag(x, x0), f"axis {axis} resized"
    if k < 87:                                                    # junk contents
        junk = draw(st.sampled_from(["abc", None, "x0 objects", "1.5", [1, 2], "complex",
                                     b"2"]))
        if junk == "x0 objects":
            return x0.astype(object), EITHER, "object array of floats"
        if junk == "complex":
            return x0 + 1j, EITHER, "complex"
        x = np.empty(x0.size, object)
        for i in range(x0.size):
            x[i] = junk
        # Numbers as strings or bytes, and None (NaN), convert to floats.
        tag = BAD if x0.size and junk in ("abc", [1, 2]) else EITHER
        return x.reshape(x0.shape), tag, f"object array of {junk!r}"
    if k < 93:                                                    # too large for memory
        batch = draw(st.sampled_from([2**40, 2**33, 10**12]))
        return np.broadcast_to(np.ones((1,) * x0.ndim, x0.dtype), (batch,) + sample), \
            EITHER, "huge batch"
    junk = draw(st.sampled_from([None, "abc", 1.5, np.float32(2), [], {}, object()]))
    return junk, BAD, "not an array"


def shape_tag(x, x0):
    """GOOD if x has x0's rank and sample shape (any batch size), else BAD."""
    try:
        shape = np.shape(x)
    except ValueError:                                            # ragged lists
        return BAD
    return GOOD if len(shape) == x0.ndim and tuple(shape[1:]) == x0.shape[1:] else BAD


def clean_batch(draw, sample, dtype=None):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = draw(st.sampled_from([1, 2, 3, 2, 0]))
    dtype = dtype or draw(st.sampled_from(INPUT_DTYPES))
    return values(rng, (batch,) + sample, dtype, draw(st.sampled_from([0, 0, 1, 2])))


# ---------------------------------------------------------------------- 1. construct

BUILD_SHAPES = [(None, 4, 4, 2), (3, 5, 5, 1), [None, 6], (None, 2, 3), "abc", 5, None,
                (None,), (), (None, -1, 4, 1), (None, 3.5, 2, 1), (None, 2**40, 2**40, 1),
                (None, "a", 2), (None, 0, 3, 1), [[1]], (None, 2**62), (None, 7, np.int64(7), 1)]


@st.composite
def construct_cases(draw):
    name, args, kwargs, tag = draw(constructions())
    # A first call: small images for the window layers, else small vectors.
    rank4 = name in ("Conv2D", "MaxPooling2D")
    sample = (draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))) \
        if rank4 else (draw(st.integers(1, 5)),)
    build = draw(st.sampled_from(BUILD_SHAPES)) if draw(st.integers(0, 9)) >= 7 else "no"
    return name, args, kwargs, tag, build, clean_batch(draw, sample)


def run_construct(case):
    name, args, kwargs, tag, build, x = case
    call = f"layers.{name}({signature(args, kwargs)})"
    layer, error = attempt("construct", call, lambda: make_layer(name, args, kwargs))
    check_tag(tag, error, call)
    if error is not None:
        return
    # The configuration is JSON and rebuilds the same layer.
    config, _ = attempt("get_config", f"{call}.get_config()", layer.get_config, allowed=())
    try:
        text = json.dumps(config)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"get_config() is not JSON: {error}: {config!r}\ncall: {call}") \
            from None
    clone, _ = attempt("from_config", f"layers.{name}.from_config({text})",
                       lambda: type(layer).from_config(json.loads(text)), allowed=())
    assert clone.get_config() == config, \
        f"from_config(get_config()) changed the config: {clone.get_config()} != {config}" \
        f"\ncall: {call}"
    if not isinstance(build, str) or build != "no":              # build(input_shape) first
        call += f".build({build!r})"
        attempt("construct", call, lambda: layer.build(build))
    compare_inference("construct", layer, x, call, "first call")


# ------------------------------------------------------------------------ 2. forward

def compare_inference(kind, layer, x, prefix, how, training=False, activate=True,
                      tag=EITHER):
    """layer(x) (or forward with ``training``/``activate``) on both backends;
    they must agree, and obey ``tag``.  Returns whether they returned."""
    if training or not activate:
        call = f"{prefix}.forward(x=({how}) {show(x)}, training={training}, " \
               f"activate={activate})"

        def function():
            return copied(layer.forward(x, training=training, activate=activate))
    else:
        call = f"{prefix}(x=({how}) {show(x)})"

        def function():
            return layer(x)
    outcomes = on_both(kind, call, function)
    results = agree(outcomes, call)
    check_tag(tag, outcomes["numpy"][1], call)
    if results is None:
        STATS[f"{kind}: both raised"] += 1
        return False
    got, want = results
    if want is UNCOMPUTED:
        if not isinstance(layer, layers.MaxPooling2D) or np.size(x) > 10**4:
            return True
        want = naive_pool(np.ascontiguousarray(x, layer.dtype), None, layer.pool_size,
                          layer.strides, layer.padding)[0]
        STATS["checked by the naive pooling oracle"] += 1
    exact = not runs_kernels(layer)
    scale = None
    if not exact:
        scale = max(finite_scale(want), term_bounds(layer, x)["output"])
    assert_close(got, want, "output", call, scale=scale, exact=exact)
    STATS[f"{kind}: compared"] += 1
    return True


@st.composite
def forward_cases(draw):
    name, kwargs, sample = draw(small_layers())
    dtype = np.float64 if kwargs.get("dtype") == "float64" else \
        np.float32 if kwargs.get("dtype") == "float32" else None
    x0 = clean_batch(draw, sample, dtype)
    variants = [draw(input_variant(x0)) for _ in range(draw(st.integers(1, 3)))]
    modes = [draw(st.sampled_from([(False, True), (False, True), (True, True), (False, False)]))
             for _ in variants]
    weights = draw(st.sampled_from(["keep"] * 6 + list(WEIGHTS)))
    return name, kwargs, x0, variants, modes, weights, draw(st.integers(0, 2**16)), \
        draw(st.integers(1, 3))


def other_float(dtype):
    return np.float64 if dtype == np.float32 else np.float32


WEIGHTS = {  # kind: (weights from the layer's current ones and a generator, tag)
    "random": lambda ws, rng: ([values(rng, w.shape, w.dtype, 0) for w in ws], GOOD),
    "NaN/Inf": lambda ws, rng: ([values(rng, w.shape, w.dtype, 2) for w in ws], GOOD),
    "lists": lambda ws, rng: ([values(rng, w.shape, w.dtype, 0).tolist() for w in ws], GOOD),
    "other float": lambda ws, rng: ([w.astype(other_float(w.dtype)) for w in ws], GOOD),
    "ints": lambda ws, rng: ([values(rng, w.shape, np.int64, 1) for w in ws], GOOD),
    "one more": lambda ws, rng: (ws + [np.zeros(1)], BAD),
    "one fewer": lambda ws, rng: (ws[:-1], BAD if ws else GOOD),
    "reshaped": lambda ws, rng: ([w.reshape(w.shape + (1,)) for w in ws], BAD if ws else GOOD),
    "strings": lambda ws, rng: ([np.full(w.shape, "abc") for w in ws], BAD if ws else GOOD),
}


def run_forward(case):
    name, kwargs, x0, variants, modes, weights, weight_seed, threads = case
    fastconv.set_num_threads(threads)
    call = f"layers.{name}({signature((), kwargs)})"
    layer, _ = attempt("construct", call, lambda: make_layer(name, (), kwargs), allowed=())
    compare_inference("forward", layer, x0, call, "first call, builds")
    built = layer.built and layer.input_shape[1:] == x0.shape[1:]
    if weights != "keep" and built:
        current, _ = attempt("forward", f"{call}.get_weights()", layer.get_weights, allowed=())
        new, tag = WEIGHTS[weights](current, np.random.default_rng(weight_seed))
        call += f".set_weights(({weights}) {show(new)})"
        _, error = attempt("forward", call, lambda: layer.set_weights(new))
        check_tag(tag, error, call)
    prefix = f"{call}(x={describe(x0)}) then layer"
    for (x, tag, how), (training, activate) in zip(variants, modes):
        compare_inference("forward", layer, x, prefix, how, training, activate,
                          tag if built else EITHER)


# ----------------------------------------------------------------------- 3. backward

@st.composite
def backward_cases(draw):
    name, kwargs, sample = draw(small_layers())
    x0 = clean_batch(draw, sample)
    x, tag, how = draw(input_variant(x0))
    if tag != GOOD:
        x, how = x0, "as built"                                   # inputs that fit
    dy = draw(st.sampled_from(["good"] * 12 + ["layout", "nan", "other dtype", "shape", "list",
                                               "None", "scalar", "int"]))
    return dict(name=name, kwargs=kwargs, x=x, how=how, dy=dy,
                dy_seed=draw(st.integers(0, 2**32 - 1)),
                activate=draw(st.sampled_from([True, True, False])),
                need_input_grad=draw(st.sampled_from([True, True, False])),
                first=draw(st.sampled_from(["training"] * 18 + ["none", "inference"])),
                dropout_seed=draw(st.integers(0, 2**16)), threads=draw(st.integers(1, 3)))


def make_dy(kind, y, seed):
    """(dy, tag) for an output y: random of its shape and dtype, or junk."""
    rng = np.random.default_rng(seed)
    dy = values(rng, y.shape, y.dtype, 2 if kind == "nan" else 0)
    other = np.float64 if y.dtype == np.float32 else np.float32
    return {
        "good": (dy, GOOD), "nan": (dy, GOOD),
        "layout": (LAYOUTS["every_other"](dy), GOOD),
        "other dtype": (dy.astype(other), BAD),
        "int": (dy.astype(np.int64), BAD),
        "shape": (values(rng, y.shape[:-1] + (y.shape[-1] + 1,), y.dtype, 0), BAD),
        "list": (dy.tolist(), EITHER),
        "None": (None, EITHER),
        "scalar": (1.0, EITHER),
    }[kind]


def run_backward(case):
    fastconv.set_num_threads(case["threads"])
    name, kwargs, x = case["name"], case["kwargs"], case["x"]
    activate, need_input_grad = case["activate"], case["need_input_grad"]
    call = f"layers.{name}({signature((), kwargs)})"
    layer, _ = attempt("construct", call, lambda: make_layer(name, (), kwargs), allowed=())
    forward = (f".forward(x=({case['how']}) {describe(x)}, training=True, "
               f"activate={activate})")
    if case["first"] != "training":
        # backward before any training forward: the documented RuntimeError.
        if case["first"] == "inference":
            attempt("forward", f"{call}(x)", lambda: layer(x))
        before = f"{call}{'' if case['first'] == 'none' else '(x)'}.backward(dy)"
        _, error = attempt("backward", before, lambda: layer.backward(np.zeros(1)),
                           allowed=(RuntimeError,))
        assert error is not None, f"backward without a training forward returned\ncall: {before}"
    results, dy, tag = {}, None, None
    for name_ in BACKENDS:
        with backend(name_):
            utils.set_random_seed(case["dropout_seed"])           # the same dropout mask
            y, error = attempt("forward", f"{call}{forward}  [backend {name_}]",
                               lambda: copied(layer.forward(x, training=True,
                                                            activate=activate)))
            if error is not None:
                results[name_] = (None, error)
                continue
            if dy is None:
                dy, tag = make_dy(case["dy"], y, case["dy_seed"])
            step = f"{call}{forward}.backward(dy={show(dy)}, need_input_grad={need_input_grad})"
            dx, error = attempt("backward", f"{step}  [backend {name_}]",
                                lambda: copied(layer.backward(dy, need_input_grad)))  # noqa: B023 (called at once)
            check_tag(tag, error, step)
            grads = {k: g.copy() for k, g in layer.grads.items()}
            results[name_] = ((y, dx, grads), error)
    step = f"{call}{forward}.backward(dy={case['dy']!r}, need_input_grad={need_input_grad})"
    outcome = agree(results, step)
    if outcome is None:
        STATS["backward: both raised"] += 1
        return
    if outcome[1] is UNCOMPUTED:
        return
    (y_c, dx_c, grads_c), (y_n, dx_n, grads_n) = outcome
    exact = not runs_kernels(layer)
    factor, bounds = 1.0, {}
    if runs_kernels(layer):
        bounds = term_bounds(layer, x, dy, y_n)
        if activate and layer.activation.name in ("sigmoid", "tanh", "softmax", "gelu", "elu"):
            # dy passes the activation's derivative at y, which differs between
            # the backends by the rounding of y: allow for its slope.
            factor = 8 * (1 + bounds["output"])
    elif isinstance(layer, layers.MaxPooling2D):                 # windows overlap
        overlaps = math.prod(-(-p // s) for p, s in zip(layer.pool_size, layer.strides))
        bounds = {"dx": magnitude(dy) * overlaps}
    assert_close(y_c, y_n, "forward output", step, exact=exact,
                 scale=max(finite_scale(y_n), bounds.get("output", 0)))
    if activate and runs_kernels(layer) and layer.activation is activations.relu \
            and not np.array_equal(y_c > 0, y_n > 0):
        STATS["backward: not compared (ReLU at 0 rounds to either side)"] += 1
        return
    exact_grads = exact and not isinstance(layer, layers.MaxPooling2D)
    assert_close(dx_c, dx_n, "dx", step, exact=exact_grads, factor=factor,
                 scale=max(finite_scale(dx_n), bounds.get("dx", 0)))
    assert sorted(grads_c) == sorted(grads_n), step
    for key in grads_c:
        assert_close(grads_c[key], grads_n[key], f"d{key}", step, factor=factor,
                     scale=max(finite_scale(grads_n[key]), bounds.get(f"d{key}", 0)))
    STATS["backward: compared"] += 1


# ------------------------------------------------------------------------ 4. predict

@st.composite
def model_stacks(draw):
    """(layer specs [(class, kwargs)], sample shape, classes): a random stack
    of layers with good arguments (its shapes may still not fit)."""
    images = draw(st.booleans())
    classes = draw(st.integers(1, 4))
    dropout = draw(st.sampled_from([0, 0.5]))
    stack = []
    act = st.sampled_from(["relu", "relu", None, "tanh", "sigmoid"])
    if images:
        sample = (draw(st.integers(3, 8)), draw(st.integers(3, 8)), draw(st.integers(1, 3)))
        for _ in range(draw(st.integers(1, 2))):
            stack.append(("Conv2D", dict(filters=draw(st.integers(1, 4)),
                                         kernel_size=draw(st.sampled_from([1, 2, 3, (1, 2)])),
                                         strides=draw(st.sampled_from([1, 1, 2, (1, 2)])),
                                         padding=draw(st.sampled_from(["valid", "same"])),
                                         activation=draw(act))))
        if draw(st.booleans()):
            stack.append(("MaxPooling2D", dict(pool_size=draw(st.sampled_from([1, 2, (1, 2)])),
                                               padding=draw(st.sampled_from(["valid", "same"])))))
        if draw(st.booleans()):
            stack.append(("Dropout", dict(rate=draw(st.sampled_from([0.1, 0.5])))))
        stack.append(("Flatten", {}))
    else:
        sample = (draw(st.integers(1, 6)),)
    for _ in range(draw(st.integers(0, 2))):
        stack.append(("Dense", dict(units=draw(st.integers(1, 5)), activation=draw(act))))
        if dropout:
            stack.append(("Dropout", dict(rate=dropout)))
    last = draw(st.sampled_from(["softmax", "softmax", None, "sigmoid"]))
    stack.append(("Dense", dict(units=classes, activation=last)))
    if draw(st.integers(0, 9)) == 0:
        stack.append(("Activation", dict(activation="softmax")))
    first = stack[0][1]
    if draw(st.booleans()):
        first["input_shape"] = sample
    if draw(st.integers(0, 3)) == 0:
        first["dtype"] = "float64"
    return stack, sample, classes


def build_model(kind, stack):
    call = "models.Sequential([" + ", ".join(f"layers.{n}({signature((), k)})"
                                             for n, k in stack) + "])"
    model, error = attempt(kind, call, lambda: models.Sequential(
        [make_layer(n, (), k) for n, k in stack]))
    return model, error, call


BATCH_SIZE = dict(good=[None, 1, 2, 3, 32, np.int64(2), 10**9],
                  bad=[0, -1, 1.5, True, False, "32", [2], 2.0, nan])


@st.composite
def predict_cases(draw):
    stack, sample, _ = draw(model_stacks())
    x0 = clean_batch(draw, sample)
    if len(x0) == 0:
        x0 = np.concatenate([x0, np.ones((1,) + sample, x0.dtype)])
    x, tag, how = draw(input_variant(x0))
    batch_size, batch_tag = pick(draw, BATCH_SIZE, bad_percent=8)
    return stack, x, tag, how, batch_size, batch_tag, draw(st.integers(1, 3))


def predict_tag(model, x, tag, declared):
    """What predict must do with x: it rejects what is not numbers (bools
    included) and empty batches, on top of what layers reject."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iuf" or x.ndim == 0 or len(x) == 0:
            return BAD
    return tag if declared else EITHER


def run_predict(case):
    stack, x, tag, how, batch_size, batch_tag, threads = case
    fastconv.set_num_threads(threads)
    model, error, call = build_model("predict", stack)
    if error is not None:
        return
    declared = model.built
    call += f".predict(x=({how}) {show(x)}, batch_size={show(batch_size)}, verbose=0)"
    outcomes = on_both("predict", call, lambda: model.predict(x, batch_size=batch_size,
                                                              verbose=0))
    results = agree(outcomes, call)
    check_tag(worst(predict_tag(model, x, tag, declared), batch_tag), outcomes["numpy"][1],
              call)
    if results is None:
        STATS["predict: both raised"] += 1
        return
    if results[1] is UNCOMPUTED:
        return
    # Tolerance: the largest term any Conv2D or Dense layer of the model sums.
    scale = finite_scale(results[1])
    h = np.ascontiguousarray(x, dtype=model.dtype)
    for i, layer in enumerate(model.layers):
        if runs_kernels(layer):
            scale = max(scale, term_bounds(layer, h)["output"])
        with backend("numpy"):
            h, _ = attempt("predict", f"{call} layer {i}", lambda: layer(h),  # noqa: B023 (called at once)
                           allowed=())
    assert_close(*results, "predictions", call, scale=scale, factor=4)
    STATS["predict: compared"] += 1


# ---------------------------------------------------------------------------- 5. fit

OPTIMIZER = dict(good=["sgd", "adam", "rmsprop", "SGD", "Adam"],
                 bad=["adagard", "", 1, None, ["sgd"], b"sgd"])
LOSS = dict(good=["sparse_categorical_crossentropy", "categorical_crossentropy"],
            bad=["log_cosh", None, 1, "Sparse_Categorical_Crossentropy", ""], either=["mse"])
METRICS = dict(good=[None, [], ["accuracy"], "acc", ("accuracy",)],
               bad=["foo", [1], 5, ["accuracy", None]],
               either=[["mse"]])  # mse of class indices against probabilities: label shapes vary
EPOCHS = dict(good=[0, 1, 2, np.int64(1)], bad=[-1, 1.0, True, "1", None, [1]])
SPLIT = dict(good=[0, 0.0], bad=[1, 1.0, -0.1, nan, True, "0.2", None], either=[0.5, 0.25])
VERBOSE_ARG = dict(good=[0, 0, 2, "auto", 1], bad=[3, -1, True, "yes", None, 0.5, "0"])
LABELS = ["good", "good", "good", "good", "column", "float", "out of range", "negative",
          "fractional", "nan", "length", "strings", "objects", "other form", "scalar", "bool"]


@st.composite
def fit_cases(draw):
    stack, sample, classes = draw(model_stacks())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 6))
    x = values(rng, (n,) + sample, draw(st.sampled_from(INPUT_DTYPES)),
               draw(st.sampled_from([0, 0, 0, 1, 2])))
    x_tag, how = GOOD, "as built"
    if draw(st.integers(0, 99)) >= 80:
        variant, x_tag, how = draw(input_variant(x))
        x = variant
    compile_args = {}
    for arg, choices in (("optimizer", OPTIMIZER), ("loss", LOSS), ("metrics", METRICS)):
        compile_args[arg] = pick(draw, choices, bad_percent=5)
    fit_args = {}
    for arg, choices in (("batch_size", BATCH_SIZE), ("epochs", EPOCHS),
                         ("validation_split", SPLIT), ("verbose", VERBOSE_ARG)):
        if draw(st.booleans()):
            fit_args[arg] = pick(draw, choices, bad_percent=8)
    return dict(stack=stack, x=x, x_tag=x_tag, how=how, classes=classes,
                labels=draw(st.sampled_from(LABELS)), label_seed=draw(st.integers(0, 2**16)),
                compile=compile_args, fit=fit_args, compiled=draw(st.integers(0, 19)) < 19,
                evaluate=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def make_labels(kind, n, classes, sparse, seed):
    """(labels, tag) for n samples: good ones for the loss, or junk."""
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, classes, n)
    one_hot = np.eye(classes, dtype=np.float32)[indices]
    good, other = (indices, one_hot) if sparse else (one_hot, indices)
    with_nan = good.astype(np.float64)
    if n:
        with_nan.flat[0] = nan
    return {
        "good": (good, GOOD),
        "column": (indices[:, None], GOOD if sparse or classes == 1 else BAD),
        "float": (good.astype(np.float64), GOOD),
        "out of range": ((indices + classes, BAD) if sparse else (one_hot * 2, BAD)),
        "negative": (-1 - indices if sparse else -one_hot, BAD),
        "fractional": (indices + 0.5 if sparse else one_hot * 0.5, BAD if sparse else GOOD),
        "nan": (with_nan, BAD if n else EITHER),
        "length": (np.concatenate([good, good[:1]]), BAD),
        "strings": (good.astype(str), BAD),
        "objects": (good.astype(object), BAD),
        "other form": (other, BAD if sparse or classes > 1 else EITHER),  # one class: a
        # one-hot 1 is no index; zeros for one softmax unit broadcast as Keras does
        "scalar": (np.int64(0), BAD),
        "bool": (good.astype(bool), EITHER),  # Keras casts bools; fastconv may
    }[kind]


def run_fit(case):
    model, error, call = build_model("fit", case["stack"])
    if error is not None:
        return
    utils.set_random_seed(case["seed"])
    compile_tag = worst(*(tag for _, tag in case["compile"].values()))
    compile_args = {k: v for k, (v, _) in case["compile"].items()}
    compiled = False
    if case["compiled"]:
        step = f"{call}.compile({signature((), compile_args)})"
        _, error = attempt("compile", step, lambda: model.compile(**compile_args))
        check_tag(compile_tag, error, step)
        compiled = error is None
        call = step
    sparse = compiled and model.loss.startswith("sparse")
    x = case["x"]
    n = len(x) if isinstance(x, (np.ndarray, list)) and np.ndim(x) else 1
    labels, label_tag = make_labels(case["labels"], min(n, 64), case["classes"], sparse,
                                    case["label_seed"])
    if compile_args.get("loss") == "mse" and label_tag == BAD:
        label_tag = EITHER  # a regression loss takes numbers that are no class labels
    fit_args = {k: v for k, (v, _) in case["fit"].items()}
    tag = worst(label_tag, predict_tag(model, x, case["x_tag"], model.built),
                *(t for _, t in case["fit"].values()))
    if isinstance(x, np.ndarray) and x.ndim and len(x) and np.ndim(labels) \
            and len(labels) != len(x):
        tag = BAD
    if "validation_split" in fit_args and fit_args["validation_split"] and tag == GOOD:
        tag = EITHER                                             # too few samples to split
    step = (f"{call}.fit(x=({case['how']}) {show(x)}, y=({case['labels']}) {show(labels)}, "
            f"{signature((), fit_args)})")
    history, error = attempt("fit", step, lambda: model.fit(x, labels, **fit_args),
                             allowed=ALLOWED + ((RuntimeError,) if not compiled else ()))
    if not compiled:
        assert isinstance(error, RuntimeError), \
            f"fit before compile did not raise RuntimeError: {error!r}\ncall: {step}"
        return
    check_tag(tag, error, step)
    if error is None:
        assert isinstance(history, callbacks.History), f"fit returned {history!r}\ncall: {step}"
    if case["evaluate"]:
        args = {k: v for k, v in fit_args.items() if k in ("batch_size", "verbose")}
        step = f"{call}.evaluate(x, y, {signature((), args)})"
        result, error = attempt("evaluate", step, lambda: model.evaluate(x, labels, **args))
        if history is not None:                                  # what fit took
            check_tag(GOOD, error, step)
        if error is None:
            assert isinstance(result, (float, list)), f"evaluate returned {result!r}\n{step}"


# --------------------------------------------------------------------------- running

FUZZERS = {  # name: (strategy, run, default examples)
    "construct": (construct_cases, run_construct, 1400),
    "forward": (forward_cases, run_forward, 900),
    "backward": (backward_cases, run_backward, 700),
    "predict": (predict_cases, run_predict, 300),
    "fit": (fit_cases, run_fit, 300),
}


def fuzz(names, examples=None):
    """Runs the named fuzzers; returns the number of failed ones."""
    options = dict(deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                   suppress_health_check=list(HealthCheck), print_blob=True)
    run_seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    if not options["derandomize"]:
        print(f"seed {run_seed} (rerun with FUZZ_SEED={run_seed})", flush=True)
    failures = 0
    for name in names:
        strategy, run, default = FUZZERS[name]

        @settings(max_examples=examples or default, **options)
        @given(case=strategy())
        def test(case):
            run(case)  # noqa: B023 (test runs within this iteration)
        print(f"FUZZER {name}", flush=True)
        if not options["derandomize"]:
            test = seed(run_seed)(test)
        try:
            test()
        except Exception:                                   # noqa: BLE001 - reported
            failures += 1
            STATS[f"failed {name}"] += 1
            print(f"FAILED {name}", flush=True)
            traceback.print_exc()
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, help="hypothesis examples per fuzzer "
                        "(default: " + ", ".join(f"{n} {d}" for n, (_, _, d)
                                                 in FUZZERS.items()) + ")")
    parser.add_argument("--only", nargs="+", choices=list(FUZZERS), default=list(FUZZERS),
                        help="the fuzzers to run")
    args = parser.parse_args()
    layers.Conv2D(1, 1)(np.ones((1, 2, 2, 1), np.float32))        # start OpenMP
    cap_address_space()
    failures = fuzz(args.only, args.examples)
    fastconv.set_backend("cython")
    print("STATS", json.dumps(dict(sorted(STATS.items()))), flush=True)
    print("CALLS", STATS["calls"], flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
