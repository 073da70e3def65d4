"""GPT (notes/gpt.md): causality, the block_size limit and other errors, weight tying, GPT-2
initialisation, float32 end to end, config round trip. Gradients: the catalogue (checks/gpt.py)."""

import json
import math

import numpy as np
import pytest

from transformer_np.layers.tied import TiedOutput
from transformer_np.loss import CrossEntropyLoss
from transformer_np.models.gpt import GPT, GPTConfig
from transformer_np.models.transformer import TransformerConfig
from transformer_np.module import Parameter

CONFIG = {"vocab_size": 13, "block_size": 7, "n_layers": 2, "n_heads": 2, "d_model": 10}
B, T = 2, 6


def _model(dtype=np.float64, seed=0, **overrides):
    return GPT(**{**CONFIG, **overrides}, rng=np.random.default_rng(seed), dtype=dtype)


def _idx(seed=1, T=T):
    return np.random.default_rng(seed).integers(0, CONFIG["vocab_size"], size=(B, T))


def _randomise(model, seed=5):
    """Unit-scale weights, so that every position's logits visibly depend on what it attends to."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        scale = 1.0 / math.sqrt(p.shape[0]) if p.data.ndim == 2 else 0.3
        p.data[...] += scale * rng.standard_normal(p.shape)
    return model


@pytest.mark.parametrize("t", range(T - 1))
def test_changing_token_t_plus_1_leaves_logits_up_to_t_unchanged(t):
    model = _randomise(_model())
    idx = _idx()
    before = model.forward(idx)
    changed = idx.copy()
    changed[:, t + 1] = (changed[:, t + 1] + 1) % CONFIG["vocab_size"]
    after = model.forward(changed)
    np.testing.assert_array_equal(after[:, : t + 1], before[:, : t + 1])
    assert np.abs(after[:, t + 1 :] - before[:, t + 1 :]).max() > 1e-3  # the future does see it


def test_padding_mask_hides_a_key_from_every_other_position():
    model = _randomise(_model())
    idx = _idx()
    lengths = np.array([T, 4])
    mask = (np.arange(T)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)
    before = model.forward(idx, mask=mask)
    changed = idx.copy()
    changed[1, 4] = (changed[1, 4] + 1) % CONFIG["vocab_size"]  # a padding position of sequence 1
    after = model.forward(changed, mask=mask)
    keep = np.ones((B, T), dtype=bool)
    keep[1, 4] = False  # only that position's own logits may change (its residual stream)
    np.testing.assert_array_equal(after[keep], before[keep])
    # without the mask, the later position 5 of sequence 1 does see token 4
    assert np.abs(model.forward(changed)[1, 5] - model.forward(idx)[1, 5]).max() > 1e-3


def test_the_mask_is_the_causal_one_and_with_a_cache_its_rows_after_the_cached_positions():
    model = _model()
    np.testing.assert_array_equal(model._mask(B, 4, 0, None)[0, 0], np.tril(np.ones((4, 4), dtype=bool)))
    rows = model._mask(B, 2, 3, None)  # 2 new positions after 3 cached ones
    np.testing.assert_array_equal(rows[0, 0], np.tril(np.ones((5, 5), dtype=bool))[3:])


def test_sequence_longer_than_block_size_is_refused_naming_both():
    model = _model()
    with pytest.raises(ValueError, match="at most block_size=7, received 8"):
        model.forward(_idx(T=8))
    assert model.forward(_idx(T=7)).shape == (B, 7, 13)  # exactly block_size is fine


def test_bad_inputs_are_refused():
    model = _model()
    with pytest.raises(ValueError, match=r"idx: expected values in \[0, 13\), received values in \[13, 13\]"):
        model.forward(np.full((B, T), 13))
    with pytest.raises(ValueError, match=r"idx: expected 2 dimensions \(B, T\), received shape \(6,\)"):
        model.forward(np.zeros(T, dtype=np.int64))
    with pytest.raises(TypeError, match="idx: expected an integer array, received float64"):
        model.forward(np.zeros((B, T)))
    with pytest.raises(ValueError, match=r"mask: expected a boolean array broadcastable.*received shape \(2, 1, 1, 5\)"):
        model.forward(_idx(), mask=np.ones((B, 1, 1, 5), dtype=bool))
    with pytest.raises(RuntimeError, match="GPT.backward.*called before forward"):
        model.backward(np.zeros((B, T, 13)))
    with pytest.raises(ValueError, match="GPTConfig: expected d_model divisible by n_heads, received d_model=10, n_heads=3"):
        GPT(vocab_size=13, block_size=7, n_layers=2, n_heads=3, d_model=10)
    with pytest.raises(TypeError, match="takes from 1 to 2 positional arguments but 6 were given"):
        GPT(13, 7, 2, 3, 10)  # fields are passed by keyword (or as a GPTConfig)


def test_output_layer_shares_the_token_embedding_and_it_is_listed_once():
    model = _model()
    assert isinstance(model.head, TiedOutput) and model.head.weight is model.token_embedding.weight
    names = [n for n, _ in model.named_parameters()]
    assert names.count("token_embedding.weight") == 1 and not any(n.startswith("head.") for n in names)
    assert names[0] == "token_embedding.weight" and names[-2:] == ["ln_f.weight", "ln_f.bias"]


def test_tied_gradient_is_the_embedding_part_plus_the_output_part():
    idx, dz = _idx(), np.random.default_rng(2).standard_normal((B, T, 13))
    tied = _randomise(_model())
    tied.forward(idx)
    tied.backward(dz)

    # The same weights with the output matrix untied (a copy): each copy gets one part.
    untied = _randomise(_model())
    untied.head = TiedOutput(Parameter(untied.token_embedding.weight.data.copy()))
    np.testing.assert_array_equal(untied.forward(idx), tied.forward(idx))
    untied.backward(dz)
    embedding_part, output_part = untied.token_embedding.weight.grad, untied.head.weight.grad
    assert np.abs(embedding_part).max() > 1e-3 and np.abs(output_part).max() > 1e-3
    np.testing.assert_allclose(tied.token_embedding.weight.grad, embedding_part + output_part, rtol=1e-10, atol=1e-14)


def test_gpt2_initialisation():
    model = GPT(vocab_size=50, block_size=32, n_layers=4, n_heads=4, d_model=64, rng=np.random.default_rng(0),
                dtype=np.float64)
    params = dict(model.named_parameters())
    residual = [p.data for n, p in params.items() if n.endswith(("w_o.weight", "w_2.weight"))]
    other = [p.data for n, p in params.items() if p.data.ndim == 2 and not n.endswith(("w_o.weight", "w_2.weight"))]
    assert len(residual) == 8 and len(other) == 2 + 4 * 4  # two tables; w_q, w_k, w_v, w_1 per block
    assert np.std(np.concatenate([a.ravel() for a in other])) == pytest.approx(0.02, rel=0.02)
    assert np.std(np.concatenate([a.ravel() for a in residual])) == pytest.approx(0.02 / math.sqrt(8), rel=0.02)
    for n, p in params.items():
        if n.endswith("bias"):
            assert not p.data.any(), n
        elif p.data.ndim == 1:  # LayerNorm gains
            np.testing.assert_array_equal(p.data, 1.0)
    # logits of std 0.02 sqrt(d): the first loss is close to ln V
    idx = np.random.default_rng(1).integers(0, 50, size=(4, 32))
    loss = CrossEntropyLoss().forward(model.forward(idx), np.roll(idx, -1, axis=1))
    assert abs(float(loss) - math.log(50)) < 0.05


def test_float32_end_to_end():
    model = _model(np.float32, dropout=0.1)
    logits = model.forward(_idx())
    loss_fn = CrossEntropyLoss()
    loss = loss_fn.forward(logits, _idx(3))
    assert model.backward(loss_fn.backward()) is None
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    wrong = {n: (p.data.dtype, p.grad.dtype) for n, p in model.named_parameters() if p.grad.dtype != np.float32}
    assert not wrong
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


def test_dropout_only_in_training_mode():
    model = _model(dropout=0.3)
    idx = _idx()
    a, b = model.forward(idx), model.forward(idx)
    assert not np.allclose(a, b)  # new masks each call
    model.eval()
    np.testing.assert_array_equal(model.forward(idx), model.forward(idx))


def test_config_round_trip():
    model = _model(dropout=0.1, bias=False, activation="gelu_tanh")
    assert isinstance(model.config, GPTConfig)
    text = json.dumps(model.config.to_dict())
    again = GPT(json.loads(text), rng=np.random.default_rng(0), dtype=np.float64)
    assert again.config == model.config and GPTConfig.from_dict(json.loads(text)) == model.config
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)  # same seed, same weights
    assert not any(n.endswith(("sublayer.w_1.bias", "w_q.bias")) for n in a)  # bias=False
    assert again.blocks[0].ffn.sublayer.activation.approximate == "tanh"


def test_activation_and_bias_options_give_the_expected_logits_shape():
    for activation in ("gelu", "gelu_tanh", "relu"):
        model = _model(activation=activation, bias=False)
        out = model.forward(_idx())
        assert out.shape == (B, T, 13)
        model.backward(np.ones_like(out))


def test_a_configuration_with_an_unknown_field_is_refused_naming_the_expected_ones():
    with pytest.raises(TypeError, match=r"GPTConfig: expected fields among \[.*'n_layers'.*\].*received unknown fields \['n_layer'\]"):
        GPT({**CONFIG, "n_layer": 3})
    with pytest.raises(TypeError, match=r"received unknown fields \['n_layer'\]"):
        GPTConfig(**CONFIG, n_layer=3)
    with pytest.raises(TypeError, match="expected a GPTConfig or its fields as keywords, received both"):
        GPT(GPTConfig(**CONFIG), n_layers=3)
    with pytest.raises(TypeError, match=r"config: expected a GPTConfig \(or a dict of its fields\), received TransformerConfig"):
        GPT(TransformerConfig(src_vocab=5, tgt_vocab=5))


def test_an_empty_sequence_is_refused_at_the_entry():
    """T = 0 (or no sequence at all) once reached NumPy's 'zero-size array to reduction' inside
    the softmax; the model refuses it with its own message."""
    model = _model()
    for shape in ((B, 0), (0, T)):
        with pytest.raises(ValueError, match=rf"idx: expected at least one sequence of at least one token, "
                                             rf"received shape \({shape[0]}, {shape[1]}\)"):
            model.forward(np.zeros(shape, dtype=np.int64))
