"""Gradient cases for pooling (notes/pooling.md) and the whole BERT (notes/bert.md).

Pooling: B, T, D = 3, 5, 7 from the catalogue, a padded batch of lengths 5, 2, 4, so that
padding rows must receive exactly zero gradient. BERT: a tiny float64 model (vocabulary 13,
8 positions, 2 token types, 2 layers, 2 heads, d_model 10, d_ff 14) on B = 2 sequences of
T = 6 < 8 tokens, padded (lengths 6 and 4), with both token types present; parameters redrawn
at unit scale so that no term hides behind BERT's N(0, 0.02^2) initialisation.
"""

import numpy as np

from ..layers.pooling import L2Normalize, MaskedMeanPooling, Pooler, Tanh
from ..models.bert import Bert, MaskedLanguageModel, SentenceEncoder
from . import WHOLE_MODEL_TOLERANCE, B, D, T, GradCase

LENGTHS = np.array([T, 2, 4])


def _token_mask(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (B, T) boolean


def _mean_pooling(rng, dtype):
    return MaskedMeanPooling(), (rng.standard_normal((B, T, D)).astype(dtype),), {"mask": _token_mask(LENGTHS, T)}


def _normalize(rng, dtype):
    s = rng.standard_normal((B, D)) * np.array([[0.3], [1.0], [4.0]])  # rows of different lengths
    return L2Normalize(), (s.astype(dtype),), {}


def _tanh(rng, dtype):
    return Tanh(), (rng.standard_normal((B, T, D)).astype(dtype),), {}


def _pooler(rng, dtype):
    layer = Pooler(D, rng=rng, dtype=dtype)
    layer.dense.bias.data[...] = 0.3 * rng.standard_normal(D)
    return layer, (rng.standard_normal((B, T, D)).astype(dtype),), {}


CASES = [
    GradCase("MaskedMeanPooling (padded)", _mean_pooling, {"h": ("pool.4",)}, names=("h",)),
    GradCase("L2Normalize", _normalize, {"s": ("pool.5",)}, names=("s",)),
    GradCase("Tanh", _tanh, {"x": ("pool.6",)}, names=("x",)),
    GradCase(
        "Pooler (first token, dense, tanh)",
        _pooler,
        {"h": ("pool.6", "pool.7"), "dense.weight": ("pool.6",), "dense.bias": ("pool.6",)},
        names=("h",),
    ),
]


# -- the whole BERT ---------------------------------------------------------------------------------
BERT_CONFIG = {"vocab_size": 13, "max_len": 8, "n_layers": 2, "n_heads": 2, "d_model": 10, "d_ff": 14}
BERT_B, BERT_T = 2, 6
BERT_LENGTHS = np.array([BERT_T, 4])


def _unit_scale(model, rng):
    """Tables ~ N(0, 1), matrices ~ N(0, 1/fan_in); gains 1 + noise, shifts and biases noise."""
    for name, p in model.named_parameters():
        if p.data.ndim == 2:
            fan_in = 1 if name.endswith("embedding.weight") else p.shape[0]
            p.data[...] = rng.standard_normal(p.shape) / np.sqrt(fan_in)
        else:
            gain = name.endswith("norm.weight")
            p.data[...] = (1.0 if gain else 0.0) + 0.3 * rng.standard_normal(p.shape)


def _bert_inputs(rng):
    ids = rng.integers(0, BERT_CONFIG["vocab_size"], size=(BERT_B, BERT_T))
    ids[0, 1] = ids[1, 3] = ids[0, 4]  # a repeated token
    types = (np.arange(BERT_T)[None, :] >= np.array([[3], [2]])).astype(np.int64)  # segments A then B
    return ids, {"token_type_ids": types, "attention_mask": _token_mask(BERT_LENGTHS, BERT_T)}


def _mlm(dropout):
    def build(rng, dtype):
        bert = Bert(**BERT_CONFIG, dropout=dropout, pooler=False, rng=rng, dtype=dtype).train()
        model = MaskedLanguageModel(bert)
        _unit_scale(model, rng)
        ids, kwargs = _bert_inputs(rng)
        return model, (ids,), kwargs

    return build


def _sentence(rng, dtype):
    bert = Bert(**BERT_CONFIG, dropout=0.0, pooler=False, mlm_head=False, rng=rng, dtype=dtype)
    model = SentenceEncoder(bert)
    _unit_scale(model, rng)
    ids, kwargs = _bert_inputs(rng)
    return model, (ids,), kwargs


def _labels(build, head):
    """{parameter name: labels}: every parameter's gradient passes through ``head``'s equations,
    then the encoder (bert.5); the embedding LayerNorm adds (bert.6), the tables (bert.6, bert.7);
    the word table of the MLM model also receives the head's tied term (tie.5)."""
    model = build(np.random.default_rng(0), np.float64)[0]
    labels = {}
    for name, _ in model.named_parameters():
        part = name.split(".")[1]
        if part == "mlm_head":
            labels[name] = ("bert.8",)
        elif part == "encoder":
            labels[name] = (*head, "bert.5")
        elif part == "embedding_norm":
            labels[name] = (*head, "bert.5", "bert.6")
        else:
            labels[name] = (*head, "bert.5", "bert.6", "bert.7")
        if name == "bert.token_embedding.weight" and "bert.8" in head:
            labels[name] = (*labels[name], "tie.5")
    return labels


CASES += [
    GradCase("BERT masked LM (padding, two segments)", _mlm(0.0), _labels(_mlm(0.0), ("bert.8",)),
             tol=WHOLE_MODEL_TOLERANCE),
    GradCase("BERT masked LM (dropout 0.1, train mode)", _mlm(0.1), _labels(_mlm(0.1), ("bert.8",)),
             tol=WHOLE_MODEL_TOLERANCE),
    GradCase("BERT sentence embedding (mean pooling, normalised)", _sentence,
             _labels(_sentence, ("pool.5", "pool.4")), tol=WHOLE_MODEL_TOLERANCE),
]
