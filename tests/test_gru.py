"""The GRU layer (notes/rnn.md): the recurrence it computes, padding, bad input, and PyTorch's GRU.

The gradient checks of (rnn.8)-(rnn.17) are in the catalogue (transformer_np/checks/rnn.py,
run by tests/test_gradcases.py); here the forward pass and the properties of the backward that
a finite difference does not show directly.
"""

import numpy as np
import pytest

from transformer_np.layers import GRU
from transformer_np.layers.gru import sigmoid

B, T, D, N = 3, 5, 7, 6


def make(rng=None, dtype=np.float64):
    rng = rng or np.random.default_rng(0)
    layer = GRU(D, N, rng=rng, dtype=dtype)
    layer.input.bias.data[...] = 0.3 * rng.standard_normal(3 * N)
    return layer, rng.standard_normal((B, T, D)).astype(dtype), rng.standard_normal((B, N)).astype(dtype)


def reference_step(layer, x_t, h):
    """One step of (rnn.2)-(rnn.6) written gate by gate, with the column blocks named."""
    W, b, U, c = layer.input.weight.data, layer.input.bias.data, layer.weight_hh.data, layer.bias_hh.data
    block = lambda M, k: M[..., k * N:(k + 1) * N]  # noqa: E731  0 = reset, 1 = update, 2 = candidate
    r = 1 / (1 + np.exp(-(x_t @ block(W, 0) + block(b, 0) + h @ block(U, 0) + block(c, 0))))
    z = 1 / (1 + np.exp(-(x_t @ block(W, 1) + block(b, 1) + h @ block(U, 1) + block(c, 1))))
    n = np.tanh(x_t @ block(W, 2) + block(b, 2) + r * (h @ block(U, 2) + block(c, 2)))
    return (1 - z) * n + z * h


def test_forward_is_the_recurrence_step_by_step():
    layer, x, h0 = make()
    H = layer.forward(x, h0)
    h = h0
    for t in range(T):
        h = reference_step(layer, x[:, t], h)
        np.testing.assert_allclose(H[:, t], h, rtol=1e-12, atol=1e-14)
    H_zero = layer.forward(x)  # h0 = None means zeros
    np.testing.assert_allclose(H_zero[:, 0], reference_step(layer, x[:, 0], np.zeros((B, N))), atol=1e-14)


def test_sigmoid_is_stable_and_keeps_the_dtype():
    u = np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0], dtype=np.float32)
    s = sigmoid(u)
    assert s.dtype == np.float32 and np.isfinite(s).all()
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(5.0)), 0.5, 1 / (1 + np.exp(-5.0)), 1.0], rtol=1e-6)


def test_a_padded_step_carries_the_state_and_padding_changes_nothing():
    layer, x, h0 = make()
    lengths = np.array([5, 2, 4])
    mask = np.arange(T)[None, :] < lengths[:, None]
    H = layer.forward(x, h0, mask=mask)
    for b, n in enumerate(lengths):
        alone = layer.forward(x[b:b + 1, :n], h0[b:b + 1])  # the real tokens only, no mask
        np.testing.assert_allclose(H[b, :n], alone[0], rtol=1e-12)
        np.testing.assert_array_equal(H[b, n:], np.broadcast_to(H[b, n - 1], (T - n, N)))  # (rnn.7)
    garbage = x.copy()
    garbage[~mask] = 1e3  # whatever sits at padded positions is never read
    np.testing.assert_array_equal(layer.forward(garbage, h0, mask=mask), H)


def test_the_gradient_of_padding_is_zero_and_passes_through():
    layer, x, h0 = make()
    mask = np.arange(T)[None, :] < np.array([5, 2, 4])[:, None]
    layer.forward(x, h0, mask=mask)
    dH = np.zeros((B, T, N))
    dH[:, -1] = 1.0  # only the last state is read, as an encoder's
    dx, dh0 = layer.backward(dH)
    np.testing.assert_array_equal(dx[~mask], 0.0)  # a padded input has no influence
    assert (np.abs(dx[mask]).sum(axis=-1) > 0).all()  # every real input does, through the carried state


