"""Softmax: a distribution along any axis, the direct formula, finite at 1e4, vector-form backward;
the library's one softmax(x, axis) and log_softmax(x, axis), and their rule for an all -inf slice."""

import inspect
import math
import warnings

import numpy as np
import pytest

from transformer_np.layers.activation import Softmax, log_softmax, softmax


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


# -- the functions softmax(x, axis) and log_softmax(x, axis) ------------------------------------------


def test_the_signatures_are_x_and_axis_minus_one():
    for f in (softmax, log_softmax):
        params = inspect.signature(f).parameters
        assert list(params) == ["x", "axis"] and params["axis"].default == -1


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -2])
def test_functions_match_the_direct_formulas_along_any_axis(x, axis):
    np.testing.assert_allclose(softmax(x, axis), direct(x, axis), rtol=1e-14)
    np.testing.assert_allclose(log_softmax(x, axis), np.log(direct(x, axis)), rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(softmax(x, axis), Softmax(axis).forward(x))  # the layer is the function


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functions_keep_the_dtype_and_are_finite_for_logits_of_size_1e4(dtype):
    z = np.array([[1e4, 1e4 - 1.0, -1e4], [3e4, -3e4, 0.0]], dtype=dtype)
    p, log_p = softmax(z), log_softmax(z)
    assert p.dtype == log_p.dtype == dtype
    assert np.isfinite(p).all() and np.isfinite(log_p).all()
    # row 0: log p = (0, -1, -2e4) - log(1 + e^-1 + e^-2e4)
    expected = np.array([0.0, -1.0, -2e4]) - math.log(1.0 + math.exp(-1.0))
    np.testing.assert_allclose(log_p[0], expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-30)


def test_one_rule_for_an_all_minus_inf_slice_softmax_zeros_log_softmax_minus_inf():
    z = np.array([[0.5, -np.inf, 1.5], [-np.inf, -np.inf, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero, no log of zero, no invalid value
        p, log_p = softmax(z), log_softmax(z)
        p0, log_p0 = softmax(z, axis=0), log_softmax(z, axis=0)
    e = math.exp(-1.0)
    np.testing.assert_allclose(p, [[e / (1 + e), 0.0, 1 / (1 + e)], [0.0, 0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(log_p[0], [-math.log(1 + e) - 1.0, -np.inf, -math.log(1 + e)], rtol=1e-15)
    assert np.all(log_p[1] == -np.inf)
    assert not np.isnan(p).any() and not np.isnan(log_p).any()
    # along axis 0 the middle column is the all -inf slice
    assert np.all(p0[:, 1] == 0.0) and np.all(log_p0[:, 1] == -np.inf)
    np.testing.assert_array_equal(p0[:, [0, 2]], [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(log_p0[:, [0, 2]], [[0.0, 0.0], [-np.inf, -np.inf]])


def test_functions_leave_their_input_alone(x):
    before = x.copy()
    softmax(x)
    log_softmax(x, 0)
    np.testing.assert_array_equal(x, before)


def test_functions_agree_with_torch(x):
    torch = pytest.importorskip("torch")
    for axis in (-1, 0):
        np.testing.assert_allclose(softmax(x, axis), torch.softmax(torch.tensor(x), dim=axis).numpy(), rtol=1e-14)
        np.testing.assert_allclose(
            log_softmax(x, axis), torch.log_softmax(torch.tensor(x), dim=axis).numpy(), rtol=1e-13, atol=1e-15
        )
