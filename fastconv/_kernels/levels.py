"""The instruction-set levels that fastconv's kernels are compiled for.

Pure data: ``setup.py`` reads this file before fastconv is built.  A level
names the CPU features it needs (as GCC's ``__builtin_cpu_supports`` spells
them) and the compiler flags (GCC/Clang) that build its modules.  The x86-64
levels take the vector features of x86-64-v1 (SSE2), x86-64-v3 (AVX2, FMA) and
x86-64-v4 (AVX-512 F/BW/CD/DQ/VL); other architectures build the baseline only.
``native`` (``-march=native``) is built alone, and only on request, by
people who build fastconv for the machine that runs it.
"""

from collections import namedtuple

Level = namedtuple("Level", "name features flags")

AVX2_FEATURES = ("avx2", "fma")
AVX512_FEATURES = AVX2_FEATURES + ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")

BASELINE = Level("baseline", (), ())
X86_LEVELS = (
    Level("avx2", AVX2_FEATURES, ("-mavx2", "-mfma")),
    Level("avx512", AVX512_FEATURES, ("-mavx2", "-mfma", "-mavx512f", "-mavx512bw",
                                      "-mavx512cd", "-mavx512dq", "-mavx512vl")),
)
NATIVE = Level("native", (), ("-march=native",))

# Every level, lowest first: the order in which the dispatcher prefers them.
LEVELS = (BASELINE,) + X86_LEVELS + (NATIVE,)
