"""Sliding-window attention: each query sees only the keys within ``window`` positions of it.
Derivation: notes/window.md.

    SlidingWindowAttention(window)            the window as a mask on the standard path: O(T^2)
    SlidingWindowAttention(window, block=b)   the banded computation: query blocks of b rows, each
                                              against the (at most) b + 2 window - 2 keys it can
                                              see, b + window - 1 under a causal mask: O(T w)
    RollingKVCache                            the KV cache of a windowed decoder: the last
                                              ``window`` positions only, memory bounded by w

Query i at position p sees key j when |p - j| < window (win.1), AND whatever the mask allows;
with the causal mask of a decoder that is the last ``window`` keys (Mistral), without it the
2 window - 1 keys around the query (Longformer's local attention). Both forms give the same
numbers; the banded one never builds a (Tq, Tk) array.
"""

from ..backend import get_array_module
from ..init import make_rng
from ..module import Module
from ..validate import check_int, check_ndim
from .attention import ScaledDotProductAttention
from .kv_cache import SelfAttentionCache
from .masks import check_mask, combine_masks


class SlidingWindowAttention(Module):
    """softmax(Q K^T / sqrt(Dh) + mask + window) V on (B, H, T, Dh) arrays; no parameters.

    window: keys j visible from the query at position p satisfy |p - j| < window (win.1), an
    integer >= 1. block: None for the standard path with the window as a mask (attention
    dropout available), or the rows per query block of the banded computation (win.2), whose
    memory is O(T (block + window)); it has no attention dropout (``dropout`` must be 0).

    Positions: with ``n`` positions in all (the mask's key axis when a mask is given, else Tk),
    the Tq queries are the last Tq positions and the Tk keys the last Tk. That is what a
    RollingKVCache hands over: the mask of a cached step covers every position so far, the
    cache holds only the last ones (the window guarantees the others are invisible).
    ``attn_weights``: P (B, H, Tq, Tk) on the standard path, None on the banded one.
    """

    def __init__(self, window, block=None, *, dropout=0.0, rng=None):
        self.window = check_int(window, "window")
        self.block = None if block is None else check_int(block, "block")
        if self.block is not None and dropout:
            raise ValueError(f"SlidingWindowAttention(block={block}): the banded computation has no attention "
                             f"dropout: expected dropout=0, received {dropout!r}")
        self.attention = ScaledDotProductAttention(dropout, rng=make_rng(rng))

    @property
    def attn_weights(self):
        return self.attention.attn_weights if self.block is None else None

    def forward(self, Q, K, V, mask=None):
        """Windowed attention (win.1) on the standard path, or banded (win.2), (win.3).

        Q: (B, H, Tq, Dh), K: (B, Hkv, Tk, Dh), V: (B, Hkv, Tk, Dv) -> O: (B, H, Tq, Dv).
        mask: None or boolean, broadcastable to (B, H, Tq, n) with n >= Tk positions in all.
        Caches, banded: each query block's ScaledDotProductAttention (its P is (B, H, b, <= b + 2w - 2),
        <= b + w - 1 under a causal mask: the band is trimmed to the columns the mask leaves visible).
        """
        n = self._check_inputs(Q, K, V, mask)
        xp = get_array_module(Q)
        Tq, Tk = Q.shape[2], K.shape[2]
        if mask is not None and mask.shape[3] > 1:
            mask = mask[..., n - Tk:]  # (B|1, H|1, Tq|1, Tk): the columns of the keys we hold
        if self.block is None:
            window = self._window_mask(xp, n - Tq, 0, Tq, n - Tk, 0, Tk)  # (1, 1, Tq, Tk)  (win.1)
            return self.attention.forward(Q, K, V, mask=combine_masks(mask, window))  # (B, H, Tq, Dv)
        B, H, _, _ = Q.shape
        O = xp.zeros((B, H, Tq, V.shape[-1]), dtype=Q.dtype)  # (B, H, Tq, Dv); rows with no key stay 0
        blocks = []
        for q0 in range(0, Tq, self.block):
            q1 = min(q0 + self.block, Tq)
            k0, k1 = self._band(q0, q1, n, Tq, Tk)  # (win.2): the keys the block can see
            if mask is not None and k0 < k1:
                k0, k1 = _trimmed(_tile(mask, q0, q1, k0, k1), k0, k1)  # the mask's hidden columns: not computed
            if k0 >= k1:
                continue
            window = self._window_mask(xp, n - Tq, q0, q1, n - Tk, k0, k1)  # (1, 1, b, k)  (win.1)
            core = ScaledDotProductAttention()
            core.keeps_for_backward = self.keeps_for_backward
            block_mask = combine_masks(None if mask is None else _tile(mask, q0, q1, k0, k1), window)
            O[:, :, q0:q1] = core.forward(Q[:, :, q0:q1], K[:, :, k0:k1], V[:, :, k0:k1], mask=block_mask)  # (attn.1)-(attn.4)
            blocks.append((q0, q1, k0, k1, core))
        self.save_for_backward(blocks, Q.shape, K.shape, V.shape, output=O)
        return O

    def backward(self, dO):
        """dQ, dK, dV: each block's (attn.5)-(attn.9), its dQ rows placed (win.3), its dK, dV summed
        into the keys it saw (win.4). dO: (B, H, Tq, Dv) -> (dQ, dK, dV) in the shapes of Q, K, V."""
        if self.block is None:
            return self.attention.backward(dO)
        blocks, q_shape, k_shape, v_shape = self.saved(dO)
        xp = get_array_module(dO)
        dQ = xp.zeros(q_shape, dtype=dO.dtype)
        dK, dV = xp.zeros(k_shape, dtype=dO.dtype), xp.zeros(v_shape, dtype=dO.dtype)
        for q0, q1, k0, k1, core in reversed(blocks):
            dQ_b, dK_b, dV_b = core.backward(dO[:, :, q0:q1])  # (attn.5)-(attn.9) on the band
            dQ[:, :, q0:q1] = dQ_b  # (win.3): each query row lies in one block
            dK[:, :, k0:k1] += dK_b  # (win.4): a key is seen by several blocks
            dV[:, :, k0:k1] += dV_b  # (win.4)
        return dQ, dK, dV

    def self_cache(self, batch_size, n_heads, d_head, max_len, *, like):
        """The cache of a windowed decoder layer: a RollingKVCache of the last ``window`` positions."""
        return RollingKVCache(batch_size, n_heads, d_head, max_len, self.window, like=like)

    # -- positions -----------------------------------------------------------------------------------
    def _band(self, q0, q1, n, Tq, Tk):
        """Key indices [k0, k1) the query rows q0 .. q1-1 can reach: positions p - w + 1 .. p + w - 1 (win.2)."""
        first, last = n - Tq + q0, n - Tq + q1 - 1  # positions of the block's first and last query
        k0 = max(first - self.window + 1, n - Tk) - (n - Tk)
        k1 = min(last + self.window - 1, n - 1) - (n - Tk) + 1
        return k0, k1

    def _window_mask(self, xp, q_pos0, q0, q1, k_pos0, k0, k1):
        """(1, 1, q1 - q0, k1 - k0): |p - j| < window for query rows q0.. and key rows k0.. (win.1)."""
        distance = xp.arange(q_pos0 + q0, q_pos0 + q1)[:, None] - xp.arange(k_pos0 + k0, k_pos0 + k1)[None, :]
        return (xp.abs(distance) < self.window)[None, None]

    def _check_inputs(self, Q, K, V, mask):
        """Returns n, the number of positions: the mask's key axis (> 1) or Tk."""
        ScaledDotProductAttention._check_inputs(Q, K, V, None)
        B, H, Tq, _ = Q.shape
        Tk = K.shape[2]
        n = Tk
        if mask is not None and getattr(mask, "ndim", 0) == 4 and mask.shape[3] > Tk:
            n = mask.shape[3]  # a rolling cache: the keys are the last Tk of n positions
        check_mask(mask, B, H, Tq, n)
        if Tq > n:
            raise ValueError(f"SlidingWindowAttention: expected the queries to be the last Tq of the n positions, "
                             f"Tq <= n, received Tq={Tq}, n={n} (a window is for self-attention)")
        return n


