"""Parameters, training FLOPs and KV-cache memory, computed from a model's configuration.
Notes: notes/counting.md (count.k) and notes/decoding.md (dec.7, dec.8).

    count_parameters(model)                        unique parameters of a built model (a tied one once)
    parameter_count(config)                        the same number from the configuration alone
    flops_per_token(config, T)                     GPT: 6 N + 12 L T d (count.10, count.11)
    flops_per_token(config, T, source_length=S)    encoder-decoder (count.12)
    kv_cache_bytes(config, B, t, itemsize, S=None) the KV cache of t positions (dec.7, dec.8)
    kv_cache_bytes(config, B, t, dtype="int8")     ... in a format: float32/16, bfloat16, int8 (quant.8)

The pieces (one attention layer, one feed-forward network, one LayerNorm) are written once,
from the configuration's fields, and each family adds them up in one function, so a field that
changes a layer changes one line here. The formulas cost nothing for a model too large to
build; tests/conftest.py checks ``parameter_count`` against ``count_parameters`` for every
model the tests build.
"""

from ..layers.embedding import Embedding
from ..layers.positional import LearnedPositionalEmbedding
from ..layers.t5_bias import T5_BUCKETS, T5RelativeBias
from .bert import BertConfig
from .gpt import GPTConfig
from .transformer import TransformerConfig

_EMBEDDINGS = (Embedding, LearnedPositionalEmbedding, T5RelativeBias)  # T5's table: its position embedding


def count_parameters(model, non_embedding=False):
    """Number of scalar parameters of ``model``, each Parameter object counted once.

    A tied table (the GPT token embedding that is also its output matrix, or the shared
    embedding of an encoder-decoder) is one Parameter and is counted once.
    ``non_embedding=True`` leaves out every Parameter owned by an Embedding, a
    LearnedPositionalEmbedding or a T5RelativeBias (token and position tables, and so a tied
    output matrix too).
    """
    excluded = set()
    if non_embedding:
        excluded = {id(p) for m in model.modules() if isinstance(m, _EMBEDDINGS) for p in m.parameters()}
    return sum(p.size for p in model.parameters() if id(p) not in excluded)


# -- the pieces -----------------------------------------------------------------------------------


def key_value_width(config):
    """Columns of W_k and of W_v: the heads that keys and values have, times Dh (gqa.1)."""
    return config.n_kv_heads * config.d_head


def key_value_parameters(config):
    """W_k and W_v, d x (key-value width) each, with their biases."""
    kv = key_value_width(config)
    return 2 * config.d_model * kv + (2 * kv if config.bias else 0)


def attention_parameters(config):
    """W_q and W_o (d x d), W_k and W_v, and with biases their bias vectors: 4 d^2 + 4 d (count.1),
    or 2 d^2 + 2 d Hkv Dh + 2 d + 2 Hkv Dh with fewer key/value heads (gqa.7)."""
    d = config.d_model
    return 2 * d * d + (2 * d if config.bias else 0) + key_value_parameters(config)


def feedforward_parameters(config):
    """d x d_ff and d_ff x d weights plus d_ff + d biases: 2 d d_ff + d_ff + d (count.2)."""
    d, d_ff = config.d_model, config.d_ff
    return 2 * d * d_ff + (d_ff + d if config.bias else 0)


def position_parameters(config, max_len):
    """The learned position parameters of one stack: a (max_len, d) table for "learned", one
    (buckets, H) T5 table shared by the stack's layers for "t5", none for the other schemes."""
    if config.positions == "learned":
        return max_len * config.d_model
    if config.positions == "t5":
        return T5_BUCKETS * config.n_heads
    return 0


def layernorm_parameters(config):
    """A gain and a shift of d entries each: 2 d."""
    return 2 * config.d_model


# -- the families ---------------------------------------------------------------------------------


def parameter_count(config, non_embedding=False):
    """Parameters of the model ``config`` describes, in closed form; ``non_embedding=True``
    leaves out the embedding tables as ``count_parameters`` does.

    GPT: a block is attention + feed-forward + 2 LayerNorms (count.3), L blocks and the final
    LayerNorm are N (count.4); the token table (also the output matrix, tied) and the position
    table come on top (count.5). Encoder-decoder: encoder layer (count.7), decoder layer
    (count.8), a final LayerNorm per stack for pre-LN, the embeddings, and a separate output
    Linear unless the embeddings are shared (count.9). BERT: the word, position and token-type
    tables (bert.1), the embedding LayerNorm, L post-LN layers, the optional pooler (d^2 + d)
    and MLM head (d^2 + d, a LayerNorm, and the output bias of V entries; its matrix is the
    tied word table).
    """
    c = config
    attn, ffn, ln = attention_parameters(c), feedforward_parameters(c), layernorm_parameters(c)
    if isinstance(c, GPTConfig):
        n = c.n_layers * (attn + ffn + 2 * ln) + ln  # (count.3), (count.4)
        embeddings = c.vocab_size * c.d_model + position_parameters(c, c.block_size)  # (count.5)
    elif isinstance(c, TransformerConfig):
        finals = 2 * ln if c.norm == "pre" else 0
        output = 0 if c.share_embeddings else c.d_model * c.tgt_vocab + c.tgt_vocab
        n = c.n_layers * (attn + ffn + 2 * ln) + c.n_layers * (2 * attn + ffn + 3 * ln) + finals + output
        embeddings = c.src_vocab * c.d_model + (0 if c.share_embeddings else c.tgt_vocab * c.d_model)  # (count.9)
        embeddings += 2 * position_parameters(c, c.max_len)  # the encoder's and the decoder's
    elif isinstance(c, BertConfig):
        n = ln + c.n_layers * (attn + ffn + 2 * ln)  # embedding LayerNorm, post-LN layers (count.3)
        n += (c.d_model * c.d_model + c.d_model) if c.pooler else 0  # pooler dense (pool.3)
        n += (c.d_model * c.d_model + c.d_model + ln + c.vocab_size) if c.mlm_head else 0  # (bert.4), tied table
        embeddings = (c.vocab_size + c.max_len + c.type_vocab_size) * c.d_model  # (bert.1)
    else:
        raise TypeError(f"config: expected a GPTConfig, TransformerConfig or BertConfig, received {type(c).__name__}")
    return n if non_embedding else n + embeddings


