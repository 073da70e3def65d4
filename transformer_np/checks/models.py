"""Gradient cases for the encoder-decoder family: the two stacks and whole Transformers (notes/transformer.md).

Every parameter of a whole model is checked, named by its dotted name and labelled by the
model-level equations its gradient passes through (built from ``named_parameters``, see
_model_labels). The models are tiny, so that the 2 forwards per parameter entry stay cheap
(about 1700 entries, 2-3 s a model): d_model 6, H = 2 heads of width 3, d_ff 7, 2 layers,
vocabularies 11 and 9 (11 when shared), B = 2 pairs of
a source of S = 5 and a target of T = 4 tokens. Both batches are padded: source lengths 5
and 3, target lengths 4 and 2, with the masks a real batch carries.

Every bias and every LayerNorm gain and shift is set to random values, so that no term of a
backward pass hides behind a 0 or a 1. The key projections' biases have exactly zero gradient
(notes/multihead.md, "The key bias gets no gradient"): the checker reports them as "zero".
"""

import numpy as np

from ..layers.feedforward import PositionwiseFeedForward
from ..layers.linear import Linear
from ..layers.masks import causal_mask, padding_mask_from_lengths
from ..layers.norm import LayerNorm
from ..layers.t5_bias import T5RelativeBias
from ..models.decoder import Decoder
from ..models.encoder import Encoder
from ..models.transformer import Transformer, TransformerConfig
from . import GradCase, WHOLE_MODEL_TOLERANCE

B2, S, T2, D_MODEL, H, D_FF, N_LAYERS, MAX_LEN = 2, 5, 4, 6, 2, 7, 2, 16
V_SRC, V_TGT = 11, 9
SRC_LENGTHS, TGT_LENGTHS = np.array([S, 3]), np.array([T2, 2])
PAD = 0
RELU_MARGIN = 1e-4  # every ReLU input must be at least this far from the kink at 0

# The model-level equations each part's gradient passes through, from the output backwards.
_PART_LABELS = {
    "output": ("tf.8",),
    "decoder": ("tf.8", "tf.9"),
    "tgt_embed": ("tf.8", "tf.9", "tf.12"),
    "encoder": ("tf.8", "tf.9", "tf.10", "tf.11"),
    "src_embed": ("tf.8", "tf.9", "tf.10", "tf.11", "tf.12"),
}


def _prepare(model, rng):
    """Give every bias and every LayerNorm random values, so no term hides behind a 0 or a 1."""
    for m in model.modules():
        if isinstance(m, LayerNorm):
            m.weight.data[...] = 1.0 + 0.3 * rng.standard_normal(m.weight.shape)
            m.bias.data[...] = 0.3 * rng.standard_normal(m.bias.shape)
        elif isinstance(m, Linear) and m.bias is not None:
            m.bias.data[...] = 0.3 * rng.standard_normal(m.bias.shape)


def _check_relu_margin(model):
    """After a forward, before its backward: every FFN's ReLU input H = x W1 + b1 is at least RELU_MARGIN from 0.

    A finite difference across the kink would compare two different linear pieces. Reads the
    input each w_1 cached in that forward.
    """
    for name, m in model.named_modules():
        if isinstance(m, PositionwiseFeedForward) and m.activation_name == "relu":
            (x,) = m.w_1._cache
            H_pre = x @ m.w_1.weight.data + m.w_1.bias.data
            if np.abs(H_pre).min() < RELU_MARGIN:
                raise RuntimeError(
                    f"{name}: a ReLU input is {np.abs(H_pre).min():.1e} from the kink at 0 "
                    f"(expected at least {RELU_MARGIN}); choose another seed"
                )


def _ids(rng, vocab, lengths, length):
    """(B, length) ids in [1, vocab), PAD after each row's length."""
    ids = rng.integers(1, vocab, size=(len(lengths), length))
    ids[np.arange(length)[None, :] >= lengths[:, None]] = PAD
    return ids


def _masks():
    """src_mask (B, 1, 1, S) and tgt_mask (B, 1, T, T) = target padding AND causal."""
    return padding_mask_from_lengths(SRC_LENGTHS, S), padding_mask_from_lengths(TGT_LENGTHS, T2) & causal_mask(T2)


