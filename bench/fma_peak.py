"""The machine's float32 FMA peak, measured by compiling and running
``fma_probe.c`` (12 independent chains of vector FMAs per thread).

    python bench/fma_peak.py --threads 2

Kernels are measured against this figure: "% of FMA peak" is how close they
come to the hardware, which a large numpy.matmul (the "matmul peak") may not
reach on every CPU.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile

from fastconv._checks import check_int

PROBE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fma_probe.c")

# Tried in order: the first set the compiler accepts is used.
COMPILE_FLAGS = (["-O2", "-march=native", "-fopenmp"], ["-O2", "-march=native"], ["-O2"])


def compile_probe(directory):
    """(path of the compiled probe in ``directory``, flags used), or None when
    there is no C compiler (``$CC``, else ``cc``) or no flag set compiles."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None
    binary = os.path.join(directory, "fma_probe")
    for flags in COMPILE_FLAGS:
        done = subprocess.run([compiler, *flags, PROBE_SOURCE, "-o", binary],
                              capture_output=True)
        if done.returncode == 0:
            return binary, flags
    return None


def run_probe(binary, threads):
    """(GFLOP/s, instruction set) of one probe run on ``threads`` threads.
    A probe built without OpenMP runs one thread: then ``threads`` copies run
    at once and their rates add up."""
    first = subprocess.run([binary, str(threads)], capture_output=True, text=True, check=True)
    gflops, _, ran, _, isa = first.stdout.split()
    if int(ran) == threads:
        return float(gflops), isa
    copies = [subprocess.Popen([binary, "1"], stdout=subprocess.PIPE, text=True)
              for _ in range(threads)]
    return sum(float(copy.communicate()[0].split()[0]) for copy in copies), isa


def fma_probe(threads, runs=3):
    """The probe's result as a dict: "gflops" (median of ``runs`` runs on
    ``threads`` threads), "threads", "isa" (the vector instructions it used)
    and "flags" (how it was compiled); None when it cannot be compiled."""
    threads, runs = check_int(threads, "threads"), check_int(runs, "runs")
    with tempfile.TemporaryDirectory(prefix="fastconv-fma-") as directory:
        built = compile_probe(directory)
        if built is None:
            return None
        binary, flags = built
        results = [run_probe(binary, threads) for _ in range(runs)]
    return {"gflops": statistics.median(g for g, _ in results), "threads": threads,
            "isa": results[0][1], "flags": " ".join(flags)}


def fma_peak_gflops(threads, runs=3):
    """The float32 FMA peak in GFLOP/s on ``threads`` threads (median of
    ``runs`` probe runs), or None when no C compiler is available."""
    probe = fma_probe(threads, runs)
    return None if probe is None else probe["gflops"]


def fma_line(probe):
    """One line naming the FMA peak and how it was measured (``probe`` as
    returned by ``fma_probe``, or None)."""
    if probe is None:
        return "FMA peak: not measured (no C compiler to build bench/fma_probe.c)"
    return (f"FMA peak (bench/fma_probe.c, 12 chains of {probe['isa']} FMAs per thread, "
            f"{probe['flags']}): {probe['gflops']:.0f} GFLOP/s on {probe['threads']} threads")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(fma_line(fma_probe(args.threads, args.runs)))


if __name__ == "__main__":
    main()
