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

#ifndef FASTCONV_BUILD_FLAGS
#define FASTCONV_BUILD_FLAGS "unknown"
#endif

/* Vector and tile sizes: a vector is the target's widest register (x86
 * without AVX has 16-byte SSE registers; 32-byte vectors would not map onto
 * them); accumulators + operands must fit the FC_VREGS vector registers.
 * FC_PIXEL_COUNTS / FC_ROW_COUNTS list the tile heights 1 .. FC_MAX_PIXELS /
 * FC_MAX_ROWS that the tile dispatchers compile (see FC_FORWARD_TILES). */
#define FC_UP_TO_6(X, A) X(1, A) X(2, A) X(3, A) X(4, A) X(5, A) X(6, A)
#define FC_UP_TO_8(X, A) FC_UP_TO_6(X, A) X(7, A) X(8, A)
#define FC_UP_TO_12(X, A) FC_UP_TO_8(X, A) X(9, A) X(10, A) X(11, A) X(12, A)
#if defined(__AVX512F__)
#define FC_VBYTES 64
#define FC_VREGS 32
#define FC_MAX_PIXELS 12  /* output pixels in one forward tile */
#define FC_PIXEL_COUNTS FC_UP_TO_12
#define FC_MAX_ROWS 12    /* kernel rows (kh, kw, ci) in one weight-gradient tile */
#define FC_ROW_COUNTS FC_UP_TO_12
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX__)
#define FC_VBYTES 16
#define FC_VREGS 16
#define FC_MAX_PIXELS 6
#define FC_PIXEL_COUNTS FC_UP_TO_6
#define FC_MAX_ROWS 6
#define FC_ROW_COUNTS FC_UP_TO_6
#else
#define FC_VBYTES 32
#define FC_VREGS 16
#define FC_MAX_PIXELS 6
#define FC_PIXEL_COUNTS FC_UP_TO_6
#define FC_MAX_ROWS 6
#define FC_ROW_COUNTS FC_UP_TO_6
#endif
#define FC_MAX_VECS 2     /* output-channel vectors in one tile */

/* The one list of each tile kind: X(height, vectors) for every tile the
 * dispatchers compile, a `case` each.  The assertions below, with the
 * compiler's refusal of duplicate case labels, make each list hold exactly
 * the sizes 1 .. FC_MAX_* x 1 .. FC_MAX_VECS, so a retuned limit cannot leave
 * a reachable tile size without code (and its outputs unwritten). */
#define FC_FORWARD_TILES(X) FC_PIXEL_COUNTS(X, 1) FC_PIXEL_COUNTS(X, 2)
#define FC_WGRAD_TILES(X) FC_ROW_COUNTS(X, 1) FC_ROW_COUNTS(X, 2)
/* The dispatchers' case label of tile (height, vectors). */
#define FC_TILE_KEY(H, V) ((H) * (FC_MAX_VECS + 1) + (V))

#define FC_PLUS_ONE(H, V) + 1
#define FC_ASSERT_FORWARD_TILE(P, V) \
    _Static_assert(1 <= (P) && (P) <= FC_MAX_PIXELS && 1 <= (V) && (V) <= FC_MAX_VECS, \
                   "forward tile (" #P ", " #V ") outside FC_MAX_PIXELS x FC_MAX_VECS");
#define FC_ASSERT_WGRAD_TILE(R, V) \
    _Static_assert(1 <= (R) && (R) <= FC_MAX_ROWS && 1 <= (V) && (V) <= FC_MAX_VECS, \
                   "weight-gradient tile (" #R ", " #V ") outside FC_MAX_ROWS x FC_MAX_VECS");
FC_FORWARD_TILES(FC_ASSERT_FORWARD_TILE)
FC_WGRAD_TILES(FC_ASSERT_WGRAD_TILE)
_Static_assert(0 FC_FORWARD_TILES(FC_PLUS_ONE) == FC_MAX_PIXELS * FC_MAX_VECS,
               "FC_FORWARD_TILES must list every tile up to FC_MAX_PIXELS x FC_MAX_VECS");
_Static_assert(0 FC_WGRAD_TILES(FC_PLUS_ONE) == FC_MAX_ROWS * FC_MAX_VECS,
               "FC_WGRAD_TILES must list every tile up to FC_MAX_ROWS x FC_MAX_VECS");
/* A tile's accumulators, its vectors of weights (or output gradients) and
 * the broadcast input stay in registers. */
_Static_assert(FC_MAX_PIXELS * FC_MAX_VECS + FC_MAX_VECS + 1 <= FC_VREGS,
               "a forward tile of FC_MAX_PIXELS x FC_MAX_VECS does not fit the registers");
_Static_assert(FC_MAX_ROWS * FC_MAX_VECS + FC_MAX_VECS + 1 <= FC_VREGS,
               "a weight-gradient tile of FC_MAX_ROWS x FC_MAX_VECS does not fit the registers");
#undef FC_ASSERT_FORWARD_TILE
#undef FC_ASSERT_WGRAD_TILE
#undef FC_PLUS_ONE

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