# -- whole models -------------------------------------------------------------------------------
def _transformer(norm, activation, dropout=0.0, share=False, positions="sinusoidal"):
    def build(rng, dtype):
        tgt_vocab = V_SRC if share else V_TGT
        model = Transformer(src_vocab=V_SRC, tgt_vocab=tgt_vocab, d_model=D_MODEL, n_heads=H, n_layers=N_LAYERS,
                            d_ff=D_FF, dropout=dropout, max_len=MAX_LEN, norm=norm, activation=activation,
                            share_embeddings=share, positions=positions, rng=rng, dtype=dtype)
        _prepare(model, rng)
        for m in model.modules():  # a T5 table (one per stack) at a scale where every entry shows
            if isinstance(m, T5RelativeBias):
                m.weight.data[...] = rng.standard_normal(m.weight.shape)
        src, tgt_in = _ids(rng, V_SRC, SRC_LENGTHS, S), _ids(rng, tgt_vocab, TGT_LENGTHS, T2)
        src_mask, tgt_mask = _masks()
        kwargs = {"src_mask": src_mask, "tgt_mask": tgt_mask}
        if activation == "relu":
            if dropout:
                raise ValueError("the ReLU margin is checked without dropout: use a GELU with dropout")
            logits = model.forward(src, tgt_in, **kwargs)
            _check_relu_margin(model)
            model.backward(np.zeros_like(logits))  # releases the caches; adds zero to every .grad
        return model, (src, tgt_in), kwargs

    return build


def _model_labels(build):
    """{dotted name: labels} for every parameter of the model ``build`` makes (tf.13 for a shared table)."""
    model = build(np.random.default_rng(0), np.float64)[0]
    shared = model.config.share_embeddings
    labels = {}
    for name, _ in model.named_parameters():
        labels[name] = _PART_LABELS[name.split(".")[0]]
        if shared and name == "src_embed.weight":
            labels[name] = (*labels[name], "tf.13")
        if name.endswith("score_bias.weight"):  # a stack's T5 table, shared by its layers
            labels[name] = (*labels[name], "bias.2", "rel.3")
    return labels


def _model_case(title, build):
    return GradCase(title, build, _model_labels(build), tol=WHOLE_MODEL_TOLERANCE)


# -- the stacks alone: their float inputs are checked directly ---------------------------------
def _stack_config(norm):
    """The stacks' configuration: the whole-model sizes, no dropout, the smooth GELU."""
    return TransformerConfig(src_vocab=V_SRC, tgt_vocab=V_TGT, d_model=D_MODEL, n_heads=H, n_layers=N_LAYERS,
                             d_ff=D_FF, dropout=0.0, max_len=MAX_LEN, norm=norm, activation="gelu_tanh")


def _decoder(norm):
    def build(rng, dtype):
        decoder = Decoder(_stack_config(norm), rng=rng, dtype=dtype)
        _prepare(decoder, rng)
        x = rng.standard_normal((B2, T2, D_MODEL)).astype(dtype)
        memory = rng.standard_normal((B2, S, D_MODEL)).astype(dtype)
        src_mask, tgt_mask = _masks()
        return decoder, (x, memory), {"tgt_mask": tgt_mask, "src_mask": src_mask}

    return build


def _encoder(norm):
    def build(rng, dtype):
        encoder = Encoder(_stack_config(norm), rng=rng, dtype=dtype)
        _prepare(encoder, rng)
        x = rng.standard_normal((B2, S, D_MODEL)).astype(dtype)
        return encoder, (x,), {"mask": _masks()[0]}

    return build


def _stack_case(title, build, names, input_labels, param_labels):
    module = build(np.random.default_rng(0), np.float64)[0]
    labels = {name: param_labels for name, _ in module.named_parameters()}
    labels.update(input_labels)
    return GradCase(title, build, labels, names=names, tol=WHOLE_MODEL_TOLERANCE)


CASES = [
    _stack_case("Encoder (pre-LN)", _encoder("pre"), ("x",), {"x": ("tf.11",)}, ("tf.11",)),
    _stack_case(
        "Decoder (post-LN)", _decoder("post"), ("x", "memory"), {"x": ("tf.9",), "memory": ("tf.10",)}, ("tf.9",)
    ),
    _model_case("Transformer (post-LN, relu)", _transformer("post", "relu")),
    _model_case("Transformer (pre-LN, gelu_tanh, dropout 0.1)", _transformer("pre", "gelu_tanh", dropout=0.1)),
    _model_case("Transformer (post-LN, relu, shared embeddings)", _transformer("post", "relu", share=True)),
    _model_case("Transformer (pre-LN, gelu_tanh, T5 biases: bidirectional encoder, causal decoder)",
                _transformer("pre", "gelu_tanh", positions="t5")),
]