def test_backward_adds_into_the_gradients_and_matches_a_second_call():
    layer, x, h0 = make()
    dH = np.random.default_rng(1).standard_normal((B, T, N))
    layer.forward(x, h0)
    dx1, dh1 = layer.backward(dH)
    once = {name: p.grad.copy() for name, p in layer.named_parameters()}
    layer.forward(x, h0)
    dx2, dh2 = layer.backward(dH)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(dh1, dh2)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-12, err_msg=name)  # (rnn.15): +=, not =


def test_with_the_update_gate_shut_the_gradient_is_copied_back_unchanged():
    # z = 1 keeps the state: h_t = h_{t-1} (rnn.6), so dh0 = the sum of every dH_t, whatever T.
    layer, x, h0 = make()
    layer.bias_hh.data[N:2 * N] = 60.0  # sigma(60 + ...) = 1 to the last bit
    H = layer.forward(x, h0)
    np.testing.assert_array_equal(H, np.broadcast_to(h0[:, None], H.shape))
    dH = np.random.default_rng(2).standard_normal((B, T, N))
    _, dh0 = layer.backward(dH)
    np.testing.assert_allclose(dh0, dH.sum(axis=1), rtol=1e-12)


def test_float32_stays_float32():
    layer, x, h0 = make(dtype=np.float32)
    H = layer.forward(x, h0, mask=np.ones((B, T), dtype=bool))
    dx, dh0 = layer.backward(np.ones_like(H))
    assert {a.dtype for a in (H, dx, dh0, *(p.grad for p in layer.parameters()))} == {np.dtype(np.float32)}


def test_bad_input_fails_loudly():
    layer, x, h0 = make()
    with pytest.raises(ValueError, match=r"x: expected 3 dimensions \(B, T, D\), received shape \(5, 7\)"):
        layer.forward(x[0])
    with pytest.raises(ValueError, match=r"x: expected last dimension 7, received shape \(3, 5, 4\)"):
        layer.forward(x[..., :4])
    with pytest.raises(TypeError, match="x: expected dtype float64 \\(the dtype of weight_hh\\), received float32"):
        layer.forward(x.astype(np.float32))
    with pytest.raises(ValueError, match=r"h0: expected shape \(B, N\) = \(3, 6\), received \(3, 5\)"):
        layer.forward(x, h0[:, :5])
    with pytest.raises(ValueError, match=r"mask: expected a boolean \(B, T\) = \(3, 5\) array.*received int64 of shape \(3, 5\)"):
        layer.forward(x, mask=np.ones((B, T), dtype=np.int64))
    with pytest.raises(ValueError, match=r"mask: expected a boolean \(B, T\).*received bool of shape \(3, 1, 1, 5\)"):
        layer.forward(x, mask=np.ones((B, 1, 1, T), dtype=bool))
    H = layer.forward(x)
    with pytest.raises(ValueError, match=r"GRU.backward: dout: expected the shape of forward's output \(3, 5, 6\)"):
        layer.backward(H[:, :4])


def test_equals_pytorchs_gru_forward_and_backward():
    torch = pytest.importorskip("torch")
    layer, x, h0 = make()
    ref = torch.nn.GRU(D, N, batch_first=True).double()
    with torch.no_grad():  # the weights of notes/rnn.md, transposed into PyTorch's (out, in) layout
        ref.weight_ih_l0.copy_(torch.from_numpy(layer.input.weight.data.T))
        ref.bias_ih_l0.copy_(torch.from_numpy(layer.input.bias.data))
        ref.weight_hh_l0.copy_(torch.from_numpy(layer.weight_hh.data.T))
        ref.bias_hh_l0.copy_(torch.from_numpy(layer.bias_hh.data))
    xt, ht = torch.from_numpy(x).requires_grad_(), torch.from_numpy(h0)[None].clone().requires_grad_()
    out, _ = ref(xt, ht)
    dH = np.random.default_rng(3).standard_normal((B, T, N))
    out.backward(torch.from_numpy(dH))
    H = layer.forward(x, h0)
    dx, dh0 = layer.backward(dH)
    np.testing.assert_allclose(H, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dh0, ht.grad.numpy()[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(layer.weight_hh.grad, ref.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(layer.input.weight.grad, ref.weight_ih_l0.grad.numpy().T, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(layer.bias_hh.grad, ref.bias_hh_l0.grad.numpy(), rtol=1e-10, atol=1e-13)
