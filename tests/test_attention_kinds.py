"""Each kind of attention is one field of the configuration (BlockConfig.attention), used by
MultiHeadAttention and both model families: exact kinds give the standard model's numbers,
every kind trains (forward and backward), parameter counts do not change, the cache works, and
bad values are refused naming expected and received."""

import dataclasses

import numpy as np
import pytest

from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.linear_attention import LinearAttention, PerformerAttention
from transformer_np.layers.masks import causal_mask, padding_mask_from_lengths
from transformer_np.layers.multihead import MultiHeadAttention
from transformer_np.layers.tiled_attention import TiledAttention
from transformer_np.layers.window_attention import SlidingWindowAttention
from transformer_np.models import GPT, GPTConfig, Transformer, TransformerConfig
from transformer_np.models.config import ATTENTION_KINDS, BlockConfig
from transformer_np.models.counting import count_parameters, parameter_count

KINDS = {"standard": ScaledDotProductAttention, "tiled": TiledAttention, "window": SlidingWindowAttention,
         "linear": LinearAttention, "performer": PerformerAttention}
EXTRA = {"window": {"window": 3}, "tiled": {"tile": 3}, "performer": {"features": 16}}


def _gpt_config(kind, **fields):
    return GPTConfig(vocab_size=11, block_size=12, n_layers=2, n_heads=4, d_model=16, attention=kind,
                     **{**EXTRA.get(kind, {}), **fields})


def _transformer(kind, **fields):
    return Transformer(src_vocab=9, tgt_vocab=10, d_model=12, n_heads=3, n_layers=2, d_ff=20, dropout=0.0,
                       attention=kind, rng=np.random.default_rng(1), dtype=np.float64, **{**EXTRA.get(kind, {}), **fields})


def test_the_kinds_listed_are_the_kinds_built():
    assert set(ATTENTION_KINDS) == set(KINDS)


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_gpt_builds_its_kind_in_every_block_and_counts_stay_right(kind):
    config = _gpt_config(kind)
    model = GPT(config, rng=np.random.default_rng(0), dtype=np.float64)
    for block in model.blocks:
        assert type(block.attn.sublayer.attention) is KINDS[kind]
    assert count_parameters(model) == parameter_count(config) == parameter_count(_gpt_config("standard"))
    assert GPTConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_encoder_decoder_builds_its_kind_and_cross_attention_is_standard_only_for_a_window(kind):
    model = _transformer(kind)
    assert type(model.encoder.layers[0].self_attn.sublayer.attention) is KINDS[kind]
    assert type(model.decoder.layers[0].self_attn.sublayer.attention) is KINDS[kind]
    cross = type(model.decoder.layers[0].cross_attn.sublayer.attention)
    assert cross is (ScaledDotProductAttention if kind == "window" else KINDS[kind])
    assert count_parameters(model) == parameter_count(model.config)


def _copy_weights(src, dst):
    dst.load_state_dict(src.state_dict())
    return dst


def test_tiled_models_equal_standard_models_forward_and_backward():
    """Exact: the same logits and the same parameter gradients to 1e-12, GPT and encoder-decoder."""
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 11, size=(3, 10))
    pad = padding_mask_from_lengths(np.array([10, 7, 4]), 10)
    models = [GPT(_gpt_config(k), rng=np.random.default_rng(0), dtype=np.float64) for k in ("standard", "tiled")]
    out = [m.forward(idx, mask=pad) for m in models]
    assert np.abs(out[0] - out[1]).max() < 1e-12
    dlogits = rng.standard_normal(out[0].shape)
    for m in models:
        m.backward(dlogits)
    grads = [dict(m.named_parameters()) for m in models]
    for name, p in grads[0].items():
        assert np.abs(p.grad - grads[1][name].grad).max() < 1e-12, name

    std, tiled = _transformer("standard"), _transformer("tiled", tile=2)
    src, tgt = rng.integers(0, 9, size=(2, 7)), rng.integers(0, 10, size=(2, 5))
    src_mask = padding_mask_from_lengths(np.array([7, 3]), 7)
    a, b = std.forward(src, tgt, src_mask), tiled.forward(src, tgt, src_mask)
    assert np.abs(a - b).max() < 1e-12
    d = rng.standard_normal(a.shape)
    std.backward(d), tiled.backward(d)
    tp = dict(tiled.named_parameters())
    assert max(np.abs(p.grad - tp[n].grad).max() for n, p in std.named_parameters()) < 1e-12


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_every_kind_trains_and_generates_with_a_cache(kind):
    model = GPT(_gpt_config(kind), rng=np.random.default_rng(3), dtype=np.float64)
    idx = np.random.default_rng(4).integers(0, 11, size=(2, 9))
    logits = model.forward(idx)
    model.backward(np.ones_like(logits))
    assert all(np.isfinite(p.grad).all() for p in model.parameters())
    assert np.abs(model.blocks[0].attn.sublayer.w_q.weight.grad).max() > 0
    model.eval()
    full = model.forward(idx)
    cache = model.new_cache(2)
    steps = [model.forward(idx[:, :3], cache=cache)] + [model.forward(idx[:, t:t + 1], cache=cache) for t in range(3, 9)]
    assert np.abs(np.concatenate(steps, axis=1) - full).max() < 1e-10


