"""ALiBi, attention with linear biases (Press, Smith and Lewis, 2022): no position vectors at all;
head h adds -m_h times the query-key distance to its scores. Derivation: notes/score_bias.md.

    alibi = ALiBi(n_heads, causal=True)
    bias = alibi.forward(Tq, Tk, like=Q)     # (1, H, Tq, Tk), added to the scores (bias.1)

Fixed (no parameters) and defined for every distance, so there is no maximum position.
"""

import math

from ..backend import get_array_module, get_backend
from ..module import Module
from ..validate import check_int


def alibi_slopes(n_heads):
    """The n_heads slopes m_h of the ALiBi paper (alibi.1), NumPy float64, largest first.

    For n a power of two: m_k = 2^(-8k/n), k = 1 .. n, a geometric sequence from 2^(-8/n)
    down to 2^(-8). Otherwise, with c the largest power of two below n: the c slopes of c heads,
    then the slopes of 2c heads at odd k = 1, 3, 5, ..., 2^(-8k/(2c)), for the n - c heads left.
    """
    n = check_int(n_heads, "n_heads")
    np = get_backend("numpy")
    c = 2 ** int(math.floor(math.log2(n)))
    base = 2.0 ** (-8.0 * np.arange(1, c + 1) / c)  # (c,)  (alibi.1)
    extra = 2.0 ** (-8.0 * np.arange(1, 2 * (n - c), 2) / (2 * c))  # (n - c,): odd k of 2c heads  (alibi.1)
    return np.concatenate([base, extra])


def query_key_distance(Tq, Tk):
    """(Tq, Tk) NumPy int array i_pos - j: query row i sits at position Tk - Tq + i (the last Tq of
    the Tk positions, as in a KV-cached step), key j at position j (bias.3)."""
    np = get_backend("numpy")
    return (Tk - Tq + np.arange(Tq))[:, None] - np.arange(Tk)[None, :]  # (Tq, Tk)  (bias.3)


class ALiBi(Module):
    """The fixed linear bias of ALiBi for ``n_heads`` heads, (1, H, Tq, Tk).

    causal=True (a decoder): bias = -m_h (i - j) for keys j at or before the query i (alibi.2);
    the later keys are hidden by the causal mask, and get 0 here. causal=False (an encoder):
    bias = -m_h |i - j| (alibi.3), symmetric. ``slopes``: (H,) float64, alibi_slopes(n_heads).
    """

    def __init__(self, n_heads, causal=True):
        self.n_heads = check_int(n_heads, "n_heads")
        self.causal = bool(causal)
        self.slopes = alibi_slopes(self.n_heads)  # (H,)  (alibi.1)

    def forward(self, Tq, Tk, *, like):
        """The bias (1, H, Tq, Tk) in the dtype and backend of ``like`` (alibi.2) or (alibi.3).

        Tq queries, the last Tq of Tk positions (Tq = Tk without a cache). Caches nothing
        but the output's shape (there is nothing to learn).
        """
        np = get_backend("numpy")
        Tq, Tk = check_int(Tq, "Tq"), check_int(Tk, "Tk")
        if Tq > Tk:
            raise ValueError(f"ALiBi: expected at most as many queries as keys, received Tq={Tq}, Tk={Tk}")
        xp = get_array_module(like)
        distance = query_key_distance(Tq, Tk)  # (Tq, Tk)  (bias.3), on the host
        distance = np.maximum(distance, 0) if self.causal else np.abs(distance)  # (alibi.2) or (alibi.3)
        distance = xp.asarray(distance, dtype=like.dtype)  # moved to like's backend (a model's .to moves slopes)
        slopes = xp.asarray(self.slopes, dtype=like.dtype)  # (H,)
        bias = (-slopes[:, None, None] * distance)[None]  # (1, H, Tq, Tk)  (alibi.2), (alibi.3)
        self.save_for_backward(output=bias)
        return bias

    def backward(self, dbias):
        """Nothing to learn and no floating-point input: checks dbias (1, H, Tq, Tk), returns None."""
        self.saved(dbias)
        return None
