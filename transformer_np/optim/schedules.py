"""Learning-rate schedules: pure functions lr = schedule(step). Derivation: notes/optim.md.

``step`` counts optimiser updates FROM 1: the trainer asks for ``schedule(step)`` just before
the step-th update, i.e. with ``optimizer.step_count + 1``. This is the paper's step_num in
(opt.14), and it makes ``warmup`` the number of the update that first uses the peak rate.
Step 0 is defined too (below), so a trainer that counts from 0 gets no error, only a
schedule shifted by one update.

A schedule stores nothing, so a resumed run needs only the step number. Fix every argument
but the step with ``functools.partial``, or by name with ``make_schedule``:

    schedule = partial(noam_lr, d_model=512, warmup=4000)
    schedule = make_schedule("warmup_cosine", max_lr=6e-4, warmup=200, total=5000, min_lr=6e-5)
"""

import math
import operator
from functools import partial


def _check_step(step):
    try:
        step = operator.index(step)  # int or NumPy integer; a float step is a bug in the caller
    except TypeError:
        raise TypeError(f"step: expected an integer >= 0, received {step!r}") from None
    if step < 0:
        raise ValueError(f"step: expected an integer >= 0, received {step}")
    return step


def _check_positive(value, name):
    if not value > 0:
        raise ValueError(f"{name}: expected a positive number, received {value!r}")


def constant_lr(step, lr):
    """The same ``lr`` at every step."""
    _check_step(step)
    return float(lr)


def noam_lr(step, d_model, warmup, factor=1.0):
    """factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) with s = max(step, 1) (opt.14).

    The schedule of "Attention Is All You Need": linear growth for ``warmup`` steps, then
    decay as 1 / sqrt(step). Both branches meet at s = warmup, the peak, where
    lr = factor / sqrt(d_model * warmup) (opt.15). The formula is undefined at step 0
    (0^-0.5); step 0 is given the value of step 1.
    """
    step = _check_step(step)
    _check_positive(d_model, "d_model")
    _check_positive(warmup, "warmup")
    s = max(step, 1)
    return factor * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)


def warmup_cosine_lr(step, max_lr, warmup, total, min_lr=0.0):
    """Linear warmup to ``max_lr`` at ``warmup``, cosine decay to ``min_lr`` at ``total`` (opt.16-opt.17).

    For 0 <= step <= warmup: lr = max_lr * step / warmup (opt.16), so lr is 0 at step 0,
    max_lr / warmup at the first update and max_lr at update number ``warmup``.
    For warmup < step < total: lr = min_lr + (max_lr - min_lr) (1 + cos(pi r)) / 2 with
    r = (step - warmup) / (total - warmup) (opt.17). For step >= total: min_lr.
    ``warmup=0`` skips the warmup (step 0 gets max_lr).

    nanoGPT counts its iteration ``it`` from 0 and warms up with max_lr (it + 1) / (W + 1);
    its ``get_lr(it)`` with warmup_iters W and lr_decay_iters D equals
    ``warmup_cosine_lr(it + 1, max_lr, W + 1, D + 1, min_lr)``.
    """
    step = _check_step(step)
    if warmup < 0 or total < warmup:
        raise ValueError(
            f"warmup, total: expected 0 <= warmup <= total, received warmup={warmup}, total={total}"
        )
    if not 0 <= min_lr <= max_lr:
        raise ValueError(f"min_lr, max_lr: expected 0 <= min_lr <= max_lr, received {min_lr}, {max_lr}")
    if warmup > 0 and step <= warmup:
        return max_lr * step / warmup  # (opt.16)
    if step >= total:
        return float(min_lr)
    r = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * r))  # (opt.17)


SCHEDULES = {"constant": constant_lr, "noam": noam_lr, "warmup_cosine": warmup_cosine_lr}


def make_schedule(name, **kwargs):
    """``schedule(step) -> lr`` for the schedule called ``name`` (a key of SCHEDULES) with ``kwargs`` fixed.

    The arguments are checked now, by evaluating the schedule once at step 1, so a wrong
    configuration fails before training starts rather than at the first update.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {', '.join(map(repr, SCHEDULES))}, received {name!r}")
    schedule = partial(SCHEDULES[name], **kwargs)
    schedule(1)
    return schedule
