"""Compiled Conv2D kernels (NHWC activations, packed weights).

These functions trust their arguments: shapes, dtypes and sizes are checked
by :mod:`fastconv.ops` before it calls them.  The arguments after the arrays
are keyword-only, so that every call names its strides, dilations and
padding (here and in ``_pool`` and ``_depthwise``).  Every loop runs without the
GIL and is shared among ``num_threads`` OpenMP threads; with one thread it
runs as a plain loop that enters no OpenMP parallel region at all, which is
what a process forked from a parent whose OpenMP threads it lacks can run.
With ``flush_denormal`` (``fastconv.set_flush_denormal``), each thread
reads and writes denormals as zero for each work item it runs
(``flush_denormal.h``); its floating-point mode is restored afterwards.
Indices, sizes and pitches are Py_ssize_t (64-bit): only tile-local counts
(pixels, rows and vectors of one register tile) are ints.

Weights are HWIO arrays whose output channels are zero-padded to a whole
number of vectors (``VECTOR_BYTES`` each); the register tiles in
``microkernels.h`` compute blocks of one or two vectors of output channels.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from microkernels cimport (
    FASTCONV_BUILD_FLAGS, FASTCONV_OPENMP, FC_FLUSH_DENORMAL, FC_MAX_PIXELS, FC_MAX_ROWS,
    FC_MAX_VECS, FC_VBYTES, fc_mxcsr_enter, fc_mxcsr_leave, fc_omp_max_threads, forward_tile,
    pool_max_winner, wgrad_tile,
)

import numpy

cdef enum:
    # The weight gradient sums over chunks of images whose inputs and output
    # gradients fit in this many bytes (a share of a core's L2 cache).
    CHUNK_BYTES = 256 * 1024

OPENMP = bool(FASTCONV_OPENMP)
BUILD_FLAGS = FASTCONV_BUILD_FLAGS.decode()
VECTOR_BYTES = FC_VBYTES
# The largest register tiles: output pixels of a forward tile, kernel rows
# (kh, kw, ci) of a weight-gradient tile, vectors of output channels of both.
TILE_PIXELS = FC_MAX_PIXELS
TILE_ROWS = FC_MAX_ROWS
TILE_VECTORS = FC_MAX_VECS
# This build can flush denormals to zero (x86: FTZ and DAZ in MXCSR).
FLUSH_DENORMAL = bool(FC_FLUSH_DENORMAL)


def omp_max_threads():
    """The OpenMP runtime's thread count for the calling thread's next
    parallel region (OMP_NUM_THREADS, or what ``omp_set_num_threads`` -- as
    threadpoolctl calls it -- last set); 1 without OpenMP."""
    return fc_omp_max_threads()


cdef void forward_blocks(int npix, const floating **pixels, Py_ssize_t row_pitch,
                         Py_ssize_t kh_lo, Py_ssize_t kh_hi,
                         const floating[:, :, :, ::1] weights, const floating *bias, bint relu,
                         floating *out, Py_ssize_t out_channels) noexcept nogil:
    """All output-channel blocks of one tile of ``npix`` pixels."""
    cdef Py_ssize_t lanes = FC_VBYTES // sizeof(floating)
    cdef Py_ssize_t block = FC_MAX_VECS * lanes
    cdef Py_ssize_t width = weights.shape[1] * weights.shape[2], w_pitch = weights.shape[3]
    cdef Py_ssize_t b, co
    cdef int ncols
    for b in range((out_channels + block - 1) // block):
        co = b * block
        ncols = <int>min(block, out_channels - co)
        forward_tile(npix, <int>((ncols + lanes - 1) // lanes), pixels, row_pitch, kh_lo, kh_hi,
                     width, &weights[0, 0, 0, co], w_pitch, bias + co if bias != NULL else NULL,
                     relu, out + co, out_channels, ncols)


cdef void forward_direct_tile(const floating[:, :, :, ::1] src, Py_ssize_t first, int npix,
                              Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t stride_h,
                              Py_ssize_t stride_w, const floating[:, :, :, ::1] weights,
                              const floating *bias, bint relu,
                              floating[:, :, :, ::1] out) noexcept nogil:
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


cdef inline Py_ssize_t source_index(Py_ssize_t virtual, Py_ssize_t dilation,
                                    Py_ssize_t size) noexcept nogil:
    """The source index of a position on the padded, dilated grid, or -1
    where padding or a dilation hole falls."""
    if virtual < 0 or virtual % dilation != 0 or virtual // dilation >= size:
        return -1
    return virtual // dilation


cdef void gather_row(const floating[:, :, :, ::1] src, Py_ssize_t n, Py_ssize_t row,
                     Py_ssize_t dilation_w, Py_ssize_t pad_left, Py_ssize_t buf_width,
                     floating *dst) noexcept nogil:
    """Row ``row`` of image n laid on the padded, dilated grid: ``buf_width``
    pixels, zeros where padding or dilation holes fall."""
    cdef Py_ssize_t channels = src.shape[3], col, u
    for col in range(buf_width):
        u = source_index(col - pad_left, dilation_w, src.shape[2])
        if u >= 0:
            memcpy(dst + col * channels, &src[n, row, u, 0], channels * sizeof(floating))
        else:
            memset(dst + col * channels, 0, channels * sizeof(floating))


cdef void forward_gather_row(const floating[:, :, :, ::1] src, Py_ssize_t n, Py_ssize_t oh,
                             Py_ssize_t out_w, Py_ssize_t stride_h, Py_ssize_t stride_w,
                             Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t pad_top,
                             Py_ssize_t pad_left, const floating[:, :, :, ::1] weights,
                             const floating *bias, bint relu, floating *out,
                             Py_ssize_t out_channels, floating *buf) noexcept nogil:
    """The first ``out_w`` pixels of output row (n, oh) of a convolution over
    a padded and/or dilated input, written to ``out`` (``out_channels`` per
    pixel); the kernel rows of input are first copied into ``buf``."""
    cdef Py_ssize_t kernel_h = weights.shape[0], kernel_w = weights.shape[1]
    cdef Py_ssize_t channels = src.shape[3]
    cdef Py_ssize_t buf_width = (out_w - 1) * stride_w + kernel_w
    cdef Py_ssize_t row_pitch = buf_width * channels
    cdef Py_ssize_t kh, row, kh_lo = kernel_h, kh_hi = 0, tile, ow
    cdef Py_ssize_t tiles = (out_w + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
    cdef int p, npix
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
        ow = tile * out_w // tiles
        npix = <int>((tile + 1) * out_w // tiles - ow)
        for p in range(npix):
            pixels[p] = buf + (ow + p) * stride_w * channels
        forward_blocks(npix, pixels, row_pitch, kh_lo, kh_hi, weights, bias, relu,
                       out + ow * out_channels, out_channels)


cdef void forward_direct_row(const floating[:, :, :, ::1] src, Py_ssize_t n, Py_ssize_t oh,
                             Py_ssize_t out_w, Py_ssize_t stride_h, Py_ssize_t stride_w,
                             const floating[:, :, :, ::1] weights, const floating *bias,
                             bint relu, floating *out, Py_ssize_t out_channels) noexcept nogil:
    """The first ``out_w`` pixels of output row (n, oh) of a convolution whose
    windows lie inside ``src`` (no padding, no dilation), written to ``out``
    (``out_channels`` per pixel); each pixel's sum as forward_direct_tile's."""
    cdef Py_ssize_t tiles = (out_w + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS, tile, ow
    cdef int p, npix
    cdef const floating *pixels[FC_MAX_PIXELS]
    for tile in range(tiles):
        ow = tile * out_w // tiles
        npix = <int>((tile + 1) * out_w // tiles - ow)
        for p in range(npix):
            pixels[p] = &src[n, oh * stride_h, (ow + p) * stride_w, 0]
        forward_blocks(npix, pixels, src.shape[2] * src.shape[3], 0, weights.shape[0], weights,
                       bias, relu, out + ow * out_channels, out_channels)


cpdef Py_ssize_t gather_elements(Py_ssize_t kernel_h, Py_ssize_t out_w, Py_ssize_t stride_w,
                                 Py_ssize_t kernel_w, Py_ssize_t channels):
    """Elements of each thread's row of ``forward``'s scratch: the kernel's
    rows of input, laid on the padded, dilated grid."""
    return kernel_h * ((out_w - 1) * stride_w + kernel_w) * channels


def forward(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] weights,
            const floating[::1] bias, floating[:, :, :, ::1] out, floating[:, ::1] scratch, *,
            Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t dilation_h,
            Py_ssize_t dilation_w, Py_ssize_t pad_top, Py_ssize_t pad_left, bint relu,
            int num_threads, bint flush_denormal):
    """out[n, oh, ow, :] = sum over the window of src on the padded, dilated grid.

    ``src`` (N, H, W, C); ``weights`` (KH, KW, C, COP) and ``bias`` (COP,)
    or None, their output channels zero-padded to whole vectors; ``out``
    (N, OH, OW, CO) is written.
    The virtual input is ``src`` with ``dilation - 1`` zeros between
    neighbours and ``pad_top``/``pad_left`` zeros before the first row/column.
    ``scratch`` has a row of at least ``gather_elements(KH, OW, stride_w, KW,
    C)`` elements for each of the ``num_threads`` threads: where padding or
    dilation lies under the windows, each output row's input rows are laid
    out there first (elsewhere ``src`` is read in place).
    """
    cdef unsigned saved
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef Py_ssize_t batch = out.shape[0], out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t total = batch * out_h * out_w, tiles, t, r
    cdef Py_ssize_t kernel_w = weights.shape[1]
    cdef bint direct = (dilation_h == 1 and dilation_w == 1 and pad_top == 0 and pad_left == 0
                        and (out_h - 1) * stride_h + weights.shape[0] <= src.shape[1]
                        and (out_w - 1) * stride_w + kernel_w <= src.shape[2])
    if total == 0:
        return
    if direct:
        tiles = (total + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
        # With one thread: a plain loop, no OpenMP region (see the module's docstring).
        if num_threads == 1:
            with nogil:
                for t in range(tiles):
                    saved = fc_mxcsr_enter(flush_denormal)
                    forward_direct_tile(src, t * FC_MAX_PIXELS,
                                        <int>min(FC_MAX_PIXELS, total - t * FC_MAX_PIXELS), out_h,
                                        out_w, stride_h, stride_w, weights, bias_ptr, relu, out)
                    fc_mxcsr_leave(saved)
        else:
            for t in prange(tiles, nogil=True, num_threads=num_threads, schedule="static"):
                saved = fc_mxcsr_enter(flush_denormal)
                forward_direct_tile(src, t * FC_MAX_PIXELS,
                                    <int>min(FC_MAX_PIXELS, total - t * FC_MAX_PIXELS), out_h,
                                    out_w, stride_h, stride_w, weights, bias_ptr, relu, out)
                fc_mxcsr_leave(saved)
        return
    if num_threads == 1:
        with nogil:
            for r in range(batch * out_h):
                saved = fc_mxcsr_enter(flush_denormal)
                forward_gather_row(src, r // out_h, r % out_h, out_w, stride_h, stride_w,
                                   dilation_h, dilation_w, pad_top, pad_left, weights, bias_ptr,
                                   relu, &out[r // out_h, r % out_h, 0, 0], out.shape[3],
                                   &scratch[0, 0])
                fc_mxcsr_leave(saved)
    else:
        for r in prange(batch * out_h, nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            forward_gather_row(src, r // out_h, r % out_h, out_w, stride_h, stride_w,
                               dilation_h, dilation_w, pad_top, pad_left, weights, bias_ptr,
                               relu, &out[r // out_h, r % out_h, 0, 0], out.shape[3],
                               &scratch[threadid(), 0])
            fc_mxcsr_leave(saved)


cpdef Py_ssize_t relu_max_pool_elements(Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                        Py_ssize_t channels, Py_ssize_t out_channels,
                                        Py_ssize_t stride_w, Py_ssize_t pool_h,
                                        Py_ssize_t pool_w, Py_ssize_t pooled_w):
    """Elements of the per-thread scratch ``forward_relu_max_pool`` needs:
    the ``pool_h`` convolution rows one pooled row reads, then the padded
    input rows of one convolution row (``gather_elements``)."""
    cdef Py_ssize_t conv_w = pooled_w * pool_w
    return (pool_h * conv_w * out_channels
            + gather_elements(kernel_h, conv_w, stride_w, kernel_w, channels))


cdef void relu_max_pool_row(const floating[:, :, :, ::1] src,
                            const floating[:, :, :, ::1] weights, const floating *bias,
                            floating[:, :, :, ::1] pooled, unsigned char[:, :, :, ::1] winners,
                            Py_ssize_t n, Py_ssize_t ph, Py_ssize_t stride_h,
                            Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                            Py_ssize_t pool_h, Py_ssize_t pool_w, bint direct,
                            floating *scratch) noexcept nogil:
    """Pooled row (n, ph): the ``pool_h`` ReLU convolution rows under it
    (their first pooled_w * pool_w pixels) into ``scratch``, then each
    window's maximum and winner."""
    cdef Py_ssize_t out_channels = pooled.shape[3], conv_w = pooled.shape[2] * pool_w
    cdef Py_ssize_t row_pitch = conv_w * out_channels, i, pw
    cdef floating *rows = scratch
    cdef floating *buf = scratch + pool_h * row_pitch
    for i in range(pool_h):
        if direct:
            forward_direct_row(src, n, ph * pool_h + i, conv_w, stride_h, stride_w, weights,
                               bias, True, rows + i * row_pitch, out_channels)
        else:
            forward_gather_row(src, n, ph * pool_h + i, conv_w, stride_h, stride_w, 1, 1,
                               pad_top, pad_left, weights, bias, True, rows + i * row_pitch,
                               out_channels, buf)
    for pw in range(pooled.shape[2]):
        pool_max_winner(rows + pw * pool_w * out_channels, row_pitch, out_channels, pool_h,
                        pool_w, out_channels, &pooled[n, ph, pw, 0], &winners[n, ph, pw, 0])


