"""Multi-head attention: values against a per-head loop, causality, padding, the three paths into x,
cross-attention, extremes, dtypes, errors, and (if torch is installed) torch autograd.

The gradient checks of (mha.6)-(mha.11) run from the catalogue (transformer_np/checks/attention.py).
"""

import math

import numpy as np
import pytest

from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from transformer_np.layers.multihead import MultiHeadAttention

B, TQ, TK, D, H = 3, 5, 6, 12, 4  # Dh = 3
DH = D // H
LENGTHS = np.array([5, 2, 4])
MEMORY_LENGTHS = np.array([6, 3, 1])
PROJECTIONS = ("w_q", "w_k", "w_v", "w_o")


def _layer(dtype=np.float64, seed=0, random_biases=True, **kwargs):
    rng = np.random.default_rng(seed)
    layer = MultiHeadAttention(D, H, rng=rng, dtype=dtype, **kwargs)
    if random_biases:  # biases start at zero; make them count in the comparisons
        for name in PROJECTIONS:
            bias = getattr(layer, name).bias
            bias.data[...] = rng.standard_normal(bias.shape).astype(dtype)
    return layer


def _self_mask():
    return combine_masks(padding_mask_from_lengths(LENGTHS, TQ), causal_mask(TQ))


def _x(seed=1, dtype=np.float64, T=TQ):
    return np.random.default_rng(seed).standard_normal((B, T, D)).astype(dtype)


def _slow_mha(layer, x, memory, mask):
    """Head by head, query by query, with explicit column slices of the projections."""
    p = {n: (getattr(layer, n).weight.data, getattr(layer, n).bias.data) for n in PROJECTIONS}
    Q = x @ p["w_q"][0] + p["w_q"][1]
    K = memory @ p["w_k"][0] + p["w_k"][1]
    V = memory @ p["w_v"][0] + p["w_v"][1]
    full = np.broadcast_to(mask, (x.shape[0], H, x.shape[1], memory.shape[1]))
    C = np.zeros_like(Q)
    for b in range(x.shape[0]):
        for h in range(H):
            cols = slice(h * DH, (h + 1) * DH)
            for i in range(x.shape[1]):
                s = np.array([Q[b, i, cols] @ K[b, j, cols] for j in range(memory.shape[1])]) / math.sqrt(DH)
                s = np.where(full[b, h, i], s, -np.inf)
                w = np.exp(s - s.max())
                C[b, i, cols] = (w / w.sum()) @ V[b, :, cols]
    return C @ p["w_o"][0] + p["w_o"][1]


def test_self_attention_matches_per_head_loop():
    layer, x, mask = _layer(), _x(), _self_mask()
    y = layer.forward(x, mask=mask)
    assert y.shape == (B, TQ, D)
    np.testing.assert_allclose(y, _slow_mha(layer, x, x, mask), rtol=0, atol=1e-12)


def test_cross_attention_matches_per_head_loop():
    layer, x, memory = _layer(), _x(), _x(2, T=TK)
    mask = padding_mask_from_lengths(MEMORY_LENGTHS, TK)
    y = layer.forward(x, memory, mask=mask)
    assert y.shape == (B, TQ, D)
    np.testing.assert_allclose(y, _slow_mha(layer, x, memory, mask), rtol=0, atol=1e-12)
    assert layer.attn_weights.shape == (B, H, TQ, TK)


@pytest.mark.parametrize("t", [0, 2, 3])
def test_causal_mask_hides_the_future_exactly(t):
    layer, x = _layer(), _x()
    mask = causal_mask(TQ)
    y = layer.forward(x, mask=mask)
    x2 = x.copy()
    x2[:, t + 1] += 10.0 * np.random.default_rng(3).standard_normal((B, D))
    y2 = layer.forward(x2, mask=mask)
    np.testing.assert_array_equal(y2[:, : t + 1], y[:, : t + 1])  # the past: bit for bit
    assert np.abs(y2[:, t + 1] - y[:, t + 1]).min() > 0  # position t+1 itself does change
    # without the mask the past would have changed: the test can tell
    assert not np.allclose(layer.forward(x2)[:, : t + 1], layer.forward(x)[:, : t + 1])


