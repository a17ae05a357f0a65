# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled 2-D max pooling kernels (NHWC).

These functions trust their arguments: :mod:`fastconv.ops` checks them.
Windows are clipped to the input (padded cells are ignored).  The maximum
of a window that holds a NaN is NaN, and the gradient goes to the first NaN;
otherwise it goes to the first maximal element in row-major order.
"""

from cython.parallel cimport prange, threadid
from libc.string cimport memset

import numpy

ctypedef fused floating:
    float
    double


cdef inline bint takes_over(floating value, floating best) noexcept nogil:
    """True when ``value`` replaces ``best`` as the window's maximum so far."""
    return (value > best) | ((value != value) & (best == best))


cdef void pool_row(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                   Py_ssize_t n, int oh, int pool_h, int pool_w, int stride_h, int stride_w,
                   int pad_top, int pad_left) noexcept nogil:
    cdef int channels = x.shape[3], height = x.shape[1], width = x.shape[2]
    cdef int h_lo = max(oh * stride_h - pad_top, 0)
    cdef int h_hi = min(oh * stride_h - pad_top + pool_h, height)
    cdef int ow, w_lo, w_hi, h, w, c
    cdef floating *best
    cdef const floating *cell
    cdef floating value
    for ow in range(out.shape[2]):
        w_lo = max(ow * stride_w - pad_left, 0)
        w_hi = min(ow * stride_w - pad_left + pool_w, width)
        best = &out[n, oh, ow, 0]
        cell = &x[n, h_lo, w_lo, 0]
        for c in range(channels):
            best[c] = cell[c]
        for h in range(h_lo, h_hi):
            for w in range(w_lo, w_hi):
                cell = &x[n, h, w, 0]
                for c in range(channels):
                    value = cell[c]
                    best[c] = value if (value > best[c]) | (value != value) else best[c]


def forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, int pool_h, int pool_w,
            int stride_h, int stride_w, int pad_top, int pad_left, int num_threads):
    """out (N, OH, OW, C) = window maxima of x (N, H, W, C)."""
    cdef Py_ssize_t rows = out.shape[0] * out.shape[1], r
    cdef int out_h = out.shape[1]
    if out.shape[2] == 0 or out.shape[3] == 0:
        return
    for r in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
        pool_row(x, out, r // out_h, r % out_h, pool_h, pool_w, stride_h, stride_w,
                 pad_top, pad_left)


cdef void unpool_image(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                       floating[:, :, :, ::1] dx, Py_ssize_t n, int pool_h, int pool_w,
                       int stride_h, int stride_w, int pad_top, int pad_left,
                       floating *best, int *argmax) noexcept nogil:
    """dx[n] = dy[n] routed to each window's maximum.  ``best`` and
    ``argmax`` (the winning cell's rank in the window) are scratch of C
    elements each."""
    cdef int channels = x.shape[3], height = x.shape[1], width = x.shape[2]
    cdef int oh, ow, h_lo, h_hi, w_lo, w_hi, h, w, c, k
    cdef const floating *image = &x[n, 0, 0, 0]
    cdef floating *grad_image = &dx[n, 0, 0, 0]
    cdef const floating *grad
    cdef const floating *cell
    cdef floating *grad_cell
    cdef floating value
    cdef bint take
    memset(grad_image, 0, height * width * channels * sizeof(floating))
    for oh in range(dy.shape[1]):
        h_lo = max(oh * stride_h - pad_top, 0)
        h_hi = min(oh * stride_h - pad_top + pool_h, height)
        for ow in range(dy.shape[2]):
            w_lo = max(ow * stride_w - pad_left, 0)
            w_hi = min(ow * stride_w - pad_left + pool_w, width)
            cell = image + (h_lo * width + w_lo) * channels
            for c in range(channels):
                best[c] = cell[c]
                argmax[c] = 0
            k = 0
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    cell = image + (h * width + w) * channels
                    for c in range(channels):
                        value = cell[c]
                        take = takes_over(value, best[c])
                        best[c] = value if take else best[c]
                        argmax[c] = k if take else argmax[c]
                    k += 1
            grad = &dy[n, oh, ow, 0]
            k = 0
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    grad_cell = grad_image + (h * width + w) * channels
                    for c in range(channels):
                        grad_cell[c] += grad[c] if argmax[c] == k else 0
                    k += 1


def backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
             floating[:, :, :, ::1] dx, int pool_h, int pool_w, int stride_h, int stride_w,
             int pad_top, int pad_left, int num_threads):
    """dx (N, H, W, C) = dy routed to each window's maximum.  Images are
    independent, so threads share them out."""
    cdef Py_ssize_t n
    cdef int threads = max(num_threads, 1)
    cdef floating[:, ::1] best = numpy.empty((threads, max(x.shape[3], 1)),
                                            dtype=numpy.asarray(x).dtype)
    cdef int[:, ::1] argmax = numpy.empty((threads, max(x.shape[3], 1)), dtype=numpy.intc)
    for n in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static"):
        unpool_image(x, dy, dx, n, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                     &best[threadid(), 0], &argmax[threadid(), 0])
