"""transformer_np/ops.py: each fast helper equals the plain NumPy expression it stands for."""

import numpy as np
import pytest

from transformer_np.ops import by_row_blocks, moving_average, row_mean, row_sum, rows_matmul

SHAPES = [(7,), (5, 7), (3, 5, 7), (2, 3, 4, 129), (4, 1), (1, 3, 513)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-5)])
def test_row_sum_and_row_mean_equal_numpys_sum_and_mean(shape, dtype, rtol):
    a = (1.0 + np.random.default_rng(0).standard_normal(shape)).astype(dtype)
    s, m = row_sum(a), row_mean(a)
    assert s.shape == m.shape == shape[:-1] + (1,)
    assert s.dtype == m.dtype == dtype
    # Differences come only from the order of the additions: bounded by the sum of |a|.
    scale = np.abs(a).sum(axis=-1, keepdims=True)
    np.testing.assert_array_less(np.abs(s - a.sum(axis=-1, keepdims=True)), rtol * scale + 1e-300)
    np.testing.assert_array_less(np.abs(m - a.mean(axis=-1, keepdims=True)), rtol * scale / shape[-1] + 1e-300)


def test_row_sum_of_small_integers_is_exact():
    a = np.random.default_rng(1).integers(-50, 50, size=(3, 4, 37)).astype(np.float64)
    np.testing.assert_array_equal(row_sum(a), a.sum(axis=-1, keepdims=True))
    np.testing.assert_array_equal(row_mean(a * 37), a.sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("axis", [0, 1, -2, 2, -1])
def test_row_sum_along_any_axis(axis):
    a = np.random.default_rng(2).standard_normal((3, 5, 7))
    np.testing.assert_allclose(row_sum(a, axis), a.sum(axis=axis, keepdims=True), rtol=1e-13, atol=1e-14)


def test_non_contiguous_input_and_the_input_is_left_alone():
    a = np.random.default_rng(3).standard_normal((6, 9, 5)).transpose(0, 2, 1)  # a strided view
    before = a.copy()
    np.testing.assert_allclose(row_mean(a), a.mean(axis=-1, keepdims=True), rtol=1e-13)
    np.testing.assert_array_equal(a, before)


def test_infinities_and_nan_propagate_as_in_numpy():
    a = np.array([[1.0, -np.inf, 2.0], [-np.inf, -np.inf, -np.inf], [1.0, np.nan, 0.0]])
    np.testing.assert_array_equal(row_sum(a), a.sum(axis=-1, keepdims=True))
    assert np.isnan(row_mean(a)[2, 0])


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-5)])
def test_weighted_row_mean_equals_the_mean_of_the_product(shape, dtype, rtol):
    rng = np.random.default_rng(4)
    a = rng.standard_normal(shape).astype(dtype)
    w = (1.0 + rng.standard_normal(shape[-1])).astype(dtype)
    m = row_mean(a, weights=w)
    assert m.shape == shape[:-1] + (1,) and m.dtype == dtype
    scale = np.abs(a * w).sum(axis=-1, keepdims=True) / shape[-1]
    np.testing.assert_array_less(np.abs(m - (a * w).mean(axis=-1, keepdims=True)), rtol * scale + 1e-300)


def test_weights_of_ones_give_the_plain_mean_bit_for_bit():
    a = np.random.default_rng(5).standard_normal((4, 6, 33)).astype(np.float32)
    np.testing.assert_array_equal(row_mean(a, weights=np.ones(33, dtype=np.float32)), row_mean(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999])
def test_moving_average_is_the_plain_expression_bit_for_bit_in_place(dtype, beta):
    rng = np.random.default_rng(6)
    avg, x = rng.standard_normal((2, 300, 7)).astype(dtype)
    expected = beta * avg + (1.0 - beta) * x
    out = moving_average(avg, x, beta)
    assert out is avg and avg.dtype == dtype
    np.testing.assert_array_equal(avg, expected)


@pytest.mark.parametrize("shape", [(7,), (5, 7), (3, 5, 7), (2, 3, 4, 7), (0, 7)], ids=str)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_rows_matmul_equals_matmul(shape, dtype, rtol):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((7, 11)).astype(dtype)
    y = rows_matmul(x, W)
    assert y.shape == shape[:-1] + (11,) and y.dtype == dtype
    np.testing.assert_allclose(y, x @ W, rtol=rtol, atol=rtol * 10)
    np.testing.assert_allclose(rows_matmul(y, W.T), y @ W.T, rtol=rtol, atol=rtol * 100)  # a transposed view


