/* Body of microkernels.h for one element type FC_T; names get FC_NAME(). */

typedef FC_T FC_NAME(vec) __attribute__((vector_size(FC_VBYTES)));
typedef FC_INT FC_NAME(mask) __attribute__((vector_size(FC_VBYTES)));
typedef FC_T FC_NAME(uvec) __attribute__((vector_size(FC_VBYTES), aligned(sizeof(FC_T))));
/* One byte per lane of a vector */
typedef unsigned char FC_NAME(bytes) __attribute__((vector_size(FC_VBYTES / sizeof(FC_T))));
#define VEC FC_NAME(vec)
#define LOAD(p) (*(const FC_NAME(uvec) *)(p))
#define STORE(p, v) (*(FC_NAME(uvec) *)(p) = (v))
#define VW ((int)(FC_VBYTES / sizeof(FC_T)))

/* Lanes [0, n) of a vector loaded from / stored to p; the others are zero / untouched. */
static inline VEC FC_NAME(load_lanes)(const FC_T *p, int n)
{
    if (n == VW)
        return LOAD(p);
    VEC v = (VEC){0};
    memcpy(&v, p, (size_t)n * sizeof(FC_T));
    return v;
}

static inline void FC_NAME(store_lanes)(FC_T *p, VEC v, int n)
{
    if (n == VW)
        STORE(p, v);
    else
        memcpy(p, &v, (size_t)n * sizeof(FC_T));
}

/* dst[0, n) = v[0, n), or += when `accumulate`; nothing when n <= 0 (n is
 * clamped to one vector). */
static inline void FC_NAME(put_lanes)(FC_T *dst, VEC v, int n, int accumulate)
{
    if (n <= 0)
        return;
    if (n > VW)
        n = VW;
    if (accumulate)
        v += FC_NAME(load_lanes)(dst, n);
    FC_NAME(store_lanes)(dst, v, n);
}

/* Forward tile: `npix` output pixels x `nvec` vectors of output channels.
 *
 * pixels[p]   first input element of pixel p's receptive field (row 0, column 0)
 * row_pitch   elements between two input rows
 * kh_lo/hi    kernel rows to visit (the others fall on zero padding)
 * width       kernel columns x input channels; they are contiguous in a row
 * weights     the block's first weight; (kh, j) at weights + (kh * width + j) * w_pitch
 * bias        nvec * VW values, or NULL
 * out         first output value; pixel p's channels start at out + p * out_pitch
 * ncols       output channels of this block actually stored (<= nvec * VW)
 */
static inline __attribute__((always_inline)) void
FC_NAME(forward_tile_fixed)(const int npix, const int nvec,
                            const FC_T *const *pixels, ptrdiff_t row_pitch,
                            ptrdiff_t kh_lo, ptrdiff_t kh_hi, ptrdiff_t width,
                            const FC_T *weights, ptrdiff_t w_pitch, const FC_T *bias,
                            int relu, FC_T *out, ptrdiff_t out_pitch, int ncols)
{
    VEC acc[FC_MAX_PIXELS][FC_MAX_VECS];
    for (int p = 0; p < npix; p++)
        for (int v = 0; v < nvec; v++)
            acc[p][v] = (VEC){0};
    for (ptrdiff_t kh = kh_lo; kh < kh_hi; kh++) {
        const FC_T *w = weights + kh * width * w_pitch;
        const ptrdiff_t row = kh * row_pitch;
        for (ptrdiff_t j = 0; j < width; j++) {
            VEC wv[FC_MAX_VECS];
            for (int v = 0; v < nvec; v++)
                wv[v] = LOAD(w + j * w_pitch + v * VW);
            for (int p = 0; p < npix; p++) {
                const FC_T xs = pixels[p][row + j];
                for (int v = 0; v < nvec; v++)
                    acc[p][v] += xs * wv[v];
            }
        }
    }
    for (int v = 0; v < nvec; v++) {
        const VEC b = bias ? LOAD(bias + v * VW) : (VEC){0};
        for (int p = 0; p < npix; p++) {
            VEC r = acc[p][v] + b;
            if (relu)  /* zero the lanes <= 0; NaN lanes stay NaN */
                r = (VEC)((FC_NAME(mask))r & ~(r <= (VEC){0}));
            FC_T *dst = out + p * out_pitch + v * VW;
            if (ncols >= (v + 1) * VW) {
                STORE(dst, r);
            } else if (ncols > v * VW) {
                FC_T tmp[FC_VBYTES / sizeof(FC_T)];
                memcpy(tmp, &r, sizeof(tmp));
                memcpy(dst, tmp, (size_t)(ncols - v * VW) * sizeof(FC_T));
            }
        }
    }
}

