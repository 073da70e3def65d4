"""The key/value cache of incremental decoding. What it stores, why it changes nothing, what it
costs: notes/decoding.md, "The KV cache".

When a model writes a sequence one token at a time, the keys and values a self-attention layer
computed for the earlier tokens never change: a causal model's position j depends on tokens
0..j only (dec.1). So each layer keeps them and, at each step, computes K and V for the new
token(s) only and appends them (dec.2, dec.3). Cross-attention reads the encoder memory, which
is fixed for a source sentence: its K and V are computed once (dec.4).

    SelfAttentionCache(B, H, Dh, max_len, like=...)   one self-attention layer: K, V (B, H, t, Dh)
    CrossAttentionCache(K, V)                          one cross-attention layer: K, V (B, H, S, Dh)
    KVCache(self_attn, cross_attn=None, src_mask=None) a whole model; .length, .max_len,
                                                       .select(rows), .shapes(), print(cache)

The models build these for you: ``gpt.new_cache(B)``, ``transformer.new_cache(memory, src_mask)``.
Plain classes, not Modules: a cache holds activations, never parameters, and has no backward.
"""

from ..backend import backend_name, get_array_module, get_backend, to_backend
from ..validate import check_int, check_int_ids, check_ndim


class SelfAttentionCache:
    """Keys and values of one self-attention layer for positions 0 .. length-1, (B, H, length, Dh).

    The arrays are preallocated buffers of ``capacity`` positions (default: ``max_len``, the
    model's limit) in the dtype and backend of ``like``; ``append`` writes new positions into a
    slice and ``k``/``v`` are views of the filled part, so a step copies only the new K, V rows
    (no concatenation, no copy of the past). A buffer that fills up is reallocated at twice the
    size (at most ``max_len``), as a Python list grows: a small capacity costs O(1) amortised.
    """

    def __init__(self, batch_size, n_heads, d_head, max_len, *, like, capacity=None):
        self.max_len = check_int(max_len, "max_len")
        capacity = self.max_len if capacity is None else min(check_int(capacity, "capacity"), self.max_len)
        xp = get_array_module(like)
        shape = (check_int(batch_size, "batch_size"), n_heads, capacity, d_head)
        self._k = xp.zeros(shape, dtype=like.dtype)
        self._v = xp.zeros(shape, dtype=like.dtype)
        self.length = 0

    @property
    def k(self):
        """K of the positions cached so far, (B, H, length, Dh): a view, not a copy."""
        return self._k[:, :, : self.length]

    @property
    def v(self):
        """V of the positions cached so far, (B, H, length, Dh): a view, not a copy."""
        return self._v[:, :, : self.length]

    @property
    def capacity(self):
        return self._k.shape[2]

    @property
    def batch_size(self):
        return self._k.shape[0]

    def check_room(self, n_new):
        """Raise ValueError when ``n_new`` more positions would pass ``max_len``."""
        if self.length + n_new > self.max_len:
            raise ValueError(
                f"KV cache: expected at most max_len={self.max_len} positions (the model's limit), "
                f"received {self.length} cached + {n_new} new = {self.length + n_new}"
            )

    def append(self, K_new, V_new):
        """Write K_new, V_new (B, H, T_new, Dh) at positions length .. length+T_new-1 (dec.3).

        Returns (K, V), the views of all positions so far, (B, H, length + T_new, Dh).
        """
        B, H, _, Dh = self._k.shape
        for name, a in (("K_new", K_new), ("V_new", V_new)):
            check_ndim(a, 4, name, "(B, H, T_new, Dh)")
            if a.shape[:2] != (B, H) or a.shape[3] != Dh or a.dtype != self._k.dtype:
                raise ValueError(
                    f"{name}: expected shape (B, H, T_new, Dh) = ({B}, {H}, T_new, {Dh}) of dtype "
                    f"{self._k.dtype}, received shape {a.shape} of dtype {a.dtype}"
                )
        start, stop = self.length, self.length + K_new.shape[2]
        self.check_room(stop - start)
        if stop > self.capacity:
            self._grow(stop)
        self._k[:, :, start:stop] = K_new
        self._v[:, :, start:stop] = V_new
        self.length = stop
        return self.k, self.v

    def _grow(self, needed):
        """New buffers of max(needed, 2 capacity) positions (at most max_len), the past copied over."""
        capacity = min(self.max_len, max(needed, 2 * self.capacity))
        self._k = _reallocated(self._k, self.length, capacity)
        self._v = _reallocated(self._v, self.length, capacity)

    def select(self, rows):
        """Keep batch rows ``rows`` (already checked), in that order: K, V become (B', H, length, Dh)."""
        self._k = _reallocated(self._k, self.length, self.capacity, rows)
        self._v = _reallocated(self._v, self.length, self.capacity, rows)


class CrossAttentionCache:
    """Keys and values of one cross-attention layer, K = M W_k + b_k and V = M W_v + b_v split
    into heads, (B, H, S, Dh), computed once from the encoder memory M (dec.4)."""

    def __init__(self, K, V):
        self.k, self.v = K, V

    @property
    def length(self):
        """The source length S (the number of keys)."""
        return self.k.shape[2]

    def select(self, rows):
        """Keep batch rows ``rows`` (already checked), in that order."""
        self.k, self.v = self.k[rows], self.v[rows]


