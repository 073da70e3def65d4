"""Sliding-window attention (notes/window.md): the banded computation equals the window as a mask
on the standard path to 1e-12 (outputs and gradients), keeps O(T w) numbers, and the rolling KV
cache of w positions generates exactly what the uncached windowed model computes."""

import numpy as np
import pytest

from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths, sliding_window_mask
from transformer_np.layers.window_attention import RollingKVCache, SlidingWindowAttention
from transformer_np.models import GPT, Transformer
from transformer_np.models.counting import kv_cache_bytes

B, H, DH, DV = 3, 4, 5, 6
TOL = 1e-12


def _inputs(rng, Tq, Tk, n_kv=H):
    return (rng.standard_normal((B, H, Tq, DH)), rng.standard_normal((B, n_kv, Tk, DH)),
            rng.standard_normal((B, n_kv, Tk, DV)))


def test_the_window_mask_under_a_causal_mask_keeps_the_last_w_keys():
    m = combine_masks(sliding_window_mask(6, 3), causal_mask(6))[0, 0]
    assert [list(np.flatnonzero(row)) for row in m] == [[0], [0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    alone = sliding_window_mask(5, 2)[0, 0]  # without the causal mask: the 2w - 1 keys around the query
    assert [list(np.flatnonzero(row)) for row in alone] == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4]]
    assert sliding_window_mask(2, 1, offset=3).shape == (1, 1, 2, 5)
    assert np.array_equal(sliding_window_mask(2, 2, offset=3)[0, 0], sliding_window_mask(5, 2)[0, 0, 3:])


@pytest.mark.parametrize("window", [1, 2, 4, 30])
@pytest.mark.parametrize("block", [None, 1, 3, 8, 40])
@pytest.mark.parametrize("masks", ["none", "padding", "causal + padding"])
def test_banded_equals_the_window_as_a_mask(window, block, masks):
    rng = np.random.default_rng(window * 100 + (block or 0))
    T = 11
    Q, K, V = _inputs(rng, T, T, n_kv=2)
    mask = {"none": None, "padding": padding_mask_from_lengths(np.array([T, 6, 0]), T),
            "causal + padding": combine_masks(padding_mask_from_lengths(np.array([T, 6, 0]), T), causal_mask(T))}[masks]
    ref = ScaledDotProductAttention()
    O_ref = ref.forward(Q, K, V, mask=combine_masks(mask, sliding_window_mask(T, window)))
    layer = SlidingWindowAttention(window, block=block)
    O = layer.forward(Q, K, V, mask=mask)
    assert np.abs(O - O_ref).max() < TOL
    dO = rng.standard_normal(O.shape)
    for g, g_ref in zip(layer.backward(dO), ref.backward(dO)):
        assert g.shape == g_ref.shape and np.abs(g - g_ref).max() < TOL


def test_queries_are_the_last_positions_when_the_mask_covers_more_keys_than_given():
    """What a rolling cache hands over: the mask spans all n positions, K only the last Tk."""
    rng = np.random.default_rng(1)
    n, Tq, Tk, w = 12, 2, 5, 4
    Q, K_all, V_all = _inputs(rng, Tq, n)
    mask = causal_mask(Tq, offset=n - Tq)  # (1, 1, 2, 12)
    full = ScaledDotProductAttention().forward(Q, K_all, V_all, mask=combine_masks(mask, sliding_window_mask(Tq, w, offset=n - Tq)))
    for block in (None, 1):
        O = SlidingWindowAttention(w, block=block).forward(Q, K_all[:, :, -Tk:], V_all[:, :, -Tk:], mask=mask)
        assert np.abs(O - full).max() < TOL


def test_banded_memory_is_linear_in_T():
    rng = np.random.default_rng(2)
    T, w, b = 64, 4, 4
    Q, K, V = _inputs(rng, T, T)
    layer = SlidingWindowAttention(w, block=b)
    layer.forward(Q, K, V, mask=causal_mask(T))
    blocks = layer._cache[0]
    stored = sum(core._cache[3].size for *_, core in blocks)  # every block's P
    assert stored <= B * H * T * (b + w - 1) < B * H * T * T / 8
    assert all(core._cache[3].shape[-1] <= b + w - 1 for *_, core in blocks)  # causal: the future half trimmed
    assert layer.attn_weights is None


def _gpt(attention, **extra):
    return GPT(vocab_size=13, block_size=24, n_layers=2, n_heads=4, n_kv_heads=2, d_model=16, attention=attention,
               rng=np.random.default_rng(3), dtype=np.float64, **extra).eval()


@pytest.mark.parametrize("window", [1, 3, 5])
def test_rolling_cache_generation_equals_the_uncached_windowed_model(window):
    model = _gpt("window", window=window, tile=2)
    idx = np.random.default_rng(window).integers(0, 13, size=(2, 17))
    full = model.forward(idx)
    cache = model.new_cache(2)
    assert isinstance(cache.self_attn[0], RollingKVCache)
    steps = [model.forward(idx[:, :4], cache=cache)]
    for t in range(4, 17):
        steps.append(model.forward(idx[:, t:t + 1], cache=cache))
        assert cache.self_attn[0].k.shape[2] == min(t + 1, window)  # never more than w positions
        assert cache.nbytes() == kv_cache_bytes(model.config, 2, t + 1, 8)  # (win.5)
    assert np.abs(np.concatenate(steps, axis=1) - full).max() < 1e-10
    assert cache.length == 17


