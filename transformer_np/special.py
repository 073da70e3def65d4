"""The error function, erf(x) = 2/sqrt(pi) * integral_0^x exp(-s^2) ds, which NumPy lacks.

The exact GELU needs Phi(x) = (1 + erf(x / sqrt(2))) / 2, and this package depends on NumPy
alone, so erf is computed here with whole-array operations (NumPy and CuPy alike). The methods
and their accuracy are derived in notes/erf.md:

    float64   the Taylor series for |x| < 2 (erf.1), Laplace's continued fraction for erfc
              beyond (erf.2): a few units in the last place
    float32   tanh(t S(t^2)), t = clip(x, -4, 4), S a polynomial of degree 7 (erf.3) whose
              coefficients tools/fit_erf.py regenerates (erf.4): at most 3.4 units in the last place

erf is odd, so the methods work on |x| and restore the sign. Float16 is computed in float32
and rounded back; integers and booleans are promoted to float64, as NumPy's ufuncs do.

The exact GELU (notes/activations.md) uses erf through the standard normal distribution:
``normal_cdf(x)`` = Phi(x) of (act.2) and ``normal_pdf(x)`` = phi(x) of (act.5).
"""

import math

from .backend import get_array_module

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
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

# float32: erf(x) = tanh(t S(t^2)), t = clip(x, -4, 4), S(z) = a_0 + a_1 z + ... + a_7 z^7 (erf.3),
# the minimax fit (erf.4) printed by ``python tools/fit_erf.py`` (tests/test_special.py reruns it).
_TANH_FORM = (
    1.128379248, 0.1027698321, -0.0001951485097, -0.0006150424972,
    8.472533049e-05, -4.832671613e-06, 3.271711104e-08, 5.168608192e-09,
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
    """erf(t) = t * sum_n c_n z^n with z = t^2, by Horner's rule (erf.1) (accurate for 0 <= t < 2)."""
    return t * _horner(t * t, coefficients)


def _erfc_continued_fraction(t, depth):
    """erfc(t) from the even form of Laplace's continued fraction (erf.2) (accurate for 2 <= t <= 6)."""
    xp = get_array_module(t)
    z = t * t
    tail = 0 * z  # the part of the fraction below the current level; zero below the last one
    for k in range(depth, 0, -1):
        a_k = (2 * k - 1) * (2 * k) / 4.0
        tail = a_k / (z + (2 * k + 0.5) - tail)
    return (1.0 / math.sqrt(math.pi)) * xp.exp(-z) * t / (z + 0.5 - tail)


def _erf_float64(x):
    """float64: Taylor series for |x| < 2 (erf.1), continued fraction for erfc beyond (erf.2)."""
    xp = get_array_module(x)
    t = xp.abs(x)
    near = t < _TAYLOR_LIMIT  # False for NaN, which then takes (and keeps NaN through) the tail
    far = ~near
    result = xp.empty_like(t)
    result[near] = _erf_taylor(t[near], _TAYLOR_COEFFICIENTS)
    result[far] = 1.0 - _erfc_continued_fraction(xp.minimum(t[far], _SATURATION), _FRACTION_DEPTH)
    return xp.copysign(result, x)


def _erf_float32(x):
    """float32: erf(x) = tanh(t S(t^2)) with t = clip(x, -4, 4) (erf.3)."""
    xp = get_array_module(x)
    t = xp.clip(x, -_TANH_FORM_CLIP, _TANH_FORM_CLIP)
    u = _horner(t * t, _TANH_FORM)  # S(t^2)
    u *= t
    return xp.tanh(u, out=u)


def erf(x):
    """The error function of every element of ``x`` (a NumPy or CuPy array, or a Python number).

    Returns a new array of x's shape and floating dtype, on x's backend. Methods and accuracy:
    the module docstring and notes/erf.md.
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


def normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt(2))) / 2, the standard normal CDF (act.2), element-wise.

    x: a floating array (NumPy or CuPy) -> a new array of its shape and dtype. One array is
    allocated; the additions and scalings are done in it.
    """
    Phi = erf(x / _SQRT_2)  # a new array ...
    Phi += 1.0
    Phi *= 0.5  # ... made (1 + erf) / 2 in place
    return Phi


def normal_pdf(x):
    """phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the standard normal density (act.5), element-wise.

    x: a floating array (NumPy or CuPy) -> a new array of its shape and dtype. One array is
    allocated; the scalings and the exponential are done in it. (For |x| > 38.6 in float64,
    or |x| > 13.2 in float32, the result underflows to 0; for |x| beyond about 1.8e19 in
    float32, x^2 overflows, and exp(-inf) is still 0.)
    """
    xp = get_array_module(x)
    phi = x * x  # a new array ...
    phi *= -0.5
    xp.exp(phi, out=phi)
    phi *= _INV_SQRT_2PI  # ... made exp(-x^2 / 2) / sqrt(2 pi) in place
    return phi
