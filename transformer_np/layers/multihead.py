"""Multi-head attention: project, split into heads, attend, merge, project. Derivation: notes/multihead.md."""

from ..init import make_rng
from ..module import Module
from ..validate import check_float, check_last_dim, check_ndim, check_same_dtype
from .attention import ScaledDotProductAttention
from .kv_cache import CrossAttentionCache, SelfAttentionCache
from .linear import Linear
from .masks import check_mask

_INFERENCE_ONLY = "cached forward"  # what a cached forward saves instead of a backward cache


def split_heads(X, n_heads):
    """(B, T, H * Dh) -> (B, H, T, Dh): column block h of X becomes head h (mha.2). A view when X is contiguous."""
    B, T, D = X.shape
    return X.reshape(B, T, n_heads, D // n_heads).transpose(0, 2, 1, 3)


def merge_heads(O):
    """(B, H, T, Dh) -> (B, T, H * Dh): the heads side by side again, the inverse of split_heads (mha.4)."""
    B, H, T, Dh = O.shape
    return O.transpose(0, 2, 1, 3).reshape(B, T, H * Dh)


class MultiHeadAttention(Module):
    """H heads of scaled dot-product attention on d_model features, Dh = d_model / H each.

    Four Linear projections (d_model -> d_model): ``w_q``, ``w_k``, ``w_v`` make the queries,
    keys and values, ``w_o`` mixes the merged heads. ``forward(x)`` is self-attention;
    ``forward(x, memory)`` is cross-attention (queries from x, keys and values from memory, as
    in the decoder attending to the encoder output).

    ``dropout`` drops attention weights inside the attention (the paper's reference code does
    this); the dropout on the layer's output is the residual wrapper's job. ``attn_weights`` is
    the last softmax P, (B, H, Tq, Tk), before dropout, for plotting heatmaps.

    Incremental decoding (notes/decoding.md): ``forward(x, mask=..., cache=c)`` with a
    SelfAttentionCache (``self_cache(B, max_len)``) appends the new tokens' K, V and attends
    to every cached position; with a CrossAttentionCache (``cross_cache(memory)``, made once
    per source) it reuses the memory's K, V. That path is inference only: eval mode, and
    nothing is kept for backward (a backward after it raises).
    """

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, *, rng=None, dtype=None):
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads: expected d_model = n_heads * d_head, "
                f"received d_model={d_model}, n_heads={n_heads}"
            )
        rng = make_rng(rng)
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.w_q = Linear(d_model, d_model, bias, rng=rng, dtype=dtype)
        self.w_k = Linear(d_model, d_model, bias, rng=rng, dtype=dtype)
        self.w_v = Linear(d_model, d_model, bias, rng=rng, dtype=dtype)
        self.w_o = Linear(d_model, d_model, bias, rng=rng, dtype=dtype)
        self.attention = ScaledDotProductAttention(dropout, rng=rng)

    @property
    def attn_weights(self):
        """The last attention weights P, (B, H, Tq, Tk) (None before the first forward)."""
        return self.attention.attn_weights

    def forward(self, x, memory=None, mask=None, cache=None):
        """Y = concat_h(attention(X W_q, M W_k, M W_v)_h) W_o (mha.1)-(mha.5), with M = x or memory.

        x: (B, Tq, D); memory: (B, Tk, D) or None (self-attention, Tk = Tq);
        mask: boolean, broadcastable to (B, H, Tq, Tk), True = may attend -> Y: (B, Tq, D).
        Caches only whether this was cross-attention; the projections and the attention cache
        their own inputs. With ``cache`` given, this is ``forward_cached`` (inference only).
        """
        if cache is not None:
            return self.forward_cached(x, cache, memory=memory, mask=mask)
        self._check_inputs(x, memory, mask)
        source = x if memory is None else memory
        Q = split_heads(self.w_q.forward(x), self.n_heads)  # (mha.1), (mha.2)
        K = split_heads(self.w_k.forward(source), self.n_heads)
        V = split_heads(self.w_v.forward(source), self.n_heads)
        O = self.attention.forward(Q, K, V, mask=mask)  # (mha.3)
        self.save_for_backward(memory is not None)
        return self.w_o.forward(merge_heads(O))  # (mha.4), (mha.5)

    def backward(self, dout):
        """Back through w_o (mha.6), merge (mha.7), attention, split (mha.8), the three projections.

        dout: (B, Tq, D). Returns dx (B, Tq, D) for self-attention, where x fed the queries,
        keys and values, so its three gradients are summed (mha.9); for cross-attention returns
        (dx, dmemory) with dx from the query path and dmemory (B, Tk, D) the sum of the key and
        value paths (mha.10). Adds into the gradients of w_o (mha.6) and of w_q, w_k, w_v (mha.11).
        """
        is_cross = self.saved()[0]
        if is_cross is _INFERENCE_ONLY:
            raise RuntimeError(
                "MultiHeadAttention.backward() after a cached forward: expected a training forward "
                "(cache=None) before backward, received the KV-cache path, which keeps nothing for backward"
            )
        dO = split_heads(self.w_o.backward(dout), self.n_heads)  # (mha.6), (mha.7)
        dQ, dK, dV = self.attention.backward(dO)  # (attn.5)-(attn.9)
        # merge (mha.8), then each projection's backward: one term of (mha.9)/(mha.10) and (mha.11)
        dsource_v = self.w_v.backward(merge_heads(dV))
        dsource_k = self.w_k.backward(merge_heads(dK))
        dx = self.w_q.backward(merge_heads(dQ))
        dsource = dsource_k
        dsource += dsource_v  # in place: both are fresh arrays of the projections' backward
        if is_cross:
            return dx, dsource  # (mha.10)
        dx += dsource
        return dx  # (mha.9)

    # -- incremental decoding: the KV cache (notes/decoding.md) --------------------------------
    def self_cache(self, batch_size, max_len, capacity=None):
        """An empty SelfAttentionCache for this layer: K, V buffers (B, H, capacity, Dh) in the
        parameters' dtype and backend, at most ``max_len`` positions."""
        like = self.w_k.weight.data
        return SelfAttentionCache(batch_size, self.n_heads, self.d_head, max_len, like=like, capacity=capacity)

    def cross_cache(self, memory):
        """K = M W_k + b_k, V = M W_v + b_v split into heads (dec.4), computed once per source.

        memory: (B, S, D) -> CrossAttentionCache with K, V of shape (B, H, S, Dh).
        """
        self._check_inputs(memory, None, None, "memory")
        K = split_heads(self.w_k.forward(memory), self.n_heads)
        V = split_heads(self.w_v.forward(memory), self.n_heads)
        return CrossAttentionCache(K, V)

    def forward_cached(self, x, cache, memory=None, mask=None):
        """Y as in forward (mha.1)-(mha.5), the keys and values coming from ``cache`` (dec.2)-(dec.4).

        x: (B, T_new, D), the tokens at positions cache.length .. cache.length + T_new - 1.
        cache: a SelfAttentionCache, to which this call appends K, V of x (dec.3), after which
        the queries attend to all Tk = length + T_new cached positions; or a
        CrossAttentionCache, whose K, V (Tk = S) were computed from the memory once (dec.4).
        ``memory`` must be None (a cross-attention cache already holds it).
        mask: boolean, broadcastable to (B, H, T_new, Tk), e.g. the rows length .. length+T_new-1
        of the causal mask. -> Y: (B, T_new, D).
        Inference only: needs eval mode (dropout off, so that cached = uncached) and keeps
        nothing for backward; a backward after it raises RuntimeError.
        """
        if self.training:
            raise RuntimeError(
                "MultiHeadAttention: the KV-cache path is for inference: expected eval mode "
                "(call model.eval()), received training mode"
            )
        if memory is not None:
            raise ValueError("memory: expected None with a cache (a cross-attention cache holds the memory's K, V)")
        self._check_inputs(x, None, None)
        B, T_new, _ = x.shape
        if isinstance(cache, SelfAttentionCache):
            Tk = cache.length + T_new
        elif isinstance(cache, CrossAttentionCache):
            Tk = cache.length
        else:
            raise TypeError(
                f"cache: expected a SelfAttentionCache or CrossAttentionCache, received {type(cache).__name__}"
            )
        if cache.k.shape[:2] != (B, self.n_heads) or cache.k.shape[3] != self.d_head:
            raise ValueError(
                f"cache: expected K, V of shape (B, H, t, Dh) = ({B}, {self.n_heads}, t, {self.d_head}), "
                f"received {tuple(cache.k.shape)}"
            )
        check_mask(mask, B, self.n_heads, T_new, Tk)
        Q = split_heads(self.w_q.forward(x), self.n_heads)  # (mha.1), (mha.2)
        if isinstance(cache, SelfAttentionCache):  # (dec.3): append, then attend to everything so far
            K, V = cache.append(split_heads(self.w_k.forward(x), self.n_heads), split_heads(self.w_v.forward(x), self.n_heads))
        else:  # (dec.4): the memory's K, V, computed once
            K, V = cache.k, cache.v
        O = self.attention.forward(Q, K, V, mask=mask)  # (mha.3)
        self.save_for_backward(_INFERENCE_ONLY)
        return self.w_o.forward(merge_heads(O))  # (mha.4), (mha.5)

    def _check_inputs(self, x, memory, mask, name="x"):
        check_float(x, name)
        check_ndim(x, 3, name, "(B, T, D)")
        check_last_dim(x, self.d_model, name)
        check_same_dtype(x, self.w_q.weight.data, name, "w_q.weight")
        B, Tq, _ = x.shape
        Tk = Tq
        if memory is not None:
            check_float(memory, "memory")
            check_ndim(memory, 3, "memory", "(B, Tk, D)")
            check_last_dim(memory, self.d_model, "memory")
            check_same_dtype(memory, self.w_k.weight.data, "memory", "w_k.weight")
            if memory.shape[0] != B:
                raise ValueError(
                    f"memory: expected batch size {B} (the batch size of x), received shape {memory.shape}"
                )
            Tk = memory.shape[1]
        check_mask(mask, B, self.n_heads, Tq, Tk)
