"""Compiled 2-D max and average pooling kernels (NHWC).

These functions trust their arguments: :mod:`fastconv.ops` checks them.
Windows are clipped to the input (padded cells are ignored).  The maximum
of a window that holds a NaN is NaN, and the gradient goes to the first NaN;
otherwise it goes to the first maximal element in row-major order.  The
per-window work of max pooling, vectorised over channels, is in
``microkernels.h``; average pooling's innermost loops run over the
contiguous channels, for the compiler to vectorise.  An average divides by
the number of cells of the window inside the input (TensorFlow's 'same').
Indices and sizes are Py_ssize_t (64-bit).  With one thread a kernel runs
as a plain loop that enters no OpenMP parallel region (see ``_conv``).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from microkernels cimport fc_mxcsr_enter, fc_mxcsr_leave, pool_max, pool_route


cdef inline void window(Py_ssize_t o, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t size,
                        Py_ssize_t pool, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """The input range [lo, hi) of output position o along one axis."""
    lo[0] = max(o * stride - pad, 0)
    hi[0] = min(o * stride - pad + pool, size)


cdef void pool_row(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                   Py_ssize_t n, Py_ssize_t oh, Py_ssize_t pool_h, Py_ssize_t pool_w,
                   Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                   Py_ssize_t pad_left) noexcept nogil:
    """Output row (n, oh) of the window maxima."""
    cdef Py_ssize_t channels = x.shape[3], h_lo, h_hi, w_lo, w_hi, ow
    cdef Py_ssize_t row_pitch = x.shape[2] * channels
    window(oh, stride_h, pad_top, x.shape[1], pool_h, &h_lo, &h_hi)
    for ow in range(out.shape[2]):
        window(ow, stride_w, pad_left, x.shape[2], pool_w, &w_lo, &w_hi)
        pool_max(&x[n, h_lo, w_lo, 0], row_pitch, channels, h_hi - h_lo, w_hi - w_lo, channels,
                 &out[n, oh, ow, 0])


def forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, *, Py_ssize_t pool_h,
            Py_ssize_t pool_w, Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
            Py_ssize_t pad_left, int num_threads, bint flush_denormal):
    """out (N, OH, OW, C) = window maxima of x (N, H, W, C)."""
    cdef unsigned saved
    cdef Py_ssize_t rows = out.shape[0] * out.shape[1], r, out_h = out.shape[1]
    if out.shape[2] == 0:
        return
    if num_threads == 1:
        with nogil:
            for r in range(rows):
                saved = fc_mxcsr_enter(flush_denormal)
                pool_row(x, out, r // out_h, r % out_h, pool_h, pool_w, stride_h, stride_w,
                         pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for r in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            pool_row(x, out, r // out_h, r % out_h, pool_h, pool_w, stride_h, stride_w,
                     pad_top, pad_left)
            fc_mxcsr_leave(saved)


cdef void zero_uncovered(floating *image, Py_ssize_t height, Py_ssize_t width,
                         Py_ssize_t channels, Py_ssize_t rows_lo, Py_ssize_t rows_hi,
                         Py_ssize_t cols_lo, Py_ssize_t cols_hi) noexcept nogil:
    """Zeroes an image (H, W, C) outside rows [rows_lo, rows_hi) x columns [cols_lo, cols_hi)."""
    cdef Py_ssize_t row_pitch = width * channels, h
    for h in range(height):
        if h < rows_lo or h >= rows_hi:
            memset(image + h * row_pitch, 0, row_pitch * sizeof(floating))
        else:
            memset(image + h * row_pitch, 0, cols_lo * channels * sizeof(floating))
            memset(image + h * row_pitch + cols_hi * channels, 0,
                   (width - cols_hi) * channels * sizeof(floating))


cdef void unpool_image(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                       floating[:, :, :, ::1] dx, Py_ssize_t n, Py_ssize_t pool_h,
                       Py_ssize_t pool_w, Py_ssize_t stride_h, Py_ssize_t stride_w,
                       Py_ssize_t pad_top, Py_ssize_t pad_left) noexcept nogil:
    """dx[n] = dy[n] routed to each window's maximum.  When the windows tile
    the image (strides equal to the pool size) every cell belongs to at most
    one window, so the cells are written once and only the uncovered border
    is zeroed; otherwise dx[n] is zeroed and the windows add to it."""
    cdef Py_ssize_t channels = x.shape[3], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t out_h = dy.shape[1], out_w = dy.shape[2]
    cdef Py_ssize_t row_pitch = width * channels
    cdef bint tiled = stride_h == pool_h and stride_w == pool_w
    cdef Py_ssize_t oh, ow, h_lo, h_hi, w_lo, w_hi, first_lo, first_hi, last_lo, last_hi
    if tiled:
        window(0, stride_h, pad_top, height, pool_h, &first_lo, &first_hi)
        window(out_h - 1, stride_h, pad_top, height, pool_h, &last_lo, &last_hi)
        h_lo, h_hi = first_lo, last_hi
        window(0, stride_w, pad_left, width, pool_w, &first_lo, &first_hi)
        window(out_w - 1, stride_w, pad_left, width, pool_w, &last_lo, &last_hi)
        zero_uncovered(&dx[n, 0, 0, 0], height, width, channels, h_lo, h_hi, first_lo, last_hi)
    else:
        memset(&dx[n, 0, 0, 0], 0, height * row_pitch * sizeof(floating))
    for oh in range(out_h):
        window(oh, stride_h, pad_top, height, pool_h, &h_lo, &h_hi)
        for ow in range(out_w):
            window(ow, stride_w, pad_left, width, pool_w, &w_lo, &w_hi)
            pool_route(&x[n, h_lo, w_lo, 0], row_pitch, channels, h_hi - h_lo, w_hi - w_lo,
                       channels, &dy[n, oh, ow, 0], &dx[n, h_lo, w_lo, 0], not tiled)


def backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
             floating[:, :, :, ::1] dx, *, Py_ssize_t pool_h, Py_ssize_t pool_w,
             Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
             int num_threads, bint flush_denormal):
    """dx (N, H, W, C) = dy routed to each window's maximum.  Images are
    independent, so threads share them out."""
    cdef unsigned saved
    cdef Py_ssize_t n
    if num_threads == 1:
        with nogil:
            for n in range(x.shape[0]):
                saved = fc_mxcsr_enter(flush_denormal)
                unpool_image(x, dy, dx, n, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for n in prange(x.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            unpool_image(x, dy, dx, n, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
            fc_mxcsr_leave(saved)


cdef void average_row(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                      Py_ssize_t n, Py_ssize_t oh, Py_ssize_t pool_h, Py_ssize_t pool_w,
                      Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                      Py_ssize_t pad_left) noexcept nogil:
    """Output row (n, oh) of the window averages."""
    cdef Py_ssize_t channels = x.shape[3], h, w, c, ow
    cdef Py_ssize_t h_lo = max(oh * stride_h - pad_top, 0)
    cdef Py_ssize_t h_hi = min(oh * stride_h - pad_top + pool_h, x.shape[1])
    cdef Py_ssize_t w_lo, w_hi
    cdef floating count
    cdef floating *acc
    cdef const floating *cell
    for ow in range(out.shape[2]):
        w_lo = max(ow * stride_w - pad_left, 0)
        w_hi = min(ow * stride_w - pad_left + pool_w, x.shape[2])
        acc = &out[n, oh, ow, 0]
        for c in range(channels):
            acc[c] = 0
        for h in range(h_lo, h_hi):
            for w in range(w_lo, w_hi):
                cell = &x[n, h, w, 0]
                for c in range(channels):
                    acc[c] += cell[c]
        count = (h_hi - h_lo) * (w_hi - w_lo)
        for c in range(channels):
            acc[c] /= count


def average_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, *,
                    Py_ssize_t pool_h, Py_ssize_t pool_w, Py_ssize_t stride_h,
                    Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                    int num_threads, bint flush_denormal):
    """out (N, OH, OW, C) = window averages of x (N, H, W, C)."""
    cdef unsigned saved
    cdef Py_ssize_t out_h = out.shape[1], r
    if num_threads == 1:
        with nogil:
            for r in range(out.shape[0] * out_h):
                saved = fc_mxcsr_enter(flush_denormal)
                average_row(x, out, r // out_h, r % out_h, pool_h, pool_w, stride_h, stride_w,
                            pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for r in prange(out.shape[0] * out_h, nogil=True, num_threads=num_threads,
                        schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            average_row(x, out, r // out_h, r % out_h, pool_h, pool_w, stride_h, stride_w,
                        pad_top, pad_left)
            fc_mxcsr_leave(saved)


cdef void spread_image(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                       Py_ssize_t n, Py_ssize_t pool_h, Py_ssize_t pool_w,
                       Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                       Py_ssize_t pad_left) noexcept nogil:
    """dx[n] = each window's dy[n] shared equally among its cells inside the image."""
    cdef Py_ssize_t channels = dx.shape[3], oh, ow, h, w, c
    cdef Py_ssize_t h_lo, h_hi, w_lo, w_hi
    cdef floating count
    cdef floating *cell
    cdef const floating *grad
    memset(&dx[n, 0, 0, 0], 0, dx.shape[1] * dx.shape[2] * channels * sizeof(floating))
    for oh in range(dy.shape[1]):
        h_lo = max(oh * stride_h - pad_top, 0)
        h_hi = min(oh * stride_h - pad_top + pool_h, dx.shape[1])
        for ow in range(dy.shape[2]):
            w_lo = max(ow * stride_w - pad_left, 0)
            w_hi = min(ow * stride_w - pad_left + pool_w, dx.shape[2])
            count = (h_hi - h_lo) * (w_hi - w_lo)
            grad = &dy[n, oh, ow, 0]
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    cell = &dx[n, h, w, 0]
                    for c in range(channels):
                        cell[c] += grad[c] / count


