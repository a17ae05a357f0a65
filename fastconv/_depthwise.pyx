"""Compiled depthwise 2-D convolution kernels (NHWC activations).

Kernels are (KH, KW, C, M): channel c of the input, convolved with
kernel[:, :, c, m], gives output channel c * M + m (Keras's order), so a
kernel tap and an output pixel are both C * M contiguous values, and the
innermost loops run over them for the compiler to vectorise.

The window of output (oh, ow) has taps at input rows oh * stride_h + i *
dilation_h - pad_top (i < KH) and likewise for columns; taps outside the
input are skipped (zero padding, with no products at all).

These functions trust their arguments: :mod:`fastconv.ops` checks them.
They run without the GIL, images shared among ``num_threads`` OpenMP
threads; with one thread, as plain loops that enter no OpenMP parallel
region (see ``_conv``).  Indices and sizes are Py_ssize_t (64-bit).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from microkernels cimport fc_mxcsr_enter, fc_mxcsr_leave


cdef inline void window_taps(Py_ssize_t o, Py_ssize_t stride, Py_ssize_t dilation,
                             Py_ssize_t pad, Py_ssize_t size, Py_ssize_t taps,
                             Py_ssize_t *first, Py_ssize_t *last) noexcept nogil:
    """The taps [first, last) of output position o that fall inside the input."""
    cdef Py_ssize_t start = o * stride - pad
    first[0] = 0 if start >= 0 else (-start + dilation - 1) // dilation
    last[0] = min(taps, (size - start + dilation - 1) // dilation) if size > start else 0
    if last[0] < first[0]:
        last[0] = first[0]


cdef inline void multiply_add(floating *out, const floating *pixel, const floating *values,
                              Py_ssize_t channels, Py_ssize_t multiplier) noexcept nogil:
    """out[c * M + m] += pixel[c] * values[c * M + m] for all c < channels, m < M."""
    cdef Py_ssize_t c, m
    if multiplier == 1:
        for c in range(channels):
            out[c] += pixel[c] * values[c]
    else:
        for c in range(channels):
            for m in range(multiplier):
                out[c * multiplier + m] += pixel[c] * values[c * multiplier + m]


cdef void forward_row(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] kernel,
                      const floating *bias, floating[:, :, :, ::1] out, Py_ssize_t n,
                      Py_ssize_t oh, Py_ssize_t stride_h, Py_ssize_t stride_w,
                      Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t pad_top,
                      Py_ssize_t pad_left) noexcept nogil:
    """Output row (n, oh)."""
    cdef Py_ssize_t channels = x.shape[3], multiplier = kernel.shape[3]
    cdef Py_ssize_t width = channels * multiplier, ow, q, i, j, i_lo, i_hi, j_lo, j_hi
    cdef Py_ssize_t row = oh * stride_h - pad_top
    cdef floating *pixel
    window_taps(oh, stride_h, dilation_h, pad_top, x.shape[1], kernel.shape[0], &i_lo, &i_hi)
    for ow in range(out.shape[2]):
        pixel = &out[n, oh, ow, 0]
        for q in range(width):
            pixel[q] = bias[q] if bias != NULL else 0
        window_taps(ow, stride_w, dilation_w, pad_left, x.shape[2], kernel.shape[1], &j_lo,
                    &j_hi)
        for i in range(i_lo, i_hi):
            for j in range(j_lo, j_hi):
                multiply_add(pixel, &x[n, row + i * dilation_h,
                                       ow * stride_w - pad_left + j * dilation_w, 0],
                             &kernel[i, j, 0, 0], channels, multiplier)


def forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] kernel,
            const floating[::1] bias, floating[:, :, :, ::1] out, *, Py_ssize_t stride_h,
            Py_ssize_t stride_w, Py_ssize_t dilation_h, Py_ssize_t dilation_w,
            Py_ssize_t pad_top, Py_ssize_t pad_left, int num_threads, bint flush_denormal):
    """out (N, OH, OW, C * M) = the depthwise convolution of x (N, H, W, C)
    with kernel (KH, KW, C, M), plus bias (C * M,) unless it is None."""
    cdef unsigned saved
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef Py_ssize_t out_h = out.shape[1], r
    if num_threads == 1:
        with nogil:
            for r in range(out.shape[0] * out_h):
                saved = fc_mxcsr_enter(flush_denormal)
                forward_row(x, kernel, bias_ptr, out, r // out_h, r % out_h, stride_h, stride_w,
                            dilation_h, dilation_w, pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for r in prange(out.shape[0] * out_h, nogil=True, num_threads=num_threads,
                        schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            forward_row(x, kernel, bias_ptr, out, r // out_h, r % out_h, stride_h, stride_w,
                        dilation_h, dilation_w, pad_top, pad_left)
            fc_mxcsr_leave(saved)


cdef void kernel_gradient_image(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                                floating *part, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                Py_ssize_t n, Py_ssize_t stride_h, Py_ssize_t stride_w,
                                Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                                Py_ssize_t pad_top, Py_ssize_t pad_left) noexcept nogil:
    """Adds image n's kernel gradient into part (KH * KW + 1 rows of C * M):
    row i * KW + j gets sum over pixels of x at tap (i, j) times dy, the last
    row the bias gradient, sum of dy."""
    cdef Py_ssize_t channels = x.shape[3], width = dy.shape[3]
    cdef Py_ssize_t multiplier = width // channels
    cdef Py_ssize_t oh, ow, q, i, j, i_lo, i_hi, j_lo, j_hi
    cdef floating *dbias = part + kernel_h * kernel_w * width
    cdef const floating *grad
    cdef const floating *pixel
    for oh in range(dy.shape[1]):
        window_taps(oh, stride_h, dilation_h, pad_top, x.shape[1], kernel_h, &i_lo, &i_hi)
        for ow in range(dy.shape[2]):
            window_taps(ow, stride_w, dilation_w, pad_left, x.shape[2], kernel_w, &j_lo, &j_hi)
            grad = &dy[n, oh, ow, 0]
            for q in range(width):
                dbias[q] += grad[q]
            for i in range(i_lo, i_hi):
                for j in range(j_lo, j_hi):
                    pixel = &x[n, oh * stride_h - pad_top + i * dilation_h,
                               ow * stride_w - pad_left + j * dilation_w, 0]
                    multiply_add(part + (i * kernel_w + j) * width, pixel, grad, channels,
                                 multiplier)


def kernel_gradient(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                    floating[:, ::1] parts, *, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                    Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t dilation_h,
                    Py_ssize_t dilation_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                    int num_threads, bint flush_denormal):
    """parts[p] += the kernel and bias gradients of part p of the images.

    ``parts`` (P, (KH * KW + 1) * C * M), zeroed by the caller and summed
    over its first axis afterwards: the kernel gradient (KH, KW, C, M)
    flattened, then the bias gradient (C * M,).  Part p covers the images
    [p * N // P, (p + 1) * N // P); the threads share the parts out, so the
    parts, and their sum, depend on P and not on the thread count."""
    cdef unsigned saved
    cdef Py_ssize_t count = parts.shape[0], batch = x.shape[0], p, n
    if num_threads == 1:
        with nogil:
            for p in range(count):
                saved = fc_mxcsr_enter(flush_denormal)
                for n in range(p * batch // count, (p + 1) * batch // count):
                    kernel_gradient_image(x, dy, &parts[p, 0], kernel_h, kernel_w, n, stride_h,
                                          stride_w, dilation_h, dilation_w, pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for p in prange(count, nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            for n in range(p * batch // count, (p + 1) * batch // count):
                kernel_gradient_image(x, dy, &parts[p, 0], kernel_h, kernel_w, n, stride_h,
                                      stride_w, dilation_h, dilation_w, pad_top, pad_left)
            fc_mxcsr_leave(saved)


cdef void input_gradient_image(const floating[:, :, :, ::1] kernel,
                               const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                               Py_ssize_t n, Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t pad_top,
                               Py_ssize_t pad_left) noexcept nogil:
    """dx[n]: every output pixel's dy, through each tap, added to the input
    pixel under that tap."""
    cdef Py_ssize_t channels = dx.shape[3], multiplier = kernel.shape[3]
    cdef Py_ssize_t oh, ow, i, j, i_lo, i_hi, j_lo, j_hi, c, m
    cdef const floating *grad
    cdef const floating *tap
    cdef floating *cell
    cdef floating total
    memset(&dx[n, 0, 0, 0], 0, dx.shape[1] * dx.shape[2] * channels * sizeof(floating))
    for oh in range(dy.shape[1]):
        window_taps(oh, stride_h, dilation_h, pad_top, dx.shape[1], kernel.shape[0], &i_lo,
                    &i_hi)
        for ow in range(dy.shape[2]):
            window_taps(ow, stride_w, dilation_w, pad_left, dx.shape[2], kernel.shape[1], &j_lo,
                        &j_hi)
            grad = &dy[n, oh, ow, 0]
            for i in range(i_lo, i_hi):
                for j in range(j_lo, j_hi):
                    cell = &dx[n, oh * stride_h - pad_top + i * dilation_h,
                               ow * stride_w - pad_left + j * dilation_w, 0]
                    tap = &kernel[i, j, 0, 0]
                    if multiplier == 1:
                        for c in range(channels):
                            cell[c] += grad[c] * tap[c]
                    else:
                        for c in range(channels):
                            total = 0
                            for m in range(multiplier):
                                total = total + grad[c * multiplier + m] * tap[c * multiplier + m]
                            cell[c] += total


def input_gradient(const floating[:, :, :, ::1] kernel, const floating[:, :, :, ::1] dy,
                   floating[:, :, :, ::1] dx, *, Py_ssize_t stride_h, Py_ssize_t stride_w,
                   Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t pad_top,
                   Py_ssize_t pad_left, int num_threads, bint flush_denormal):
    """dx (N, H, W, C) = the gradient of ``forward`` with respect to x, given
    dy (N, OH, OW, C * M).  Images are independent, so threads share them out."""
    cdef unsigned saved
    cdef Py_ssize_t n
    if num_threads == 1:
        with nogil:
            for n in range(dx.shape[0]):
                saved = fc_mxcsr_enter(flush_denormal)
                input_gradient_image(kernel, dy, dx, n, stride_h, stride_w, dilation_h, dilation_w,
                                     pad_top, pad_left)
                fc_mxcsr_leave(saved)
    else:
        for n in prange(dx.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
            saved = fc_mxcsr_enter(flush_denormal)
            input_gradient_image(kernel, dy, dx, n, stride_h, stride_w, dilation_h, dilation_w,
                                 pad_top, pad_left)
            fc_mxcsr_leave(saved)
