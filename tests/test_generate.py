"""Sampling (notes/decoding.md, "Sampling"): temperature (dec.10), top-k (dec.11), top-p (dec.12)
and the draw (dec.13) as numbers; generate() with and without the KV cache, past the block size."""

import numpy as np
import pytest

from transformer_np.decode import GPTStepper
from transformer_np.generate import (
    draw,
    generate,
    next_token,
    scale_temperature,
    softmax,
    top_k_filter,
    top_p_filter,
)
from transformer_np.models.gpt import GPT

V, BLOCK = 11, 9


@pytest.fixture(scope="module")
def gpt():
    return GPT(vocab_size=V, block_size=BLOCK, n_layers=2, n_heads=2, d_model=14, dropout=0.2, rng=np.random.default_rng(0),
               dtype=np.float64)


def random_logits(n, v=V, seed=0, dtype=np.float64):
    return (2.0 * np.random.default_rng(seed).standard_normal((n, v))).astype(dtype)


# -- the rules, one at a time -----------------------------------------------------------------


def test_temperature_divides_the_logits_and_sharpens_or_flattens():
    z = random_logits(4, dtype=np.float32)
    np.testing.assert_array_equal(scale_temperature(z, 2.0), z / np.float32(2.0))
    assert scale_temperature(z, 0.5).dtype == np.float32
    entropy = lambda z: -(softmax(z) * np.log(softmax(z))).sum(-1)
    assert (entropy(scale_temperature(z, 0.5)) < entropy(z)).all()
    assert (entropy(scale_temperature(z, 3.0)) > entropy(z)).all()


def test_temperature_towards_zero_is_the_argmax_and_zero_draws_nothing():
    z = random_logits(500, seed=1)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(next_token(z, temperature=1e-6, rng=rng), z.argmax(-1))
    state = rng.bit_generator.state
    np.testing.assert_array_equal(next_token(z, temperature=0, rng=rng), z.argmax(-1))
    assert rng.bit_generator.state == state  # greedy: no division by zero and no random draw


def test_top_k_keeps_exactly_the_k_largest_of_each_row():
    z = np.array([[0.3, 2.0, -1.0, 2.0, 0.9], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = top_k_filter(z, 2)
    assert np.isneginf(out).sum(axis=1).tolist() == [3, 3]
    assert out[0].tolist()[:4] == [-np.inf, 2.0, -np.inf, 2.0]  # the tie at 2.0: both kept, as the two largest
    assert np.isfinite(top_k_filter(z, 3)[0]).tolist() == [False, True, False, True, True]
    np.testing.assert_array_equal(top_k_filter(z, 99), z)  # k >= V keeps everything
    tie = np.array([[1.0, 1.0, 1.0, 0.0]])
    assert np.isfinite(top_k_filter(tie, 2)).tolist() == [[True, True, False, False]]  # lower id first


def test_top_k_never_samples_outside_the_top_k_and_keeps_their_proportions():
    z = random_logits(3, seed=2)
    rows = np.repeat(z, 20000, axis=0)  # 20000 draws of each of 3 rows, in one vectorised call
    ids = next_token(rows, temperature=1.0, top_k=3, rng=np.random.default_rng(1)).reshape(3, -1)
    top3 = np.argsort(-z, axis=1)[:, :3]
    for b in range(3):
        assert set(np.unique(ids[b]).tolist()) <= set(top3[b].tolist())
        p = np.exp(z[b, top3[b]]) / np.exp(z[b, top3[b]]).sum()  # renormalised over the 3 kept
        freq = np.array([(ids[b] == v).mean() for v in top3[b]])
        assert np.abs(freq - p).max() < 4 * np.sqrt(0.25 / 20000)  # within 4 standard deviations


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    # probabilities 1/8, 1/2, 1/16, 1/4, 1/16 (exact in binary), in scrambled token order
    z = np.log(np.array([[0.125, 0.5, 0.0625, 0.25, 0.0625]]))
    kept = lambda p: set(np.flatnonzero(np.isfinite(top_p_filter(z, p)[0])).tolist())
    assert kept(1e-9) == {1}  # the most likely token is always kept
    assert kept(0.5) == {1}  # 1/2 reaches 0.5 on its own
    assert kept(0.6) == {1, 3}  # 1/2 + 1/4 = 0.75 >= 0.6
    assert kept(0.8) == {1, 3, 0}  # 0.875
    assert kept(0.9) == {1, 3, 0, 2}  # 0.9375; of the two tokens of 1/16 the lower id ranks first
    assert kept(0.95) == {0, 1, 2, 3, 4} == kept(1.0)
    np.testing.assert_array_equal(top_p_filter(z, 0.6)[0, [1, 3]], z[0, [1, 3]])  # kept logits unchanged


def test_top_p_is_applied_row_by_row_after_temperature():
    z = np.log(np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]))
    assert np.isfinite(top_p_filter(z, 0.65)).tolist() == [[True, False, False], [True, True, False]]
    # temperature 1/2 squares and renormalises: 0.49/0.54 = 0.907 alone covers 0.9
    assert np.isfinite(top_p_filter(scale_temperature(z, 0.5), 0.9)).tolist()[0] == [True, False, False]


