"""Scaled dot-product attention: values against a slow loop, masking rules, extremes, dtypes, errors.

The gradient checks of (attn.5)-(attn.9) run from the catalogue (transformer_np/checks/attention.py).
"""

import math

import numpy as np
import pytest

from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths

B, H, T, DH, DV = 3, 2, 6, 5, 4
LENGTHS = np.array([6, 4, 1])


def _inputs(rng, dtype=np.float64, scale=1.0, Tq=T):
    Q = (scale * rng.standard_normal((B, H, Tq, DH))).astype(dtype)
    K = (scale * rng.standard_normal((B, H, T, DH))).astype(dtype)
    V = rng.standard_normal((B, H, T, DV)).astype(dtype)
    return Q, K, V


def _mask():
    return combine_masks(padding_mask_from_lengths(LENGTHS, T), causal_mask(T))  # (B, 1, T, T)


def _slow_attention(Q, K, V, mask):
    """One (batch, head, query) at a time, softmax over the visible keys only."""
    out = np.zeros(Q.shape[:3] + (V.shape[-1],))
    weights = np.zeros(Q.shape[:3] + (K.shape[2],))
    full_mask = np.broadcast_to(mask, weights.shape)
    for b in range(Q.shape[0]):
        for h in range(Q.shape[1]):
            for i in range(Q.shape[2]):
                visible = [j for j in range(K.shape[2]) if full_mask[b, h, i, j]]
                if not visible:
                    continue
                scores = [float(Q[b, h, i] @ K[b, h, j]) / math.sqrt(Q.shape[-1]) for j in visible]
                top = max(scores)
                exps = [math.exp(s - top) for s in scores]
                for j, e in zip(visible, exps):
                    weights[b, h, i, j] = e / sum(exps)
                out[b, h, i] = sum(weights[b, h, i, j] * V[b, h, j] for j in visible)
    return out, weights


def test_forward_matches_slow_loop_with_padding_and_causal_mask():
    Q, K, V = _inputs(np.random.default_rng(0))
    mask = _mask()
    attn = ScaledDotProductAttention()
    O = attn.forward(Q, K, V, mask=mask)
    O_ref, P_ref = _slow_attention(Q, K, V, mask)
    assert O.shape == (B, H, T, DV)
    np.testing.assert_allclose(O, O_ref, rtol=0, atol=1e-13)
    np.testing.assert_allclose(attn.attn_weights, P_ref, rtol=0, atol=1e-14)


def test_forward_without_mask_and_with_tq_different_from_tk():
    Q, K, V = _inputs(np.random.default_rng(1), Tq=3)
    O = ScaledDotProductAttention().forward(Q, K, V)
    O_ref, _ = _slow_attention(Q, K, V, np.ones((1, 1, 3, T), dtype=bool))
    assert O.shape == (B, H, 3, DV)
    np.testing.assert_allclose(O, O_ref, rtol=0, atol=1e-13)


def test_masked_keys_get_exactly_zero_weight_and_rows_sum_to_one():
    Q, K, V = _inputs(np.random.default_rng(2))
    mask = _mask()
    attn = ScaledDotProductAttention()
    attn.forward(Q, K, V, mask=mask)
    P = attn.attn_weights
    full = np.broadcast_to(mask, P.shape)
    assert np.all(P[~full] == 0.0)  # exactly zero, not just small
    assert np.all(P[full] > 0.0)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    # batch element 2 has length 1: every query puts all of its weight on key 0
    np.testing.assert_array_equal(P[2, :, :, 0], 1.0)


def test_changing_a_masked_key_or_value_changes_nothing():
    Q, K, V = _inputs(np.random.default_rng(3))
    mask = _mask()
    attn = ScaledDotProductAttention()
    O = attn.forward(Q, K, V, mask=mask)
    K2, V2 = K.copy(), V.copy()
    K2[1, :, 4:] = 1e3  # keys 4, 5 of batch element 1 are padding
    V2[1, :, 4:] = -1e3
    np.testing.assert_array_equal(attn.forward(Q, K2, V2, mask=mask), O)


def _fully_masked_row_setup(dtype=np.float64):
    Q, K, V = _inputs(np.random.default_rng(4), dtype)
    mask = np.broadcast_to(_mask(), (B, H, T, T)).copy()
    mask[1, 0, 3, :] = False  # this query sees no key
    mask[0] = False  # ... and batch element 0 sees nothing at all (as with length 0)
    return Q, K, V, mask


