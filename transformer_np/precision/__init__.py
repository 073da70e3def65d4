"""Number formats and mixed precision (notes/precision.md).

formats   float32, float16, bfloat16 (emulated exactly in float32); rounding and casting helpers
scaler    LossScaler: dynamic loss scaling (prec.6), (prec.7)
autocast  the forward and backward of a float32 model in a 16-bit format (mixed precision)
measure   gradient underflow per parameter, bytes of the activations kept for backward
"""

from .autocast import FLOAT32_LAYERS, autocast

from .formats import (
    FORMATS,
    Format,
    bfloat16_bits,
    cast,
    from_bfloat16_bits,
    get_format,
    round_to,
    storage_dtype,
    zeroed_fraction,
)
from .measure import gradient_underflow, saved_activation_bytes
from .scaler import LossScaler

__all__ = [
    "FLOAT32_LAYERS", "LossScaler", "autocast", "gradient_underflow", "saved_activation_bytes",
    "FORMATS", "Format", "bfloat16_bits", "cast", "from_bfloat16_bits", "get_format", "round_to",
    "storage_dtype", "zeroed_fraction",
]
