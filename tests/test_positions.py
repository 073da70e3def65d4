"""The position scheme as one configuration field of both model families (issue 12): every scheme
builds, counts its parameters right (tests/conftest.py checks every model built here), decodes with
the KV cache exactly as without it, and runs past the training length where it has no maximum;
the learned table refuses; bad names are refused naming the choices."""

import numpy as np
import pytest

from transformer_np.generate import generate
from transformer_np.decode import GPTStepper
from transformer_np.layers.alibi import ALiBi
from transformer_np.layers.masks import causal_mask, padding_mask_from_lengths
from transformer_np.layers.t5_bias import T5RelativeBias
from transformer_np.models import GPT, GPTConfig, Transformer, TransformerConfig
from transformer_np.models.config import POSITIONS
from transformer_np.models.counting import count_parameters, parameter_count

SCHEMES = ["learned", "sinusoidal", "rope", "alibi", "t5", "none"]
GPT_SIZES = {"vocab_size": 13, "block_size": 8, "n_layers": 2, "n_heads": 2, "d_model": 12}
TF_SIZES = {"src_vocab": 11, "tgt_vocab": 9, "n_layers": 2, "n_heads": 2, "d_model": 12, "d_ff": 10, "max_len": 16}


def _unit_scale(model, rng):
    """Weights at unit scale (the 0.02 init leaves attention almost uniform, hiding position errors)."""
    for name, p in model.named_parameters():
        p.data[...] = rng.standard_normal(p.shape) / (np.sqrt(p.shape[0]) if p.data.ndim == 2 else 3.0)
    return model


def _gpt(positions, seed=0, **fields):
    rng = np.random.default_rng(seed)
    return _unit_scale(GPT(**{**GPT_SIZES, **fields}, positions=positions, rng=rng, dtype=np.float64), rng).eval()


def test_the_field_and_its_defaults():
    assert POSITIONS == tuple(SCHEMES)
    assert GPTConfig(**GPT_SIZES).positions == "learned"  # GPT-2's
    assert TransformerConfig(src_vocab=5, tgt_vocab=5).positions == "sinusoidal"  # the paper's
    assert GPTConfig.from_dict(GPTConfig(**GPT_SIZES, positions="rope").to_dict()).positions == "rope"


@pytest.mark.parametrize("family", [GPTConfig, TransformerConfig])
def test_an_unknown_scheme_is_refused_naming_the_choices(family):
    sizes = GPT_SIZES if family is GPTConfig else TF_SIZES
    with pytest.raises(ValueError, match=r"expected positions one of 'learned', 'sinusoidal', 'rope', 'alibi', 't5', "
                                         r"'none', received 'relative'"):
        family(**sizes, positions="relative")


@pytest.mark.parametrize("positions", SCHEMES)
def test_what_each_scheme_builds(positions):
    gpt = GPT(**GPT_SIZES, positions=positions)
    attn = gpt.blocks[0].attn.sublayer
    assert (gpt.position_embedding is not None) == (positions in ("learned", "sinusoidal"))
    assert (attn.rope_q is not None) == (positions == "rope")
    assert isinstance(attn.score_bias, {"alibi": ALiBi, "t5": T5RelativeBias}.get(positions, type(None)))
    if positions == "t5":  # one table shared by the layers, as T5
        assert gpt.blocks[1].attn.sublayer.score_bias.weight is attn.score_bias.weight
        assert attn.score_bias.causal
    tf = Transformer(**TF_SIZES, positions=positions)
    layer = tf.decoder.layers[0]
    assert layer.cross_attn.sublayer.rope_q is None and layer.cross_attn.sublayer.score_bias is None
    if positions in ("alibi", "t5"):
        assert layer.self_attn.sublayer.score_bias.causal  # the decoder's form
        assert not tf.encoder.layers[0].self_attn.sublayer.score_bias.causal  # the encoder's
    # the counts: every table where it is, nothing else (conftest.py also checks every model built)
    extra = {"learned": 8 * 12, "t5": 32 * 2}.get(positions, 0)
    assert count_parameters(gpt) == parameter_count(GPTConfig(**GPT_SIZES, positions="none")) + extra
    assert count_parameters(gpt, non_embedding=True) == parameter_count(GPTConfig(**GPT_SIZES), non_embedding=True)


@pytest.mark.parametrize("positions", SCHEMES)
def test_gpt_cached_decoding_equals_uncached(positions):
    gpt = _gpt(positions)
    idx = np.random.default_rng(1).integers(0, 13, size=(2, 8))
    whole = gpt.forward(idx)
    cache = gpt.new_cache(2)
    steps = [gpt.forward(idx[:, :3], cache=cache)] + [gpt.forward(idx[:, t:t + 1], cache=cache) for t in range(3, 8)]
    assert np.abs(np.concatenate(steps, axis=1) - whole).max() < 1e-10
    # and the positions matter: the same tokens shifted by one position give other logits
    if positions != "none":
        assert np.abs(gpt.forward(idx[:, 1:])[:, -1] - whole[:, -1]).max() > 1e-3


