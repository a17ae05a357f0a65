"""What the running CPU, and the operating system, let fastconv's kernels use.

Compiled without any ``-m`` flag, so that it runs on every CPU of its
architecture.  GCC's and Clang's ``__builtin_cpu_supports`` read CPUID and
report AVX and AVX-512 features only when the operating system saves their
register state (XGETBV), so a "yes" means the instructions can run here.
"""

cdef extern from *:
    """
    #include <string.h>

    /* 1 if the CPU and OS support `feature`, 0 if not, -1 if this build cannot tell. */
    static int fc_cpu_supports(const char *feature)
    {
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
    #define FC_FEATURE(name) \\
        if (strcmp(feature, name) == 0) return __builtin_cpu_supports(name) != 0;
        FC_FEATURE("sse3") FC_FEATURE("avx2") FC_FEATURE("fma") FC_FEATURE("avx512f")
        FC_FEATURE("avx512bw")
        FC_FEATURE("avx512cd") FC_FEATURE("avx512dq") FC_FEATURE("avx512vl")
    #undef FC_FEATURE
    #endif
        (void)feature;
        return -1;
    }
    """
    int fc_cpu_supports(const char *feature)


def supports(str feature):
    """True if this CPU and OS support ``feature`` ('sse3', 'avx2', 'fma', 'avx512f',
    'avx512bw', 'avx512cd', 'avx512dq' or 'avx512vl'); ValueError for a
    feature this build cannot test."""
    result = fc_cpu_supports(feature.encode())
    if result < 0:
        raise ValueError(f"fastconv cannot test for the CPU feature {feature!r} here")
    return bool(result)
