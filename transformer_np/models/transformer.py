"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

How the pieces assemble, the order of the backward pass and the model-level gradient facts
(the memory's gradient summed over decoder layers, a shared embedding's three contributions):
notes/transformer.md.
"""

from contextlib import nullcontext

from ..backend import backend_name, get_array_module, to_backend
from ..init import make_rng
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.kv_cache import KVCache, check_kv_cache
from ..layers.linear import Linear
from ..layers.masks import causal_mask, check_mask, combine_masks
from ..layers.tied import TiedOutput
from ..module import Module, no_backward
from ..validate import check_activations, check_int_ids, check_ndim
from .config import BlockConfig, config_from, model_config, position_table, positive_int
from .decoder import Decoder
from .encoder import Encoder


@model_config
class TransformerConfig(BlockConfig):
    """The architecture of an encoder-decoder Transformer: the block fields of BlockConfig
    (d_model, n_heads, d_ff, dropout, activation, norm, bias) and these, with the defaults of
    the paper's base model (d_model 512, 8 heads, d_ff 2048, dropout 0.1, post-LN, ReLU):

    src_vocab, tgt_vocab   the source and target vocabulary sizes
    n_layers               layers of the encoder, and of the decoder (6 each)
    max_len                the longest source or target: rows of the sinusoid table (5000), and the
                           limit of every position scheme here (and of the KV cache)
    positions              "sinusoidal" (the paper, the default), "learned", "rope", "alibi", "t5"
                           (in both stacks' self-attention; cross-attention has no positions), "none"
    share_embeddings       one (V, D) matrix for both embeddings and the output layer (the
                           paper's section 3.4; needs src_vocab == tgt_vocab)

    ``dropout`` also acts on the sums of embeddings and positions.
    """

    src_vocab: int
    tgt_vocab: int
    n_layers: int = 6
    max_len: int = 5000
    share_embeddings: bool = False
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1

    def validate(self):
        super().validate()
        for name in ("src_vocab", "tgt_vocab", "n_layers", "max_len"):
            positive_int(self, name)
        if self.share_embeddings and self.src_vocab != self.tgt_vocab:
            raise ValueError(
                "share_embeddings=True needs one joint vocabulary: expected src_vocab == tgt_vocab, "
                f"received src_vocab={self.src_vocab}, tgt_vocab={self.tgt_vocab}"
            )


class Transformer(Module):
    """Encoder-decoder Transformer: source ids (B, S) and target ids (B, T) -> logits (B, T, V_tgt).

    Built from a TransformerConfig: ``Transformer(config)``, or ``Transformer(src_vocab=...,
    tgt_vocab=..., ...)`` with its fields as keywords; ``model.config`` is that object.
    Defaults are the paper's base model: post-LN, ReLU, sinusoidal positions, embeddings scaled
    by sqrt(d_model), dropout 0.1 on the sum of embedding and position (``src_dropout``,
    ``tgt_dropout``) and inside every layer, and a separate output Linear ``output``.

    ``share_embeddings=True`` is the paper's setting (section 3.4): ONE (V, D) matrix is the
    source embedding, the target embedding and, transposed, the output layer (a TiedOutput
    without bias). The three layers hold the same Parameter object, listed once by
    named_parameters (as "src_embed.weight"); each layer's backward ADDS into its .grad, so
    after one backward it holds the sum of the three contributions (tf.13) with no special case.

    Incremental decoding (notes/decoding.md): ``cache = model.new_cache(memory, src_mask)``
    computes every decoder layer's cross-attention K, V once; ``model.decode(tgt_new,
    cache=cache)`` then feeds one target token (or several) at a time.
    """

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        self.config = c = config_from(TransformerConfig, config, fields)
        rng = make_rng(rng)
        self.src_embed = Embedding(c.src_vocab, c.d_model, scale=True, rng=rng, dtype=dtype)
        self.src_pos = position_table(c, c.max_len, rng=rng, dtype=dtype)  # None: positions inside attention
        self.src_dropout = Dropout(c.dropout, rng=rng)
        self.encoder = Encoder(c, rng=rng, dtype=dtype)
        self.tgt_embed = Embedding(c.tgt_vocab, c.d_model, scale=True, rng=rng, dtype=dtype)
        self.tgt_pos = position_table(c, c.max_len, rng=rng, dtype=dtype)
        self.tgt_dropout = Dropout(c.dropout, rng=rng)
        self.decoder = Decoder(c, rng=rng, dtype=dtype)
        if c.share_embeddings:
            self.tgt_embed.weight = self.src_embed.weight  # the same Parameter object, not a copy
            self.output = TiedOutput(self.src_embed.weight)
        else:
            self.output = Linear(c.d_model, c.tgt_vocab, rng=rng, dtype=dtype)

    # the configuration's sizes, read often enough to be named here
    d_model = property(lambda self: self.config.d_model)
    n_heads = property(lambda self: self.config.n_heads)
    max_len = property(lambda self: self.config.max_len)

    # -- the two halves ---------------------------------------------------------------------
    def encode(self, src, src_mask=None):
        """X_0 = Dropout(sqrt(D) E_src[src] + PE) (tf.1); memory M = Encoder(X_0, src_mask) (tf.3, tf.4).

        src: integer (B, S), values in [0, src_vocab), 1 <= S <= max_len;
        src_mask: boolean (B, 1, 1, S) source padding mask (True = real token) or None
        -> memory (B, S, D). Ids and masks on the CPU are moved to the parameters' backend.
        The children cache what their backward passes need.
        """
        self._cache = None  # a model backward needs a whole forward, not this half of one
        B, S = self._check_ids(src, self.src_embed.vocab_size, "src")
        check_mask(src_mask, B, self.n_heads, 1, S, "src_mask")  # query axis 1: shared by both uses
        src_mask = self._on_params_backend(src_mask)
        x = self.src_embed.forward(src)  # (B, S, D)
        x = self.src_dropout.forward(x if self.src_pos is None else self.src_pos.forward(x))  # (tf.1)
        return self.encoder.forward(x, src_mask)  # (B, S, D)  (tf.3), (tf.4)

    def decode(self, tgt_in, memory=None, src_mask=None, tgt_mask=None, cache=None):
        """Y_0 = Dropout(sqrt(D) E_tgt[tgt_in] + PE) (tf.2); G = Decoder(Y_0, M, ...) (tf.5, tf.6);
        logits Z = G W_out + b_out, or G E^T when the embeddings are shared (tf.7).

        tgt_in: integer (B, T), values in [0, tgt_vocab), 1 <= T <= max_len; memory: (B, S, D);
        src_mask: (B, 1, 1, S) or None; tgt_mask: boolean, broadcastable to (B, 1, T, T)
        (target padding AND causal), or None -> logits (B, T, tgt_vocab).
        The causal mask is ANDed in here whatever tgt_mask holds, so a mask with padding only
        (or None) cannot let position t see targets after t.
        cache: None, or (inference, eval mode) a KVCache from ``new_cache(memory, src_mask)``:
        tgt_in are then the targets at positions cache.length .. cache.length + T - 1, and
        memory, src_mask and tgt_mask are None (the cache holds the memory's K, V and the source
        mask; target padding needs no mask: a padded position only sees earlier ones, and its
        output is ignored). The logits equal the last T rows of an uncached decode (dec.1).
        """
        self._cache = None  # a model backward needs a whole forward, not this half of one
        B, T = self._check_ids(tgt_in, self.tgt_embed.vocab_size, "tgt_in")
        start = self._check_cache(cache, B, T, memory, src_mask, tgt_mask)
        check_mask(tgt_mask, B, self.n_heads, T, T, "tgt_mask")
        src_mask, tgt_mask = self._on_params_backend(src_mask), self._on_params_backend(tgt_mask)
        xp = get_array_module(self.tgt_embed.weight.data)
        self_mask = combine_masks(tgt_mask, causal_mask(T, xp, offset=start))  # (B|1, 1, T, start + T)
        with no_backward(self) if cache is not None else nullcontext():
            y = self.tgt_embed.forward(tgt_in)  # (B, T, D)
            y = self.tgt_dropout.forward(y if self.tgt_pos is None else self.tgt_pos.forward(y, offset=start))  # (tf.2)
            g = self.decoder.forward(y, memory, self_mask, src_mask, cache)  # (B, T, D)  (tf.5), (tf.6)
            return self.output.forward(g)  # (B, T, V)  (tf.7)

    def forward(self, src, tgt_in, src_mask=None, tgt_mask=None):
        """logits = decode(tgt_in, encode(src, src_mask), src_mask, tgt_mask) (tf.1)-(tf.7).

        src: (B, S) and tgt_in: (B, T) integer ids; masks as in encode and decode
        -> logits (B, T, tgt_vocab). Caches nothing itself: every child caches its own.
        """
        B = self._check_ids(src, self.src_embed.vocab_size, "src")[0]
        if self._check_ids(tgt_in, self.tgt_embed.vocab_size, "tgt_in")[0] != B:
            raise ValueError(
                f"tgt_in: expected batch size {src.shape[0]} (the batch size of src), received shape {tgt_in.shape}"
            )
        memory = self.encode(src, src_mask)
        logits = self.decode(tgt_in, memory, src_mask, tgt_mask)
        self.save_for_backward(output=logits)
        return logits

    def backward(self, dlogits):
        """Every child in the reverse order of forward: output (tf.8), decoder (tf.9) giving
        dmemory summed over its layers (tf.10), target dropout/positions/embedding (tf.12),
        encoder fed dmemory (tf.11), source dropout/positions/embedding (tf.12).

        dlogits: (B, T, tgt_vocab) -> None (token ids have no gradient). Adds into every
        parameter's gradient; a shared embedding receives three contributions (tf.13).
        """
        self.saved(dlogits)
        dg = self.output.backward(dlogits)  # (tf.8)
        dy, dmemory = self.decoder.backward(dg)  # (tf.9), (tf.10)
        dy = self.tgt_dropout.backward(dy)
        self.tgt_embed.backward(dy if self.tgt_pos is None else self.tgt_pos.backward(dy))  # (tf.12)
        dx = self.src_dropout.backward(self.encoder.backward(dmemory))  # (tf.11)
        self.src_embed.backward(dx if self.src_pos is None else self.src_pos.backward(dx))  # (tf.12)
        return None

    # -- incremental decoding (notes/decoding.md) ------------------------------------------------
    def new_cache(self, memory, src_mask=None, capacity=None):
        """A KVCache for decoding against ``memory`` (B, S, D), the output of ``encode``.

        Computes each decoder layer's cross-attention K, V (B, H, S, Dh) once (dec.4) and keeps
        ``src_mask`` (B, 1, 1, S) (or None) for every step. The self-attention buffers start with
        ``capacity`` positions (default min(max_len, 64)) and double when full, up to max_len.
        """
        check_activations(memory, self.d_model, self.tgt_embed.weight.data, "memory")
        B, S, _ = memory.shape
        check_mask(src_mask, B, self.n_heads, 1, S, "src_mask")
        capacity = min(self.max_len, 64) if capacity is None else capacity
        attns = [(layer.self_attn.sublayer, layer.cross_attn.sublayer) for layer in self.decoder.layers]
        return KVCache(
            [self_attn.self_cache(B, self.max_len, capacity) for self_attn, _ in attns],
            [cross_attn.cross_cache(memory) for _, cross_attn in attns],
            self._on_params_backend(src_mask),
        )

    # -- checks ------------------------------------------------------------------------------------
    def _check_cache(self, cache, B, T, memory, src_mask, tgt_mask):
        """The position of the first target: 0 without a cache, cache.length with one."""
        if cache is None:
            if memory is None:
                raise ValueError("memory: expected the encoder's output (B, S, D) (or a cache from new_cache), "
                                 "received None")
            return 0
        if self.training:
            raise RuntimeError("Transformer.decode with a cache: expected eval mode (call model.eval()), "
                               "received training mode")
        check_kv_cache(cache, len(self.decoder.layers), B, cross=True)
        given = [name for name, a in (("memory", memory), ("src_mask", src_mask), ("tgt_mask", tgt_mask))
                 if a is not None]
        if given:
            raise ValueError(f"decode with a cache: expected no {', '.join(given)} (the cache holds the memory's "
                             f"K, V and the source mask; the causal rows are built here), received them")
        cache.check_room(T)
        return cache.length

    def _on_params_backend(self, mask):
        """``mask`` moved to the backend of the parameters (masks come from the CPU data pipeline)."""
        return None if mask is None else to_backend(mask, backend_name(self.src_embed.weight.data))

    def _check_ids(self, ids, vocab, name):
        """ids: integer (B, L) in [0, vocab) with 1 <= L <= max_len; returns (B, L)."""
        check_int_ids(ids, 0, vocab, name)
        check_ndim(ids, 2, name, "(B, length)")
        if ids.shape[0] == 0 or ids.shape[1] == 0:
            raise ValueError(f"{name}: expected at least one sequence of at least one token, received shape {ids.shape}")
        if ids.shape[1] > self.max_len:
            raise ValueError(f"{name}: expected a length of at most max_len={self.max_len}, received {ids.shape[1]}")
        return ids.shape