@pytest.mark.parametrize("positions", SCHEMES)
def test_transformer_cached_decoding_equals_uncached(positions):
    rng = np.random.default_rng(2)
    model = _unit_scale(Transformer(**TF_SIZES, positions=positions, rng=rng, dtype=np.float64), rng).eval()
    src = rng.integers(1, 11, size=(2, 6))
    tgt = rng.integers(1, 9, size=(2, 7))
    src_mask = padding_mask_from_lengths(np.array([6, 4]), 6)
    memory = model.encode(src, src_mask)
    whole = model.decode(tgt, memory, src_mask, causal_mask(7))
    cache = model.new_cache(memory, src_mask, capacity=2)  # small: the buffers grow on the way
    steps = [model.decode(tgt[:, :2], cache=cache)] + [model.decode(tgt[:, t:t + 1], cache=cache) for t in range(2, 7)]
    assert np.abs(np.concatenate(steps, axis=1) - whole).max() < 1e-10


def test_the_learned_table_refuses_past_its_length():
    gpt = _gpt("learned")
    with pytest.raises(ValueError, match=r"at most block_size=8, received 9"):
        gpt.forward(np.zeros((1, 9), dtype=int))
    with pytest.raises(ValueError, match=r"max_len: expected at most 8 .*learned.*received 12"):
        gpt.new_cache(1, max_len=12)
    cache = gpt.new_cache(1)
    gpt.forward(np.zeros((1, 8), dtype=int), cache=cache)
    with pytest.raises(ValueError, match=r"max_len=8.*received 8 cached \+ 1 new = 9"):
        gpt.forward(np.zeros((1, 1), dtype=int), cache=cache)
    with pytest.raises(ValueError, match=r"offset \+ sequence length of at most max_len=8, "
                                         r"received offset 7 \+ length 2"):
        gpt.position_embedding.forward(np.zeros((1, 2, 12)), offset=7)
    tf = Transformer(**TF_SIZES, positions="learned")
    with pytest.raises(ValueError, match=r"at most max_len=16, received 17"):
        tf.encode(np.ones((1, 17), dtype=int))


def test_the_sinusoid_table_of_a_gpt_reaches_past_block_size_but_not_forever():
    gpt = _gpt("sinusoidal")
    assert gpt.max_positions == 5000
    assert gpt.forward(np.zeros((1, 20), dtype=int)).shape == (1, 20, 13)
    with pytest.raises(ValueError, match=r"at most 5000 \(the sinusoidal position table's rows\), received 5001"):
        gpt.forward(np.zeros((1, 5001), dtype=int))


