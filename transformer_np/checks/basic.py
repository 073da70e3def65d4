"""Gradient cases for Embedding, ReLU, GELU, Softmax and Dropout.

Notes: notes/embedding.md, notes/activations.md, notes/softmax.md, notes/dropout.md.
"""


from ..layers.activation import GELU, ReLU, Softmax
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from . import B, D, T, GradCase

V = 11  # vocabulary size: B * T = 15 positions > 11 ids, so some id must repeat


def _embedding(scale):
    def build(rng, dtype):
        layer = Embedding(V, D, scale=scale, rng=rng, dtype=dtype)
        ids = rng.integers(0, V, size=(B, T))
        ids[0, 0] = ids[1, 3] = ids[2, 4] = 4  # a token three times, in different sequences
        ids[0, 1] = ids[0, 2] = 9  # and one twice in a row
        return layer, (ids,), {}

    return build


def _relu(rng, dtype):
    # |x| >= 0.1, far from the kink at 0 compared with the finite-difference step (1e-6).
    magnitude = rng.uniform(0.1, 2.0, size=(B, T, D))
    sign = rng.choice([-1.0, 1.0], size=(B, T, D))
    return ReLU(), ((sign * magnitude).astype(dtype),), {}


def _gelu(approximate):
    def build(rng, dtype):
        return GELU(approximate), ((2.0 * rng.standard_normal((B, T, D))).astype(dtype),), {}

    return build


def _softmax(axis):
    def build(rng, dtype):
        return Softmax(axis), ((3.0 * rng.standard_normal((B, T, D))).astype(dtype),), {}

    return build


def _dropout(rng, dtype):
    # check_module gives the dropout the same generator state before every forward: one mask.
    return Dropout(0.3, rng=rng).train(), (rng.standard_normal((B, T, D)).astype(dtype),), {}


CASES = [
    GradCase("Embedding", _embedding(scale=False), {"weight": ("emb.3", "emb.4")}),
    GradCase("Embedding (scale)", _embedding(scale=True), {"weight": ("emb.3", "emb.4")}),
    GradCase("ReLU", _relu, {"x": ("act.4",)}, names=("x",)),
    GradCase("GELU", _gelu("none"), {"x": ("act.5",)}, names=("x",)),
    GradCase("GELU (tanh)", _gelu("tanh"), {"x": ("act.6",)}, names=("x",)),
    GradCase("Softmax (axis -1)", _softmax(-1), {"x": ("softmax.3", "softmax.4")}, names=("x",)),
    GradCase("Softmax (axis 1)", _softmax(1), {"x": ("softmax.3", "softmax.4")}, names=("x",)),
    GradCase("Dropout (p=0.3)", _dropout, {"x": ("drop.4",)}, names=("x",)),
]
