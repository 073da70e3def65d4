"""Post-training int8 quantisation (notes/quantization.md).

int8      symmetric quantisation per output channel, per token and per tensor; the int8 matrix
          product accumulated exactly in int32
linear    QuantLinear: int8 weights (and optionally int8 activations) in place of a Linear
kv_cache  the int8 KV cache, one scale per head and position
model     quantize(model, activations=..., kv_cache=...), weight_bytes(model)
"""

from .int8 import (
    QMAX,
    dequantize,
    int8_matmul,
    int8_matmul_reference,
    quantize_per_channel,
    quantize_per_tensor,
    quantize_per_token,
)
from .kv_cache import Int8CrossAttentionCache, Int8KVCache, Int8SelfAttentionCache, int8_cache
from .linear import QuantLinear
from .model import is_quantized, quantize, weight_bytes

__all__ = [
    "QMAX", "dequantize", "int8_matmul", "int8_matmul_reference", "quantize_per_channel", "quantize_per_tensor",
    "quantize_per_token", "Int8CrossAttentionCache", "Int8KVCache", "Int8SelfAttentionCache", "int8_cache",
    "QuantLinear", "is_quantized", "quantize", "weight_bytes",
]
