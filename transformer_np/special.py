"""Special functions the layers need that NumPy does not provide: the error function.

    erf(x) = 2/sqrt(pi) * integral_0^x exp(-s^2) ds

The exact GELU needs the standard normal CDF, Phi(x) = (1 + erf(x / sqrt(2))) / 2. NumPy has
no ``erf`` and this package depends on NumPy alone (SciPy is not required), so it is computed
here.

Float64 (the gradient checks' dtype) uses two classical expansions, float32 (training) one
cheaper formula; both use only whole-array operations, so they run on NumPy and CuPy arrays
alike.

Float64: the Taylor series and Laplace's continued fraction
----------------------------------------------------------
erf is odd, so both expansions work on t = |x| and the sign is restored at the end with
``copysign`` (erf(-x) = -erf(x) holds exactly, and erf(-0.0) = -0.0).

1. Near zero, t < 2: the Maclaurin (Taylor) series of erf, obtained by integrating the series
   of exp(-s^2) term by term,

       erf(t) = 2/sqrt(pi) * sum_{n>=0} (-1)^n t^(2n+1) / (n! (2n+1)),

   evaluated by Horner's rule in z = t^2 (no large powers are formed). The series is
   alternating with terms that eventually decrease, so the truncation error is below the first
   omitted term; the number of terms (32) is chosen from that bound for float64 rounding.
   At t = 2 the terms add up, in absolute value, to
   about 19 times the result, so cancellation costs a few units in the last place there; that
   is why the series is not used beyond t = 2.

2. In the tail, t >= 2: erf(t) = 1 - erfc(t), with erfc from Laplace's continued fraction in
   its even-contracted form (the form in which each level adds z = t^2, one constant and one
   division),

       erfc(t) = exp(-t^2) / sqrt(pi) * t / (z + 1/2 - (1*2/4) / (z + 5/2 - (3*4/4) / (z + 9/2 - ...)))

   whose k-th level is  a_k / (z + 2k + 1/2 - ...)  with a_k = (2k-1)(2k)/4. It converges
   quickly for t >= 2 and is evaluated bottom-up from a fixed depth (24 levels; the depth was
   chosen by measuring the error against a 40-digit reference, where it reaches the rounding
   level with a margin). Because erfc(t) <= erfc(2) ~ 5e-3 here, a
   relative error of a few units in the last place of erfc is far below the rounding error of
   1 - erfc. For t >= 6, erfc(t) < 2e-17 and 1 - erfc(t) rounds to exactly 1 in float64,
   so t is clipped to 6 before the fraction is evaluated: the result does not change,
   and t^2 stays finite for huge inputs (1e200 or inf gives 1, not NaN). NaN gives NaN.

Float32: erf as a tanh
----------------------
In float32 the series above needs 22 terms and the boolean selection of the two branches
costs more than the arithmetic. Instead, write erf(x) = tanh(u(x)), which defines
u = artanh(erf(x)): an odd, smooth function that is x S(x^2) with S(0) = 2/sqrt(pi) and S
slowly increasing. S is replaced by a polynomial of degree 7 in z = x^2,

    erf(x) ~= tanh(t S(t^2)),   t = clip(x, -4, 4),   S(z) = sum_{j=0}^{7} a_j z^j,

whose coefficients (``_TANH_FORM`` below) were fitted once, offline, by weighted least squares
with Lawson's reweighting (which converges to the minimax fit) on 20000 points of
[0, 3.92^2] in z, minimising the largest RELATIVE error of erf that an error in S causes:
d erf = (1 - erf^2) t dS. The factor 1 - erf^2 is why one polynomial suffices: where u is
large the tanh flattens and forgives S's errors, and near 0, tanh(u) ~ u passes the relative
accuracy of S straight through. This is the tanh form of GELU, (act.3) in
notes/activations.md, made exact: (act.3) is the same construction with a polynomial of
degree 1.

The true erf rounds to exactly 1 in float32 from x = 3.92 on; NumPy's float32 tanh returns
exactly 1 only from u = 10 on (a correctly rounded one from u = 9.01), so the fit also pins
u(4) = 4 S(16) = 10.5, and t is clipped to 4: the result is exactly 1 from x = 3.95 on, one
unit in the last place below 1 in between, and t^2 stays finite for huge inputs. NaN gives
NaN; erf(-x) = -erf(x) holds exactly (t S(t^2) is odd in floating point too), and
erf(-0.0) = -0.0. Cost: 18 passes over the array (the tanh is one), two temporaries.

Accuracy (tests/test_special.py)
--------------------------------
float64: the maximum absolute error against ``math.erf`` is below 1e-15 on a dense grid over
[-30, 30] (a few units in the last place; the largest errors occur just below t = 2).
float32: measured on about 12 million float32 arguments in [0, 8] (dense grid, random points
and a log-spaced sweep down to 1e-37), maximum absolute error 1.5e-7, at most 3.2 units in the
last place of the result, 0.42 on average; erf(x) is monotone in x. (The float64 method run in
float32, 22 Taylor terms and 8 levels of the fraction, reaches 6e-7 and 10 units in the last
place, at ten times the cost.) Results stay float32.
Float16 inputs are computed in float32 and rounded back; integer and boolean inputs are
promoted to float64, as NumPy's own ufuncs do.
"""

