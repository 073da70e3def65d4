"""Parameter counts and training FLOPs: counted on a built model, and in closed form. Notes: notes/counting.md.

    count_parameters(model)                    unique parameters of a built model (a tied one once)
    gpt_parameter_count(config)                closed form for GPT(**config) (count.1-count.5)
    transformer_parameter_count(config)        closed form for Transformer(**config) (count.7-count.9)
    gpt_flops_per_token(config, T)             6 N + 12 L T d (count.10, count.11)
    transformer_flops_per_token(config, S, T)  the same convention for the encoder-decoder (count.12)

The closed forms read only the config dict (``model.config``), so they cost nothing for a
model too large to build; the tests check them against ``count_parameters`` on built models.
"""

from ..layers.embedding import Embedding
from ..layers.positional import LearnedPositionalEmbedding

_EMBEDDINGS = (Embedding, LearnedPositionalEmbedding)


def count_parameters(model, non_embedding=False):
    """Number of scalar parameters of ``model``, each Parameter object counted once.

    A tied table (the GPT token embedding that is also its output matrix, or the shared
    embedding of an encoder-decoder) is one Parameter and is counted once.
    ``non_embedding=True`` leaves out every Parameter owned by an Embedding or a
    LearnedPositionalEmbedding (token and position tables, and so a tied output matrix too).
    """
    excluded = set()
    if non_embedding:
        excluded = {id(p) for m in model.modules() if isinstance(m, _EMBEDDINGS) for p in m.parameters()}
    return sum(p.size for p in model.parameters() if id(p) not in excluded)


def _get(config, key, default=None):
    if key in config:
        return config[key]
    if default is None:
        raise KeyError(f"config: expected a key {key!r}, received keys {sorted(config)}")
    return default


def attention_parameter_count(d, bias=True):
    """Four d x d projections and, with biases, four (d,) biases: 4 d^2 + 4 d (count.1)."""
    return 4 * d * d + (4 * d if bias else 0)


def ffn_parameter_count(d, d_ff, bias=True):
    """d x d_ff and d_ff x d weights plus d_ff + d biases: 2 d d_ff + d_ff + d (count.2)."""
    return 2 * d * d_ff + (d_ff + d if bias else 0)


def layernorm_parameter_count(d):
    """A gain and a shift of d entries each: 2 d."""
    return 2 * d


def gpt_parameter_count(config, non_embedding=False):
    """Parameters of GPT(**config), in closed form.

    Per block: attention 4d^2 + 4d, feed-forward (d -> 4d -> d) 8d^2 + 5d, two LayerNorms 4d,
    so 12 d^2 + 13 d (count.3); without linear biases 12 d^2 + 4 d. Then the final LayerNorm
    2d. Non-embedding total: L (12 d^2 + 13 d) + 2 d (count.4). Embeddings: the token table
    V d (also the output matrix: tied, counted once) and the positions block_size d (count.5).
    """
    d, L = _get(config, "d_model"), _get(config, "n_layers")
    bias = _get(config, "bias", True)
    block = attention_parameter_count(d, bias) + ffn_parameter_count(d, 4 * d, bias) + 2 * layernorm_parameter_count(d)
    n = L * block + layernorm_parameter_count(d)
    if non_embedding:
        return n
    return n + _get(config, "vocab_size") * d + _get(config, "block_size") * d


def transformer_parameter_count(config, non_embedding=False):
    """Parameters of the encoder-decoder Transformer(**config), in closed form (count.7-count.9).

    Encoder layer: attention + FFN + 2 LayerNorms; decoder layer: 2 attentions + FFN + 3
    LayerNorms; norm="pre" adds one final LayerNorm to each stack. Sinusoidal positions have
    no parameters. Embeddings: src_vocab d + tgt_vocab d, and an output Linear d V + V; with
    share_embeddings one V x d matrix serves all three (the output is a TiedOutput, no bias).
    ``non_embedding=True`` leaves out the embedding tables (the separate output Linear stays,
    as in ``count_parameters``).
    """
    d, L, d_ff = _get(config, "d_model"), _get(config, "n_layers"), _get(config, "d_ff")
    attn, ffn, ln = attention_parameter_count(d), ffn_parameter_count(d, d_ff), layernorm_parameter_count(d)
    encoder = L * (attn + ffn + 2 * ln)
    decoder = L * (2 * attn + ffn + 3 * ln)
    finals = 2 * ln if _get(config, "norm", "post") == "pre" else 0
    src, tgt = _get(config, "src_vocab"), _get(config, "tgt_vocab")
    if _get(config, "share_embeddings", False):
        embeddings, output = src * d, 0
    else:
        embeddings, output = src * d + tgt * d, d * tgt + tgt
    n = encoder + decoder + finals + output
    return n if non_embedding else n + embeddings


def gpt_flops_per_token(config, T, include_logits=False):
    """Training FLOPs (forward + backward) per token of a length-T sequence: 6 N + 12 L T d (count.10, count.11).

    N = gpt_parameter_count(config, non_embedding=True). 6 N: every weight does one
    multiply-add (2 FLOPs) per token forward and two backward (the input and the weight
    gradient). 12 L T d: per layer the scores Q K^T and the product P V each cost 2 T d per
    query forward, times 3 for forward + backward; T is the full length, because the code
    computes the whole T x T score matrix and masks it afterwards.
    ``include_logits=True`` adds the tied output matrix, 6 V d, which 6 N leaves out.
    Element-wise work (softmax, GELU, LayerNorm, dropout) is not counted.
    """
    L, d = _get(config, "n_layers"), _get(config, "d_model")
    flops = 6 * gpt_parameter_count(config, non_embedding=True) + 12 * L * T * d
    if include_logits:
        flops += 6 * _get(config, "vocab_size") * d
    return flops


def transformer_flops_per_token(config, S, T, include_logits=False):
    """Training FLOPs of one (source length S, target length T) pair, per target token (count.12).

    The convention of gpt_flops_per_token applied to what each weight actually touches: the
    encoder's weights act on S positions; the decoder's on T positions, except the
    cross-attention key and value projections, which act on the S memory positions. Score
    terms: encoder self-attention 12 L S^2 d, decoder self-attention 12 L T^2 d and
    cross-attention 12 L T S d. Embeddings are left out; the output matrix too, unless
    ``include_logits`` (6 d V per target token). The total is divided by T.
    """
    d, L, d_ff = _get(config, "d_model"), _get(config, "n_layers"), _get(config, "d_ff")
    attn, ffn, ln = attention_parameter_count(d), ffn_parameter_count(d, d_ff), layernorm_parameter_count(d)
    final = ln if _get(config, "norm", "post") == "pre" else 0
    cross_kv = 2 * d * d + 2 * d  # W_k, W_v and their biases: applied to the memory
    n_source = L * (attn + ffn + 2 * ln) + final + L * cross_kv  # weights applied per source token
    n_target = L * (2 * attn - cross_kv + ffn + 3 * ln) + final  # weights applied per target token
    flops = 6 * (n_source * S + n_target * T) + 12 * L * d * (S * S + T * T + T * S)
    if include_logits:
        flops += 6 * d * _get(config, "tgt_vocab") * T
    return flops / T
