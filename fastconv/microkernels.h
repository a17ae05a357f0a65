/* Register-tiled inner loops of the convolution kernels, in C with the
 * GCC/Clang vector extensions so that the accumulators stay in registers.
 *
 * One vector holds 64 bytes: 16 floats or 8 doubles.  The compiler lowers it
 * to whatever the target has (AVX-512, AVX2, SSE, NEON).  The bodies live in
 * microkernels_impl.h, included once per element type.
 */
#ifndef FASTCONV_MICROKERNELS_H
#define FASTCONV_MICROKERNELS_H

#include <stddef.h>
#include <string.h>

#ifdef _OPENMP
#define FASTCONV_OPENMP 1
#else
#define FASTCONV_OPENMP 0
#endif

#ifndef FASTCONV_BUILD_FLAGS
#define FASTCONV_BUILD_FLAGS "unknown"
#endif

#define FC_VBYTES 64
#define FC_MAX_PIXELS 8   /* output pixels in one forward tile */
#define FC_MAX_ROWS 8     /* kernel rows (kw, ci pairs) in one weight-gradient tile */
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
