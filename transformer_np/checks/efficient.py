"""Gradient cases for the attention that does not store T x T: tiled exact attention
(notes/flash.md), sliding windows (notes/window.md) and linear attention (notes/linear_attention.md).

Shapes as in checks/attention.py (batch 3, H = 4 heads of width Dh = 7, values of width 9),
with sequence lengths that the tiles do not divide, padding lengths that differ per batch
element, and a query row that sees no key at all.
"""

import numpy as np

from ..layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from ..layers.linear_attention import LinearAttention, PerformerAttention
from ..layers.tiled_attention import TiledAttention
from ..layers.window_attention import SlidingWindowAttention
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


def _window(rng, dtype):
    """Banded: window 3, query blocks of 2 on T = 9 (blocks overlap in their keys), causal + padding."""
    T = 9
    mask = combine_masks(padding_mask_from_lengths(np.array([T, 5, 1]), T), causal_mask(T))
    return SlidingWindowAttention(3, block=2), _qkv(rng, dtype, T, T, n_kv=2), {"mask": mask}


def _window_bidirectional(rng, dtype):
    """Banded without the causal mask (Longformer's local attention): window 2, blocks of 3, padding."""
    T = 8
    return SlidingWindowAttention(2, block=3), _qkv(rng, dtype, T, T), {"mask": padding_mask_from_lengths(np.array([T, 6, 3]), T)}


def _linear(causal):
    def build(rng, dtype):
        Tq, Tk = (5, 7) if causal else (6, 6)
        mask = padding_mask_from_lengths(np.array([Tk, 4, 0]), Tk)  # batch element 2 sees no key
        if causal:
            mask = combine_masks(mask, causal_mask(Tq, offset=Tk - Tq))
        return LinearAttention(chunk=2), _qkv(rng, dtype, Tq, Tk, n_kv=2), {"mask": mask}  # chunks of 2 (lat.10)

    return build


def _performer(causal):
    def build(rng, dtype):
        T = 6
        mask = padding_mask_from_lengths(np.array([T, 4, 2]), T)
        if causal:
            mask = combine_masks(mask, causal_mask(T))
        return PerformerAttention(DH, 11, chunk=4), _qkv(rng, dtype, T, T), {"mask": mask}

    return build


_TILED_LABELS = {"Q": ("flash.6", "flash.7", "flash.8"), "K": ("flash.6", "flash.7", "flash.8"), "V": ("flash.6",)}
_LINEAR_LABELS = {"Q": ("lat.5", "lat.6", "lat.9"), "K": ("lat.5", "lat.7", "lat.8", "lat.9"), "V": ("lat.7", "lat.8")}
_PERFORMER_LABELS = {"Q": ("lat.6", "fav.3"), "K": ("lat.7", "lat.8", "fav.3"), "V": ("lat.8",)}

CASES = [
    GradCase("TiledAttention (causal + padding mask, a fully masked row, tiles 2 x 4)", _tiled_masked,
             _TILED_LABELS, names=("Q", "K", "V")),
    GradCase("TiledAttention (causal=True, Tq 5 < Tk 8, 2 key/value heads, padding)", _tiled_causal_grouped,
             _TILED_LABELS, names=("Q", "K", "V")),
    GradCase("SlidingWindowAttention (window 3, banded in blocks of 2, causal + padding, 2 key/value heads)",
             _window, {"Q": ("win.3",), "K": ("win.4",), "V": ("win.4",)}, names=("Q", "K", "V")),
    GradCase("SlidingWindowAttention (window 2, banded in blocks of 3, no causal mask, padding)",
             _window_bidirectional, {"Q": ("win.3",), "K": ("win.4",), "V": ("win.4",)}, names=("Q", "K", "V")),
    GradCase("LinearAttention (elu + 1, padding, a sequence with no key)", _linear(causal=False),
             _LINEAR_LABELS, names=("Q", "K", "V")),
    GradCase("LinearAttention (elu + 1, causal prefix sums in chunks of 2, Tq 5 < Tk 7, padding)", _linear(causal=True),
             _LINEAR_LABELS, names=("Q", "K", "V")),
    GradCase("PerformerAttention (11 features, padding)", _performer(causal=False), _PERFORMER_LABELS,
             names=("Q", "K", "V")),
    GradCase("PerformerAttention (11 features, causal + padding, chunks of 4)", _performer(causal=True), _PERFORMER_LABELS,
             names=("Q", "K", "V")),
]
