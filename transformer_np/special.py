"""Special functions the layers need that NumPy does not provide: the error function.

    erf(x) = 2/sqrt(pi) * integral_0^x exp(-s^2) ds

The exact GELU needs the standard normal CDF, Phi(x) = (1 + erf(x / sqrt(2))) / 2. NumPy has
no ``erf`` and this package depends on NumPy alone (SciPy is not required), so it is computed
here from two classical expansions, using only whole-array operations so that it runs on NumPy
and CuPy arrays alike. erf is odd, so both expansions work on t = |x| and the sign is restored
at the end with ``copysign`` (erf(-x) = -erf(x) holds exactly, and erf(-0.0) = -0.0).

1. Near zero, t < 2: the Maclaurin (Taylor) series of erf, obtained by integrating the series
   of exp(-s^2) term by term,

       erf(t) = 2/sqrt(pi) * sum_{n>=0} (-1)^n t^(2n+1) / (n! (2n+1)),

   evaluated by Horner's rule in z = t^2 (no large powers are formed). The series is
   alternating with terms that eventually decrease, so the truncation error is below the first
   omitted term; the number of terms is chosen from that bound for the working precision
   (32 terms in float64, 22 in float32). At t = 2 the terms add up, in absolute value, to
   about 19 times the result, so cancellation costs a few units in the last place there; that
   is why the series is not used beyond t = 2.

2. In the tail, t >= 2: erf(t) = 1 - erfc(t), with erfc from Laplace's continued fraction in
   its even-contracted form (the form in which each level adds z = t^2, one constant and one
   division),

       erfc(t) = exp(-t^2) / sqrt(pi) * t / (z + 1/2 - (1*2/4) / (z + 5/2 - (3*4/4) / (z + 9/2 - ...)))

   whose k-th level is  a_k / (z + 2k + 1/2 - ...)  with a_k = (2k-1)(2k)/4. It converges
   quickly for t >= 2 and is evaluated bottom-up from a fixed depth (24 levels in float64, 8 in
   float32; the depths were chosen by measuring the error against a 40-digit reference, where
   they reach the rounding level with a margin). Because erfc(t) <= erfc(2) ~ 5e-3 here, a
   relative error of a few units in the last place of erfc is far below the rounding error of
   1 - erfc. For t >= 6, erfc(t) < 2e-17 and 1 - erfc(t) rounds to exactly 1 in float64 and
   float32, so t is clipped to 6 before the fraction is evaluated: the result does not change,
   and t^2 stays finite for huge inputs (1e200 or inf gives 1, not NaN). NaN gives NaN.

Accuracy (tests/test_special.py): the maximum absolute error against ``math.erf`` is below
1e-15 in float64 on a dense grid over [-30, 30] (a few units in the last place; the largest
errors occur just below t = 2), and below 1e-6 in float32, whose results stay float32.
Float16 inputs are computed in float32 and rounded back; integer and boolean inputs are
promoted to float64, as NumPy's own ufuncs do.
"""

import math

from .backend import get_array_module

_TAYLOR_LIMIT = 2.0  # series below this |x|, continued fraction from here on
_SATURATION = 6.0  # erf(|x| >= 6) rounds to exactly 1 in float64 and float32


def _taylor_coefficients(tol):
    """c_n = 2/sqrt(pi) (-1)^n / (n! (2n+1)), for every n whose term can exceed ``tol`` for t < 2."""
    coefficients = []
    n = 0
    while True:
        c = 2.0 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1))
        if abs(c) * _TAYLOR_LIMIT ** (2 * n + 1) < tol:
            return tuple(coefficients)
        coefficients.append(c)
        n += 1


# (Taylor coefficients, continued-fraction depth) by itemsize of the working dtype. The
# truncation bounds sit well below half an ulp of 1 (1.1e-16 in float64, 6e-8 in float32).
_TABLES = {
    8: (_taylor_coefficients(1e-17), 24),
    4: (_taylor_coefficients(1e-9), 8),
}


def _erf_taylor(t, coefficients):
    """erf(t) = t * sum_n c_n z^n with z = t^2, by Horner's rule (accurate for 0 <= t < 2)."""
    z = t * t
    acc = coefficients[-1] + 0 * z  # start from the last coefficient, in t's dtype and shape
    for c in reversed(coefficients[:-1]):
        acc = acc * z + c
    return t * acc


def _erfc_continued_fraction(t, depth):
    """erfc(t) from the even form of Laplace's continued fraction (accurate for t >= 2, t <= 6)."""
    xp = get_array_module(t)
    z = t * t
    tail = 0 * z  # the part of the fraction below the current level; zero below the last one
    for k in range(depth, 0, -1):
        a_k = (2 * k - 1) * (2 * k) / 4.0
        tail = a_k / (z + (2 * k + 0.5) - tail)
    return (1.0 / math.sqrt(math.pi)) * xp.exp(-z) * t / (z + 0.5 - tail)


def erf(x):
    """The error function of every element of ``x`` (a NumPy or CuPy array, or a Python number).

    Returns an array of x's shape and floating dtype, on x's backend. See the module docstring
    for the method (Taylor series for |x| < 2, Laplace's continued fraction for erfc beyond)
    and its accuracy.
    """
    xp = get_array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(xp.float64)
    elif x.dtype.kind != "f":
        raise TypeError(f"erf: expected a real (floating-point or integer) array, received {x.dtype}")
    work = x if x.dtype.itemsize >= 4 else x.astype(xp.float32)
    coefficients, depth = _TABLES[work.dtype.itemsize]

    t = xp.abs(work)
    near = t < _TAYLOR_LIMIT  # False for NaN, which then takes (and keeps NaN through) the tail
    far = ~near
    result = xp.empty_like(t)
    result[near] = _erf_taylor(t[near], coefficients)
    result[far] = 1.0 - _erfc_continued_fraction(xp.minimum(t[far], _SATURATION), depth)
    return xp.copysign(result, work).astype(x.dtype, copy=False)