def flops_per_token(config, T, source_length=None, include_logits=False):
    """Training FLOPs (forward + backward) per target token of a length-T sequence.

    GPT: 6 N + 12 L T d (count.10, count.11), N = parameter_count(config, non_embedding=True).
    6 N: every weight does one multiply-add (2 FLOPs) per token forward and two backward.
    12 L T d: per layer the scores Q K^T and the product P V each cost 2 T d per query forward,
    times 3 for forward + backward; T is the full length, because the code computes the whole
    T x T score matrix and masks it afterwards.

    Encoder-decoder (``source_length`` = S): the same convention applied to what each weight
    touches (count.12): the encoder's weights act on S positions, the decoder's on T, except the
    cross-attention key and value projections, which act on the S memory positions; score
    terms 12 L d (S^2 + T^2 + T S). Embeddings are left out, and so is the output matrix unless
    ``include_logits`` (6 d V per target token). Element-wise work is not counted.

    Every ``config.attention`` kind is counted as the standard path (an upper bound for "window",
    which scores T w pairs, and for "tiled" under a causal mask, which skips the tiles in the
    future; "linear" and "performer" differ, notes/linear_attention.md).
    """
    c, L, d = config, config.n_layers, config.d_model
    if isinstance(c, GPTConfig):
        flops = 6 * parameter_count(c, non_embedding=True) + 12 * L * T * d  # (count.10), (count.11)
        return flops + (6 * c.vocab_size * d if include_logits else 0)
    if not isinstance(c, TransformerConfig) or source_length is None:
        raise TypeError(f"flops_per_token: expected a GPTConfig, or a TransformerConfig with source_length, "
                        f"received {type(c).__name__} with source_length={source_length!r}")
    S = source_length
    attn, ffn, ln = attention_parameters(c), feedforward_parameters(c), layernorm_parameters(c)
    final = ln if c.norm == "pre" else 0
    cross_kv = key_value_parameters(c)  # applied to the memory, once per source position
    n_source = L * (attn + ffn + 2 * ln) + final + L * cross_kv
    n_target = L * (2 * attn - cross_kv + ffn + 3 * ln) + final
    flops = 6 * (n_source * S + n_target * T) + 12 * L * d * (S * S + T * T + T * S)  # (count.12)
    if include_logits:
        flops += 6 * d * c.tgt_vocab * T
    return flops / T


CACHE_FORMATS = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}  # bytes per number
INT8_SCALE_BYTES = 4  # one float32 scale per (row, head, position) of K and of V (quant.8)


def kv_cache_bytes(config, batch_size, length, itemsize=None, source_length=None, dtype=None):
    """Bytes of the KV cache after ``length`` positions: K and V, (B, heads, length, Dh) each,
    in every layer (dec.7), (gqa.8); an encoder-decoder adds the cross-attention K and V of its
    ``source_length`` memory positions (dec.8). ``itemsize``: bytes per number (4 in float32);
    or ``dtype``, one of CACHE_FORMATS: "int8" adds a float32 scale per head and position to
    every K and V row (quant.8)."""
    if (itemsize is None) == (dtype is None):
        raise TypeError(f"kv_cache_bytes: expected itemsize or dtype (one of them), received itemsize={itemsize!r}, "
                        f"dtype={dtype!r}")
    if dtype is not None and str(dtype) not in CACHE_FORMATS:
        raise ValueError(f"kv_cache_bytes: expected dtype one of {', '.join(CACHE_FORMATS)}, received {dtype!r}")
    scales = 0 if str(dtype) != "int8" else 2 * config.n_layers * batch_size * config.n_kv_heads * INT8_SCALE_BYTES
    itemsize = CACHE_FORMATS[str(dtype)] if dtype is not None else itemsize
    per_position = 2 * config.n_layers * batch_size * key_value_width(config) * itemsize + scales  # (dec.7), (quant.8)
    if isinstance(config, TransformerConfig) != (source_length is not None):
        raise TypeError(f"kv_cache_bytes: expected source_length for an encoder-decoder and only for one, "
                        f"received {type(config).__name__} with source_length={source_length!r}")
    if getattr(config, "attention", "standard") == "window":
        length = min(length, config.window)  # (win.5): a rolling cache keeps the last window positions
    return per_position * (length + (source_length or 0))  # (dec.7) + (dec.8)
