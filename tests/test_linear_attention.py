"""Linear attention (notes/linear_attention.md): the elu + 1 form equals its quadratic definition
(weights phi(q).phi(k), normalised) for every mask it honours, causal by prefix sums; FAVOR+
features estimate the softmax kernel with an error that falls as the feature count grows; masks
it cannot honour and feature counts below 1 are refused."""

import math

import numpy as np
import pytest

from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.linear_attention import LinearAttention, PerformerAttention, key_selection
from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths, sliding_window_mask

B, H, DH, DV = 3, 4, 5, 6


def _inputs(rng, Tq, Tk, n_kv=H):
    return (rng.standard_normal((B, H, Tq, DH)), rng.standard_normal((B, n_kv, Tk, DH)),
            rng.standard_normal((B, n_kv, Tk, DV)))


def quadratic(phi, Q, K, V, mask):
    """The definition, with every (query, key) weight written out: A = phi(Q) phi(K)^T, masked, normalised."""
    G = Q.shape[1] // K.shape[1]
    K, V = np.repeat(K, G, axis=1), np.repeat(V, G, axis=1)
    A = phi(Q) @ np.swapaxes(phi(K), -1, -2)
    if mask is not None:
        A = A * mask
    den = A.sum(axis=-1, keepdims=True)
    return np.where(den > 0, A @ V / np.where(den > 0, den, 1), 0.0)


def elu1(x):
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


@pytest.mark.parametrize("masks", ["none", "padding", "causal", "causal + padding"])
@pytest.mark.parametrize("Tq, Tk, n_kv", [(7, 7, 4), (4, 9, 2), (9, 9, 1)])
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_elu_features_equal_the_quadratic_definition(masks, Tq, Tk, n_kv, chunk):
    rng = np.random.default_rng(Tq * 10 + Tk)
    Q, K, V = _inputs(rng, Tq, Tk, n_kv)
    pad = padding_mask_from_lengths(np.array([Tk, 3, 0]), Tk)
    causal = causal_mask(Tq, offset=Tk - Tq)
    mask = {"none": None, "padding": pad, "causal": causal, "causal + padding": combine_masks(pad, causal)}[masks]
    O = LinearAttention(chunk=chunk).forward(Q, K, V, mask=mask)
    assert np.abs(O - quadratic(elu1, Q, K, V, mask)).max() < 1e-12


@pytest.mark.parametrize("chunk", [1, 2, 5, 100])
def test_the_chunked_causal_form_equals_one_chunk_forward_and_backward(chunk):
    """(lat.10) splits the prefix sums (lat.4) at chunk starts: any chunk size, the same numbers."""
    rng = np.random.default_rng(chunk)
    Q, K, V = _inputs(rng, 11, 13, n_kv=2)
    mask = combine_masks(padding_mask_from_lengths(np.array([13, 9, 4]), 13), causal_mask(11, offset=2))
    for make in (lambda c: LinearAttention(chunk=c), lambda c: PerformerAttention(DH, 6, chunk=c)):
        layer, whole = make(chunk), make(11)
        O, O_ref = layer.forward(Q, K, V, mask=mask), whole.forward(Q, K, V, mask=mask)
        assert np.abs(O - O_ref).max() < 1e-12
        dO = rng.standard_normal(O.shape)
        for g, g_ref in zip(layer.backward(dO), whole.backward(dO)):
            assert np.abs(g - g_ref).max() < 1e-12


def test_the_chunked_form_keeps_the_sums_at_chunk_starts_only():
    rng = np.random.default_rng(9)
    T, chunk = 64, 8
    Q, K, V = _inputs(rng, T, T)
    layer = LinearAttention(causal=True, chunk=chunk)
    layer.forward(Q, K, V)
    S_starts = layer._cache[6]
    assert len(S_starts) == T // chunk and S_starts[0].shape[-2:] == (DH, DV)  # not T of them


