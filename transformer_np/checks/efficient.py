"""Gradient cases for the attention that does not store T x T: tiled exact attention
(notes/flash.md), sliding windows (notes/window.md) and linear attention (notes/linear_attention.md).

Shapes as in checks/attention.py (batch 3, H = 4 heads of width Dh = 7, values of width 9),
with sequence lengths that the tiles do not divide, padding lengths that differ per batch
element, and a query row that sees no key at all.
"""

import numpy as np

from ..layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from ..layers.tiled_attention import TiledAttention
from . import B, GradCase

H, DH, DV = 4, 7, 9


def _qkv(rng, dtype, Tq, Tk, n_kv=H):
    Q = rng.standard_normal((B, H, Tq, DH)).astype(dtype)
    K = rng.standard_normal((B, n_kv, Tk, DH)).astype(dtype)
    V = rng.standard_normal((B, n_kv, Tk, DV)).astype(dtype)
    return Q, K, V


def _tiled_masked(rng, dtype):
    """Causal AND padding as a mask array, tiles 2 x 4 on T = 7, one query row with no key."""
    T = 7
    mask = combine_masks(padding_mask_from_lengths(np.array([T, 4, 2]), T), causal_mask(T))
    mask = np.broadcast_to(mask, (B, H, T, T)).copy()
    mask[1, 2, 3, :] = False  # batch 1, head 2, query 3 sees nothing: zeros out, zero gradient
    return TiledAttention(2, 4), _qkv(rng, dtype, T, T), {"mask": mask}


def _tiled_causal_grouped(rng, dtype):
    """causal=True (no mask array) with Tq = 5 < Tk = 8, 2 key/value heads, tiles 3 x 3, key padding."""
    mask = padding_mask_from_lengths(np.array([8, 6, 3]), 8)
    return TiledAttention(3, 3, causal=True), _qkv(rng, dtype, 5, 8, n_kv=2), {"mask": mask}


_TILED_LABELS = {"Q": ("flash.6", "flash.7", "flash.8"), "K": ("flash.6", "flash.7", "flash.8"), "V": ("flash.6",)}

CASES = [
    GradCase("TiledAttention (causal + padding mask, a fully masked row, tiles 2 x 4)", _tiled_masked,
             _TILED_LABELS, names=("Q", "K", "V")),
    GradCase("TiledAttention (causal=True, Tq 5 < Tk 8, 2 key/value heads, padding)", _tiled_causal_grouped,
             _TILED_LABELS, names=("Q", "K", "V")),
]
