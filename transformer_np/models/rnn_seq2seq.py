"""A recurrent encoder-decoder (Sutskever et al., 2014, with GRUs): the baseline attention replaced.

The whole source reaches the decoder through one vector, the encoder's last state (rnn.18),
and the gradient of source position t must travel S - t steps back through the encoder
(rnn.19). notes/rnn.md derives it; notebooks/01_why_attention.ipynb measures it against the
Transformer on the copy and reverse tasks.

The model has the Transformer's interface (``forward(src, tgt_in, src_mask, tgt_mask)``,
``encode``, ``decode``), so the same Trainer, recipes, ``greedy_decode`` and evaluation drive
it; the "memory" that ``encode`` returns is the (B, N) state instead of (B, S, D) vectors.
"""

from ..backend import get_array_module
from ..init import make_rng
from ..layers.embedding import Embedding
from ..layers.gru import GRU
from ..layers.linear import Linear
from ..module import Module
from ..validate import check_int_ids, check_ndim
from .config import ModelConfig, config_from, model_config, positive_int


@model_config
class GRUSeq2SeqConfig(ModelConfig):
    """The architecture of a GRUSeq2Seq: the two vocabularies, the embedding width d_embed and
    the GRUs' state size hidden_size (N)."""

    src_vocab: int
    tgt_vocab: int
    d_embed: int = 32
    hidden_size: int = 128

    def validate(self):
        super().validate()
        for name in self.field_names():
            positive_int(self, name)


class GRUSeq2Seq(Module):
    """Source ids (B, S) and target ids (B, T) -> logits (B, T, tgt_vocab), through one (B, N) state.

    ``src_embed``, ``tgt_embed``: Embedding(vocab, d_embed); ``encoder``, ``decoder``:
    GRU(d_embed, hidden_size); ``output``: Linear(hidden_size, tgt_vocab). No attention, no
    positional encoding (the recurrence itself orders the positions). Built from a
    GRUSeq2SeqConfig, or its fields as keywords, as the other families.
    """

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        self.config = config = config_from(GRUSeq2SeqConfig, config, fields)
        src_vocab, tgt_vocab, d_embed, hidden_size = config.src_vocab, config.tgt_vocab, config.d_embed, config.hidden_size
        rng = make_rng(rng)
        self.src_embed = Embedding(src_vocab, d_embed, rng=rng, dtype=dtype)
        self.encoder = GRU(d_embed, hidden_size, rng=rng, dtype=dtype)
        self.tgt_embed = Embedding(tgt_vocab, d_embed, rng=rng, dtype=dtype)
        self.decoder = GRU(d_embed, hidden_size, rng=rng, dtype=dtype)
        self.output = Linear(hidden_size, tgt_vocab, rng=rng, dtype=dtype)

    def encode(self, src, src_mask=None):
        """s = the encoder's last state (rnn.18): src (B, S) ids, src_mask boolean (B, 1, 1, S) (the
        Transformer's key-padding mask; True = real token) or None -> s (B, N). A padded step
        carries the state (rnn.7), so s is the state after each row's last real token."""
        self._cache = None  # a model backward needs a whole forward, not this half of one
        check_int_ids(src, 0, self.src_embed.vocab_size, "src")
        check_ndim(src, 2, "src", "(B, S)")
        B, S = src.shape
        mask = None
        if src_mask is not None:
            if tuple(src_mask.shape) != (B, 1, 1, S) or src_mask.dtype != bool:
                raise ValueError(f"src_mask: expected a boolean (B, 1, 1, S) = {(B, 1, 1, S)} padding mask, "
                                 f"received {src_mask.dtype} of shape {tuple(src_mask.shape)}")
            mask = src_mask.reshape(B, S)
        H_enc = self.encoder.forward(self.src_embed.forward(src), mask=mask)  # (B, S, N)
        return H_enc[:, -1]  # (B, N)

    def decode(self, tgt_in, state, src_mask=None, tgt_mask=None):
        """Logits Z of (rnn.18): tgt_in (B, T) ids, state (B, N) from ``encode`` -> (B, T, tgt_vocab).

        ``src_mask`` and ``tgt_mask`` are accepted for the Transformer's interface and not used:
        the decoder never sees the source positions, and a recurrence is causal by construction
        (position t reads only the tokens up to t), so target padding cannot reach a real position.
        """
        self._cache = None
        check_int_ids(tgt_in, 0, self.tgt_embed.vocab_size, "tgt_in")
        check_ndim(tgt_in, 2, "tgt_in", "(B, T)")
        G = self.decoder.forward(self.tgt_embed.forward(tgt_in), state)  # (B, T, N)
        return self.output.forward(G)  # (B, T, tgt_vocab)

    def forward(self, src, tgt_in, src_mask=None, tgt_mask=None):
        """logits = decode(tgt_in, encode(src, src_mask)) (rnn.18).

        src (B, S), tgt_in (B, T) integer ids; masks as in encode and decode -> (B, T, tgt_vocab).
        Caches the source length S; the children cache their own values.
        """
        if getattr(tgt_in, "ndim", 0) == 2 and getattr(src, "ndim", 0) == 2 and tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_in: expected batch size {src.shape[0]} (the batch size of src), "
                             f"received shape {tgt_in.shape}")
        logits = self.decode(tgt_in, self.encode(src, src_mask))
        self.save_for_backward(src.shape[1], output=logits)
        return logits

    def backward(self, dlogits):
        """The output layer (lin.2)-(lin.4), the decoder through time giving dh0 (rnn.17), the target
        embedding, then the encoder fed dh0 at its last position only (rnn.19), the source embedding.

        dlogits: (B, T, tgt_vocab) -> None (token ids have no gradient). Adds into every parameter.
        """
        (S,) = self.saved(dlogits)
        dG = self.output.backward(dlogits)  # (B, T, N)
        dy, ds = self.decoder.backward(dG)  # (B, T, d_embed), (B, N): (rnn.17)
        self.tgt_embed.backward(dy)
        xp = get_array_module(ds)
        dH_enc = xp.zeros((ds.shape[0], S, ds.shape[1]), dtype=ds.dtype)  # (B, S, N)
        dH_enc[:, -1] = ds  # (rnn.19)
        self.src_embed.backward(self.encoder.backward(dH_enc))
        return None
