"""Embedding: lookup, sqrt(D) scale, scatter-add gradient with repeated ids, input checks."""

import math

import numpy as np
import pytest

from transformer_np.layers.embedding import Embedding
from transformer_np.module import Parameter

V, D = 11, 6


def make(scale=False, dtype=np.float64, seed=0):
    return Embedding(V, D, scale=scale, rng=np.random.default_rng(seed), dtype=dtype)


def test_forward_gathers_rows_of_the_table():
    layer = make()
    ids = np.array([[3, 0, 10], [3, 7, 7]])
    y = layer.forward(ids)
    assert y.shape == (2, 3, D)
    for b in range(2):
        for t in range(3):
            np.testing.assert_array_equal(y[b, t], layer.weight.data[ids[b, t]])


def test_scale_multiplies_by_sqrt_d_model_and_leaves_the_table_alone():
    plain, scaled = make(scale=False), make(scale=True)
    np.testing.assert_array_equal(plain.weight.data, scaled.weight.data)  # same seed, same init
    before = scaled.weight.data.copy()
    ids = np.array([[1, 2, 2, 9]])
    np.testing.assert_allclose(scaled.forward(ids), math.sqrt(D) * plain.forward(ids), rtol=1e-15)
    np.testing.assert_array_equal(scaled.weight.data, before)


def test_initial_weights_have_variance_one_over_d_model():
    layer = Embedding(2000, 50, rng=np.random.default_rng(1), dtype=np.float64)
    assert layer.weight.data.std() == pytest.approx(1 / math.sqrt(50), rel=0.02)
    scaled = Embedding(2000, 50, scale=True, rng=np.random.default_rng(1), dtype=np.float64)
    y = scaled.forward(np.arange(2000).reshape(40, 50))
    assert y.std() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("scale", [False, True])
def test_repeated_ids_accumulate_like_an_explicit_loop(scale):
    layer = make(scale=scale)
    ids = np.array([[4, 4, 1, 9], [9, 4, 0, 4]])  # 4 four times, 9 twice, most ids never
    layer.forward(ids)
    dY = np.random.default_rng(5).standard_normal((2, 4, D))
    assert layer.backward(dY) is None  # integer ids have no gradient

    expected = np.zeros((V, D))
    s = math.sqrt(D) if scale else 1.0
    for b in range(2):
        for t in range(4):
            expected[ids[b, t]] += s * dY[b, t]
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(layer.weight.grad[4], s * (dY[0, 0] + dY[0, 1] + dY[1, 1] + dY[1, 3]), rtol=1e-14)
    assert not layer.weight.grad[[2, 3, 5, 6, 7, 8, 10]].any()


def test_gradient_adds_to_what_is_already_there():
    layer = make()
    ids = np.array([[2, 2]])
    dY = np.ones((1, 2, D))
    layer.forward(ids)
    layer.backward(dY)
    layer.forward(ids)
    layer.backward(dY)
    np.testing.assert_array_equal(layer.weight.grad[2], np.full(D, 4.0))


def test_weight_is_the_parameter_named_weight():
    layer = make()
    assert isinstance(layer.weight, Parameter)
    assert dict(layer.named_parameters()) == {"weight": layer.weight}
    assert layer.weight.shape == (V, D)


@pytest.mark.parametrize("bad, received", [([[0, 11]], r"\[0, 11\]"), ([[-1, 3]], r"\[-1, 3\]"), ([[12, 40]], r"\[12, 40\]")])
def test_ids_out_of_range_are_refused_naming_range_and_values(bad, received):
    with pytest.raises(ValueError, match=r"expected values in \[0, 11\), received values in " + received):
        make().forward(np.array(bad))


def test_non_integer_ids_are_refused():
    with pytest.raises(TypeError, match="expected an integer array, received float64"):
        make().forward(np.array([[1.0, 2.0]]))
    with pytest.raises(TypeError, match="expected an integer array, received list"):
        make().forward([[1, 2]])


def test_ids_must_be_batch_by_time():
    with pytest.raises(ValueError, match=r"expected 2 dimensions \(B, T\), received shape \(4,\)"):
        make().forward(np.array([1, 2, 3, 4]))


def test_float32_stays_float32():
    layer = make(scale=True, dtype=np.float32)
    y = layer.forward(np.array([[1, 1, 3]]))
    assert y.dtype == np.float32
    layer.backward(np.ones((1, 3, D), dtype=np.float32))
    assert layer.weight.grad.dtype == np.float32 and layer.weight.data.dtype == np.float32
    np.testing.assert_allclose(layer.weight.grad[1], 2 * math.sqrt(D), rtol=1e-6)


def test_backward_before_forward_raises():
    layer = make()
    with pytest.raises(RuntimeError, match="called before forward"):
        layer.backward(np.ones((1, 2, D)))
    layer.forward(np.array([[0, 1]]))
    layer.backward(np.ones((1, 2, D)))
    with pytest.raises(RuntimeError, match="called before forward"):
        layer.backward(np.ones((1, 2, D)))


@pytest.mark.parametrize("args, message", [((0, 4), "vocab_size: .* received 0"), ((5, 2.5), "d_model: .* received 2.5")])
def test_sizes_must_be_positive_integers(args, message):
    with pytest.raises(ValueError, match=message):
        Embedding(*args)
