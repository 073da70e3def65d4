"""Element-wise activations ReLU and GELU; softmax and log-softmax along one axis.

Derivations: notes/activations.md (act.k) and notes/softmax.md (softmax.k).

``softmax(x, axis)`` and ``log_softmax(x, axis)`` are the library's only ones: the Softmax
layer, attention, the loss, sampling and beam search all call them. Their rule for a slice
whose every entry is -inf (an attention row with every key masked): softmax gives zeros,
never NaN, and log-softmax gives -inf everywhere (log 0).
"""

import math

from ..backend import get_array_module
from ..module import Module
from ..ops import by_row_blocks, row_sum
from ..special import normal_cdf, normal_pdf
from ..validate import check_float

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # c of the tanh form (act.3) (Hendrycks & Gimpel)
# Beyond |x| = 40 the GELU is exactly x or 0 in floating point: phi(40) = exp(-800) / sqrt(2 pi)
# underflows to 0, and tanh(u(40)) rounds to exactly +-1. Clipping x to this range where only
# those saturated factors are computed changes no result and keeps x^2 and x^3 finite for huge
# float32 inputs (no overflow, and no 0 * inf = NaN).
_SATURATION = 40.0


def softmax(x, axis=-1):
    """y = exp(x - m) / sum(exp(x - m)) along ``axis``, m the maximum of the slice (softmax.2).

    x: any shape, floating -> y: the same shape and dtype, on x's backend. Every slice sums to
    1, except a slice whose entries are all -inf (a fully masked attention row): it gives
    zeros, never NaN (its maximum is taken as 0, so every exponential is exactly 0, and the
    zero sum is not divided by). Along the last axis the rows are computed a block at a time,
    so that the temporaries stay in the cache (ops.by_row_blocks); the result is the same.
    """
    if axis in (-1, x.ndim - 1):
        return by_row_blocks(_softmax, x)
    return _softmax(x, axis)


def _softmax(x, axis=-1):
    """softmax(x, axis) on whole arrays: the formula (softmax.2)."""
    xp = get_array_module(x)
    y = x - _shift(x, axis)  # x - m, m the slice maximum (0 for an all -inf slice) ...
    xp.exp(y, out=y)  # ... the numerators of (softmax.2), normalised in place below
    total = row_sum(y, axis)  # (..., 1, ...): >= 1 (the maximum gives exp(0) = 1) ...
    total[total == 0] = 1  # ... or 0 for an all -inf slice, whose zeros are then kept
    y /= total  # (softmax.2)
    return y


def log_softmax(x, axis=-1):
    """log y = (x - m) - log sum(exp(x - m)) along ``axis``, m the maximum of the slice (softmax.5).

    x: any shape, floating -> the same shape and dtype, on x's backend. Finite for finite x
    of any size (no exp overflows, the sum is at least 1). A slice whose entries are all -inf
    gives -inf everywhere (log 0, as exp of it gives softmax's zeros), never NaN.
    """
    xp = get_array_module(x)
    shifted = x - _shift(x, axis)  # x - m, every entry <= 0
    total = row_sum(xp.exp(shifted), axis)  # (..., 1, ...): >= 1, or 0 for an all -inf slice
    total[total == 0] = 1  # log 1 = 0: the slice keeps its -inf entries
    shifted -= xp.log(total)  # (softmax.5)
    return shifted


def _shift(x, axis):
    """The maximum of every slice along ``axis`` (axis kept), with 0 where the maximum is -inf."""
    xp = get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    m[xp.isneginf(m)] = 0  # exp(-inf - 0) = 0, where -inf - (-inf) would be NaN
    return m


class ReLU(Module):
    """y = max(x, 0), element-wise, on an array of any shape."""

    def forward(self, x):
        """y = max(x, 0) (act.1).

        x: any shape, e.g. (B, T, D) -> y: same shape and dtype. Caches the boolean mask x > 0.
        """
        check_float(x)
        xp = get_array_module(x)
        y = xp.maximum(x, 0)  # (act.1)
        self.save_for_backward(x > 0, output=y)
        return y

    def backward(self, dy):
        """dx = dy ⊙ [x > 0] (act.4); the derivative at exactly x = 0 is taken to be 0.

        dy: the shape of x -> dx: the same shape.
        """
        (positive,) = self.saved(dy)
        return dy * positive  # (act.4)