def test_fully_masked_row_gives_zero_output_and_zero_gradient_without_nan():
    Q, K, V, mask = _fully_masked_row_setup()
    attn = ScaledDotProductAttention()
    with np.errstate(all="raise"):  # no invalid operation, no division by zero, anywhere
        O = attn.forward(Q, K, V, mask=mask)
        dO = np.random.default_rng(5).standard_normal(O.shape)
        dQ, dK, dV = attn.backward(dO)
    for a in (O, attn.attn_weights, dQ, dK, dV):
        assert np.isfinite(a).all()
    P = attn.attn_weights
    assert np.all(P[1, 0, 3] == 0.0) and np.all(O[1, 0, 3] == 0.0) and np.all(dQ[1, 0, 3] == 0.0)
    assert np.all(P[0] == 0.0) and np.all(O[0] == 0.0)
    assert np.all(dQ[0] == 0.0) and np.all(dK[0] == 0.0) and np.all(dV[0] == 0.0)
    # the other rows are untouched: they still sum to one
    np.testing.assert_allclose(P[1, 0, [0, 1, 2, 4, 5]].sum(axis=-1), 1.0, atol=1e-14)

    # the masked row's upstream gradient reaches nothing: changing it changes no gradient
    attn.forward(Q, K, V, mask=mask)
    dO2 = dO.copy()
    dO2[1, 0, 3] = 1e6
    dQ2, dK2, dV2 = attn.backward(dO2)
    np.testing.assert_array_equal(dQ2, dQ)
    np.testing.assert_array_equal(dK2, dK)
    np.testing.assert_array_equal(dV2, dV)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_with_scores_of_magnitude_1e4(dtype):
    rng = np.random.default_rng(6)
    Q, K, V = _inputs(rng, dtype, scale=1.0)
    # scale Q so that the scores are of order 1e4
    S = (Q.astype(np.float64) @ np.swapaxes(K, -1, -2)) / math.sqrt(DH)
    Q = (Q * (1e4 / np.abs(S).max())).astype(dtype)
    attn = ScaledDotProductAttention()
    mask = _mask()
    with np.errstate(over="raise", invalid="raise"):
        O = attn.forward(Q, K, V, mask=mask)
        dQ, dK, dV = attn.backward(np.ones_like(O))
    for a in (O, attn.attn_weights, dQ, dK, dV):
        assert np.isfinite(a).all()
    P = attn.attn_weights
    # with scores of order 1e4 (and gaps of hundreds) every row is one-hot on its largest visible score
    S_full = Q.astype(np.float64) @ np.swapaxes(K, -1, -2)
    S_masked = np.where(np.broadcast_to(mask, P.shape), S_full, -np.inf)
    winners = S_masked.argmax(axis=-1)
    np.testing.assert_allclose(np.take_along_axis(P, winners[..., None], -1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=1e-6)


def test_float32_in_float32_everywhere():
    Q, K, V, mask = _fully_masked_row_setup(np.float32)
    attn = ScaledDotProductAttention()
    O = attn.forward(Q, K, V, mask=mask)
    grads = attn.backward(np.ones_like(O))
    assert O.dtype == np.float32 and attn.attn_weights.dtype == np.float32
    assert [g.dtype for g in grads] == [np.float32] * 3


def test_backward_before_forward_and_twice_raises():
    attn = ScaledDotProductAttention()
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward\\(\\)"):
        attn.backward(np.ones((B, H, T, DV)))
    Q, K, V = _inputs(np.random.default_rng(7))
    O = attn.forward(Q, K, V)
    attn.backward(np.ones_like(O))
    with pytest.raises(RuntimeError, match="before forward"):
        attn.backward(np.ones_like(O))


def test_shape_and_dtype_errors_name_expected_and_received():
    Q, K, V = _inputs(np.random.default_rng(8))
    attn = ScaledDotProductAttention()
    with pytest.raises(
        ValueError,
        match=r"Q: expected 4 dimensions \(B, H, T, Dh\), received shape \(3, 6, 5\)",
    ):
        attn.forward(Q[:, 0], K, V)
    with pytest.raises(
        ValueError,
        match=r"K: expected shape .*B=3, Dh=5 as in Q and a number of heads dividing H=2, received \(3, 2, 6, 4\)",
    ):
        attn.forward(Q, K[..., :4], V)
    with pytest.raises(ValueError, match=r"V: expected shape .*Tk=6 as in K, received \(3, 2, 5, 4\)"):
        attn.forward(Q, K, V[:, :, :5])
    with pytest.raises(TypeError, match="K: expected dtype float64 \\(the dtype of Q\\), received float32"):
        attn.forward(Q, K.astype(np.float32), V)
    with pytest.raises(
        ValueError, match=r"mask: expected .* = \(3, 2, 6, 6\) .*received shape \(1, 1, 5, 5\)"
    ):
        attn.forward(Q, K, V, mask=causal_mask(5))
    with pytest.raises(TypeError, match="mask: expected .* received dtype int64"):
        attn.forward(Q, K, V, mask=np.ones((1, 1, T, T), dtype=np.int64))


def test_backward_shapes_and_no_mask_cached():
    Q, K, V = _inputs(np.random.default_rng(9), Tq=2)
    attn = ScaledDotProductAttention()
    O = attn.forward(Q, K, V, mask=padding_mask_from_lengths(LENGTHS, T))
    Q_c, K_c, V_c, Pd = attn._cache  # Q / sqrt(Dh), K, V and the weights after dropout ...
    np.testing.assert_array_equal(Q_c, Q * (1.0 / np.sqrt(Q.shape[-1])))
    assert K_c is K and V_c is V
    assert Pd is attn.attn_weights  # ... which, without dropout, are P itself: no copy
    dQ, dK, dV = attn.backward(np.ones_like(O))
    assert (dQ.shape, dK.shape, dV.shape) == (Q.shape, K.shape, V.shape)


def test_attention_dropout_is_identity_in_eval_and_drops_in_training():
    Q, K, V = _inputs(np.random.default_rng(10))
    O_plain = ScaledDotProductAttention().forward(Q, K, V)
    attn = ScaledDotProductAttention(0.5, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(attn.eval().forward(Q, K, V), O_plain)
    O = attn.train().forward(Q, K, V)
    assert not np.allclose(O, O_plain)
    # attn_weights are the weights before dropout: still rows summing to one
    np.testing.assert_allclose(attn.attn_weights.sum(axis=-1), 1.0, atol=1e-14)
