/* FMA throughput probe: the float32 peak that bench/ measures kernels against.
 *
 *     cc -O2 -march=native -fopenmp fma_probe.c -o fma_probe && ./fma_probe 2
 *
 * Each thread runs 12 independent chains of vector FMAs (acc = acc * a + b,
 * which converges and never reaches denormals), enough to hide the FMA latency
 * on every current core, for about SECONDS seconds.  Prints one line:
 * "<GFLOP/s> GFLOP/s <threads> threads <isa>", counting an FMA as 2 FLOPs.
 * Argument: the thread count (default 1).  Without OpenMP it runs one thread
 * and says so; bench/fma_peak.py then runs one copy per thread at once. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SECONDS 0.3

#if defined(__AVX512F__)
#include <immintrin.h>
#define ISA "avx512"
#define LANES 16
typedef __m512 vec;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(acc, a, b) _mm512_fmadd_ps(acc, a, b)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ISA "avx2+fma"
#define LANES 8
typedef __m256 vec;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(acc, a, b) _mm256_fmadd_ps(acc, a, b)
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define ISA "neon"
#define LANES 4
typedef float32x4_t vec;
#define VSET(x) vdupq_n_f32(x)
#define VFMA(acc, a, b) vfmaq_f32(b, acc, a)
#else /* no FMA instructions: a multiply and an add, still counted as 2 FLOPs */
#define ISA "generic-16-byte"
#define LANES 4
typedef float vec __attribute__((vector_size(16)));
#define VSET(x) ((vec){x, x, x, x})
#define VFMA(acc, a, b) ((acc) * (a) + (b))
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* One statement per chain, so that the chains live in registers (a loop over
 * an array of accumulators leaves them in memory at -O2). */
#define FOR_EACH_CHAIN(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECLARE(i) vec acc##i = VSET(0.001f * i);
#define STEP(i) acc##i = VFMA(acc##i, a, b);
#define ADD(i) memcpy(lanes, &acc##i, sizeof lanes); \
    for (int lane = 0; lane < LANES; lane++) total += lanes[lane];

/* Runs ``iterations`` steps of every chain; returns a value that depends on
 * all of them, so that the compiler cannot drop the work. */
static float fma_chains(long iterations)
{
    const vec a = VSET(0.999999f), b = VSET(1e-6f);
    FOR_EACH_CHAIN(DECLARE)
    for (long n = 0; n < iterations; n++) {
        FOR_EACH_CHAIN(STEP)
    }
    float lanes[LANES], total = 0.0f;
    FOR_EACH_CHAIN(ADD)
    return total;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1) {
        fprintf(stderr, "usage: %s [threads >= 1]\n", argv[0]);
        return 2;
    }
#ifndef _OPENMP
    threads = 1;
#endif
    /* Calibrate on one thread: iterations per thread for about SECONDS. */
    long iterations = 1 << 16;
    double elapsed;
    volatile float sink = 0.0f;
    for (;;) {
        double start = now();
        sink += fma_chains(iterations);
        elapsed = now() - start;
        if (elapsed > 0.02)
            break;
        iterations *= 4;
    }
    iterations = (long)(iterations * SECONDS / elapsed);

    double start = now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        float result = fma_chains(iterations);
#ifdef _OPENMP
#pragma omp critical
#endif
        sink += result;
    }
    elapsed = now() - start;
    double flops = 2.0 * threads * (double)iterations * 12 * LANES; /* 12 chains */
    printf("%.1f GFLOP/s %d threads %s\n", flops / elapsed * 1e-9, threads, ISA);
    return sink == 12345.0f; /* never: keeps sink alive */
}
