"""Positional encodings (notes/positional.md): the sinusoid table against math.sin/cos, odd widths,
the rotation property, the learned table's gradient, max_len errors and dtypes.
Gradients: the catalogue (checks/blocks.py)."""

import math

import numpy as np
import pytest

from transformer_np.layers.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

B, T, D = 3, 5, 7


def _pe(pos, col, d):
    """(pos.1), (pos.2) for one entry, with Python floats."""
    i = col // 2
    angle = pos / 10000 ** (2 * i / d)
    return math.sin(angle) if col % 2 == 0 else math.cos(angle)


@pytest.mark.parametrize("d", [7, 8])
def test_table_matches_the_formula(d):
    pe = SinusoidalPositionalEncoding(d, max_len=100, dtype=np.float64).pe
    assert pe.shape == (100, d)
    entries = [(0, 0), (0, 1), (1, 0), (1, 1), (3, 2), (17, 3), (42, 4), (99, 5), (99, d - 1), (63, d - 2)]
    for pos, col in entries:
        assert pe[pos, col] == pytest.approx(_pe(pos, col, d), abs=1e-14), (pos, col)


def test_odd_width_ends_with_a_sine_column():
    d = 7
    pe = SinusoidalPositionalEncoding(d, max_len=50, dtype=np.float64).pe
    last = [_pe(p, d - 1, d) for p in range(50)]  # 2i = 6: sin(p / 10000^(6/7))
    np.testing.assert_allclose(pe[:, d - 1], last, atol=1e-14)
    np.testing.assert_allclose(pe[:, d - 1], np.sin(np.arange(50) / 10000 ** (6 / 7)), atol=1e-14)


def test_forward_adds_the_first_rows_to_every_sequence():
    layer = SinusoidalPositionalEncoding(D, max_len=20, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((B, T, D))
    y = layer.forward(x)
    for b in range(B):
        np.testing.assert_allclose(y[b] - x[b], layer.pe[:T], atol=1e-15)
    np.testing.assert_allclose(layer.forward(x, offset=4) - x, np.broadcast_to(layer.pe[4 : 4 + T], x.shape))


def test_a_shift_of_position_is_a_rotation_of_each_pair():
    """(pos.5): the pair of p + k is the pair of p times a rotation by omega_i k, for every p."""
    d = 8
    pe = SinusoidalPositionalEncoding(d, max_len=200, dtype=np.float64).pe
    for i in range(d // 2):
        omega = 1.0 / 10000 ** (2 * i / d)
        for k in (1, 5, 37):
            c, s = math.cos(omega * k), math.sin(omega * k)
            R = np.array([[c, -s], [s, c]])
            pairs = pe[:150, 2 * i : 2 * i + 2]
            np.testing.assert_allclose(pairs @ R, pe[k : 150 + k, 2 * i : 2 * i + 2], atol=1e-12)
    # hence the dot product depends on the distance only
    dots = [pe[p] @ pe[p + 9] for p in (0, 13, 80)]
    np.testing.assert_allclose(dots, dots[0], rtol=1e-12)


def test_table_is_a_constant_array_built_in_float64():
    layer = SinusoidalPositionalEncoding(D, max_len=5000, dtype=np.float32)
    assert layer.parameters() == [] and layer.pe.dtype == np.float32
    exact = SinusoidalPositionalEncoding(D, max_len=5000, dtype=np.float64).pe
    np.testing.assert_array_equal(layer.pe, exact.astype(np.float32))  # computed in float64, then cast
    np.testing.assert_array_equal(layer.to("numpy").pe, exact.astype(np.float32))  # Module.to keeps it


@pytest.mark.parametrize(
    "make",
    [lambda: SinusoidalPositionalEncoding(D, max_len=4), lambda: LearnedPositionalEmbedding(D, 4)],
)
def test_a_sequence_longer_than_max_len_names_both_lengths(make):
    layer = make()
    with pytest.raises(ValueError, match=r"at most max_len=4, received 5"):
        layer.forward(np.zeros((B, 5, D), dtype=np.float32))
    layer.forward(np.zeros((B, 4, D), dtype=np.float32))  # exactly max_len is fine
    with pytest.raises(ValueError, match=r"max_len=4, received offset 2 \+ length 3 = 5"):
        layer.forward(np.zeros((B, 3, D), dtype=np.float32), offset=2)


_BOTH = [lambda: SinusoidalPositionalEncoding(D), lambda: LearnedPositionalEmbedding(D, 9)]


@pytest.mark.parametrize("make", _BOTH)
def test_wrong_width_or_rank_is_refused(make):
    layer = make()
    with pytest.raises(ValueError, match=r"expected last dimension 7, received shape \(3, 5, 6\)"):
        layer.forward(np.zeros((B, T, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected 3 dimensions \(B, T, D\), received shape \(5, 7\)"):
        layer.forward(np.zeros((T, D), dtype=np.float32))
    with pytest.raises(TypeError, match="expected dtype float32.*received float64"):
        layer.forward(np.zeros((B, T, D)))


def test_learned_embedding_adds_its_rows_and_sums_the_gradient_over_the_batch():
    layer = LearnedPositionalEmbedding(D, 11, rng=np.random.default_rng(1), dtype=np.float64)
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert 0.01 < layer.weight.data.std() < 0.03  # N(0, 0.02^2)
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, D))
    y = layer.forward(x, offset=3)
    np.testing.assert_allclose(y - x, np.broadcast_to(layer.weight.data[3:8], x.shape), atol=1e-15)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy)  # (pos.6)
    expected = np.zeros((11, D))
    for t in range(T):  # (pos.7), slowly
        for b in range(B):
            expected[3 + t] += dy[b, t]
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-14)


def test_sinusoidal_backward_is_the_identity():
    layer = SinusoidalPositionalEncoding(D, dtype=np.float64)
    layer.forward(np.zeros((B, T, D)))
    dy = np.random.default_rng(3).standard_normal((B, T, D))
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_float32_stays_float32():
    x = np.random.default_rng(4).standard_normal((B, T, D)).astype(np.float32)
    learned = LearnedPositionalEmbedding(D, 9, dtype=np.float32)
    for layer in (SinusoidalPositionalEncoding(D, dtype=np.float32), learned):
        y = layer.forward(x)
        assert y.dtype == layer.backward(np.ones_like(y)).dtype == np.float32
    assert learned.weight.grad.dtype == np.float32


@pytest.mark.parametrize("make", _BOTH)
def test_backward_before_forward_raises(make):
    with pytest.raises(RuntimeError, match="called before forward"):
        make().backward(np.ones((B, T, D), dtype=np.float32))


def test_bad_offset_is_refused():
    with pytest.raises(ValueError, match=r"offset: expected a non-negative int, received -1"):
        SinusoidalPositionalEncoding(D).forward(np.zeros((B, T, D), dtype=np.float32), offset=-1)
