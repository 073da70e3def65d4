"""Dropout: inverted scaling, keep fraction, repeatable masks, identity in eval mode and at p = 0."""

import numpy as np
import pytest

from transformer_np.layers.dropout import Dropout


def make(p=0.3, seed=0):
    return Dropout(p, rng=np.random.default_rng(seed))


def test_keep_fraction_is_near_one_minus_p_and_kept_values_are_scaled():
    p = 0.3
    x = np.random.default_rng(1).uniform(1.0, 2.0, size=(100, 100, 100))  # no zeros in x
    y = make(p).forward(x)
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - p, abs=0.003)  # std of the fraction is 4.6e-4
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    assert y.mean() == pytest.approx(x.mean(), rel=0.005)  # E[y] = x (drop.3)


def test_backward_uses_the_forward_mask():
    layer = make(0.4)
    x = np.ones((3, 5, 7))
    y = layer.forward(x)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy * y)  # with x = 1, y is the mask itself
    assert set(np.unique(y)) <= {0.0, 1 / 0.6}


def test_same_seed_same_mask_and_a_new_mask_on_each_call():
    x = np.ones((4, 6, 9))
    a, b = make(seed=7), make(seed=7)
    first = a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))
    assert not np.array_equal(first, a.forward(x))  # the generator has moved on
    assert not np.array_equal(first, make(seed=8).forward(x))


def test_eval_mode_is_the_identity_and_backward_passes_dy():
    layer = make(0.5).eval()
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(layer.forward(x), x)
    dy = np.random.default_rng(4).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy)
    layer.train()
    assert (layer.forward(x) == 0).any()


def test_p_zero_is_the_identity_in_training():
    layer = make(0.0)
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1, "0.5", True])
def test_p_outside_zero_one_is_refused(p):
    with pytest.raises(ValueError, match=r"expected a probability in \[0, 1\), received " + repr(p).replace(".", r"\.")):
        Dropout(p)


def test_float32_stays_float32():
    layer = make(0.3)
    y = layer.forward(np.ones((3, 5, 7), dtype=np.float32))
    dx = layer.backward(np.ones((3, 5, 7), dtype=np.float32))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-7)


@pytest.mark.parametrize("training", [True, False])
def test_backward_before_forward_raises(training):
    layer = make().train(training)
    with pytest.raises(RuntimeError, match="called before forward"):
        layer.backward(np.ones(3))
    layer.forward(np.ones(3))
    layer.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="called before forward"):
        layer.backward(np.ones(3))