import math

from .backend import get_array_module

_TAYLOR_LIMIT = 2.0  # float64: series below this |x|, continued fraction from here on
_SATURATION = 6.0  # float64: erf(|x| >= 6) rounds to exactly 1


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


# float64: the truncation bounds sit well below half an ulp of 1 (1.1e-16).
_TAYLOR_COEFFICIENTS = _taylor_coefficients(1e-17)
_FRACTION_DEPTH = 24

# float32: erf(x) = tanh(t S(t^2)), t = clip(x, -4, 4), S(z) = a_0 + a_1 z + ... + a_7 z^7
# (fitted offline, see the module docstring). a_0 is 2/sqrt(pi) = 1.1283792 to float32 precision.
_TANH_FORM = (
    1.128379248, 0.1027698321, -1.951485196e-4, -6.150424867e-4,
    8.472532586e-5, -4.832670679e-6, 3.271702792e-8, 5.168610717e-9,
)
_TANH_FORM_CLIP = 4.0  # 4 S(16) = 10.5, where tanh is exactly 1 in float32


def _horner(z, coefficients):
    """sum_n c_n z^n by Horner's rule, in a new array of z's dtype (needs at least two coefficients)."""
    acc = z * coefficients[-1]
    acc += coefficients[-2]
    for c in reversed(coefficients[:-2]):
        acc *= z
        acc += c
    return acc


def _erf_taylor(t, coefficients):
    """erf(t) = t * sum_n c_n z^n with z = t^2, by Horner's rule (accurate for 0 <= t < 2)."""
    return t * _horner(t * t, coefficients)


def _erfc_continued_fraction(t, depth):
    """erfc(t) from the even form of Laplace's continued fraction (accurate for t >= 2, t <= 6)."""
    xp = get_array_module(t)
    z = t * t
    tail = 0 * z  # the part of the fraction below the current level; zero below the last one
    for k in range(depth, 0, -1):
        a_k = (2 * k - 1) * (2 * k) / 4.0
        tail = a_k / (z + (2 * k + 0.5) - tail)
    return (1.0 / math.sqrt(math.pi)) * xp.exp(-z) * t / (z + 0.5 - tail)


def _erf_float64(x):
    """float64: Taylor series for |x| < 2, continued fraction for erfc beyond (module docstring)."""
    xp = get_array_module(x)
    t = xp.abs(x)
    near = t < _TAYLOR_LIMIT  # False for NaN, which then takes (and keeps NaN through) the tail
    far = ~near
    result = xp.empty_like(t)
    result[near] = _erf_taylor(t[near], _TAYLOR_COEFFICIENTS)
    result[far] = 1.0 - _erfc_continued_fraction(xp.minimum(t[far], _SATURATION), _FRACTION_DEPTH)
    return xp.copysign(result, x)


def _erf_float32(x):
    """float32: erf(x) = tanh(t S(t^2)) with t = clip(x, -4, 4) (module docstring)."""
    xp = get_array_module(x)
    t = xp.clip(x, -_TANH_FORM_CLIP, _TANH_FORM_CLIP)
    u = _horner(t * t, _TANH_FORM)  # S(t^2)
    u *= t
    return xp.tanh(u, out=u)


def erf(x):
    """The error function of every element of ``x`` (a NumPy or CuPy array, or a Python number).

    Returns a new array of x's shape and floating dtype, on x's backend. See the module
    docstring for the methods (float64: Taylor series for |x| < 2, Laplace's continued fraction
    for erfc beyond; float32 and float16: a tanh of a polynomial) and their accuracy.
    """
    xp = get_array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(xp.float64)
    elif x.dtype.kind != "f":
        raise TypeError(f"erf: expected a real (floating-point or integer) array, received {x.dtype}")
    if x.dtype.itemsize >= 8:
        return _erf_float64(x).astype(x.dtype, copy=False)
    return _erf_float32(x.astype(xp.float32, copy=False)).astype(x.dtype, copy=False)
