"""Gradient cases for attention (notes/attention.md), multi-head attention (notes/multihead.md) and
grouped-query attention (notes/gqa.md).

Shapes: batch 3, H = 4 heads of width Dh = 7; multi-head attention on D = 28 features with
Tq = 5 queries and, in cross-attention, Tk = 6 keys; the bare attention on 6 positions with
values of width Dv = 9. All different, D not a power of two. Every case carries a mask, and
the padding lengths differ per batch element.
"""

import numpy as np

from ..layers.attention import ScaledDotProductAttention
from ..layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from ..layers.multihead import MultiHeadAttention
from . import B, GradCase

TQ, TK, D_MODEL, H, DH, DV = 5, 6, 28, 4, 7, 9
SELF_LENGTHS = np.array([TQ, 3, 4])  # real lengths of the B query/key sequences in self-attention
MEMORY_LENGTHS = np.array([4, TK, 2])  # real lengths of the B memory sequences in cross-attention

# Labels verified through each projection's parameters. The key bias's gradient is exactly zero
# (notes/multihead.md, "The key bias gets no gradient"): the checker reports it as "zero", both
# gradients below its absolute floor, and tests/test_multihead.py checks that it vanishes.
_PROJECTION_LABELS = {
    "w_q.weight": ("mha.11",),
    "w_q.bias": ("mha.11",),
    "w_k.weight": ("mha.11",),
    "w_k.bias": ("mha.11",),
    "w_v.weight": ("mha.11",),
    "w_v.bias": ("mha.11",),
    "w_o.weight": ("mha.6",),
    "w_o.bias": ("mha.6",),
}


def _self_mask(T, lengths):
    """(B, 1, T, T) padding AND causal."""
    return combine_masks(padding_mask_from_lengths(lengths, T), causal_mask(T))


def _sdpa(fully_masked_row):
    def build(rng, dtype):
        layer = ScaledDotProductAttention()
        Q = rng.standard_normal((B, H, TK, DH)).astype(dtype)
        K = rng.standard_normal((B, H, TK, DH)).astype(dtype)
        V = rng.standard_normal((B, H, TK, DV)).astype(dtype)
        mask = _self_mask(TK, np.array([TK, 4, 2]))
        if fully_masked_row:
            # Batch element 1, head 2, query 3 sees no key at all: its P row is 0, so its dQ
            # row, and its contributions to dK and dV, must be exactly 0.
            mask = np.broadcast_to(mask, (B, H, TK, TK)).copy()
            mask[1, 2, 3, :] = False
        return layer, (Q, K, V), {"mask": mask}

    return build


def _mha_self(rng, dtype):
    layer = MultiHeadAttention(D_MODEL, H, rng=rng, dtype=dtype)
    x = rng.standard_normal((B, TQ, D_MODEL)).astype(dtype)
    return layer, (x,), {"mask": _self_mask(TQ, SELF_LENGTHS)}


def _mha_self_dropout(rng, dtype):
    layer = MultiHeadAttention(D_MODEL, H, dropout=0.3, rng=rng, dtype=dtype)
    x = rng.standard_normal((B, TQ, D_MODEL)).astype(dtype)
    return layer.train(), (x,), {"mask": _self_mask(TQ, SELF_LENGTHS)}


def _mha_cross(rng, dtype):
    layer = MultiHeadAttention(D_MODEL, H, rng=rng, dtype=dtype)
    x = rng.standard_normal((B, TQ, D_MODEL)).astype(dtype)
    memory = rng.standard_normal((B, TK, D_MODEL)).astype(dtype)
    return layer, (x, memory), {"mask": padding_mask_from_lengths(MEMORY_LENGTHS, TK)}


