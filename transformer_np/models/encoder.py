"""The encoder: N identical layers of self-attention and feed-forward, each in a residual wrapper.

Derivation of how the pieces fit: notes/transformer.md; the pieces themselves: notes/residual.md,
notes/multihead.md, notes/feedforward.md.
"""

from ..init import make_rng
from ..layers.feedforward import PositionwiseFeedForward
from ..layers.multihead import MultiHeadAttention
from ..layers.norm import LayerNorm
from ..layers.residual import Residual
from ..module import Module
from ..validate import check_activations, check_int


def final_norm(norm, d_model, dtype):
    """The LayerNorm that closes a pre-LN stack, or None for post-LN (see Encoder's docstring)."""
    return LayerNorm(d_model, dtype=dtype) if norm == "pre" else None


class EncoderLayer(Module):
    """One encoder layer: Residual(self-attention), then Residual(feed-forward) (tf.3).

    ``self_attn`` wraps a MultiHeadAttention(d_model, n_heads) and ``ffn`` wraps a
    PositionwiseFeedForward(d_model, d_ff, activation); both wrappers use the same ``norm``
    position ("post" as in the paper, or "pre"). ``dropout`` goes everywhere the paper's
    reference code puts it: on the attention weights, on the FFN's hidden units and on each
    sub-layer's output before the residual sum.
    """

    def __init__(self, d_model, n_heads, d_ff, dropout=0.1, norm="post", activation="relu", *, rng=None, dtype=None):
        rng = make_rng(rng)
        attn = MultiHeadAttention(d_model, n_heads, dropout, rng=rng, dtype=dtype)
        ffn = PositionwiseFeedForward(d_model, d_ff, activation, dropout, rng=rng, dtype=dtype)
        self.d_model = d_model
        self.self_attn = Residual(attn, d_model, norm, dropout, rng=rng, dtype=dtype)
        self.ffn = Residual(ffn, d_model, norm, dropout, rng=rng, dtype=dtype)

    def forward(self, x, mask=None):
        """a = Residual(SelfAttn)(x, mask); y = Residual(FFN)(a) (tf.3).

        x: (B, S, D) -> y: (B, S, D). mask: the source padding mask, boolean (B, 1, 1, S)
        (True = a real token), or None. Caches nothing itself: the two residual blocks cache
        what their own backward passes need.
        """
        a = self.self_attn.forward(x, mask=mask)
        y = self.ffn.forward(a)
        self.save_for_backward()  # only so that a backward without a forward names this layer
        return y

    def backward(self, dy):
        """The two blocks in reverse: da = FFN block backward of dy, dx = attention block backward of da.

        dy: (B, S, D) -> dx: (B, S, D). Adds into every parameter's gradient.
        """
        self.saved()
        da = self.ffn.backward(dy)
        return self.self_attn.backward(da)


class Encoder(Module):
    """A stack of ``n_layers`` EncoderLayers, ``layers.0`` first (tf.3), plus a final LayerNorm for pre-LN (tf.4).

    Why the final LayerNorm only for pre-LN: a post-LN layer ends with a LayerNorm, so the
    stack's output is already normalised. A pre-LN layer returns x + sub-layer output, with no
    normalisation after the sum; the residual stream grows with depth, and without one more
    LayerNorm the decoder's cross-attention would read un-normalised keys and values
    (notes/residual.md; notes/transformer.md, "Post-LN and pre-LN stacks"). ``norm`` is that
    LayerNorm, or None.
    """

    def __init__(
        self, n_layers, d_model, n_heads, d_ff, dropout=0.1, norm="post", activation="relu", *, rng=None, dtype=None
    ):
        n_layers = check_int(n_layers, "n_layers")
        rng = make_rng(rng)
        self.d_model = d_model
        self.layers = [
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm, activation, rng=rng, dtype=dtype)
            for _ in range(n_layers)
        ]
        self.norm = final_norm(norm, d_model, dtype)

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
        self.save_for_backward()
        return h

    def backward(self, dmemory):
        """Reverse order: the final LayerNorm (pre-LN), then the layers from last to first.

        dmemory: (B, S, D), the decoder's total gradient for the memory (tf.8) -> dx: (B, S, D).
        """
        self.saved()
        dh = dmemory if self.norm is None else self.norm.backward(dmemory)
        for layer in reversed(self.layers):
            dh = layer.backward(dh)
        return dh
