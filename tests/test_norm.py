"""LayerNorm (notes/layernorm.md): the forward formula, the torch cross-check, the unbiased variant,
dtypes, large inputs and errors. The gradient itself is checked from the catalogue (checks/blocks.py)."""

import math

import numpy as np
import pytest

from transformer_np.layers.norm import LayerNorm

B, T, D = 3, 5, 7


def _layer(rng, d=D, eps=1e-5, dtype=np.float64):
    layer = LayerNorm(d, eps=eps, dtype=dtype)
    layer.weight.data[...] = 1.0 + 0.5 * rng.standard_normal(d)
    layer.bias.data[...] = 0.5 * rng.standard_normal(d)
    return layer


def _slow_layernorm(x, gamma, beta, eps):
    """Row by row with Python floats: mean, biased variance, eps inside the root (ln.1)-(ln.4)."""
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        row = [float(v) for v in x[idx]]
        mu = sum(row) / len(row)
        var = sum((v - mu) ** 2 for v in row) / len(row)
        out[idx] = [g * (v - mu) / math.sqrt(var + eps) + b for v, g, b in zip(row, gamma, beta)]
    return out


def test_fresh_layer_gives_rows_with_mean_zero_and_biased_variance_one():
    x = 4.0 + 3.0 * np.random.default_rng(0).standard_normal((B, T, D))
    y = LayerNorm(D, dtype=np.float64).forward(x)
    var = x.var(axis=-1)  # NumPy's var is the biased one (ddof=0)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=-1), var / (var + 1e-5), rtol=1e-12)  # 1 up to eps / var
    np.testing.assert_allclose(y.var(axis=-1), 1.0, atol=1e-4)


def test_matches_the_formula_computed_row_by_row():
    rng = np.random.default_rng(1)
    layer = _layer(rng, eps=1e-3)
    x = rng.standard_normal((B, T, D)) * rng.uniform(0.01, 5.0, size=(B, T, 1))  # some rows near eps
    expected = _slow_layernorm(x, layer.weight.data, layer.bias.data, 1e-3)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_any_number_of_leading_axes():
    rng = np.random.default_rng(2)
    layer = _layer(rng)
    x = rng.standard_normal((2, 3, 4, D))
    np.testing.assert_allclose(layer.forward(x), layer.forward(x.reshape(-1, D)).reshape(x.shape), rtol=1e-14)


def test_caches_exactly_xhat_and_rstd():
    rng = np.random.default_rng(3)
    layer = _layer(rng)
    x = rng.standard_normal((B, T, D))
    layer.forward(x)
    xhat, rstd = layer._cache
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(rstd, 1.0 / np.sqrt(var + 1e-5), rtol=1e-14)
    np.testing.assert_allclose(xhat, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-12)
    assert xhat.shape == (B, T, D) and rstd.shape == (B, T, 1)


def test_matches_torch_layernorm_forward_and_backward():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = _layer(rng, d=13)
    x = 2.0 + rng.standard_normal((B, T, 13))
    dy = rng.standard_normal((B, T, 13))

    ref = torch.nn.LayerNorm(13, eps=1e-5).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.data))
        ref.bias.copy_(torch.from_numpy(layer.bias.data))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))

    y = layer.forward(x)
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("d", [7, 512])
def test_the_unbiased_std_variant_gives_a_different_answer(d):
    """The Annotated Transformer's (x - mean) / (std_unbiased + eps) is smaller by sqrt((D-1)/D)."""
    x = 1.0 + 2.0 * np.random.default_rng(5).standard_normal((B, T, d))
    ours = LayerNorm(d, eps=1e-6, dtype=np.float64).forward(x)
    mu = x.mean(axis=-1, keepdims=True)
    variant = (x - mu) / (x.std(axis=-1, ddof=1, keepdims=True) + 1e-6)
    ratio = variant / ours
    np.testing.assert_allclose(ratio, math.sqrt((d - 1) / d), rtol=1e-5)
    # measurable: 7% for D = 7, still 0.1% (far above rounding) for D = 512
    assert np.abs(variant - ours).max() > 0.5 * (1 - math.sqrt((d - 1) / d)) * np.abs(ours).max()


def test_eps_placement_matters_when_the_spread_is_near_sqrt_eps():
    x = 1e-3 * np.random.default_rng(6).standard_normal((B, T, D))  # std ~ 1e-3, sqrt(eps) ~ 3e-3
    ours = LayerNorm(D, eps=1e-5, dtype=np.float64).forward(x)
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    eps_outside = (x - mu) / (np.sqrt(var) + 1e-5)
    assert np.abs(ours).max() < 0.6 * np.abs(eps_outside).max()  # eps inside damps these rows


def test_float32_stays_float32():
    rng = np.random.default_rng(7)
    layer = _layer(rng, dtype=np.float32)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32


@pytest.mark.parametrize("shift", [0.0, 1e4])
def test_finite_and_accurate_at_magnitude_1e4_in_float32(shift):
    rng = np.random.default_rng(8)
    x64 = shift + (1e4 if shift == 0 else 1.0) * rng.standard_normal((B, T, D))
    x32 = x64.astype(np.float32)
    layer = _layer(rng, dtype=np.float32)
    ref = LayerNorm(D, dtype=np.float64)
    ref.weight.data[...], ref.bias.data[...] = layer.weight.data, layer.bias.data
    y = layer.forward(x32)
    dy = rng.standard_normal((B, T, D)).astype(np.float32)
    dx = layer.backward(dy)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    y_ref = ref.forward(x32.astype(np.float64))
    dx_ref = ref.backward(dy.astype(np.float64))
    np.testing.assert_allclose(y, y_ref, atol=5e-3)
    np.testing.assert_allclose(dx, dx_ref, atol=5e-3 * np.abs(dx_ref).max())


def test_a_constant_row_gives_beta_and_a_finite_gradient():
    rng = np.random.default_rng(9)
    layer = _layer(rng)
    x = np.full((2, 3, D), 7.5)
    y = layer.forward(x)
    np.testing.assert_allclose(y, np.broadcast_to(layer.bias.data, y.shape), atol=1e-12)
    assert np.isfinite(layer.backward(rng.standard_normal(x.shape))).all()


def test_backward_before_forward_raises():
    layer = LayerNorm(D)
    with pytest.raises(RuntimeError, match=r"LayerNorm\.backward\(\) called before forward"):
        layer.backward(np.ones((B, T, D), dtype=np.float32))


def test_wrong_feature_size_names_expected_and_received():
    with pytest.raises(ValueError, match=r"expected last dimension 7, received shape \(3, 5, 6\)"):
        LayerNorm(D).forward(np.zeros((B, T, 6), dtype=np.float32))


def test_dtype_mismatch_is_refused_not_upcast():
    with pytest.raises(TypeError, match="expected dtype float32.*received float64"):
        LayerNorm(D, dtype=np.float32).forward(np.zeros((B, T, D)))
