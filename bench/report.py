"""Benchmark report: runs the kernel and training benchmarks, conv scaling
sweeps and the progress-bar overhead, and writes results.json, results.md
and PNG plots (kernels.png, scaling.png, training.png) to ``--out``.

    OMP_NUM_THREADS=2 python bench/report.py
    python bench/report.py --quick --out /tmp/fastconv-results   # smoke test

Kernel and sweep figures are given as "% of FMA peak" (against the FMA
throughput of bench/fma_probe.c, compiled and run here: the hardware's
limit) and "% of matmul peak" (against a 2048^3 float32 numpy.matmul).

Needs matplotlib for the plots (``pip install fastconv[bench]``); without it
only results.json and results.md are written.  PyTorch is optional: without
it its columns and series are left out.
"""

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

import numpy as np
from bench_kernels import conv_functions, kernel_table, measure_kernels, peak_line
from bench_training import (
    measure_training,
    notebook_model,
    random_data,
    training_entries,
    training_note,
    training_table,
)
from common import (
    budget_median_ms,
    describe_machine,
    format_table,
    import_torch,
    machine_info,
    matmul_gflops,
    percent_cell,
    percent_of_peaks,
)
from fma_peak import fma_line, fma_probe

import fastconv

# Plot label and colour per backend key, in plotting order.
BACKENDS = {
    "fastconv": ("fastconv (compiled)", "tab:blue"),
    "numpy": ("NumPy reference", "tab:orange"),
    "pytorch": ("PyTorch", "tab:green"),
}

# The sweeps vary one factor of conv2 (batch 64, 13x13, 32 -> 64 channels),
# 3x3 'valid', forward (relu) + backward with the input gradient.
# name: (axis label, values, quick values, value -> (input shape NHWC, out channels)).
SWEEPS = {
    "batch": ("batch size", [1, 4, 16, 64, 256], [1, 8],
              lambda v: ((v, 13, 13, 32), 64)),
    "image": ("image size (pixels per side)", [28, 56, 84, 112], [28, 42],
              lambda v: ((64, v, v, 32), 64)),
    "channels": ("channels (in = out)", [8, 16, 32, 64, 128], [8, 16],
                 lambda v: ((64, 13, 13, v), v)),
}
SWEEP_TITLES = {
    "batch": "batch size (13x13, 32 -> 64 ch)",
    "image": "image size (batch 64, 32 -> 64 ch)",
    "channels": "channels C -> C (batch 64, 13x13)",
}