def _sdpa_grouped(n_kv):
    """Keys and values with n_kv heads for H = 4 query heads (notes/gqa.md): the grouped products."""
    def build(rng, dtype):
        Q = rng.standard_normal((B, H, TQ, DH)).astype(dtype)
        K = rng.standard_normal((B, n_kv, TK, DH)).astype(dtype)
        V = rng.standard_normal((B, n_kv, TK, DV)).astype(dtype)
        mask = combine_masks(padding_mask_from_lengths(MEMORY_LENGTHS, TK), causal_mask(TQ, offset=TK - TQ))
        return ScaledDotProductAttention(), (Q, K, V), {"mask": mask}

    return build


def _mha_grouped(n_kv, cross):
    def build(rng, dtype):
        layer = MultiHeadAttention(D_MODEL, H, n_kv, rng=rng, dtype=dtype)
        x = rng.standard_normal((B, TQ, D_MODEL)).astype(dtype)
        if not cross:
            return layer, (x,), {"mask": _self_mask(TQ, SELF_LENGTHS)}
        memory = rng.standard_normal((B, TK, D_MODEL)).astype(dtype)
        return layer, (x, memory), {"mask": padding_mask_from_lengths(MEMORY_LENGTHS, TK)}

    return build


_GROUPED_PROJECTIONS = {**_PROJECTION_LABELS, "w_k.weight": ("mha.11", "gqa.5"), "w_v.weight": ("mha.11", "gqa.4"),
                        "w_v.bias": ("mha.11", "gqa.4")}

_SDPA_LABELS = {
    "Q": ("attn.6", "attn.7", "attn.8"),
    "K": ("attn.6", "attn.7", "attn.9"),
    "V": ("attn.5",),
}

CASES = [
    GradCase(
        "ScaledDotProductAttention (causal + padding)",
        _sdpa(fully_masked_row=False),
        _SDPA_LABELS,
        names=("Q", "K", "V"),
    ),
    GradCase(
        "ScaledDotProductAttention (a fully masked row)",
        _sdpa(fully_masked_row=True),
        _SDPA_LABELS,
        names=("Q", "K", "V"),
    ),
    GradCase(
        "MultiHeadAttention (self, causal + padding)",
        _mha_self,
        {"x": ("mha.7", "mha.8", "mha.9"), **_PROJECTION_LABELS},
        names=("x",),
    ),
    GradCase(
        "MultiHeadAttention (self, dropout 0.3)",
        _mha_self_dropout,
        {"x": ("attn.5", "attn.6", "attn.7", "mha.9"), **_PROJECTION_LABELS},
        names=("x",),
    ),
    GradCase(
        "ScaledDotProductAttention (2 key/value heads for 4, causal + padding)",
        _sdpa_grouped(2),
        {"Q": ("attn.7", "gqa.6"), "K": ("attn.7", "gqa.5"), "V": ("gqa.4",)},
        names=("Q", "K", "V"),
    ),
    GradCase(
        "ScaledDotProductAttention (1 key/value head: multi-query)",
        _sdpa_grouped(1),
        {"Q": ("attn.7", "gqa.6"), "K": ("attn.7", "gqa.5"), "V": ("gqa.4",)},
        names=("Q", "K", "V"),
    ),
    GradCase(
        "MultiHeadAttention (self, 2 key/value heads)",
        _mha_grouped(2, cross=False),
        {"x": ("mha.9", "gqa.4", "gqa.5", "gqa.6"), **_GROUPED_PROJECTIONS},
        names=("x",),
    ),
    GradCase(
        "MultiHeadAttention (cross, 1 key/value head)",
        _mha_grouped(1, cross=True),
        {"x": ("mha.10", "gqa.6"), "memory": ("mha.10", "gqa.4", "gqa.5"), **_GROUPED_PROJECTIONS},
        names=("x", "memory"),
    ),
    GradCase(
        "MultiHeadAttention (cross, padding)",
        _mha_cross,
        {"x": ("mha.7", "mha.8", "mha.10"), "memory": ("mha.10",), **_PROJECTION_LABELS},
        names=("x", "memory"),
    ),
]
