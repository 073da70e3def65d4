"""Scaled dot-product attention, O = softmax(Q K^T / sqrt(Dh)) V. Derivation: notes/attention.md.

Every array carries the batch and head axes in front, (B, H, ...); the products over the last
two axes are one batched ``matmul`` each, with no loop over batch elements or heads. Keys and
values may have fewer heads than the queries (grouped-query and multi-query attention,
notes/gqa.md): the G = H / Hkv query heads of a group are stacked as rows against their one
key head, so the keys and values are never copied.
"""

import math

from ..backend import get_array_module
from ..init import make_rng
from ..module import Module
from ..validate import check_float, check_ndim, check_same_dtype
from .activation import Softmax
from .dropout import Dropout
from .masks import check_mask, mask_bias


class ScaledDotProductAttention(Module):
    """softmax(Q K^T / sqrt(Dh) + mask) V on (B, H, T, Dh) arrays; no parameters.

    Built from two sub-layers that do one thing each: ``softmax`` (layers/activation.py, the
    row softmax of the scores and its backward) and ``dropout`` (on the attention weights).

    ``dropout`` is the probability of dropping an attention weight (the paper's reference code
    applies dropout to P, before it multiplies V). It is active only in training mode; at the
    default 0.0 the layer is deterministic. ``attn_weights`` keeps the last P (B, H, Tq, Tk),
    before dropout, for plotting.
    """

    def __init__(self, dropout=0.0, *, rng=None):
        rng = make_rng(rng)
        self.softmax = Softmax(axis=-1)
        self.dropout = Dropout(dropout, rng=rng)
        self.attn_weights = None

    def forward(self, Q, K, V, mask=None, bias=None):
        """S = Q K^T / sqrt(Dh) (attn.1), masked (attn.2), P = softmax(S) (attn.3), O = P V (attn.4).

        Q: (B, H, Tq, Dh), K: (B, Hkv, Tk, Dh), V: (B, Hkv, Tk, Dv) -> O: (B, H, Tq, Dv), where
        Hkv divides H and query head h attends with key/value head h // (H / Hkv) (gqa.2);
        Hkv = H is ordinary multi-head attention.
        mask: boolean, broadcastable to (B, H, Tq, Tk), True = may attend (see layers/masks.py).
        Masked scores become -inf, so the softmax gives them weight exactly 0; a query row with
        every key masked gets P = 0 (softmax's rule for an all -inf row), hence O = 0
        and zero gradients, never NaN.
        bias: optional float array broadcastable to (B, H, Tq, Tk), added to the scores before
        the mask (bias.1): a position scheme acting inside the score (ALiBi, the T5 bias;
        notes/score_bias.md). Its gradient is returned by backward as a fourth element.
        Caches Q / sqrt(Dh), K, V and the dropped-out weights Pd (the same array as P without
        dropout); the softmax caches P. The mask is not needed: P is already exactly 0 where it
        hides a key.
        """
        self._check_inputs(Q, K, V, mask)
        self._check_bias(bias, Q, K)
        xp = get_array_module(Q)
        B, H, Tq, _ = Q.shape
        Hkv, Tk = K.shape[1], K.shape[2]
        Q_scaled = Q * (1.0 / math.sqrt(Q.shape[-1]))  # Q / sqrt(Dh): the scale on Q, not on the larger S
        Q_groups = Q_scaled.reshape(B, Hkv, -1, Q.shape[-1])  # (B, Hkv, G Tq, Dh): a group's heads stacked (gqa.3)
        S = (Q_groups @ xp.swapaxes(K, -1, -2)).reshape(B, H, Tq, Tk)  # (B, H, Tq, Tk)  (attn.1), (gqa.3)
        if bias is not None:
            S += bias  # (bias.1): the position bias, broadcast over what it does not name
        if mask is not None:
            S += mask_bias(mask, S)  # (attn.2), as an addition: 0 where visible, -inf where hidden
        P = self.softmax.forward(S)  # (attn.3)
        Pd = self.dropout.forward(P)  # P with attention dropout (the same array without it)
        O = (Pd.reshape(B, Hkv, -1, Tk) @ V).reshape(B, H, Tq, V.shape[-1])  # (B, H, Tq, Dv)  (attn.4)
        self.attn_weights = P
        self.save_for_backward(Q_groups, K, V, Pd, *(() if bias is None else (bias.shape,)), output=O)
        return O

    def backward(self, dO):
        """dV = P^T dO (attn.5), dP = dO V^T (attn.6), dS = P * (dP - rowsum(dP * P)) (attn.7),
        dQ = dS K / sqrt(Dh) (attn.8), dK = dS^T Q / sqrt(Dh) (attn.9).

        dO: (B, H, Tq, Dv) -> (dQ, dK, dV) with the shapes of Q, K, V, and with a ``bias`` a
        fourth element dbias of the bias's shape: dS summed over the axes it was broadcast along
        (bias.2). With dropout active,
        P in (attn.5) is the dropped-out Pd and dP passes back through the same dropout mask.
        (attn.7) is the softmax's own backward (softmax.4). Masked entries of P are 0, so it
        gives them dS = 0: no gradient reaches a hidden key, and none leaves an all-masked row.
        With fewer key/value heads, the products run on the stacked groups, so dK and dV are
        summed over the query heads of their group inside the product (gqa.4), (gqa.5).
        """
        Q_groups, K, V, Pd, *bias_shape = self.saved(dO)  # bias_shape: [] without a bias
        xp = get_array_module(dO)
        B, H, Tq, Tk = Pd.shape
        Hkv = K.shape[1]
        dO_groups = dO.reshape(B, Hkv, -1, dO.shape[-1])  # (B, Hkv, G Tq, Dv)
        P_groups = Pd.reshape(B, Hkv, -1, Tk)  # (B, Hkv, G Tq, Tk)
        dV = xp.swapaxes(P_groups, -1, -2) @ dO_groups  # (B, Hkv, Tk, Dv)  (attn.5), (gqa.4)
        dPd = (dO_groups @ xp.swapaxes(V, -1, -2)).reshape(B, H, Tq, Tk)  # (attn.6), the weights after dropout
        dP = self.dropout.backward(dPd)  # (drop.4)
        dS = self.softmax.backward(dP)  # (attn.7): P * (dP - rowsum(dP * P))
        dS_groups = dS.reshape(B, Hkv, -1, Tk)  # (B, Hkv, G Tq, Tk)
        dQ = (dS_groups @ K).reshape(B, H, Tq, K.shape[-1])  # dS K, divided by sqrt(Dh) on the next line
        dQ *= 1.0 / math.sqrt(K.shape[-1])  # (attn.8), (gqa.6)
        dK = xp.swapaxes(dS_groups, -1, -2) @ Q_groups  # (B, Hkv, Tk, Dh)  (attn.9), (gqa.5): dS^T (Q / sqrt(Dh))
        if not bias_shape:
            return dQ, dK, dV
        dbias = _sum_to(dS, bias_shape[0])  # (bias.2): dS summed over the axes the bias was broadcast along
        return dQ, dK, dV, dbias

    @staticmethod
    def _check_bias(bias, Q, K):
        """bias: None, or a float array of Q's dtype broadcastable to (B, H, Tq, Tk)."""
        if bias is None:
            return
        check_float(bias, "bias")
        check_same_dtype(bias, Q, "bias", "Q")
        B, H, Tq, Tk = Q.shape[0], Q.shape[1], Q.shape[2], K.shape[2]
        target = (B, H, Tq, Tk)
        if bias.ndim > 4 or any(b not in (1, t) for b, t in zip(bias.shape[::-1], target[::-1])):
            raise ValueError(f"bias: expected a shape broadcastable to (B, H, Tq, Tk) = {target}, "
                             f"received {bias.shape}")

    @staticmethod
    def _check_inputs(Q, K, V, mask):
        for name, a in (("Q", Q), ("K", K), ("V", V)):
            check_float(a, name)
            check_ndim(a, 4, name, "(B, H, T, Dh)")
        check_same_dtype(K, Q, "K", "Q")
        check_same_dtype(V, Q, "V", "Q")
        B, H, Tq, Dh = Q.shape
        Hkv, Tk = K.shape[1], K.shape[2]
        if K.shape != (B, Hkv, Tk, Dh) or Hkv == 0 or H % Hkv:
            raise ValueError(
                f"K: expected shape (B, Hkv, Tk, Dh) with B={B}, Dh={Dh} as in Q and a number of heads dividing "
                f"H={H}, received {K.shape}"
            )
        if V.shape[:3] != (B, Hkv, Tk):
            raise ValueError(
                f"V: expected shape (B, Hkv, Tk, Dv) with B={B}, Hkv={Hkv}, Tk={Tk} as in K, received {V.shape}"
            )
        check_mask(mask, B, H, Tq, Tk)


def _sum_to(dS, shape):
    """dS (B, H, Tq, Tk) summed down to ``shape`` (at most 4 axes, each 1 or dS's size) (bias.2): a new array."""
    lead = dS.ndim - len(shape)
    dS = dS.sum(axis=tuple(range(lead)))
    axes = tuple(a for a, n in enumerate(shape) if n == 1 and dS.shape[a] != 1)
    return dS.sum(axis=axes, keepdims=True)