/* Dispatch to a tile whose sizes are compile-time constants, so that the
 * compiler unrolls it and keeps every accumulator in a register. */
static void
FC_NAME(forward_tile)(int npix, int nvec, const FC_T *const *pixels, ptrdiff_t row_pitch,
                      ptrdiff_t kh_lo, ptrdiff_t kh_hi, ptrdiff_t width, const FC_T *weights,
                      ptrdiff_t w_pitch, const FC_T *bias, int relu, FC_T *out,
                      ptrdiff_t out_pitch, int ncols)
{
#define FC_CASE(P, V) case FC_TILE_KEY(P, V): \
    FC_NAME(forward_tile_fixed)(P, V, pixels, row_pitch, kh_lo, kh_hi, width, \
                                weights, w_pitch, bias, relu, out, out_pitch, ncols); break;
    switch (FC_TILE_KEY(npix, nvec)) {
        FC_FORWARD_TILES(FC_CASE)
    default:  /* a tile size without code: stop rather than leave outputs unwritten */
        __builtin_trap();
    }
#undef FC_CASE
}

/* Weight-gradient tile: `nrows` kernel rows (kh, kw, ci) x `nvec` vectors of
 * output channels, summed over all output pixels of `nimages` images and
 * stored into `dkernel` (added to it when `accumulate`).
 *
 * rows[r]     input element that row r multiplies at output pixel (0, 0) of image 0
 * row_pitch   elements between the inputs of consecutive output rows
 * pix_pitch   elements between the inputs of consecutive output columns
 * x_pitch     elements between the inputs of consecutive images
 * dy          image 0's output gradient at channel co0; dy_pitch per pixel,
 *             out_h * out_w pixels per image; whole vectors are read
 * dkernel     gradient row 0 at channel co0; row r at dkernel + r * dk_pitch
 * ncols       channels of this block written (<= nvec * VW)
 *
 * `consecutive` (a constant): rows[r] == rows[0] + r, so that one pointer
 * with constant offsets reads all rows (the others free general registers).
 * The pixels are summed in three nested loops (images, output rows, output
 * columns), the one with the most trips innermost (ties: columns, then rows),
 * the other two outside it in that order: the order depends on the shapes only.
 */
struct FC_NAME(pixel_loop) { ptrdiff_t trips, x_step, dy_step; };

static inline __attribute__((always_inline)) void
FC_NAME(wgrad_tile_fixed)(const int nrows, const int nvec, const int consecutive,
                          const FC_T *const *rows, ptrdiff_t row_pitch, ptrdiff_t pix_pitch,
                          ptrdiff_t x_pitch, ptrdiff_t nimages, ptrdiff_t out_h,
                          ptrdiff_t out_w, const FC_T *dy, ptrdiff_t dy_pitch, FC_T *dkernel,
                          ptrdiff_t dk_pitch, int ncols, int accumulate)
{
    const struct FC_NAME(pixel_loop) loops[3] = {
        {nimages, x_pitch, out_h * out_w * dy_pitch},
        {out_h, row_pitch, out_w * dy_pitch},
        {out_w, pix_pitch, dy_pitch},
    };
    const int in = (nimages > out_w && nimages > out_h) ? 0 : (out_h > out_w ? 1 : 2);
    const struct FC_NAME(pixel_loop) outer = loops[in == 0 ? 1 : 0];
    const struct FC_NAME(pixel_loop) middle = loops[in == 2 ? 1 : 2];
    const struct FC_NAME(pixel_loop) inner = loops[in];
    const FC_T *const base = rows[0];
    VEC acc[FC_MAX_ROWS][FC_MAX_VECS];
    for (int r = 0; r < nrows; r++)
        for (int v = 0; v < nvec; v++)
            acc[r][v] = (VEC){0};
    for (ptrdiff_t i = 0; i < outer.trips; i++)
        for (ptrdiff_t j = 0; j < middle.trips; j++) {
            const FC_T *g0 = dy + i * outer.dy_step + j * middle.dy_step;
            const ptrdiff_t at0 = i * outer.x_step + j * middle.x_step;
            for (ptrdiff_t k = 0; k < inner.trips; k++) {
                VEC g[FC_MAX_VECS];
                for (int v = 0; v < nvec; v++)
                    g[v] = LOAD(g0 + k * inner.dy_step + v * VW);
                const ptrdiff_t at = at0 + k * inner.x_step;
                for (int r = 0; r < nrows; r++) {
                    const FC_T xs = consecutive ? base[at + r] : rows[r][at];
                    for (int v = 0; v < nvec; v++)
                        acc[r][v] += xs * g[v];
                }
            }
        }
    for (int r = 0; r < nrows; r++)
        for (int v = 0; v < nvec; v++)
            FC_NAME(put_lanes)(dkernel + r * dk_pitch + v * VW, acc[r][v], ncols - v * VW,
                               accumulate);
}

