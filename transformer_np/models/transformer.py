"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

How the pieces assemble, the order of the backward pass and the model-level gradient facts
(the memory's gradient summed over decoder layers, a shared embedding's three contributions):
notes/transformer.md.
"""

from ..backend import backend_name, get_array_module, to_backend
from ..init import make_rng
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.kv_cache import KVCache
from ..layers.linear import Linear
from ..layers.masks import causal_mask, check_mask, combine_masks
from ..layers.positional import SinusoidalPositionalEncoding
from ..layers.tied import TiedOutput
from ..module import Module
from ..validate import check_activations, check_int, check_int_ids, check_ndim
from .decoder import Decoder
from .encoder import Encoder

# The constructor arguments a config holds, with the paper's values as defaults (base model).
DEFAULTS = {
    "src_vocab": None,
    "tgt_vocab": None,
    "d_model": 512,
    "n_heads": 8,
    "n_layers": 6,
    "d_ff": 2048,
    "dropout": 0.1,
    "max_len": 5000,
    "norm": "post",
    "activation": "relu",
    "share_embeddings": False,
}


class Transformer(Module):
    """Encoder-decoder Transformer: source ids (B, S) and target ids (B, T) -> logits (B, T, V_tgt).

    Defaults are the paper's base model: post-LN, ReLU, sinusoidal positions, embeddings scaled
    by sqrt(d_model), dropout 0.1 on the sum of embedding and position (``src_dropout``,
    ``tgt_dropout``) and inside every layer, and a separate output Linear ``output``.

    ``share_embeddings=True`` is the paper's setting (section 3.4): ONE (V, D) matrix is the
    source embedding, the target embedding and, transposed, the output layer (a TiedOutput
    without bias). It needs src_vocab == tgt_vocab (a joint vocabulary). The three layers hold
    the same Parameter object, listed once by named_parameters (as "src_embed.weight"); each
    layer's backward ADDS into its .grad, so after one backward it holds the sum of the three
    contributions (tf.13) with no special case in the code.

    ``config`` is a JSON-able dict of the constructor arguments (for checkpoints);
    ``Transformer.from_config(config)`` rebuilds the same architecture.
    Incremental decoding (notes/decoding.md): ``cache = model.new_cache(memory, src_mask)``
    computes every decoder layer's cross-attention K, V once; ``model.decode_cached(tgt_new,
    cache)`` then feeds one target token (or several) at a time.
    """

    def __init__(
        self,
        src_vocab,
        tgt_vocab,
        d_model=512,
        n_heads=8,
        n_layers=6,
        d_ff=2048,
        dropout=0.1,
        max_len=5000,
        norm="post",
        activation="relu",
        share_embeddings=False,
        *,
        rng=None,
        dtype=None,
    ):
        src_vocab, tgt_vocab = check_int(src_vocab, "src_vocab"), check_int(tgt_vocab, "tgt_vocab")
        d_model, n_heads = check_int(d_model, "d_model"), check_int(n_heads, "n_heads")
        n_layers, d_ff = check_int(n_layers, "n_layers"), check_int(d_ff, "d_ff")
        max_len = check_int(max_len, "max_len")
        if share_embeddings and src_vocab != tgt_vocab:
            raise ValueError(
                "share_embeddings=True needs one joint vocabulary: expected src_vocab == tgt_vocab, "
                f"received src_vocab={src_vocab}, tgt_vocab={tgt_vocab}"
            )
        rng = make_rng(rng)
        self.config = {
            "src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "d_model": d_model, "n_heads": n_heads,
            "n_layers": n_layers, "d_ff": d_ff, "dropout": float(dropout), "max_len": max_len,
            "norm": norm, "activation": activation, "share_embeddings": bool(share_embeddings),
        }  # fmt: skip
        self.d_model, self.n_heads, self.max_len = d_model, n_heads, max_len
        stack = (n_layers, d_model, n_heads, d_ff, dropout, norm, activation)

        self.src_embed = Embedding(src_vocab, d_model, scale=True, rng=rng, dtype=dtype)
        self.src_pos = SinusoidalPositionalEncoding(d_model, max_len, dtype=dtype)
        self.src_dropout = Dropout(dropout, rng=rng)
        self.encoder = Encoder(*stack, rng=rng, dtype=dtype)
        self.tgt_embed = Embedding(tgt_vocab, d_model, scale=True, rng=rng, dtype=dtype)
        self.tgt_pos = SinusoidalPositionalEncoding(d_model, max_len, dtype=dtype)
        self.tgt_dropout = Dropout(dropout, rng=rng)
        self.decoder = Decoder(*stack, rng=rng, dtype=dtype)
        if share_embeddings:
            self.tgt_embed.weight = self.src_embed.weight  # the same Parameter object, not a copy
            self.output = TiedOutput(self.src_embed.weight)
        else:
            self.output = Linear(d_model, tgt_vocab, rng=rng, dtype=dtype)

    @classmethod
    def from_config(cls, config, rng=None, dtype=None):
        """A new model with the architecture ``config`` describes (fresh weights from ``rng``).

        Keys missing from ``config`` take the defaults; an unknown key is refused.
        """
        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"config: expected keys among {sorted(DEFAULTS)}, received unknown keys {unknown}")
        return cls(**{**DEFAULTS, **config}, rng=rng, dtype=dtype)

    # -- the two halves ---------------------------------------------------------------------
    def encode(self, src, src_mask=None):
        """X_0 = Dropout(sqrt(D) E_src[src] + PE) (tf.1); memory M = Encoder(X_0, src_mask) (tf.3, tf.4).

        src: integer (B, S), values in [0, src_vocab), S <= max_len;
        src_mask: boolean (B, 1, 1, S) source padding mask (True = real token) or None
        -> memory (B, S, D). Ids and masks on the CPU are moved to the parameters' backend.
        The children cache what their backward passes need.
        """
        self._cache = None  # a model backward needs a whole forward, not this half of one
        B, S = self._check_ids(src, self.src_embed.vocab_size, "src")
        check_mask(src_mask, B, self.n_heads, 1, S, "src_mask")  # query axis 1: shared by both uses
        src_mask = self._on_params_backend(src_mask)
        x = self.src_dropout.forward(self.src_pos.forward(self.src_embed.forward(src)))  # (tf.1)
        return self.encoder.forward(x, src_mask)  # (tf.3), (tf.4)

    def decode(self, tgt_in, memory, src_mask=None, tgt_mask=None):
        """Y_0 = Dropout(sqrt(D) E_tgt[tgt_in] + PE) (tf.2); G = Decoder(Y_0, M, ...) (tf.5, tf.6);
        logits Z = G W_out + b_out, or G E^T when the embeddings are shared (tf.7).

        tgt_in: integer (B, T), values in [0, tgt_vocab), T <= max_len; memory: (B, S, D);
        src_mask: (B, 1, 1, S) or None; tgt_mask: boolean, broadcastable to (B, 1, T, T)
        (target padding AND causal), or None -> logits (B, T, tgt_vocab).
        The causal mask is ANDed in here whatever tgt_mask holds, so a mask with padding only
        (or None) cannot let position t see targets after t.
        """
        self._cache = None  # a model backward needs a whole forward, not this half of one
        B, T = self._check_ids(tgt_in, self.tgt_embed.vocab_size, "tgt_in")
        check_mask(tgt_mask, B, self.n_heads, T, T, "tgt_mask")
        src_mask, tgt_mask = self._on_params_backend(src_mask), self._on_params_backend(tgt_mask)
        self_mask = combine_masks(tgt_mask, causal_mask(T, get_array_module(memory)))
        y = self.tgt_dropout.forward(self.tgt_pos.forward(self.tgt_embed.forward(tgt_in)))  # (tf.2)
        g = self.decoder.forward(y, memory, self_mask, src_mask)  # (tf.5), (tf.6)
        return self.output.forward(g)  # (tf.7)

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
        self.save_for_backward()
        return logits

    def backward(self, dlogits):
        """Every child in the reverse order of forward: output (tf.8), decoder (tf.9) giving
        dmemory summed over its layers (tf.10), target dropout/positions/embedding (tf.12),
        encoder fed dmemory (tf.11), source dropout/positions/embedding (tf.12).

        dlogits: (B, T, tgt_vocab) -> None (token ids have no gradient). Adds into every
        parameter's gradient; a shared embedding receives three contributions (tf.13).
        """
        self.saved()
        dg = self.output.backward(dlogits)  # (tf.8)
        dy, dmemory = self.decoder.backward(dg)  # (tf.9), (tf.10)
        self.tgt_embed.backward(self.tgt_pos.backward(self.tgt_dropout.backward(dy)))  # (tf.12)
        dx = self.encoder.backward(dmemory)  # (tf.11)
        self.src_embed.backward(self.src_pos.backward(self.src_dropout.backward(dx)))  # (tf.12)
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

    def decode_cached(self, tgt_new, cache):
        """Logits (B, T_new, tgt_vocab) of target tokens tgt_new (B, T_new) at positions
        cache.length .. cache.length + T_new - 1, reading and extending ``cache`` (dec.2)-(dec.4).

        Equal to the last T_new rows of ``decode`` on the whole target so far (dec.1). The causal
        rows of the mask are built here; target padding needs no mask (a padded target position
        only ever sees earlier positions, and its own output is ignored). More than max_len
        positions is a ValueError naming both numbers. Inference only: eval mode, no backward.
        """
        if self.training:
            raise RuntimeError("Transformer.decode_cached: expected eval mode (call model.eval()), received training mode")
        self._cache = None  # nothing here for backward
        B, T_new = self._check_ids(tgt_new, self.tgt_embed.vocab_size, "tgt_new")
        if not isinstance(cache, KVCache) or cache.cross_attn is None or cache.batch_size != B:
            got = f"batch {cache.batch_size}" if isinstance(cache, KVCache) else type(cache).__name__
            raise ValueError(f"cache: expected a KVCache from new_cache(memory, src_mask) of batch {B}, received {got}")
        start = cache.length
        cache.check_room(T_new)
        xp = get_array_module(self.tgt_embed.weight.data)
        rows = xp.arange(start, start + T_new)[:, None] >= xp.arange(start + T_new)[None, :]
        y = self.tgt_dropout.forward(self.tgt_pos.forward(self.tgt_embed.forward(tgt_new), offset=start))  # (tf.2)
        g = self.decoder.forward_cached(y, cache, rows[None, None])  # (tf.5), (tf.6): causal rows
        return self.output.forward(g)  # (tf.7)

    def _on_params_backend(self, mask):
        """``mask`` moved to the backend of the parameters (masks come from the CPU data pipeline)."""
        return None if mask is None else to_backend(mask, backend_name(self.src_embed.weight.data))

    def _check_ids(self, ids, vocab, name):
        """ids: integer (B, L) in [0, vocab) with L <= max_len; returns (B, L)."""
        check_int_ids(ids, 0, vocab, name)
        check_ndim(ids, 2, name, "(B, length)")
        if ids.shape[1] > self.max_len:
            raise ValueError(f"{name}: expected a length of at most max_len={self.max_len}, received {ids.shape[1]}")
        return ids.shape
