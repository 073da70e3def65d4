"""Gradient cases for LayerNorm, the feed-forward network, the residual wrapper and the positional layers.

Notes: notes/layernorm.md, notes/feedforward.md, notes/residual.md, notes/positional.md.
Shapes: B, T, D = 3, 5, 7 from the catalogue, hidden width D_FF = 11, memory length S = 6.
Gains and biases are set to random values, so that no term of a backward pass hides behind
a parameter that happens to be 1 or 0.
"""

import numpy as np

from ..backend import get_array_module
from ..layers.feedforward import PositionwiseFeedForward
from ..layers.norm import LayerNorm
from ..layers.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from ..layers.residual import Residual
from ..module import Module, Parameter
from . import B, D, T, GradCase

D_FF, S = 11, 6
MEMORY_LENGTHS = np.array([S, 4, 2])  # real lengths of the B memory sequences (padding mask)
RELU_MARGIN = 1e-4  # the ReLU case needs every hidden pre-activation at least this far from 0


class _MemoryMix(Module):
    """Test-only sub-layer with a second floating input, shaped like cross-attention.

    y = x W + A memory with A = mask ⊙ (x memory^T / S): x (B, T, D), memory (B, S, D),
    mask (B, 1, S) boolean. Its backward returns (dx, dmemory), the tuple that Residual must
    pass on with the skip path added to dx only (res.9).
    """

    def __init__(self, d_model, rng, dtype):
        self.weight = Parameter((rng.standard_normal((d_model, d_model)) / np.sqrt(d_model)).astype(dtype))

    def forward(self, x, memory, mask):
        xp = get_array_module(x)
        S_len = memory.shape[1]
        A = xp.where(mask, x @ memory.transpose(0, 2, 1) / S_len, 0)  # (B, T, S)
        self.save_for_backward(x, memory, mask, A)
        return x @ self.weight.data + A @ memory

    def backward(self, dy):
        x, memory, mask, A = self.saved()
        xp = get_array_module(x)
        S_len = memory.shape[1]
        self.weight.grad += x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
        dA = xp.where(mask, dy @ memory.transpose(0, 2, 1), 0)  # (B, T, S)
        dx = dy @ self.weight.data.T + dA @ memory / S_len
        dmemory = A.transpose(0, 2, 1) @ dy + dA.transpose(0, 2, 1) @ x / S_len
        return dx, dmemory


def _randomise(param, rng, center, scale):
    param.data[...] = center + scale * rng.standard_normal(param.shape)


def _x(rng, dtype, shift=0.0, scale=1.0):
    return (shift + scale * rng.standard_normal((B, T, D))).astype(dtype)


def _padding_mask(lengths, S_len):
    """(B, 1, S): True where the memory position is a real token."""
    return (np.arange(S_len)[None, :] < lengths[:, None])[:, None, :]


# -- LayerNorm ----------------------------------------------------------------------------------
def _layernorm(eps, scale):
    def build(rng, dtype):
        layer = LayerNorm(D, eps=eps, dtype=dtype)
        _randomise(layer.weight, rng, 1.0, 0.5)
        _randomise(layer.bias, rng, 0.0, 0.5)
        return layer, (_x(rng, dtype, shift=3.0, scale=scale),), {}

    return build


_LN_LABELS = {"x": ("ln.7", "ln.8"), "weight": ("ln.6",), "bias": ("ln.5",)}


# -- Feed-forward -------------------------------------------------------------------------------
def _ffn(activation, dropout=0.0):
    def build(rng, dtype):
        layer = PositionwiseFeedForward(D, D_FF, activation, dropout=dropout, rng=rng, dtype=dtype)
        _randomise(layer.w_1.bias, rng, 0.0, 0.3)
        _randomise(layer.w_2.bias, rng, 0.0, 0.3)
        x = _x(rng, dtype)
        if activation == "relu":
            H = x @ layer.w_1.weight.data + layer.w_1.bias.data
            if np.abs(H).min() < RELU_MARGIN:
                raise RuntimeError(
                    f"ReLU case: a hidden pre-activation is {np.abs(H).min():.1e} from the kink at 0 "
                    f"(expected at least {RELU_MARGIN}); choose another seed"
                )
        return layer, (x,), {}

    return build


_FFN_INPUT = ("ffn.5", "ffn.7", "ffn.8", "ffn.10")
_FFN_LABELS = {
    "x": _FFN_INPUT,
    "w_1.weight": ("ffn.5", "ffn.7", "ffn.8", "ffn.9"),
    "w_1.bias": ("ffn.5", "ffn.7", "ffn.8", "ffn.9"),
    "w_2.weight": ("ffn.6",),
    "w_2.bias": ("ffn.6",),
}


