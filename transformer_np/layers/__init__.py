"""The building blocks of the Transformer, one concept per file, each with forward and backward."""

from .activation import GELU, ReLU, Softmax, log_softmax, softmax
from .alibi import ALiBi, alibi_slopes
from .attention import ScaledDotProductAttention
from .dropout import Dropout
from .embedding import Embedding
from .feedforward import PositionwiseFeedForward
from .gru import GRU
from .kv_cache import CrossAttentionCache, KVCache, SelfAttentionCache
from .linear import Linear
from .linear_attention import LinearAttention, PerformerAttention
from .masks import (
    causal_mask,
    check_mask,
    combine_masks,
    mask_bias,
    padding_mask_from_ids,
    padding_mask_from_lengths,
    sliding_window_mask,
)
from .multihead import MultiHeadAttention, merge_heads, split_heads
from .norm import LayerNorm
from .pooling import L2Normalize, MaskedMeanPooling, Pooler, Tanh
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from .residual import Residual
from .rotary import RotaryEmbedding
from .t5_bias import T5RelativeBias
from .tied import TiedOutput
from .tiled_attention import TiledAttention
from .window_attention import RollingKVCache, SlidingWindowAttention

__all__ = [
    "Linear",
    "Embedding",
    "ReLU",
    "GELU",
    "Softmax",
    "softmax",
    "log_softmax",
    "Dropout",
    "ScaledDotProductAttention",
    "MultiHeadAttention",
    "split_heads",
    "merge_heads",
    "LayerNorm",
    "PositionwiseFeedForward",
    "GRU",
    "Residual",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "TiedOutput",
    "MaskedMeanPooling",
    "L2Normalize",
    "Pooler",
    "Tanh",
    "causal_mask",
    "padding_mask_from_lengths",
    "padding_mask_from_ids",
    "combine_masks",
    "check_mask",
    "mask_bias",
    "KVCache",
    "SelfAttentionCache",
    "CrossAttentionCache",
    "TiledAttention",
    "SlidingWindowAttention",
    "RollingKVCache",
    "sliding_window_mask",
    "LinearAttention",
    "PerformerAttention",
    "RotaryEmbedding",
    "ALiBi",
    "alibi_slopes",
    "T5RelativeBias",
]