def test_the_window_changes_the_model_and_a_window_as_long_as_T_does_not():
    idx = np.random.default_rng(4).integers(0, 13, size=(2, 9))
    standard = _gpt("standard")
    wide, narrow = _gpt("window", window=9, tile=4), _gpt("window", window=2, tile=4)
    assert np.abs(wide.forward(idx) - standard.forward(idx)).max() < TOL
    assert np.abs(narrow.forward(idx) - standard.forward(idx)).max() > 1e-3
    # the first 2 positions see at most 2 keys either way: equal there
    assert np.abs(narrow.forward(idx)[:, :2] - standard.forward(idx)[:, :2]).max() < TOL


def test_encoder_decoder_with_a_window_decodes_with_the_rolling_cache():
    model = Transformer(src_vocab=9, tgt_vocab=9, d_model=12, n_heads=3, n_layers=2, d_ff=20, dropout=0.0,
                        attention="window", window=2, tile=3, rng=np.random.default_rng(5), dtype=np.float64).eval()
    assert type(model.decoder.layers[0].cross_attn.sublayer.attention) is ScaledDotProductAttention  # cross: standard
    rng = np.random.default_rng(6)
    src, tgt = rng.integers(0, 9, size=(2, 6)), rng.integers(0, 9, size=(2, 7))
    src_mask = padding_mask_from_lengths(np.array([6, 4]), 6)
    memory = model.encode(src, src_mask)
    full = model.decode(tgt, memory, src_mask)
    cache = model.new_cache(memory, src_mask)
    steps = [model.decode(tgt[:, t:t + 1], cache=cache) for t in range(7)]
    assert np.abs(np.concatenate(steps, axis=1) - full).max() < 1e-10
    assert cache.self_attn[0].k.shape[2] == 2


def test_rolling_cache_select_and_errors():
    like = np.zeros(1)
    cache = RollingKVCache(2, 1, 3, 10, 2, like=like)
    K = np.arange(2 * 1 * 3 * 3, dtype=float).reshape(2, 1, 3, 3)
    Kall, _ = cache.append(K, K)
    assert Kall.shape == (2, 1, 3, 3) and cache.k.shape == (2, 1, 2, 3) and cache.length == 3
    cache.select(np.array([1, 1, 0]))
    assert cache.k.shape == (3, 1, 2, 3) and np.array_equal(cache.k[0], K[1, :, 1:])
    with pytest.raises(ValueError, match="expected at most max_len=10"):
        cache.append(np.zeros((3, 1, 8, 3)), np.zeros((3, 1, 8, 3)))
    with pytest.raises(ValueError, match=r"K_new: expected shape \(B, H, T_new, Dh\) = \(3, 1, T_new, 3\)"):
        cache.append(np.zeros((2, 1, 1, 3)), np.zeros((2, 1, 1, 3)))


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [0, -2, 1.5])
def test_a_window_below_one_is_refused(window):
    with pytest.raises(ValueError, match=r"window: expected an integer >= 1, received"):
        SlidingWindowAttention(window)
    with pytest.raises(ValueError, match=r"window: expected an integer >= 1, received"):
        sliding_window_mask(4, window)
    with pytest.raises(ValueError, match=r"expected window an integer >= 1, received"):
        _gpt("window", window=window)


def test_other_bad_input():
    with pytest.raises(ValueError, match=r"block: expected an integer >= 1, received 0"):
        SlidingWindowAttention(2, block=0)
    with pytest.raises(ValueError, match=r"banded computation has no attention dropout: expected dropout=0"):
        SlidingWindowAttention(2, block=2, dropout=0.1)
    Q, K, V = _inputs(np.random.default_rng(0), 6, 4)
    with pytest.raises(ValueError, match=r"expected the queries to be the last Tq of the n positions, Tq <= n, "
                                         r"received Tq=6, n=4"):
        SlidingWindowAttention(2).forward(Q, K, V)


def test_beam_search_reorders_the_rolling_cache():
    """select(rows) on every RollingKVCache: cached beam search equals uncached beam search."""
    from transformer_np.beam import beam_search

    model = Transformer(src_vocab=9, tgt_vocab=9, d_model=12, n_heads=3, n_layers=2, d_ff=20, dropout=0.0,
                        attention="window", window=2, tile=3, rng=np.random.default_rng(1), dtype=np.float64).eval()
    src = np.random.default_rng(2).integers(3, 9, size=(2, 6))
    src_mask = padding_mask_from_lengths(np.array([6, 4]), 6)
    cached = beam_search(model, src, src_mask, 3, 10, 1, 2, use_cache=True)
    uncached = beam_search(model, src, src_mask, 3, 10, 1, 2, use_cache=False)
    assert np.array_equal(cached[0], uncached[0]) and np.abs(cached[1] - uncached[1]).max() < 1e-10
