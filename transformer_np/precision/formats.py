"""Number formats: float32, float16 and bfloat16, and the casts between them. Notes: notes/precision.md.

    format      bits  exponent  mantissa  largest        smallest normal  unit roundoff
    float32     32    8         23        3.40e38        1.18e-38         2^-24 = 6.0e-8
    float16     16    5         10        65504          6.10e-5          2^-11 = 4.9e-4
    bfloat16    16    8         7         3.39e38        1.18e-38         2^-8  = 3.9e-3

NumPy holds float16 natively. It has no bfloat16, but a bfloat16 number is exactly the top 16
bits of a float32, so bfloat16 is emulated exactly: a float32 array whose low 16 bits are
rounded to nearest, ties to even (prec.5). ``round_to(x, name)`` returns ``x`` (float32) with
every value replaced by the nearest value the format holds (overflow to inf and underflow to
zero included): the numbers a 16-bit computation would see, kept in float32 storage so that
the matrix products still run in BLAS and accumulate in float32, as 16-bit hardware does.
``cast(x, name)`` gives the 16-bit storage itself where the backend has it (float16).
"""

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module


@dataclass(frozen=True)
class Format:
    """One floating-point format: its name, bits of exponent and of mantissa (prec.1)."""

    name: str
    exponent_bits: int
    mantissa_bits: int

    @property
    def bits(self):
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def itemsize(self):
        """Bytes per number."""
        return self.bits // 8

    @property
    def bias(self):
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max(self):
        """The largest finite value, (2 - 2^-p) 2^(e_max) (prec.2)."""
        p = self.mantissa_bits
        return (2.0 - 2.0 ** -p) * 2.0 ** self.bias

    @property
    def smallest_normal(self):
        """2^(1 - bias) (prec.3)."""
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self):
        """2^(1 - bias - p): below half of it, a value rounds to zero (prec.3)."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def unit_roundoff(self):
        """u = 2^-(p+1): rounding to nearest changes a normal value by at most u relatively (prec.4)."""
        return 2.0 ** -(self.mantissa_bits + 1)

    @property
    def eps(self):
        """The gap between 1 and the next value, 2^-p = 2u."""
        return 2.0 ** -self.mantissa_bits


FORMATS = {
    "float32": Format("float32", 8, 23),
    "float16": Format("float16", 5, 10),
    "bfloat16": Format("bfloat16", 8, 7),
}


def get_format(name):
    """The Format called ``name``; ValueError naming the formats when there is none of that name.

    ``name`` may be a string or a NumPy dtype (float32, float16). Asking for a dtype the library
    cannot compute in (float64 is for gradient checks, int8 is quantisation's, not a training
    format) is refused here, before any work.
    """
    key = name if isinstance(name, str) else getattr(np.dtype(name), "name", str(name))
    if key not in FORMATS:
        raise ValueError(f"precision: expected one of {', '.join(map(repr, FORMATS))}, received {name!r}")
    return FORMATS[key]


def storage_dtype(name, xp=np):
    """The dtype in which backend ``xp`` stores numbers of format ``name``.

    float32 and float16 are native; bfloat16 is not a NumPy (or CuPy) dtype, so asking for its
    storage raises TypeError naming what the backend holds and the emulation to use instead.
    """
    fmt = get_format(name)
    if fmt.name == "bfloat16":
        raise TypeError(
            f"storage dtype: expected a dtype backend {xp.__name__} can hold (float32, float16), received "
            "'bfloat16', which it has no dtype for: use round_to(x, 'bfloat16') (float32 storage, bfloat16 values)"
        )
    return xp.dtype(fmt.name)


def bfloat16_bits(x):
    """The 16-bit patterns (uint16) of float32 ``x`` rounded to bfloat16, nearest even (prec.5).

    The top 16 bits of a float32 are sign, 8 exponent bits and 7 mantissa bits: a bfloat16.
    Rounding adds 0x7FFF plus the lowest kept bit, so that a discarded half (0x8000) rounds to
    the even neighbour; a carry out of the mantissa raises the exponent (and the largest values
    become inf), as the rounding rule asks. NaN stays a (quiet) NaN.
    """
    xp = get_array_module(x)
    x = xp.asarray(x, dtype=xp.float32)
    u = x.view(xp.uint32)
    lsb = (u >> 16) & 1
    rounded = ((u + (0x7FFF + lsb).astype(xp.uint32)) >> 16).astype(xp.uint16)  # (prec.5)
    nan = ((u >> 16) | 0x0040).astype(xp.uint16)  # a quiet NaN of the same sign
    return xp.where(xp.isnan(x), nan, rounded)


def from_bfloat16_bits(bits):
    """float32 values of 16-bit bfloat16 patterns ``bits`` (exact: the low 16 bits become 0)."""
    xp = get_array_module(bits)
    return (xp.asarray(bits, dtype=xp.uint16).astype(xp.uint32) << 16).view(xp.float32)


def round_to(x, name):
    """``x`` (float32) with every value rounded to format ``name``, stored as float32.

    float32: ``x`` itself. float16: through NumPy's float16 cast (nearest even; beyond 65504
    becomes inf, below 2^-25 becomes 0). bfloat16: (prec.5). Non-float32 input is refused:
    float64 would round twice (to float32, then to 16 bits).
    """
    fmt = get_format(name)
    xp = get_array_module(x)
    if x.dtype != xp.float32:
        raise TypeError(f"round_to: expected a float32 array, received dtype {x.dtype}")
    if fmt.name == "float32":
        return x
    if fmt.name == "float16":
        return float16_values(x)
    return from_bfloat16_bits(bfloat16_bits(x))


def float16_values(x):
    """float32 ``x`` rounded to float16, nearest even, kept in float32: the same numbers as
    ``x.astype(float16).astype(float32)`` (tested equal), faster than NumPy's cast.

    In float16's normal range, 2^-14 <= |x| <= 65504, round the low 13 of the 23 mantissa bits
    away as (prec.5) does with 16. The few other entries (subnormals and zero (prec.3), overflow
    to inf (prec.2), NaN) go through NumPy's float16 cast.
    """
    xp = get_array_module(x)
    u = x.view(xp.uint32)
    r = ((u + (0x0FFF + ((u >> 13) & 1)).astype(xp.uint32)) & xp.uint32(0xFFFFE000)).view(xp.float32)
    a = xp.abs(x)
    special = xp.flatnonzero(~((a >= xp.float32(2.0**-14)) & (a <= xp.float32(65504))))
    if special.size:
        with np.errstate(over="ignore"):  # overflow to inf is the point, not an accident
            r.reshape(-1)[special] = x.reshape(-1)[special].astype(xp.float16).astype(xp.float32)
    return r


def cast(x, name):
    """``x`` in the storage of format ``name``: a float16 array for float16 (half the bytes), a
    float32 array for float32, and for bfloat16 the float32 array of bfloat16 values (no NumPy
    dtype holds bfloat16; its 2 bytes per number are counted with ``Format.itemsize``)."""
    fmt = get_format(name)
    if fmt.name == "float16":
        xp = get_array_module(x)
        with np.errstate(over="ignore"):
            return xp.asarray(x).astype(xp.float16)
    return round_to(get_array_module(x).asarray(x, dtype="float32"), fmt.name)


def zeroed_fraction(x, name):
    """Fraction of the nonzero entries of float32 ``x`` that become exactly 0 in format ``name``
    (underflow, prec.3); 0.0 when ``x`` has no nonzero entry."""
    xp = get_array_module(x)
    nonzero = x != 0
    n = int(nonzero.sum())
    if n == 0:
        return 0.0
    return float((round_to(x, name)[nonzero] == 0).sum()) / n
