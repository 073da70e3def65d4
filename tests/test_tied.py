"""TiedOutput (notes/tied.md): shares the embedding's Parameter object, logits against a slow loop,
the shared gradient is the sum of the two uses (tie.5), float32, errors. Gradients: checks/gpt.py."""

import numpy as np
import pytest

from transformer_np.layers.embedding import Embedding
from transformer_np.layers.tied import TiedOutput
from transformer_np.module import Module, Parameter

B, T, D, V = 3, 5, 7, 11


class _Tied(Module):
    """z = TiedOutput(x + Embedding(ids)) with one shared table."""

    def __init__(self, dtype=np.float64):
        self.embedding = Embedding(V, D, rng=np.random.default_rng(0), dtype=dtype)
        self.output = TiedOutput(self.embedding.weight)

    def forward(self, x, ids):
        return self.output.forward(x + self.embedding.forward(ids))

    def backward(self, dz):
        dh = self.output.backward(dz)
        self.embedding.backward(dh)
        return dh


def _inputs(dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))
    ids[0, 0] = ids[1, 2] = ids[2, 4] = 5
    return rng.standard_normal((B, T, D)).astype(dtype), ids, rng.standard_normal((B, T, V)).astype(dtype)


def test_shares_the_very_parameter_object():
    model = _Tied()
    assert model.output.weight is model.embedding.weight
    assert [name for name, _ in model.named_parameters()] == ["embedding.weight"]
    assert model.num_parameters() == V * D
    # a change made through the embedding is seen by the output layer (no copy was taken)
    model.embedding.weight.data[4] += 1.0
    h = np.zeros((1, 1, D))
    h[0, 0, 0] = 1.0
    assert model.output.forward(h)[0, 0, 4] == model.embedding.weight.data[4, 0]


def test_logits_match_a_slow_loop():
    rng = np.random.default_rng(2)
    W = Parameter(rng.standard_normal((V, D)))
    layer = TiedOutput(W, bias=True)
    layer.bias.data[...] = rng.standard_normal(V)
    h = rng.standard_normal((B, T, D))
    z = layer.forward(h)
    expected = np.empty((B, T, V))
    for b in range(B):
        for t in range(T):
            for v in range(V):
                expected[b, t, v] = sum(h[b, t, k] * W.data[v, k] for k in range(D)) + layer.bias.data[v]
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)


def test_backward_formulas_against_slow_loops():
    rng = np.random.default_rng(3)
    W = Parameter(rng.standard_normal((V, D)))
    layer = TiedOutput(W, bias=True)
    h, dz = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, V))
    layer.forward(h)
    dh = layer.backward(dz)
    dW = np.zeros((V, D))
    for b in range(B):
        for t in range(T):
            dW += np.outer(dz[b, t], h[b, t])
    np.testing.assert_allclose(dh, np.einsum("btv,vk->btk", dz, W.data), rtol=1e-12)
    np.testing.assert_allclose(W.grad, dW, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, dz.sum(axis=(0, 1)), rtol=1e-12)


def test_shared_gradient_is_the_sum_of_the_two_separate_contributions():
    x, ids, dz = _inputs()
    tied = _Tied()
    tied.forward(x, ids)
    tied.backward(dz)

    # The same computation with two independent copies of the table: each gets one term.
    emb = Embedding(V, D, dtype=np.float64)
    emb.weight.data[...] = tied.embedding.weight.data
    out = TiedOutput(Parameter(tied.embedding.weight.data.copy()))
    z = out.forward(x + emb.forward(ids))
    dh = out.backward(dz)
    emb.backward(dh)
    assert not np.allclose(emb.weight.grad, 0) and not np.allclose(out.weight.grad, 0)
    np.testing.assert_allclose(tied.embedding.weight.grad, emb.weight.grad + out.weight.grad, rtol=1e-12)
    np.testing.assert_allclose(z, tied.output.forward(x + tied.embedding.forward(ids)), rtol=1e-12)


def test_gradients_accumulate_and_zero_grad_clears_the_shared_gradient_once():
    x, ids, dz = _inputs()
    model = _Tied()
    model.forward(x, ids)
    model.backward(dz)
    once = model.embedding.weight.grad.copy()
    model.forward(x, ids)
    model.backward(dz)
    np.testing.assert_allclose(model.embedding.weight.grad, 2 * once, rtol=1e-12)
    model.zero_grad()
    assert not model.embedding.weight.grad.any()


def test_float32_stays_float32():
    x, ids, dz = _inputs(np.float32)
    model = _Tied(np.float32)
    z = model.forward(x, ids)
    dh = model.backward(dz)
    assert z.dtype == dh.dtype == model.embedding.weight.grad.dtype == np.float32
    layer = TiedOutput(model.embedding.weight, bias=True)
    assert layer.bias.dtype == np.float32
    assert layer.forward(x).dtype == np.float32


def test_large_inputs_stay_finite():
    layer = TiedOutput(Parameter(np.random.default_rng(0).standard_normal((V, D)).astype(np.float32)))
    z = layer.forward(np.full((B, T, D), 1e4, dtype=np.float32))
    assert np.isfinite(z).all()


def test_errors_name_expected_and_received():
    W = Parameter(np.zeros((V, D)))
    with pytest.raises(TypeError, match="expected the Parameter of an Embedding.*received ndarray"):
        TiedOutput(np.zeros((V, D)))
    with pytest.raises(ValueError, match=r"expected a \(V, D\) table.*received shape \(11, 7, 1\)"):
        TiedOutput(Parameter(np.zeros((V, D, 1))))
    layer = TiedOutput(W)
    with pytest.raises(ValueError, match=r"h: expected last dimension 7, received shape \(3, 5, 6\)"):
        layer.forward(np.zeros((B, T, D - 1)))
    with pytest.raises(TypeError, match="h: expected dtype float64 .*weight.*received float32"):
        layer.forward(np.zeros((B, T, D), dtype=np.float32))
    with pytest.raises(TypeError, match="h: expected a floating-point array, received int64"):
        layer.forward(np.zeros((B, T, D), dtype=np.int64))
    with pytest.raises(RuntimeError, match="TiedOutput.backward.*called before forward"):
        layer.backward(np.zeros((B, T, V)))