class RollingKVCache(SelfAttentionCache):
    """The KV cache of a sliding-window layer: K, V (B, H, <= window, Dh) of the last ``window``
    positions; ``length`` counts every position seen (the next token's position), at most
    ``max_len``. A step appends the new K, V, hands the attention the kept positions plus the
    new ones, and then keeps the last ``window``: memory bounded by w, not by the sequence (win.5).
    """

    def __init__(self, batch_size, n_heads, d_head, max_len, window, *, like):
        self.max_len = check_int(max_len, "max_len")
        self.window = check_int(window, "window")
        xp = get_array_module(like)
        shape = (check_int(batch_size, "batch_size"), n_heads, 0, d_head)
        self._k = xp.zeros(shape, dtype=like.dtype)
        self._v = xp.zeros(shape, dtype=like.dtype)
        self.length = 0

    @property
    def k(self):
        """K of the kept positions, max(0, length - window) .. length - 1: (B, H, <= window, Dh)."""
        return self._k

    @property
    def v(self):
        return self._v

    @property
    def capacity(self):
        return self.window

    def append(self, K_new, V_new):
        """K_new, V_new (B, H, T_new, Dh) at positions length .. length + T_new - 1; returns (K, V)
        of the kept positions followed by the new ones, (B, H, kept + T_new, Dh), and keeps the
        last ``window`` of them (win.5)."""
        xp = get_array_module(self._k)
        B, H, _, Dh = self._k.shape
        for name, a in (("K_new", K_new), ("V_new", V_new)):
            check_ndim(a, 4, name, "(B, H, T_new, Dh)")
            if a.shape[:2] != (B, H) or a.shape[3] != Dh or a.dtype != self._k.dtype:
                raise ValueError(f"{name}: expected shape (B, H, T_new, Dh) = ({B}, {H}, T_new, {Dh}) of dtype "
                                 f"{self._k.dtype}, received shape {a.shape} of dtype {a.dtype}")
        self.check_room(K_new.shape[2])
        K = xp.concatenate([self._k, K_new], axis=2)  # (B, H, kept + T_new, Dh)
        V = xp.concatenate([self._v, V_new], axis=2)
        self._k, self._v = K[:, :, -self.window:].copy(), V[:, :, -self.window:].copy()  # (win.5)
        self.length += K_new.shape[2]
        return K, V

    def select(self, rows):
        """Keep batch rows ``rows`` (already checked), in that order."""
        self._k, self._v = self._k[rows], self._v[rows]


def _trimmed(mask_tile, k0, k1):
    """[k0, k1) narrowed to its first .. last column the mask tile leaves visible to some query
    (under a causal mask, the band's future half); empty when it hides every column."""
    if mask_tile.shape[3] == 1:
        return (k0, k1) if bool(mask_tile.any()) else (k0, k0)
    visible = get_array_module(mask_tile).flatnonzero(mask_tile.any(axis=(0, 1, 2)))
    if visible.size == 0:
        return k0, k0
    return k0 + int(visible[0]), k0 + int(visible[-1]) + 1


def _tile(mask, q0, q1, k0, k1):
    """The (q0:q1, k0:k1) tile of a mask broadcastable to (B, H, Tq, Tk); an axis of size 1 stays 1."""
    rows = slice(q0, q1) if mask.shape[2] > 1 else slice(None)
    cols = slice(k0, k1) if mask.shape[3] > 1 else slice(None)
    return mask[:, :, rows, cols]
