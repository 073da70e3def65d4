"""A bias on the attention scores (notes/score_bias.md): the mechanism (bias.1, bias.2) against PyTorch,
ALiBi's slopes by the paper's rule (alibi.1) and its two forms, T5's buckets (rel.1) against a plain
reading of T5's definition, the table's scatter-add (rel.3), cached = uncached, and bad input."""

import math

import numpy as np
import pytest

from transformer_np.layers.alibi import ALiBi, alibi_slopes
from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.kv_cache import SelfAttentionCache
from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from transformer_np.layers.multihead import MultiHeadAttention
from transformer_np.layers.t5_bias import T5RelativeBias, t5_buckets


# -- the mechanism -------------------------------------------------------------------------------
def test_a_bias_is_added_to_the_scores_and_its_gradient_summed_over_the_batch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    B, H, Tq, Tk, Dh = 3, 2, 4, 6, 5
    Q, K, V = (rng.standard_normal((B, H, T, Dh)) for T in (Tq, Tk, Tk))
    bias, dO = rng.standard_normal((1, H, Tq, Tk)), rng.standard_normal((B, H, Tq, Dh))
    mask = combine_masks(padding_mask_from_lengths(np.array([6, 4, 3]), Tk), causal_mask(Tq, offset=Tk - Tq))
    sdpa = ScaledDotProductAttention()
    O = sdpa.forward(Q, K, V, mask=mask, bias=bias)
    dQ, dK, dV, dbias = sdpa.backward(dO)
    assert dbias.shape == bias.shape
    Qt, Kt, Vt, bt = (torch.tensor(a, requires_grad=True) for a in (Q, K, V, bias))
    float_mask = torch.where(torch.tensor(np.broadcast_to(mask, (B, 1, Tq, Tk))), 0.0, -math.inf).double()
    Ot = torch.nn.functional.scaled_dot_product_attention(Qt, Kt, Vt, attn_mask=bt + float_mask)
    Ot.backward(torch.tensor(dO))
    for ours, theirs in ((O, Ot), (dQ, Qt.grad), (dK, Kt.grad), (dV, Vt.grad), (dbias, bt.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-12)


def test_without_a_bias_backward_returns_three_gradients():
    rng = np.random.default_rng(1)
    Q = rng.standard_normal((1, 2, 3, 4))
    sdpa = ScaledDotProductAttention()
    sdpa.forward(Q, Q, Q)
    assert len(sdpa.backward(np.ones((1, 2, 3, 4)))) == 3


def test_a_bias_of_the_wrong_shape_is_refused():
    Q = np.zeros((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"bias: expected a shape broadcastable to \(B, H, Tq, Tk\) = "
                                         r"\(2, 3, 4, 4\), received \(1, 2, 4, 4\)"):
        ScaledDotProductAttention().forward(Q, Q, Q, bias=np.zeros((1, 2, 4, 4)))


# -- ALiBi -----------------------------------------------------------------------------------------
def test_alibi_slopes_for_a_power_of_two():
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-15)
    np.testing.assert_allclose(alibi_slopes(16), [2.0 ** (-k / 2) for k in range(1, 17)], rtol=1e-15)
    np.testing.assert_allclose(alibi_slopes(1), [2.0 ** -8], rtol=1e-15)


@pytest.mark.parametrize("n", [3, 5, 6, 7, 12, 20, 24])
def test_alibi_slopes_for_other_head_counts_follow_the_papers_rule(n):
    c = 2 ** int(math.log2(n))
    expected = [2.0 ** (-8 * k / c) for k in range(1, c + 1)]
    expected += [2.0 ** (-8 * k / (2 * c)) for k in range(1, 2 * c + 1, 2)][: n - c]
    slopes = alibi_slopes(n)
    assert len(slopes) == n and len(set(slopes)) == n
    np.testing.assert_allclose(slopes, expected, rtol=1e-15)


def test_alibi_slopes_of_six_heads_by_hand():
    np.testing.assert_allclose(alibi_slopes(6), [1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8], rtol=1e-15)


def test_alibi_causal_and_bidirectional_biases():
    like = np.zeros(1)
    causal = ALiBi(2, causal=True).forward(3, 5, like=like)[0]  # queries at positions 2, 3, 4
    both = ALiBi(2, causal=False).forward(3, 5, like=like)[0]
    m0 = alibi_slopes(2)[0]  # 1/16
    assert causal.shape == (2, 3, 5)
    np.testing.assert_allclose(causal[0, 0], [-2 * m0, -m0, 0, 0, 0])
    np.testing.assert_allclose(both[0, 0], [-2 * m0, -m0, 0, -m0, -2 * m0])
    np.testing.assert_allclose(causal[0, 2], both[0, 2])  # the last query has no key after it
    # relative: queries and keys all moved on by 2 positions keep their biases
    np.testing.assert_allclose(ALiBi(2, causal=False).forward(5, 5, like=like)[0, :, 2:, 2:],
                               ALiBi(2, causal=False).forward(3, 3, like=like)[0])


# -- T5 --------------------------------------------------------------------------------------------
def t5_bucket_reference(r, causal, N, M):
    """T5's definition read line by line, for one distance r = key - query, in plain Python."""
    n, bucket = -r, 0
    if not causal:
        N //= 2
        bucket += N if n < 0 else 0
        n = abs(n)
    else:
        n = max(n, 0)
    exact = N // 2
    if n < exact:
        return bucket + n
    large = exact + int(math.log(n / exact) / math.log(M / exact) * (N - exact))
    return bucket + min(large, N - 1)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("N, M", [(32, 128), (8, 20), (6, 5)])
def test_t5_buckets_follow_the_definition(causal, N, M):
    r = np.arange(-300, 301)
    expected = [t5_bucket_reference(int(v), causal, N, M) for v in r]
    np.testing.assert_array_equal(t5_buckets(r, causal, N, M), expected)


def test_t5_buckets_by_hand():
    r = np.array([0, -1, 1, -7, -8, -11, -12, -127, -128, -5000, 5000])
    # bidirectional, 32 buckets: 16 a side, 8 exact, then log-spaced up to distance 128
    np.testing.assert_array_equal(t5_buckets(r, False), [0, 1, 17, 7, 8, 8, 9, 15, 15, 15, 31])
    # causal, 32 buckets: 16 exact; the future shares bucket 0
    np.testing.assert_array_equal(t5_buckets(np.array([0, 3, -15, -16, -127, -128, -10 ** 6]), True),
                                  [0, 0, 15, 16, 31, 31, 31])


def test_t5_two_buckets():
    np.testing.assert_array_equal(t5_buckets(np.array([-3, 0, 3]), False, 2, 128), [0, 0, 1])
    np.testing.assert_array_equal(t5_buckets(np.array([-3, -1, 0, 3]), True, 2, 128), [1, 1, 0, 0])


def test_t5_bias_reads_its_table_and_scatter_adds_back():
    rng = np.random.default_rng(2)
    rel = T5RelativeBias(3, causal=True, n_buckets=4, max_distance=8, rng=rng, dtype=np.float64)
    bias = rel.forward(2, 6)
    buckets = t5_buckets(np.arange(6)[None, :] - np.array([4, 5])[:, None], True, 4, 8)
    np.testing.assert_array_equal(bias[0], rel.weight.data[buckets].transpose(2, 0, 1))
    dbias = rng.standard_normal((1, 3, 2, 6))
    rel.weight.grad[...] = 1.0
    rel.backward(dbias)
    for k in range(4):
        np.testing.assert_allclose(rel.weight.grad[k], 1.0 + dbias[0][:, buckets == k].sum(axis=-1), atol=1e-14)


def test_t5_bad_bucket_counts():
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(ValueError, match=rf"n_buckets an integer >= 2 .*received {bad!r}"):
            T5RelativeBias(2, n_buckets=bad)
    with pytest.raises(ValueError, match=r"max_distance an integer > 8 .*received 8"):
        T5RelativeBias(2, causal=True, n_buckets=16, max_distance=8)


# -- inside multi-head attention ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["alibi", "t5"])
def test_cached_attention_with_a_score_bias_equals_the_whole_sequence(kind):
    rng = np.random.default_rng(3)
    H, D, T = 3, 12, 7
    bias = ALiBi(H) if kind == "alibi" else T5RelativeBias(H, causal=True, n_buckets=6, max_distance=4, rng=rng,
                                                           dtype=np.float64)
    if kind == "t5":
        bias.weight.data[...] = rng.standard_normal(bias.weight.shape)
    mha = MultiHeadAttention(D, H, score_bias=bias, rng=rng, dtype=np.float64).eval()
    x = rng.standard_normal((2, T, D))
    whole = mha.forward(x, mask=causal_mask(T))
    cache = SelfAttentionCache(2, H, D // H, T, like=x)
    steps = [mha.forward(x[:, :2], mask=causal_mask(2), cache=cache)]
    steps += [mha.forward(x[:, t:t + 1], cache=cache) for t in range(2, T)]
    assert np.abs(np.concatenate(steps, axis=1) - whole).max() < 1e-12
    plain = MultiHeadAttention(D, H, rng=np.random.default_rng(3), dtype=np.float64)
    for name in ("w_q", "w_k", "w_v", "w_o"):
        getattr(plain, name).weight.data[...] = getattr(mha, name).weight.data
    assert np.abs(plain.forward(x, mask=causal_mask(T)) - whole).max() > 1e-3  # the bias does something


def test_a_score_bias_for_another_head_count_is_refused():
    with pytest.raises(ValueError, match=r"n_heads=4, received one for 2 heads"):
        MultiHeadAttention(8, 4, score_bias=ALiBi(2))


@pytest.mark.parametrize("causal", [True, False])
def test_t5_table_gradient_by_finite_differences(causal):
    from transformer_np.gradcheck import check_module

    rng = np.random.default_rng(4)
    rel = T5RelativeBias(3, causal=causal, n_buckets=6, max_distance=5, rng=rng, dtype=np.float64)
    (result,) = check_module(rel, 5, 18)  # 5 queries, the last of 18 keys: every bucket is used
    assert result.what == "weight" and result.passed and not result.is_zero, result
    rel.forward(5, 18)
    with pytest.raises(ValueError, match=r"T5RelativeBias.backward: dout: expected the shape of forward's output "
                                         r"\(1, 3, 5, 18\), received \(3, 1, 5, 18\)"):
        rel.backward(np.ones((3, 1, 5, 18)))
