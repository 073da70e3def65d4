"""PositionwiseFeedForward (notes/feedforward.md): the forward formula, hidden-unit dropout, the
order of the backward pass, dtypes and errors. Gradients: the catalogue (checks/blocks.py)."""

import math

import numpy as np
import pytest

from transformer_np.layers.feedforward import PositionwiseFeedForward

from helpers import record_backward_calls

B, T, D, D_FF = 3, 5, 7, 11

_erf = np.vectorize(math.erf)


def _ffn(activation="relu", dropout=0.0, dtype=np.float64, d_ff=D_FF, seed=0):
    rng = np.random.default_rng(seed)
    layer = PositionwiseFeedForward(D, d_ff, activation, dropout=dropout, rng=rng, dtype=dtype)
    layer.w_1.bias.data[...] = 0.3 * rng.standard_normal(d_ff)
    layer.w_2.bias.data[...] = 0.3 * rng.standard_normal(D)
    return layer


def _direct(layer, x, f):
    """(ffn.1)-(ffn.4) with no dropout, straight from the weights."""
    H = x @ layer.w_1.weight.data + layer.w_1.bias.data
    return f(H) @ layer.w_2.weight.data + layer.w_2.bias.data


@pytest.mark.parametrize(
    "activation, f",
    [
        ("relu", lambda h: np.maximum(h, 0.0)),
        ("gelu", lambda h: h * 0.5 * (1.0 + _erf(h / math.sqrt(2.0)))),
        (
            "gelu_tanh",
            lambda h: 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h**3))),
        ),
    ],
)
def test_matches_the_formula(activation, f):
    layer = _ffn(activation)
    x = np.random.default_rng(1).standard_normal((B, T, D))
    np.testing.assert_allclose(layer.forward(x), _direct(layer, x, f), rtol=1e-12, atol=1e-14)


def test_every_position_is_processed_alone():
    layer = _ffn("gelu")
    x = np.random.default_rng(2).standard_normal((B, T, D))
    y = layer.forward(x)
    x2 = x.copy()
    x2[1, 3] += 1.0  # change one token
    changed = np.any(layer.forward(x2) != y, axis=-1)
    assert changed[1, 3] and changed.sum() == 1


def test_parameters_and_their_shapes():
    shapes = {name: p.shape for name, p in _ffn().named_parameters()}
    assert shapes == {"w_1.weight": (D, D_FF), "w_1.bias": (D_FF,), "w_2.weight": (D_FF, D), "w_2.bias": (D,)}


def test_dropout_acts_on_the_hidden_units_after_the_activation():
    # With d_ff = d_model, W2 = I and b2 = 0, the output IS the dropped-out hidden layer:
    # every entry is 0 or relu(H) / (1 - p).
    p = 0.5
    layer = _ffn("relu", dropout=p, d_ff=D)
    layer.w_2.weight.data[...] = np.eye(D)
    layer.w_2.bias.data[...] = 0.0
    x = np.random.default_rng(3).standard_normal((40, T, D))
    A = np.maximum(x @ layer.w_1.weight.data + layer.w_1.bias.data, 0.0)
    y = layer.forward(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], A[kept] / (1 - p), rtol=1e-14)
    dropped_fraction = 1 - kept[A > 0].mean()
    assert abs(dropped_fraction - p) < 0.05, dropped_fraction


def test_eval_mode_switches_dropout_off():
    layer = _ffn("relu", dropout=0.5)
    x = np.random.default_rng(4).standard_normal((B, T, D))
    expected = _direct(layer, x, lambda h: np.maximum(h, 0.0))
    assert not np.allclose(layer.forward(x), expected)
    np.testing.assert_allclose(layer.eval().forward(x), expected, rtol=1e-14)


def test_backward_calls_the_children_in_reverse_order():
    layer = _ffn("gelu", dropout=0.1)
    calls = record_backward_calls(layer, ("w_1", "activation", "dropout", "w_2"))
    y = layer.forward(np.random.default_rng(5).standard_normal((B, T, D)))
    layer.backward(np.ones_like(y))
    assert calls == ["w_2", "dropout", "activation", "w_1"]


def test_unknown_activation_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"expected one of 'relu', 'gelu', 'gelu_tanh', received 'swish'"):
        PositionwiseFeedForward(D, D_FF, "swish")


def test_wrong_feature_size_names_expected_and_received():
    with pytest.raises(ValueError, match=r"expected last dimension 7, received shape \(3, 5, 8\)"):
        _ffn().forward(np.zeros((B, T, 8)))


def test_float32_stays_float32():
    layer = _ffn("gelu", dropout=0.2, dtype=np.float32)
    y = layer.forward(np.random.default_rng(6).standard_normal((B, T, D)).astype(np.float32))
    dx = layer.backward(np.ones_like(y))
    grads = [p.grad.dtype for p in layer.parameters()]
    assert y.dtype == dx.dtype == np.float32 and set(grads) == {np.dtype(np.float32)}


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match=r"PositionwiseFeedForward\.backward\(\) called before forward"):
        _ffn().backward(np.ones((B, T, D)))
