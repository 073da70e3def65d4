"""LayerNorm: normalise every row over its features, then scale and shift. Derivation: notes/layernorm.md."""

import math
import numbers

from ..backend import get_array_module
from ..init import ones, zeros
from ..module import Module, Parameter
from ..ops import row_mean
from ..validate import check_float, check_int, check_last_dim, check_same_dtype


class LayerNorm(Module):
    """Layer normalisation over the last axis, with learnable gain ``weight`` and shift ``bias``.

    Each row x (the D features of one token) is centred by its mean and divided by
    sqrt(var + eps), where var is the BIASED variance (divide by D, not D - 1) and eps sits
    inside the square root. This is what ``torch.nn.LayerNorm`` computes; the "unbiased std
    plus eps" variant of some tutorials differs (notes/layernorm.md, last section).

    ``weight`` (gamma) starts at ones and ``bias`` (beta) at zeros, both of shape (D,), so a
    fresh LayerNorm returns xhat itself. ``eps`` must be a positive number: with eps = 0 a
    constant row would give 0 / 0.
    """

    def __init__(self, d_model, eps=1e-5, *, dtype=None):
        self.d_model = check_int(d_model, "d_model")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a finite number > 0, received {eps!r}")
        self.eps = float(eps)
        self.weight = Parameter(ones(self.d_model, dtype))
        self.bias = Parameter(zeros(self.d_model, dtype))

    def forward(self, x):
        """y = gamma * xhat + beta with xhat = (x - mu) * rstd, rstd = 1 / sqrt(var + eps) (ln.1)-(ln.4).

        x: (..., D) -> y: (..., D), any number of leading axes (B, T, ...).
        Caches xhat (..., D) and rstd (..., 1), nothing else: x - mu = xhat / rstd, so
        backward needs neither x nor the mean.
        """
        check_float(x)
        check_last_dim(x, self.d_model)
        check_same_dtype(x, self.weight.data)
        xp = get_array_module(x)
        mu = x.mean(axis=-1, keepdims=True)  # (..., 1)  (ln.1)
        xhat = x - mu  # x - mu, scaled into xhat by (ln.3) below
        # Two passes (centre first, then square) keep var accurate when |mu| >> std.
        var = row_mean(xhat * xhat)  # (..., 1)  (ln.2), biased: divide by D
        rstd = 1.0 / xp.sqrt(var + self.eps)  # (ln.3)
        xhat *= rstd  # (ln.3)
        y = xhat * self.weight.data  # gamma xhat, + beta on the next line
        y += self.bias.data  # (ln.4)
        self.save_for_backward(xhat, rstd, output=y)
        return y

    def backward(self, dy):
        """dbeta += sum of dy (ln.5); dgamma += sum of dy * xhat (ln.6); dxhat = dy * gamma (ln.7);
        dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), means over the last axis (ln.8).

        dy: (..., D) -> dx: (..., D). Sums for the parameters run over every leading axis.
        """
        xhat, rstd = self.saved(dy)
        D = self.d_model
        self.bias.grad += dy.reshape(-1, D).sum(axis=0)  # (ln.5)
        gamma = self.weight.data
        dy_xhat = dy * xhat  # the summand of (ln.6), used again in (ln.8)
        self.weight.grad += dy_xhat.reshape(-1, D).sum(axis=0)  # (ln.6)
        dxhat = dy * gamma  # (ln.7)
        # dx removes from dxhat its components along the shift direction (all ones) and the scale
        # direction (xhat), the two that normalisation is blind to. mean(dxhat * xhat) is
        # mean(dy * xhat * gamma): the product of (ln.6) weighted by gamma, a matrix-vector product.
        return rstd * (dxhat - row_mean(dxhat) - xhat * row_mean(dy_xhat, weights=gamma))  # (ln.8)
