"""Reference answer to the exercise of notebooks/03_multihead_and_masks.ipynb (not shown there)."""

import numpy as np  # noqa: F401  (the stub imports it too)

from transformer_np.layers import MultiHeadAttention, merge_heads, split_heads


class MyMultiHeadAttention(MultiHeadAttention):
    """Multi-head attention with a hand-written end of the backward pass."""

    def backward(self, dout):
        """Back through the three projections (mha.11), then sum the paths (mha.9) or share them out (mha.10)."""
        (is_cross,) = self.saved(dout)
        dO = split_heads(self.w_o.backward(dout), self.n_heads)
        dQ, dK, dV = self.attention.backward(dO)
        dQ, dK, dV = (merge_heads(g) for g in (dQ, dK, dV))
        dx_q = self.w_q.backward(dQ)
        dx_k = self.w_k.backward(dK)
        dx_v = self.w_v.backward(dV)
        if is_cross:
            return dx_q, dx_k + dx_v
        return dx_q + dx_k + dx_v