def test_a_query_with_no_visible_key_gives_zeros_and_zero_gradient():
    rng = np.random.default_rng(1)
    Q, K, V = _inputs(rng, 5, 5)
    layer = LinearAttention()
    mask = padding_mask_from_lengths(np.array([5, 2, 0]), 5)
    O = layer.forward(Q, K, V, mask=mask)
    dQ, dK, dV = layer.backward(np.ones_like(O))
    assert np.all(O[2] == 0) and np.all(dQ[2] == 0) and np.all(dK[2] == 0) and np.all(dV[2] == 0)
    assert np.all(dK[1, :, 2:] == 0) and np.all(dV[1, :, 2:] == 0)  # hidden keys get no gradient


def test_the_causal_prefix_sums_are_the_recurrent_state_of_generation():
    """S <- S + phi(k_t) v_t^T, z <- z + phi(k_t), o_t = phi(q_t) S / phi(q_t) z: step by step, the same."""
    rng = np.random.default_rng(2)
    Q, K, V = (a[:1, :1] for a in _inputs(rng, 6, 6))
    O = LinearAttention().forward(Q, K, V, mask=causal_mask(6))
    S, z = np.zeros((DH, DV)), np.zeros(DH)
    for t in range(6):
        S += np.outer(elu1(K[0, 0, t]), V[0, 0, t])
        z += elu1(K[0, 0, t])
        assert np.abs(elu1(Q[0, 0, t]) @ S / (elu1(Q[0, 0, t]) @ z) - O[0, 0, t]).max() < 1e-12


def test_favor_features_estimate_the_softmax_kernel():
    """E[phi(q).phi(k)] = exp(q.k / sqrt(Dh)) (fav.1): the mean over 300 draws of W (64 features each)
    is within 3 standard errors. (With QR's signs left unfixed the rows point to one side, and the
    mean lies 5 standard errors off: this test failed that way.)"""
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal(DH) * 0.5, rng.standard_normal(DH) * 0.5
    exact = math.exp(q @ k / math.sqrt(DH))
    estimates = []
    for seed in range(300):
        W, s = PerformerAttention(DH, 64, seed=seed).W, DH ** -0.25
        phi = lambda x: np.exp(W @ (x * s) - 0.5 * (x * s) @ (x * s)) / math.sqrt(64)  # (fav.1), unstabilised
        estimates.append(phi(q) @ phi(k))
    mean, se = np.mean(estimates), np.std(estimates) / math.sqrt(300)
    assert abs(mean - exact) < 3 * se and se < 0.05 * exact


def test_favor_rows_are_orthogonal_in_blocks_of_d_head():
    W = PerformerAttention(DH, 12).W
    assert W.shape == (12, DH)
    block = W[:DH] / np.linalg.norm(W[:DH], axis=1, keepdims=True)
    assert np.abs(block @ block.T - np.eye(DH)).max() < 1e-12
    assert np.array_equal(PerformerAttention(DH, 12).W, W)  # a fixed seed: rebuilt, the same features


def test_performer_error_against_softmax_falls_with_the_feature_count():
    rng = np.random.default_rng(4)
    Q, K, V = (0.5 * a for a in _inputs(rng, 16, 16))
    mask = causal_mask(16)
    exact = ScaledDotProductAttention().forward(Q, K, V, mask=mask)

    def error(m):
        return np.mean([np.abs(PerformerAttention(DH, m, seed=s).forward(Q, K, V, mask=mask) - exact).mean()
                        for s in range(5)])

    e8, e512 = error(8), error(512)
    assert e512 < e8 / 4  # about 1 / sqrt(m): 8x fewer errors for 64x the features, at least 4x here
    assert e512 < 0.05


