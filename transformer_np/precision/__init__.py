"""Number formats and mixed precision (notes/precision.md).

formats   float32, float16, bfloat16 (emulated exactly in float32); rounding and casting helpers
"""

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

__all__ = [
    "FORMATS", "Format", "bfloat16_bits", "cast", "from_bfloat16_bits", "get_format", "round_to",
    "storage_dtype", "zeroed_fraction",
]
