"""ReLU and GELU (exact and tanh form) against per-element references built with math."""

import math

import numpy as np
import pytest

from transformer_np.layers.activation import GELU, ReLU


def elementwise(f, x):
    return np.array([f(float(v)) for v in np.ravel(x)]).reshape(np.shape(x))


def gelu_exact(v):
    return v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


def gelu_tanh(v):
    return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))


@pytest.fixture
def x():
    return 3.0 * np.random.default_rng(0).standard_normal((3, 5, 7))


# -- ReLU ------------------------------------------------------------------------------------------


def test_relu_forward_and_backward(x):
    layer = ReLU()
    np.testing.assert_array_equal(layer.forward(x), elementwise(lambda v: max(v, 0.0), x))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy), np.where(x > 0, dy, 0.0))


def test_relu_derivative_at_exactly_zero_is_zero():
    layer = ReLU()
    x = np.array([-1.0, 0.0, -0.0, 2.0])
    np.testing.assert_array_equal(layer.forward(x), [0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(layer.backward(np.ones(4)), [0.0, 0.0, 0.0, 1.0])


# -- GELU ------------------------------------------------------------------------------------------


def test_gelu_exact_matches_math_erf(x):
    np.testing.assert_allclose(GELU().forward(x), elementwise(gelu_exact, x), rtol=1e-14, atol=1e-15)


def test_gelu_tanh_matches_math_tanh(x):
    np.testing.assert_allclose(GELU("tanh").forward(x), elementwise(gelu_tanh, x), rtol=1e-14, atol=1e-15)


def test_the_two_forms_differ_but_little():
    x = np.linspace(-6.0, 6.0, 1201)
    diff = np.abs(GELU("none").forward(x) - GELU("tanh").forward(x))
    assert 1e-4 < diff.max() < 5e-4


def test_gelu_known_values_and_slopes():
    layer = GELU()
    y = layer.forward(np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(y, [0.0, 0.8413447460685429, -0.15865525393145707], rtol=1e-15)
    # GELU'(x) = Phi(x) + x phi(x): 1/2 at 0, and Phi(1) + phi(1) at 1.
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    expected = [0.5, 0.8413447460685429 + phi1, 0.15865525393145707 - phi1]
    np.testing.assert_allclose(layer.backward(np.ones(3)), expected, rtol=1e-14)
    tanh_layer = GELU("tanh")
    tanh_layer.forward(np.array([0.0]))
    assert tanh_layer.backward(np.ones(1))[0] == pytest.approx(0.5, abs=1e-16)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_is_finite_and_saturates_for_huge_inputs(approximate, dtype):
    layer = GELU(approximate)
    x = np.array([-1e20, -1e4, 1e4, 1e20], dtype=dtype)
    y = layer.forward(x)
    dx = layer.backward(np.ones(4, dtype=dtype))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    np.testing.assert_array_equal(y, np.array([0.0, 0.0, 1e4, 1e20], dtype=dtype))
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0, 1.0])


def test_unknown_approximation_is_refused():
    with pytest.raises(ValueError, match=r"expected one of 'none', 'tanh', received 'fast'"):
        GELU("fast")


# -- shared ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [ReLU(), GELU(), GELU("tanh")], ids=["ReLU", "GELU", "GELU-tanh"])
def test_float32_stays_float32(layer, x):
    y = layer.forward(x.astype(np.float32))
    dx = layer.backward(np.ones(x.shape, dtype=np.float32))
    assert y.dtype == np.float32 and dx.dtype == np.float32


@pytest.mark.parametrize("layer", [ReLU(), GELU(), GELU("tanh")], ids=["ReLU", "GELU", "GELU-tanh"])
def test_backward_before_forward_raises(layer):
    with pytest.raises(RuntimeError, match="called before forward"):
        layer.backward(np.ones(3))


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="expected a floating-point array, received int64"):
        ReLU().forward(np.arange(3))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_agrees_with_torch(approximate, x):
    torch = pytest.importorskip("torch")
    layer = GELU(approximate)
    y = layer.forward(x)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13, atol=1e-15)
