/* Flush-to-zero for the compiled kernels (fastconv.set_flush_denormal).
 *
 * On x86, fc_mxcsr_enter(1) sets FTZ (denormal results become 0) and DAZ
 * (denormal inputs read as 0) in the calling thread's MXCSR and returns its
 * previous value; fc_mxcsr_leave(saved) restores it.  MXCSR is per thread:
 * each OpenMP thread calls the pair around its share of the work, so code
 * outside the kernels (NumPy, the user's) keeps its own mode.  Elsewhere
 * both do nothing and FC_FLUSH_DENORMAL is 0.
 */
#ifndef FASTCONV_FLUSH_DENORMAL_H
#define FASTCONV_FLUSH_DENORMAL_H

#if defined(__SSE__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 1)
#include <xmmintrin.h>
#define FC_FLUSH_DENORMAL 1
#define FC_MXCSR_FTZ_DAZ 0x8040u

static inline unsigned fc_mxcsr_enter(int flush)
{
    unsigned saved = _mm_getcsr();
    if (flush)
        _mm_setcsr(saved | FC_MXCSR_FTZ_DAZ);
    return saved;
}

static inline void fc_mxcsr_leave(unsigned saved)
{
    if (_mm_getcsr() != saved)
        _mm_setcsr(saved);
}
#else
#define FC_FLUSH_DENORMAL 0
static inline unsigned fc_mxcsr_enter(int flush) { (void)flush; return 0; }
static inline void fc_mxcsr_leave(unsigned saved) { (void)saved; }
#endif

#endif