def test_padding_keys_get_exactly_zero_weight_and_rows_sum_to_one():
    layer, x, memory = _layer(), _x(), _x(2, T=TK)
    layer.forward(x, memory, mask=padding_mask_from_lengths(MEMORY_LENGTHS, TK))
    P = layer.attn_weights
    for b, n in enumerate(MEMORY_LENGTHS):
        assert np.all(P[b, :, :, n:] == 0.0)
        assert np.all(P[b, :, :, :n] > 0.0)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    # and padding memory rows can hold anything: the output does not move
    y = layer.forward(x, memory, mask=padding_mask_from_lengths(MEMORY_LENGTHS, TK))
    memory2 = memory.copy()
    memory2[2, 1:] = 1e3
    y2 = layer.forward(x, memory2, mask=padding_mask_from_lengths(MEMORY_LENGTHS, TK))
    np.testing.assert_array_equal(y2, y)


def test_fully_masked_query_row_no_nan_and_no_gradient_through_its_query():
    layer, x = _layer(), _x()
    mask = np.broadcast_to(_self_mask(), (B, H, TQ, TQ)).copy()
    mask[1, :, 0, :] = False  # query 0 of batch element 1 sees nothing, in every head
    with np.errstate(all="raise"):
        y = layer.forward(x, mask=mask)
        dy = np.random.default_rng(4).standard_normal(y.shape)
        dx = layer.backward(dy)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert all(np.isfinite(p.grad).all() for p in layer.parameters())
    assert np.all(layer.attn_weights[1, :, 0] == 0.0)
    # the merged heads are 0 there, so the output is just the output bias
    np.testing.assert_array_equal(y[1, 0], layer.w_o.bias.data)