def test_multihead_attention_takes_a_core():
    layer = MultiHeadAttention(12, 3, attention=TiledAttention(2, 2), rng=np.random.default_rng(0), dtype=np.float64)
    ref = MultiHeadAttention(12, 3, rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 5, 12))
    assert np.abs(layer.forward(x, mask=causal_mask(5)) - ref.forward(x, mask=causal_mask(5))).max() < 1e-12
    assert layer.attn_weights is None and ref.attn_weights.shape == (2, 3, 5, 5)
    with pytest.raises(ValueError, match=r"dropout: expected 0 with an attention core given .* received dropout=0.1 "
                                         r"and TiledAttention"):
        MultiHeadAttention(12, 3, dropout=0.1, attention=TiledAttention())


# -- bad configuration values -----------------------------------------------------------------

BAD = [
    ({"attention": "flash"}, r"expected attention one of 'standard', 'tiled', 'window', 'linear', 'performer', "
                             r"received 'flash'"),
    ({"attention": "tiled", "tile": 0}, r"expected tile an integer >= 1, received 0"),
    ({"attention": "tiled", "tile": -3}, r"expected tile an integer >= 1, received -3"),
    ({"attention": "window"}, r"expected window an integer >= 1, received None"),
    ({"attention": "window", "window": 0}, r"expected window an integer >= 1, received 0"),
    ({"attention": "standard", "window": 4}, r"expected window=None unless attention='window', received window=4"),
    ({"attention": "performer", "features": 0}, r"expected features an integer >= 1, received 0"),
    ({"attention": "tiled", "dropout": 0.1}, r"attention='tiled' has no dropout on the attention weights .* "
                                             r"expected dropout=0, received dropout=0.1"),
    ({"attention": "linear", "dropout": 0.2}, r"expected dropout=0, received dropout=0.2"),
]


@pytest.mark.parametrize("fields, message", BAD, ids=[str(f) for f, _ in BAD])
def test_bad_attention_fields_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        BlockConfig(d_model=8, n_heads=2, **fields)


def test_the_encoder_decoder_default_dropout_is_refused_with_a_non_standard_kind():
    with pytest.raises(ValueError, match=r"TransformerConfig: attention='performer' has no dropout .* received dropout=0.1"):
        TransformerConfig(src_vocab=5, tgt_vocab=5, attention="performer")
    config = TransformerConfig(src_vocab=5, tgt_vocab=5, attention="performer", dropout=0.0)
    assert dataclasses.replace(config, attention="standard").attention == "standard"


@pytest.mark.parametrize("kind", ["performer", "window"])
def test_a_checkpoint_rebuilds_the_same_model(kind, tmp_path):
    """The Performer's random features come from a fixed seed, not from the model's generator:
    a model rebuilt from the saved configuration, with another generator, computes the same logits."""
    from transformer_np.checkpoint import load_checkpoint, save_checkpoint

    model = GPT(_gpt_config(kind), rng=np.random.default_rng(7), dtype=np.float64).eval()
    path = tmp_path / "model.npz"
    save_checkpoint(path, model)
    rebuilt = GPT(GPTConfig.from_dict(model.config.to_dict()), rng=np.random.default_rng(99), dtype=np.float64).eval()
    load_checkpoint(path, rebuilt)  # refuses a model built for another configuration
    idx = np.random.default_rng(8).integers(0, 11, size=(2, 10))
    assert rebuilt.config == model.config
    assert np.abs(rebuilt.forward(idx) - model.forward(idx)).max() == 0


def test_plotting_the_weights_of_a_kind_that_never_forms_them_says_so():
    from transformer_np.viz_maps import attention_maps

    model = GPT(_gpt_config("tiled"), rng=np.random.default_rng(0), dtype=np.float64).eval()
    model.forward(np.zeros((1, 4), dtype=int))
    with pytest.raises(ValueError, match=r"never form the weights: plot a model with attention='standard'"):
        attention_maps(model)
