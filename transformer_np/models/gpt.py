"""GPT: a decoder-only Transformer language model (GPT-2 layout, pre-LN, tied output). Derivation: notes/gpt.md.

    idx (B, T) -> token embedding + learned positions -> dropout       (gpt.1, gpt.2)
               -> n_layers x [Residual(pre-LN, causal self-attention),
                              Residual(pre-LN, feed-forward d -> 4d -> d)] (gpt.3, gpt.4)
               -> final LayerNorm -> logits = h W_E^T                    (gpt.5, gpt.6)

Built only from layers/; the one loop is over layers. Incremental decoding (notes/decoding.md):
``cache = gpt.new_cache(B)``, then ``gpt.forward_cached(idx_new, cache)`` feeds the prompt and
then one token at a time, each layer reusing the keys and values of the earlier positions.
"""

import math

from ..init import make_rng, normal
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.feedforward import PositionwiseFeedForward
from ..layers.kv_cache import KVCache
from ..layers.masks import causal_mask, check_mask, combine_masks
from ..layers.multihead import MultiHeadAttention
from ..layers.norm import LayerNorm
from ..layers.positional import LearnedPositionalEmbedding
from ..layers.residual import Residual
from ..layers.tied import TiedOutput
from ..module import Module
from ..validate import check_int, check_int_ids, check_ndim

INIT_STD = 0.02  # GPT-2 / minGPT: every weight matrix and both embedding tables ~ N(0, 0.02^2)


class GPTBlock(Module):
    """One decoder-only block: ``attn`` = Residual(pre-LN, causal MultiHeadAttention) (gpt.3),
    then ``ffn`` = Residual(pre-LN, PositionwiseFeedForward(d, 4d, activation)) (gpt.4).

    ``dropout`` acts on the attention weights and on each sub-layer's output before the sum
    (GPT-2's attn_pdrop and resid_pdrop); the feed-forward network has no hidden dropout.
    ``bias=False`` removes the biases of the six linear layers (not those of the LayerNorms).
    """

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, activation="gelu", *, rng=None, dtype=None):
        rng = make_rng(rng)
        attn = MultiHeadAttention(d_model, n_heads, dropout, bias, rng=rng, dtype=dtype)
        ffn = PositionwiseFeedForward(d_model, 4 * d_model, activation, rng=rng, dtype=dtype)
        if not bias:
            ffn.w_1.bias = ffn.w_2.bias = None  # Linear treats a None bias as "no bias"
        self.attn = Residual(attn, d_model, "pre", dropout, rng=rng, dtype=dtype)
        self.ffn = Residual(ffn, d_model, "pre", dropout, rng=rng, dtype=dtype)

    def forward(self, x, mask):
        """a = x + Drop(MHA(LN(x), mask)) (gpt.3); y = a + Drop(FFN(LN(a))) (gpt.4).

        x: (B, T, D) -> y: (B, T, D); mask: boolean, broadcastable to (B, H, T, T), the causal
        mask (and any padding). Caches nothing itself: the residual blocks cache their own.
        """
        a = self.attn.forward(x, mask=mask)
        self.save_for_backward()
        return self.ffn.forward(a)

    def forward_cached(self, x, mask, cache):
        """(gpt.3), (gpt.4) for new positions only, the attention reading and extending ``cache``
        (a SelfAttentionCache) (dec.3). x: (B, T_new, D) -> (B, T_new, D). Inference only."""
        a = self.attn.forward(x, mask=mask, cache=cache)
        return self.ffn.forward(a)

    def backward(self, dy):
        """da = dy + FFN-block backward (gpt.9); dx = da + attention-block backward (gpt.10).

        dy: (B, T, D) -> dx: (B, T, D). Each Residual adds its skip path (res.8).
        """
        self.saved()
        da = self.ffn.backward(dy)  # (gpt.9)
        return self.attn.backward(da)  # (gpt.10)


