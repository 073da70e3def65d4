"""LayerNorm: normalise every row over its features, then scale and shift. Derivation: notes/layernorm.md."""

from ..backend import get_array_module
from ..init import ones, zeros
from ..module import Module, Parameter
from ..validate import check_float, check_last_dim, check_same_dtype


class LayerNorm(Module):
    """Layer normalisation over the last axis, with learnable gain ``weight`` and shift ``bias``.

    Each row x (the D features of one token) is centred by its mean and divided by
    sqrt(var + eps), where var is the BIASED variance (divide by D, not D - 1) and eps sits
    inside the square root. This is what ``torch.nn.LayerNorm`` computes; the "unbiased std
    plus eps" variant of some tutorials differs (notes/layernorm.md, last section).

    ``weight`` (gamma) starts at ones and ``bias`` (beta) at zeros, both of shape (D,), so a
    fresh LayerNorm returns xhat itself.
    """

    def __init__(self, d_model, eps=1e-5, *, dtype=None):
        self.d_model = d_model
        self.eps = float(eps)
        self.weight = Parameter(ones(d_model, dtype))
        self.bias = Parameter(zeros(d_model, dtype))

    def forward(self, x):
        """y = gamma * xhat + beta with xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (ln.1)-(ln.4).

        x: (..., D) -> y: (..., D), any number of leading axes (B, T, ...).
        Caches xhat (..., D) and rstd (..., 1), nothing else: x - mean = xhat / rstd, so
        backward needs neither x nor the mean.
        """
        check_float(x)
        check_last_dim(x, self.d_model)
        check_same_dtype(x, self.weight.data)
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)  # (ln.1)
        xhat = x - mean  # x - mean for now; scaled into xhat in place below
        # Two passes (centre first, then square) keep var accurate when |mean| >> std.
        y = xp.multiply(xhat, xhat)  # (x - mean)^2 for now; the buffer of y afterwards
        var = _mean(y)  # (ln.2), biased: divide by D
        rstd = 1.0 / xp.sqrt(var + self.eps)  # (ln.3)
        xhat *= rstd  # (ln.3)
        self.save_for_backward(xhat, rstd)
        xp.multiply(xhat, self.weight.data, out=y)  # (ln.4)
        y += self.bias.data
        return y

    def backward(self, dy):
        """dbeta += sum of dy (ln.5); dgamma += sum of dy * xhat (ln.6); dxhat = dy * gamma (ln.7);
        dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), means over the last axis (ln.8).

        dy: (..., D) -> dx: (..., D). Sums for the parameters run over every leading axis.
        """
        xhat, rstd = self.saved()
        gamma = self.weight.data
        dy_xhat = dy * xhat
        self.bias.grad += dy.reshape(-1, self.d_model).sum(axis=0)  # (ln.5)
        self.weight.grad += dy_xhat.reshape(-1, self.d_model).sum(axis=0)  # (ln.6)
        dxhat = dy * gamma  # (ln.7)
        # Remove from dxhat its component along the shift direction (all ones) and along the
        # scale direction (xhat): the two directions normalisation is blind to (ln.8).
        # mean(dxhat * xhat) = mean(dy * xhat * gamma) is a matrix-vector product with the
        # dy * xhat of (ln.6): no third (..., D) product is formed.
        mean_dxhat_xhat = (dy_xhat @ gamma)[..., None] / self.d_model
        mean_dxhat = _mean(dxhat)
        xp = get_array_module(dy)
        xp.multiply(xhat, mean_dxhat_xhat, out=dy_xhat)  # dy_xhat is reused as scratch
        dxhat -= mean_dxhat
        dxhat -= dy_xhat
        dxhat *= rstd
        return dxhat


def _mean(a):
    """``a.mean(axis=-1, keepdims=True)``: the row sums as a matrix-vector product with a vector of
    ones (BLAS runs it several times faster than NumPy's reduction along rows of a few hundred
    features), divided by D."""
    xp = get_array_module(a)
    D = a.shape[-1]
    total = a @ xp.ones(D, dtype=a.dtype)
    total /= D
    return total[..., None]
