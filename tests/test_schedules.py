"""Learning-rate schedules: values against their formulas, peaks, monotonicity, nanoGPT's convention."""

import math
from functools import partial

import numpy as np
import pytest

from transformer_np.optim import constant_lr, make_schedule, noam_lr, warmup_cosine_lr

D, W = 512, 4000


def test_noam_against_its_formula_at_chosen_steps():
    assert noam_lr(1, D, W) == pytest.approx(1 / math.sqrt(512) * 4000**-1.5, rel=1e-14)
    assert noam_lr(W, D, W) == pytest.approx(1 / math.sqrt(512 * 4000), rel=1e-14)
    assert noam_lr(2 * W, D, W) == pytest.approx(1 / math.sqrt(512 * 8000), rel=1e-14)
    assert noam_lr(100, D, W, factor=2.0) == pytest.approx(2 * 100 / (math.sqrt(512) * 4000**1.5), rel=1e-14)
    assert noam_lr(10**6, D, W) == pytest.approx(1 / math.sqrt(512 * 10**6), rel=1e-14)


def test_noam_peaks_at_the_end_of_warmup_and_step_0_is_step_1():
    assert noam_lr(W, D, W) == pytest.approx(6.9877e-4, rel=1e-4)
    steps = np.arange(1, 3 * W)
    lrs = [noam_lr(int(s), D, W) for s in steps]
    assert steps[int(np.argmax(lrs))] == W
    assert np.all(np.diff(lrs[: W]) > 0) and np.all(np.diff(lrs[W - 1:]) < 0)
    assert noam_lr(0, D, W) == noam_lr(1, D, W) > 0


MAX, MIN, WARM, TOTAL = 1e-3, 1e-4, 10, 110


def cosine(step):
    return MIN + 0.5 * (MAX - MIN) * (1 + math.cos(math.pi * (step - WARM) / (TOTAL - WARM)))


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),
        (1, MAX / WARM),
        (WARM // 2, MAX / 2),
        (WARM, MAX),
        (WARM + 1, cosine(WARM + 1)),
        (2 * WARM, cosine(2 * WARM)),
        ((WARM + TOTAL) // 2, (MAX + MIN) / 2),
        (TOTAL - 1, cosine(TOTAL - 1)),
        (TOTAL, MIN),
        (TOTAL + 1, MIN),
        (10 * TOTAL, MIN),
    ],
)
def test_warmup_cosine_against_its_formula(step, expected):
    assert warmup_cosine_lr(step, MAX, WARM, TOTAL, MIN) == pytest.approx(expected, rel=1e-13, abs=1e-18)


def test_warmup_cosine_rises_then_falls_and_is_continuous():
    lrs = np.array([warmup_cosine_lr(s, MAX, WARM, TOTAL, MIN) for s in range(TOTAL + 20)])
    assert np.all(np.diff(lrs[: WARM + 1]) > 0)
    assert np.all(np.diff(lrs[WARM: TOTAL + 1]) < 0)
    assert np.all(lrs[TOTAL:] == MIN)
    # Continuity: the cosine piece, extended to s = warmup and s = total, gives the same values.
    assert cosine(WARM) == pytest.approx(lrs[WARM], rel=1e-15)
    assert cosine(TOTAL) == pytest.approx(MIN, rel=1e-12)
    assert lrs.max() == MAX and lrs.argmax() == WARM


def test_warmup_0_starts_at_the_peak():
    assert warmup_cosine_lr(0, MAX, 0, 100, MIN) == MAX
    assert warmup_cosine_lr(50, MAX, 0, 100, MIN) == pytest.approx((MAX + MIN) / 2, rel=1e-13)


def nanogpt_get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    """nanoGPT's schedule as its train.py states it: iterations from 0, warmup (it + 1) / (W + 1)."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def test_nanogpt_schedule_is_ours_shifted_by_one():
    for it in range(140):
        ours = warmup_cosine_lr(it + 1, MAX, WARM + 1, TOTAL + 1, MIN)
        assert ours == pytest.approx(nanogpt_get_lr(it, MAX, WARM, TOTAL, MIN), rel=1e-13)


def test_constant_and_partial_and_make_schedule():
    assert constant_lr(0, 3e-4) == constant_lr(12345, 3e-4) == 3e-4
    schedule = partial(noam_lr, d_model=D, warmup=W)
    assert schedule(W) == noam_lr(W, D, W)
    schedule = make_schedule("warmup_cosine", max_lr=MAX, warmup=WARM, total=TOTAL, min_lr=MIN)
    assert [schedule(s) for s in (1, WARM, TOTAL)] == [MAX / WARM, MAX, MIN]
    assert schedule(np.int64(WARM)) == MAX


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: noam_lr(-1, D, W), ValueError, "step: expected an integer >= 0, received -1"),
        (lambda: noam_lr(1.5, D, W), TypeError, "step: expected an integer >= 0, received 1.5"),
        (lambda: noam_lr(1, D, 0), ValueError, "warmup: expected a positive number, received 0"),
        (lambda: warmup_cosine_lr(1, MAX, 20, 10), ValueError, "received warmup=20, total=10"),
        (lambda: warmup_cosine_lr(1, MIN, 1, 10, MAX), ValueError, "0 <= min_lr <= max_lr"),
        (lambda: make_schedule("linear", lr=1.0), ValueError, "expected one of 'constant', 'noam'"),
        (lambda: make_schedule("noam", d_model=D), TypeError, "warmup"),
    ],
)
def test_bad_arguments_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()
