"""Compiled optimizer steps (one call updates every weight of a model) and
the finite check of an array (``all_finite``).

``step`` takes the weights, their gradients and their slot arrays as lists
(one entry per weight, all of one dtype, float32 or float64, all
C-contiguous) and applies the update of SGD, RMSprop or Adam to every
element in one pass over the arrays.  The equations are those of the
optimizers' docstrings in ``fastconv.optimizers.algorithms``, whose NumPy
``update`` methods are the reference: each loop here evaluates them in the
same order, in the weights' dtype, so results agree to rounding (the
compiler may fuse a multiply and an add).  Decoupled weight decay runs in
the same pass: w -= w * decay (``decay`` = weight_decay * learning rate)
before the update.

With ``check_finite`` a step first reads every gradient; when one holds a
NaN or an infinity it returns False without writing anything.  Otherwise it
returns True.

The lists are checked (arrays of the weights' dtype, C-contiguous, slots and
gradients of their weight's size) before the loops, which run without the
GIL.  ``table`` is the caller's scratch for the arrays' addresses: an intp
array (at least len(weights), TABLE_COLUMNS).  With ``num_threads`` > 1 the
elements of all weights, taken one weight after the other, are cut into
that many equal ranges, one per thread of an OpenMP team (one region for
the finite check, one for the update); with one thread the step is a plain
loop that enters no OpenMP region (see ``_conv``).  The updates are
elementwise, so the results do not depend on the thread count.
"""

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

from microkernels cimport fc_mxcsr_enter, fc_mxcsr_leave

cnp.import_array()

# Columns of ``table``: element count, then the addresses of the weight, the
# gradient and up to three slot arrays (0 for a slot the step does not use).
cdef enum:
    SIZE = 0
    WEIGHT = 1
    GRAD = 2
    SLOT = 3
    COLUMNS = 6

cdef enum:
    SGD = 0
    RMSPROP = 1
    ADAM = 2

TABLE_COLUMNS = COLUMNS


cdef struct Coefficients:
    # The scalars of a step, in double; each loop casts them to its dtype.
    double rate       # SGD, RMSprop: the learning rate; Adam: lr * sqrt(1 - b2^t) / (1 - b1^t)
    double decay      # weight_decay * learning rate, or 0
    double first      # SGD: momentum; RMSprop: rho; Adam: beta_1
    double second     # RMSprop: momentum; Adam: beta_2
    double epsilon
    bint nesterov


