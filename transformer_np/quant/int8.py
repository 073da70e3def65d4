"""Symmetric int8 quantisation and the int8 matrix product. Notes: notes/quantization.md.

    q, s = quantize_per_channel(W)      W (D_in, D_out): one scale per output column   (quant.1), (quant.2)
    q, s = quantize_per_token(x)        x (..., D): one scale per row (token)           (quant.1), (quant.3)
    x_hat = dequantize(q, s)            q * s                                           (quant.4)
    acc = int8_matmul(qx, qw)           sum_k qx[n, k] qw[k, j], exactly, as int32      (quant.6)

Symmetric: zero is exactly representable and maps to q = 0; the range is [-127, 127] (not
-128, so that q and -q are both representable and the scale is max|x| / 127).
"""

import numpy as np

from ..backend import get_array_module

QMAX = 127  # int8's symmetric range: q in [-127, 127]


def _quantize(x, amax):
    """q = clip(round(x / s), -127, 127) with s = amax / 127 (quant.1); amax = 0 gives s = 1, q = 0."""
    xp = get_array_module(x)
    scale = xp.where(amax > 0, amax / QMAX, 1.0).astype(x.dtype)  # (quant.1): a zero row keeps q = 0
    q = xp.clip(xp.rint(x / scale), -QMAX, QMAX).astype(xp.int8)  # (quant.1): round half to even
    return q, scale


def quantize_per_channel(W):
    """W (D_in, D_out) float -> (q int8 (D_in, D_out), s float (D_out,)): one scale per output
    channel, s_j = max_k |W_kj| / 127 (quant.2)."""
    xp = get_array_module(W)
    q, scale = _quantize(W, xp.abs(W).max(axis=0, keepdims=True))  # (quant.2): (1, D_out)
    return q, scale[0]


def quantize_per_tensor(W):
    """W float -> (q int8, s a 0-d float): one scale for the whole array, s = max |W| / 127 (quant.5);
    for comparison with per-channel scales."""
    xp = get_array_module(W)
    return _quantize(W, xp.abs(W).max())


def quantize_per_token(x):
    """x (..., D) float -> (q int8 (..., D), s float (..., 1)): one scale per row, computed from
    the row itself at run time (dynamic), s_n = max_k |x_nk| / 127 (quant.3)."""
    xp = get_array_module(x)
    return _quantize(x, xp.abs(x).max(axis=-1, keepdims=True))  # (quant.3)


def dequantize(q, scale, dtype=np.float32):
    """x_hat = q * s (quant.4), in ``dtype``; ``scale`` broadcasts against ``q``."""
    return q.astype(dtype) * scale


def int8_matmul(a, b):
    """a (..., K) int8 @ b (K, N) int8 -> (..., N) int32, exactly the int32 sums (quant.6).

    NumPy has no fast integer matrix product (no BLAS), so the product runs in floating point
    where that is exact: every term is at most 127^2 = 16129 in magnitude, so a sum of K terms
    is an integer below 16129 K; float32 holds every integer up to 2^24 exactly, float64 up to
    2^53. K <= 1040 runs in float32, larger K in float64; tested equal to the int32 product.
    """
    xp = get_array_module(a)
    if a.dtype != xp.int8 or b.dtype != xp.int8:
        raise TypeError(f"int8_matmul: expected two int8 arrays, received {a.dtype} and {b.dtype}")
    K = a.shape[-1]
    exact = xp.float32 if QMAX * QMAX * K < 2**24 else xp.float64
    return (a.astype(exact) @ b.astype(exact)).astype(xp.int32)  # (quant.6)


def int8_matmul_reference(a, b):
    """The plain int32 product a @ b (slow: no BLAS), the definition ``int8_matmul`` is tested against."""
    xp = get_array_module(a)
    return a.astype(xp.int32) @ b.astype(xp.int32)
