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
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.string cimport memcpy, memset

from microkernels cimport (
    FASTCONV_BUILD_FLAGS, FASTCONV_OPENMP, FC_FLUSH_DENORMAL, FC_MAX_PIXELS, FC_MAX_ROWS,
    FC_MAX_VECS, FC_VBYTES, fc_mxcsr_enter, fc_mxcsr_leave, fc_omp_max_threads,
    forward_tile, pool_max_winner, sum_pixels, wgrad_tile,
)


cdef enum:
    # The weight gradient sums over chunks of images whose inputs and output
    # gradients fit in this many bytes (a share of a core's L2 cache).
    CHUNK_BYTES = 256 * 1024
    # The forward pass reads weights larger than this (more than a core's L2
    # holds) block by block of output channels.
    WEIGHT_BYTES = 2 * 1024 * 1024

OPENMP = bool(FASTCONV_OPENMP)
BUILD_FLAGS = FASTCONV_BUILD_FLAGS.decode()
VECTOR_BYTES = FC_VBYTES
# The largest register tiles: output pixels of a forward tile, kernel rows
# (kh, kw, ci) of a weight-gradient tile, vectors of output channels of both.
TILE_PIXELS = FC_MAX_PIXELS
TILE_ROWS = FC_MAX_ROWS
TILE_VECTORS = FC_MAX_VECS
# Weights of more bytes than this are read block by block of output channels.
FORWARD_WEIGHT_BYTES = WEIGHT_BYTES
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
                         floating *out, Py_ssize_t out_channels, Py_ssize_t out_pitch,
                         Py_ssize_t first_block=0,
                         Py_ssize_t end_block=PY_SSIZE_T_MAX) noexcept nogil:
    """The output-channel blocks [first_block, end_block) (all by default) of
    one tile of ``npix`` pixels, pixel p's ``out_channels`` outputs at
    out + p * out_pitch."""
    cdef Py_ssize_t lanes = FC_VBYTES // sizeof(floating)
    cdef Py_ssize_t block = FC_MAX_VECS * lanes
    cdef Py_ssize_t width = weights.shape[1] * weights.shape[2], w_pitch = weights.shape[3]
    cdef Py_ssize_t b, co
    cdef int ncols
    for b in range(first_block, min(end_block, (out_channels + block - 1) // block)):
        co = b * block
        ncols = <int>min(block, out_channels - co)
        forward_tile(npix, <int>((ncols + lanes - 1) // lanes), pixels, row_pitch, kh_lo, kh_hi,
                     width, &weights[0, 0, 0, co], w_pitch, bias + co if bias != NULL else NULL,
                     relu, out + co, out_pitch, ncols)


cdef void forward_direct_unit(const floating[:, :, :, ::1] src, Py_ssize_t unit,
                              bint by_block, Py_ssize_t stride_h, Py_ssize_t stride_w,
                              const floating[:, :, :, ::1] weights, const floating *bias,
                              bint relu, floating[:, :, :, ::1] out) noexcept nogil:
    """Unit ``unit`` of a convolution that needs neither padding nor
    dilation: tile t (pixels t * FC_MAX_PIXELS ... of the flattened (n, oh,
    ow) output), t = unit, for all output-channel blocks; or, ``by_block``,
    t = unit % tiles for block unit // tiles only (the tiles that share a
    block of weights run in turn, which then stay in cache)."""
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t total = out.shape[0] * out_h * out_w
    cdef Py_ssize_t tiles = (total + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
    cdef Py_ssize_t first = (unit % tiles if by_block else unit) * FC_MAX_PIXELS
    cdef int npix = <int>min(FC_MAX_PIXELS, total - first)
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
    if by_block:
        forward_blocks(npix, pixels, src.shape[2] * src.shape[3], 0, weights.shape[0], weights,
                       bias, relu, &out[n, rest // out_w, rest % out_w, 0], out.shape[3],
                       out.shape[3], unit // tiles, unit // tiles + 1)
    else:
        forward_blocks(npix, pixels, src.shape[2] * src.shape[3], 0, weights.shape[0], weights,
                       bias, relu, &out[n, rest // out_w, rest % out_w, 0], out.shape[3],
                       out.shape[3])


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
                             Py_ssize_t out_channels, Py_ssize_t out_pitch,
                             floating *buf) noexcept nogil:
    """The first ``out_w`` pixels of output row (n, oh) of a convolution over
    a padded and/or dilated input, pixel ow's ``out_channels`` outputs
    written to out + ow * out_pitch; the kernel rows of input are first
    copied into ``buf``."""
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
                       out + ow * out_pitch, out_channels, out_pitch)


cdef void forward_direct_rows(const floating[:, :, :, ::1] src, Py_ssize_t n, Py_ssize_t oh,
                              Py_ssize_t rows, Py_ssize_t out_w, Py_ssize_t stride_h,
                              Py_ssize_t stride_w, const floating[:, :, :, ::1] weights,
                              const floating *bias, bint relu, floating *out,
                              Py_ssize_t out_channels) noexcept nogil:
    """Output rows oh .. oh + rows - 1 of image n, their first ``out_w``
    pixels, of a convolution whose windows lie inside ``src`` (no padding,
    no dilation), column by column: pixel (oh + i, ow) is number q = ow *
    rows + i, its ``out_channels`` outputs written to out + q * out_channels.
    Tiles of up to FC_MAX_PIXELS consecutive q (the rows' columns together
    fill larger tiles than one row's); each pixel's sum as
    forward_direct_unit's."""
    cdef Py_ssize_t total = rows * out_w, tiles = (total + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
    cdef Py_ssize_t tile, q, i, ow
    cdef int p, npix
    cdef const floating *pixels[FC_MAX_PIXELS]
    for tile in range(tiles):
        q = tile * total // tiles
        npix = <int>((tile + 1) * total // tiles - q)
        i, ow = q % rows, q // rows
        for p in range(npix):
            pixels[p] = &src[n, (oh + i) * stride_h, ow * stride_w, 0]
            i = i + 1
            if i == rows:
                i, ow = 0, ow + 1
        forward_blocks(npix, pixels, src.shape[2] * src.shape[3], 0, weights.shape[0], weights,
                       bias, relu, out + q * out_channels, out_channels, out_channels)


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
    cdef Py_ssize_t total = batch * out_h * out_w, tiles, units, t, r
    cdef Py_ssize_t kernel_w = weights.shape[1]
    cdef Py_ssize_t blocks = (weights.shape[3] * sizeof(floating) + FC_MAX_VECS * FC_VBYTES
                              - 1) // (FC_MAX_VECS * FC_VBYTES)
    # Weights too large to stay in cache are read once per block of output
    # channels (shared by all pixel tiles) rather than once per tile.
    cdef bint by_block = weights.size * sizeof(floating) > WEIGHT_BYTES
    cdef bint direct = (dilation_h == 1 and dilation_w == 1 and pad_top == 0 and pad_left == 0
                        and (out_h - 1) * stride_h + weights.shape[0] <= src.shape[1]
                        and (out_w - 1) * stride_w + kernel_w <= src.shape[2])
    if total == 0 or out.shape[3] == 0:
        return
    if direct:
        tiles = (total + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
        units = tiles * blocks if by_block else tiles
        # With one thread: a plain loop, no OpenMP region (see the module's docstring).
        if num_threads == 1:
            with nogil:
                for t in range(units):
                    saved = fc_mxcsr_enter(flush_denormal)
                    forward_direct_unit(src, t, by_block, stride_h, stride_w, weights, bias_ptr,
                                        relu, out)
                    fc_mxcsr_leave(saved)
        else:
            for t in prange(units, nogil=True, num_threads=num_threads, schedule="static"):
                saved = fc_mxcsr_enter(flush_denormal)
                forward_direct_unit(src, t, by_block, stride_h, stride_w, weights, bias_ptr,
                                    relu, out)
                fc_mxcsr_leave(saved)
        return
    if num_threads == 1:
        with nogil:
            for r in range(batch * out_h):
                saved = fc_mxcsr_enter(flush_denormal)
                forward_gather_row(src, r // out_h, r % out_h, out_w, stride_h, stride_w,
                                   dilation_h, dilation_w, pad_top, pad_left, weights, bias_ptr,
                                   relu, &out[r // out_h, r % out_h, 0, 0], out.shape[3],
                                   out.shape[3], &scratch[0, 0])
                fc_mxcsr_leave(saved)
    else:
        for r in prange(batch * out_h, nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            forward_gather_row(src, r // out_h, r % out_h, out_w, stride_h, stride_w,
                               dilation_h, dilation_w, pad_top, pad_left, weights, bias_ptr,
                               relu, &out[r // out_h, r % out_h, 0, 0], out.shape[3],
                               out.shape[3], &scratch[threadid(), 0])
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
    (their first pooled_w * pool_w pixels) into ``scratch``, column by
    column (pixel (i, ow) of them at (ow * pool_h + i) * out_channels, as
    forward_direct_rows lays them), then each window's maximum and winner."""
    cdef Py_ssize_t out_channels = pooled.shape[3], conv_w = pooled.shape[2] * pool_w
    cdef Py_ssize_t column = pool_h * out_channels, i, pw
    cdef floating *rows = scratch
    cdef floating *buf = scratch + conv_w * column
    if direct:
        forward_direct_rows(src, n, ph * pool_h, pool_h, conv_w, stride_h, stride_w, weights,
                            bias, True, rows, out_channels)
    else:
        for i in range(pool_h):
            forward_gather_row(src, n, ph * pool_h + i, conv_w, stride_h, stride_w, 1, 1,
                               pad_top, pad_left, weights, bias, True, rows + i * out_channels,
                               out_channels, column, buf)
    for pw in range(pooled.shape[2]):
        pool_max_winner(rows + pw * pool_w * column, out_channels, column, pool_h, pool_w,
                        out_channels, &pooled[n, ph, pw, 0], &winners[n, ph, pw, 0])


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


cpdef Py_ssize_t gradient_tiles(Py_ssize_t rows):
    """Row tiles (register tiles of weight_gradient, each for all output
    channels) of a gradient of ``rows`` kernel rows (KH * KW * C)."""
    return (rows + FC_MAX_ROWS - 1) // FC_MAX_ROWS


cdef void add_parts(const floating[:, :, ::1] partials, Py_ssize_t r, Py_ssize_t ncols,
                    floating *out) noexcept nogil:
    """out[:ncols] = partials[0, r] + partials[1, r] + ..., added in that order."""
    cdef Py_ssize_t p, c
    cdef const floating *part
    memcpy(out, &partials[0, r, 0], ncols * sizeof(floating))
    for p in range(1, partials.shape[0]):
        part = &partials[p, r, 0]
        for c in range(ncols):
            out[c] += part[c]


cdef struct Split:
    # How weight_gradient cuts its work (batch parts, row groups) and the
    # convolution's geometry.
    Py_ssize_t parts, groups, stride_h, stride_w, pad_top, pad_left, kernel_h, kernel_w


cdef void wgrad_item(const floating[:, :, :, ::1] images, const floating[:, :, :, ::1] dy,
                     floating[:, :] dkernel, floating[::1] dbias, floating[:, :, ::1] partials,
                     Split s, Py_ssize_t item) noexcept nogil:
    """Work item ``item`` = p * groups + g of weight_gradient: the gradient
    rows of row group g, all output channels, summed over the images of
    batch part p, stored into dkernel (one part) or partials[p]; group 0
    stores the bias gradient too.  The part's images are read in chunks
    (whole images, or bands of output rows of large ones) whose inputs and
    output gradients stay in cache while the group's tiles sweep them; each
    tile's inputs serve all blocks of output channels."""
    cdef Py_ssize_t lanes = FC_VBYTES // sizeof(floating), block = FC_MAX_VECS * lanes
    cdef Py_ssize_t batch = images.shape[0], image_w = images.shape[2]
    cdef Py_ssize_t channels = images.shape[3], x_pitch = images.shape[1] * image_w * channels
    cdef Py_ssize_t out_h = dy.shape[1], out_w = dy.shape[2], co_pad = dy.shape[3]
    cdef Py_ssize_t channels_out = dkernel.shape[1], total = dkernel.shape[0]
    cdef Py_ssize_t width = s.kernel_w * channels, tiles = (total + FC_MAX_ROWS - 1) // FC_MAX_ROWS
    cdef Py_ssize_t g = item % s.groups, p = item // s.groups
    cdef Py_ssize_t start = p * batch // s.parts, end = (p + 1) * batch // s.parts
    cdef Py_ssize_t tile_lo = g * tiles // s.groups, tile_hi = (g + 1) * tiles // s.groups
    # The group's rows read a band of the channels of each input pixel; an
    # output row needs stride_h input rows and its dy row.
    cdef Py_ssize_t band = min(channels, (tile_hi - tile_lo) * FC_MAX_ROWS + lanes)
    cdef Py_ssize_t row_bytes = (s.stride_h * image_w * band + out_w * co_pad) * sizeof(floating)
    # Chunks of whole images, or, when an image does not fit CHUNK_BYTES, of
    # equal bands of out_rows rows of one image.
    cdef Py_ssize_t chunk = CHUNK_BYTES // (out_h * row_bytes)
    cdef Py_ssize_t bands = (out_h * row_bytes + CHUNK_BYTES - 1) // CHUNK_BYTES
    cdef Py_ssize_t out_rows = out_h if chunk > 0 else (out_h + bands - 1) // bands
    cdef floating *dk
    cdef floating *db
    cdef Py_ssize_t dk_pitch, n = start, oh = 0, count, height, tile, first, last, r, kh, at
    cdef Py_ssize_t b, co
    cdef int ncols
    cdef bint accumulate = False
    cdef const floating *rows[FC_MAX_ROWS]
    if s.parts == 1:
        dk, dk_pitch, db = &dkernel[0, 0], dkernel.strides[0] // sizeof(floating), &dbias[0]
    else:
        dk, dk_pitch, db = &partials[p, 0, 0], partials.shape[2], &partials[p, total, 0]
    while n < end:
        count = min(chunk, end - n) if chunk > 0 else 1
        height = min(out_rows, out_h - oh)
        for tile in range(tile_lo, tile_hi):
            first = tile * total // tiles
            last = (tile + 1) * total // tiles
            kh, at = first // width, first % width
            for r in range(last - first):
                rows[r] = &images[n, oh * s.stride_h + kh, 0, 0] + at
                at = at + 1
                if at == width:
                    kh, at = kh + 1, 0
            for b in range((channels_out + block - 1) // block):
                co = b * block
                ncols = <int>min(block, channels_out - co)
                wgrad_tile(<int>(last - first), <int>((ncols + lanes - 1) // lanes), rows,
                           s.stride_h * image_w * channels, s.stride_w * channels, x_pitch,
                           count, height, out_w, &dy[n, oh, 0, co], co_pad,
                           dk + first * dk_pitch + co, dk_pitch, ncols, accumulate)
        if g == 0:
            for b in range((channels_out + block - 1) // block):
                co = b * block
                ncols = <int>min(block, channels_out - co)
                sum_pixels(count * height * out_w, <int>((ncols + lanes - 1) // lanes),
                           &dy[n, oh, 0, co], co_pad, db + co, ncols, accumulate)
        accumulate = True
        oh = oh + height
        if oh == out_h:
            n, oh = n + count, 0


cdef void pad_image(const floating[:, :, :, ::1] src, Py_ssize_t n, Py_ssize_t pad_top,
                    Py_ssize_t pad_left, floating[:, :, :, ::1] padded) noexcept nogil:
    """padded[n] = image n of src on the padded grid, zeros around it."""
    cdef Py_ssize_t pitch = padded.shape[2] * padded.shape[3], r, row
    for r in range(padded.shape[1]):
        row = source_index(r - pad_top, 1, src.shape[1])
        if row >= 0:
            gather_row(src, n, row, 1, pad_left, padded.shape[2], &padded[n, r, 0, 0])
        else:
            memset(&padded[n, r, 0, 0], 0, pitch * sizeof(floating))


cdef enum Phase:
    PAD_IMAGES, ITEMS, SUM_PARTS


cdef void wgrad_unit(Phase phase, Py_ssize_t i, const floating[:, :, :, ::1] src,
                     const floating[:, :, :, ::1] images, floating[:, :, :, ::1] padded,
                     const floating[:, :, :, ::1] dy, floating[:, :] dkernel,
                     floating[::1] dbias, floating[:, :, ::1] partials, Split s,
                     bint flush_denormal) noexcept nogil:
    """Unit i of one phase of weight_gradient: pad image i, run item i, or
    add up the parts of gradient row i (row KH * KW * C: the bias)."""
    cdef unsigned saved = fc_mxcsr_enter(flush_denormal)
    if phase == PAD_IMAGES:
        pad_image(src, i, s.pad_top, s.pad_left, padded)
    elif phase == ITEMS:
        wgrad_item(images, dy, dkernel, dbias, partials, s, i)
    elif i < dkernel.shape[0]:
        add_parts(partials, i, dkernel.shape[1], &dkernel[i, 0])
    else:
        add_parts(partials, i, dbias.shape[0], &dbias[0])
    fc_mxcsr_leave(saved)


cdef void wgrad_phase(Phase phase, Py_ssize_t units, const floating[:, :, :, ::1] src,
                      const floating[:, :, :, ::1] images, floating[:, :, :, ::1] padded,
                      const floating[:, :, :, ::1] dy, floating[:, :] dkernel,
                      floating[::1] dbias, floating[:, :, ::1] partials, Split s,
                      int num_threads, bint flush_denormal) noexcept nogil:
    """Units 0 .. units - 1 of one phase, shared among at most num_threads threads."""
    cdef Py_ssize_t i
    cdef int threads = <int>min(num_threads, units)
    # With one thread: a plain loop, no OpenMP region (see the module's docstring).
    if threads <= 1:
        for i in range(units):
            wgrad_unit(phase, i, src, images, padded, dy, dkernel, dbias, partials, s,
                       flush_denormal)
    else:
        for i in prange(units, num_threads=threads, schedule="static"):
            wgrad_unit(phase, i, src, images, padded, dy, dkernel, dbias, partials, s,
                       flush_denormal)


cpdef tuple padded_image_shape(Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t stride_h,
                               Py_ssize_t stride_w, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                               Py_ssize_t channels):
    """(PH, PW, C): one image on the padded grid, as ``weight_gradient``'s
    ``padded`` scratch holds each image of a padded input."""
    return (out_h - 1) * stride_h + kernel_h, (out_w - 1) * stride_w + kernel_w, channels


def weight_gradient(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] dy,
                    floating[:, :] dkernel, floating[::1] dbias, floating[:, :, ::1] partials,
                    floating[:, :, :, ::1] padded, *, Py_ssize_t stride_h, Py_ssize_t stride_w,
                    Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t kernel_h,
                    Py_ssize_t kernel_w, Py_ssize_t row_groups, int num_threads,
                    bint flush_denormal):
    """dkernel, dbias = the kernel and bias gradients of a convolution.

    ``src`` (N, H, W, C), N >= 1; ``dy`` (N, OH, OW, COP), OH, OW >= 1, its
    channels zero-padded to whole vectors; ``dkernel`` (KH * KW * C, CO),
    rows (kh, kw, ci) at any pitch, each contiguous: sum_{n, oh, ow}
    window(src) x dy; ``dbias`` (CO,): sum dy.  ``padded`` (N, PH, PW, C) (see
    ``padded_image_shape``) is scratch for an input that needs padding, else
    None.

    The work items are (batch part p, group g of ``row_groups`` groups of
    row tiles), P = 1 when ``partials`` is None, else its length: parts p
    cover images [p * N // P, (p + 1) * N // P); item (p, g) stores its sums
    into dkernel (P = 1) or into partials (P, KH * KW * C + 1, COP) (the last
    row the bias); once all items are done, each row's P parts are added up
    in part order (a work unit per row).  The threads share the items out, so the
    result depends on the shapes, P and row_groups, never on the thread count.
    """
    cdef Py_ssize_t parts = 1 if partials is None else partials.shape[0]
    cdef Split s = Split(parts, row_groups, stride_h, stride_w, pad_top, pad_left, kernel_h,
                         kernel_w)
    cdef const floating[:, :, :, ::1] images = src if padded is None else padded
    with nogil:
        if padded is not None:
            wgrad_phase(PAD_IMAGES, src.shape[0], src, images, padded, dy, dkernel, dbias,
                        partials, s, num_threads, flush_denormal)
        wgrad_phase(ITEMS, parts * row_groups, src, images, padded, dy, dkernel,
                    dbias, partials, s, num_threads, flush_denormal)
        if parts > 1:
            wgrad_phase(SUM_PARTS, dkernel.shape[0] + 1, src, images, padded, dy, dkernel,
                        dbias, partials, s, num_threads, flush_denormal)


cpdef Py_ssize_t scatter_elements(Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t kernel_h,
                                  Py_ssize_t kernel_w, Py_ssize_t channels):
    """Elements of each thread's row of ``input_gradient``'s scratch: the
    window contributions (KH x KW x C) of one image's OH x OW output pixels."""
    return out_h * out_w * kernel_h * kernel_w * channels


cdef void scatter_image(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] weights,
                        floating[:, :, :, ::1] dx, Py_ssize_t n, Py_ssize_t stride_h,
                        Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                        Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                        floating *cols) noexcept nogil:
    """dx[n] = the input gradient of image n: its dy pixels' window
    contributions (each pixel x the kernel, a 1x1 convolution: tiles of
    FC_MAX_PIXELS pixels, one block of weights at a time for all of them)
    into ``cols``, then each added to the cells of dx[n] under the pixel's
    window that lie inside it, pixel by pixel (row-major), tap by tap."""
    cdef Py_ssize_t out_h = dy.shape[1], out_w = dy.shape[2], channels = dx.shape[3]
    cdef Py_ssize_t window = kernel_h * kernel_w * channels, total = out_h * out_w
    cdef Py_ssize_t tiles = (total + FC_MAX_PIXELS - 1) // FC_MAX_PIXELS
    cdef Py_ssize_t block = FC_MAX_VECS * (FC_VBYTES // sizeof(floating))
    cdef Py_ssize_t b, q, oh, ow, kh, kw, ih, iw, tile, c
    cdef int p, npix
    cdef const floating *pixels[FC_MAX_PIXELS]
    cdef const floating *part
    cdef floating *cell
    for b in range((window + block - 1) // block):
        for tile in range(tiles):
            q = tile * total // tiles
            npix = <int>((tile + 1) * total // tiles - q)
            for p in range(npix):
                pixels[p] = &dy[n, 0, 0, 0] + (q + p) * dy.shape[3]
            forward_blocks(npix, pixels, 0, 0, 1, weights, NULL, False, cols + q * window,
                           window, window, b, b + 1)
    memset(&dx[n, 0, 0, 0], 0, dx.shape[1] * dx.shape[2] * channels * sizeof(floating))
    for q in range(total):
        oh, ow = q // out_w, q % out_w
        for kh in range(kernel_h):
            ih = oh * stride_h + kh - pad_top
            if ih < 0 or ih >= dx.shape[1]:
                continue
            for kw in range(kernel_w):
                iw = ow * stride_w + kw - pad_left
                if iw < 0 or iw >= dx.shape[2]:
                    continue
                part = cols + q * window + (kh * kernel_w + kw) * channels
                cell = &dx[n, ih, iw, 0]
                for c in range(channels):
                    cell[c] += part[c]


def input_gradient(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] weights,
                   floating[:, :, :, ::1] dx, floating[:, ::1] scratch, *, Py_ssize_t stride_h,
                   Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                   Py_ssize_t kernel_h, Py_ssize_t kernel_w, int num_threads,
                   bint flush_denormal):
    """dx = the input gradient of an undilated convolution with kernel K
    (KH, KW, C, CO), given dy (N, OH, OW, CO), C-contiguous: each dy
    pixel's window gets dy[pixel] @ K^T, added up where windows overlap
    (only the products the definition has: none with padding or between
    strides).

    ``weights`` (1, 1, CO, KHKWCP): K transposed, [co, (kh, kw, c)] =
    K[kh, kw, c, co], its columns zero-padded to whole vectors; ``dx`` (N,
    H, W, C), C-contiguous, is written; ``scratch`` has a row of at least
    ``scatter_elements(OH, OW, KH, KW, C)`` elements for each of the
    ``num_threads`` threads.  One image per work item: bit-identical for
    any thread count.
    """
    cdef unsigned saved
    cdef Py_ssize_t n
    # With one thread: a plain loop, no OpenMP region (see the module's docstring).
    if num_threads == 1:
        with nogil:
            for n in range(dy.shape[0]):
                saved = fc_mxcsr_enter(flush_denormal)
                scatter_image(dy, weights, dx, n, stride_h, stride_w, pad_top, pad_left,
                              kernel_h, kernel_w, &scratch[0, 0])
                fc_mxcsr_leave(saved)
    else:
        for n in prange(dy.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            scatter_image(dy, weights, dx, n, stride_h, stride_w, pad_top, pad_left, kernel_h,
                          kernel_w, &scratch[threadid(), 0])
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