def average_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx, *,
                     Py_ssize_t pool_h, Py_ssize_t pool_w, Py_ssize_t stride_h,
                     Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                     int num_threads, bint flush_denormal):
    """dx (N, H, W, C) = the gradient of average_forward given dy (N, OH, OW, C).
    Images are independent, so threads share them out."""
    cdef unsigned saved
    cdef Py_ssize_t n
    if num_threads == 1:
        with nogil:
            for n in range(dx.shape[0]):
                saved = fc_mxcsr_enter(flush_denormal)
                spread_image(dy, dx, n, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for n in prange(dx.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            spread_image(dy, dx, n, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
            fc_mxcsr_leave(saved)


cdef void relu_unpool_row(const floating[:, :, :, ::1] dpooled,
                          const floating[:, :, :, ::1] pooled,
                          const unsigned char[:, :, :, ::1] winners, floating[:, :, :, ::1] dz,
                          Py_ssize_t n, Py_ssize_t ph, Py_ssize_t pool_h,
                          Py_ssize_t pool_w) noexcept nogil:
    """The dz rows under pooled row (n, ph), and after the last pooled row
    the rows no window covers."""
    cdef Py_ssize_t channels = dz.shape[3], pooled_w = pooled.shape[2]
    cdef Py_ssize_t row_pitch = dz.shape[2] * channels, covered = pooled_w * pool_w * channels
    cdef Py_ssize_t last = (ph + 1) * pool_h if ph + 1 < pooled.shape[1] else dz.shape[1]
    cdef Py_ssize_t oh, pw, j, c
    cdef unsigned char k
    cdef const floating *grad
    cdef const floating *value
    cdef const unsigned char *winner
    cdef floating *cell
    for oh in range(ph * pool_h, last):
        if oh >= (ph + 1) * pool_h:
            memset(&dz[n, oh, 0, 0], 0, row_pitch * sizeof(floating))
            continue
        for pw in range(pooled_w):
            grad = &dpooled[n, ph, pw, 0]
            value = &pooled[n, ph, pw, 0]
            winner = &winners[n, ph, pw, 0]
            for j in range(pool_w):
                k = <unsigned char>((oh - ph * pool_h) * pool_w + j)
                cell = &dz[n, oh, pw * pool_w + j, 0]
                for c in range(channels):
                    cell[c] = grad[c] if winner[c] == k and value[c] > 0 else 0
        memset(&dz[n, oh, 0, 0] + covered, 0, (row_pitch - covered) * sizeof(floating))


def relu_max_pool_backward(const floating[:, :, :, ::1] dpooled,
                           const floating[:, :, :, ::1] pooled,
                           const unsigned char[:, :, :, ::1] winners, floating[:, :, :, ::1] dz,
                           *, Py_ssize_t pool_h, Py_ssize_t pool_w, int num_threads,
                           bint flush_denormal):
    """dz (N, OH, OW, C) = the gradient of relu's input z under
    pooled = max_pool(relu(z)) (pool strides equal to the pool size,
    'valid') given dpooled, pooled and winners (N, PH, PW, C; see
    ``_conv.forward_relu_max_pool``): dpooled at each window's winner where
    the pooled value is > 0, zero elsewhere.  Bit-identical to
    ``backward`` then the ReLU mask."""
    cdef unsigned saved
    cdef Py_ssize_t pooled_h = pooled.shape[1], rows = pooled.shape[0] * pooled_h, r
    if num_threads == 1:
        with nogil:
            for r in range(rows):
                saved = fc_mxcsr_enter(flush_denormal)
                relu_unpool_row(dpooled, pooled, winners, dz, r // pooled_h, r % pooled_h,
                                pool_h, pool_w)
                fc_mxcsr_leave(saved)
    else:
        for r in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            relu_unpool_row(dpooled, pooled, winners, dz, r // pooled_h, r % pooled_h,
                            pool_h, pool_w)
            fc_mxcsr_leave(saved)
