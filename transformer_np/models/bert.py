"""BERT: an encoder-only Transformer (Devlin et al., 2019). Derivation: notes/bert.md.

    ids (B, T), token types (B, T) -> word + position + token-type embeddings  (bert.1)
        -> LayerNorm -> dropout                                               (bert.2)
        -> n_layers x post-LN encoder layer (self-attention, GELU FFN)        (bert.3)
        -> hidden states H (B, T, D)
    heads on H:  pooler c = tanh(H_0 W + b)                                   (pool.3)
                 MLM logits = LN(GELU(H W_t + b_t)) W_E^T + b_V, W_E tied     (bert.4)
                 sentence embedding e = normalise(masked mean of H)           (pool.1), (pool.2)

Built only from layers/, as BertConfig describes: the stack is the library's ``Encoder``
(post-LN, every LayerNorm with the configuration's eps, 1e-12 for BERT; dropout on the
attention weights and each sub-layer's output, none on the FFN's hidden units, as BERT). ``Bert`` returns the
hidden states; ``MaskedLanguageModel`` and ``SentenceEncoder`` wrap one Bert and add a head,
each a Module with its own forward and backward (the same Bert may be in both).
Pretrained weights: ``transformer_np.pretrained.load_minilm()``.
"""

from ..backend import backend_name, get_array_module, to_backend
from ..init import make_rng, normal
from ..layers.activation import GELU
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.linear import Linear
from ..layers.pooling import L2Normalize, MaskedMeanPooling, Pooler
from ..layers.positional import LearnedPositionalEmbedding
from ..layers.tied import TiedOutput
from ..module import Module
from ..validate import check_int_ids, check_ndim
from .config import BlockConfig, choice, config_from, layer_norm, model_config, positive_int
from .encoder import Encoder

INIT_STD = 0.02  # BERT's initializer_range: every weight matrix and table ~ N(0, 0.02^2)


