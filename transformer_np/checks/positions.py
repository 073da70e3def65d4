"""Gradient cases for positions inside attention: rotary embeddings (notes/rope.md), a score bias,
ALiBi and the T5 relative bias (notes/score_bias.md).

Shapes as in checks/attention.py: batch 3, H = 4 heads of width Dh = 6 (even: RoPE rotates pairs),
multi-head attention on D = 24 features with T = 5 queries; the bare layers on (3, 4, 5, 6) and
6 keys. The rotations start at a position offset 3, as in a KV-cached step. The T5 table's
gradient (rel.3) is checked inside multi-head attention here and in a whole GPT (checks/gpt.py);
tests/test_score_bias.py also checks the bare layer, whose output (1, H, Tq, Tk) has no batch axis.
"""

import numpy as np

from ..layers.alibi import ALiBi
from ..layers.attention import ScaledDotProductAttention
from ..layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from ..layers.multihead import MultiHeadAttention
from ..layers.rotary import RotaryEmbedding
from ..layers.t5_bias import T5RelativeBias
from . import B, GradCase
from .attention import _PROJECTION_LABELS

H, DH, TQ, TK = 4, 6, 5, 6
D_MODEL = H * DH
LENGTHS = np.array([TQ, 3, 4])


def _rope(style, offset):
    def build(rng, dtype):
        x = rng.standard_normal((B, H, TQ, DH)).astype(dtype)
        return RotaryEmbedding(DH, style), (x,), {"offset": offset}

    return build


def _sdpa_bias(bias_shape):
    def build(rng, dtype):
        Q = rng.standard_normal((B, H, TQ, DH)).astype(dtype)
        K = rng.standard_normal((B, H, TK, DH)).astype(dtype)
        V = rng.standard_normal((B, H, TK, DH + 1)).astype(dtype)
        bias = rng.standard_normal(bias_shape).astype(dtype)
        mask = combine_masks(padding_mask_from_lengths(np.array([TK, 4, 2]), TK), causal_mask(TQ, offset=TK - TQ))
        return ScaledDotProductAttention(), (Q, K, V, mask, bias), {}

    return build


def _mha(positions, n_kv=H, causal=True):
    def build(rng, dtype):
        kwargs = {}
        if positions in ("halves", "pairs"):
            kwargs["rope"] = positions
        elif positions == "alibi":
            kwargs["score_bias"] = ALiBi(H, causal=causal)
        elif positions == "t5":
            kwargs["score_bias"] = T5RelativeBias(H, causal=causal, n_buckets=8, max_distance=4, rng=rng, dtype=dtype)
            kwargs["score_bias"].weight.data[...] = rng.standard_normal((8, H))
        layer = MultiHeadAttention(D_MODEL, H, n_kv, rng=rng, dtype=dtype, **kwargs)
        x = rng.standard_normal((B, TQ, D_MODEL)).astype(dtype)
        mask = padding_mask_from_lengths(LENGTHS, TQ)
        return layer, (x,), {"mask": combine_masks(mask, causal_mask(TQ)) if causal else mask}

    return build


_SDPA = {"Q": ("attn.7", "attn.8"), "K": ("attn.7", "attn.9"), "V": ("attn.5",), "bias": ("bias.2",)}

CASES = [
    GradCase("RotaryEmbedding (halves, offset 3)", _rope("halves", 3), {"x": ("rope.6",)}, names=("x",)),
    GradCase("RotaryEmbedding (pairs, offset 0)", _rope("pairs", 0), {"x": ("rope.6",)}, names=("x",)),
    GradCase("ScaledDotProductAttention (a bias per head, causal + padding)", _sdpa_bias((1, H, TQ, TK)), _SDPA,
             names=("Q", "K", "V", "bias")),
    GradCase("ScaledDotProductAttention (a full bias (B, H, Tq, Tk))", _sdpa_bias((B, H, TQ, TK)), _SDPA,
             names=("Q", "K", "V", "bias")),
    GradCase("MultiHeadAttention (self, RoPE halves, causal + padding)", _mha("halves"),
             {"x": ("mha.9", "rope.6"), **_PROJECTION_LABELS}, names=("x",)),
    GradCase("MultiHeadAttention (self, RoPE pairs, 2 key/value heads)", _mha("pairs", n_kv=2),
             {"x": ("mha.9", "rope.6"), **_PROJECTION_LABELS}, names=("x",)),
    GradCase("MultiHeadAttention (self, ALiBi causal)", _mha("alibi"),
             {"x": ("mha.9", "bias.2"), **_PROJECTION_LABELS}, names=("x",)),
    GradCase("MultiHeadAttention (self, ALiBi bidirectional, padding)", _mha("alibi", causal=False),
             {"x": ("mha.9", "bias.2"), **_PROJECTION_LABELS}, names=("x",)),
    GradCase("MultiHeadAttention (self, T5 bias bidirectional, padding)", _mha("t5", causal=False),
             {"x": ("mha.9", "bias.2"), "score_bias.weight": ("rel.3", "bias.2"), **_PROJECTION_LABELS},
             names=("x",)),
]