PROGBAR_TARGET = 1.02  # verbose=1 steps may cost at most 2% more than verbose=0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=fastconv.get_num_threads(),
                        help="threads for fastconv and PyTorch (default: OMP_NUM_THREADS)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed calls per kernel and sweep point (default 30; 2 with --quick)")
    parser.add_argument("--train-repeat", type=int, default=None,
                        help="timed training/predict passes (default 5; 1 with --quick)")
    parser.add_argument("--images", type=int, default=None,
                        help="images per training pass (default 6400; 128 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sweep-budget", type=float, default=None,
                        help="seconds of timed calls per sweep point and backend at most "
                             "(default 3; 0.5 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sweeps, repeats and training passes, for smoke tests")
    parser.add_argument("--skip-numpy-training", action="store_true",
                        help="leave the (slow) NumPy backend out of the training benchmark")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="output directory (default: bench/results)")
    args = parser.parse_args()
    defaults = {"repeat": (30, 2), "train_repeat": (5, 1), "images": (6400, 128),
                "sweep_budget": (3.0, 0.5)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def log(message):
    """Progress on stderr, so stdout stays for the summary."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring

def measure_point(rng, torch, shape, cout, peaks, repeat, budget_s):
    """Forward + backward time, GFLOP/s and % of each of ``peaks`` per backend
    of the conv of a ``shape`` input to ``cout`` channels (its arrays are
    freed on return, before the next, larger point)."""
    fwd_flops, bwd_flops, forward, backward = conv_functions(rng, torch, shape, cout)
    flops = fwd_flops + bwd_flops
    point = {"input_shape": list(shape), "out_channels": cout, "flops": flops,
             "ms": {}, "calls": {}, "gflops": {}, "percent_of_peak": {}}
    for backend in forward:
        def step(f=forward[backend], b=backward[backend]):
            return f(), b()

        ms, calls = budget_median_ms(step, repeat, budget_s)
        point["ms"][backend], point["calls"][backend] = ms, calls
        point["gflops"][backend] = flops / ms / 1e6
        point["percent_of_peak"][backend] = percent_of_peaks(point["gflops"][backend], peaks)
    return point


def measure_sweep(name, torch, peaks, repeat, budget_s, quick):
    """``measure_point`` at each value of sweep ``name``."""
    _, values, quick_values, shape_of = SWEEPS[name]
    rng = np.random.default_rng(0)
    points = []
    for value in quick_values if quick else values:
        shape, cout = shape_of(value)
        log(f"  {name} = {value}: input {shape}, {cout} output channels")
        points.append({"value": value,
                       **measure_point(rng, torch, shape, cout, peaks, repeat, budget_s)})
    return points


def interleaved_median_s(fns, passes):
    """Median seconds of each of ``fns``, timed alternately ``passes`` times
    after one warm-up call each, so that drifting machine load hits all alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(passes):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def measure_progbar(x, labels, batch_size, passes):
    """Training step time of one model with the progress bar (verbose=1,
    printed to a null sink) and without (verbose=0), and their ratio."""
    model = notebook_model()

    def train(verbose):
        fastconv.set_backend("cython")
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=verbose,
                      shuffle=False)

    steps = math.ceil(len(x) / batch_size)
    silent, verbose = interleaved_median_s([lambda: train(0), lambda: train(1)], passes)
    ratio = verbose / silent
    return {"steps_per_pass": steps, "passes": passes,
            "step_ms_verbose0": silent / steps * 1e3, "step_ms_verbose1": verbose / steps * 1e3,
            "ratio": ratio, "target_ratio": PROGBAR_TARGET,
            "within_target": ratio <= PROGBAR_TARGET}


