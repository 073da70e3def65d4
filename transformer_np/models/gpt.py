"""GPT: a decoder-only Transformer language model (GPT-2 layout, pre-LN, tied output). Derivation: notes/gpt.md.

    idx (B, T) -> token embedding + learned positions -> dropout       (gpt.1, gpt.2)
               -> n_layers x [Residual(pre-LN, causal self-attention),
                              Residual(pre-LN, feed-forward d -> 4d -> d)] (gpt.3, gpt.4)
               -> final LayerNorm -> logits = h W_E^T                    (gpt.5, gpt.6)

Built only from layers/, as GPTConfig describes; the one loop is over layers. Incremental
decoding (notes/decoding.md): ``cache = gpt.new_cache(B)``, then ``gpt.forward(idx_new,
cache=cache)`` feeds the prompt and then one token at a time, each layer reusing the keys and
values of the earlier positions.
"""

import dataclasses
import math
from contextlib import nullcontext

from ..backend import backend_name, get_array_module, to_backend
from ..init import make_rng, normal
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.kv_cache import KVCache, check_kv_cache
from ..layers.masks import causal_mask, check_mask, combine_masks
from ..layers.norm import LayerNorm
from ..layers.tied import TiedOutput
from ..module import Module, no_backward
from ..validate import check_int, check_int_ids, check_ndim
from .config import (
    ADDED_POSITIONS,
    BlockConfig,
    attention_layer,
    config_from,
    feedforward_layer,
    model_config,
    position_table,
    positive_int,
    residual,
    share_position_bias,
)

INIT_STD = 0.02  # GPT-2 / minGPT: every weight matrix and both embedding tables ~ N(0, 0.02^2)
SINUSOID_ROWS = 5000  # positions="sinusoidal": rows of the fixed table (at least block_size), as the paper's code


@model_config
class GPTConfig(BlockConfig):
    """The architecture of a GPT: the block fields of BlockConfig (d_model, n_heads, d_ff = 4
    d_model, dropout, activation, norm, bias), with GPT-2's defaults, and these:

    vocab_size   V, the number of token ids
    block_size   the training context: the number of learned positions, and the longest
                 sequence for "learned"; "sinusoidal" has a table of max(block_size, 5000)
                 rows, "rope", "alibi", "t5" and "none" no maximum (a longer sequence runs)
    n_layers     blocks
    positions    "learned" (GPT-2, the default), "sinusoidal", "rope", "alibi", "t5", "none"

    Defaults that differ from a BlockConfig's: activation "gelu" (exact, x Phi(x); "gelu_tanh"
    is GPT-2's approximation) and norm "pre" (GPT-2's blocks; the model ends with ln_f).
    ``dropout`` also acts on the embeddings.
    """

    vocab_size: int
    block_size: int
    n_layers: int
    activation: str = "gelu"
    norm: str = "pre"
    positions: str = "learned"

    def validate(self):
        super().validate()
        for name in ("vocab_size", "block_size", "n_layers"):
            positive_int(self, name)


class GPTBlock(Module):
    """One decoder-only block: ``attn`` = Residual(pre-LN, causal MultiHeadAttention) (gpt.3),
    then ``ffn`` = Residual(pre-LN, PositionwiseFeedForward(d, 4d, activation)) (gpt.4).

    Built from a BlockConfig (a GPTConfig is one) or from its fields as keywords, which then
    take GPTConfig's defaults (pre-LN, exact GELU): ``GPTBlock(d_model=24, n_heads=2)``.
    ``config.dropout`` acts on the attention weights and on each sub-layer's output before the
    sum (GPT-2's attn_pdrop and resid_pdrop); the feed-forward network has no hidden dropout.
    ``config.bias=False`` removes the biases of the six linear layers (not the LayerNorms').
    """

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        if config is None:  # GPT-2's block: GPTConfig's defaults for what the fields leave out
            defaults = {f.name: f.default for f in dataclasses.fields(GPTConfig)
                        if f.name in ("activation", "norm", "positions")}
            fields = {**defaults, **fields}
        config = config_from(BlockConfig, config, fields)
        rng = make_rng(rng)
        attn = attention_layer(config, rng=rng, dtype=dtype, causal=True)
        ffn = feedforward_layer(config, rng=rng, dtype=dtype, dropout=0.0)
        self.attn = residual(attn, config, rng=rng, dtype=dtype)
        self.ffn = residual(ffn, config, rng=rng, dtype=dtype)

    def forward(self, x, mask, cache=None):
        """a = x + Drop(MHA(LN(x), mask)) (gpt.3); y = a + Drop(FFN(LN(a))) (gpt.4).

        x: (B, T, D) -> y: (B, T, D); mask: boolean, broadcastable to (B, H, T, Tk), the causal
        mask (and any padding); cache: this block's SelfAttentionCache or None (dec.3).
        Caches nothing itself: the residual blocks cache their own.
        """
        a = self.attn.forward(x, mask=mask, cache=cache)  # (gpt.3)
        y = self.ffn.forward(a)  # (gpt.4)
        self.save_for_backward(output=y)
        return y

    def backward(self, dy):
        """da = dy + FFN-block backward (gpt.9); dx = da + attention-block backward (gpt.10).

        dy: (B, T, D) -> dx: (B, T, D). Each Residual adds its skip path (res.8).
        """
        self.saved(dy)
        da = self.ffn.backward(dy)  # (gpt.9)
        return self.attn.backward(da)  # (gpt.10)