@model_config
class BertConfig(BlockConfig):
    """The architecture of a BERT encoder: the block fields of BlockConfig (d_model, n_heads,
    d_ff = 4 d_model, dropout, activation, norm, bias, eps) with BERT's defaults, and these:

    vocab_size       V, the number of WordPiece ids
    n_layers         encoder layers
    max_len          learned positions (512)
    type_vocab_size  token types (segments A and B: 2)
    pooler           the [CLS] pooler, tanh(H_0 W + b) (pool.3)
    mlm_head         the masked-language-model head, its output matrix tied to the word table (bert.4)

    Defaults that differ from a BlockConfig's: activation "gelu" (exact), eps 1e-12, dropout
    0.1 (BERT's hidden and attention dropout). ``norm`` must be "post": BERT normalises after
    each residual sum, and its embedding LayerNorm stands where a pre-LN stack would need none.
    ``positions`` must be "learned" (BERT's table of max_len rows; the other schemes of
    notes/positional.md are the GPT's and the encoder-decoder's).
    ``dropout`` also acts on the normalised embeddings (bert.2).
    """

    vocab_size: int
    n_layers: int
    max_len: int = 512
    type_vocab_size: int = 2
    pooler: bool = True
    mlm_head: bool = True
    activation: str = "gelu"
    eps: float = 1e-12
    dropout: float = 0.1
    positions: str = "learned"

    def validate(self):
        super().validate()
        for name in ("vocab_size", "n_layers", "max_len", "type_vocab_size"):
            positive_int(self, name)
        choice(self, "norm", ("post",))
        choice(self, "positions", ("learned",))
        for name in ("pooler", "mlm_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"BertConfig: expected {name} True or False, received {getattr(self, name)!r}")


class MaskedLMHead(Module):
    """BERT's MLM head: t = LN(GELU(H W_t + b_t)), logits = t W_E^T + b_V (bert.4), with W_E the
    word-embedding table itself (``decoder`` is a TiedOutput with its own bias b_V)."""

    def __init__(self, config, word_table, *, rng, dtype):
        self.dense = Linear(config.d_model, config.d_model, rng=rng, dtype=dtype)
        self.activation = GELU(approximate="tanh" if config.activation == "gelu_tanh" else "none")
        self.norm = layer_norm(config, dtype=dtype)
        self.decoder = TiedOutput(word_table, bias=True)  # the same Parameter (tie.1)

    def forward(self, h):
        """h: (B, T, D) -> logits (B, T, V) (bert.4). Caches nothing itself."""
        t = self.norm.forward(self.activation.forward(self.dense.forward(h)))  # (B, T, D)  (bert.4)
        z = self.decoder.forward(t)  # (B, T, V)  (bert.4)
        self.save_for_backward(output=z)
        return z

    def backward(self, dz):
        """The four layers in reverse (bert.8): dt = dz W_E (tie.2), then LayerNorm, GELU and Linear.

        dz: (B, T, V) -> dh: (B, T, D); adds dz^T t into the shared table's gradient (tie.3).
        """
        self.saved(dz)
        dt = self.decoder.backward(dz)  # (bert.8)
        return self.dense.backward(self.activation.backward(self.norm.backward(dt)))  # (bert.8)


class Bert(Module):
    """Encoder-only Transformer: token ids (B, T) -> hidden states (B, T, D).

    Built from a BertConfig: ``Bert(config)`` or ``Bert(vocab_size=..., n_layers=..., ...)``.
    Layout (dotted parameter names): token_embedding, position_embedding, token_type_embedding,
    embedding_norm, encoder.layers.0 ... (each .self_attn and .ffn, post-LN), then ``pooler``
    (or None) and ``mlm_head`` (or None), whose output matrix is token_embedding.weight.

    Initialisation as BERT: every weight matrix and embedding table ~ N(0, 0.02^2), biases 0,
    LayerNorm gains 1 and shifts 0.
    """

    def __init__(self, config=None, *, rng=None, dtype=None, **fields):
        self.config = config = config_from(BertConfig, config, fields)
        rng = make_rng(rng)
        self.token_embedding = Embedding(config.vocab_size, config.d_model, rng=rng, dtype=dtype)
        self.position_embedding = LearnedPositionalEmbedding(config.d_model, config.max_len, rng=rng, dtype=dtype)
        self.token_type_embedding = Embedding(config.type_vocab_size, config.d_model, rng=rng, dtype=dtype)
        self.embedding_norm = layer_norm(config, dtype=dtype)
        self.dropout = Dropout(config.dropout, rng=rng)
        self.encoder = Encoder(config, rng=rng, dtype=dtype, ffn_dropout=0.0)  # BERT: no dropout inside the FFN
        self.pooler = Pooler(config.d_model, rng=rng, dtype=dtype) if config.pooler else None
        self.mlm_head = MaskedLMHead(config, self.token_embedding.weight, rng=rng, dtype=dtype) if config.mlm_head else None
        for p in self.parameters():
            if p.data.ndim == 2:
                p.data[...] = normal(p.shape, INIT_STD, rng, p.dtype)

    vocab_size = property(lambda self: self.config.vocab_size)
    max_len = property(lambda self: self.config.max_len)
    n_layers = property(lambda self: self.config.n_layers)
    n_heads = property(lambda self: self.config.n_heads)
    d_model = property(lambda self: self.config.d_model)

    def forward(self, ids, token_type_ids=None, attention_mask=None):
        """Hidden states of every token (bert.1)-(bert.3).

        ids: integer (B, T), values in [0, V), 1 <= T <= max_len. token_type_ids: integer
        (B, T) in [0, type_vocab_size), or None (all 0: one segment). attention_mask: (B, T),
        True / 1 = a real token, 0 = padding (no query attends to a padding key), or None.
        Returns H (B, T, D) in the parameters' dtype. Caches nothing itself.
        """
        B, T = self._check_ids(ids, token_type_ids)
        mask = self.key_mask(attention_mask, B, T)
        if token_type_ids is None:
            token_type_ids = get_array_module(ids).zeros_like(ids)
        x = self.token_embedding.forward(ids)  # (B, T, D)  (bert.1)
        x += self.token_type_embedding.forward(token_type_ids)  # (bert.1)
        x = self.position_embedding.forward(x)  # (bert.1)
        x = self.dropout.forward(self.embedding_norm.forward(x))  # (B, T, D)  (bert.2)
        h = self.encoder.forward(x, mask)  # (B, T, D)  (bert.3)
        self.save_for_backward(output=h)
        return h

    def backward(self, dh):
        """The forward in reverse (bert.5)-(bert.7); returns None (ids have no gradient).

        dh: (B, T, D). The word table's gradient is added to whatever a tied MLM head added.
        """
        self.saved(dh)
        dx = self.encoder.backward(dh)  # (bert.5)
        dx = self.embedding_norm.backward(self.dropout.backward(dx))  # (bert.6)
        dx = self.position_embedding.backward(dx)  # (bert.7): pos.7
        self.token_type_embedding.backward(dx)  # (bert.7): emb.3 into the type table
        self.token_embedding.backward(dx)  # (bert.7): emb.3 into the word table
        return None

    # -- checks ------------------------------------------------------------------------------------
    def key_mask(self, attention_mask, B, T):
        """The (B, 1, 1, T) boolean key mask of a (B, T) token mask (None stays None)."""
        if attention_mask is None:
            return None
        if getattr(attention_mask, "shape", None) != (B, T):
            raise ValueError(f"attention_mask: expected shape {(B, T)} (one entry per token of ids), "
                             f"received {getattr(attention_mask, 'shape', type(attention_mask).__name__)}")
        xp = get_array_module(attention_mask)
        if attention_mask.dtype != bool and not xp.isin(attention_mask, (0, 1)).all():
            raise ValueError("attention_mask: expected booleans or 0/1 (1 = a real token), received other values")
        mask = to_backend(attention_mask, backend_name(self.embedding_norm.weight.data))  # masks follow the model
        return mask.astype(bool)[:, None, None, :]

    def _check_ids(self, ids, token_type_ids):
        check_ndim(ids, 2, "ids", "(B, T)")
        check_int_ids(ids, 0, self.vocab_size, "ids")
        B, T = ids.shape
        if B == 0 or T == 0:
            raise ValueError(f"ids: expected at least one sequence of at least one token, received shape {ids.shape}")
        if T > self.max_len:
            raise ValueError(f"ids: expected a sequence length of at most max_len={self.max_len}, received {T}")
        if token_type_ids is not None:
            if getattr(token_type_ids, "shape", None) != ids.shape:
                raise ValueError(f"token_type_ids: expected the shape of ids {ids.shape}, "
                                 f"received {getattr(token_type_ids, 'shape', type(token_type_ids).__name__)}")
            check_int_ids(token_type_ids, 0, self.config.type_vocab_size, "token_type_ids")
        return B, T


class MaskedLanguageModel(Module):
    """A Bert with its MLM head: ids (B, T) -> logits (B, T, V) over the vocabulary (bert.4).

    ``bert`` must have been built with ``mlm_head=True``. Train with the cross-entropy of the
    masked positions only (ignore_index for the others): recipes/mlm.py.
    """

    def __init__(self, bert):
        if not isinstance(bert, Bert) or bert.mlm_head is None:
            raise ValueError("bert: expected a Bert built with mlm_head=True, received "
                             + (f"{type(bert).__name__}" if not isinstance(bert, Bert) else "one without an MLM head"))
        self.bert = bert
        self.config = bert.config

    def forward(self, ids, token_type_ids=None, attention_mask=None):
        """ids, token_type_ids, attention_mask as Bert.forward -> logits (B, T, V). Caches nothing itself."""
        h = self.bert.forward(ids, token_type_ids, attention_mask)  # (B, T, D)  (bert.1)-(bert.3)
        z = self.bert.mlm_head.forward(h)  # (B, T, V)  (bert.4)
        self.save_for_backward(output=z)
        return z

    def backward(self, dz):
        """Head, then body (bert.8), (bert.5)-(bert.7); the tied table sums both terms (tie.5)."""
        self.saved(dz)
        self.bert.backward(self.bert.mlm_head.backward(dz))  # (bert.8), then (bert.5)-(bert.7)
        return None


class SentenceEncoder(Module):
    """A Bert with sentence-transformers' head: e = normalise(masked mean of H) (pool.1), (pool.2).

    ids (B, T) and the token mask -> unit-length sentence embeddings (B, D); the cosine
    similarity of two sentences is then the dot product of their rows.
    """

    def __init__(self, bert, normalize=True):
        if not isinstance(bert, Bert):
            raise TypeError(f"bert: expected a Bert, received {type(bert).__name__}")
        self.bert = bert
        self.config = bert.config
        self.pool = MaskedMeanPooling()
        self.normalize = L2Normalize() if normalize else None

    def forward(self, ids, token_type_ids=None, attention_mask=None):
        """ids, token_type_ids, attention_mask as Bert.forward (the mask also chooses the tokens
        averaged; None: all of them) -> e (B, D). Caches nothing itself."""
        h = self.bert.forward(ids, token_type_ids, attention_mask)  # (B, T, D)
        if attention_mask is None:
            attention_mask = get_array_module(h).ones(ids.shape, dtype=bool)
        e = self.pool.forward(h, to_backend(attention_mask, backend_name(h)))  # (B, D)  (pool.1)
        if self.normalize is not None:
            e = self.normalize.forward(e)  # (B, D)  (pool.2)
        self.save_for_backward(output=e)
        return e

    def backward(self, de):
        """(pool.5), (pool.4), then the body (bert.5)-(bert.7); returns None."""
        self.saved(de)
        if self.normalize is not None:
            de = self.normalize.backward(de)  # (pool.5)
        self.bert.backward(self.pool.backward(de))  # (pool.4), then (bert.5)-(bert.7)
        return None
