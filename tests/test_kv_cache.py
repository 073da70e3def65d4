"""The KV cache (notes/decoding.md, "The KV cache"): cached decoding gives the logits and tokens of
full recomputation (dec.1)-(dec.4), for the GPT and the encoder-decoder, with padding in the
batch; select() reorders every stored array (dec.9); the memory is (dec.7) + (dec.8)."""

import numpy as np
import pytest

from transformer_np.layers.kv_cache import KVCache
from transformer_np.layers.masks import causal_mask, padding_mask_from_lengths
from transformer_np.layers.multihead import MultiHeadAttention
from transformer_np.models.counting import kv_cache_bytes
from transformer_np.models.gpt import GPT
from transformer_np.models.transformer import Transformer

TOL = 1e-10
V_GPT, BLOCK, L, H, D = 17, 19, 2, 3, 15  # Dh = 5
V_SRC, V_TGT, S, MAX_LEN = 13, 11, 7, 23


def make_gpt(dtype=np.float64, dropout=0.0, block=BLOCK):
    return GPT(vocab_size=V_GPT, block_size=block, n_layers=L, n_heads=H, d_model=D, dropout=dropout,
               rng=np.random.default_rng(0), dtype=dtype).eval()


def make_transformer(norm="post", dtype=np.float64, dropout=0.1):
    rng = np.random.default_rng(1)
    model = Transformer(src_vocab=V_SRC, tgt_vocab=V_TGT, d_model=D, n_heads=H, n_layers=L, d_ff=21, dropout=dropout,
                        max_len=MAX_LEN, norm=norm, rng=rng, dtype=dtype)
    return model.eval()


def left_padded_prompts(rng):
    """(3, 5) prompts, rows 1 and 2 left-padded with 2 and 4 pad positions, and their key mask."""
    pads = np.array([0, 2, 4])
    prompt = rng.integers(0, V_GPT, size=(3, 5))
    real = np.arange(5)[None, :] >= pads[:, None]
    prompt[~real] = 0
    return prompt, real


def padded_sources(rng):
    """(3, S) sources of real lengths 7, 4, 2 (the rest pad id 0) and their (3, 1, 1, S) mask."""
    lengths = np.array([S, 4, 2])
    src = rng.integers(1, V_SRC, size=(3, S))
    src[np.arange(S)[None, :] >= lengths[:, None]] = 0
    return src, padding_mask_from_lengths(lengths, S)


def gpt_greedy(model, prompt, real, steps, cached):
    """Greedy tokens and the last-position logits of every step, with or without the cache."""
    seq, mask, logits_seen = prompt, real, []
    cache = model.new_cache(len(prompt)) if cached else None
    new = prompt
    for _ in range(steps):
        key_mask = mask[:, None, None, :]
        logits = model.forward(new, key_mask, cache=cache) if cached else model.forward(seq, key_mask)
        logits_seen.append(logits[:, -1])
        new = logits[:, -1].argmax(axis=-1)[:, None]
        seq, mask = np.concatenate([seq, new], 1), np.concatenate([mask, np.ones_like(new, bool)], 1)
    return seq, logits_seen


def test_gpt_cached_equals_recomputation_with_left_padded_prompts():
    model = make_gpt()
    prompt, real = left_padded_prompts(np.random.default_rng(2))
    ids_ref, logits_ref = gpt_greedy(model, prompt, real, 10, cached=False)
    ids, logits = gpt_greedy(model, prompt, real, 10, cached=True)
    assert np.array_equal(ids, ids_ref)
    for step, (a, b) in enumerate(zip(logits, logits_ref)):
        assert np.abs(a - b).max() < TOL, step
    # the prompt fed at once gives every row of the full forward, pad queries included
    cache = model.new_cache(3)
    key_mask = real[:, None, None, :]
    assert np.abs(model.forward(prompt, key_mask, cache=cache) - model.forward(prompt, key_mask)).max() < TOL


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_transformer_cached_equals_recomputation_with_sources_of_different_lengths(norm):
    model = make_transformer(norm)
    src, src_mask = padded_sources(np.random.default_rng(3))
    memory = model.encode(src, src_mask)
    cache = model.new_cache(memory, src_mask, capacity=2)  # small: the buffers must grow twice
    tgt = tgt_ref = np.ones((3, 1), dtype=np.int64)
    for t in range(1, 9):
        logits = model.decode(tgt[:, -1:], cache=cache)[:, -1]
        ref = model.decode(tgt_ref, memory, src_mask, causal_mask(t))[:, -1]
        assert np.abs(logits - ref).max() < TOL, t
        tgt = np.concatenate([tgt, logits.argmax(-1)[:, None]], 1)
        tgt_ref = np.concatenate([tgt_ref, ref.argmax(-1)[:, None]], 1)
        assert np.array_equal(tgt, tgt_ref)
    assert cache.self_attn[0].capacity == 8


