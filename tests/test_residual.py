"""Residual (notes/residual.md): post-LN and pre-LN order, extra sub-layer inputs and their gradients,
dropout on the sub-layer output, backward order, errors. Gradients: the catalogue (checks/blocks.py)."""

import numpy as np
import pytest

from transformer_np.layers.feedforward import PositionwiseFeedForward
from transformer_np.layers.residual import Residual
from transformer_np.module import Module

from helpers import record_backward_calls

B, T, S, D, D_FF = 3, 5, 6, 7, 11


def _layernorm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def _relu_ffn(ffn, x):
    H = x @ ffn.w_1.weight.data + ffn.w_1.bias.data
    return np.maximum(H, 0.0) @ ffn.w_2.weight.data + ffn.w_2.bias.data


def _residual(norm, dropout=0.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    ffn = PositionwiseFeedForward(D, D_FF, "relu", rng=rng, dtype=dtype)
    ffn.w_2.bias.data[...] = 0.3 * rng.standard_normal(D)
    layer = Residual(ffn, D, norm=norm, dropout=dropout, rng=rng, dtype=dtype)
    layer.norm.weight.data[...] = 1.0 + 0.5 * rng.standard_normal(D)
    layer.norm.bias.data[...] = 0.5 * rng.standard_normal(D)
    return layer


class _Stub(Module):
    """F(x, memory, mask=...) = 3 x + memory[:, :T]; records what it received.

    Its backward returns (3 ds, dmemory) with dmemory = ds in the first T rows of memory, like a
    cross-attention returning (dx, dmemory), or 3 ds alone when called without memory.
    """

    def forward(self, x, memory=None, mask=None):
        self.received = (memory, mask)
        self.save_for_backward(None if memory is None else memory.shape)
        return 3.0 * x if memory is None else 3.0 * x + memory[:, : x.shape[1]]

    def backward(self, ds):
        (memory_shape,) = self.saved()
        if memory_shape is None:
            return 3.0 * ds
        dmemory = np.zeros(memory_shape)
        dmemory[:, : ds.shape[1]] = ds
        return 3.0 * ds, dmemory


def test_post_ln_is_layernorm_of_the_sum():
    layer = _residual("post")
    x = np.random.default_rng(1).standard_normal((B, T, D))
    g, b = layer.norm.weight.data, layer.norm.bias.data
    expected = _layernorm(x + _relu_ffn(layer.sublayer, x), g, b)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-13)


def test_pre_ln_adds_the_sublayer_of_the_normalised_input():
    layer = _residual("pre")
    x = np.random.default_rng(1).standard_normal((B, T, D))
    g, b = layer.norm.weight.data, layer.norm.bias.data
    expected = x + _relu_ffn(layer.sublayer, _layernorm(x, g, b))
    post = _layernorm(x + _relu_ffn(layer.sublayer, x), g, b)
    y = layer.forward(x)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)
    assert np.abs(y - post).max() > 0.1  # the two orders really differ


def test_extra_arguments_reach_the_sublayer_and_memory_gets_only_its_gradient():
    rng = np.random.default_rng(2)
    x, memory = rng.standard_normal((B, T, D)), rng.standard_normal((B, S, D))
    mask = np.ones((B, 1, S), dtype=bool)
    dy = rng.standard_normal((B, T, D))
    for norm in ("post", "pre"):
        stub = _Stub()
        layer = Residual(stub, D, norm=norm, dtype=np.float64)
        layer.forward(x, memory, mask=mask)
        assert stub.received[0] is memory and stub.received[1] is mask
        dx, dmemory = layer.backward(dy)
        expected_dmemory = np.zeros((B, S, D))
        if norm == "post":
            ref = Residual(_Stub(), D, norm=norm, dtype=np.float64)
            ref.forward(x, memory)
            dz = ref.norm.backward(dy)  # (res.3)
            expected_dmemory[:, :T] = dz  # (res.9): F's gradient alone
            expected_dx = dz + 3.0 * dz  # (res.5)
        else:
            expected_dmemory[:, :T] = dy  # (res.9)
            ref = Residual(_Stub(), D, norm=norm, dtype=np.float64)
            ref.norm.forward(x)
            expected_dx = dy + ref.norm.backward(3.0 * dy)  # (res.8)
        np.testing.assert_allclose(dmemory, expected_dmemory, rtol=1e-14)
        np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-14)


