"""Gradient cases for the tied output layer and the whole GPT. Notes: notes/tied.md, notes/gpt.md.

Tied: B, T, D = 3, 5, 7 from the catalogue and a vocabulary of V = 11. GPT: a tiny float64
model (vocabulary 13, block 7, 2 layers, 2 heads, d_model 10) on B = 2 sequences of T = 6 < 7
tokens, so that the positional table has a row no position uses.
"""

import numpy as np

from ..layers.embedding import Embedding
from ..layers.tied import TiedOutput
from ..models.gpt import GPT
from ..module import Module
from . import WHOLE_MODEL_TOLERANCE, B, D, T, GradCase

V = 11


class _EmbeddingAndTiedOutput(Module):
    """Test-only model z = (x + Embedding(ids)) W^T, with W the embedding's own Parameter.

    The one table reaches the output along two paths, the lookup and the logits, so the check
    of ``embedding.weight`` verifies that the two gradients are summed (tie.5). ``x`` is a float
    input so that dH (tie.2) is checked through the same model.
    """

    def __init__(self, rng, dtype):
        self.embedding = Embedding(V, D, rng=rng, dtype=dtype)
        self.output = TiedOutput(self.embedding.weight)

    def forward(self, x, ids):
        z = self.output.forward(x + self.embedding.forward(ids))  # (B, T, V)
        self.save_for_backward(output=z)
        return z

    def backward(self, dz):
        self.saved(dz)
        dh = self.output.backward(dz)  # adds dZ^T H into the shared weight.grad (tie.3) ...
        self.embedding.backward(dh)  # ... and the embedding adds E^T dX on top (emb.3): (tie.5)
        return dh


def _ids(rng):
    ids = rng.integers(0, V, size=(B, T))
    ids[0, 0] = ids[2, 4] = 3  # a repeated token: its row gets two lookup gradients
    return ids


def _tied(bias):
    def build(rng, dtype):
        table = Embedding(V, D, rng=rng, dtype=dtype)
        layer = TiedOutput(table.weight, bias=bias)
        if bias:
            layer.bias.data[...] = 0.3 * rng.standard_normal(V)
        return layer, (rng.standard_normal((B, T, D)).astype(dtype),), {}

    return build


def _embedding_and_tied(rng, dtype):
    model = _EmbeddingAndTiedOutput(rng, dtype)
    return model, (rng.standard_normal((B, T, D)).astype(dtype), _ids(rng)), {}


CASES = [
    GradCase("TiedOutput", _tied(bias=False), {"h": ("tie.2",), "weight": ("tie.3",)}, names=("h",)),
    GradCase(
        "TiedOutput (bias)",
        _tied(bias=True),
        {"h": ("tie.2",), "weight": ("tie.3",), "bias": ("tie.4",)},
        names=("h",),
    ),
    GradCase(
        "Embedding + TiedOutput (one shared weight)",
        _embedding_and_tied,
        {"x": ("tie.2",), "embedding.weight": ("tie.5", "emb.3", "tie.3")},
        names=("x",),
    ),
]


# -- the whole GPT --------------------------------------------------------------------------------
GPT_CONFIG = {"vocab_size": 13, "block_size": 7, "n_layers": 2, "n_heads": 2, "d_model": 10}
GPT_B, GPT_T = 2, 6  # T < block_size: the last position row is never used (its gradient is 0)
GPT_LENGTHS = np.array([GPT_T, 4])  # the padded variant: sequence 1 has 2 padding keys


