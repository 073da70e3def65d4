"""Encoder-decoder batches: padding, the shifted decoder input/output, and the masks."""

import numpy as np
import pytest

from transformer_np.data import (
    BOS,
    EOS,
    PAD,
    iterate_batches,
    make_seq2seq_batch,
    pad_batch,
    shifted_batch,
)

SRC = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10, 11, 12])]
TGT = [np.array([7, 6, 5]), np.array([8, 8]), np.array([12])]


def test_pad_batch_pads_on_the_right():
    ids, lengths = pad_batch([[4, 5, 6], [7]], pad_id=0)
    np.testing.assert_array_equal(ids, [[4, 5, 6], [7, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1])
    assert ids.dtype == lengths.dtype == np.int64
    ids, lengths = pad_batch([[], [3]], pad_id=9)
    np.testing.assert_array_equal(ids, [[9], [3]])
    with pytest.raises(ValueError, match="expected at least one sequence, received an empty list"):
        pad_batch([])
    with pytest.raises(ValueError, match=r"sequences\[1\]: expected a 1-D sequence of token ids, received shape \(2, 2"):
        pad_batch([[1], [[1, 2], [3, 4]]])
    with pytest.raises(TypeError, match="expected integer token ids, received dtype float64"):
        pad_batch([[1.5]])


def test_seq2seq_batch_values():
    b = make_seq2seq_batch(SRC, TGT)
    np.testing.assert_array_equal(b.src, [[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, 11, 12]])
    np.testing.assert_array_equal(b.tgt_in, [[BOS, 7, 6, 5], [BOS, 8, 8, PAD], [BOS, 12, PAD, PAD]])
    np.testing.assert_array_equal(b.tgt_out, [[7, 6, 5, EOS], [8, 8, EOS, PAD], [12, EOS, PAD, PAD]])
    assert b.n_tokens == 4 + 3 + 2
    assert b.src_mask.shape == (3, 1, 1, 4) and b.tgt_mask.shape == (3, 1, 4, 4)
    assert b.src_mask.dtype == b.tgt_mask.dtype == bool
    with pytest.raises(ValueError, match=r"expected as many target sequences as source sequences \(3\), received 2"):
        make_seq2seq_batch(SRC, TGT[:2])


def test_masks_hide_padding_and_the_future():
    b = make_seq2seq_batch(SRC, TGT)
    src_len, tgt_len = [3, 1, 4], [4, 3, 2]  # target lengths include BOS
    for i in range(3):
        for j in range(4):
            assert b.src_mask[i, 0, 0, j] == (j < src_len[i])
            for q in range(4):
                assert b.tgt_mask[i, 0, q, j] == (j <= q and j < tgt_len[i])
    # every query row sees at least BOS, so no attention row is empty
    assert b.tgt_mask.any(axis=-1).all()
    # masked keys are exactly the padded ones
    np.testing.assert_array_equal(b.src_mask[:, 0, 0, :], b.src != PAD)


def test_batch_masks_are_the_layers_masks():
    from transformer_np.layers import masks

    b = make_seq2seq_batch(SRC, TGT)
    np.testing.assert_array_equal(b.src_mask, masks.padding_mask_from_ids(b.src, PAD))
    expected = masks.combine_masks(masks.padding_mask_from_ids(b.tgt_in, PAD), masks.causal_mask(4))
    np.testing.assert_array_equal(b.tgt_mask, expected)
    masks.check_mask(b.src_mask, 3, 2, 4, 4)  # accepted by the attention layers as they are
    masks.check_mask(b.tgt_mask, 3, 2, 4, 4)


def test_shifted_batch_is_the_annotated_convention():
    src = np.array([[1, 4, 5, 0], [1, 6, 0, 0]])
    tgt = np.array([[1, 5, 4, 0], [1, 7, 8, 9]])
    b = shifted_batch(src, tgt, pad=0)
    np.testing.assert_array_equal(b.tgt_in, [[1, 5, 4], [1, 7, 8]])
    np.testing.assert_array_equal(b.tgt_out, [[5, 4, 0], [7, 8, 9]])
    np.testing.assert_array_equal(b.src_mask[:, 0, 0], [[1, 1, 1, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(b.tgt_mask[0, 0], [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert b.n_tokens == 2 + 3
    with pytest.raises(ValueError, match=r"tgt: expected shape \(2, T\+1\) with T\+1 >= 2 .*received \(2, 1\)"):
        shifted_batch(src, tgt[:, :1])


def test_iterate_batches_visits_every_pair_once():
    sources = [np.array([3 + i]) for i in range(10)]
    targets = [np.array([3 + i, 3 + i]) for i in range(10)]
    batches = list(iterate_batches(sources, targets, 4, rng=np.random.default_rng(0)))
    assert [b.src.shape[0] for b in batches] == [4, 4, 2]
    seen = np.concatenate([b.src[:, 0] for b in batches])
    assert sorted(seen.tolist()) == list(range(3, 13)) and seen.tolist() != list(range(3, 13))
    for b in batches:
        np.testing.assert_array_equal(b.tgt_out[:, :2], np.repeat(b.src, 2, axis=1))
    again = list(iterate_batches(sources, targets, 4, rng=np.random.default_rng(0)))
    assert all(np.array_equal(a.src, c.src) for a, c in zip(batches, again))
    in_order = np.concatenate([b.src[:, 0] for b in iterate_batches(sources, targets, 3)])
    assert in_order.tolist() == list(range(3, 13))
