"""Kernel benchmark: fastconv's compiled kernels vs the NumPy reference (and
PyTorch when installed) at the shapes of the MNIST convnet, batch 64.

    OMP_NUM_THREADS=2 python bench/bench_kernels.py

Times are medians of repeated calls after warm-up, all in one run.  The
compiled conv kernels' GFLOP/s are compared with two peaks measured in the
same run: "% of FMA peak" with the FMA throughput of bench/fma_probe.c (the
hardware's limit), "% of matmul peak" with a 2048^3 float32 numpy.matmul.
"""

import argparse

import numpy as np
from common import (
    describe_machine,
    import_torch,
    matmul_gflops,
    median_ms,
    percent_cell,
    percent_of_peaks,
    print_table,
)
from fma_peak import fma_line, fma_probe

import fastconv
from fastconv import ops, reference

# name: (input shape NHWC, output channels); all 3x3 'valid' stride 1.
CONVS = {
    "conv1": ((64, 28, 28, 1), 32),
    "conv2": ((64, 13, 13, 32), 64),
    "conv3": ((64, 5, 5, 64), 64),
}
POOLS = {"pool1": (64, 26, 26, 32), "pool2": (64, 11, 11, 64)}
# The Conv2D(relu) -> MaxPooling2D(2) pairs a model runs fused.
FUSED = {"conv1+pool1": "conv1", "conv2+pool2": "conv2"}


def torch_conv_tensors(torch, x, kernel, bias, dy, compute_dx):
    """(x, kernel, bias, dy, the tensors to differentiate) in PyTorch's
    layouts, the images channels-last, as its CPU backend runs fastest."""
    def to_nchw(a):
        return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last)

    tx = to_nchw(x).requires_grad_(compute_dx)
    tk = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous().requires_grad_(True)
    tb = torch.from_numpy(bias).requires_grad_(True)
    return tx, tk, tb, to_nchw(dy), [tx, tk, tb] if compute_dx else [tk, tb]


def torch_conv(torch, x, kernel, bias, dy, compute_dx):
    """(forward, backward) closures running the same convolution in PyTorch."""
    tx, tk, tb, tdy, inputs = torch_conv_tensors(torch, x, kernel, bias, dy, compute_dx)

    def forward():
        with torch.no_grad():
            return torch.relu(torch.nn.functional.conv2d(tx, tk, tb))

    def backward():
        y = torch.nn.functional.conv2d(tx, tk, tb)
        return torch.autograd.grad(y, inputs, tdy)

    return forward, backward


def torch_pool(torch, x, dy):
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2)

    def forward():
        with torch.no_grad():
            return torch.nn.functional.max_pool2d(tx, 2)

    def backward():
        return torch.autograd.grad(torch.nn.functional.max_pool2d(tx, 2), [tx], tdy)

    return forward, backward


def conv_functions(rng, torch, shape, cout, compute_dx=True):
    """A 3x3 'valid' convolution of a random ``shape`` (NHWC) input to ``cout``
    channels, relu on the forward pass, in every backend.

    Returns (forward flops, backward flops, forward, backward): forward and
    backward map "fastconv", "numpy" and (with torch) "pytorch" to closures.
    """
    x = rng.standard_normal(shape, dtype=np.float32)
    kernel = rng.standard_normal((3, 3, shape[3], cout), dtype=np.float32) * 0.1
    bias = np.zeros(cout, np.float32)
    y = ops.conv2d_forward(x, kernel, bias)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    flops = 2 * y.size * kernel.shape[0] * kernel.shape[1] * shape[3]
    forward = {
        "fastconv": lambda: ops.conv2d_forward(x, kernel, bias, activation="relu"),
        "numpy": lambda: reference.conv2d_forward(x, kernel, bias, activation="relu"),
    }
    backward = {
        "fastconv": lambda: ops.conv2d_backward(x, kernel, dy, compute_dx=compute_dx),
        "numpy": lambda: reference.conv2d_backward(x, kernel, dy, compute_dx=compute_dx),
    }
    if torch:
        forward["pytorch"], backward["pytorch"] = torch_conv(torch, x, kernel, bias, dy,
                                                             compute_dx)
    return flops, flops * (2 if compute_dx else 1), forward, backward


def fused_functions(rng, torch, shape, cout, compute_dx=True):
    """The pair relu(conv 3x3 'valid' to ``cout`` channels) -> 2x2 max pooling
    of a random ``shape`` (NHWC) input, as ``conv_functions`` returns them.
    The forward counts the products of the convolution outputs inside a
    pooling window (those the fused kernel computes), the backward all."""
    x = rng.standard_normal(shape, dtype=np.float32)
    kernel = rng.standard_normal((3, 3, shape[3], cout), dtype=np.float32) * 0.1
    bias = np.zeros(cout, np.float32)
    y, winners = ops.conv2d_relu_max_pool2d_forward(x, kernel, bias)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    taps = 2 * kernel.shape[0] * kernel.shape[1] * shape[3]
    conv_pixels = (shape[1] - 2) * (shape[2] - 2)
    fwd_flops = taps * y.size * 4
    bwd_flops = taps * shape[0] * conv_pixels * cout * (2 if compute_dx else 1)
    forward = {
        "fastconv": lambda: ops.conv2d_relu_max_pool2d_forward(x, kernel, bias),
        "numpy": lambda: reference.conv2d_relu_max_pool2d_forward(x, kernel, bias),
    }
    backward = {
        "fastconv": lambda: ops.conv2d_relu_max_pool2d_backward(x, kernel, dy, y, winners,
                                                                compute_dx=compute_dx),
        "numpy": lambda: reference.conv2d_relu_max_pool2d_backward(x, kernel, dy, y, winners,
                                                                   compute_dx=compute_dx),
    }
    if torch:
        forward["pytorch"], backward["pytorch"] = torch_conv_pool(torch, x, kernel, bias, dy,
                                                                  compute_dx)
    return fwd_flops, bwd_flops, forward, backward


