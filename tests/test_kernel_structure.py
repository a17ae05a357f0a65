"""The structure of the compiled kernel layer (issue #9).

1. Every register-tile size of the compiled convolution runs, at each
   instruction-set level this machine runs (``FC_FORWARD_TILES`` and
   ``FC_WGRAD_TILES`` in microkernels.h).  A tile size missing from a
   dispatcher once left its outputs unwritten; now the dispatcher traps and
   the header's static assertions keep the lists complete.  Here the
   outputs start as NaN and must match the reference.  The shapes follow
   the tiling of ``_conv.pyx`` so that, with a level's limits
   (``TILE_PIXELS``, ``TILE_ROWS``, ``TILE_VECTORS``) and vector width, each
   (height, vectors) tile runs:

   * forward without padding: the N * OH * OW output pixels run in tiles of
     ``TILE_PIXELS``, so OW = p pixels (N = OH = 1) make one tile of p;
   * forward with padding: an output row of OW <= ``TILE_PIXELS`` is one tile;
   * weight gradient: a 1x1 kernel over C <= ``TILE_ROWS`` channels is one
     tile of C kernel rows;
   * output channels run in blocks of ``TILE_VECTORS`` vectors: (v - 1) *
     lanes + 1 channels make one block of v vectors.

2. The compiled functions take everything after their arrays by keyword
   only, so that no call can swap strides and dilations by position.
"""

import importlib

import numpy as np
import pytest

from fastconv import _kernels, ops, reference
from fastconv._kernels import _conv, _depthwise, _pool


@pytest.fixture(params=_kernels.SUPPORTED_LEVELS)
def level_conv(request, monkeypatch):
    """ops running on the ``_conv`` module of each level this CPU runs."""
    module = importlib.import_module(f"fastconv._kernels.{request.param}._conv")
    monkeypatch.setattr(ops, "_conv", module)
    return module


def channel_counts(conv, dtype):
    """Output channel counts whose last block has 1 .. TILE_VECTORS vectors."""
    lanes = conv.VECTOR_BYTES // np.dtype(dtype).itemsize
    return [(vectors - 1) * lanes + 1 for vectors in range(1, conv.TILE_VECTORS + 1)]


def nan_like(array):
    return np.full_like(array, np.nan)


def assert_matches(actual, expected):
    assert not np.isnan(actual).any()
    tolerance = 1e-5 if actual.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=tolerance * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel_w, padding", [(1, "valid"), (2, "same")],
                         ids=["direct", "padded"])
def test_every_forward_tile(level_conv, dtype, kernel_w, padding):
    rng = np.random.default_rng(0)
    for pixels in range(1, level_conv.TILE_PIXELS + 1):
        for cout in channel_counts(level_conv, dtype):
            x = rng.standard_normal((1, 1, pixels, 3)).astype(dtype)
            kernel = rng.standard_normal((1, kernel_w, 3, cout)).astype(dtype)
            bias = rng.standard_normal(cout).astype(dtype)
            expected = reference.conv2d_forward(x, kernel, bias, padding=padding)
            y = ops.conv2d_forward(x, kernel, bias, padding=padding, out=nan_like(expected))
            assert_matches(y, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_weight_gradient_tile(level_conv, dtype):
    rng = np.random.default_rng(1)
    for rows in range(1, level_conv.TILE_ROWS + 1):
        for cout in channel_counts(level_conv, dtype):
            x = rng.standard_normal((2, 3, 3, rows)).astype(dtype)
            kernel = rng.standard_normal((1, 1, rows, cout)).astype(dtype)
            dy = rng.standard_normal((2, 3, 3, cout)).astype(dtype)
            expected = reference.conv2d_backward(x, kernel, dy)
            out = tuple(nan_like(array) for array in expected)
            for actual, want in zip(ops.conv2d_backward(x, kernel, dy, out=out), expected):
                assert_matches(actual, want)


IMAGES = np.zeros((1, 2, 2, 1), np.float32)
FLAT = np.zeros(4, np.float32)
# The compiled functions and the arrays each takes first (their dtype and
# dimensions pick a specialisation; their shapes do not matter here).
FUNCTIONS = [(_conv.forward, [IMAGES] * 5), (_conv.relu_backward, [FLAT] * 3),
             (_pool.forward, [IMAGES] * 2), (_pool.backward, [IMAGES] * 3),
             (_pool.average_forward, [IMAGES] * 2), (_pool.average_backward, [IMAGES] * 2),
             (_depthwise.forward, [IMAGES] * 4), (_depthwise.kernel_gradient, [IMAGES] * 3),
             (_depthwise.input_gradient, [IMAGES] * 3)]


@pytest.mark.parametrize("function, arrays", FUNCTIONS,
                         ids=[f"{f.__module__.split('.')[-1]}.{f.__name__}" for f, _ in FUNCTIONS])
def test_arguments_after_the_arrays_are_keyword_only(function, arrays):
    with pytest.raises(TypeError, match=f"takes exactly {len(arrays)} positional arguments"):
        function(*arrays, 1, 1)