def test_a_sublayer_with_one_input_gives_one_gradient_array():
    layer = Residual(_Stub(), D, norm="pre", dtype=np.float64)
    y = layer.forward(np.random.default_rng(3).standard_normal((B, T, D)))
    dx = layer.backward(np.ones_like(y))
    assert isinstance(dx, np.ndarray) and dx.shape == (B, T, D)


def test_pre_ln_gradient_has_an_identity_path():
    # With a sub-layer whose output is always 0, pre-LN passes dy through untouched (res.8),
    # while post-LN sends it through the LayerNorm backward (res.3), which removes its row mean.
    dy = np.random.default_rng(4).standard_normal((B, T, D))
    x = np.random.default_rng(5).standard_normal((B, T, D))
    for norm in ("pre", "post"):
        layer = _residual(norm)
        layer.sublayer.w_2.weight.data[...] = 0.0
        layer.sublayer.w_2.bias.data[...] = 0.0
        layer.forward(x)
        dx = layer.backward(dy)
        if norm == "pre":
            np.testing.assert_array_equal(dx, dy)
        else:
            assert np.abs(dx - dy).max() > 0.1
            np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=1e-12)


def test_dropout_acts_on_the_sublayer_output_before_the_sum():
    # pre-LN with F(h) = 3 h: y - x is 0 where dropped and 3 LN(x) / (1 - p) where kept.
    p = 0.5
    layer = Residual(_Stub(), D, norm="pre", dropout=p, rng=np.random.default_rng(6), dtype=np.float64)
    x = np.random.default_rng(7).standard_normal((40, T, D))
    y = layer.forward(x)
    kept = y != x
    scaled = 3.0 * _layernorm(x, 1.0, 0.0) / (1 - p)
    np.testing.assert_allclose((y - x)[kept], scaled[kept], rtol=1e-12)
    assert abs((1 - kept.mean()) - p) < 0.05
    np.testing.assert_allclose(layer.eval().forward(x), x + 3.0 * _layernorm(x, 1.0, 0.0), rtol=1e-12)


@pytest.mark.parametrize(
    "norm, order", [("post", ["norm", "dropout", "sublayer"]), ("pre", ["dropout", "sublayer", "norm"])]
)
def test_backward_calls_the_children_in_reverse_order(norm, order):
    layer = _residual(norm, dropout=0.1)
    calls = record_backward_calls(layer, ("norm", "dropout", "sublayer"))
    y = layer.forward(np.random.default_rng(8).standard_normal((B, T, D)))
    layer.backward(np.ones_like(y))
    assert calls == order


def test_parameter_names():
    names = [name for name, _ in _residual("post").named_parameters()]
    assert names == [
        "sublayer.w_1.weight",
        "sublayer.w_1.bias",
        "sublayer.w_2.weight",
        "sublayer.w_2.bias",
        "norm.weight",
        "norm.bias",
    ]


def test_unknown_norm_position_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"norm: expected one of 'post', 'pre', received 'middle'"):
        Residual(_Stub(), D, norm="middle")


def test_a_sublayer_that_changes_the_shape_is_refused():
    class Widen(Module):
        def forward(self, x):
            return np.concatenate([x, x], axis=-1)

    with pytest.raises(ValueError, match=r"expected shape \(3, 5, 7\).*received \(3, 5, 14\)"):
        Residual(Widen(), D, dtype=np.float64).forward(np.zeros((B, T, D)))


def test_float32_stays_float32():
    for norm in ("post", "pre"):
        layer = _residual(norm, dropout=0.2, dtype=np.float32)
        y = layer.forward(np.random.default_rng(9).standard_normal((B, T, D)).astype(np.float32))
        dx = layer.backward(np.ones_like(y))
        grads = {p.grad.dtype for p in layer.parameters()}
        assert y.dtype == dx.dtype == np.float32 and grads == {np.dtype(np.float32)}


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match=r"Residual\.backward\(\) called before forward"):
        _residual("pre").backward(np.ones((B, T, D)))