static void
FC_NAME(wgrad_tile)(int nrows, int nvec, const FC_T *const *rows, ptrdiff_t row_pitch,
                    ptrdiff_t pix_pitch, ptrdiff_t x_pitch, ptrdiff_t nimages, ptrdiff_t out_h,
                    ptrdiff_t out_w,
                    const FC_T *dy, ptrdiff_t dy_pitch, FC_T *dkernel, ptrdiff_t dk_pitch,
                    int ncols, int accumulate)
{
    int consecutive = 1;
    for (int r = 1; r < nrows; r++)
        consecutive &= rows[r] == rows[0] + r;
#define FC_CASE(R, V) case FC_TILE_KEY(R, V): \
    if (consecutive) \
        FC_NAME(wgrad_tile_fixed)(R, V, 1, rows, row_pitch, pix_pitch, x_pitch, nimages, \
                                  out_h, out_w, dy, dy_pitch, dkernel, dk_pitch, ncols, \
                                  accumulate); \
    else \
        FC_NAME(wgrad_tile_fixed)(R, V, 0, rows, row_pitch, pix_pitch, x_pitch, nimages, \
                                  out_h, out_w, dy, dy_pitch, dkernel, dk_pitch, ncols, \
                                  accumulate); \
    break;
    switch (FC_TILE_KEY(nrows, nvec)) {
        FC_WGRAD_TILES(FC_CASE)
    default:  /* a tile size without code: stop rather than leave outputs unwritten */
        __builtin_trap();
    }
#undef FC_CASE
}

/* Bias-gradient block: out[c] = sum of dy over `npix` pixels (dy_pitch
 * apart) for the `ncols` channels of `nvec` vectors, added to out when
 * `accumulate`.  Four interleaved sums, added pairwise at the end: the
 * order depends on npix only. */
static void
FC_NAME(sum_pixels)(ptrdiff_t npix, int nvec, const FC_T *dy, ptrdiff_t dy_pitch, FC_T *out,
                    int ncols, int accumulate)
{
    for (int v = 0; v < nvec; v++) {
        VEC acc[4] = {{0}, {0}, {0}, {0}};
        const FC_T *col = dy + v * VW;
        ptrdiff_t p = 0;
        for (; p + 4 <= npix; p += 4)
            for (int k = 0; k < 4; k++)
                acc[k] += LOAD(col + (p + k) * dy_pitch);
        for (; p < npix; p++)
            acc[0] += LOAD(col + p * dy_pitch);
        FC_NAME(put_lanes)(out + v * VW, (acc[0] + acc[1]) + (acc[2] + acc[3]), ncols - v * VW,
                           accumulate);
    }
}

/* Max pooling of one window: `rows` x `cols` cells, the first at `x`, cells
 * `pix_pitch` elements apart in a row and rows `row_pitch` apart, each
 * holding `channels` contiguous values.  A window holding a NaN has the
 * maximum NaN and routes its gradient to the first NaN; otherwise the
 * gradient goes to the first maximal cell in row-major order. */

#define MASK FC_NAME(mask)
#define SELECT(m, a, b) ((VEC)(((MASK)(a) & (m)) | ((MASK)(b) & ~(m))))

/* out[c] = the window's maximum of channel c */
static void
FC_NAME(pool_max)(const FC_T *x, ptrdiff_t row_pitch, ptrdiff_t pix_pitch, ptrdiff_t rows,
                  ptrdiff_t cols, ptrdiff_t channels, FC_T *out)
{
    for (ptrdiff_t c = 0; c < channels; c += VW) {
        const int n = channels - c < VW ? (int)(channels - c) : VW;
        VEC best = FC_NAME(load_lanes)(x + c, n);
        for (ptrdiff_t r = 0; r < rows; r++)
            for (ptrdiff_t q = 0; q < cols; q++) {
                const VEC v = FC_NAME(load_lanes)(x + r * row_pitch + q * pix_pitch + c, n);
                best = SELECT((v > best) | (v != v), v, best);
            }
        FC_NAME(store_lanes)(out + c, best, n);
    }
}