def torch_conv_pool(torch, x, kernel, bias, dy, compute_dx):
    """(forward, backward) closures of max_pool2d(relu(conv2d)) in PyTorch,
    channels-last; the backward runs its forward first, as autograd needs."""
    tx, tk, tb, tdy, inputs = torch_conv_tensors(torch, x, kernel, bias, dy, compute_dx)

    def pair():
        return torch.nn.functional.max_pool2d(
            torch.relu(torch.nn.functional.conv2d(tx, tk, tb)), 2)

    def forward():
        with torch.no_grad():
            return pair()

    def backward():
        return torch.autograd.grad(pair(), inputs, tdy)

    return forward, backward


def cases(rng, torch):
    """(name, flops or None, fastconv fn, reference fn, torch fn or None) per kernel."""
    for name, (shape, cout) in CONVS.items():
        compute_dx = name != "conv1"  # the first layer needs no input gradient
        fwd_flops, bwd_flops, fwd, bwd = conv_functions(rng, torch, shape, cout, compute_dx)
        yield f"{name} forward", fwd_flops, fwd["fastconv"], fwd["numpy"], fwd.get("pytorch")
        yield f"{name} backward", bwd_flops, bwd["fastconv"], bwd["numpy"], bwd.get("pytorch")
    for name, conv in FUSED.items():
        shape, cout = CONVS[conv]
        fwd_flops, bwd_flops, fwd, bwd = fused_functions(rng, torch, shape, cout,
                                                         compute_dx=conv != "conv1")
        yield (f"{name} forward (fused)", fwd_flops, fwd["fastconv"], fwd["numpy"],
               fwd.get("pytorch"))
        yield (f"{name} backward (fused)", bwd_flops, bwd["fastconv"], bwd["numpy"],
               bwd.get("pytorch"))
    for name, shape in POOLS.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal(ops.max_pool2d_forward(x).shape, dtype=np.float32)
        fwd_t, bwd_t = torch_pool(torch, x, dy) if torch else (None, None)
        yield (f"{name} forward", None, lambda x=x: ops.max_pool2d_forward(x),
               lambda x=x: reference.max_pool2d_forward(x), fwd_t)
        yield (f"{name} backward", None, lambda x=x, dy=dy: ops.max_pool2d_backward(x, dy),
               lambda x=x, dy=dy: reference.max_pool2d_backward(x, dy), bwd_t)


def measure_kernels(repeat, torch, peaks, rng):
    """One dict per kernel: its name, flops (None for pooling), median ms per
    backend ("fastconv", "numpy", "pytorch" when torch is given), and the
    figures derived from them: fastconv's GFLOP/s and its "percent_of_peak"
    against each of ``peaks`` ({"fma": GFLOP/s or None, "matmul": GFLOP/s})."""
    records = []
    for name, flops, compiled, ref, torch_fn in cases(rng, torch):
        ms = {"fastconv": median_ms(compiled, repeat), "numpy": median_ms(ref, repeat)}
        if torch:
            ms["pytorch"] = median_ms(torch_fn, repeat)
        record = {"kernel": name, "flops": flops, "ms": ms,
                  "speedup_vs_numpy": ms["numpy"] / ms["fastconv"]}
        if torch:
            record["pytorch_over_fastconv"] = ms["pytorch"] / ms["fastconv"]
        if flops:
            record["gflops"] = flops / ms["fastconv"] / 1e6
            record["percent_of_peak"] = percent_of_peaks(record["gflops"], peaks)
        records.append(record)
    return records


def kernel_table(records):
    """(headers, rows) of the kernel table for ``measure_kernels`` records."""
    with_torch = any("pytorch" in r["ms"] for r in records)
    headers = ["kernel (batch 64, float32)", "fastconv ms", "NumPy ms", "speed-up"]
    if with_torch:
        headers += ["PyTorch ms", "PyTorch / fastconv"]
    headers += ["GFLOP/s", "% of FMA peak", "% of matmul peak"]
    rows = []
    for r in records:
        ms = r["ms"]
        row = [r["kernel"], f"{ms['fastconv']:.3f}", f"{ms['numpy']:.3f}",
               f"{r['speedup_vs_numpy']:.1f}x"]
        if with_torch:
            row += [f"{ms['pytorch']:.3f}", f"{r['pytorch_over_fastconv']:.2f}x"]
        if r["flops"]:
            row += [f"{r['gflops']:.0f}", percent_cell(r["percent_of_peak"]["fma"]),
                    percent_cell(r["percent_of_peak"]["matmul"])]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    return headers, rows


def peak_line(peak):
    return f"matmul peak (2048^3 float32 numpy.matmul): {peak:.0f} GFLOP/s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per kernel")
    parser.add_argument("--threads", type=int, default=fastconv.get_num_threads(),
                        help="threads for fastconv and PyTorch (default: OMP_NUM_THREADS)")
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    torch = import_torch(args.threads)
    rng = np.random.default_rng(0)
    probe = fma_probe(args.threads)
    peaks = {"fma": probe and probe["gflops"], "matmul": matmul_gflops()}
    records = measure_kernels(args.repeat, torch, peaks, rng)

    for line in describe_machine(torch):
        print(line)
    print(fma_line(probe))
    print(peak_line(peaks["matmul"]))
    print()
    print_table(*kernel_table(records))


if __name__ == "__main__":
    main()
