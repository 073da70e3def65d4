"""Linear: the row-vector affine map, its errors, and its gradients against a slow loop."""

import numpy as np
import pytest

from transformer_np.layers import Linear


@pytest.fixture
def layer():
    rng = np.random.default_rng(0)
    layer = Linear(7, 4, rng=rng, dtype=np.float64)
    layer.bias.data[...] = rng.standard_normal(4)
    return layer


def test_forward_is_x_times_w_plus_b_on_every_row(layer):
    x = np.random.default_rng(1).standard_normal((3, 5, 7))
    y = layer.forward(x)
    for b in range(3):
        for t in range(5):
            np.testing.assert_allclose(y[b, t], x[b, t] @ layer.weight.data + layer.bias.data, rtol=1e-13)


def test_weight_gradient_sums_over_every_row(layer):
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((3, 5, 7)), rng.standard_normal((3, 5, 4))
    layer.forward(x)
    dx = layer.backward(dy)
    expected_dW = sum(np.outer(x[b, t], dy[b, t]) for b in range(3) for t in range(5))  # (lin.3)
    np.testing.assert_allclose(layer.weight.grad, expected_dW, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=(0, 1)), rtol=1e-12)  # (lin.4)
    np.testing.assert_allclose(dx, dy @ layer.weight.data.T, rtol=1e-12)  # (lin.2)


def test_xavier_uniform_bound_and_zero_bias():
    layer = Linear(300, 200, rng=np.random.default_rng(3))
    bound = np.sqrt(6 / 500)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.95 * bound
    assert not layer.bias.data.any()


def test_errors_name_expected_and_received(layer):
    with pytest.raises(ValueError, match=r"x: expected last dimension 7, received shape \(2, 6\)"):
        layer.forward(np.ones((2, 6)))
    with pytest.raises(TypeError, match="x: expected dtype float64 \\(the dtype of weight\\), received float32"):
        layer.forward(np.ones((2, 7), dtype=np.float32))
    with pytest.raises(TypeError, match="x: expected a floating-point array, received int64"):
        layer.forward(np.ones((2, 7), dtype=np.int64))
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator .*received int"):
        Linear(2, 2, rng=0)