/* The index (row-major, < 256) of each lane's winning cell in the window of
 * channels [c, c + n): its first NaN, else its first maximal cell; *max
 * gets the lanes' maxima as pool_max computes them (a NaN lane: its last NaN). */
static inline MASK
FC_NAME(window_winner)(const FC_T *x, ptrdiff_t row_pitch, ptrdiff_t pix_pitch, ptrdiff_t rows,
                       ptrdiff_t cols, ptrdiff_t c, int n, VEC *max)
{
    VEC best = FC_NAME(load_lanes)(x + c, n), first = best;
    MASK winner = (MASK){0};
    int k = 0;
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t q = 0; q < cols; q++, k++) {
            const VEC v = FC_NAME(load_lanes)(x + r * row_pitch + q * pix_pitch + c, n);
            const MASK take = (v > first) | ((v != v) & (first == first));
            first = SELECT(take, v, first);
            winner = (take & ((MASK){0} + k)) | (~take & winner);
            best = SELECT((v > best) | (v != v), v, best);
        }
    *max = best;
    return winner;
}

static inline __attribute__((always_inline)) void
FC_NAME(pool_max_winner_body)(const FC_T *x, ptrdiff_t row_pitch, ptrdiff_t pix_pitch,
                              ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t channels, FC_T *out,
                              unsigned char *winner)
{
    for (ptrdiff_t c = 0; c < channels; c += VW) {
        const int n = channels - c < VW ? (int)(channels - c) : VW;
        VEC best;
        const MASK index = FC_NAME(window_winner)(x, row_pitch, pix_pitch, rows, cols, c, n,
                                                  &best);
        FC_NAME(store_lanes)(out + c, best, n);
        const FC_NAME(bytes) narrow = __builtin_convertvector(index, FC_NAME(bytes));
        if (n == VW)  /* a constant size: one store, not a call */
            memcpy(winner + c, &narrow, sizeof(narrow));
        else
            memcpy(winner + c, &narrow, (size_t)n);
    }
}

/* out[c] = the window's maximum of channel c (as pool_max) and winner[c] the
 * index of the cell pool_route sends channel c's gradient to: at most 256
 * cells.  2 x 2 windows (the common pooling) run fully unrolled. */
static void
FC_NAME(pool_max_winner)(const FC_T *x, ptrdiff_t row_pitch, ptrdiff_t pix_pitch,
                         ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t channels, FC_T *out,
                         unsigned char *winner)
{
    if (rows == 2 && cols == 2)
        FC_NAME(pool_max_winner_body)(x, row_pitch, pix_pitch, 2, 2, channels, out, winner);
    else
        FC_NAME(pool_max_winner_body)(x, row_pitch, pix_pitch, rows, cols, channels, out,
                                      winner);
}

/* dx of the window's cells (laid out like x's) = dy[c] at each channel's
 * maximal cell, 0 elsewhere; added to dx when `accumulate`, else stored. */
static void
FC_NAME(pool_route)(const FC_T *x, ptrdiff_t row_pitch, ptrdiff_t pix_pitch, ptrdiff_t rows,
                    ptrdiff_t cols, ptrdiff_t channels, const FC_T *dy, FC_T *dx, int accumulate)
{
    for (ptrdiff_t c = 0; c < channels; c += VW) {
        const int n = channels - c < VW ? (int)(channels - c) : VW;
        VEC best;
        const MASK winner = FC_NAME(window_winner)(x, row_pitch, pix_pitch, rows, cols, c, n,
                                                   &best);
        const VEC grad = FC_NAME(load_lanes)(dy + c, n);
        int k = 0;
        for (ptrdiff_t r = 0; r < rows; r++)
            for (ptrdiff_t q = 0; q < cols; q++, k++) {
                FC_T *cell = dx + r * row_pitch + q * pix_pitch + c;
                VEC routed = (VEC)((MASK)grad & (winner == ((MASK){0} + k)));
                if (accumulate)
                    routed += FC_NAME(load_lanes)(cell, n);
                FC_NAME(store_lanes)(cell, routed, n);
            }
    }
}

#undef SELECT
#undef MASK
#undef VEC
#undef LOAD
#undef STORE
#undef VW