def test_finite_with_logits_of_magnitude_1e4():
    for dtype in (np.float32, np.float64):
        layer, x = _layer(dtype), _x(dtype=dtype)
        for name in ("w_q", "w_k"):
            getattr(layer, name).weight.data *= dtype(60.0)
        layer.forward(x)
        Q = x @ layer.w_q.weight.data + layer.w_q.bias.data
        K = x @ layer.w_k.weight.data + layer.w_k.bias.data
        assert np.abs(Q @ K.transpose(0, 2, 1)).max() / math.sqrt(DH) > 1e4  # the regime we want
        y = layer.forward(x, mask=_self_mask())
        dx = layer.backward(np.ones_like(y))
        assert np.isfinite(y).all() and np.isfinite(dx).all() and np.isfinite(layer.attn_weights).all()
        assert all(np.isfinite(p.grad).all() for p in layer.parameters())
        np.testing.assert_allclose(layer.attn_weights.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("cross", [False, True])
def test_float32_in_float32_everywhere(cross):
    layer, x = _layer(np.float32), _x(dtype=np.float32)
    memory = _x(2, np.float32, T=TK) if cross else None
    mask = padding_mask_from_lengths(MEMORY_LENGTHS, TK) if cross else _self_mask()
    y = layer.forward(x, memory, mask=mask)
    grads = layer.backward(np.ones_like(y))
    grads = grads if cross else (grads,)
    assert y.dtype == np.float32 and layer.attn_weights.dtype == np.float32
    assert [g.dtype for g in grads] == [np.float32] * len(grads)
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


def test_cross_attention_backward_returns_dx_and_dmemory():
    layer, x, memory = _layer(), _x(), _x(2, T=TK)
    y = layer.forward(x, memory, mask=padding_mask_from_lengths(MEMORY_LENGTHS, TK))
    grads = layer.backward(np.ones_like(y))
    assert isinstance(grads, tuple) and len(grads) == 2
    dx, dmemory = grads
    assert dx.shape == (B, TQ, D) and dmemory.shape == (B, TK, D)
    # padding memory rows receive no gradient at all
    for b, n in enumerate(MEMORY_LENGTHS):
        assert np.all(dmemory[b, n:] == 0.0)


def test_self_attention_dx_is_the_sum_of_the_three_paths():
    """Feed Q, K, V from three separate copies of x: self-attention's dx must be their sum."""
    layer, x, mask = _layer(), _x(), _self_mask()
    dy = np.random.default_rng(5).standard_normal((B, TQ, D))
    layer.forward(x, mask=mask)
    dx = layer.backward(dy)

    def split(a):
        return a.reshape(B, TQ, H, DH).transpose(0, 2, 1, 3)

    def merge(a):
        return a.transpose(0, 2, 1, 3).reshape(B, TQ, D)

    xq, xk, xv = x.copy(), x.copy(), x.copy()
    O = layer.attention.forward(
        split(layer.w_q.forward(xq)), split(layer.w_k.forward(xk)), split(layer.w_v.forward(xv)), mask=mask
    )
    layer.w_o.forward(merge(O))
    dQ, dK, dV = layer.attention.backward(split(layer.w_o.backward(dy)))
    dxq = layer.w_q.backward(merge(dQ))
    dxk = layer.w_k.backward(merge(dK))
    dxv = layer.w_v.backward(merge(dV))
    for path in (dxq, dxk, dxv):  # each path matters: dropping one would be caught
        assert np.abs(path).max() > 1e-3
    np.testing.assert_allclose(dx, dxq + dxk + dxv, rtol=0, atol=1e-13)
    # and the same through the public API: cross-attention of x on a copy of x
    layer.forward(x, x.copy(), mask=mask)
    dx_q_path, dx_kv_paths = layer.backward(dy)
    np.testing.assert_allclose(dx, dx_q_path + dx_kv_paths, rtol=0, atol=1e-13)


def test_key_bias_gradient_is_zero():
    """(notes/multihead.md) softmax ignores a constant added to a row of scores, so db_k = 0."""
    layer, x = _layer(), _x()
    y = layer.forward(x, mask=_self_mask())
    layer.backward(np.random.default_rng(6).standard_normal(y.shape))
    assert np.abs(layer.w_k.bias.grad).max() < 1e-12 * np.abs(layer.w_k.weight.grad).max()
    assert np.abs(layer.w_q.bias.grad).max() > 1e-3  # the other biases do learn


def test_parameter_names():
    names = [n for n, _ in _layer().named_parameters()]
    assert names == [f"{p}.{w}" for p in PROJECTIONS for w in ("weight", "bias")]
    assert [n for n, _ in MultiHeadAttention(D, H, bias=False).named_parameters()] == [
        f"{p}.weight" for p in PROJECTIONS
    ]


def test_attention_dropout_identity_in_eval():
    x = _x()
    y_plain = _layer().forward(x)
    layer = _layer(dropout=0.4)
    np.testing.assert_array_equal(layer.eval().forward(x), y_plain)
    assert not np.allclose(layer.train().forward(x), y_plain)


def test_d_model_not_divisible_by_n_heads():
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads.*d_model=10, n_heads=3"):
        MultiHeadAttention(10, 3)


def test_input_errors_name_expected_and_received():
    layer, x = _layer(), _x()
    with pytest.raises(ValueError, match=r"x: expected 3 dimensions \(B, T, D\), received shape \(5, 12\)"):
        layer.forward(x[0])
    with pytest.raises(ValueError, match=r"x: expected last dimension 12, received shape \(3, 5, 11\)"):
        layer.forward(x[..., :11])
    with pytest.raises(
        TypeError,
        match=r"x: expected dtype float64 \(the dtype of w_q.weight\), received float32",
    ):
        layer.forward(x.astype(np.float32))
    with pytest.raises(
        ValueError,
        match=r"memory: expected 3 dimensions \(B, Tk, D\), received shape \(6, 12\)",
    ):
        layer.forward(x, _x(2, T=TK)[0])
    with pytest.raises(ValueError, match=r"memory: expected last dimension 12, received shape \(3, 6, 7\)"):
        layer.forward(x, _x(2, T=TK)[..., :7])
    with pytest.raises(
        ValueError,
        match=r"memory: expected batch size 3 \(the batch size of x\), received shape \(2, 6, 12\)",
    ):
        layer.forward(x, _x(2, T=TK)[:2])


def test_wrong_mask_shape_names_expected_and_received():
    layer, x = _layer(), _x()
    with pytest.raises(ValueError, match=r"mask: expected .*= \(3, 4, 5, 5\).*received shape \(1, 1, 6, 6\)"):
        layer.forward(x, mask=causal_mask(6))
    with pytest.raises(ValueError, match=r"mask: expected .*= \(3, 4, 5, 6\).*received shape \(3, 1, 1, 5\)"):
        layer.forward(x, _x(2, T=TK), mask=padding_mask_from_lengths(LENGTHS, TQ))


def test_backward_before_forward_raises():
    layer = _layer()
    with pytest.raises(RuntimeError, match="MultiHeadAttention.backward\\(\\) called before forward\\(\\)"):
        layer.backward(np.ones((B, TQ, D)))


# -- torch autograd on the same maths, the same weights ------------------------------------------
def _torch_mha(torch, layer, x, memory, mask):
    t = {n: (torch.tensor(getattr(layer, n).weight.data, requires_grad=True),
             torch.tensor(getattr(layer, n).bias.data, requires_grad=True)) for n in PROJECTIONS}
    x_t = torch.tensor(x, requires_grad=True)
    m_t = x_t if memory is None else torch.tensor(memory, requires_grad=True)

    def heads(a):
        return a.reshape(a.shape[0], a.shape[1], H, DH).transpose(1, 2)

    Q = heads(x_t @ t["w_q"][0] + t["w_q"][1])
    K = heads(m_t @ t["w_k"][0] + t["w_k"][1])
    V = heads(m_t @ t["w_v"][0] + t["w_v"][1])
    S = (Q @ K.transpose(-1, -2)) / math.sqrt(DH)
    S = S.masked_fill(~torch.tensor(mask), float("-inf"))
    P = torch.softmax(S, dim=-1)
    C = (P @ V).transpose(1, 2).reshape(x.shape[0], x.shape[1], D)
    y = C @ t["w_o"][0] + t["w_o"][1]
    return y, x_t, (None if memory is None else m_t), t


@pytest.mark.parametrize("cross", [False, True])
def test_forward_and_all_gradients_match_torch(cross):
    torch = pytest.importorskip("torch")
    layer, x = _layer(), _x()
    memory = _x(2, T=TK) if cross else None
    mask = padding_mask_from_lengths(MEMORY_LENGTHS, TK) if cross else _self_mask()
    dy = np.random.default_rng(7).standard_normal((B, TQ, D))

    y = layer.forward(x, memory, mask=mask)
    grads = layer.backward(dy)
    y_t, x_t, m_t, params_t = _torch_mha(torch, layer, x, memory, mask)
    (y_t * torch.tensor(dy)).sum().backward()

    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=0, atol=1e-12)
    if cross:
        np.testing.assert_allclose(grads[0], x_t.grad.numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(grads[1], m_t.grad.numpy(), rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(grads, x_t.grad.numpy(), rtol=0, atol=1e-12)
    for name in PROJECTIONS:
        w_t, b_t = params_t[name]
        np.testing.assert_allclose(getattr(layer, name).weight.grad, w_t.grad.numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(getattr(layer, name).bias.grad, b_t.grad.numpy(), rtol=0, atol=1e-12)


def _torch_module(layer, torch, batch_first):
    """PyTorch's nn.MultiheadAttention holding ``layer``'s weights (its matrices are W^T: y = x W^T + b)."""
    mha = torch.nn.MultiheadAttention(D, H, batch_first=batch_first, dtype=torch.float64)
    w = [getattr(layer, name).weight.data for name in PROJECTIONS]
    b = [getattr(layer, name).bias.data for name in PROJECTIONS]
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([w[0].T, w[1].T, w[2].T])))
        mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate(b[:3])))
        mha.out_proj.weight.copy_(torch.from_numpy(w[3].T))
        mha.out_proj.bias.copy_(torch.from_numpy(b[3]))
    return mha


