"""From token vectors to one vector per sentence: masked mean pooling, L2 normalisation, and
BERT's pooler (the first token through a dense layer and tanh). Derivation: notes/pooling.md.

    e = L2Normalize(MaskedMeanPooling(h, mask))    a sentence embedding (sentence-transformers)
    c = Pooler(h)                                  BERT's [CLS] summary, tanh(h_0 W + b)
"""

from ..backend import get_array_module
from ..init import make_rng
from ..module import Module
from ..validate import check_float, check_last_dim, check_ndim, check_same_dtype
from .linear import Linear


def _check_token_mask(mask, B, T):
    """mask: (B, T), boolean or 0/1, at least one kept token per row; returns it as a float (B, T, 1) column."""
    shape = getattr(mask, "shape", None)
    if shape != (B, T):
        raise ValueError(f"mask: expected shape {(B, T)} (one entry per token of h), received {shape}")
    xp = get_array_module(mask)
    if mask.dtype != bool and not xp.isin(mask, (0, 1)).all():
        raise ValueError("mask: expected booleans or 0/1 (1 = a real token), received other values")
    counts = mask.sum(axis=1)
    if (counts == 0).any():
        rows = [int(i) for i in xp.nonzero(counts == 0)[0][:5]]
        raise ValueError(f"mask: expected at least one real token in every row, received none in rows {rows}")
    return mask


class MaskedMeanPooling(Module):
    """The mean of the token vectors a mask keeps: s_b = sum_t m_bt h_bt / sum_t m_bt (pool.1).

    No parameters. Padding positions (m = 0) take no part in the mean and get zero gradient.
    """

    def forward(self, h, mask):
        """s = sum_t m_t h_t / n, n = sum_t m_t (pool.1).

        h: (B, T, D); mask: (B, T), True / 1 = a real token (at least one per row) -> s: (B, D).
        Caches the mask as weights m / n (B, T, 1) in the dtype of h.
        """
        check_float(h, "h")
        check_ndim(h, 3, "h", "(B, T, D)")
        B, T, _ = h.shape
        mask = _check_token_mask(mask, B, T)
        m = mask.astype(h.dtype)[:, :, None]  # (B, T, 1)
        w = m / m.sum(axis=1, keepdims=True)  # (B, T, 1): m_t / n, the weight of token t
        s = (w * h).sum(axis=1)  # (B, D)  (pool.1)
        self.save_for_backward(w, output=s)
        return s

    def backward(self, ds):
        """dh_t = (m_t / n) ds (pool.4): every kept token receives an n-th of ds, padding none.

        ds: (B, D) -> dh: (B, T, D).
        """
        (w,) = self.saved(ds)
        return w * ds[:, None, :]  # (B, T, D)  (pool.4)


class L2Normalize(Module):
    """e = s / max(||s||, eps) (pool.2): each row scaled to unit length, as torch.nn.functional.normalize.

    ``eps`` (1e-12, torch's default) only guards a zero row; for every real sentence vector
    ||s|| > eps and e has length 1, so cosine similarity is a dot product.
    """

    def __init__(self, eps=1e-12):
        if not eps > 0:
            raise ValueError(f"eps: expected a number > 0, received {eps!r}")
        self.eps = float(eps)

    def forward(self, s):
        """e = s / r with r = max(||s||_2, eps) over the last axis (pool.2).

        s: (..., D) -> e: (..., D). Caches e and r (..., 1) and whether the eps floor was used.
        """
        check_float(s, "s")
        xp = get_array_module(s)
        norm = xp.sqrt((s * s).sum(axis=-1, keepdims=True))  # (..., 1)
        r = xp.maximum(norm, self.eps)  # (..., 1)
        e = s / r  # (pool.2)
        self.save_for_backward(e, r, norm > self.eps, output=e)
        return e

    def backward(self, de):
        """ds = (de - e (e . de)) / r (pool.5): the part of de along e is removed, since scaling s
        does not move e. On a row at the eps floor r is a constant and ds = de / eps.

        de: (..., D) -> ds: (..., D).
        """
        e, r, above = self.saved(de)
        radial = (e * de).sum(axis=-1, keepdims=True)  # (..., 1): e . de
        return (de - e * (radial * above)) / r  # (pool.5)


class Tanh(Module):
    """y = tanh(x), element-wise (pool.3); dx = dy (1 - y^2) (pool.6)."""

    def forward(self, x):
        """x: any shape -> y: same shape. Caches y (the derivative is 1 - y^2)."""
        check_float(x)
        y = get_array_module(x).tanh(x)  # (pool.3)
        self.save_for_backward(y, output=y)
        return y

    def backward(self, dy):
        """dx = dy (1 - y^2) (pool.6)."""
        (y,) = self.saved(dy)
        return dy * (1.0 - y * y)  # (pool.6)


class Pooler(Module):
    """BERT's pooler: c = tanh(h_0 W + b), the first token's vector ([CLS]) through ``dense``
    (Linear(d, d)) and ``activation`` (Tanh) (pool.3). Sentence-level heads of the original BERT
    (next-sentence prediction, classification) read c.
    """

    def __init__(self, d_model, *, rng=None, dtype=None):
        rng = make_rng(rng)
        self.d_model = d_model
        self.dense = Linear(d_model, d_model, rng=rng, dtype=dtype)
        self.activation = Tanh()

    def forward(self, h):
        """c = tanh(h[:, 0] W + b) (pool.3).

        h: (B, T, D) -> c: (B, D). Caches T (backward scatters into row 0 of (B, T, D)).
        """
        check_float(h, "h")
        check_ndim(h, 3, "h", "(B, T, D)")
        check_last_dim(h, self.d_model, "h")
        check_same_dtype(h, self.dense.weight.data, "h", "dense.weight")
        u = self.dense.forward(h[:, 0])  # (B, D): the first token only
        c = self.activation.forward(u)  # (B, D)  (pool.3)
        self.save_for_backward(h.shape, output=c)
        return c

    def backward(self, dc):
        """du = dc (1 - c^2) (pool.6); dh_0 = du W^T and dW, db from the Linear (lin.2)-(lin.4);
        dh_t = 0 for t > 0 (pool.7).

        dc: (B, D) -> dh: (B, T, D).
        """
        (shape,) = self.saved(dc)
        du = self.activation.backward(dc)  # (pool.6)
        dh0 = self.dense.backward(du)  # (B, D)
        dh = get_array_module(dh0).zeros(shape, dtype=dh0.dtype)  # (B, T, D)
        dh[:, 0] = dh0  # (pool.7)
        return dh
