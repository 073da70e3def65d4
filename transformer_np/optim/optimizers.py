"""SGD with momentum, Adam and AdamW, parameter groups, global-norm clipping. Derivation: notes/optim.md.

An optimiser holds Parameters (``p.data``, ``p.grad``) and, on ``step()``, moves every
``p.data`` in place against its gradient. The training loop around it reads

    optimizer = AdamW(param_groups(model.named_parameters(), weight_decay=0.1), lr=3e-4)
    for step in range(1, num_steps + 1):
        optimizer.zero_grad()
        ...forward, loss, backward...
        clip_grad_norm(optimizer.params, max_norm=1.0)
        optimizer.lr = schedule(step)
        optimizer.step()

Hyper-parameters live in parameter groups: ``params`` is either a list of Parameters (one
group) or a list of dicts ``{"params": [...], "weight_decay": 0.0, ...}`` whose keys override
the constructor's defaults for those parameters. That is how biases and LayerNorm gains are
kept out of weight decay (``param_groups`` below builds the usual two groups).

Buffers (momentum, Adam's moments) have the dtype and backend of their parameter, so a float32
model stays float32. ``state_dict()`` is a flat dict of NumPy arrays and Python numbers, keys
``"step"``, ``"lr.<g>"`` per group and ``"<buffer>.<i>"`` per parameter, where i counts the
parameters through the groups in order: ready for ``numpy.savez``, no pickle needed.
"""

import math

from ..backend import backend_name, get_array_module, to_backend, to_numpy
from ..module import Parameter
from ..ops import moving_average


def is_vector(name, p):
    """True for parameters with fewer than 2 axes: biases, LayerNorm gains and shifts."""
    return p.data.ndim < 2


def param_groups(named_params, weight_decay, no_decay=is_vector, no_decay_names=()):
    """Two parameter groups: ``[decayed, not decayed]``, each with its parameters' dotted names.

    named_params: (name, Parameter) pairs, e.g. ``model.named_parameters()``.
    A parameter goes to the second group (``weight_decay=0.0``) when ``no_decay(name, p)`` is
    true or its name contains one of ``no_decay_names``. The default is nanoGPT's convention:
    every 2-D weight (matrix products and embedding tables) is decayed; biases and LayerNorm
    gains and shifts (1-D) are not. Pass ``no_decay_names=("embed",)`` to spare embedding
    tables as well (minGPT's choice). Either group may be empty.
    """
    decay = {"params": [], "names": [], "weight_decay": float(weight_decay)}
    keep = {"params": [], "names": [], "weight_decay": 0.0}
    for name, p in named_params:
        spared = no_decay(name, p) or any(part in name for part in no_decay_names)
        group = keep if spared else decay
        group["params"].append(p)
        group["names"].append(name)
    return [decay, keep]


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm`` (opt.12-opt.13).

    params: an iterable of Parameters. Returns the global norm BEFORE clipping as a Python
    float. When it exceeds ``max_norm`` every ``p.grad`` is multiplied in place by
    max_norm / (norm + 1e-6), PyTorch's factor; at or below ``max_norm`` nothing changes, so
    all-zero gradients stay zero (no 0/0). A non-finite norm (an inf or NaN gradient) is
    returned with the gradients untouched: scaling by 0 would turn inf into NaN, and the
    caller should skip the step instead.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a positive number, received {max_norm}")
    grads = [p.grad for p in params]
    # Squares summed in float64: millions of float32 terms lose digits and can overflow.
    squares = [(g * g).sum(dtype=get_array_module(g).float64) for g in grads]
    norm = math.sqrt(float(sum(squares))) if squares else 0.0  # (opt.12)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)  # (opt.13)
        for g in grads:
            g *= scale
    return norm


