"""Multi-head attention: project, split into heads, attend, merge, project. Derivation: notes/multihead.md."""

from contextlib import nullcontext

from ..init import make_rng
from ..module import Module, no_backward
from ..validate import check_float, check_int, check_last_dim, check_ndim, check_same_dtype
from .attention import ScaledDotProductAttention
from .kv_cache import CrossAttentionCache, SelfAttentionCache
from .linear import Linear
from .masks import check_mask
from .rotary import RotaryEmbedding


def split_heads(X, n_heads):
    """(B, T, H * Dh) -> (B, H, T, Dh): column block h of X becomes head h (mha.2). A view when X is contiguous."""
    B, T, D = X.shape
    return X.reshape(B, T, n_heads, D // n_heads).transpose(0, 2, 1, 3)


def merge_heads(O):
    """(B, H, T, Dh) -> (B, T, H * Dh): the heads side by side again, the inverse of split_heads (mha.4)."""
    B, H, T, Dh = O.shape
    return O.transpose(0, 2, 1, 3).reshape(B, T, H * Dh)


def _start(cache):
    """The position of the first new token: a self-attention cache's length, else 0."""
    return cache.length if isinstance(cache, SelfAttentionCache) else 0


class MultiHeadAttention(Module):
    """H heads of scaled dot-product attention on d_model features, Dh = d_model / H each.

    Four Linear projections: ``w_q`` (d_model -> d_model) makes the queries, ``w_k`` and ``w_v``
    (d_model -> n_kv_heads Dh) the keys and values, ``w_o`` (d_model -> d_model) mixes the merged
    heads. ``n_kv_heads`` (default H) key/value heads are shared by groups of H / n_kv_heads
    query heads: H is multi-head attention, 1 multi-query, a divisor of H grouped-query
    attention (notes/gqa.md); the KV cache then holds n_kv_heads heads. ``forward(x)`` is self-attention;
    ``forward(x, memory)`` is cross-attention (queries from x, keys and values from memory, as
    in the decoder attending to the encoder output).

    ``dropout`` drops attention weights inside the attention (the paper's reference code does
    this); the dropout on the layer's output is the residual wrapper's job. ``attn_weights`` is
    the last softmax P, (B, H, Tq, Tk), before dropout, for plotting heatmaps.

    ``attention``: the core that attends with the heads, a Module with ``forward(Q, K, V, mask)``
    and ``backward(dO)`` (None: ScaledDotProductAttention(dropout)); the other kinds
    (TiledAttention, SlidingWindowAttention, LinearAttention, PerformerAttention) are in
    notes/flash.md, notes/window.md and notes/linear_attention.md (``attn_weights`` is None for those
    that never form P).

    Incremental decoding (notes/decoding.md) is the same forward with a ``cache``: a
    SelfAttentionCache (``self_cache(B, max_len)``) receives the new tokens' K, V and the
    queries attend to every cached position; a CrossAttentionCache (``cross_cache(memory)``,
    made once per source) holds the memory's K, V. A forward with a cache is inference only:
    eval mode, and nothing is kept for backward (a backward after it raises).

    Positions inside the attention (notes/rope.md, notes/score_bias.md): ``rope`` = "halves" or
    "pairs" rotates the queries and keys after the head split (``rope_q``, ``rope_k``, two
    RotaryEmbedding layers), the position of the first token being the cache's length;
    ``score_bias`` = a layer with ``forward(Tq, Tk, like=Q)`` -> (1, H, Tq, Tk) and a backward
    (ALiBi, T5RelativeBias) whose output is added to the scores (bias.1).
    """

    def __init__(self, d_model, n_heads, n_kv_heads=None, *, dropout=0.0, bias=True, rng=None, dtype=None,
                 attention=None, rope=None, score_bias=None):
        d_model, n_heads = check_int(d_model, "d_model"), check_int(n_heads, "n_heads")
        n_kv_heads = n_heads if n_kv_heads is None else check_int(n_kv_heads, "n_kv_heads")
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads: expected d_model = n_heads * d_head, "
                f"received d_model={d_model}, n_heads={n_heads}"
            )
        if n_heads % n_kv_heads:
            raise ValueError(f"expected n_kv_heads dividing n_heads={n_heads} (1 = multi-query, n_heads = "
                             f"multi-head), received n_kv_heads={n_kv_heads}")
        rng = make_rng(rng)
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.n_kv_heads = n_kv_heads
        self.w_q = Linear(d_model, d_model, bias, rng=rng, dtype=dtype)
        self.w_k = Linear(d_model, n_kv_heads * self.d_head, bias, rng=rng, dtype=dtype)  # (gqa.1)
        self.w_v = Linear(d_model, n_kv_heads * self.d_head, bias, rng=rng, dtype=dtype)
        self.w_o = Linear(d_model, d_model, bias, rng=rng, dtype=dtype)
        self.attention = ScaledDotProductAttention(dropout, rng=rng) if attention is None else attention
        if attention is not None and dropout:
            raise ValueError(f"dropout: expected 0 with an attention core given (the core carries its own), "
                             f"received dropout={dropout!r} and {type(attention).__name__}")
        self.rope_q = None if rope is None else RotaryEmbedding(self.d_head, rope)  # (rope.2) on the queries
        self.rope_k = None if rope is None else RotaryEmbedding(self.d_head, rope)  # (rope.2) on the keys
        if score_bias is not None and getattr(score_bias, "n_heads", n_heads) != n_heads:
            raise ValueError(f"score_bias: expected one built for n_heads={n_heads}, received one for "
                             f"{score_bias.n_heads} heads")
        if score_bias is not None and not isinstance(self.attention, ScaledDotProductAttention):
            raise ValueError(f"score_bias: expected the standard attention core (the one that takes a bias on the "
                             f"scores), received {type(self.attention).__name__}")
        self.score_bias = score_bias

    @property
    def attn_weights(self):
        """The last attention weights P, (B, H, Tq, Tk) (None before the first forward)."""
        return self.attention.attn_weights

    def forward(self, x, memory=None, mask=None, cache=None):
        """Y = concat_h(attention(X W_q, M W_k, M W_v)_h) W_o (mha.1)-(mha.5), with M = x or memory.

        x: (B, Tq, D); memory: (B, Tk, D) or None (self-attention, Tk = Tq);
        mask: boolean, broadcastable to (B, H, Tq, Tk), True = may attend -> Y: (B, Tq, D).
        cache: None, or (inference, eval mode) a SelfAttentionCache, to which K, V of x are
        appended (dec.3) so that Tk = cache.length + Tq, or a CrossAttentionCache holding the
        memory's K, V (dec.4), Tk = its length; ``memory`` is None with a cache.
        Caches only whether this was cross-attention; the projections and the attention cache
        their own inputs. With a cache nothing at all is kept for backward.
        """
        self._check_inputs(x, memory, mask, cache)
        with no_backward(self) if cache is not None else nullcontext():
            Q = split_heads(self.w_q.forward(x), self.n_heads)  # (B, H, Tq, Dh)  (mha.1), (mha.2)
            if self.rope_q is not None:
                Q = self.rope_q.forward(Q, offset=_start(cache))  # (B, H, Tq, Dh)  (rope.2)
            K, V = self._keys_and_values(x if memory is None else memory, cache)  # (B, Hkv, Tk, Dh)
            bias = None if self.score_bias is None else self.score_bias.forward(Q.shape[2], K.shape[2], like=Q)
            if bias is None:
                O = self.attention.forward(Q, K, V, mask=mask)  # (B, H, Tq, Dh)  (mha.3)
            else:
                O = self.attention.forward(Q, K, V, mask=mask, bias=bias)  # (B, H, Tq, Dh)  (mha.3), (bias.1)
            y = self.w_o.forward(merge_heads(O))  # (B, Tq, D)  (mha.4), (mha.5)
            self.save_for_backward(memory is not None, output=y)
        return y

    def _keys_and_values(self, source, cache):
        """K, V (B, Hkv, Tk, Dh) of ``source`` (mha.1), (gqa.1): computed, or read from / appended to the cache."""
        if isinstance(cache, CrossAttentionCache):
            return cache.k, cache.v  # (dec.4): the memory's K, V, computed once
        K = split_heads(self.w_k.forward(source), self.n_kv_heads)  # (B, Hkv, T, Dh)
        if self.rope_k is not None:
            K = self.rope_k.forward(K, offset=_start(cache))  # (B, Hkv, T, Dh)  (rope.2): cached rotated
        V = split_heads(self.w_v.forward(source), self.n_kv_heads)  # (B, Hkv, T, Dh)
        if cache is None:
            return K, V
        return cache.append(K, V)  # (B, Hkv, length + T, Dh)  (dec.3): every position so far

    def backward(self, dout):
        """Back through w_o (mha.6), merge (mha.7), attention, split (mha.8), the three projections.

        dout: (B, Tq, D). Returns dx (B, Tq, D) for self-attention, where x fed the queries,
        keys and values, so its three gradients are summed (mha.9); for cross-attention returns
        (dx, dmemory) with dx from the query path and dmemory (B, Tk, D) the sum of the key and
        value paths (mha.10). Adds into the gradients of w_o (mha.6) and of w_q, w_k, w_v (mha.11).
        """
        (is_cross,) = self.saved(dout)
        dO = split_heads(self.w_o.backward(dout), self.n_heads)  # (mha.6), (mha.7)
        dQ, dK, dV, *dbias = self.attention.backward(dO)  # (attn.5)-(attn.9), and (bias.2) with a bias
        if self.score_bias is not None:
            self.score_bias.backward(dbias[0])  # a learned bias adds into its table (rel.3)
        # merge (mha.8), then each projection's backward: one term of (mha.9)/(mha.10) and (mha.11)
        dsource_v = self.w_v.backward(merge_heads(dV))
        if self.rope_k is not None:
            dK = self.rope_k.backward(dK)  # (rope.6): the inverse rotation
        dsource_k = self.w_k.backward(merge_heads(dK))
        if self.rope_q is not None:
            dQ = self.rope_q.backward(dQ)  # (rope.6)
        dx = self.w_q.backward(merge_heads(dQ))
        dsource = dsource_k + dsource_v
        if is_cross:
            return dx, dsource  # (mha.10)
        return dx + dsource  # (mha.9)

    # -- the caches of incremental decoding (notes/decoding.md) ----------------------------------
    def self_cache(self, batch_size, max_len, capacity=None):
        """An empty SelfAttentionCache for this layer: K, V buffers (B, Hkv, capacity, Dh) in the
        parameters' dtype and backend, at most ``max_len`` positions (gqa.8)."""
        like = self.w_k.weight.data
        if hasattr(self.attention, "self_cache"):  # a core with a cache of its own (a window keeps w positions)
            return self.attention.self_cache(batch_size, self.n_kv_heads, self.d_head, max_len, like=like)
        return SelfAttentionCache(batch_size, self.n_kv_heads, self.d_head, max_len, like=like, capacity=capacity)

    def cross_cache(self, memory):
        """K = M W_k + b_k, V = M W_v + b_v split into heads (dec.4), computed once per source.

        memory: (B, S, D) -> CrossAttentionCache with K, V of shape (B, Hkv, S, Dh).
        """
        self._check_inputs(memory, None, None, None, "memory")
        with no_backward(self):
            K, V = self._keys_and_values(memory, None)
        return CrossAttentionCache(K, V)

    def _check_inputs(self, x, memory, mask, cache, name="x"):
        check_float(x, name)
        check_ndim(x, 3, name, "(B, T, D)")
        check_last_dim(x, self.d_model, name)
        check_same_dtype(x, self.w_q.weight.data, name, "w_q.weight")
        B, Tq, _ = x.shape
        Tk = Tq
        if memory is not None:
            if cache is not None:
                raise ValueError("memory: expected None with a cache (a cross-attention cache holds the memory's K, V), "
                                 f"received an array of shape {memory.shape}")
            check_float(memory, "memory")
            check_ndim(memory, 3, "memory", "(B, Tk, D)")
            check_last_dim(memory, self.d_model, "memory")
            check_same_dtype(memory, self.w_k.weight.data, "memory", "w_k.weight")
            if memory.shape[0] != B:
                raise ValueError(
                    f"memory: expected batch size {B} (the batch size of x), received shape {memory.shape}"
                )
            Tk = memory.shape[1]
        if cache is not None:
            Tk = self._check_cache(cache, B, Tq)
        check_mask(mask, B, self.n_heads, Tq, Tk)

    def _check_cache(self, cache, B, T_new):
        """The number of keys, Tk, once ``cache`` is known to fit this layer and this call."""
        if self.training:
            raise RuntimeError(
                "MultiHeadAttention: a KV cache is for inference: expected eval mode "
                "(call model.eval()), received training mode"
            )
        if not isinstance(cache, (SelfAttentionCache, CrossAttentionCache)):
            raise TypeError(
                f"cache: expected a SelfAttentionCache or CrossAttentionCache, received {type(cache).__name__}"
            )
        expected = (B, self.n_kv_heads, self.d_head, self.w_k.weight.data.dtype)
        received = (cache.k.shape[0], cache.k.shape[1], cache.k.shape[3], cache.k.dtype)
        if received != expected:
            raise ValueError(
                "cache: expected one built for this layer and batch, K, V of (B, Hkv, t, Dh) = "
                f"({B}, {self.n_kv_heads}, t, {self.d_head}) in {expected[3]}, received "
                f"{tuple(cache.k.shape)} in {cache.k.dtype}"
            )
        if isinstance(cache, CrossAttentionCache):
            return cache.length
        cache.check_room(T_new)
        return cache.length + T_new
