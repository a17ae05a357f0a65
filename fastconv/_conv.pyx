# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled Conv2D kernels (NHWC activations, packed weights).

These functions trust their arguments: shapes, dtypes and sizes are checked
by :mod:`fastconv.ops` before it calls them.  Every loop runs without the
GIL and is shared among ``num_threads`` OpenMP threads.

Weights are HWIO arrays whose output channels are zero-padded to a whole
number of vectors (``VECTOR_BYTES`` each); the register tiles in
``microkernels.h`` compute blocks of one or two vectors of output channels.
"""

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

import numpy

ctypedef fused floating:
    float
    double

cdef extern from "microkernels.h" nogil:
    int FASTCONV_OPENMP
    const char *FASTCONV_BUILD_FLAGS
    enum:
        FC_MAX_PIXELS
        FC_MAX_ROWS
        FC_VBYTES
        FC_MAX_VECS
    void forward_tile_f32(int npix, int nvec, const float **pixels, Py_ssize_t row_pitch,
                          int kh_lo, int kh_hi, int width, const float *weights,
                          Py_ssize_t w_pitch, const float *bias, int relu, float *out,
                          Py_ssize_t out_pitch, int ncols)
    void forward_tile_f64(int npix, int nvec, const double **pixels, Py_ssize_t row_pitch,
                          int kh_lo, int kh_hi, int width, const double *weights,
                          Py_ssize_t w_pitch, const double *bias, int relu, double *out,
                          Py_ssize_t out_pitch, int ncols)
    void wgrad_tile_f32(int nrows, int nvec, const float **rows, Py_ssize_t row_pitch,
                        Py_ssize_t pix_pitch, Py_ssize_t x_pitch, int nimages, int out_h,
                        int out_w, const float *dy, Py_ssize_t dy_pitch, float *dkernel,
                        Py_ssize_t dk_pitch)
    void wgrad_tile_f64(int nrows, int nvec, const double **rows, Py_ssize_t row_pitch,
                        Py_ssize_t pix_pitch, Py_ssize_t x_pitch, int nimages, int out_h,
                        int out_w, const double *dy, Py_ssize_t dy_pitch, double *dkernel,
                        Py_ssize_t dk_pitch)

cdef enum:
    # The weight gradient sums over chunks of images whose inputs and output
    # gradients fit in this many bytes (a share of a core's L2 cache).
    CHUNK_BYTES = 256 * 1024

OPENMP = bool(FASTCONV_OPENMP)
BUILD_FLAGS = FASTCONV_BUILD_FLAGS.decode()
VECTOR_BYTES = FC_VBYTES


cdef inline void forward_tile(int npix, int nvec, const floating **pixels, Py_ssize_t row_pitch,
                              int kh_lo, int kh_hi, int width, const floating *weights,
                              Py_ssize_t w_pitch, const floating *bias, bint relu,
                              floating *out, Py_ssize_t out_pitch, int ncols) noexcept nogil:
    if floating is float:
        forward_tile_f32(npix, nvec, pixels, row_pitch, kh_lo, kh_hi, width, weights, w_pitch,
                         bias, relu, out, out_pitch, ncols)
    else:
        forward_tile_f64(npix, nvec, pixels, row_pitch, kh_lo, kh_hi, width, weights, w_pitch,
                         bias, relu, out, out_pitch, ncols)


cdef void forward_blocks(int npix, const floating **pixels, Py_ssize_t row_pitch,
                         int kh_lo, int kh_hi, const floating[:, :, :, ::1] weights,
                         const floating *bias, bint relu, floating *out,
                         int out_channels) noexcept nogil:
    """All output-channel blocks of one tile of ``npix`` pixels."""
    cdef int lanes = FC_VBYTES // sizeof(floating)
    cdef int block = FC_MAX_VECS * lanes
    cdef int width = weights.shape[1] * weights.shape[2], w_pitch = weights.shape[3]
    cdef int b, co, ncols
    for b in range((out_channels + block - 1) // block):
        co = b * block
        ncols = min(block, out_channels - co)
        forward_tile(npix, (ncols + lanes - 1) // lanes, pixels, row_pitch, kh_lo, kh_hi, width,
                     &weights[0, 0, 0, co], w_pitch, bias + co if bias != NULL else NULL, relu,
                     out + co, out_channels, ncols)


cdef void forward_direct_tile(const floating[:, :, :, ::1] src, Py_ssize_t first, int npix,
                              int out_h, int out_w, int stride_h, int stride_w,
                              const floating[:, :, :, ::1] weights, const floating *bias,
                              bint relu, floating[:, :, :, ::1] out) noexcept nogil:
    """Pixels first .. first + npix - 1 of the flattened (n, oh, ow) output,
    for a convolution that needs neither padding nor dilation."""
    cdef const floating *pixels[FC_MAX_PIXELS]
    cdef Py_ssize_t q, n, rest
    cdef int p
    for p in range(npix):
        q = first + p
        n = q // (out_h * out_w)
        rest = q - n * out_h * out_w
        pixels[p] = &src[n, (rest // out_w) * stride_h, (rest % out_w) * stride_w, 0]
    n = first // (out_h * out_w)
    rest = first - n * out_h * out_w
    forward_blocks(npix, pixels, src.shape[2] * src.shape[3], 0, weights.shape[0], weights,
                   bias, relu, &out[n, rest // out_w, rest % out_w, 0], out.shape[3])


cdef inline int source_index(int virtual, int dilation, int size) noexcept nogil:
    """The source index of a position on the padded, dilated grid, or -1
    where padding or a dilation hole falls."""
    if virtual < 0 or virtual % dilation != 0 or virtual // dilation >= size:
        return -1
    return virtual // dilation


cdef void gather_row(const floating[:, :, :, ::1] src, Py_ssize_t n, int row,
                     int dilation_w, int pad_left, int buf_width, floating *dst) noexcept nogil:
    """Row ``row`` of image n laid on the padded, dilated grid: ``buf_width``
    pixels, zeros where padding or dilation holes fall."""
    cdef int channels = src.shape[3], col, u
    for col in range(buf_width):
        u = source_index(col - pad_left, dilation_w, src.shape[2])
        if u >= 0:
            memcpy(dst + col * channels, &src[n, row, u, 0], channels * sizeof(floating))
        else:
            memset(dst + col * channels, 0, channels * sizeof(floating))


cdef void forward_gather_row(const floating[:, :, :, ::1] src, Py_ssize_t n, int oh,
                             int stride_h, int stride_w, int dilation_h, int dilation_w,
                             int pad_top, int pad_left, const floating[:, :, :, ::1] weights,
                             const floating *bias, bint relu, floating[:, :, :, ::1] out,
                             floating *buf) noexcept nogil:
    """Output row (n, oh) of a convolution over a padded and/or dilated input,
    whose kernel rows are first copied into ``buf``."""
    cdef int kernel_h = weights.shape[0], kernel_w = weights.shape[1], channels = src.shape[3]
    cdef int out_w = out.shape[2]
    cdef int buf_width = (out_w - 1) * stride_w + kernel_w
    cdef Py_ssize_t row_pitch = buf_width * channels
    cdef int kh, row, kh_lo = kernel_h, kh_hi = 0, tile, ow, p, npix
    cdef int tiles = (out_w + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
    cdef const floating *pixels[FC_MAX_PIXELS]
    for kh in range(kernel_h):
        row = source_index(oh * stride_h + kh - pad_top, dilation_h, src.shape[1])
        if row >= 0:
            gather_row(src, n, row, dilation_w, pad_left, buf_width, buf + kh * row_pitch)
            kh_lo = min(kh_lo, kh)
            kh_hi = kh + 1
        else:
            memset(buf + kh * row_pitch, 0, row_pitch * sizeof(floating))
    if kh_hi == 0:
        kh_lo = 0
    for tile in range(tiles):
        ow = <int>(<Py_ssize_t>tile * out_w // tiles)
        npix = <int>(<Py_ssize_t>(tile + 1) * out_w // tiles) - ow
        for p in range(npix):
            pixels[p] = buf + (ow + p) * stride_w * channels
        forward_blocks(npix, pixels, row_pitch, kh_lo, kh_hi, weights, bias, relu,
                       &out[n, oh, ow, 0], out.shape[3])


def forward(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] weights,
            const floating[::1] bias, floating[:, :, :, ::1] out,
            int stride_h, int stride_w, int dilation_h, int dilation_w,
            int pad_top, int pad_left, bint relu, int num_threads):
    """out[n, oh, ow, :] = sum over the window of src on the padded, dilated grid.

    ``src`` (N, H, W, C); ``weights`` (KH, KW, C, COP) and ``bias`` (COP,)
    or None, their output channels zero-padded to whole vectors; ``out``
    (N, OH, OW, CO) is written.
    The virtual input is ``src`` with ``dilation - 1`` zeros between
    neighbours and ``pad_top``/``pad_left`` zeros before the first row/column.
    """
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef Py_ssize_t batch = out.shape[0], out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t total = batch * out_h * out_w, tiles, t, r
    cdef int kernel_w = weights.shape[1]
    cdef bint direct = (dilation_h == 1 and dilation_w == 1 and pad_top == 0 and pad_left == 0
                        and (out_h - 1) * stride_h + weights.shape[0] <= src.shape[1]
                        and (out_w - 1) * stride_w + kernel_w <= src.shape[2])
    cdef floating[:, ::1] bufs
    if total == 0:
        return
    if direct:
        tiles = (total + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
        for t in prange(tiles, nogil=True, num_threads=num_threads, schedule="static"):
            forward_direct_tile(src, t * FC_MAX_PIXELS,
                                min(FC_MAX_PIXELS, total - t * FC_MAX_PIXELS), out_h, out_w,
                                stride_h, stride_w, weights, bias_ptr, relu, out)
        return
    bufs = _scratch(src, num_threads,
                    weights.shape[0] * ((out_w - 1) * stride_w + kernel_w) * src.shape[3])
    for r in prange(batch * out_h, nogil=True, num_threads=num_threads, schedule="static"):
        forward_gather_row(src, r // out_h, r % out_h, stride_h, stride_w, dilation_h,
                           dilation_w, pad_top, pad_left, weights, bias_ptr, relu, out,
                           &bufs[threadid(), 0])


cdef _scratch(const floating[:, :, :, ::1] like, int num_threads, Py_ssize_t size):
    """One scratch row of ``size`` elements per thread, of ``like``'s dtype."""
    return numpy.empty((max(num_threads, 1), max(size, 1)), dtype=numpy.asarray(like).dtype)