cdef inline floating root(floating x) noexcept nogil:
    """sqrt in the dtype of x (float32 stays float32, as NumPy's)."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef bint any_nonfinite(const floating *g, Py_ssize_t n) noexcept nogil:
    """True when g[0:n] holds a NaN or an infinity (g - g is then NaN, not 0)."""
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(n):
        bad = bad | ((g[i] - g[i]) != 0)
    return bad


cdef void sgd_range(floating *w, const floating *g, floating *m, Py_ssize_t n,
                    Coefficients c) noexcept nogil:
    """``SGD.update`` on n elements; m (the momentum slot) may be NULL."""
    cdef floating lr = <floating>c.rate, decay = <floating>c.decay
    cdef floating momentum = <floating>c.first, s, wi
    cdef Py_ssize_t i
    for i in range(n):
        wi = w[i]
        if decay != 0:
            wi = wi - wi * decay
        s = g[i] * lr
        if m == NULL:
            wi = wi - s
        else:
            m[i] = m[i] * momentum - s
            if c.nesterov:
                wi = wi - s + m[i] * momentum
            else:
                wi = wi + m[i]
        w[i] = wi


cdef void rmsprop_range(floating *w, const floating *g, floating *v, floating *m,
                        floating *a, Py_ssize_t n, Coefficients c) noexcept nogil:
    """``RMSprop.update`` on n elements, v the velocity; m (momentum) and a
    (average_gradient, centered) may be NULL."""
    cdef floating lr = <floating>c.rate, decay = <floating>c.decay
    cdef floating rho = <floating>c.first, rest = <floating>(1 - c.first)
    cdef floating momentum = <floating>c.second, epsilon = <floating>c.epsilon
    cdef floating gi, vi, ai, d, s, wi
    cdef Py_ssize_t i
    for i in range(n):
        wi = w[i]
        if decay != 0:
            wi = wi - wi * decay
        gi = g[i]
        vi = v[i] * rho + gi * gi * rest
        v[i] = vi
        if a == NULL:
            d = vi + epsilon
        else:
            ai = a[i] * rho + gi * rest
            a[i] = ai
            d = vi - ai * ai + epsilon
        s = gi / root(d) * lr
        if m == NULL:
            wi = wi - s
        else:
            m[i] = m[i] * momentum + s
            wi = wi - m[i]
        w[i] = wi


cdef void adam_range(floating *w, const floating *g, floating *m, floating *v,
                     floating *v_hat, Py_ssize_t n, Coefficients c) noexcept nogil:
    """``Adam.update`` on n elements; v_hat (amsgrad) may be NULL."""
    cdef floating alpha = <floating>c.rate, decay = <floating>c.decay
    cdef floating rest_1 = <floating>(1 - c.first), rest_2 = <floating>(1 - c.second)
    cdef floating epsilon = <floating>c.epsilon, gi, mi, vi, wi
    cdef Py_ssize_t i
    for i in range(n):
        wi = w[i]
        if decay != 0:
            wi = wi - wi * decay
        gi = g[i]
        mi = m[i] + (gi - m[i]) * rest_1
        m[i] = mi
        vi = v[i] + (gi * gi - v[i]) * rest_2
        v[i] = vi
        if v_hat != NULL:
            if v_hat[i] > vi:
                vi = v_hat[i]
            v_hat[i] = vi
        w[i] = wi - mi / (root(vi) + epsilon) * alpha


cdef inline floating *address(const Py_ssize_t[:, ::1] table, Py_ssize_t row,
                              Py_ssize_t column, floating *kind) noexcept nogil:
    return <floating *>table[row, column]


cdef void update_range(int algorithm, const Py_ssize_t[:, ::1] table, Py_ssize_t row,
                       Py_ssize_t start, Py_ssize_t stop, Coefficients c,
                       floating *kind) noexcept nogil:
    """Elements [start, stop) of the weight of ``table`` row ``row``."""
    cdef floating *w = address(table, row, WEIGHT, kind) + start
    cdef floating *g = address(table, row, GRAD, kind) + start
    cdef floating *s0 = address(table, row, SLOT, kind)
    cdef floating *s1 = address(table, row, SLOT + 1, kind)
    cdef floating *s2 = address(table, row, SLOT + 2, kind)
    s0 = s0 + start if s0 != NULL else NULL
    s1 = s1 + start if s1 != NULL else NULL
    s2 = s2 + start if s2 != NULL else NULL
    if algorithm == SGD:
        sgd_range(w, g, s0, stop - start, c)
    elif algorithm == RMSPROP:
        rmsprop_range(w, g, s0, s1, s2, stop - start, c)
    else:
        adam_range(w, g, s0, s1, s2, stop - start, c)


cdef bint part_nonfinite(const Py_ssize_t[:, ::1] table, Py_ssize_t count, Py_ssize_t begin,
                         Py_ssize_t end, floating *kind) noexcept nogil:
    """True when elements [begin, end) of the gradients, numbered through
    rows [0, count) one after the other, hold a NaN or an infinity."""
    cdef Py_ssize_t row, offset = 0, n, lo, hi
    cdef bint bad = False
    for row in range(count):
        n = table[row, SIZE]
        lo, hi = max(begin, offset), min(end, offset + n)
        if lo < hi:
            bad = bad or any_nonfinite(address(table, row, GRAD, kind) + lo - offset, hi - lo)
        offset += n
    return bad


cdef void update_part(int algorithm, const Py_ssize_t[:, ::1] table, Py_ssize_t count,
                      Py_ssize_t begin, Py_ssize_t end, Coefficients c, bint flush_denormal,
                      floating *kind) noexcept nogil:
    """The step on elements [begin, end) of the weights, numbered through
    rows [0, count) one after the other."""
    cdef Py_ssize_t row, offset = 0, n, lo, hi
    cdef unsigned saved = fc_mxcsr_enter(flush_denormal)
    for row in range(count):
        n = table[row, SIZE]
        lo, hi = max(begin, offset), min(end, offset + n)
        if lo < hi:
            update_range(algorithm, table, row, lo - offset, hi - offset, c, kind)
        offset += n
    fc_mxcsr_leave(saved)


cdef bint run(int algorithm, const Py_ssize_t[:, ::1] table, Py_ssize_t count, Coefficients c,
              bint check_finite, int num_threads, bint flush_denormal,
              floating *kind) noexcept nogil:
    """The step over rows [0, count) of ``table``; False (nothing written)
    when ``check_finite`` finds a non-finite gradient.  With several threads
    the elements of all rows, one after the other, are cut into
    ``num_threads`` equal ranges: one parallel region checks, one updates."""
    cdef Py_ssize_t total = 0, row, part
    cdef int bad = 0
    for row in range(count):
        total += table[row, SIZE]
    if num_threads == 1:
        if check_finite and part_nonfinite(table, count, 0, total, kind):
            return False
        update_part(algorithm, table, count, 0, total, c, flush_denormal, kind)
        return True
    if check_finite:
        for part in prange(num_threads, num_threads=num_threads, schedule="static"):
            bad |= part_nonfinite(table, count, total * part // num_threads,
                                  total * (part + 1) // num_threads, kind)
        if bad:
            return False
    for part in prange(num_threads, num_threads=num_threads, schedule="static"):
        update_part(algorithm, table, count, total * part // num_threads,
                    total * (part + 1) // num_threads, c, flush_denormal, kind)
    return True


cdef Py_ssize_t fill_table(Py_ssize_t[:, ::1] table, list weights, list grads,
                           tuple slots) except -1:
    """Writes the sizes and addresses of the arrays into ``table`` after
    checking them; returns the dtype's type number."""
    cdef Py_ssize_t count = len(weights), row, k
    cdef int typenum = -1
    cdef cnp.ndarray array
    if len(grads) != count:
        raise ValueError(f"got {len(grads)} gradients for {count} weights")
    if len(slots) > COLUMNS - SLOT:
        raise ValueError(f"at most {COLUMNS - SLOT} slot lists, got {len(slots)}")
    if table.shape[0] < count or table.shape[1] != COLUMNS:
        raise ValueError(f"table must have at least {count} rows and {COLUMNS} "
                         f"columns, got shape {(table.shape[0], table.shape[1])}")
    for k in range(len(slots)):
        if slots[k] is not None and len(slots[k]) != count:
            raise ValueError(f"slot list {k} has {len(slots[k])} arrays for {count} weights")
    for row in range(count):
        array = check_array(weights[row], "weights", typenum, -1, True)
        typenum = cnp.PyArray_TYPE(array)
        table[row, SIZE] = cnp.PyArray_SIZE(array)
        table[row, WEIGHT] = <Py_ssize_t>cnp.PyArray_DATA(array)
        table[row, GRAD] = <Py_ssize_t>cnp.PyArray_DATA(
            check_array(grads[row], "grads", typenum, table[row, SIZE], False))
        for k in range(COLUMNS - SLOT):
            if k < len(slots) and slots[k] is not None:
                table[row, SLOT + k] = <Py_ssize_t>cnp.PyArray_DATA(
                    check_array(slots[k][row], "slots", typenum, table[row, SIZE], True))
            else:
                table[row, SLOT + k] = 0
    return typenum