class KVCache:
    """The cache of a whole model: one SelfAttentionCache per layer, in layer order, and for an
    encoder-decoder one CrossAttentionCache per decoder layer plus the source padding mask
    ``src_mask`` (B, 1, 1, S) the cross-attention needs at every step.

    ``length``: positions cached so far (the position of the next token); ``max_len``: the most
    positions the model supports. ``select(rows)`` gathers or reorders the batch (beam search).
    ``print(cache)`` or ``cache.shapes()`` shows every stored array's shape.
    """

    def __init__(self, self_attn, cross_attn=None, src_mask=None):
        self.self_attn = list(self_attn)
        self.cross_attn = None if cross_attn is None else list(cross_attn)
        if not self.self_attn or (self.cross_attn is not None and len(self.cross_attn) != len(self.self_attn)):
            raise ValueError(
                f"KVCache: expected one self-attention cache per layer (at least one) and as many cross-attention "
                f"caches, received {len(self.self_attn)} and {None if cross_attn is None else len(self.cross_attn)}"
            )
        self.src_mask = src_mask

    @property
    def length(self):
        return self.self_attn[0].length

    @property
    def max_len(self):
        return self.self_attn[0].max_len

    @property
    def batch_size(self):
        return self.self_attn[0].batch_size

    @property
    def n_layers(self):
        return len(self.self_attn)

    def check_room(self, n_new):
        """Raise ValueError, naming both numbers, when ``n_new`` more positions pass ``max_len``."""
        self.self_attn[0].check_room(n_new)

    def select(self, rows):
        """Replace the batch by its rows ``rows``, IN PLACE, in every stored array (dec.9).

        rows: 1-D integer array (or list) of length B', values in [0, B); B' may differ from B
        and rows may repeat: ``select([0, 0, 0, 1, 1, 1])`` expands 2 sources into 3 beams each,
        ``select(beam_parents)`` reorders beams after a step. Applies to every layer's self-
        attention K and V, the cross-attention K and V and the source mask. Returns self.
        """
        like, B = self.self_attn[0].k, self.batch_size
        if not hasattr(rows, "dtype"):
            rows = get_backend("numpy").asarray(rows, dtype=int)
        check_ndim(rows, 1, "rows", "(B',)")
        check_int_ids(rows, 0, B, "rows")
        rows = to_backend(rows, backend_name(like))
        for layer in self.self_attn:
            layer.select(rows)
        for layer in self.cross_attn or ():
            layer.select(rows)
        if self.src_mask is not None and self.src_mask.shape[0] == B:  # (1, 1, 1, S) is shared: kept
            self.src_mask = self.src_mask[rows]
        return self

    def nbytes(self):
        """Bytes of the cached K and V, filled positions only, cross-attention included (dec.7, dec.8)."""
        arrays = [a for c in self.self_attn for a in (c.k, c.v)]
        arrays += [a for c in self.cross_attn or () for a in (c.k, c.v)]
        return sum(a.nbytes for a in arrays)

    def shapes(self):
        """{name: shape} of every stored array: "layers.0.self.k", ..., "layers.0.cross.v", "src_mask"."""
        shapes = {}
        for i, c in enumerate(self.self_attn):
            shapes[f"layers.{i}.self.k"], shapes[f"layers.{i}.self.v"] = c.k.shape, c.v.shape
            if self.cross_attn is not None:
                x = self.cross_attn[i]
                shapes[f"layers.{i}.cross.k"], shapes[f"layers.{i}.cross.v"] = x.k.shape, x.v.shape
        if self.src_mask is not None:
            shapes["src_mask"] = tuple(self.src_mask.shape)
        return shapes

    def __repr__(self):
        c = self.self_attn[0]
        lines = [
            f"KVCache(length={self.length}, max_len={self.max_len}, batch={self.batch_size}, "
            f"layers={self.n_layers}, dtype={c.k.dtype}, {self.nbytes()} bytes)"
        ]
        for i, layer in enumerate(self.self_attn):
            line = f"  layer {i}: self K, V {tuple(layer.k.shape)}"
            if self.cross_attn is not None:
                line += f"   cross K, V {tuple(self.cross_attn[i].k.shape)}"
            lines.append(line)
        if self.src_mask is not None:
            lines.append(f"  src_mask {tuple(self.src_mask.shape)}")
        return "\n".join(lines)


def check_kv_cache(cache, n_layers, batch_size, cross):
    """Refuse, naming expected and received, a ``cache`` that is not a KVCache of ``n_layers``
    layers and ``batch_size`` rows, with (``cross``) or without cross-attention entries. Each
    attention layer then checks that its own entry fits it (heads, head size, dtype)."""
    kind = "an encoder-decoder's (from new_cache(memory, src_mask))" if cross else "a decoder-only model's"
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache: expected {kind} KVCache, received {type(cache).__name__}")
    received = (cache.n_layers, cache.batch_size, cache.cross_attn is not None)
    if received != (n_layers, batch_size, cross):
        raise ValueError(
            f"cache: expected {kind} KVCache of {n_layers} layers and batch {batch_size}, received one of "
            f"{cache.n_layers} layers and batch {cache.batch_size}"
            + ("" if received[2] == cross else (" with cross-attention entries" if received[2] else " without cross-attention entries"))
        )


def _reallocated(buf, length, capacity, rows=None):
    """A zeroed (B', H, capacity, Dh) buffer holding buf[rows, :, :length] (all rows if None)."""
    xp = get_array_module(buf)
    filled = buf[:, :, :length] if rows is None else buf[rows, :, :length]
    out = xp.zeros((filled.shape[0], buf.shape[1], capacity, buf.shape[3]), dtype=buf.dtype)
    out[:, :, :length] = filled
    return out