def forward_relu_max_pool(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] weights,
                          const floating[::1] bias, floating[:, :, :, ::1] pooled,
                          unsigned char[:, :, :, ::1] winners, floating[:, ::1] scratch, *,
                          Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                          Py_ssize_t pad_left, Py_ssize_t pool_h, Py_ssize_t pool_w,
                          int num_threads, bint flush_denormal):
    """pooled = max_pool(relu(conv(src) + bias)) with pool strides equal to
    the pool size ('valid'), in one pass: each pooled row computes only the
    convolution rows and columns its windows cover, in a scratch row.

    ``src`` (N, H, W, C); ``weights`` (KH, KW, C, COP) and ``bias`` (COP,)
    or None as for ``forward`` (undilated); ``pooled`` (N, PH, PW, CO) and
    ``winners`` (N, PH, PW, CO, uint8: the row-major index in its window of
    the cell the gradient goes to, as ``_pool.backward`` picks it) are
    written; ``scratch`` has a row of ``relu_max_pool_elements`` elements
    per thread.  Each value is bit-identical to ``forward`` then
    ``_pool.forward``.
    """
    cdef unsigned saved
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef Py_ssize_t pooled_h = pooled.shape[1], rows = pooled.shape[0] * pooled_h, r
    cdef bint direct = (pad_top == 0 and pad_left == 0
                        and (pooled_h * pool_h - 1) * stride_h + weights.shape[0] <= src.shape[1]
                        and (pooled.shape[2] * pool_w - 1) * stride_w + weights.shape[1]
                        <= src.shape[2])
    if rows == 0:
        return
    # With one thread: a plain loop, no OpenMP region (see the module's docstring).
    if num_threads == 1:
        with nogil:
            for r in range(rows):
                saved = fc_mxcsr_enter(flush_denormal)
                relu_max_pool_row(src, weights, bias_ptr, pooled, winners, r // pooled_h,
                                  r % pooled_h, stride_h, stride_w, pad_top, pad_left, pool_h,
                                  pool_w, direct, &scratch[0, 0])
                fc_mxcsr_leave(saved)
    else:
        for r in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            relu_max_pool_row(src, weights, bias_ptr, pooled, winners, r // pooled_h,
                              r % pooled_h, stride_h, stride_w, pad_top, pad_left, pool_h,
                              pool_w, direct, &scratch[threadid(), 0])
            fc_mxcsr_leave(saved)