class GPT(Module):
    """Decoder-only Transformer language model: token ids (B, T) -> next-token logits (B, T, V).

    Built from a GPTConfig: ``GPT(config)``, or ``GPT(vocab_size=..., block_size=..., ...)``
    with the fields of GPTConfig as keywords (the same thing). ``model.config`` is that object.

    Layout (dotted parameter names): token_embedding, position_embedding, blocks.0 ...
    blocks.{n_layers-1} (each .attn and .ffn), ln_f, and ``head``: a TiedOutput sharing
    token_embedding.weight, so ``named_parameters`` lists the table once.

    Initialisation as GPT-2 / minGPT (notes/gpt.md, "Initialisation"): every linear weight and
    both embedding tables ~ N(0, 0.02^2); the two projections that write into the residual
    stream, attn.sublayer.w_o and ffn.sublayer.w_2, use std 0.02 / sqrt(2 n_layers); biases 0,
    LayerNorm gains 1 and shifts 0.

    Incremental decoding (notes/decoding.md): ``cache = gpt.new_cache(B)``, then
    ``gpt.forward(idx_new, cache=cache)`` feeds the prompt and then one token at a time.
    """

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        self.config = config = config_from(GPTConfig, config, fields)
        rng = make_rng(rng)
        self.token_embedding = Embedding(config.vocab_size, config.d_model, rng=rng, dtype=dtype)
        rows = config.block_size if config.positions == "learned" else max(config.block_size, SINUSOID_ROWS)
        self.position_embedding = position_table(config, rows, rng=rng, dtype=dtype)  # None inside attention
        self.dropout = Dropout(config.dropout, rng=rng)
        self.blocks = [GPTBlock(config, rng=rng, dtype=dtype) for _ in range(config.n_layers)]
        share_position_bias([block.attn.sublayer for block in self.blocks])  # T5: one table for the stack
        self.ln_f = LayerNorm(config.d_model, config.eps, dtype=dtype)
        self.head = TiedOutput(self.token_embedding.weight)  # the same Parameter object (tie.1)
        self._init_weights(rng)

    # the configuration's sizes, read often enough to be named here
    vocab_size = property(lambda self: self.config.vocab_size)
    block_size = property(lambda self: self.config.block_size)
    n_layers = property(lambda self: self.config.n_layers)
    n_heads = property(lambda self: self.config.n_heads)
    d_model = property(lambda self: self.config.d_model)

    @property
    def max_positions(self):
        """The longest sequence the positions allow: the table's rows for "learned" (block_size)
        and "sinusoidal"; None (no maximum) for "rope", "alibi", "t5" and "none"."""
        return None if self.position_embedding is None else self.position_embedding.max_len

    def _init_weights(self, rng):
        """GPT-2 initialisation, drawn from ``rng`` after the layers were built (notes/gpt.md)."""
        residual_std = INIT_STD / math.sqrt(2 * self.n_layers)
        for name, p in self.named_parameters():
            if p.data.ndim != 2:
                continue  # biases stay 0, LayerNorm gains 1 and shifts 0
            std = residual_std if name.endswith(("w_o.weight", "w_2.weight")) else INIT_STD
            p.data[...] = normal(p.shape, std, rng, p.dtype)

    def forward(self, idx, mask=None, cache=None):
        """Logits of the next token at every position (gpt.1)-(gpt.6).

        idx: integer (B, T), values in [0, V), T >= 1. mask: optional boolean mask broadcastable
        to (B, H, T, Tk), True = may attend (e.g. a key-padding mask (B, 1, 1, Tk)); it is
        combined with the causal mask, never replaces it. Without a cache Tk = T <= max_positions
        (block_size for learned positions; no limit for rope, alibi, t5, none).
        cache: a KVCache from ``new_cache`` (eval mode only): idx are then the tokens at
        positions cache.length .. cache.length + T - 1, their keys and values are appended, and
        the logits equal the last T rows of a forward over the whole sequence so far (dec.1);
        Tk = cache.length + T <= cache.max_len. Nothing is kept for backward then.
        Returns logits (B, T, V) in the parameters' dtype. Caches nothing itself: every layer
        caches what its own backward needs.
        """
        B, T = self._check_ids(idx)
        start = self._check_cache(cache, B, T)
        mask = self._mask(B, T, start, mask)
        with no_backward(self) if cache is not None else nullcontext():
            x = self.token_embedding.forward(idx)  # (B, T, D)  (gpt.1)
            if self.position_embedding is not None:
                x = self.position_embedding.forward(x, offset=start)  # (gpt.1): positions start ..
            x = self.dropout.forward(x)  # (gpt.2)
            layer_caches = [None] * self.n_layers if cache is None else cache.self_attn
            for block, layer_cache in zip(self.blocks, layer_caches):
                x = block.forward(x, mask, layer_cache)  # (gpt.3), (gpt.4)
            h = self.ln_f.forward(x)  # (gpt.5)
            logits = self.head.forward(h)  # (B, T, V)  (gpt.6)
            self.save_for_backward(output=logits)
        return logits

    def backward(self, dlogits):
        """The forward pass in reverse (gpt.7)-(gpt.13); returns None (token ids have no gradient).

        dlogits: (B, T, V). Adds into every parameter's gradient; the tied table receives the
        output layer's term first and the embedding's term last, summed in one .grad (gpt.13).
        """
        self.saved(dlogits)
        dh = self.head.backward(dlogits)  # (gpt.7): dH = dZ W_E, and dZ^T H into the table
        dx = self.ln_f.backward(dh)  # (gpt.8)
        for block in reversed(self.blocks):
            dx = block.backward(dx)  # (gpt.9), (gpt.10)
        dx = self.dropout.backward(dx)  # (gpt.11)
        if self.position_embedding is not None:
            dx = self.position_embedding.backward(dx)  # (gpt.12)
        self.token_embedding.backward(dx)  # (gpt.13): adds E^T dX on top of the head's term
        return None

    # -- incremental decoding (notes/decoding.md) ------------------------------------------------
    def new_cache(self, batch_size, max_len=None):
        """An empty KVCache for ``batch_size`` sequences: per block, K and V buffers
        (B, H, min(max_len, block_size), Dh) in the parameters' dtype, growing to at most
        ``max_len`` positions (dec.7).
        max_len: default block_size; more only where the positions allow (``max_positions``)."""
        max_len = self.block_size if max_len is None else check_int(max_len, "max_len")
        if self.max_positions is not None and max_len > self.max_positions:
            raise ValueError(f"max_len: expected at most {self.max_positions} (the rows of the {self.config.positions} "
                             f"position table), received {max_len}")
        attns = [block.attn.sublayer for block in self.blocks]
        capacity = min(max_len, self.block_size)  # buffers grow by doubling past the training context
        return KVCache([attn.self_cache(batch_size, max_len, capacity) for attn in attns])

    # -- checks ------------------------------------------------------------------------------------
    def _check_ids(self, idx):
        check_ndim(idx, 2, "idx", "(B, T)")
        check_int_ids(idx, 0, self.vocab_size, "idx")
        B, T = idx.shape
        if B == 0 or T == 0:
            raise ValueError(f"idx: expected at least one sequence of at least one token, received shape {idx.shape}")
        return B, T

    def _check_cache(self, cache, B, T):
        """The position of idx's first token: 0 without a cache, cache.length with one."""
        if cache is None:
            if self.config.positions == "learned" and T > self.block_size:
                raise ValueError(f"idx: expected a sequence length of at most block_size={self.block_size}, "
                                 f"received {T} (the learned position table has block_size rows)")
            if self.max_positions is not None and T > self.max_positions:
                raise ValueError(f"idx: expected a sequence length of at most {self.max_positions} (the "
                                 f"{self.config.positions} position table's rows), received {T}")
            return 0
        if self.training:
            raise RuntimeError("GPT.forward with a cache: expected eval mode (call model.eval()), received training mode")
        check_kv_cache(cache, self.n_layers, B, cross=False)
        cache.check_room(T)
        return cache.length

    def _mask(self, B, T, start, mask):
        """The causal rows start .. start + T - 1 (gpt.3), AND an optional extra mask (e.g. padding)."""
        causal = causal_mask(T, get_array_module(self.ln_f.weight.data), offset=start)  # (1, 1, T, start + T)
        check_mask(mask, B, self.n_heads, T, start + T)
        if mask is not None:  # a mask built on the host follows the parameters, as token ids do
            mask = to_backend(mask, backend_name(self.ln_f.weight.data))
        return combine_masks(mask, causal)