class GPT(Module):
    """Decoder-only Transformer language model: token ids (B, T) -> next-token logits (B, T, V).

    vocab_size V, block_size (the longest sequence, the number of learned positions),
    n_layers blocks of n_heads heads on d_model features, feed-forward width 4 d_model.
    ``activation``: "gelu" (exact, x Phi(x), the default: what "GELU" means and what nanoGPT's
    nn.GELU() computes), "gelu_tanh" (GPT-2's tanh approximation, cheaper: notes/gpt.md,
    "Cost") or "relu". ``bias=False`` drops the linear layers' biases (LayerNorms keep theirs).

    Layout (dotted parameter names): token_embedding, position_embedding, blocks.0 ...
    blocks.{n_layers-1} (each .attn and .ffn), ln_f, and ``head``: a TiedOutput sharing
    token_embedding.weight, so ``named_parameters`` lists the table once.

    Initialisation as GPT-2 / minGPT (notes/gpt.md, "Initialisation"): every linear weight and
    both embedding tables ~ N(0, 0.02^2); the two projections that write into the residual
    stream, attn.sublayer.w_o and ffn.sublayer.w_2, use std 0.02 / sqrt(2 n_layers); biases 0,
    LayerNorm gains 1 and shifts 0.

    ``config`` is a JSON-able dict of the constructor's arguments; ``GPT.from_config(config)``
    rebuilds the architecture (weights come from a checkpoint).
    """

    def __init__(
        self, vocab_size, block_size, n_layers, n_heads, d_model, dropout=0.0, bias=True, activation="gelu",
        *, rng=None, dtype=None,
    ):
        self.vocab_size = check_int(vocab_size, "vocab_size")
        self.block_size = check_int(block_size, "block_size")
        self.n_layers = check_int(n_layers, "n_layers")
        self.n_heads, self.d_model = check_int(n_heads, "n_heads"), check_int(d_model, "d_model")
        self.config = {
            "vocab_size": self.vocab_size, "block_size": self.block_size, "n_layers": self.n_layers,
            "n_heads": self.n_heads, "d_model": self.d_model, "dropout": float(dropout),
            "bias": bool(bias), "activation": str(activation),
        }
        rng = make_rng(rng)
        self.token_embedding = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.position_embedding = LearnedPositionalEmbedding(d_model, block_size, rng=rng, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)
        self.blocks = [
            GPTBlock(d_model, n_heads, dropout, bias, activation, rng=rng, dtype=dtype) for _ in range(n_layers)
        ]
        self.ln_f = LayerNorm(d_model, dtype=dtype)
        self.head = TiedOutput(self.token_embedding.weight)  # the same Parameter object (tie.1)
        # (1, 1, block, block), built once; forward slices [:T, :T] (a view, no copy)
        self.causal = causal_mask(block_size)
        self._init_weights(rng)

    @classmethod
    def from_config(cls, config, *, rng=None, dtype=None):
        """A new GPT with the architecture in ``config`` (a dict like ``model.config``); fresh
        weights from ``rng``. Keys missing from ``config`` take the constructor's defaults."""
        known = ("vocab_size", "block_size", "n_layers", "n_heads", "d_model", "dropout", "bias", "activation")
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"config: expected keys among {list(known)}, received unknown keys {unknown}")
        return cls(**config, rng=rng, dtype=dtype)

    def _init_weights(self, rng):
        """GPT-2 initialisation, drawn from ``rng`` after the layers were built (notes/gpt.md)."""
        residual_std = INIT_STD / math.sqrt(2 * self.n_layers)
        for name, p in self.named_parameters():
            if p.data.ndim != 2:
                continue  # biases stay 0, LayerNorm gains 1 and shifts 0
            std = residual_std if name.endswith(("w_o.weight", "w_2.weight")) else INIT_STD
            p.data[...] = normal(p.shape, std, rng, p.dtype)

    def _mask(self, B, T, mask):
        """The causal mask for length T, AND an optional extra mask (e.g. padding (B, 1, 1, T))."""
        causal = self.causal[:, :, :T, :T]
        if mask is None:
            return causal
        check_mask(mask, B, self.n_heads, T, T)
        return combine_masks(mask, causal)

    def forward(self, idx, mask=None):
        """Logits of the next token at every position (gpt.1)-(gpt.6).

        idx: integer (B, T), values in [0, V), T <= block_size. mask: optional boolean mask
        broadcastable to (B, H, T, T), True = may attend (e.g. a key-padding mask
        (B, 1, 1, T)); it is combined with the causal mask, never replaces it.
        Returns logits (B, T, V) in the parameters' dtype. Caches nothing itself: every layer
        caches what its own backward needs.
        """
        check_ndim(idx, 2, "idx", "(B, T)")
        check_int_ids(idx, 0, self.vocab_size, "idx")
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"idx: expected a sequence length of at most block_size={self.block_size}, received {T}")
        mask = self._mask(B, T, mask)
        x = self.token_embedding.forward(idx)  # (gpt.1)
        x = self.position_embedding.forward(x)  # (gpt.1)
        x = self.dropout.forward(x)  # (gpt.2)
        for block in self.blocks:
            x = block.forward(x, mask)  # (gpt.3), (gpt.4)
        h = self.ln_f.forward(x)  # (gpt.5)
        self.save_for_backward()
        return self.head.forward(h)  # (gpt.6)

    # -- incremental decoding (notes/decoding.md) ------------------------------------------------
    def new_cache(self, batch_size):
        """An empty KVCache for ``batch_size`` sequences: per block, K and V buffers
        (B, H, block_size, Dh) in the parameters' dtype; at most block_size positions (dec.7)."""
        attns = [block.attn.sublayer for block in self.blocks]
        return KVCache([attn.self_cache(batch_size, self.block_size) for attn in attns])

    def forward_cached(self, idx, cache, mask=None):
        """Logits (B, T_new, V) of the tokens idx (B, T_new) at positions cache.length ..
        cache.length + T_new - 1, reading and extending ``cache`` (dec.2, dec.3).

        Equal to the last T_new rows of ``forward`` on the whole sequence so far (dec.1). Feed
        a whole prompt at once, then one token at a time. mask: optional boolean key-padding
        mask over every key so far, broadcastable to (B, H, T_new, cache.length + T_new) (e.g.
        (B, 1, 1, length + T_new) for left-padded prompts), ANDed with the causal rows.
        More than block_size positions in all is a ValueError naming both numbers.
        Inference only: eval mode (dropout off); nothing is kept for backward.
        """
        if self.training:
            raise RuntimeError("GPT.forward_cached: expected eval mode (call model.eval()), received training mode")
        check_ndim(idx, 2, "idx", "(B, T_new)")
        check_int_ids(idx, 0, self.vocab_size, "idx")
        B, T_new = idx.shape
        if not isinstance(cache, KVCache) or cache.n_layers != self.n_layers or cache.batch_size != B:
            got = f"{cache.n_layers} layers, batch {cache.batch_size}" if isinstance(cache, KVCache) else type(cache).__name__
            raise ValueError(f"cache: expected a KVCache of {self.n_layers} layers, batch {B}, received {got}")
        start = cache.length
        cache.check_room(T_new)
        causal = self.causal[:, :, start : start + T_new, : start + T_new]  # rows of (gpt.3)'s mask
        if mask is not None:
            check_mask(mask, B, self.n_heads, T_new, start + T_new)
            causal = combine_masks(mask, causal)
        self._cache = None  # nothing here for backward
        x = self.token_embedding.forward(idx)  # (gpt.1)
        x = self.position_embedding.forward(x, offset=start)  # (gpt.1), positions start ..
        x = self.dropout.forward(x)  # (gpt.2): the identity in eval mode
        for block, layer_cache in zip(self.blocks, cache.self_attn):
            x = block.forward_cached(x, causal, layer_cache)  # (gpt.3), (gpt.4)
        return self.head.forward(self.ln_f.forward(x))  # (gpt.5), (gpt.6)

    def backward(self, dlogits):
        """The forward pass in reverse (gpt.7)-(gpt.13); returns None (token ids have no gradient).

        dlogits: (B, T, V). Adds into every parameter's gradient; the tied table receives the
        output layer's term first and the embedding's term last, summed in one .grad (gpt.13).
        """
        self.saved()
        dh = self.head.backward(dlogits)  # (gpt.7): dH = dZ W_E, and dZ^T H into the table
        dx = self.ln_f.backward(dh)  # (gpt.8)
        for block in reversed(self.blocks):
            dx = block.backward(dx)  # (gpt.9), (gpt.10)
        dx = self.dropout.backward(dx)  # (gpt.11)
        dx = self.position_embedding.backward(dx)  # (gpt.12)
        self.token_embedding.backward(dx)  # (gpt.13): adds E^T dX on top of the head's term
        return None