cdef cnp.ndarray check_array(object array, str name, int typenum, Py_ssize_t size,
                             bint written):
    """``array`` when it is a C-contiguous float32/float64 array (of type
    ``typenum`` and ``size`` elements unless these are -1; writeable when
    ``written``), else ValueError."""
    if not isinstance(array, cnp.ndarray):
        raise ValueError(f"{name} must hold numpy arrays, got {type(array).__name__}")
    cdef cnp.ndarray checked = <cnp.ndarray>array
    cdef int kind = cnp.PyArray_TYPE(checked)
    if kind != cnp.NPY_FLOAT32 and kind != cnp.NPY_FLOAT64:
        raise ValueError(f"{name} must be float32 or float64 arrays, got {checked.dtype}")
    if typenum != -1 and kind != typenum:
        raise ValueError(f"{name} must have the weights' dtype, got {checked.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(checked):
        raise ValueError(f"{name} must be C-contiguous")
    if written and not cnp.PyArray_ISWRITEABLE(checked):
        raise ValueError(f"{name} must be writeable")
    if size != -1 and cnp.PyArray_SIZE(checked) != size:
        raise ValueError(f"{name} must have their weight's size {size}, got "
                         f"{cnp.PyArray_SIZE(checked)}")
    return checked


def step(Py_ssize_t[:, ::1] table, list weights, list grads, tuple slots, *, int algorithm,
         double rate, double decay, double first=0, double second=0, double epsilon=0,
         bint nesterov=False, bint check_finite=False, int num_threads=1,
         bint flush_denormal=False):
    """One step of ``algorithm`` (SGD_STEP, RMSPROP_STEP or ADAM_STEP) on
    every weight; True when applied, False when ``check_finite`` found a
    non-finite gradient (nothing written).

    slots: a tuple of up to three lists (or None) of slot arrays aligned
    with ``weights``: SGD (momentum,); RMSprop (velocity, momentum or None,
    average_gradient or None); Adam (momentum, velocity, velocity_hat or
    None).  The scalars, as ``Coefficients``: rate is the learning rate
    (Adam: lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)); decay is
    weight_decay * learning rate or 0; first is SGD's momentum, RMSprop's
    rho, Adam's beta_1; second is RMSprop's momentum or Adam's beta_2."""
    cdef Coefficients c
    cdef Py_ssize_t count = len(weights)
    cdef bint applied
    if algorithm not in (SGD, RMSPROP, ADAM):
        raise ValueError(f"unknown algorithm {algorithm}")
    required = {SGD: 0, RMSPROP: 1, ADAM: 2}[algorithm]  # slot lists that may not be None
    if len(slots) < required or any(slots[k] is None for k in range(required)):
        raise ValueError(f"algorithm {algorithm} needs {required} slot lists (not None)")
    if num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    c.rate, c.decay, c.first, c.second = rate, decay, first, second
    c.epsilon, c.nesterov = epsilon, nesterov
    if count == 0:
        return True
    typenum = fill_table(table, weights, grads, slots)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            applied = run(algorithm, table, count, c, check_finite, num_threads,
                          flush_denormal, <float *>NULL)
        else:
            applied = run(algorithm, table, count, c, check_finite, num_threads,
                          flush_denormal, <double *>NULL)
    return applied


SGD_STEP, RMSPROP_STEP, ADAM_STEP = SGD, RMSPROP, ADAM


cdef bint parts_nonfinite(const floating *values, Py_ssize_t n, int num_threads) noexcept nogil:
    """any_nonfinite over values[0:n], cut into ``num_threads`` equal ranges
    (one OpenMP region; a plain loop for one thread)."""
    cdef Py_ssize_t part
    cdef int bad = 0
    if num_threads == 1:
        return any_nonfinite(values, n)
    for part in prange(num_threads, num_threads=num_threads, schedule="static"):
        bad |= any_nonfinite(values + n * part // num_threads,
                             n * (part + 1) // num_threads - n * part // num_threads)
    return bad


def all_finite(array, *, int num_threads=1):
    """True when ``array`` (C-contiguous float32 or float64, any shape) holds
    no NaN and no infinity: ``np.isfinite(array).all()`` in one pass,
    without a temporary."""
    cdef cnp.ndarray checked = check_array(array, "array", -1, -1, False)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(checked)
    cdef bint bad
    if num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    with nogil:
        if cnp.PyArray_TYPE(checked) == cnp.NPY_FLOAT32:
            bad = parts_nonfinite(<const float *>cnp.PyArray_DATA(checked), n, num_threads)
        else:
            bad = parts_nonfinite(<const double *>cnp.PyArray_DATA(checked), n, num_threads)
    return not bad