def test_rows_matmul_of_small_integers_is_exact_and_takes_strided_input():
    rng = np.random.default_rng(6)
    x = rng.integers(-9, 9, size=(4, 6, 5)).astype(np.float32).transpose(1, 0, 2)  # (6, 4, 5), strided
    W = rng.integers(-9, 9, size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(rows_matmul(x, W), x @ W)



def _two_elementwise(x, y):
    return x * np.tanh(y) + 0.5, np.exp(-x * x)


def _row_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


BLOCK_CASES = [((5, 7, 13), 26), ((5, 7, 13), 40), ((5, 7, 13), 1), ((3, 2000), 2**16), ((13,), 4), ((0, 13), 4),
               ((2, 3), 2**16)]


@pytest.mark.parametrize("shape, block", BLOCK_CASES, ids=str)
def test_by_row_blocks_equals_the_function_on_whole_arrays(shape, block):
    """Blocks of 2, 3 (the last one shorter) or 1 rows, one block, and the pass-through cases."""
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    blocked = by_row_blocks(_two_elementwise, x, y, block=block, whole=0)
    assert isinstance(blocked, tuple) and len(blocked) == 2
    for b, whole in zip(blocked, _two_elementwise(x, y)):
        assert b.shape == shape and b.dtype == np.float32
        np.testing.assert_array_equal(b, whole)
    p = by_row_blocks(_row_softmax, x, block=block, whole=0)  # one result: an array, not a tuple
    assert isinstance(p, np.ndarray) and p.shape == shape
    np.testing.assert_array_equal(p, _row_softmax(x))


def test_by_row_blocks_takes_inputs_of_different_widths_and_strided_input():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6, 5)).transpose(1, 0, 2)  # (6, 4, 5), not contiguous
    w = rng.standard_normal((6, 4, 2))
    out = by_row_blocks(lambda x, w: x[:, :2] * w, x, w, block=10, whole=0)  # 2 rows per block
    np.testing.assert_array_equal(out, x[..., :2] * w)


def test_by_row_blocks_runs_small_arrays_whole_and_large_ones_in_blocks():
    calls = []

    def double(x):
        calls.append(x.shape)
        return 2 * x

    x = np.ones((4, 8), np.float32)
    np.testing.assert_array_equal(by_row_blocks(double, x, block=8), 2 * x)  # 32 entries <= whole: one call
    assert calls == [(4, 8)]
    calls.clear()
    np.testing.assert_array_equal(by_row_blocks(double, x, block=16, whole=16), 2 * x)
    assert calls == [(2, 8), (2, 8)]


def test_the_layers_computed_in_blocks_equal_their_formulas_on_whole_arrays():
    """GELU and the softmax above ops.WHOLE entries run in blocks (ops.by_row_blocks): same results."""
    from transformer_np.layers.activation import GELU, Softmax, _softmax
    from transformer_np.ops import WHOLE
    from transformer_np.special import normal_cdf, normal_pdf

    rng = np.random.default_rng(9)
    x = (3 * rng.standard_normal((3, 700, 512))).astype(np.float32)  # more than WHOLE entries
    dy = rng.standard_normal(x.shape).astype(np.float32)
    assert x.size > WHOLE
    gelu = GELU()
    np.testing.assert_array_equal(gelu.forward(x), x * normal_cdf(x))  # (act.2)
    np.testing.assert_array_equal(gelu.backward(dy), dy * (normal_cdf(x) + x * normal_pdf(x)))  # (act.5)
    tanh_form = GELU("tanh")
    y, dx = tanh_form.forward(x), tanh_form.backward(dy)
    for i in range(3):  # each (1, 700, 512) slice is below WHOLE: computed whole
        piece = GELU("tanh")
        np.testing.assert_array_equal(y[i:i + 1], piece.forward(x[i:i + 1]))  # (act.3)
        np.testing.assert_array_equal(dx[i:i + 1], piece.backward(dy[i:i + 1]))  # (act.6)
    softmax = Softmax()
    p = softmax.forward(x)
    np.testing.assert_allclose(p, _softmax(x), rtol=1e-6, atol=1e-9)
    dx = softmax.backward(dy)
    np.testing.assert_allclose(dx, p * (dy - (dy * p).sum(axis=-1, keepdims=True)), rtol=1e-4, atol=1e-7)