def test_transformer_cross_attention_keys_and_values_are_computed_once_per_source():
    model = make_transformer()
    src, src_mask = padded_sources(np.random.default_rng(4))
    cross = model.decoder.layers[1].cross_attn.sublayer
    calls = []
    forward = cross.w_k.forward
    cross.w_k.forward = lambda x: calls.append(x.shape) or forward(x)
    cache = model.new_cache(model.encode(src, src_mask), src_mask)
    for _ in range(4):
        model.decode(np.ones((3, 1), dtype=np.int64), cache=cache)
    assert calls == [(3, S, D)]


def test_select_reorders_and_expands_every_stored_array():
    model = make_transformer("pre")
    src, src_mask = padded_sources(np.random.default_rng(5))
    tgt = np.array([[1, 4, 2], [1, 3, 3], [1, 5, 7]])
    cache = model.new_cache(model.encode(src, src_mask), src_mask)
    model.decode(tgt, cache=cache)
    rows = np.array([2, 0, 0, 1, 2])
    assert cache.select(rows) is cache and cache.batch_size == 5 and cache.length == 3
    assert cache.src_mask.shape == (5, 1, 1, S) and np.array_equal(cache.src_mask, src_mask[rows])
    new = np.array([[6], [2], [9], [4], [3]])
    logits = model.decode(new, cache=cache)[:, -1]
    full = np.concatenate([tgt[rows], new], 1)
    memory = model.encode(src[rows], src_mask[rows])
    ref = model.decode(full, memory, src_mask[rows], causal_mask(4))[:, -1]
    assert np.abs(logits - ref).max() < TOL
    # GPT: the same on a self-attention-only cache, rows as a plain list
    gpt = make_gpt()
    prompt = np.random.default_rng(6).integers(0, V_GPT, size=(2, 4))
    gcache = gpt.new_cache(2)
    gpt.forward(prompt, cache=gcache)
    gcache.select([1, 1, 0])
    nxt = np.array([[3], [5], [8]])
    ref = gpt.forward(np.concatenate([prompt[[1, 1, 0]], nxt], 1))[:, -1]
    assert np.abs(gpt.forward(nxt, cache=gcache)[:, -1] - ref).max() < TOL


def test_select_refuses_rows_out_of_range_or_of_the_wrong_rank():
    cache = make_gpt().new_cache(2)
    with pytest.raises(ValueError, match=r"rows: expected values in \[0, 2\), received values in \[0, 2\]"):
        cache.select([0, 2])
    with pytest.raises(ValueError, match=r"rows: expected 1 dimensions"):
        cache.select(np.zeros((2, 1), dtype=int))


def test_asking_for_more_positions_than_the_model_supports_is_an_error_naming_both_numbers():
    model = make_gpt(block=8)
    cache = model.new_cache(1)
    model.forward(np.zeros((1, 6), dtype=np.int64), cache=cache)
    with pytest.raises(ValueError, match=r"max_len=8 .*received 6 cached \+ 3 new = 9"):
        model.forward(np.zeros((1, 3), dtype=np.int64), cache=cache)
    assert cache.length == 6  # untouched: two more still fit
    model.forward(np.zeros((1, 2), dtype=np.int64), cache=cache)
    with pytest.raises(ValueError, match=r"max_len=8 .*received 8 cached \+ 1 new = 9"):
        model.forward(np.zeros((1, 1), dtype=np.int64), cache=cache)
    tf = make_transformer()
    src, src_mask = padded_sources(np.random.default_rng(7))
    tcache = tf.new_cache(tf.encode(src, src_mask), src_mask)
    tf.decode(np.ones((3, 20), dtype=np.int64), cache=tcache)
    with pytest.raises(ValueError, match=rf"max_len={MAX_LEN} .*received 20 cached \+ 4 new = 24"):
        tf.decode(np.ones((3, 4), dtype=np.int64), cache=tcache)


def test_float32_stays_float32():
    model = make_gpt(np.float32)
    cache = model.new_cache(2)
    logits = model.forward(np.ones((2, 3), dtype=np.int64), cache=cache)
    assert logits.dtype == np.float32 and cache.self_attn[1].k.dtype == np.float32
    tf = make_transformer(dtype=np.float32)
    src, src_mask = padded_sources(np.random.default_rng(8))
    tcache = tf.new_cache(tf.encode(src, src_mask), src_mask)
    logits = tf.decode(np.ones((3, 1), dtype=np.int64), cache=tcache)
    assert logits.dtype == np.float32
    assert {tcache.self_attn[0].v.dtype, tcache.cross_attn[1].k.dtype} == {np.dtype(np.float32)}
    assert tcache.nbytes() == 2 * L * 3 * D * (1 + S) * 4  # (dec.7) + (dec.8) with b = 4
    assert tcache.nbytes() == kv_cache_bytes(tf.config, 3, 1, 4, source_length=S)


