"""Timing helpers shared by the benchmark scripts."""

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


def matmul_gflops(repeat=7):
    """float32 throughput of a 2048x2048x2048 numpy.matmul: the practical peak."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    return 2 * 2048**3 / median_ms(lambda: a @ a, repeat, warmup=2) / 1e6


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


def describe_machine(torch=None):
    """Lines that say where and how a benchmark ran."""
    info = fastconv.build_info()
    lines = [
        f"machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"NumPy {np.__version__}" + (f", PyTorch {torch.__version__}" if torch else ""),
        f"fastconv {fastconv.__version__}: threads {info['num_threads']} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"OpenMP {'on' if info['openmp'] else 'off'}, flags: {info['build_flags']}",
    ]
    return lines


def print_table(headers, rows):
    """A Markdown table, columns padded to line up."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