def run(args):
    """Every measurement, as the dict that becomes results.json."""
    fastconv.set_num_threads(args.threads)
    torch = import_torch(args.threads)
    results = {"machine": machine_info(torch),
               "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    log("FMA peak...")
    results["fma_probe"] = probe = fma_probe(args.threads, runs=1 if args.quick else 3)
    log("matmul peak...")
    results["matmul_peak_gflops"] = matmul_gflops(repeat=2 if args.quick else 7)
    peaks = {"fma": probe and probe["gflops"], "matmul": results["matmul_peak_gflops"]}
    log("kernels...")
    results["kernels"] = measure_kernels(args.repeat, torch, peaks, np.random.default_rng(0))
    results["sweeps"] = {}
    for name in SWEEPS:
        log(f"sweep over {SWEEPS[name][0]}...")
        results["sweeps"][name] = {
            "axis": SWEEPS[name][0], "title": SWEEP_TITLES[name],
            "points": measure_sweep(name, torch, peaks, args.repeat, args.sweep_budget,
                                    args.quick)}
    log("training...")
    x, labels = random_data(args.images)
    entries = training_entries(torch, x, labels, args.batch_size, args.skip_numpy_training)
    results["training"] = measure_training(entries, args.images, args.train_repeat)
    log("progress bar overhead...")
    results["progress_bar"] = measure_progbar(x, labels, args.batch_size,
                                              max(args.train_repeat, 3))
    return results


# ---------------------------------------------------------------- Markdown

def sweep_table(sweep):
    """(headers, rows): one row per sweep point, ms per backend, then
    GFLOP/s and % of the FMA and matmul peaks for fastconv."""
    backends = [b for b in BACKENDS if b in sweep["points"][0]["ms"]]
    headers = ([sweep["axis"], "GFLOP"] + [f"{BACKENDS[b][0]} ms" for b in backends]
               + ["fastconv GFLOP/s", "fastconv % of FMA peak", "fastconv % of matmul peak"])
    rows = [[p["value"], f"{p['flops'] / 1e9:.3g}"]
            + [f"{p['ms'][b]:.3f}" for b in backends]
            + [f"{p['gflops']['fastconv']:.0f}",
               percent_cell(p["percent_of_peak"]["fastconv"]["fma"]),
               percent_cell(p["percent_of_peak"]["fastconv"]["matmul"])]
            for p in sweep["points"]]
    return headers, rows


def progbar_line(progbar):
    verdict = "within" if progbar["within_target"] else "OVER"
    return (f"training step {progbar['step_ms_verbose0']:.2f} ms with verbose=0, "
            f"{progbar['step_ms_verbose1']:.2f} ms with verbose=1 (progress bar to a null "
            f"sink): ratio {progbar['ratio']:.3f}, {verdict} the {PROGBAR_TARGET:.2f} target "
            f"(median of {progbar['passes']} interleaved passes of "
            f"{progbar['steps_per_pass']} steps)")


def markdown(results, plots):
    """results.md: the machine, the kernel and training tables the bench
    scripts print, the sweeps, the progress-bar overhead and the plots."""
    s = results["settings"]
    lines = ["# fastconv benchmark results", "",
             f"{results['machine']['date']}; threads {s['threads']}"
             + (" (--quick: smoke-test settings, figures not meaningful)" if s["quick"] else ""),
             ""]
    lines += [f"- {line}" for line in describe_machine(info=results["machine"])]
    lines += [f"- {fma_line(results['fma_probe'])}",
              f"- {peak_line(results['matmul_peak_gflops'])}", ""]
    lines += ["## Kernels (MNIST convnet shapes)", "",
              f"Median of {s['repeat']} calls after warm-up.", ""]
    lines += format_table(*kernel_table(results["kernels"])) + [""]
    lines += ["## Conv scaling (3x3 'valid', forward + backward)", "",
              "One factor of conv2 (batch 64, 13x13, 32 -> 64 channels) varied at a time; "
              f"median of up to {s['repeat']} calls ({s['sweep_budget']:g} s budget per "
              "point and backend).", ""]
    for sweep in results["sweeps"].values():
        lines += [f"### {sweep['title']}", ""] + format_table(*sweep_table(sweep)) + [""]
    lines += ["## Training and predict throughput", "",
              training_note(s["images"], s["batch_size"], s["train_repeat"]), ""]
    lines += format_table(*training_table(results["training"])) + [""]
    lines += ["## Progress bar overhead", "", progbar_line(results["progress_bar"]), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{os.path.splitext(p)[0]}]({p})" for p in plots] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------- plots

def plain_log_y(ax):
    """Plain numbers (0.1, 1, 10) on a log y axis instead of powers of ten,
    with the 2x and 5x minor ticks labelled too when it spans under two decades."""
    from matplotlib.ticker import FuncFormatter
    low, high = ax.get_ylim()
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))

    def leading(v):
        return round(v / 10 ** math.floor(math.log10(v)), 6)

    def minor(v, _):
        return f"{v:g}" if high / low < 100 and leading(v) in (2, 5) else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def backend_label(key, machine):
    label = BACKENDS[key][0]
    return f"{label} {machine['pytorch']}" if key == "pytorch" else label


