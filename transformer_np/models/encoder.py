"""The encoder: N identical layers of self-attention and feed-forward, each in a residual wrapper.

Derivation of how the pieces fit: notes/transformer.md; the pieces themselves: notes/residual.md,
notes/multihead.md, notes/feedforward.md.
"""

from ..init import make_rng
from ..layers.norm import LayerNorm
from ..module import Module
from ..validate import check_activations
from .config import BlockConfig, attention_layer, config_from, feedforward_layer, residual, share_position_bias


def final_norm(config, dtype):
    """The LayerNorm that closes a pre-LN stack, or None for post-LN (see Encoder's docstring)."""
    return LayerNorm(config.d_model, config.eps, dtype=dtype) if config.norm == "pre" else None


class EncoderLayer(Module):
    """One encoder layer: Residual(self-attention), then Residual(feed-forward) (tf.3).

    Built from a BlockConfig (a TransformerConfig is one), or from its fields as keywords:
    ``EncoderLayer(d_model=24, n_heads=2, d_ff=40)``. ``self_attn`` wraps a MultiHeadAttention(d_model, n_heads) and ``ffn`` wraps a
    PositionwiseFeedForward(d_model, d_ff, activation); both wrappers use the same ``norm``
    position ("post" as in the paper, or "pre"). ``dropout`` goes everywhere the paper's
    reference code puts it: on the attention weights, on the FFN's hidden units and on each
    sub-layer's output before the residual sum. ``ffn_dropout`` overrides the dropout on the
    FFN's hidden units only (BERT: 0, it has none there).
    """

    def __init__(self, config=None, *, rng=None, dtype=None, ffn_dropout=None, **fields):
        config = config_from(BlockConfig, config, fields)
        rng = make_rng(rng)
        attn = attention_layer(config, rng=rng, dtype=dtype)
        ffn = feedforward_layer(config, rng=rng, dtype=dtype, dropout=ffn_dropout)
        self.self_attn = residual(attn, config, rng=rng, dtype=dtype)
        self.ffn = residual(ffn, config, rng=rng, dtype=dtype)

    def forward(self, x, mask=None):
        """a = Residual(SelfAttn)(x, mask); y = Residual(FFN)(a) (tf.3).

        x: (B, S, D) -> y: (B, S, D). mask: the source padding mask, boolean (B, 1, 1, S)
        (True = a real token), or None. Caches nothing itself: the two residual blocks cache
        what their own backward passes need.
        """
        a = self.self_attn.forward(x, mask=mask)  # (B, S, D)
        y = self.ffn.forward(a)
        self.save_for_backward(output=y)  # so that backward checks dy and names this layer
        return y

    def backward(self, dy):
        """The two blocks in reverse: da = FFN block backward of dy, dx = attention block backward of da.

        dy: (B, S, D) -> dx: (B, S, D). Adds into every parameter's gradient.
        """
        self.saved(dy)
        da = self.ffn.backward(dy)
        return self.self_attn.backward(da)


class Encoder(Module):
    """A stack of ``n_layers`` EncoderLayers, ``layers.0`` first (tf.3), plus a final LayerNorm for pre-LN (tf.4).

    Why the final LayerNorm only for pre-LN: a post-LN layer ends with a LayerNorm, so the
    stack's output is already normalised. A pre-LN layer returns x + sub-layer output, with no
    normalisation after the sum; the residual stream grows with depth, and without one more
    LayerNorm the decoder's cross-attention would read un-normalised keys and values
    (notes/residual.md; notes/transformer.md, "Post-LN and pre-LN stacks"). ``norm`` is that
    LayerNorm, or None. ``ffn_dropout``: as in EncoderLayer.
    """

    def __init__(self, config=None, *, rng=None, dtype=None, ffn_dropout=None, **fields):
        config = config_from(BlockConfig, config, fields)
        rng = make_rng(rng)
        self.d_model = config.d_model
        self.layers = [EncoderLayer(config, rng=rng, dtype=dtype, ffn_dropout=ffn_dropout)
                       for _ in range(config.n_layers)]
        share_position_bias([layer.self_attn.sublayer for layer in self.layers])  # T5: one table a stack
        self.norm = final_norm(config, dtype)

    def forward(self, x, mask=None):
        """h_0 = x, h_l = EncoderLayer_l(h_{l-1}, mask) (tf.3); memory = h_N, or LN(h_N) for pre-LN (tf.4).

        x: (B, S, D), finite, in the parameters' dtype -> memory: (B, S, D).
        mask: source padding mask (B, 1, 1, S) or None. A loop over LAYERS (never over batch,
        time or heads). Caches nothing itself.
        """
        check_activations(x, self.d_model, self.layers[0].ffn.norm.weight.data)
        h = x
        for layer in self.layers:
            h = layer.forward(h, mask)
        if self.norm is not None:
            h = self.norm.forward(h)
        self.save_for_backward(output=h)
        return h

    def backward(self, dmemory):
        """Reverse order: the final LayerNorm (pre-LN), then the layers from last to first.

        dmemory: (B, S, D), the decoder's total gradient for the memory (tf.8) -> dx: (B, S, D).
        """
        self.saved(dmemory)
        dh = dmemory if self.norm is None else self.norm.backward(dmemory)
        for layer in reversed(self.layers):
            dh = layer.backward(dh)
        return dh