class GELU(Module):
    """Gaussian Error Linear Unit, y = x Phi(x) (Hendrycks & Gimpel, 2016).

    ``approximate="none"``: the exact form, Phi the standard normal CDF computed from
    ``transformer_np.special.erf`` (``special.normal_cdf``) (act.2). ``approximate="tanh"``: the tanh approximation
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
        # Each formula runs on a block of rows at a time (ops.by_row_blocks): same result, and
        # its temporaries stay in the cache.
        if self.approximate == "none":

            def gelu(x):
                Phi = normal_cdf(x)  # (act.2): Phi(x) = (1 + erf(x / sqrt 2)) / 2
                y = x * Phi  # (act.2)
                return y, Phi

            y, Phi = by_row_blocks(gelu, x)
            self.save_for_backward(x, Phi, output=y)
            return y

        def gelu_tanh(x):
            xc = xp.clip(x, -_SATURATION, _SATURATION)  # changes no result, see _SATURATION
            u = _SQRT_2_OVER_PI * (xc * (1.0 + _GELU_CUBIC * (xc * xc)))  # (act.3): x + c x^3 = x (1 + c x^2)
            tanh_u = xp.tanh(u)  # (act.3)
            y = 0.5 * x * (1.0 + tanh_u)  # (act.3)
            return y, tanh_u

        y, tanh_u = by_row_blocks(gelu_tanh, x)
        self.save_for_backward(x, tanh_u, output=y)
        return y

    def backward(self, dy):
        """dx = dy ⊙ (Phi(x) + x phi(x)) (act.5), or for the tanh form
        dx = dy ⊙ (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)) (act.6).

        dy: the shape of x -> dx: the same shape.
        """
        x, saved = self.saved(dy)
        xp = get_array_module(x)

        def gelu_backward(dy, x, saved):  # on a block of rows (ops.by_row_blocks), as forward
            xc = xp.clip(x, -_SATURATION, _SATURATION)  # changes no result, see _SATURATION
            if self.approximate == "none":
                Phi = saved
                return dy * (Phi + xc * normal_pdf(xc))  # (act.5)
            tanh_u = saved
            du_dx = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * (xc * xc))  # du/dx of (act.6)
            return dy * (0.5 * ((1.0 - tanh_u * tanh_u) * du_dx * xc + tanh_u + 1.0))  # (act.6)

        return by_row_blocks(gelu_backward, dy, x, saved)


class Softmax(Module):
    """y = softmax(x) along ``axis`` (any axis, default the last one), a layer around ``softmax``.

    The maximum along the axis is subtracted first (softmax.2): the result is the same and
    exp never overflows, so logits of size 1e4 give finite probabilities. A slice in which
    every entry is -inf (a fully masked row) gives zeros rather than NaN, and zero gradient.
    """

    def __init__(self, axis=-1):
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis: expected an int, received {axis!r}")
        self.axis = axis

    def forward(self, x):
        """y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j, along ``axis`` (softmax.1, softmax.2).

        x: any shape, e.g. logits (B, T, V) or scores (B, H, Tq, Tk) -> y: same shape and dtype.
        Caches y.
        """
        check_float(x)
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"x: expected at least {abs(self.axis) + (self.axis >= 0)} dimensions "
                             f"for axis {self.axis}, received shape {x.shape}")
        y = softmax(x, self.axis)  # (softmax.2)
        self.save_for_backward(y, output=y)
        return y

    def backward(self, dy):
        """dx = y ⊙ (dy - sum(dy ⊙ y, axis)) (softmax.4), the Jacobian (softmax.3) applied without forming it.

        dy: the shape of y -> dx: the same shape.
        """
        (y,) = self.saved(dy)
        if self.axis not in (-1, y.ndim - 1):
            return y * (dy - row_sum(dy * y, self.axis))  # (softmax.4)

        def softmax_backward(y, dy):  # along the last axis, on a block of rows (ops.by_row_blocks)
            return y * (dy - row_sum(dy * y))  # (softmax.4)

        return by_row_blocks(softmax_backward, y, dy)
