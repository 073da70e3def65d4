"""Multi-head attention: project, split into heads, attend, merge, project. Derivation: notes/multihead.md."""

from ..init import make_rng
from ..module import Module
from ..validate import check_float, check_last_dim, check_ndim, check_same_dtype
from .attention import ScaledDotProductAttention
from .linear import Linear
from .masks import check_mask


class MultiHeadAttention(Module):
    """H heads of scaled dot-product attention on d_model features, Dh = d_model / H each.

    Four Linear projections (d_model -> d_model): ``w_q``, ``w_k``, ``w_v`` make the queries,
    keys and values, ``w_o`` mixes the merged heads. ``forward(x)`` is self-attention;
    ``forward(x, memory)`` is cross-attention (queries from x, keys and values from memory, as
    in the decoder attending to the encoder output).

    ``dropout`` drops attention weights inside the attention (the paper's reference code does
    this); the dropout on the layer's output is the residual wrapper's job. ``attn_weights`` is
    the last softmax P, (B, H, Tq, Tk), before dropout, for plotting heatmaps.
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

    # -- heads: a reshape and a transpose, no loops (mha.2, mha.4) ----------------------------
    def _split_heads(self, X):
        """(B, T, D) -> (B, H, T, Dh): column block h of X becomes head h (mha.2)."""
        B, T, _ = X.shape
        return X.reshape(B, T, self.n_heads, self.d_head).transpose(0, 2, 1, 3)

    def _merge_heads(self, O):
        """(B, H, T, Dh) -> (B, T, D): the heads side by side again, the inverse of _split_heads (mha.4)."""
        B, _, T, _ = O.shape
        return O.transpose(0, 2, 1, 3).reshape(B, T, self.d_model)

    def forward(self, x, memory=None, mask=None):
        """Y = concat_h(attention(X W_q, M W_k, M W_v)_h) W_o (mha.1)-(mha.5), with M = x or memory.

        x: (B, Tq, D); memory: (B, Tk, D) or None (self-attention, Tk = Tq);
        mask: boolean, broadcastable to (B, H, Tq, Tk), True = may attend -> Y: (B, Tq, D).
        Caches only whether this was cross-attention; the projections and the attention cache
        their own inputs.
        """
        self._check_inputs(x, memory, mask)
        source = x if memory is None else memory
        Q = self._split_heads(self.w_q.forward(x))  # (mha.1), (mha.2)
        K = self._split_heads(self.w_k.forward(source))
        V = self._split_heads(self.w_v.forward(source))
        O = self.attention.forward(Q, K, V, mask=mask)  # (mha.3)
        self._save_for_backward(memory is not None)
        return self.w_o.forward(self._merge_heads(O))  # (mha.4), (mha.5)

    def backward(self, dout):
        """Back through w_o (mha.6), merge (mha.7), attention, split (mha.8), the three projections.

        dout: (B, Tq, D). Returns dx (B, Tq, D) for self-attention, where x fed the queries,
        keys and values, so its three gradients are summed (mha.9); for cross-attention returns
        (dx, dmemory) with dx from the query path and dmemory (B, Tk, D) the sum of the key and
        value paths (mha.10). Adds into the gradients of w_o (mha.6) and of w_q, w_k, w_v (mha.11).
        """
        is_cross = self._saved()[0]
        dO = self._split_heads(self.w_o.backward(dout))  # (mha.6), (mha.7)
        dQ, dK, dV = self.attention.backward(dO)  # (attn.5)-(attn.9)
        # merge (mha.8), then each projection's backward: one term of (mha.9)/(mha.10) and (mha.11)
        dsource_v = self.w_v.backward(self._merge_heads(dV))
        dsource_k = self.w_k.backward(self._merge_heads(dK))
        dx = self.w_q.backward(self._merge_heads(dQ))
        dsource = dsource_k + dsource_v
        if is_cross:
            return dx, dsource  # (mha.10)
        return dx + dsource  # (mha.9)

    def _check_inputs(self, x, memory, mask):
        check_float(x, "x")
        check_ndim(x, 3, "x", "(B, T, D)")
        check_last_dim(x, self.d_model, "x")
        check_same_dtype(x, self.w_q.weight.data, "x", "w_q.weight")
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