def test_draw_matches_the_softmax_and_never_draws_a_zero_probability_token():
    z = np.array([[0.0, np.log(3.0), -np.inf, np.log(4.0)]], dtype=np.float32)  # 1/8, 3/8, 0, 4/8
    ids = draw(np.repeat(z, 40000, axis=0), np.random.default_rng(3))
    counts = np.bincount(ids, minlength=4) / 40000
    assert counts[2] == 0.0
    np.testing.assert_allclose(counts, [1 / 8, 3 / 8, 0.0, 4 / 8], atol=4 * np.sqrt(0.25 / 40000))
    assert ids.dtype == np.int64


def test_the_same_seed_gives_the_same_tokens_and_another_seed_others():
    z = random_logits(64, seed=4)
    a = next_token(z, 0.9, top_k=5, top_p=0.95, rng=np.random.default_rng(7))
    b = next_token(z, 0.9, top_k=5, top_p=0.95, rng=np.random.default_rng(7))
    c = next_token(z, 0.9, top_k=5, top_p=0.95, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


@pytest.mark.parametrize("settings, message", [
    ({"temperature": -0.5}, r"temperature: expected a finite number >= 0 \(0 = greedy\), received -0.5"),
    ({"temperature": float("nan")}, r"temperature: expected a finite number >= 0 \(0 = greedy\), received nan"),
    ({"top_k": 0}, r"top_k: expected an integer >= 1, received 0"),
    ({"top_k": 2.5}, r"top_k: expected an integer >= 1, received 2.5"),
    ({"top_p": 0.0}, r"top_p: expected a probability in \(0, 1\], received 0.0"),
    ({"top_p": 1.5}, r"top_p: expected a probability in \(0, 1\], received 1.5"),
])
def test_bad_settings_are_refused_naming_expected_and_received(gpt, settings, message):
    with pytest.raises(ValueError, match=message):
        next_token(random_logits(2), **settings)
    with pytest.raises(ValueError, match=message):
        generate(gpt, np.array([1, 2]), 3, **settings)


# -- generate() with a GPT --------------------------------------------------------------------


def test_prompts_that_are_empty_too_long_or_out_of_range_are_refused(gpt):
    with pytest.raises(ValueError, match=r"prompt_ids: expected a non-empty prompt \(at least one token\), "
                                         r"received shape \(2, 0\)"):
        generate(gpt, np.zeros((2, 0), dtype=np.int64), 3)
    with pytest.raises(ValueError, match=rf"prompt_ids: expected at most block_size={BLOCK} tokens "
                                         rf"\(the model's context\), received {BLOCK + 1}"):
        generate(gpt, np.ones(BLOCK + 1, dtype=np.int64), 3)
    with pytest.raises(ValueError, match=rf"prompt_ids: expected values in \[0, {V}\), received values in \[0, {V}\]"):
        generate(gpt, np.array([0, V]), 3)


@pytest.mark.parametrize("settings", [{"temperature": 0}, {"temperature": 1.0}, {"temperature": 0.8, "top_k": 4},
                                      {"temperature": 1.3, "top_p": 0.8}])
def test_cached_and_uncached_generation_give_the_same_tokens_past_the_block_size(gpt, settings):
    prompt = np.random.default_rng(5).integers(0, V, size=(3, 4))
    steps = 3 * BLOCK  # the context is cropped to the last BLOCK tokens from token BLOCK + 1 on
    cached = generate(gpt, prompt, steps, rng=np.random.default_rng(1), use_cache=True, **settings)
    uncached = generate(gpt, prompt, steps, rng=np.random.default_rng(1), use_cache=False, **settings)
    assert cached.shape == (3, 4 + steps) and cached.dtype == prompt.dtype
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_array_equal(cached[:, :4], prompt)
    again = generate(gpt, prompt, steps, rng=np.random.default_rng(1), **settings)
    np.testing.assert_array_equal(again, cached)  # seeded: repeatable


def test_greedy_past_the_block_size_uses_the_last_block_size_tokens(gpt):
    out = generate(gpt, np.array([[3, 1, 4]]), 2 * BLOCK, temperature=0)
    gpt.eval()
    for t in range(3, out.shape[1]):
        context = out[:, max(0, t - BLOCK):t]
        assert gpt.forward(context)[0, -1].argmax() == out[0, t]
    gpt.train()
    np.testing.assert_array_equal(out, generate(gpt, np.array([[3, 1, 4]]), 2 * BLOCK, temperature=0, use_cache=False))


def test_the_cache_restarts_once_per_token_after_the_block_is_full(gpt):
    step, idx = GPTStepper(gpt, 1, use_cache=True), np.array([[1, 2, 3]])
    gpt.eval()
    for t in range(3, BLOCK + 4):
        step(idx)
        idx = np.concatenate([idx, [[t % V]]], axis=1)
    gpt.train()
    assert step.restarts == 3 and step.cache.length == BLOCK  # tokens BLOCK+1 .. BLOCK+3 each recomputed


def test_generate_keeps_the_rank_of_the_prompt_and_the_mode_of_the_model(gpt):
    gpt.train()
    out = generate(gpt, np.array([1, 2, 3]), 5, top_k=3, rng=np.random.default_rng(0))
    assert out.shape == (8,) and out[:3].tolist() == [1, 2, 3] and gpt.training
    assert ((0 <= out) & (out < V)).all()
    assert generate(gpt, np.array([1, 2, 3]), 0).tolist() == [1, 2, 3]


def test_logits_nothing_can_be_drawn_from_are_refused():
    """NaN logits (a model with NaN weights) once gave token 0 every time; a row of -inf only has
    no token to draw. Both are refused with a message, greedy or sampled."""
    z = np.array([[0.0, 1.0, 2.0], [0.5, np.nan, 0.0]])
    for temperature in (0, 1.0):
        with pytest.raises(ValueError, match=r"logits: expected numbers \(finite or -inf\), received NaN in rows \[1\]"):
            next_token(z, temperature=temperature)
    z = np.array([[0.0, -np.inf, 2.0], [-np.inf, -np.inf, -np.inf]])
    with pytest.raises(ValueError, match=r"expected at least one token .* received rows \[1\] with none"):
        next_token(z, rng=np.random.default_rng(0))
    assert next_token(z[:1], temperature=0).tolist() == [2]  # -inf entries are fine where a token remains


def test_the_sampler_uses_the_library_softmax():
    from transformer_np import generate as generate_module
    from transformer_np.layers.activation import softmax

    assert generate_module.softmax is softmax
