"""The decoder: N identical layers of masked self-attention, cross-attention and feed-forward.

Derivation of how the pieces fit, and why the memory's gradient is a sum over the layers:
notes/transformer.md. The pieces: notes/residual.md, notes/multihead.md, notes/feedforward.md.
"""

from ..init import make_rng
from ..layers.feedforward import PositionwiseFeedForward
from ..layers.multihead import MultiHeadAttention
from ..layers.residual import Residual
from ..module import Module
from ..validate import check_activations, check_int
from .encoder import final_norm


class DecoderLayer(Module):
    """One decoder layer: Residual(masked self-attention), Residual(cross-attention), Residual(FFN) (tf.5).

    ``self_attn``: the target attends to itself under ``tgt_mask`` (target padding AND causal,
    so position t sees positions 0..t only). ``cross_attn``: queries from the target, keys and
    values from the encoder output ``memory``, under the source padding mask ``src_mask``.
    ``ffn``: the position-wise feed-forward network. Dropout and ``norm`` as in EncoderLayer.
    """

    def __init__(self, d_model, n_heads, d_ff, dropout=0.1, norm="post", activation="relu", *, rng=None, dtype=None):
        rng = make_rng(rng)
        self_attn = MultiHeadAttention(d_model, n_heads, dropout, rng=rng, dtype=dtype)
        cross_attn = MultiHeadAttention(d_model, n_heads, dropout, rng=rng, dtype=dtype)
        ffn = PositionwiseFeedForward(d_model, d_ff, activation, dropout, rng=rng, dtype=dtype)
        self.d_model = d_model
        self.self_attn = Residual(self_attn, d_model, norm, dropout, rng=rng, dtype=dtype)
        self.cross_attn = Residual(cross_attn, d_model, norm, dropout, rng=rng, dtype=dtype)
        self.ffn = Residual(ffn, d_model, norm, dropout, rng=rng, dtype=dtype)

    def forward(self, x, memory, tgt_mask=None, src_mask=None):
        """a = Residual(SelfAttn)(x, tgt_mask); c = Residual(CrossAttn)(a, memory, src_mask);
        y = Residual(FFN)(c) (tf.5).

        x: (B, T, D), memory: (B, S, D) -> y: (B, T, D).
        tgt_mask: boolean, broadcastable to (B, H, T, T), normally (B, 1, T, T) = target padding
        AND causal; src_mask: (B, 1, 1, S) source padding mask; either may be None.
        Caches nothing itself: the three residual blocks cache what they need.
        """
        a = self.self_attn.forward(x, mask=tgt_mask)
        c = self.cross_attn.forward(a, memory, mask=src_mask)
        y = self.ffn.forward(c)
        self.save_for_backward()  # only so that a backward without a forward names this layer
        return y

    def forward_cached(self, x, tgt_mask, src_mask, self_cache, cross_cache):
        """(tf.5) for new target positions only (inference): the self-attention reads and extends
        ``self_cache`` (dec.3), the cross-attention reads ``cross_cache``, the memory's K, V (dec.4).

        x: (B, T_new, D) -> (B, T_new, D); tgt_mask: the causal rows (1, 1, T_new, length + T_new)
        or None; src_mask: (B, 1, 1, S) or None. Keeps nothing for backward.
        """
        a = self.self_attn.forward(x, mask=tgt_mask, cache=self_cache)
        c = self.cross_attn.forward(a, mask=src_mask, cache=cross_cache)
        return self.ffn.forward(c)

    def backward(self, dy):
        """The three blocks in reverse: FFN, cross-attention (which also gives dmemory, (res.9)
        with (mha.10)), self-attention.

        dy: (B, T, D) -> (dx (B, T, D), dmemory (B, S, D)): this layer's contribution to the
        memory's gradient; the Decoder adds the contributions of all layers (tf.10).
        """
        self.saved()
        dc = self.ffn.backward(dy)
        da, dmemory = self.cross_attn.backward(dc)
        dx = self.self_attn.backward(da)
        return dx, dmemory


class Decoder(Module):
    """A stack of ``n_layers`` DecoderLayers, ``layers.0`` first (tf.5), plus a final LayerNorm for pre-LN (tf.6).

    Every layer reads the SAME memory (the encoder's last output), so its gradient is the sum
    of the layers' contributions (tf.10). The final LayerNorm ``norm`` exists for pre-LN only,
    for the reason given in Encoder's docstring: here it normalises the hidden states the
    output layer turns into logits. None for post-LN.
    """

    def __init__(
        self, n_layers, d_model, n_heads, d_ff, dropout=0.1, norm="post", activation="relu", *, rng=None, dtype=None
    ):
        n_layers = check_int(n_layers, "n_layers")
        rng = make_rng(rng)
        self.d_model = d_model
        self.layers = [
            DecoderLayer(d_model, n_heads, d_ff, dropout, norm, activation, rng=rng, dtype=dtype)
            for _ in range(n_layers)
        ]
        self.norm = final_norm(norm, d_model, dtype)

    def forward(self, x, memory, tgt_mask=None, src_mask=None):
        """g_0 = x, g_l = DecoderLayer_l(g_{l-1}, memory, tgt_mask, src_mask) (tf.5);
        y = g_N, or LN(g_N) for pre-LN (tf.6).

        x: (B, T, D) and memory: (B, S, D), both finite, in the parameters' dtype -> y: (B, T, D).
        Masks as in DecoderLayer.forward. A loop over LAYERS only. Caches nothing itself.
        """
        like = self.layers[0].ffn.norm.weight.data
        check_activations(x, self.d_model, like)
        check_activations(memory, self.d_model, like, "memory")
        if memory.shape[0] != x.shape[0]:
            raise ValueError(
                f"memory: expected batch size {x.shape[0]} (the batch size of x), received shape {memory.shape}"
            )
        g = x
        for layer in self.layers:
            g = layer.forward(g, memory, tgt_mask, src_mask)
        if self.norm is not None:
            g = self.norm.forward(g)
        self.save_for_backward()
        return g

    def forward_cached(self, x, cache, tgt_mask=None):
        """forward for new target positions only, every layer reading and extending its part of
        ``cache`` (a KVCache holding cross-attention entries and the source mask) (dec.2)-(dec.4).

        x: (B, T_new, D) -> y: (B, T_new, D); tgt_mask: the causal rows for the new positions,
        broadcastable to (B, H, T_new, cache.length + T_new), or None. Inference only.
        """
        check_activations(x, self.d_model, self.layers[0].ffn.norm.weight.data)
        g = x
        for layer, self_cache, cross_cache in zip(self.layers, cache.self_attn, cache.cross_attn):
            g = layer.forward_cached(g, tgt_mask, cache.src_mask, self_cache, cross_cache)
        return g if self.norm is None else self.norm.forward(g)

    def backward(self, dy):
        """Reverse order: the final LayerNorm (pre-LN), then the layers from last to first, summing
        dmemory = sum over layers of each layer's contribution (tf.10).

        dy: (B, T, D) -> (dx (B, T, D), dmemory (B, S, D)).
        """
        self.saved()
        dg = dy if self.norm is None else self.norm.backward(dy)
        dmemory = None
        for layer in reversed(self.layers):
            dg, dmemory_l = layer.backward(dg)
            dmemory = dmemory_l if dmemory is None else dmemory + dmemory_l  # (tf.10)
        return dg, dmemory
