"""Reference answer to the exercise of notebooks/13_cost_of_attention.ipynb: the tiled backward
of attention, with P recomputed from the log-sum-exp (flash.6) and the row term
D = rowsum(dO * O) (flash.7).

Same names as the notebook's exercise cell; tests/test_exercises.py runs it in place of that cell,
then the notebook's check cell. The derivation is in notes/flash.md.
"""

import math

import numpy as np

from transformer_np.module import Module


class MyTiledAttention(Module):
    """softmax(Q K^T / sqrt(Dh)) V in tiles of ``tile`` queries and keys, no mask (notes/flash.md).

    forward keeps only O and the per-row log-sum-exp L (flash.5); backward must not build the
    (T, T) matrices either: it recomputes each tile's P from L (flash.6).
    Q, K, V: (B, H, T, Dh) -> O: (B, H, T, Dh).
    """

    def __init__(self, tile):
        self.tile = tile

    def forward(self, Q, K, V):
        T, scale = Q.shape[2], 1.0 / math.sqrt(Q.shape[-1])
        O, L = np.empty_like(Q), np.empty(Q.shape[:3], dtype=Q.dtype)
        for q0 in range(0, T, self.tile):
            Qi = Q[:, :, q0:q0 + self.tile] * scale  # (B, H, n, Dh)
            m = np.full(Qi.shape[:3], -np.inf)  # running maximum (flash.1)
            l = np.zeros(Qi.shape[:3])  # running sum (flash.2)
            Oi = np.zeros(Qi.shape[:3] + (V.shape[-1],))  # unnormalised output (flash.3)
            for k0 in range(0, T, self.tile):
                S = Qi @ np.swapaxes(K[:, :, k0:k0 + self.tile], -1, -2)  # (B, H, n, k)  (attn.1)
                m_new = np.maximum(m, S.max(axis=-1))  # (flash.1)
                alpha = np.exp(m - m_new)  # rescales what was summed against the old maximum
                P_tile = np.exp(S - m_new[..., None])
                l = alpha * l + P_tile.sum(axis=-1)  # (flash.2)
                Oi = alpha[..., None] * Oi + P_tile @ V[:, :, k0:k0 + self.tile]  # (flash.3)
                m = m_new
            O[:, :, q0:q0 + self.tile] = Oi / l[..., None]  # (flash.4)
            L[:, :, q0:q0 + self.tile] = m + np.log(l)  # (flash.5)
        self.save_for_backward(Q, K, V, O, L, output=O)
        return O

    def backward(self, dO):
        """dO: (B, H, T, Dh) -> (dQ, dK, dV), tile by tile: P from L (flash.6), D (flash.7), dS (flash.8)."""
        Q, K, V, O, L = self.saved(dO)
        T, scale = Q.shape[2], 1.0 / math.sqrt(Q.shape[-1])
        dQ, dK, dV = np.zeros_like(Q), np.zeros_like(K), np.zeros_like(V)
        D = (dO * O).sum(axis=-1, keepdims=True)  # (B, H, T, 1): rowsum(dO * O) = rowsum(dP * P)  (flash.7)
        for k0 in range(0, T, self.tile):
            Kj, Vj = K[:, :, k0:k0 + self.tile], V[:, :, k0:k0 + self.tile]
            for q0 in range(0, T, self.tile):
                Qi = Q[:, :, q0:q0 + self.tile] * scale
                dOi = dO[:, :, q0:q0 + self.tile]
                S = Qi @ np.swapaxes(Kj, -1, -2)  # (B, H, n, k)  (attn.1), recomputed
                P = np.exp(S - L[:, :, q0:q0 + self.tile, None])  # (flash.6)
                dV[:, :, k0:k0 + self.tile] += np.swapaxes(P, -1, -2) @ dOi  # (attn.5)
                dP = dOi @ np.swapaxes(Vj, -1, -2)  # (attn.6)
                dS = P * (dP - D[:, :, q0:q0 + self.tile])  # (flash.8)
                dQ[:, :, q0:q0 + self.tile] += dS @ Kj * scale  # (attn.8)
                dK[:, :, k0:k0 + self.tile] += np.swapaxes(dS, -1, -2) @ Qi  # (attn.9): dS^T (Q / sqrt(Dh))
        return dQ, dK, dV