# -- Residual -----------------------------------------------------------------------------------
def _residual_ffn(norm, dropout=0.0):
    """Residual around a GELU feed-forward network; with dropout, both dropouts are active."""

    def build(rng, dtype):
        ffn = PositionwiseFeedForward(D, D_FF, "gelu", dropout=dropout, rng=rng, dtype=dtype)
        layer = Residual(ffn, D, norm=norm, dropout=dropout, rng=rng, dtype=dtype)
        _randomise(layer.norm.weight, rng, 1.0, 0.5)
        _randomise(layer.norm.bias, rng, 0.0, 0.5)
        _randomise(ffn.w_1.bias, rng, 0.0, 0.3)
        _randomise(ffn.w_2.bias, rng, 0.0, 0.3)
        return layer, (_x(rng, dtype, shift=1.0),), {}

    return build


def _residual_memory(norm):
    """Residual around _MemoryMix: a second floating input and a mask keyword."""

    def build(rng, dtype):
        layer = Residual(_MemoryMix(D, rng, dtype), D, norm=norm, rng=rng, dtype=dtype)
        _randomise(layer.norm.weight, rng, 1.0, 0.5)
        _randomise(layer.norm.bias, rng, 0.0, 0.5)
        x = _x(rng, dtype, shift=1.0)
        memory = rng.standard_normal((B, S, D)).astype(dtype)
        return layer, (x, memory), {"mask": _padding_mask(MEMORY_LENGTHS, S)}

    return build


def _residual_labels(norm, sublayer_params, memory=False):
    if norm == "post":
        x, sub, ln = ("res.3", "res.4", "res.5"), ("res.3", "res.4"), ("res.3",)
    else:
        x, sub, ln = ("res.6", "res.7", "res.8"), ("res.6", "res.7"), ("res.7", "res.8")
    labels = {"x": x, "norm.weight": ln, "norm.bias": ln}
    if memory:
        labels["memory"] = ("res.9",)
    labels.update({f"sublayer.{name}": sub for name in sublayer_params})
    return labels


_FFN_PARAMS = ("w_1.weight", "w_1.bias", "w_2.weight", "w_2.bias")


# -- Positional ---------------------------------------------------------------------------------
def _sinusoidal(rng, dtype):
    layer = SinusoidalPositionalEncoding(D, max_len=13, dtype=dtype)
    return layer, (_x(rng, dtype),), {"offset": 2}


def _learned(rng, dtype):
    layer = LearnedPositionalEmbedding(D, 11, rng=rng, dtype=dtype)
    return layer, (_x(rng, dtype),), {"offset": 3}  # rows 3..7 used, the other six untouched


CASES = [
    GradCase("LayerNorm", _layernorm(eps=1e-5, scale=2.0), _LN_LABELS, names=("x",)),
    # Rows with variance ~ eps: the eps-dependent part of (ln.8) is no longer negligible.
    GradCase("LayerNorm (var ~ eps)", _layernorm(eps=1e-2, scale=0.1), _LN_LABELS, names=("x",)),
    GradCase("PositionwiseFeedForward (gelu)", _ffn("gelu"), _FFN_LABELS, names=("x",)),
    GradCase("PositionwiseFeedForward (gelu, dropout 0.3)", _ffn("gelu", 0.3), _FFN_LABELS, names=("x",)),
    GradCase("PositionwiseFeedForward (gelu_tanh)", _ffn("gelu_tanh"), _FFN_LABELS, names=("x",)),
    GradCase("PositionwiseFeedForward (relu)", _ffn("relu"), _FFN_LABELS, names=("x",)),
    GradCase(
        "Residual (post-LN, FFN)", _residual_ffn("post"), _residual_labels("post", _FFN_PARAMS), names=("x",)
    ),
    GradCase("Residual (pre-LN, FFN)", _residual_ffn("pre"), _residual_labels("pre", _FFN_PARAMS), names=("x",)),
    GradCase(
        "Residual (post-LN, FFN, dropout 0.2)",
        _residual_ffn("post", 0.2),
        _residual_labels("post", _FFN_PARAMS),
        names=("x",),
    ),
    GradCase(
        "Residual (pre-LN, FFN, dropout 0.2)",
        _residual_ffn("pre", 0.2),
        _residual_labels("pre", _FFN_PARAMS),
        names=("x",),
    ),
    GradCase(
        "Residual (post-LN, x and memory)",
        _residual_memory("post"),
        _residual_labels("post", ("weight",), memory=True),
        names=("x", "memory"),
    ),
    GradCase(
        "Residual (pre-LN, x and memory)",
        _residual_memory("pre"),
        _residual_labels("pre", ("weight",), memory=True),
        names=("x", "memory"),
    ),
    GradCase("SinusoidalPositionalEncoding", _sinusoidal, {"x": ("pos.6",)}, names=("x",)),
    GradCase("LearnedPositionalEmbedding", _learned, {"x": ("pos.6",), "weight": ("pos.7",)}, names=("x",)),
]
