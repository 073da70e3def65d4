"""Masks: shapes, values against obvious loops, combination, and the validation messages."""

import re

import numpy as np
import pytest

from transformer_np.layers.masks import (
    causal_mask,
    check_mask,
    combine_masks,
    mask_bias,
    padding_mask_from_ids,
    padding_mask_from_lengths,
)


def test_causal_mask_is_lower_triangular():
    T = 5
    m = causal_mask(T)
    assert m.shape == (1, 1, T, T)
    assert m.dtype == bool
    expected = np.array([[j <= i for j in range(T)] for i in range(T)])
    np.testing.assert_array_equal(m[0, 0], expected)
    assert m.sum() == T * (T + 1) // 2


def test_causal_mask_uses_the_given_array_module():
    assert type(causal_mask(3, xp=np)) is np.ndarray


def test_causal_mask_rejects_bad_length():
    with pytest.raises(ValueError, match=r"T: expected an integer >= 1, received 0"):
        causal_mask(0)


def test_padding_mask_from_lengths_marks_the_first_length_keys():
    lengths = np.array([4, 0, 2])
    T = 4
    m = padding_mask_from_lengths(lengths, T)
    assert m.shape == (3, 1, 1, T)
    assert m.dtype == bool
    expected = np.array([[j < n for j in range(T)] for n in lengths])
    np.testing.assert_array_equal(m[:, 0, 0, :], expected)


def test_padding_mask_from_lengths_accepts_a_list():
    m = padding_mask_from_lengths([1, 3], 3)
    np.testing.assert_array_equal(m[:, 0, 0, :], [[True, False, False], [True, True, True]])


@pytest.mark.parametrize("bad", [[2, 6], [-1, 2]])
def test_padding_mask_from_lengths_rejects_lengths_outside_0_T(bad):
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, 6\), received values in"):
        padding_mask_from_lengths(np.array(bad), 5)


def test_padding_mask_from_lengths_rejects_float_lengths_and_wrong_rank():
    with pytest.raises(TypeError, match="lengths: expected an integer array, received float64"):
        padding_mask_from_lengths(np.array([1.0, 2.0]), 3)
    with pytest.raises(ValueError, match=r"lengths: expected 1 dimensions \(B,\), received shape \(2, 1\)"):
        padding_mask_from_lengths(np.array([[1], [2]]), 3)


def test_padding_mask_from_ids():
    ids = np.array([[5, 7, 0, 0], [0, 3, 1, 0]])
    m = padding_mask_from_ids(ids, pad_id=0)
    assert m.shape == (2, 1, 1, 4)
    np.testing.assert_array_equal(m[:, 0, 0, :], [[True, True, False, False], [False, True, True, False]])
    with pytest.raises(ValueError, match=r"ids: expected 2 dimensions \(B, T\), received shape \(4,\)"):
        padding_mask_from_ids(ids[0], 0)


def test_combine_masks_is_logical_and_with_broadcasting():
    lengths, T = np.array([3, 1]), 4
    m = combine_masks(padding_mask_from_lengths(lengths, T), causal_mask(T))
    assert m.shape == (2, 1, T, T)
    for b, n in enumerate(lengths):
        for i in range(T):
            for j in range(T):
                assert m[b, 0, i, j] == (j <= i and j < n)


def test_combine_masks_skips_none():
    c = causal_mask(3)
    assert combine_masks() is None
    assert combine_masks(None, None) is None
    np.testing.assert_array_equal(combine_masks(None, c, None), c)


def test_combine_masks_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"received \(1, 1, 3, 3\) and \(2, 1, 1, 4\)"):
        combine_masks(causal_mask(3), padding_mask_from_lengths([1, 2], 4))
    with pytest.raises(TypeError, match="mask 1: expected a boolean array, received int64"):
        combine_masks(causal_mask(3), np.ones((1, 1, 3, 3), dtype=np.int64))


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (3, 1, 1, 6), (1, 1, 5, 6), (1, 4, 1, 1), (1, 1, 1, 1)])
def test_check_mask_accepts_broadcastable_shapes(shape):
    check_mask(np.ones(shape, dtype=bool), 3, 4, 5, 6)
    check_mask(None, 3, 4, 5, 6)


@pytest.mark.parametrize("shape", [(5, 6), (3, 1, 5, 5), (2, 1, 1, 6), (3, 4, 5, 6, 1), (1, 2, 5, 6)])
def test_check_mask_rejects_other_shapes_naming_expected_and_received(shape):
    expected = r"expected a boolean array broadcastable to \(B, H, Tq, Tk\) = \(3, 4, 5, 6\)"
    received = "received shape " + re.escape(str(shape))
    with pytest.raises(ValueError, match=expected + ".*" + received):
        check_mask(np.ones(shape, dtype=bool), 3, 4, 5, 6)


def test_check_mask_rejects_non_boolean():
    with pytest.raises(TypeError, match=r"mask: expected a boolean array .* received dtype float64"):
        check_mask(np.ones((3, 1, 1, 6)), 3, 4, 5, 6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_bias_added_to_the_scores_equals_the_select_of_attn_2(dtype):
    rng = np.random.default_rng(0)
    S = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    mask = combine_masks(padding_mask_from_lengths(np.array([5, 2]), 5), causal_mask(5)[..., 1:, :])  # (2, 1, 4, 5)
    bias = mask_bias(mask, S)
    assert bias.shape == mask.shape and bias.dtype == dtype
    assert set(np.unique(bias)) <= {0.0, -np.inf}
    np.testing.assert_array_equal(S + bias, np.where(mask, S, -np.inf))