cdef inline void wgrad_tile(int nrows, int nvec, const floating **rows, Py_ssize_t row_pitch,
                            Py_ssize_t pix_pitch, Py_ssize_t x_pitch, int nimages, int out_h,
                            int out_w, const floating *dy, Py_ssize_t dy_pitch,
                            floating *dkernel, Py_ssize_t dk_pitch) noexcept nogil:
    if floating is float:
        wgrad_tile_f32(nrows, nvec, rows, row_pitch, pix_pitch, x_pitch, nimages, out_h, out_w,
                       dy, dy_pitch, dkernel, dk_pitch)
    else:
        wgrad_tile_f64(nrows, nvec, rows, row_pitch, pix_pitch, x_pitch, nimages, out_h, out_w,
                       dy, dy_pitch, dkernel, dk_pitch)


cdef void wgrad_images(const floating *images, int image_h, int image_w, int channels,
                       int nimages, const floating *dy, int out_h, int out_w, int stride_h,
                       int stride_w, floating *dk, int kernel_h, int kernel_w,
                       int co_pad) noexcept nogil:
    """Adds the contribution of ``nimages`` consecutive images to dk
    (KH * KW * C + 1, COP), whose last row is the bias gradient: ``images``
    are (padded) inputs (image_h, image_w, C), ``dy`` their (OH, OW, COP)
    output gradients.  Each tile of dk stays in registers over all the images."""
    cdef const floating *rows[FC_MAX_ROWS]
    cdef int width = kernel_w * channels, total = kernel_h * width
    cdef int lanes = FC_VBYTES // sizeof(floating)
    cdef int block = FC_MAX_VECS * lanes
    cdef int tiles = (total + FC_MAX_ROWS - 1) // FC_MAX_ROWS
    cdef Py_ssize_t row_pitch = <Py_ssize_t>stride_h * image_w * channels
    cdef Py_ssize_t x_pitch = <Py_ssize_t>image_h * image_w * channels
    cdef int tile, first, last, r, b, co, c
    cdef Py_ssize_t p
    cdef floating *dbias = dk + <Py_ssize_t>total * co_pad
    for tile in range(tiles):
        first = <int>(<Py_ssize_t>tile * total // tiles)
        last = <int>(<Py_ssize_t>(tile + 1) * total // tiles)
        for r in range(first, last):
            rows[r - first] = images + (r // width) * image_w * channels + r % width
        for b in range((co_pad + block - 1) // block):
            co = b * block
            wgrad_tile(last - first, (min(block, co_pad - co) + lanes - 1) // lanes, rows,
                       row_pitch, stride_w * channels, x_pitch, nimages, out_h, out_w, dy + co,
                       co_pad, dk + <Py_ssize_t>first * co_pad + co, co_pad)
    for p in range(<Py_ssize_t>nimages * out_h * out_w):
        for c in range(co_pad):
            dbias[c] += dy[p * co_pad + c]


def weight_gradient(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] dy,
                    floating[:, :, ::1] dk_parts, int stride_h, int stride_w,
                    int pad_top, int pad_left, int kernel_h, int kernel_w, int num_threads):
    """dk_parts[t] += thread t's share of the kernel and bias gradients.

    ``src`` (N, H, W, C); ``dy`` (N, OH, OW, COP), its channels zero-padded
    to whole vectors; ``dk_parts`` (threads, KH * KW * C + 1, COP), zeroed
    by the caller and summed over its first axis afterwards: rows
    (kh, kw, ci) hold sum_{n, oh, ow} window(src) x dy, the last row sum dy.
    Images are split into contiguous shares, one per thread, so the result
    is deterministic for a given thread count; a thread takes its share in
    chunks small enough to stay in cache.
    """
    cdef int threads = dk_parts.shape[0], co_pad = dk_parts.shape[2]
    cdef Py_ssize_t batch = src.shape[0]
    cdef int channels = src.shape[3], out_h = dy.shape[1], out_w = dy.shape[2]
    cdef int padded_h = (out_h - 1) * stride_h + kernel_h
    cdef int padded_w = (out_w - 1) * stride_w + kernel_w
    cdef bint direct = (pad_top == 0 and pad_left == 0 and padded_h <= src.shape[1]
                        and padded_w <= src.shape[2])
    cdef Py_ssize_t image_bytes = (<Py_ssize_t>src.shape[1] * src.shape[2] * channels
                                   + <Py_ssize_t>out_h * out_w * co_pad) * sizeof(floating)
    cdef int chunk = max(1, min(CHUNK_BYTES // image_bytes, batch))
    cdef floating[:, ::1] bufs
    cdef int t, row, r
    cdef Py_ssize_t n, end
    cdef floating *image
    if batch == 0 or out_h == 0 or out_w == 0:
        return
    if not direct:
        bufs = _scratch(src, threads, padded_h * padded_w * channels)
    for t in prange(threads, nogil=True, num_threads=num_threads, schedule="static"):
        n = t * batch // threads
        end = (t + 1) * batch // threads
        while n < end:
            if direct:
                wgrad_images(&src[n, 0, 0, 0], src.shape[1], src.shape[2], channels,
                             min(chunk, end - n), &dy[n, 0, 0, 0], out_h, out_w, stride_h,
                             stride_w, &dk_parts[t, 0, 0], kernel_h, kernel_w, co_pad)
                n = n + chunk
            else:
                image = &bufs[t, 0]
                for r in range(padded_h):
                    row = source_index(r - pad_top, 1, src.shape[1])
                    if row >= 0:
                        gather_row(src, n, row, 1, pad_left, padded_w,
                                   image + r * padded_w * channels)
                    else:
                        memset(image + r * padded_w * channels, 0,
                               padded_w * channels * sizeof(floating))
                wgrad_images(image, padded_h, padded_w, channels, 1, &dy[n, 0, 0, 0], out_h,
                             out_w, stride_h, stride_w, &dk_parts[t, 0, 0], kernel_h, kernel_w,
                             co_pad)
                n = n + 1


def relu_backward(const floating[::1] y, const floating[::1] dy, floating[::1] out,
                  int num_threads):
    """out = dy where y > 0, else 0 (flat arrays of one length)."""
    cdef Py_ssize_t i
    for i in prange(y.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
        out[i] = dy[i] if y[i] > 0 else 0
