"""Gradient cases for the GRU and the recurrent encoder-decoder (notes/rnn.md).

Shapes: B, T, D = 3, 5, 7 from the catalogue and a state of width N = 6 (3N = 18 gate columns);
the encoder-decoder reads sources of S = 5 and targets of T2 = 4 tokens. The padding masks have
a different length in every row, and one masked case also has a hole in the middle of a row
(a masked step followed by real ones), so that the carried gradient of (rnn.9) is exercised
between real steps, not only after the last one. Every bias starts at random values, so that
no term of the backward hides behind a zero.
"""

import numpy as np

from ..layers.gru import GRU
from ..models.rnn_seq2seq import GRUSeq2Seq
from . import B, D, T, GradCase

N = 6
LENGTHS = np.array([T, 3, 4])  # real lengths of the B sequences
S, T2, V_SRC, V_TGT = 5, 4, 11, 9

# Every path back through time passes (rnn.8)-(rnn.14): the labels each gradient verifies.
_THROUGH_TIME = ("rnn.8", "rnn.10", "rnn.11", "rnn.12", "rnn.13", "rnn.14")


def _mask(hole):
    mask = np.arange(T)[None, :] < LENGTHS[:, None]  # (B, T)
    if hole:
        mask[0, 2] = False  # row 0: real, real, masked, real, real
    return mask


def _gru(with_h0, masked, hole=False):
    def build(rng, dtype):
        layer = GRU(D, N, rng=rng, dtype=dtype)
        layer.input.bias.data[...] = 0.3 * rng.standard_normal(3 * N)
        x = rng.standard_normal((B, T, D)).astype(dtype)
        inputs = (x, rng.standard_normal((B, N)).astype(dtype)) if with_h0 else (x,)
        return layer, inputs, {"mask": _mask(hole)} if masked else {}

    return build


def _gru_labels(with_h0, masked):
    path = _THROUGH_TIME + (("rnn.9",) if masked else ())
    labels = {
        "x": path + ("rnn.16",),
        "weight_hh": path + ("rnn.15",),
        "bias_hh": path + ("rnn.15",),
        "input.weight": path + ("rnn.16",),
        "input.bias": path + ("rnn.16",),
    }
    if with_h0:
        labels["h0"] = path + ("rnn.17",)
    return labels


def _seq2seq(rng, dtype):
    model = GRUSeq2Seq(src_vocab=V_SRC, tgt_vocab=V_TGT, d_embed=D, hidden_size=N, rng=rng, dtype=dtype)
    for name in ("encoder", "decoder"):
        getattr(model, name).input.bias.data[...] = 0.3 * rng.standard_normal(3 * N)
    model.output.bias.data[...] = 0.3 * rng.standard_normal(V_TGT)
    src = rng.integers(1, V_SRC, size=(B, S))
    src_lengths = np.array([S, 2, 4])
    src[np.arange(S)[None, :] >= src_lengths[:, None]] = 0
    src_mask = (np.arange(S)[None, :] < src_lengths[:, None])[:, None, None, :]  # (B, 1, 1, S)
    tgt_in = rng.integers(1, V_TGT, size=(B, T2))
    return model, (src, tgt_in), {"src_mask": src_mask}


def _seq2seq_labels():
    """The equations each parameter's gradient passes through, from the output back to the source."""
    encoder = ("rnn.17", "rnn.19")  # through the decoder's dh0, into the encoder's last position
    labels = {"output.weight": ("lin.3",), "output.bias": ("lin.4",), "tgt_embed.weight": ("rnn.16", "emb.3"),
              "src_embed.weight": encoder + ("rnn.16", "emb.3")}
    for part, prefix in (("decoder", ()), ("encoder", encoder)):
        labels.update({f"{part}.weight_hh": prefix + ("rnn.15",), f"{part}.bias_hh": prefix + ("rnn.15",),
                       f"{part}.input.weight": prefix + ("rnn.16",), f"{part}.input.bias": prefix + ("rnn.16",)})
    return labels


CASES = [
    GradCase("GRU", _gru(with_h0=False, masked=False), _gru_labels(False, False), names=("x",)),
    GradCase("GRU (h0, padding mask)", _gru(with_h0=True, masked=True), _gru_labels(True, True), names=("x", "h0")),
    GradCase("GRU (padding mask with a hole)", _gru(False, True, hole=True), _gru_labels(False, True), names=("x",)),
    GradCase("GRUSeq2Seq (padded sources)", _seq2seq, _seq2seq_labels()),
]
