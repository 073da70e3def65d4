"""Softmax: a distribution along any axis, the direct formula, finite at 1e4, vector-form backward."""

import math

import numpy as np
import pytest

from transformer_np.layers.activation import Softmax


@pytest.fixture
def x():
    return 2.0 * np.random.default_rng(0).standard_normal((3, 5, 7))


def direct(x, axis):
    """exp(x) / sum(exp(x)) along axis, without any shift (fine for these small logits)."""
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -2])
def test_matches_the_direct_formula_and_sums_to_one_along_any_axis(x, axis):
    y = Softmax(axis).forward(x)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, direct(x, axis), rtol=1e-14)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-15)
    assert (y > 0).all()


def test_one_row_by_hand():
    y = Softmax().forward(np.array([[1.0, 2.0, 3.0]]))
    s = math.exp(1) + math.exp(2) + math.exp(3)
    np.testing.assert_allclose(y[0], [math.exp(1) / s, math.exp(2) / s, math.exp(3) / s], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_and_correct_for_logits_of_size_1e4(dtype):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4 + 2.0]], dtype=dtype)
    layer = Softmax()
    y = layer.forward(x)
    assert y.dtype == dtype and np.isfinite(y).all()
    # Row 0: the shifted logits are 0, -1 and -2e4; row 1: -2, -2 and 0.
    a = 1.0 / (1.0 + math.exp(-1.0))
    b = 1.0 / (1.0 + 2.0 * math.exp(-2.0))
    expected = [[a, 1.0 - a, 0.0], [b * math.exp(-2.0), b * math.exp(-2.0), b]]
    np.testing.assert_allclose(y, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert np.isfinite(layer.backward(np.ones_like(x))).all()


def test_backward_equals_the_jacobian_transpose_times_dy(x):
    """(softmax.4) against the explicit Jacobian (softmax.3), built here slice by slice."""
    for axis in (-1, 1):
        layer = Softmax(axis)
        y = layer.forward(x)
        dy = np.random.default_rng(1).standard_normal(x.shape)
        dx = layer.backward(dy)
        y_rows, dy_rows = np.moveaxis(y, axis, -1).reshape(-1, x.shape[axis]), np.moveaxis(dy, axis, -1).reshape(-1, x.shape[axis])
        expected = np.stack([(np.diag(r) - np.outer(r, r)).T @ g for r, g in zip(y_rows, dy_rows)])
        shape = np.moveaxis(dy, axis, -1).shape
        np.testing.assert_allclose(dx, np.moveaxis(expected.reshape(shape), -1, axis), rtol=1e-12, atol=1e-15)


def test_gradient_ignores_a_constant_added_to_dy(x):
    layer = Softmax()
    layer.forward(x)
    dx = layer.backward(np.full(x.shape, 3.0))
    assert np.abs(dx).max() < 1e-15


def test_masked_entries_get_zero_and_a_fully_masked_row_gives_zeros_not_nan():
    x = np.array([[0.5, -np.inf, 1.5], [-np.inf, -np.inf, -np.inf]])
    layer = Softmax()
    y = layer.forward(x)
    e = math.exp(-1.0)
    np.testing.assert_allclose(y, [[e / (1 + e), 0.0, 1 / (1 + e)], [0.0, 0.0, 0.0]], rtol=1e-15)
    dx = layer.backward(np.ones_like(x))
    assert np.isfinite(dx).all() and not dx[1].any()


def test_float32_stays_float32(x):
    layer = Softmax(axis=0)
    y = layer.forward(x.astype(np.float32))
    dx = layer.backward(np.ones(x.shape, dtype=np.float32))
    assert y.dtype == np.float32 and dx.dtype == np.float32


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="called before forward"):
        Softmax().backward(np.ones(3))


def test_agrees_with_torch(x):
    torch = pytest.importorskip("torch")
    layer = Softmax(axis=1)
    y = layer.forward(x)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.softmax(xt, dim=1)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