@pytest.mark.parametrize("positions", ["rope", "alibi", "t5", "none"])
def test_schemes_without_a_maximum_run_past_the_training_length(positions):
    gpt = _gpt(positions)
    assert gpt.max_positions is None
    idx = np.random.default_rng(3).integers(0, 13, size=(1, 30))  # block_size is 8
    whole = gpt.forward(idx)
    cache = gpt.new_cache(1, max_len=30)
    steps = [gpt.forward(idx[:, :5], cache=cache)] + [gpt.forward(idx[:, t:t + 1], cache=cache) for t in range(5, 30)]
    assert np.abs(np.concatenate(steps, axis=1) - whole).max() < 1e-10


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_generation_past_the_training_length_does_not_crop_unless_asked(positions):
    gpt = _gpt(positions)
    prompt = np.array([[1, 2, 3]])
    cached = generate(gpt, prompt, 20, temperature=0)
    uncached = generate(gpt, prompt, 20, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (1, 23)
    # the whole sequence is the context: the last token is the argmax after all 22 before it
    assert cached[0, -1] == gpt.forward(cached[:, :-1])[0, -1].argmax()
    # asked to crop, it crops: the last token is then the argmax after the last 8 only
    cropped = generate(gpt, prompt, 20, temperature=0, context=8)
    np.testing.assert_array_equal(cropped, generate(gpt, prompt, 20, temperature=0, context=8, use_cache=False))
    assert cropped[0, -1] == gpt.forward(cropped[:, -9:-1])[0, -1].argmax()
    # the two contexts give other logits (so the two argmax checks above could fail)
    assert np.abs(gpt.forward(cached[:, :-1])[0, -1] - gpt.forward(cached[:, -9:-1])[0, -1]).max() > 1e-3
    sampled = [generate(gpt, prompt, 20, rng=np.random.default_rng(5), use_cache=c) for c in (True, False)]
    np.testing.assert_array_equal(*sampled)


def test_the_stepper_grows_its_cache_without_cropping():
    gpt = _gpt("alibi")
    step, tokens = GPTStepper(gpt, 1, use_cache=True), np.zeros((1, 1), dtype=int)
    for _ in range(20):
        tokens = np.concatenate([tokens, step(tokens).argmax(-1)[:, None]], axis=1)
    assert step.start == 0 and step.cache.length == 20 and step.restarts == 2  # 8 -> 16 -> 32 positions


def test_a_context_past_the_learned_limit_is_refused():
    with pytest.raises(ValueError, match=r"context: expected at most 8 tokens .*received 9"):
        generate(_gpt("learned"), np.array([1]), 2, context=9)
    with pytest.raises(ValueError, match=r"prompt_ids: expected at most block_size=8 tokens"):
        generate(_gpt("learned"), np.ones(9, dtype=int), 2)
    assert generate(_gpt("rope"), np.ones(9, dtype=int), 2, temperature=0).shape == (11,)


def test_rope_with_an_odd_head_dimension_is_refused_by_the_configuration():
    with pytest.raises(ValueError, match=r"GPTConfig: expected an even head dimension .*"
                                         r"received d_model=10, n_heads=2, d_head=5"):
        GPTConfig(vocab_size=5, block_size=4, n_layers=1, n_heads=2, d_model=10, positions="rope")
    assert GPTConfig(vocab_size=5, block_size=4, n_layers=1, n_heads=2, d_model=10, positions="alibi").d_head == 5


# -- the sinusoids' dot product (pos.8), as notes/positional.md states it ----------------------------
def test_the_sinusoid_dot_product_depends_on_the_distance_only_for_even_d_and_is_not_monotone():
    from transformer_np.layers.positional import sinusoidal_table

    pe = sinusoidal_table(400, 512)
    omega = 1.0 / 10000.0 ** (np.arange(0, 512, 2) / 512)
    for p, k in [(0, 5), (37, 5), (200, 5), (100, 43), (150, -43)]:
        assert abs(pe[p] @ pe[p + k] - np.cos(omega * k).sum()) < 1e-9  # (pos.8), and even in k
    dot = pe[0] @ pe[:200].T  # k = 0 .. 199
    rises = np.flatnonzero(np.diff(dot) > 0)
    assert rises[0] == 43 and len(rises) == 54  # first rise from k = 43 to 44; 54 of the first 199 steps
    assert round(dot[43], 3) == 134.759 and round(dot[44], 3) == 134.770
    odd = sinusoidal_table(20, 7)
    assert abs(odd[0] @ odd[5] - odd[10] @ odd[15]) > 1e-5  # odd D: the unpaired sine column depends on p
    assert round(odd[0] @ odd[5], 5) == 2.21928 and round(odd[10] @ odd[15], 5) == 2.21930


# -- with the other attention kinds (issue 13): RoPE rotates before any core; a bias needs the standard one
@pytest.mark.parametrize("attention, extra", [("tiled", {"tile": 3}), ("window", {"window": 4, "tile": 3}),
                                               ("linear", {}), ("performer", {"features": 16})])
def test_rope_with_every_attention_kind_decodes_with_the_cache_as_without(attention, extra):
    gpt = _gpt("rope", attention=attention, **extra)
    assert gpt.blocks[0].attn.sublayer.rope_q is not None
    idx = np.random.default_rng(4).integers(0, 13, size=(2, 8))
    whole = gpt.forward(idx)
    cache = gpt.new_cache(2)
    steps = [gpt.forward(idx[:, :3], cache=cache)] + [gpt.forward(idx[:, t:t + 1], cache=cache) for t in range(3, 8)]
    assert np.abs(np.concatenate(steps, axis=1) - whole).max() < 1e-10


@pytest.mark.parametrize("positions", ["alibi", "t5"])
def test_a_score_bias_with_another_attention_kind_is_refused(positions):
    with pytest.raises(ValueError, match=rf"positions='{positions}' adds a bias to the scores, .*expected "
                                         r"attention='standard', received attention='linear'"):
        GPTConfig(**GPT_SIZES, positions=positions, attention="linear")
    from transformer_np.layers.linear_attention import LinearAttention
    from transformer_np.layers.multihead import MultiHeadAttention

    with pytest.raises(ValueError, match=r"score_bias: expected the standard attention core .*received LinearAttention"):
        MultiHeadAttention(8, 2, attention=LinearAttention(), score_bias=ALiBi(2))


def test_bert_keeps_its_learned_table():
    from transformer_np.models.bert import BertConfig

    assert BertConfig(vocab_size=10, n_layers=1, d_model=8, n_heads=2).positions == "learned"
    with pytest.raises(ValueError, match=r"BertConfig: expected positions one of 'learned', received 'rope'"):
        BertConfig(vocab_size=10, n_layers=1, d_model=8, n_heads=2, positions="rope")