def test_performer_is_invariant_to_its_stabilising_constant():
    """Scaling every key shifts the keys' maximum; the output moves only through the kernel, not the constant."""
    rng = np.random.default_rng(5)
    Q, K, V = _inputs(rng, 6, 6)
    layer = PerformerAttention(DH, 16)
    O = layer.forward(Q, K, V)
    fk, _ = layer.features(K[:, :, None], keys=True)
    fq, _ = layer.features(Q[:, :, None], keys=False)
    A = (fq[:, :, 0] @ np.swapaxes(fk[:, :, 0], -1, -2))
    assert np.abs(O - A @ V / A.sum(-1, keepdims=True)).max() < 1e-12


# -- masks it cannot honour, bad feature counts -------------------------------------------------


@pytest.mark.parametrize("layer", [LinearAttention(), PerformerAttention(DH, 4)], ids=["linear", "performer"])
def test_a_mask_it_cannot_honour_is_refused(layer):
    Q, K, V = _inputs(np.random.default_rng(0), 6, 6)
    for mask in (combine_masks(causal_mask(6), sliding_window_mask(6, 2)), np.random.default_rng(0).random((1, 1, 6, 6)) > 0.5,
                 ~causal_mask(6)):
        with pytest.raises(ValueError, match=r"expected a mask it can honour, None, a key-padding mask .* received "
                                             r"a mask of shape \(1, 1, 6, 6\) that is none of these"):
            layer.forward(Q, K, V, mask=mask)


def test_key_selection_reads_the_masks_the_models_build():
    pad = padding_mask_from_lengths(np.array([6, 3, 1]), 6)
    assert key_selection(None, 6, 6) == (None, False)
    keys, causal = key_selection(pad, 6, 6)
    assert keys is pad and not causal
    keys, causal = key_selection(combine_masks(pad, causal_mask(4, offset=2)), 4, 6)
    assert causal and np.array_equal(keys, pad)
    keys, causal = key_selection(np.broadcast_to(pad, (3, 1, 6, 6)), 6, 6)
    assert not causal and np.array_equal(keys, pad)


@pytest.mark.parametrize("chunk", [0, -4, 1.5])
def test_a_chunk_below_one_is_refused(chunk):
    with pytest.raises(ValueError, match=r"chunk: expected an integer >= 1, received"):
        LinearAttention(chunk=chunk)
    with pytest.raises(ValueError, match=r"chunk: expected an integer >= 1, received"):
        PerformerAttention(DH, 4, chunk=chunk)


@pytest.mark.parametrize("m", [0, -1, 2.0])
def test_a_feature_count_below_one_is_refused(m):
    with pytest.raises(ValueError, match=r"n_features: expected an integer >= 1, received"):
        PerformerAttention(DH, m)


def test_performer_refuses_another_head_width():
    Q, K, V = _inputs(np.random.default_rng(0), 3, 3)
    with pytest.raises(ValueError, match=r"expected heads of width d_head=7, received 5"):
        PerformerAttention(7, 4).forward(Q, K, V)


@pytest.mark.parametrize("make", [lambda c: LinearAttention(causal=c), lambda c: PerformerAttention(DH, 8, causal=c)])
def test_the_causal_flag_equals_the_causal_mask(make):
    rng = np.random.default_rng(7)
    Q, K, V = _inputs(rng, 4, 7)
    pad = padding_mask_from_lengths(np.array([7, 5, 2]), 7)
    flag, masked = make(True), make(False)
    O = flag.forward(Q, K, V, mask=pad)
    O_ref = masked.forward(Q, K, V, mask=combine_masks(pad, causal_mask(4, offset=3)))
    assert np.abs(O - O_ref).max() < 1e-12
    dO = rng.standard_normal(O.shape)
    for g, g_ref in zip(flag.backward(dO), masked.backward(dO)):
        assert np.abs(g - g_ref).max() < 1e-12
    with pytest.raises(ValueError, match=r"causal: expected Tq <= Tk .* received Tq=7, Tk=4"):
        make(True).forward(*_inputs(rng, 7, 4))
    with pytest.raises(TypeError, match=r"causal: expected True or False, received 1"):
        make(1)