def plot_kernels(plt, results, path):
    """Grouped bars: time per kernel per backend, log scale."""
    records = results["kernels"]
    backends = [b for b in BACKENDS if b in records[0]["ms"]]
    width = 0.8 / len(backends)
    fig, ax = plt.subplots(figsize=(11, 5))
    for i, backend in enumerate(backends):
        positions = [k + (i - (len(backends) - 1) / 2) * width for k in range(len(records))]
        ax.bar(positions, [r["ms"][backend] for r in records], width,
               label=backend_label(backend, results["machine"]), color=BACKENDS[backend][1])
    ax.set_xticks(range(len(records)), [r["kernel"] for r in records], rotation=30, ha="right")
    ax.set_yscale("log")
    plain_log_y(ax)
    ax.set_ylabel("time per call (ms, log scale)")
    ax.set_title(f"Kernel time at the MNIST convnet's shapes, batch 64, float32, "
                 f"{results['settings']['threads']} threads")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scaling(plt, results, path):
    """Top row: forward + backward time per sweep, log-log, one line per
    backend; bottom row: GFLOP/s, with % of the FMA peak (of the matmul peak
    when the probe could not run) on the right axis."""
    probe = results["fma_probe"]
    peak_name, peak = (("FMA", probe["gflops"]) if probe
                       else ("matmul", results["matmul_peak_gflops"]))
    sweeps = results["sweeps"]
    fig, axes = plt.subplots(2, len(sweeps), figsize=(15, 8), sharex="col",
                             gridspec_kw={"height_ratios": [3, 2]})
    for column, sweep in enumerate(sweeps.values()):
        top, bottom = axes[0, column], axes[1, column]
        values = [p["value"] for p in sweep["points"]]
        for backend in BACKENDS:
            if backend not in sweep["points"][0]["ms"]:
                continue
            style = dict(marker="o", color=BACKENDS[backend][1],
                         label=backend_label(backend, results["machine"]))
            top.plot(values, [p["ms"][backend] for p in sweep["points"]], **style)
            bottom.plot(values, [p["gflops"][backend] for p in sweep["points"]], **style)
        top.set_xscale("log")
        top.set_yscale("log")
        plain_log_y(top)
        top.set_title(sweep["title"])
        top.set_ylabel("forward + backward time (ms)")
        top.grid(which="both", alpha=0.3)
        bottom.set_xlabel(sweep["axis"])
        bottom.set_ylabel("GFLOP/s")
        bottom.set_ylim(bottom=0)
        bottom.grid(alpha=0.3)
        bottom.set_xticks(values, [str(v) for v in values])
        bottom.minorticks_off()
        right = bottom.secondary_yaxis("right", functions=(lambda g: 100 * g / peak,
                                                           lambda p: p * peak / 100))
        right.set_ylabel(f"% of {peak_name} peak")
    axes[0, 0].legend()
    fig.suptitle(f"3x3 'valid' conv, forward (relu) + backward, float32, "
                 f"{results['settings']['threads']} threads; {peak_name} peak {peak:.0f} GFLOP/s")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def training_key(name):
    """The BACKENDS key of a training entry's name."""
    if name.startswith("PyTorch"):
        return "pytorch"
    return "numpy" if "(numpy)" in name else "fastconv"


def plot_training(plt, results, path):
    """Bars: training and predict images/s per backend, values written on them."""
    records = results["training"]
    s = results["settings"]
    names = [r["backend"] for r in records]
    colors = [BACKENDS[training_key(n)][1] for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title in [(axes[0], "train_images_per_s", "Training (fit)"),
                           (axes[1], "predict_images_per_s", "Inference (predict)")]:
        rates = [r[key] for r in records]
        bars = ax.bar(range(len(names)), rates, color=colors)
        ax.bar_label(bars, [f"{rate:,.0f}" for rate in rates], padding=2)
        ax.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names])
        ax.set_ylabel("throughput (images/s)")
        ax.set_title(title)
        ax.margins(y=0.12)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"MNIST convnet, batch {s['batch_size']}, float32, {s['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(results, out):
    """Writes the PNGs; returns their file names (none without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install fastconv[bench]): no plots")
        return []
    plots = {"kernels.png": plot_kernels, "scaling.png": plot_scaling,
             "training.png": plot_training}
    for name, plot in plots.items():
        plot(plt, results, os.path.join(out, name))
    return list(plots)


def main():
    args = parse_args()
    started = time.perf_counter()
    results = run(args)
    os.makedirs(args.out, exist_ok=True)
    plots = write_plots(results, args.out)
    results["elapsed_s"] = time.perf_counter() - started
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown(results, plots))
    for name in ["results.json", "results.md"] + plots:
        print(os.path.join(args.out, name))
    print(f"{results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