def test_matches_torch_multihead_attention_with_its_two_conventions_stated():
    """notes/multihead.md, "Another common claim": PyTorch's layer reads (T, B, D) unless
    batch_first=True, and its boolean attn_mask means True = not allowed. With both stated it
    equals this layer to 1e-12; with either left out, silently not."""
    torch = pytest.importorskip("torch")
    layer = _layer()
    x = np.random.default_rng(1).standard_normal((B, TQ, D))
    mask = causal_mask(TQ)  # (1, 1, T, T), True = may attend
    ours = layer.forward(x, mask=mask)
    xt = torch.from_numpy(x)
    mha = _torch_module(layer, torch, batch_first=True)
    theirs = mha(xt, xt, xt, attn_mask=torch.from_numpy(~mask[0, 0]), need_weights=False)[0].detach().numpy()
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)
    same_mask = mha(xt, xt, xt, attn_mask=torch.from_numpy(mask[0, 0]), need_weights=False)[0].detach().numpy()
    assert not np.allclose(same_mask, ours, atol=1e-3)  # True = may attend, read as True = forbidden
    seq_first = _torch_module(layer, torch, batch_first=False)
    xb = torch.from_numpy(np.ascontiguousarray(x[:, :B]))  # (B, B, D) fits both readings: no error is raised
    unmasked = layer.forward(x[:, :B])
    wrong = seq_first(xb, xb, xb, need_weights=False)[0].detach().numpy()
    assert not np.allclose(wrong, unmasked, atol=1e-3)  # (B, T, D) read as (T, B, D)
