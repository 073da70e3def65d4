"""Dynamic loss scaling (prec.6), (prec.7): keep small float16 gradients out of the underflow
range without letting large ones overflow. Notes: notes/precision.md, "Loss scaling".

    scaler = LossScaler()
    model.backward(loss_fn.backward(scaler.scale))     dL_s/dlogits = s dL/dlogits    (prec.6)
    finite = scaler.unscale(params)                     g = g_s / s, in float32        (prec.6)
    if finite: optimizer.step()                         else the step is skipped
    scaler.update(finite)                               s halves, or doubles after N good steps (prec.7)
"""

import math

from ..backend import get_array_module
from ..validate import check_int


class LossScaler:
    """The loss scale ``scale`` and the rule (prec.7) that changes it.

    init_scale        s_0, a positive finite number (default 2^16, PyTorch's GradScaler)
    growth_factor     beta_up > 1: s is multiplied by it after ``growth_interval`` finite steps in a row
    backoff_factor    beta_down in (0, 1): s is multiplied by it when a gradient is inf or NaN
    growth_interval   N, the run of finite steps after which s grows

    ``good_steps`` counts the current run of finite steps, ``skipped`` the steps skipped so far.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)) or not (
                math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"loss scale: expected a positive finite number, received {init_scale!r}")
        if not (isinstance(growth_factor, (int, float)) and growth_factor > 1 and math.isfinite(growth_factor)):
            raise ValueError(f"growth_factor: expected a finite number > 1, received {growth_factor!r}")
        if not (isinstance(backoff_factor, (int, float)) and 0 < backoff_factor < 1):
            raise ValueError(f"backoff_factor: expected a number in (0, 1), received {backoff_factor!r}")
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = check_int(growth_interval, "growth_interval")
        self.good_steps = 0
        self.skipped = 0

    def unscale(self, params):
        """Divide every ``p.grad`` by the scale in place (prec.6); True when all of them are finite."""
        finite = True
        for p in params:
            p.grad *= 1.0 / self.scale  # (prec.6): a power of two by default, so exact
            finite = finite and bool(get_array_module(p.grad).isfinite(p.grad).all())
        return finite

    def update(self, finite):
        """(prec.7): back off and count a skipped step on a non-finite gradient; grow after a run."""
        if not finite:
            self.scale *= self.backoff_factor  # (prec.7): the step is skipped
            self.good_steps = 0
            self.skipped += 1
            return
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale *= self.growth_factor  # (prec.7)
            self.good_steps = 0

    def state_dict(self):
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state_dict(self, state):
        self.scale = float(state["scale"])
        self.good_steps, self.skipped = int(state["good_steps"]), int(state["skipped"])

    def __repr__(self):
        return f"LossScaler(scale={self.scale:g}, good_steps={self.good_steps}, skipped={self.skipped})"
