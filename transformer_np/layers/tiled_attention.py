"""Exact attention in tiles, never storing the (Tq, Tk) scores: the online softmax of FlashAttention.
Derivation: notes/flash.md.

The queries are cut into tiles of ``tile_q`` rows and the keys and values into tiles of
``tile_k`` rows. The forward visits, for each query tile (outer loop), every key tile (inner
loop), as FlashAttention-2 does, keeping per query row a running maximum m, a running sum l and
a partial output, rescaled whenever the maximum grows (flash.1)-(flash.3). It keeps only O and
the per-row log-sum-exp (flash.5); the backward recomputes each tile's probabilities from that
log-sum-exp (flash.6) and uses D = rowsum(dO * O) (flash.7). Memory beyond the inputs and
outputs: O(Tq) per batch element and head, plus one tile of scores at a time.

Every array keeps its batch and head axes, (B, H, ...); the Python loops run over tiles only.
Key/value heads shared by groups of query heads (notes/gqa.md) are handled as in
``ScaledDotProductAttention``: a group's query heads are stacked as rows against its one key head.
"""

import math

from ..backend import get_array_module
from ..module import Module
from ..validate import check_int
from .attention import ScaledDotProductAttention
from .masks import mask_bias


class TiledAttention(Module):
    """softmax(Q K^T / sqrt(Dh) + mask) V computed tile by tile; equal to ScaledDotProductAttention.

    tile_q, tile_k: rows per query tile and per key tile (integers >= 1; they need not divide
    Tq or Tk: the last tile is shorter). causal: hide the future without a mask array, query i
    seeing keys 0 .. i + Tk - Tq (the last Tq rows of a causal mask of length Tk, as a KV-cached
    step needs); key tiles entirely in a query tile's future are skipped, never computed.

    A ``mask`` (boolean, broadcastable to (B, H, Tq, Tk), True = may attend) is honoured too: it
    is read one tile at a time, and a tile it hides entirely is skipped. A query row that sees
    no key gets O = 0 and passes back zero gradient (notes/attention.md's rule): its
    log-sum-exp is stored as +inf, so its recomputed probabilities are exactly 0 (notes/flash.md).

    There is no attention dropout: the probabilities are never stored, so no dropout mask could
    be applied to them and reused (models refuse ``attention="tiled"`` with dropout > 0).
    ``attn_weights`` is always None: there is no P to plot.
    """

    def __init__(self, tile_q=64, tile_k=64, *, causal=False):
        self.tile_q = check_int(tile_q, "tile_q")
        self.tile_k = check_int(tile_k, "tile_k")
        if not isinstance(causal, bool):
            raise TypeError(f"causal: expected True or False, received {causal!r}")
        self.causal = causal
        self.attn_weights = None

    def forward(self, Q, K, V, mask=None):
        """The tiled forward (flash.1)-(flash.5): O and the per-row log-sum-exp, never S or P whole.

        Q: (B, H, Tq, Dh), K: (B, Hkv, Tk, Dh), V: (B, Hkv, Tk, Dv) -> O: (B, H, Tq, Dv), Hkv
        dividing H (gqa.2). mask: None or boolean, broadcastable to (B, H, Tq, Tk).
        Caches Q / sqrt(Dh), K, V, O, the log-sum-exp L (B, H, Tq) and the mask: O(T) memory.
        """
        ScaledDotProductAttention._check_inputs(Q, K, V, mask)
        self._check_causal(Q.shape[2], K.shape[2])
        xp = get_array_module(Q)
        B, H, Tq, Dh = Q.shape
        Hkv, Tk, Dv = K.shape[1], K.shape[2], V.shape[-1]
        Qs = (Q * (1.0 / math.sqrt(Dh))).reshape(B, Hkv, H // Hkv, Tq, Dh)  # (B, Hkv, G, Tq, Dh): Q / sqrt(Dh), grouped (gqa.3)
        O = xp.empty((B, Hkv, H // Hkv, Tq, Dv), dtype=Q.dtype)  # (B, Hkv, G, Tq, Dv)
        L = xp.empty((B, Hkv, H // Hkv, Tq), dtype=Q.dtype)  # (B, Hkv, G, Tq): log-sum-exp per query row
        for q0, q1 in _tiles(Tq, self.tile_q):
            Qi = _rows(Qs[:, :, :, q0:q1])  # (B, Hkv, G n, Dh): the tile's query rows of every head of a group
            m = xp.full(Qs.shape[:3] + (q1 - q0,), -xp.inf, dtype=Q.dtype)  # (B, Hkv, G, n): running maximum
            l = xp.zeros_like(m)  # (B, Hkv, G, n): running sum
            Oi = xp.zeros(m.shape + (Dv,), dtype=Q.dtype)  # (B, Hkv, G, n, Dv): unnormalised output
            for k0, k1 in self._visible_key_tiles(q0, q1, Tq, Tk, mask):
                S = (Qi @ xp.swapaxes(K[:, :, k0:k1], -1, -2)).reshape(m.shape + (k1 - k0,))  # (B, Hkv, G, n, k)  (attn.1)
                S += self._bias(mask, q0, q1, k0, k1, Tq, Tk, S)  # (attn.2)
                m_new = xp.maximum(m, S.max(axis=-1))  # (flash.1)
                shift = xp.where(m_new == -xp.inf, 0.0, m_new)  # m_new, or 0 while the row has seen no key
                alpha = xp.exp(m - shift)  # (flash.2): e^(m - m'), 0 while nothing was seen
                Pt = xp.exp(S - shift[..., None])  # (B, Hkv, G, n, k)  (flash.2): e^(S - m')
                l = alpha * l + Pt.sum(axis=-1)  # (flash.2)
                Oi = alpha[..., None] * Oi + (_rows(Pt) @ V[:, :, k0:k1]).reshape(Oi.shape)  # (flash.3)
                m = m_new
            seen = l > 0  # False exactly for a row whose keys are all hidden
            O[:, :, :, q0:q1] = Oi / xp.where(seen, l, 1.0)[..., None]  # (flash.4): 0 for an unseen row
            L[:, :, :, q0:q1] = xp.where(seen, m + xp.log(xp.where(seen, l, 1.0)), xp.inf)  # (flash.5)
        O = O.reshape(B, H, Tq, Dv)  # (B, H, Tq, Dv)
        self.save_for_backward(Qs, K, V, O, L, mask, output=O)
        return O

    def backward(self, dO):
        """The tiled backward: D = rowsum(dO * O) (flash.7), then per tile P from L (flash.6),
        dV += P^T dO (attn.5), dP = dO V^T (attn.6), dS = P * (dP - D) (flash.8),
        dQ += dS K / sqrt(Dh) (attn.8), dK += dS^T Q / sqrt(Dh) (attn.9).

        dO: (B, H, Tq, Dv) -> (dQ, dK, dV) with the shapes of Q, K, V. Key tiles form the outer
        loop (FlashAttention-2's backward), so each tile's dK, dV is summed over the query tiles
        and over the heads of its group before it is stored.
        """
        Qs, K, V, O, L, mask = self.saved(dO)
        xp = get_array_module(dO)
        B, Hkv, G, Tq, Dh = Qs.shape
        Tk, Dv = K.shape[2], V.shape[-1]
        dOg = dO.reshape(B, Hkv, G, Tq, Dv)  # (B, Hkv, G, Tq, Dv)
        D = (dOg * O.reshape(dOg.shape)).sum(axis=-1)  # (B, Hkv, G, Tq)  (flash.7)
        dQ = xp.zeros_like(Qs)  # (B, Hkv, G, Tq, Dh)
        dK, dV = xp.zeros_like(K), xp.zeros_like(V)
        for k0, k1 in _tiles(Tk, self.tile_k):
            Kj, Vj = K[:, :, k0:k1], V[:, :, k0:k1]  # (B, Hkv, k, Dh), (B, Hkv, k, Dv)
            for q0, q1 in _tiles(Tq, self.tile_q):
                if not self._tile_visible(q0, q1, k0, k1, Tq, Tk, mask):
                    continue
                Qi, dOi = _rows(Qs[:, :, :, q0:q1]), _rows(dOg[:, :, :, q0:q1])  # (B, Hkv, G n, Dh), (B, Hkv, G n, Dv)
                S = (Qi @ xp.swapaxes(Kj, -1, -2)).reshape(B, Hkv, G, q1 - q0, k1 - k0)  # (B, Hkv, G, n, k)  (attn.1)
                S += self._bias(mask, q0, q1, k0, k1, Tq, Tk, S)  # (attn.2)
                P = _rows(xp.exp(S - L[:, :, :, q0:q1, None]))  # (B, Hkv, G n, k)  (flash.6)
                dV[:, :, k0:k1] += xp.swapaxes(P, -1, -2) @ dOi  # (attn.5), (gqa.4)
                dP = dOi @ xp.swapaxes(Vj, -1, -2)  # (B, Hkv, G n, k)  (attn.6)
                dS = P * (dP - _rows(D[:, :, :, q0:q1, None]))  # (flash.8)
                dQ[:, :, :, q0:q1] += (dS @ Kj).reshape(B, Hkv, G, q1 - q0, Dh)  # dS K; / sqrt(Dh) below  (attn.8)
                dK[:, :, k0:k1] += xp.swapaxes(dS, -1, -2) @ Qi  # (attn.9), (gqa.5): dS^T (Q / sqrt(Dh))
        dQ *= 1.0 / math.sqrt(Dh)  # (attn.8)
        return dQ.reshape(B, Hkv * G, Tq, Dh), dK, dV

    # -- which tiles are computed, and their mask --------------------------------------------------
    def _visible_key_tiles(self, q0, q1, Tq, Tk, mask):
        return [(k0, k1) for k0, k1 in _tiles(Tk, self.tile_k) if self._tile_visible(q0, q1, k0, k1, Tq, Tk, mask)]

    def _tile_visible(self, q0, q1, k0, k1, Tq, Tk, mask):
        """False when the tile's keys are all hidden from all its queries: the tile is skipped."""
        if self.causal and k0 > q1 - 1 + (Tk - Tq):
            return False  # the first key lies after the last query's position: all in the future
        return mask is None or bool(_mask_tile(mask, q0, q1, k0, k1).any())

    def _bias(self, mask, q0, q1, k0, k1, Tq, Tk, S):
        """The additive form of the tile's mask (and causal rule): 0 visible, -inf hidden, broadcastable to S."""
        xp = get_array_module(S)
        bias = xp.zeros((1, 1, 1, 1, 1), dtype=S.dtype)
        if mask is not None:
            m = _mask_tile(mask, q0, q1, k0, k1)  # (b, h, n or 1, k or 1)
            bias = bias + mask_bias(m, S).reshape(_grouped_shape(m.shape, S.shape[1]))
        if self.causal and k1 - 1 > q0 + (Tk - Tq):  # some key of the tile lies in some query's future
            future = xp.arange(k0, k1)[None, :] > xp.arange(q0, q1)[:, None] + (Tk - Tq)  # (n, k)
            bias = bias + mask_bias(~future, S)
        return bias

    def _check_causal(self, Tq, Tk):
        if self.causal and Tq > Tk:
            raise ValueError(f"TiledAttention(causal=True): expected Tq <= Tk (the queries are the last Tq of the "
                             f"Tk positions), received Tq={Tq}, Tk={Tk}")


def _tiles(n, size):
    """[(start, stop), ...] covering 0 .. n in steps of ``size``; the last tile may be shorter."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _rows(x):
    """(B, Hkv, G, n, d) -> (B, Hkv, G n, d): a group's heads stacked as rows (gqa.3)."""
    return x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])


def _mask_tile(mask, q0, q1, k0, k1):
    """The (q0:q1, k0:k1) tile of a mask broadcastable to (B, H, Tq, Tk); an axis of size 1 stays 1."""
    rows = slice(q0, q1) if mask.shape[2] > 1 else slice(None)
    cols = slice(k0, k1) if mask.shape[3] > 1 else slice(None)
    return mask[:, :, rows, cols]


def _grouped_shape(shape, Hkv):
    """A (b, h, n, k) mask tile's shape on the grouped axes (b, Hkv, G, n, k), h = 1 or H."""
    b, h, n, k = shape
    return (b, 1, 1, n, k) if h == 1 else (b, Hkv, h // Hkv, n, k)
