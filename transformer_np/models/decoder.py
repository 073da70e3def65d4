"""The decoder: N identical layers of masked self-attention, cross-attention and feed-forward.

Derivation of how the pieces fit, and why the memory's gradient is a sum over the layers:
notes/transformer.md. The pieces: notes/residual.md, notes/multihead.md, notes/feedforward.md.
"""

from ..init import make_rng
from ..module import Module
from ..validate import check_activations
from .config import BlockConfig, attention_layer, config_from, feedforward_layer, residual
from .encoder import final_norm


class DecoderLayer(Module):
    """One decoder layer: Residual(masked self-attention), Residual(cross-attention), Residual(FFN) (tf.5).

    ``self_attn``: the target attends to itself under ``tgt_mask`` (target padding AND causal,
    so position t sees positions 0..t only). ``cross_attn``: queries from the target, keys and
    values from the encoder output ``memory``, under the source padding mask ``src_mask``.
    ``ffn``: the position-wise feed-forward network. Built from a BlockConfig (or its fields as
    keywords), as EncoderLayer.
    """

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        config = config_from(BlockConfig, config, fields)
        rng = make_rng(rng)
        self_attn = attention_layer(config, rng=rng, dtype=dtype)
        cross_attn = attention_layer(config, rng=rng, dtype=dtype, cross=True)
        ffn = feedforward_layer(config, rng=rng, dtype=dtype)
        self.self_attn = residual(self_attn, config, rng=rng, dtype=dtype)
        self.cross_attn = residual(cross_attn, config, rng=rng, dtype=dtype)
        self.ffn = residual(ffn, config, rng=rng, dtype=dtype)

    def forward(self, x, memory, tgt_mask=None, src_mask=None, cache=None):
        """a = Residual(SelfAttn)(x, tgt_mask); c = Residual(CrossAttn)(a, memory, src_mask);
        y = Residual(FFN)(c) (tf.5).

        x: (B, T, D), memory: (B, S, D) -> y: (B, T, D).
        tgt_mask: boolean, broadcastable to (B, H, T, T), normally (B, 1, T, T) = target padding
        AND causal; src_mask: (B, 1, 1, S) source padding mask; either may be None.
        cache: None, or (inference) the pair (self-attention cache, cross-attention cache) of
        this layer (dec.3), (dec.4); ``memory`` is then None (the cross cache holds its K, V).
        Caches nothing itself: the three residual blocks cache what they need.
        """
        self_cache, cross_cache = (None, None) if cache is None else cache
        a = self.self_attn.forward(x, mask=tgt_mask, cache=self_cache)  # (B, T, D)
        if cross_cache is None:
            c = self.cross_attn.forward(a, memory, mask=src_mask)
        else:
            c = self.cross_attn.forward(a, mask=src_mask, cache=cross_cache)
        y = self.ffn.forward(c)
        self.save_for_backward(output=y)
        return y

    def backward(self, dy):
        """The three blocks in reverse: FFN, cross-attention (which also gives dmemory, (res.9)
        with (mha.10)), self-attention.

        dy: (B, T, D) -> (dx (B, T, D), dmemory (B, S, D)): this layer's contribution to the
        memory's gradient; the Decoder adds the contributions of all layers (tf.10).
        """
        self.saved(dy)
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

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        config = config_from(BlockConfig, config, fields)
        rng = make_rng(rng)
        self.d_model = config.d_model
        self.layers = [DecoderLayer(config, rng=rng, dtype=dtype) for _ in range(config.n_layers)]
        self.norm = final_norm(config, dtype)

    def forward(self, x, memory, tgt_mask=None, src_mask=None, cache=None):
        """g_0 = x, g_l = DecoderLayer_l(g_{l-1}, memory, tgt_mask, src_mask) (tf.5);
        y = g_N, or LN(g_N) for pre-LN (tf.6).

        x: (B, T, D) and memory: (B, S, D), both finite, in the parameters' dtype -> y: (B, T, D).
        Masks as in DecoderLayer.forward. cache: None, or (inference) a KVCache holding every
        layer's self- and cross-attention entries; ``memory`` and ``src_mask`` are then None
        (the cache holds the memory's K, V and the source mask). A loop over LAYERS only.
        Caches nothing itself.
        """
        like = self.layers[0].ffn.norm.weight.data
        check_activations(x, self.d_model, like)
        if cache is None:
            check_activations(memory, self.d_model, like, "memory")
            if memory.shape[0] != x.shape[0]:
                raise ValueError(
                    f"memory: expected batch size {x.shape[0]} (the batch size of x), received shape {memory.shape}"
                )
            layer_caches = [None] * len(self.layers)
        else:
            layer_caches = list(zip(cache.self_attn, cache.cross_attn))
            src_mask = cache.src_mask
        g = x
        for layer, layer_cache in zip(self.layers, layer_caches):
            g = layer.forward(g, memory, tgt_mask, src_mask, layer_cache)
        if self.norm is not None:
            g = self.norm.forward(g)
        self.save_for_backward(output=g)
        return g

    def backward(self, dy):
        """Reverse order: the final LayerNorm (pre-LN), then the layers from last to first, summing
        dmemory = sum over layers of each layer's contribution (tf.10).

        dy: (B, T, D) -> (dx (B, T, D), dmemory (B, S, D)).
        """
        self.saved(dy)
        dg = dy if self.norm is None else self.norm.backward(dy)
        dmemory = None
        for layer in reversed(self.layers):
            dg, dmemory_l = layer.backward(dg)
            dmemory = dmemory_l if dmemory is None else dmemory + dmemory_l  # (tf.10)
        return dg, dmemory
