# The C interface of microkernels.h and flush_denormal.h, declared once for
# the kernel modules (``from microkernels cimport ...``; setup.py compiles
# each .pyx next to a copy of this file), and ``floating`` wrappers that pick
# a function's ``_f32`` or ``_f64`` body by the element type.

from cython cimport floating

cdef extern from "flush_denormal.h" nogil:
    int FC_FLUSH_DENORMAL
    unsigned fc_mxcsr_enter(int flush)
    void fc_mxcsr_leave(unsigned saved)

cdef extern from "microkernels.h" nogil:
    int FASTCONV_OPENMP
    const char *FASTCONV_BUILD_FLAGS
    enum:
        FC_VBYTES
        FC_MAX_PIXELS
        FC_MAX_ROWS
        FC_MAX_VECS
    int fc_omp_max_threads()

    void forward_tile_f32(int npix, int nvec, const float **pixels, Py_ssize_t row_pitch,
                          Py_ssize_t kh_lo, Py_ssize_t kh_hi, Py_ssize_t width,
                          const float *weights, Py_ssize_t w_pitch, const float *bias, int relu,
                          float *out, Py_ssize_t out_pitch, int ncols)
    void forward_tile_f64(int npix, int nvec, const double **pixels, Py_ssize_t row_pitch,
                          Py_ssize_t kh_lo, Py_ssize_t kh_hi, Py_ssize_t width,
                          const double *weights, Py_ssize_t w_pitch, const double *bias,
                          int relu, double *out, Py_ssize_t out_pitch, int ncols)
    void wgrad_tile_f32(int nrows, int nvec, const float **rows, Py_ssize_t row_pitch,
                        Py_ssize_t pix_pitch, Py_ssize_t x_pitch, Py_ssize_t nimages,
                        Py_ssize_t out_h, Py_ssize_t out_w, const float *dy,
                        Py_ssize_t dy_pitch, float *dkernel, Py_ssize_t dk_pitch, int ncols,
                        int accumulate)
    void wgrad_tile_f64(int nrows, int nvec, const double **rows, Py_ssize_t row_pitch,
                        Py_ssize_t pix_pitch, Py_ssize_t x_pitch, Py_ssize_t nimages,
                        Py_ssize_t out_h, Py_ssize_t out_w, const double *dy,
                        Py_ssize_t dy_pitch, double *dkernel, Py_ssize_t dk_pitch, int ncols,
                        int accumulate)
    void sum_pixels_f32(Py_ssize_t npix, int nvec, const float *dy, Py_ssize_t dy_pitch,
                        float *out, int ncols, int accumulate)
    void sum_pixels_f64(Py_ssize_t npix, int nvec, const double *dy, Py_ssize_t dy_pitch,
                        double *out, int ncols, int accumulate)
    void pool_max_f32(const float *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                      Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels, float *out)
    void pool_max_f64(const double *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                      Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels, double *out)
    void pool_route_f32(const float *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                        Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels, const float *dy,
                        float *dx, int accumulate)
    void pool_route_f64(const double *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                        Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels,
                        const double *dy, double *dx, int accumulate)
    void pool_max_winner_f32(const float *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                             Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels, float *out,
                             unsigned char *winner)
    void pool_max_winner_f64(const double *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                             Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels, double *out,
                             unsigned char *winner)


cdef inline void forward_tile(int npix, int nvec, const floating **pixels, Py_ssize_t row_pitch,
                              Py_ssize_t kh_lo, Py_ssize_t kh_hi, Py_ssize_t width,
                              const floating *weights, Py_ssize_t w_pitch,
                              const floating *bias, bint relu, floating *out,
                              Py_ssize_t out_pitch, int ncols) noexcept nogil:
    if floating is float:
        forward_tile_f32(npix, nvec, pixels, row_pitch, kh_lo, kh_hi, width, weights, w_pitch,
                         bias, relu, out, out_pitch, ncols)
    else:
        forward_tile_f64(npix, nvec, pixels, row_pitch, kh_lo, kh_hi, width, weights, w_pitch,
                         bias, relu, out, out_pitch, ncols)


cdef inline void wgrad_tile(int nrows, int nvec, const floating **rows, Py_ssize_t row_pitch,
                            Py_ssize_t pix_pitch, Py_ssize_t x_pitch, Py_ssize_t nimages,
                            Py_ssize_t out_h, Py_ssize_t out_w, const floating *dy,
                            Py_ssize_t dy_pitch, floating *dkernel, Py_ssize_t dk_pitch,
                            int ncols, bint accumulate) noexcept nogil:
    if floating is float:
        wgrad_tile_f32(nrows, nvec, rows, row_pitch, pix_pitch, x_pitch, nimages, out_h, out_w,
                       dy, dy_pitch, dkernel, dk_pitch, ncols, accumulate)
    else:
        wgrad_tile_f64(nrows, nvec, rows, row_pitch, pix_pitch, x_pitch, nimages, out_h, out_w,
                       dy, dy_pitch, dkernel, dk_pitch, ncols, accumulate)


cdef inline void sum_pixels(Py_ssize_t npix, int nvec, const floating *dy, Py_ssize_t dy_pitch,
                            floating *out, int ncols, bint accumulate) noexcept nogil:
    if floating is float:
        sum_pixels_f32(npix, nvec, dy, dy_pitch, out, ncols, accumulate)
    else:
        sum_pixels_f64(npix, nvec, dy, dy_pitch, out, ncols, accumulate)


cdef inline void pool_max(const floating *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                          Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels,
                          floating *out) noexcept nogil:
    if floating is float:
        pool_max_f32(x, row_pitch, pix_pitch, rows, cols, channels, out)
    else:
        pool_max_f64(x, row_pitch, pix_pitch, rows, cols, channels, out)


cdef inline void pool_route(const floating *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                            Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels,
                            const floating *dy, floating *dx, bint accumulate) noexcept nogil:
    if floating is float:
        pool_route_f32(x, row_pitch, pix_pitch, rows, cols, channels, dy, dx, accumulate)
    else:
        pool_route_f64(x, row_pitch, pix_pitch, rows, cols, channels, dy, dx, accumulate)


cdef inline void pool_max_winner(const floating *x, Py_ssize_t row_pitch, Py_ssize_t pix_pitch,
                                 Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels,
                                 floating *out, unsigned char *winner) noexcept nogil:
    if floating is float:
        pool_max_winner_f32(x, row_pitch, pix_pitch, rows, cols, channels, out, winner)
    else:
        pool_max_winner_f64(x, row_pitch, pix_pitch, rows, cols, channels, out, winner)
