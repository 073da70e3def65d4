"""Tiled exact attention (notes/flash.md): equal to ScaledDotProductAttention to 1e-12 in float64,
outputs and all gradients, for every kind of mask, Tq != Tk, grouped heads and tiles that do not
divide T; O(T) memory kept for backward; causal tiles skipped; bad input refused."""

import numpy as np
import pytest

from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from transformer_np.layers.tiled_attention import TiledAttention

B, H, DH, DV = 3, 4, 5, 6
TOL = 1e-12


def _inputs(rng, Tq, Tk, n_kv=H):
    return (rng.standard_normal((B, H, Tq, DH)), rng.standard_normal((B, n_kv, Tk, DH)),
            rng.standard_normal((B, n_kv, Tk, DV)))


def _masks(kind, Tq, Tk):
    """(the mask given to the tiled layer, its causal flag, the mask given to the standard layer)."""
    causal = causal_mask(Tq, offset=Tk - Tq)
    padding = padding_mask_from_lengths(np.array([Tk, Tk - 3, 1]), Tk)
    if kind == "none":
        return None, False, None
    if kind == "causal":
        return causal, False, causal
    if kind == "causal flag":
        return None, True, causal
    if kind == "padding":
        return padding, False, padding
    if kind == "both":
        both = combine_masks(padding, causal)
        return both, False, both
    if kind == "causal flag + padding":
        return padding, True, combine_masks(padding, causal)
    if kind == "fully masked rows":
        full = np.broadcast_to(combine_masks(padding, causal), (B, H, Tq, Tk)).copy()
        full[2] = False  # a whole batch element that sees nothing
        full[1, 3, Tq // 2, :] = False  # and one row of one head of another
        return full, False, full
    raise KeyError(kind)


def _compare(tiled, Q, K, V, mask, ref_mask, seed=0):
    ref = ScaledDotProductAttention()
    O_ref = ref.forward(Q, K, V, mask=ref_mask)
    O = tiled.forward(Q, K, V, mask=mask)
    assert O.shape == O_ref.shape and O.dtype == O_ref.dtype
    assert np.abs(O - O_ref).max() < TOL
    dO = np.random.default_rng(seed).standard_normal(O.shape)
    grads, grads_ref = tiled.backward(dO), ref.backward(dO)
    for name, g, g_ref in zip("QKV", grads, grads_ref):
        assert g.shape == g_ref.shape, name
        assert np.abs(g - g_ref).max() < TOL, name
    return O, grads


KINDS = ["none", "causal", "causal flag", "padding", "both", "causal flag + padding", "fully masked rows"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("Tq, Tk", [(9, 9), (5, 11)])
@pytest.mark.parametrize("tiles", [(4, 4), (3, 5), (1, 1), (16, 16)])
def test_equals_standard_attention(kind, Tq, Tk, tiles):
    rng = np.random.default_rng(hash((kind, Tq, tiles)) % 2**32)
    Q, K, V = _inputs(rng, Tq, Tk)
    mask, causal, ref_mask = _masks(kind, Tq, Tk)
    _compare(TiledAttention(*tiles, causal=causal), Q, K, V, mask, ref_mask)


def test_queries_more_than_keys_in_cross_attention():
    rng = np.random.default_rng(1)
    Q, K, V = _inputs(rng, 10, 4)
    mask = padding_mask_from_lengths(np.array([4, 2, 0]), 4)
    _compare(TiledAttention(3, 3), Q, K, V, mask, mask)


@pytest.mark.parametrize("n_kv", [1, 2])
def test_grouped_key_value_heads(n_kv):
    rng = np.random.default_rng(n_kv)
    Q, K, V = _inputs(rng, 7, 10, n_kv)
    mask, causal, ref_mask = _masks("causal flag + padding", 7, 10)
    _compare(TiledAttention(2, 3, causal=causal), Q, K, V, mask, ref_mask)
    head_mask = np.broadcast_to(ref_mask, (B, H, 7, 10)).copy()  # a mask with its own row per head
    head_mask[0, 1, :, 2] = False
    _compare(TiledAttention(4, 4), Q, K, V, head_mask, head_mask)


def test_fully_masked_rows_give_zeros_and_zero_gradient():
    rng = np.random.default_rng(2)
    Q, K, V = _inputs(rng, 6, 6)
    mask, _, _ = _masks("fully masked rows", 6, 6)
    O, (dQ, dK, dV) = _compare(TiledAttention(2, 2), Q, K, V, mask, mask)
    assert np.all(O[2] == 0) and np.all(O[1, 3, 3] == 0)
    assert np.all(dQ[2] == 0) and np.all(dQ[1, 3, 3] == 0)
    assert np.all(dK[2] == 0) and np.all(dV[2] == 0)
    assert np.isfinite(O).all() and all(np.isfinite(g).all() for g in (dQ, dK, dV))


def test_float32_stays_float32_and_is_close():
    rng = np.random.default_rng(3)
    Q, K, V = (a.astype(np.float32) for a in _inputs(rng, 8, 8))
    layer = TiledAttention(3, 3, causal=True)
    O = layer.forward(Q, K, V)
    grads = layer.backward(np.ones_like(O))
    assert O.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    ref = ScaledDotProductAttention().forward(Q, K, V, mask=causal_mask(8))
    assert np.abs(O - ref).max() < 1e-5


def test_large_scores_do_not_overflow():
    """The running maximum is subtracted at every tile (flash.1): scores of 1e4 stay finite."""
    rng = np.random.default_rng(4)
    Q, K, V = _inputs(rng, 6, 6)
    Q *= 3000.0
    O = TiledAttention(2, 2).forward(Q, K, V)
    O_ref = ScaledDotProductAttention().forward(Q, K, V)
    assert np.isfinite(O).all() and np.abs(O - O_ref).max() < TOL


def test_keeps_no_T_by_T_array_for_backward():
    rng = np.random.default_rng(5)
    T = 64
    Q, K, V = _inputs(rng, T, T)
    layer = TiledAttention(8, 8, causal=True)
    layer.forward(Q, K, V)
    saved = [a for a in layer._cache if hasattr(a, "shape")]
    assert max(a.size for a in saved) == B * H * T * max(DH, DV)  # Q, K, V, O: linear in T
    assert all(list(a.shape).count(T) <= 1 for a in saved)  # no array with both a query and a key axis
    assert layer.attn_weights is None


def test_causal_skips_the_tiles_in_the_future():
    layer = TiledAttention(2, 2, causal=True)
    visible = [len(layer._visible_key_tiles(q0, min(q0 + 2, 8), 8, 8, None)) for q0 in range(0, 8, 2)]
    assert visible == [1, 2, 3, 4]  # 10 of the 16 tiles: the upper triangle of tiles is never computed
    # a mask that hides a whole tile skips it too
    mask = np.ones((1, 1, 8, 8), dtype=bool)
    mask[..., 4:6, 0:2] = False
    assert len(TiledAttention(2, 2)._visible_key_tiles(4, 6, 8, 8, mask)) == 3


def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    Q, K, V = _inputs(rng, 7, 7)
    layer = TiledAttention(3, 2, causal=True)
    O = layer.forward(Q, K, V)
    dO = rng.standard_normal(O.shape)
    dQ, dK, dV = layer.backward(dO)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (Q, K, V))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    out.backward(torch.tensor(dO))
    assert np.abs(O - out.detach().numpy()).max() < TOL
    for ours, theirs in ((dQ, tq), (dK, tk), (dV, tv)):
        assert np.abs(ours - theirs.grad.numpy()).max() < TOL


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("tiles", [(0, 4), (4, 0), (-1, 2), (2.5, 2), (True, 2)])
def test_tile_sizes_below_one_are_refused(tiles):
    with pytest.raises(ValueError, match=r"tile_[qk]: expected an integer >= 1, received"):
        TiledAttention(*tiles)


def test_causal_with_more_queries_than_keys_is_refused():
    Q, K, V = _inputs(np.random.default_rng(0), 6, 4)
    with pytest.raises(ValueError, match=r"expected Tq <= Tk .* received Tq=6, Tk=4"):
        TiledAttention(2, 2, causal=True).forward(Q, K, V)


def test_a_mask_it_cannot_honour_is_refused():
    """An additive float mask (0 / -1e9, as other libraries take) is not a boolean mask: refused, not reinterpreted."""
    Q, K, V = _inputs(np.random.default_rng(0), 4, 4)
    additive = np.where(np.tril(np.ones((4, 4))) > 0, 0.0, -1e9)[None, None]
    with pytest.raises(TypeError, match=r"mask: expected a boolean array .* received dtype float64"):
        TiledAttention(2, 2).forward(Q, K, V, mask=additive)
    with pytest.raises(ValueError, match=r"mask: expected .* received shape \(1, 1, 3, 4\)"):
        TiledAttention(2, 2).forward(Q, K, V, mask=np.ones((1, 1, 3, 4), dtype=bool))
    with pytest.raises(TypeError, match=r"causal: expected True or False"):
        TiledAttention(2, 2, causal="yes")


def test_backward_before_forward_and_wrong_upstream_are_refused():
    layer = TiledAttention(2, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((B, H, 4, DV)))
    Q, K, V = _inputs(np.random.default_rng(0), 4, 4)
    layer.forward(Q, K, V)
    with pytest.raises(ValueError, match="expected the shape of forward's output"):
        layer.backward(np.zeros((B, H, 4, DV + 1)))
