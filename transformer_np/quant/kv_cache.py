"""An int8 KV cache: keys and values stored as int8 with one float32 scale per (batch row, head,
position), dequantised when attention reads them. Notes: notes/quantization.md, "The KV cache".

    cache = int8_cache(model.new_cache(B))      an empty float cache's int8 twin
    logits = model.forward(idx, cache=cache)    the attention layers append to it as to any cache

Each appended key row k (Dh numbers of one head at one position) is quantised with its own
scale s = max|k| / 127 (quant.3) and read back as q s (quant.4); memory per position and layer:
2 H_kv (Dh + 4) bytes instead of 2 H_kv Dh 4 (quant.8).
"""

from ..backend import get_array_module
from ..layers.kv_cache import CrossAttentionCache, KVCache, SelfAttentionCache, _reallocated
from ..validate import check_ndim
from .int8 import dequantize, quantize_per_token


class Int8SelfAttentionCache(SelfAttentionCache):
    """A SelfAttentionCache whose K and V buffers are int8 (B, H, capacity, Dh) with scales
    (B, H, capacity, 1) in ``like``'s dtype; ``k`` and ``v`` are the dequantised filled positions
    (a new array at every read, in ``like``'s dtype), so the attention layers read it unchanged."""

    def __init__(self, batch_size, n_heads, d_head, max_len, *, like, capacity=None):
        super().__init__(batch_size, n_heads, d_head, max_len, like=like, capacity=capacity)
        xp = get_array_module(like)
        self.dtype = like.dtype
        self._k_scale = xp.zeros(self._k.shape[:3] + (1,), dtype=like.dtype)
        self._v_scale = xp.zeros(self._k.shape[:3] + (1,), dtype=like.dtype)
        self._k = self._k.astype(xp.int8)
        self._v = self._v.astype(xp.int8)

    @property
    def k(self):
        """K of the positions so far, dequantised (quant.4): (B, H, length, Dh)."""
        return dequantize(self._k[:, :, : self.length], self._k_scale[:, :, : self.length], self.dtype)

    @property
    def v(self):
        """V of the positions so far, dequantised (quant.4): (B, H, length, Dh)."""
        return dequantize(self._v[:, :, : self.length], self._v_scale[:, :, : self.length], self.dtype)

    def append(self, K_new, V_new):
        """Quantise K_new, V_new (B, H, T_new, Dh) per head and position (quant.3) and store them;
        returns the dequantised K, V of every position so far."""
        B, H, _, Dh = self._k.shape
        for name, a in (("K_new", K_new), ("V_new", V_new)):
            check_ndim(a, 4, name, "(B, H, T_new, Dh)")
            if a.shape[:2] != (B, H) or a.shape[3] != Dh or a.dtype != self.dtype:
                raise ValueError(f"{name}: expected shape (B, H, T_new, Dh) = ({B}, {H}, T_new, {Dh}) of dtype "
                                 f"{self.dtype}, received shape {a.shape} of dtype {a.dtype}")
        start, stop = self.length, self.length + K_new.shape[2]
        self.check_room(stop - start)
        if stop > self.capacity:
            self._grow(stop)
        self._k[:, :, start:stop], self._k_scale[:, :, start:stop] = quantize_per_token(K_new)  # (quant.3)
        self._v[:, :, start:stop], self._v_scale[:, :, start:stop] = quantize_per_token(V_new)  # (quant.3)
        self.length = stop
        return self.k, self.v

    def _grow(self, needed):
        capacity = min(self.max_len, max(needed, 2 * self.capacity))
        self._k, self._v, self._k_scale, self._v_scale = (
            _reallocated(a, self.length, capacity) for a in (self._k, self._v, self._k_scale, self._v_scale))

    def select(self, rows):
        self._k, self._v, self._k_scale, self._v_scale = (
            _reallocated(a, self.length, self.capacity, rows) for a in (self._k, self._v, self._k_scale, self._v_scale))

    def nbytes(self):
        """Bytes of the filled positions: int8 K and V plus their scales (quant.8)."""
        L = self.length
        return sum(a[:, :, :L].nbytes for a in (self._k, self._v, self._k_scale, self._v_scale))


class Int8CrossAttentionCache(CrossAttentionCache):
    """The cross-attention K, V of the memory, int8 with a scale per (row, head, source position)."""

    def __init__(self, K, V):
        self.dtype = K.dtype
        (self.k_q, self.k_scale), (self.v_q, self.v_scale) = quantize_per_token(K), quantize_per_token(V)

    k = property(lambda self: dequantize(self.k_q, self.k_scale, self.dtype))
    v = property(lambda self: dequantize(self.v_q, self.v_scale, self.dtype))

    @property
    def length(self):
        return self.k_q.shape[2]

    def select(self, rows):
        arrays = (self.k_q, self.k_scale, self.v_q, self.v_scale)
        self.k_q, self.k_scale, self.v_q, self.v_scale = (a[rows] for a in arrays)

    def nbytes(self):
        return sum(a.nbytes for a in (self.k_q, self.k_scale, self.v_q, self.v_scale))


class Int8KVCache(KVCache):
    """A KVCache of Int8SelfAttentionCache (and Int8CrossAttentionCache) layers; ``nbytes`` counts
    the int8 arrays and their scales."""

    def nbytes(self):
        return sum(c.nbytes() for c in self.self_attn + (self.cross_attn or []))


def int8_cache(cache):
    """The int8 twin of an empty float KVCache (from ``model.new_cache``): the same layers, batch,
    max_len and capacity; an encoder-decoder's cross-attention K, V are quantised (quant.3)."""
    if not isinstance(cache, KVCache) or isinstance(cache, Int8KVCache):
        raise TypeError(f"int8_cache: expected a float KVCache from model.new_cache, received {type(cache).__name__}")
    if cache.length:
        raise ValueError(f"int8_cache: expected an empty cache, received one holding {cache.length} positions")
    layers = []
    for c in cache.self_attn:
        B, H, _, Dh = c.k.shape
        layers.append(Int8SelfAttentionCache(B, H, Dh, c.max_len, like=c.k, capacity=c.capacity))
    cross = None if cache.cross_attn is None else [Int8CrossAttentionCache(c.k, c.v) for c in cache.cross_attn]
    return Int8KVCache(layers, cross, cache.src_mask)