def _build_groups(params, defaults):
    """Normalise ``params`` (Parameters, or group dicts) into groups with every hyper-parameter filled in."""
    params = list(params)
    if not params:
        raise ValueError("params: expected a non-empty list of Parameters or parameter groups, received none")
    if all(isinstance(item, dict) for item in params):
        raw_groups = params
    elif all(isinstance(item, Parameter) for item in params):
        raw_groups = [{"params": params}]
    else:
        kinds = sorted({type(item).__name__ for item in params})
        raise TypeError(
            f"params: expected Parameters or dicts with a 'params' list, received {', '.join(kinds)} "
            "(for model.named_parameters() use model.parameters() or param_groups(...))"
        )
    groups, seen = [], set()
    for g, raw in enumerate(raw_groups):
        unknown = sorted(set(raw) - set(defaults) - {"params", "names"})
        if unknown or "params" not in raw:
            raise ValueError(
                f"parameter group {g}: expected a 'params' list and keys among "
                f"{sorted(defaults)}, received keys {sorted(raw)}"
            )
        members = raw["params"]
        group = {**defaults, **raw, "params": [members] if isinstance(members, Parameter) else list(members)}
        if "names" in group and len(group["names"]) != len(group["params"]):
            raise ValueError(
                f"parameter group {g}: expected one name per parameter ({len(group['params'])}), "
                f"received {len(group['names'])} names"
            )
        for p in group["params"]:
            if not isinstance(p, Parameter):
                raise TypeError(f"parameter group {g}: expected Parameters, received {type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"parameter group {g}: a Parameter {p.shape} appears more than once")
            seen.add(id(p))
        groups.append(group)
    return groups


class Optimizer:
    """Base of the optimisers: parameter groups, the learning rate, zero_grad, step and the state dict.

    A subclass names its per-parameter buffers in ``_buffer_names(group)``, checks its
    hyper-parameters in ``_check_group`` and updates one parameter in ``_update``.
    ``step_count`` is the number of updates taken (Adam's t after the update).
    """

    def __init__(self, params, **defaults):
        self.param_groups = _build_groups(params, defaults)
        for g, group in enumerate(self.param_groups):
            group["lr"] = _check_number(group["lr"], f"parameter group {g}: lr")
            self._check_group(g, group)
        self.params = [p for group in self.param_groups for p in group["params"]]
        self._group_of = [group for group in self.param_groups for _ in group["params"]]
        self._names = [n for group in self.param_groups
                       for n in group.get("names", [None] * len(group["params"]))]
        self._state = [
            {b: get_array_module(p.data).zeros_like(p.data) for b in self._buffer_names(group)}
            for p, group in zip(self.params, self._group_of)
        ]
        self.step_count = 0

    # -- what subclasses fill in -----------------------------------------------------------------
    def _buffer_names(self, group):
        return ()

    def _check_group(self, g, group):
        """Check (and store as floats) the hyper-parameters of group ``g``; subclasses add theirs."""
        group["weight_decay"] = _check_number(group["weight_decay"], f"parameter group {g}: weight_decay")

    def _update(self, p, group, state):
        raise NotImplementedError

    # -- the learning rate -------------------------------------------------------------------------
    @property
    def lr(self):
        """The learning rate shared by all groups (an error when the groups hold different ones)."""
        lrs = [group["lr"] for group in self.param_groups]
        if len(set(lrs)) > 1:
            raise ValueError(f"lr: expected one learning rate for all groups, received {lrs}; read group['lr']")
        return lrs[0]

    @lr.setter
    def lr(self, value):
        self.set_lr(value)

    def set_lr(self, lr):
        """Set the learning rate of every group (the trainer calls this with ``schedule(step)``)."""
        lr = _check_number(lr, "lr")
        for group in self.param_groups:
            group["lr"] = lr

    # -- the update --------------------------------------------------------------------------------
    def zero_grad(self):
        """Set every gradient to zero, in place (layers add into ``p.grad``)."""
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        """Update every ``p.data`` in place from ``p.grad``; increments ``step_count`` first."""
        self.step_count += 1
        for p, group, state in zip(self.params, self._group_of, self._state):
            for name, buffer in state.items():  # the parameter moved (module.to): its buffers follow
                if backend_name(buffer) != backend_name(p.data):
                    state[name] = to_backend(buffer, backend_name(p.data))
            self._update(p, group, state)

    # -- saving and restoring ----------------------------------------------------------------------
    def _where(self, i):
        return f" ({self._names[i]})" if self._names[i] else ""

    def state_dict(self):
        """Flat dict: ``"step"`` (int), ``"lr.<g>"`` (float) per group, ``"<buffer>.<i>"`` (a NumPy copy)."""
        state = {"step": self.step_count}
        state.update({f"lr.{g}": group["lr"] for g, group in enumerate(self.param_groups)})
        for i, buffers in enumerate(self._state):
            state.update({f"{b}.{i}": to_numpy(buffer).copy() for b, buffer in buffers.items()})
        return state

    def load_state_dict(self, state):
        """Restore what ``state_dict()`` gave, casting buffers to each parameter's dtype and backend.

        Refuses, listing every mismatch, when a key is missing or unexpected or a buffer's
        shape differs from its parameter's.
        """
        shapes = {f"{b}.{i}": (p.shape, i) for i, (p, buffers) in enumerate(zip(self.params, self._state))
                  for b in buffers}
        expected = {"step", *(f"lr.{g}" for g in range(len(self.param_groups))), *shapes}
        problems = [f"missing: {k}" for k in sorted(expected - set(state))]
        problems += [f"unexpected: {k}" for k in sorted(set(state) - expected)]
        received = {k: tuple(getattr(state[k], "shape", ())) for k in shapes if k in state}
        problems += [
            f"shape of {k}{self._where(i)}: expected {shape}, received {received[k]}"
            for k, (shape, i) in shapes.items()
            if k in received and received[k] != shape
        ]
        if problems:
            raise ValueError(f"state does not match {type(self).__name__}:\n  " + "\n  ".join(problems))
        self.step_count = int(_check_number(state["step"], "step"))
        for g, group in enumerate(self.param_groups):
            group["lr"] = _check_number(state[f"lr.{g}"], f"lr.{g}")
        for i, (p, buffers) in enumerate(zip(self.params, self._state)):
            xp = get_array_module(p.data)
            for b, buffer in buffers.items():
                saved = to_backend(to_numpy(state[f"{b}.{i}"]), backend_name(p.data))
                buffer[...] = xp.asarray(saved, dtype=p.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and (coupled, L2) weight decay (opt.1-opt.3).

    PyTorch's convention: the momentum buffer sums raw gradients, b = mu b + g (opt.2), and the
    learning rate multiplies the buffer at each step, p -= lr b (opt.3). (The form
    v = mu v - lr g of Sutskever et al. is the same when lr is constant; under a schedule the
    PyTorch form applies today's lr to the whole buffer.) ``weight_decay`` adds
    weight_decay * p to the gradient (opt.1), as ``torch.optim.SGD`` does.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def _buffer_names(self, group):
        return ("momentum",) if group["momentum"] else ()

    def _check_group(self, g, group):
        super()._check_group(g, group)
        group["momentum"] = _check_number(group["momentum"], f"parameter group {g}: momentum")

    def _update(self, p, group, state):
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data  # (opt.1), a new array: p.grad stays as it was
        if group["momentum"]:
            b = state["momentum"]
            b[...] = group["momentum"] * b + g  # (opt.2)
            g = b
        p.data -= group["lr"] * g  # (opt.3)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction as in the paper (opt.4-opt.7).

    ``weight_decay`` is COUPLED L2 regularisation, as in ``torch.optim.Adam``: weight_decay * p
    is added to the gradient before the moments see it (opt.8), so it is rescaled per
    coordinate by 1 / sqrt(v_hat). For decay that is not rescaled, use AdamW.
    Buffers: ``m`` and ``v``, the first and second moment estimates, in the parameter's dtype.
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _buffer_names(self, group):
        return ("m", "v")

    def _check_group(self, g, group):
        super()._check_group(g, group)
        betas = group["betas"]
        try:
            betas = tuple(float(b) for b in betas)
        except (TypeError, ValueError):
            betas = None
        if betas is None or len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(
                f"parameter group {g}: betas: expected two numbers in [0, 1), received {group['betas']!r}"
            )
        group["betas"] = betas
        group["eps"] = _check_number(group["eps"], f"parameter group {g}: eps")
        if group["eps"] == 0:  # eps = 0 would give 0/0 for a coordinate whose gradients were all 0
            raise ValueError(f"parameter group {g}: eps: expected a positive number, received 0")

    def _update(self, p, group, state):
        xp = get_array_module(p.data)
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        t = self.step_count
        g = p.grad
        if wd and self.decoupled:
            p.data *= 1.0 - lr * wd  # (opt.9), before the Adam step, as torch.optim.AdamW
        elif wd:
            g = g + wd * p.data  # (opt.8), a new array: p.grad stays as it was
        m, v = state["m"], state["v"]
        moving_average(m, g, beta1)  # (opt.4): m = beta1 m + (1 - beta1) g, in place
        moving_average(v, g * g, beta2)  # (opt.5): v = beta2 v + (1 - beta2) g^2, in place
        # The bias corrections (opt.6) are scalars: m_hat = m / (1 - beta1^t) and
        # sqrt(v_hat) = sqrt(v) / sqrt(1 - beta2^t), so neither m_hat nor v_hat is formed.
        sqrt_v_hat_eps = xp.sqrt(v) * (1.0 / math.sqrt(1.0 - beta2**t)) + eps  # sqrt(v_hat) + eps (opt.6)
        p.data -= m / sqrt_v_hat_eps * (lr / (1.0 - beta1**t))  # (opt.7): lr m_hat / (sqrt(v_hat) + eps)


class AdamW(Adam):
    """Adam with DECOUPLED weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW`` (opt.9-opt.10).

    Each step first shrinks the parameter, p = p - lr * weight_decay * p (opt.9), then takes the
    Adam step of ``Adam`` on the raw gradient (opt.10): the decay is the same fraction
    lr * weight_decay for every coordinate, whatever its gradient history.
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _check_number(value, name):
    """``value`` as a Python float, which must be finite and >= 0 (a NumPy number or 0-d array is fine)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a finite number >= 0, received {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, received {value!r}")
    return number
