"""Element-wise activations ReLU and GELU, and Softmax along one axis.

Derivations: notes/activations.md (act.k) and notes/softmax.md (softmax.k).
"""

import math

from ..backend import get_array_module
from ..module import Module
from ..special import erf
from ..validate import check_float

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # the cubic coefficient of the tanh approximation (Hendrycks & Gimpel)
# Beyond |x| = 40 the GELU is exactly x or 0 in floating point: phi(40) = exp(-800) / sqrt(2 pi)
# underflows to 0, and tanh(u(40)) rounds to exactly +-1. Clipping x to this range where only
# those saturated factors are computed changes no result and keeps x^2 and x^3 finite for huge
# float32 inputs (no overflow, and no 0 * inf = NaN).
_SATURATION = 40.0


class ReLU(Module):
    """y = max(x, 0), element-wise, on an array of any shape."""

    def forward(self, x):
        """y = max(x, 0) (act.1).

        x: any shape, e.g. (B, T, D) -> y: same shape and dtype. Caches the boolean mask x > 0.
        """
        check_float(x)
        xp = get_array_module(x)
        positive = x > 0
        self.save_for_backward(positive)
        return xp.maximum(x, 0)

    def backward(self, dy):
        """dx = dy ⊙ [x > 0] (act.4); the derivative at exactly x = 0 is taken to be 0.

        dy: the shape of x -> dx: the same shape.
        """
        (positive,) = self.saved()
        return dy * positive


class GELU(Module):
    """Gaussian Error Linear Unit, y = x Phi(x) (Hendrycks & Gimpel, 2016).

    ``approximate="none"``: the exact form, Phi the standard normal CDF computed with
    ``transformer_np.special.erf`` (act.2). ``approximate="tanh"``: the tanh approximation
    (act.3), the form used by BERT and GPT-2.
    """

    APPROXIMATIONS = ("none", "tanh")

    def __init__(self, approximate="none"):
        if approximate not in self.APPROXIMATIONS:
            raise ValueError(
                f"approximate: expected one of {', '.join(map(repr, self.APPROXIMATIONS))}, "
                f"received {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, x):
        """y = x Phi(x) (act.2), or 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3) (act.3).

        x: any shape, e.g. (B, T, D) -> y: same shape and dtype.
        Caches x and Phi(x) (exact form) or x and tanh(u) (tanh form).
        """
        check_float(x)
        xp = get_array_module(x)
        if self.approximate == "none":
            Phi = erf(x / _SQRT_2)  # a new array: the updates below are in place
            Phi += 1.0
            Phi *= 0.5
            self.save_for_backward(x, Phi)
            return x * Phi
        xc = xp.clip(x, -_SATURATION, _SATURATION)
        u = xc * xc  # u = sqrt(2/pi) x (1 + c x^2), in place
        u *= _GELU_CUBIC
        u += 1.0
        u *= xc
        u *= _SQRT_2_OVER_PI
        tanh_u = xp.tanh(u, out=u)
        self.save_for_backward(x, tanh_u)
        y = tanh_u + 1.0
        y *= x
        y *= 0.5
        return y

    def backward(self, dy):
        """dx = dy ⊙ (Phi(x) + x phi(x)) (act.5), or for the tanh form
        dx = dy ⊙ (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)) (act.6).

        dy: the shape of x -> dx: the same shape.
        """
        x, saved = self.saved()
        xp = get_array_module(x)
        xc = xp.clip(x, -_SATURATION, _SATURATION)  # changes no result, see _SATURATION
        if self.approximate == "none":
            Phi = saved
            slope = xc * xc  # becomes phi(x), then Phi + x phi(x), then dx, in place
            slope *= -0.5
            xp.exp(slope, out=slope)
            slope *= _INV_SQRT_2PI
            slope *= xc
            slope += Phi
            slope *= dy
            return slope
        tanh_u = saved
        du_dx = xc * xc  # sqrt(2/pi) (1 + 3 c x^2), in place
        du_dx *= 3.0 * _GELU_CUBIC
        du_dx += 1.0
        du_dx *= _SQRT_2_OVER_PI
        slope = tanh_u * tanh_u  # becomes 0.5 (1 + tanh u + x (1 - tanh^2 u) du/dx), then dx
        xp.subtract(1.0, slope, out=slope)
        slope *= du_dx
        slope *= xc
        slope += tanh_u
        slope += 1.0
        slope *= 0.5
        slope *= dy
        return slope


class Softmax(Module):
    """y = exp(x) / sum(exp(x)) along ``axis`` (any axis, default the last one).

    The maximum along the axis is subtracted first (softmax.2): the result is the same and
    exp never overflows, so logits of size 1e4 give finite probabilities. A slice in which
    every entry is -inf (a fully masked row) gives zeros rather than NaN, and zero gradient.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        """y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j, along ``axis`` (softmax.1, softmax.2).

        x: any shape, e.g. logits (B, T, V) or scores (B, H, Tq, Tk) -> y: same shape and dtype.
        Caches y.
        """
        check_float(x)
        xp = get_array_module(x)
        m = x.max(axis=self.axis, keepdims=True)
        m[xp.isneginf(m)] = 0  # an all -inf slice: exp(-inf - 0) = 0, not NaN
        y = x - m  # one new array, exponentiated and normalised in place
        xp.exp(y, out=y)
        total = _sum(y, self.axis)  # >= 1 (the max contributes exp(0) = 1) ...
        total[total == 0] = 1  # ... unless the slice was all -inf: then y = 0
        y /= total
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        """dx = y ⊙ (dy - sum(dy ⊙ y, axis)) (softmax.4), the Jacobian (softmax.3) applied without forming it.

        dy: the shape of y -> dx: the same shape.
        """
        (y,) = self.saved()
        xp = get_array_module(y)
        dx = dy * y
        xp.subtract(dy, _sum(dx, self.axis), out=dx)  # dx rewritten in place: dy - sum(dy * y), then * y
        dx *= y
        return dx


def _sum(a, axis):
    """``a.sum(axis, keepdims=True)``. Over the last axis it is computed as a matrix-vector
    product with a vector of ones, which BLAS runs several times faster than NumPy's reduction
    along short rows (a few hundred entries, as in attention scores)."""
    if axis not in (-1, a.ndim - 1):
        return a.sum(axis=axis, keepdims=True)
    xp = get_array_module(a)
    return (a @ xp.ones(a.shape[-1], dtype=a.dtype))[..., None]
