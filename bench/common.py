"""Timing helpers shared by the benchmark scripts."""

import datetime
import os
import platform
import statistics
import time

import numpy as np

import fastconv


def median_ms(fn, repeat, warmup=3):
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def budget_times_ms(fn, repeat, budget_s):
    """Wall times in ms of ``fn()``: one untimed warm-up call, then ``repeat``
    timed calls, fewer (at least one) when they would take longer than
    ``budget_s`` seconds at the warm-up call's pace."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    times = []
    for _ in range(max(1, min(repeat, int(budget_s / max(once, 1e-9))))):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def budget_median_ms(fn, repeat, budget_s):
    """(median ms, calls timed) of ``fn()``, timed as budget_times_ms times it."""
    times = budget_times_ms(fn, repeat, budget_s)
    return statistics.median(times), len(times)


def matmul_gflops(repeat=7):
    """float32 throughput of a 2048x2048x2048 numpy.matmul: the practical peak."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    return 2 * 2048**3 / median_ms(lambda: a @ a, repeat, warmup=2) / 1e6


def percent_of_peaks(gflops, peaks):
    """{"fma": %, "matmul": %} of ``gflops`` against ``peaks`` (GFLOP/s by
    the same keys; a peak that is None gives None)."""
    return {name: None if peak is None else 100 * gflops / peak for name, peak in peaks.items()}


def percent_cell(percent):
    return "-" if percent is None else f"{percent:.0f}%"


def import_torch(threads):
    """torch limited to ``threads`` threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch=None):
    """Where and how a benchmark runs, as a dict: CPU, cores, threads,
    OMP_NUM_THREADS, Python/NumPy/PyTorch versions, fastconv build, date."""
    info = fastconv.build_info()
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pytorch": torch.__version__ if torch else None,
        "pytorch_threads": torch.get_num_threads() if torch else None,
        "fastconv": fastconv.__version__,
        "threads": info["num_threads"],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "openmp": bool(info["openmp"]),
        "build_flags": info["build_flags"],
        "vector_bytes": info.get("vector_bytes"),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def describe_machine(torch=None, info=None):
    """Lines that say where and how a benchmark ran (from ``info``, a
    ``machine_info`` dict, measured now when not given)."""
    info = info or machine_info(torch)
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"NumPy {info['numpy']}" + (f", PyTorch {info['pytorch']}" if info["pytorch"] else ""),
        f"fastconv {info['fastconv']}: threads {info['threads']} "
        f"(OMP_NUM_THREADS={info['omp_num_threads']}), "
        f"OpenMP {'on' if info['openmp'] else 'off'}, flags: {info['build_flags']}",
    ]
    return lines


def format_table(headers, rows):
    """A Markdown table, columns padded to line up, as a list of lines."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    return ([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
            + [line(row) for row in cells[1:]])


def print_table(headers, rows):
    """Prints a Markdown table, columns padded to line up."""
    print("\n".join(format_table(headers, rows)))