def _gpt(dropout=0.0, padding=False, activation="gelu", positions="learned", n_heads=2):
    def build(rng, dtype):
        model = GPT(**{**GPT_CONFIG, "n_heads": n_heads}, dropout=dropout, activation=activation, positions=positions,
                    rng=rng, dtype=dtype).train()
        # The GPT-2 init (std 0.02) makes attention nearly uniform and the query/key gradients
        # tiny next to the finite-difference noise. Redraw at unit scale: tables ~ N(0, 1),
        # matrices ~ N(0, 1/fan_in); gains 1 + noise, shifts and biases noise, so every term shows.
        for name, p in model.named_parameters():
            if p.data.ndim == 2:
                fan_in = 1 if name.endswith("embedding.weight") else p.shape[0]
                p.data[...] = rng.standard_normal(p.shape) / np.sqrt(fan_in)
            else:
                gain = name.endswith("norm.weight") or name == "ln_f.weight"
                p.data[...] = (1.0 if gain else 0.0) + 0.3 * rng.standard_normal(p.shape)
        idx = rng.integers(0, GPT_CONFIG["vocab_size"], size=(GPT_B, GPT_T))
        idx[0, 1] = idx[1, 4] = idx[0, 5]  # a repeated token
        kwargs = {}
        if padding:
            kwargs["mask"] = (np.arange(GPT_T)[None, :] < GPT_LENGTHS[:, None])[:, None, None, :]
        return model, (idx,), kwargs

    return build


def _gpt_labels(positions="learned", n_heads=2):
    """{parameter name: labels} built from named_parameters, so every parameter is listed.

    A parameter's gradient is correct only if every backward step between the logits and that
    parameter is, so it verifies each of those equations: the head and final LayerNorm
    (gpt.7, gpt.8), the blocks above and including its own (gpt.9, gpt.10), and for the
    embeddings the dropout (gpt.11), the positions (gpt.12) and the tied sum (gpt.13).
    """
    model = GPT(**{**GPT_CONFIG, "n_heads": n_heads}, positions=positions)
    top = GPT_CONFIG["n_layers"] - 1
    labels = {}
    for name, _ in model.named_parameters():
        if name.startswith("ln_f."):
            labels[name] = ("gpt.7", "gpt.8")
        elif name.startswith("blocks."):
            layer, part = int(name.split(".")[1]), name.split(".")[2]
            above = ("gpt.10",) if part == "attn" or layer < top else ()
            labels[name] = ("gpt.7", "gpt.8", "gpt.9") + above
            if "score_bias" in name:  # the T5 table, shared by the blocks: (rel.3) from each, summed
                labels[name] = ("gpt.7", "gpt.8", "gpt.9", "gpt.10", "bias.2", "rel.3")
        elif name == "position_embedding.weight":
            labels[name] = ("gpt.7", "gpt.8", "gpt.9", "gpt.10", "gpt.11", "gpt.12")
        elif name == "token_embedding.weight":
            labels[name] = ("gpt.7", "gpt.8", "gpt.9", "gpt.10", "gpt.11", "gpt.13", "tie.5")
        else:
            raise KeyError(f"no labels for GPT parameter {name!r}")
    return labels


_GPT_LABELS = _gpt_labels()

# The whole-model bar, 1e-6 (observed: about 1e-8).
CASES += [
    GradCase("GPT (tied, padding mask)", _gpt(padding=True), _GPT_LABELS, tol=WHOLE_MODEL_TOLERANCE),
    # The tanh GELU here: the other activation is covered too, and the case runs 2.5x faster.
    GradCase(
        "GPT (tied, dropout 0.1, train mode, gelu_tanh)",
        _gpt(0.1, activation="gelu_tanh"),
        _GPT_LABELS,
        tol=WHOLE_MODEL_TOLERANCE,
    ),
    # positions inside attention (notes/rope.md, notes/score_bias.md): no position table at all
    GradCase("GPT (RoPE on 1 head of 10, padding mask)", _gpt(padding=True, positions="rope", n_heads=1),
             _gpt_labels("rope", n_heads=1),
             tol=WHOLE_MODEL_TOLERANCE),
    GradCase("GPT (T5 bias shared by the blocks, padding mask)", _gpt(padding=True, positions="t5"), _gpt_labels("t5"),
             tol=WHOLE_MODEL_TOLERANCE),
]