cdef _scratch(const floating[:, :, :, ::1] like, int num_threads, Py_ssize_t size):
    """One scratch row of ``size`` elements per thread, of ``like``'s dtype."""
    return numpy.empty((max(num_threads, 1), max(size, 1)), dtype=numpy.asarray(like).dtype)


cdef void wgrad_images(const floating *images, Py_ssize_t image_h, Py_ssize_t image_w,
                       Py_ssize_t channels, Py_ssize_t nimages, const floating *dy,
                       Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t stride_h,
                       Py_ssize_t stride_w, floating *dk, Py_ssize_t kernel_h,
                       Py_ssize_t kernel_w, Py_ssize_t co_pad) noexcept nogil:
    """Adds the contribution of ``nimages`` consecutive images to dk
    (KH * KW * C + 1, COP), whose last row is the bias gradient: ``images``
    are (padded) inputs (image_h, image_w, C), ``dy`` their (OH, OW, COP)
    output gradients.  Each tile of dk stays in registers over all the images."""
    cdef const floating *rows[FC_MAX_ROWS]
    cdef Py_ssize_t width = kernel_w * channels, total = kernel_h * width
    cdef Py_ssize_t lanes = FC_VBYTES // sizeof(floating)
    cdef Py_ssize_t block = FC_MAX_VECS * lanes
    cdef Py_ssize_t tiles = (total + FC_MAX_ROWS - 1) // FC_MAX_ROWS
    cdef Py_ssize_t row_pitch = stride_h * image_w * channels
    cdef Py_ssize_t x_pitch = image_h * image_w * channels
    cdef Py_ssize_t tile, first, last, r, b, co, c, p
    cdef floating *dbias = dk + total * co_pad
    for tile in range(tiles):
        first = tile * total // tiles
        last = (tile + 1) * total // tiles
        for r in range(first, last):
            rows[r - first] = images + (r // width) * image_w * channels + r % width
        for b in range((co_pad + block - 1) // block):
            co = b * block
            wgrad_tile(<int>(last - first), <int>((min(block, co_pad - co) + lanes - 1) // lanes),
                       rows, row_pitch, stride_w * channels, x_pitch, nimages, out_h, out_w,
                       dy + co, co_pad, dk + first * co_pad + co, co_pad)
    for p in range(nimages * out_h * out_w):
        for c in range(co_pad):
            dbias[c] += dy[p * co_pad + c]


cdef void wgrad_part(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] dy,
                     floating *part, Py_ssize_t first, Py_ssize_t end, Py_ssize_t chunk,
                     Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                     Py_ssize_t pad_left, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                     floating *image) noexcept nogil:
    """part = the kernel and bias gradients of images [first, end): read in
    place ``chunk`` at a time (image is NULL), or one at a time laid on the
    padded grid in the scratch ``image``."""
    cdef Py_ssize_t channels = src.shape[3], out_h = dy.shape[1], out_w = dy.shape[2]
    cdef Py_ssize_t co_pad = dy.shape[3]
    cdef Py_ssize_t padded_h = (out_h - 1) * stride_h + kernel_h
    cdef Py_ssize_t padded_w = (out_w - 1) * stride_w + kernel_w
    cdef Py_ssize_t pitch = padded_w * channels, n = first, r, row
    memset(part, 0, (kernel_h * kernel_w * channels + 1) * co_pad * sizeof(floating))
    while n < end:
        if image == NULL:
            wgrad_images(&src[n, 0, 0, 0], src.shape[1], src.shape[2], channels,
                         min(chunk, end - n), &dy[n, 0, 0, 0], out_h, out_w, stride_h,
                         stride_w, part, kernel_h, kernel_w, co_pad)
            n = n + chunk
        else:
            for r in range(padded_h):
                row = source_index(r - pad_top, 1, src.shape[1])
                if row >= 0:
                    gather_row(src, n, row, 1, pad_left, padded_w, image + r * pitch)
                else:
                    memset(image + r * pitch, 0, pitch * sizeof(floating))
            wgrad_images(image, padded_h, padded_w, channels, 1, &dy[n, 0, 0, 0], out_h,
                         out_w, stride_h, stride_w, part, kernel_h, kernel_w, co_pad)
            n = n + 1


cpdef Py_ssize_t padded_elements(Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t stride_h,
                                 Py_ssize_t stride_w, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                 Py_ssize_t channels):
    """Elements of the per-thread scratch ``weight_gradient`` needs for a
    padded input: one image on the padded grid."""
    return ((out_h - 1) * stride_h + kernel_h) * ((out_w - 1) * stride_w + kernel_w) * channels


def weight_gradient(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] dy,
                    floating[:, :, ::1] dk_parts, Py_ssize_t stride_h, Py_ssize_t stride_w,
                    Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t kernel_h,
                    Py_ssize_t kernel_w, int num_threads, bint flush_denormal):
    """dk_parts[p] = the kernel and bias gradients of part p of the images.

    ``src`` (N, H, W, C); ``dy`` (N, OH, OW, COP), its channels zero-padded
    to whole vectors; ``dk_parts`` (P, KH * KW * C + 1, COP) is overwritten
    and summed over its first axis afterwards: rows (kh, kw, ci) hold
    sum_{n, oh, ow} window(src) x dy, the last row sum dy.  Part p covers
    the images [p * N // P, (p + 1) * N // P); the threads share the parts
    out, so the parts, and their sum, depend on P and not on the thread
    count.  A part's images are read in chunks small enough to stay in cache.
    """
    cdef unsigned saved
    cdef Py_ssize_t parts = dk_parts.shape[0], batch = src.shape[0], p
    cdef Py_ssize_t padded_h = (dy.shape[1] - 1) * stride_h + kernel_h
    cdef Py_ssize_t padded_w = (dy.shape[2] - 1) * stride_w + kernel_w
    cdef bint direct = (pad_top == 0 and pad_left == 0 and padded_h <= src.shape[1]
                        and padded_w <= src.shape[2])
    cdef Py_ssize_t image_bytes = (src.shape[1] * src.shape[2] * src.shape[3]
                                   + dy.shape[1] * dy.shape[2] * dy.shape[3]) * sizeof(floating)
    cdef Py_ssize_t chunk = max(1, min(CHUNK_BYTES // image_bytes, batch))
    cdef int threads = <int>max(1, min(num_threads, parts))
    cdef floating[:, ::1] bufs
    if batch == 0 or dy.shape[1] == 0 or dy.shape[2] == 0:
        dk_parts[...] = 0
        return
    if not direct:
        bufs = _scratch(src, threads, padded_elements(dy.shape[1], dy.shape[2], stride_h,
                                                      stride_w, kernel_h, kernel_w,
                                                      src.shape[3]))
    # With one thread: a plain loop, no OpenMP region (see the module's docstring).
    if threads == 1:
        with nogil:
            for p in range(parts):
                saved = fc_mxcsr_enter(flush_denormal)
                wgrad_part(src, dy, &dk_parts[p, 0, 0], p * batch // parts,
                           (p + 1) * batch // parts, chunk, stride_h, stride_w, pad_top, pad_left,
                           kernel_h, kernel_w, NULL if direct else &bufs[0, 0])
                fc_mxcsr_leave(saved)
    else:
        for p in prange(parts, nogil=True, num_threads=threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            wgrad_part(src, dy, &dk_parts[p, 0, 0], p * batch // parts,
                       (p + 1) * batch // parts, chunk, stride_h, stride_w, pad_top, pad_left,
                       kernel_h, kernel_w, NULL if direct else &bufs[threadid(), 0])
            fc_mxcsr_leave(saved)


def relu_backward(const floating[::1] y, const floating[::1] dy, floating[::1] out, *,
                  int num_threads):
    """out = dy where y > 0, else 0 (flat arrays of one length)."""
    cdef Py_ssize_t i
    if num_threads == 1:
        with nogil:
            for i in range(y.shape[0]):
                out[i] = dy[i] if y[i] > 0 else 0
    else:
        for i in prange(y.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
            out[i] = dy[i] if y[i] > 0 else 0
