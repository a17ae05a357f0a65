/* Inner loops of the convolution and pooling kernels, in C with the GCC/Clang
 * vector extensions: register tiles whose accumulators stay in registers,
 * and per-window pooling vectorised over channels.
 *
 * One vector holds 64 bytes (16 floats or 8 doubles) when the target has
 * AVX-512, 16 bytes on x86 without AVX (SSE), else 32 bytes; the compiler
 * lowers it to the target's instructions (AVX-512, AVX2, SSE, NEON).  The
 * bodies live in microkernels_impl.h, included once per element type.
 */
#ifndef FASTCONV_MICROKERNELS_H
#define FASTCONV_MICROKERNELS_H

#include <stddef.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define FASTCONV_OPENMP 1
/* The OpenMP runtime's thread count for the next parallel region of the
 * calling thread: OMP_NUM_THREADS, or what omp_set_num_threads (as called
 * by threadpoolctl) last set. */
static inline int fc_omp_max_threads(void) { return omp_get_max_threads(); }
#else
#define FASTCONV_OPENMP 0
static inline int fc_omp_max_threads(void) { return 1; }
#endif

/* *counter += 1, atomically; returns the new value.  The increments of all
 * threads are ordered (acquire-release): the thread that sees the last one
 * sees every write the others made before theirs. */
static inline long long fc_count(long long *counter)
{
    return __atomic_add_fetch(counter, 1, __ATOMIC_ACQ_REL);
}

#ifndef FASTCONV_BUILD_FLAGS
#define FASTCONV_BUILD_FLAGS "unknown"
#endif

/* Vector and tile sizes: a vector is the target's widest register (x86
 * without AVX has 16-byte SSE registers; 32-byte vectors would not map onto
 * them); accumulators + operands must fit the register file (32 vector
 * registers with AVX-512, 16 otherwise). */
#if defined(__AVX512F__)
#define FC_VBYTES 64
#define FC_MAX_PIXELS 8   /* output pixels in one forward tile */
#define FC_MAX_ROWS 12    /* kernel rows (kh, kw, ci) in one weight-gradient tile */
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX__)
#define FC_VBYTES 16
#define FC_MAX_PIXELS 6
#define FC_MAX_ROWS 6
#else
#define FC_VBYTES 32
#define FC_MAX_PIXELS 6
#define FC_MAX_ROWS 6
#endif
#define FC_MAX_VECS 2     /* output-channel vectors in one tile */

#define FC_T float
#define FC_INT int
#define FC_NAME(name) name##_f32
#include "microkernels_impl.h"
#undef FC_T
#undef FC_INT
#undef FC_NAME

#define FC_T double
#define FC_INT long long
#define FC_NAME(name) name##_f64
#include "microkernels_impl.h"
#undef FC_T
#undef FC_INT
#undef FC_NAME

#endif