def test_cache_shapes_after_each_step_and_the_memory_formula():
    model = make_gpt()
    cache = model.new_cache(2)
    assert cache.length == 0 and cache.max_len == BLOCK and cache.shapes()["layers.0.self.k"] == (2, H, 0, D // H)
    model.forward(np.ones((2, 4), dtype=np.int64), cache=cache)
    for t in range(5, 8):
        model.forward(np.ones((2, 1), dtype=np.int64), cache=cache)
        shapes = cache.shapes()
        assert cache.length == t and sorted(shapes) == [f"layers.{i}.self.{a}" for i in range(L) for a in "kv"]
        assert set(shapes.values()) == {(2, H, t, D // H)}
        assert cache.nbytes() == 2 * L * 2 * H * t * (D // H) * 8  # (dec.7), float64
        assert cache.nbytes() == kv_cache_bytes(model.config, 2, t, 8)
        assert f"length={t}, max_len={BLOCK}, batch=2" in repr(cache) and f"(2, {H}, {t}, 5)" in repr(cache)
    tf = make_transformer()
    src, src_mask = padded_sources(np.random.default_rng(9))
    tcache = tf.new_cache(tf.encode(src, src_mask), src_mask)
    tf.decode(np.ones((3, 2), dtype=np.int64), cache=tcache)
    assert tcache.shapes()["layers.1.cross.v"] == (3, H, S, 5) and tcache.shapes()["layers.1.self.v"] == (3, H, 2, 5)
    assert tcache.shapes()["src_mask"] == (3, 1, 1, S) and f"cross K, V (3, {H}, {S}, 5)" in repr(tcache)


def test_decoding_needs_eval_mode_and_then_dropout_is_off():
    model = make_gpt(dropout=0.3)
    ids = np.random.default_rng(10).integers(0, V_GPT, size=(2, 6))
    assert np.abs(model.forward(ids, cache=model.new_cache(2)) - model.forward(ids)).max() < TOL
    model.train()
    with pytest.raises(RuntimeError, match="expected eval mode"):
        model.forward(ids, cache=model.new_cache(2))
    tf = make_transformer(dropout=0.3)
    src, src_mask = padded_sources(np.random.default_rng(11))
    cache = tf.new_cache(tf.encode(src, src_mask), src_mask)
    with pytest.raises(RuntimeError, match="expected eval mode"):
        tf.train().decode(np.ones((3, 1), dtype=np.int64), cache=cache)
    mha = MultiHeadAttention(D, H, rng=np.random.default_rng(0), dtype=np.float64)
    with pytest.raises(RuntimeError, match="expected eval mode"):
        mha.forward(np.zeros((1, 1, D)), cache=mha.self_cache(1, 4))


def test_the_cached_path_keeps_nothing_for_backward():
    mha = MultiHeadAttention(D, H, rng=np.random.default_rng(0), dtype=np.float64).eval()
    x = np.random.default_rng(12).standard_normal((2, 4, D))
    mha.forward(x, mask=causal_mask(4))
    mha.forward(x[:, :1], cache=mha.self_cache(2, 4))
    with pytest.raises(RuntimeError, match="after a forward that kept nothing for backward"):
        mha.backward(np.ones((2, 1, D)))
    model = make_gpt()
    model.forward(np.ones((1, 3), dtype=np.int64))
    model.forward(np.ones((1, 3), dtype=np.int64), cache=model.new_cache(1))
    with pytest.raises(RuntimeError, match="after a forward that kept nothing for backward"):
        model.backward(np.ones((1, 3, V_GPT)))
    for module in model.modules():  # every layer let go of what the uncached forward had saved
        assert module._cache is None or module._cache == ("kept nothing: inference forward",), module


def test_multihead_appending_one_token_at_a_time_equals_causal_self_attention():
    mha = MultiHeadAttention(D, H, rng=np.random.default_rng(0), dtype=np.float64).eval()
    x = np.random.default_rng(13).standard_normal((2, 6, D))
    full = mha.forward(x, mask=causal_mask(6))
    cache = mha.self_cache(2, 6)
    steps = [mha.forward(x[:, t : t + 1], cache=cache) for t in range(6)]
    assert np.abs(np.concatenate(steps, 1) - full).max() < TOL
    K = (x @ mha.w_k.weight.data + mha.w_k.bias.data).reshape(2, 6, H, D // H).transpose(0, 2, 1, 3)
    assert np.abs(cache.k - K).max() < TOL  # (dec.2), (dec.3): head h is the columns h Dh .. (h+1) Dh - 1
    with pytest.raises(ValueError, match="max_len=6"):
        mha.forward(x[:, :1], cache=cache)
    with pytest.raises(ValueError, match=r"cache: expected one built for this layer and batch, K, V of \(B, Hkv, t, Dh\) = \(1, 3, t, 5\)"):
        mha.forward(x[:1, :1], cache=mha.self_cache(2, 6))
    with pytest.raises(TypeError, match="SelfAttentionCache or CrossAttentionCache"):
        mha.forward(x, cache=KVCache([mha.self_cache(2, 6)]))
