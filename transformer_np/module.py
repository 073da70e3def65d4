"""Parameter and Module: the forward/backward contract every layer and model follows.

    y = module.forward(x, ...)     computes the output and caches what backward needs
    dx = module.backward(dy)       returns dL/dx for each floating-point positional input of
                                   forward (a tuple if several, None if there are none) and
                                   ADDS dL/dparam into every parameter's .grad

Because gradients are added (``+=``), a Parameter used in two places (a tied embedding and
output matrix) receives the sum of both contributions with no special case; call
``zero_grad()`` before each new backward pass.
"""

from contextlib import contextmanager

import numpy as np

from .backend import backend_name, get_array_module, get_backend, to_backend, to_numpy
from .validate import check_upstream

_INFERENCE = ("kept nothing: inference forward",)  # what _cache holds after an inference forward


class Parameter:
    """A learnable array ``data`` and the gradient ``grad`` accumulated into it (same shape and dtype)."""

    def __init__(self, data):
        self.data = data
        self.grad = get_array_module(data).zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, backend={backend_name(self.data)})"


class Module:
    """Base class of every layer, loss and model.

    Subclasses implement ``forward`` and ``backward``. They store what backward needs with
    ``self.save_for_backward(..., output=y)`` and take it back with ``self.saved(dy)``; the
    cache is released by backward, so a second backward after one forward is an error, not
    garbage, and ``dy`` is checked against the shape and dtype of ``y`` (an upstream gradient
    of the wrong shape is an error naming the layer, not a silently broadcast result).

    Inference mode (``inference_mode()``) makes every forward keep nothing for backward (the
    activations of a large model are released as soon as they are used); a backward after such
    a forward is an error saying so.
    Parameters and sub-modules are found by walking the instance attributes in the order they
    were assigned, which gives stable dotted names such as ``"layers.0.attn.w_q.weight"``.
    """

    training = True
    keeps_for_backward = True  # False in inference mode: forward keeps nothing for backward
    _cache = None
    _output = None  # (shape, dtype) of the last forward's output, for checking backward's dout

    def forward(self, *inputs, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *inputs, **kwargs):
        return self.forward(*inputs, **kwargs)

    # -- the cache between forward and backward ---------------------------------------------
    def save_for_backward(self, *values, output=None):
        """Keep ``values`` for backward; ``output`` (forward's result) fixes the shape and dtype
        backward's upstream gradient must have. In inference mode nothing is kept."""
        if not self.keeps_for_backward:
            self._cache, self._output = _INFERENCE, None
            return
        self._cache = values
        self._output = None if output is None else (tuple(output.shape), output.dtype)

    def saved(self, dout=None):
        """The values forward saved, handed over once; raises if forward has not run since, if
        it ran in inference mode, or if ``dout`` does not match forward's output."""
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(
                f"{name}.backward() called before forward(): expected one forward "
                "before each backward, received none since the last backward"
            )
        if self._cache is _INFERENCE:
            raise RuntimeError(
                f"{name}.backward() after a forward that kept nothing for backward: expected a forward "
                "outside inference mode (model.inference_mode(False)) and without a KV cache, "
                "received an inference forward"
            )
        if dout is not None and self._output is not None:
            check_upstream(dout, *self._output, f"{name}.backward")
        values, self._cache = self._cache, None
        return values

    # -- walking the tree ---------------------------------------------------------------------
    def _children(self):
        """(name, value) for every Parameter or Module attribute, lists/tuples unrolled as name.i."""
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Parameter, Module)):
                        yield f"{name}.{i}", item

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every module below it, parents first."""
        yield prefix, self
        for name, child in self._children():
            if isinstance(child, Module):
                yield from child.named_modules(f"{prefix}{name}.")

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_random_modules(self):
        """(dotted prefix, module) for every module below (and including) this one that draws
        random numbers, i.e. whose ``rng`` is a numpy Generator (Dropout, and layers holding one)."""
        for prefix, module in self.named_modules():
            if isinstance(getattr(module, "rng", None), np.random.Generator):
                yield prefix, module

    def named_parameters(self):
        """(dotted name, Parameter) pairs in a stable order; a shared Parameter is listed once,
        under the first name it is reached by."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, child in module._children():
                if isinstance(child, Parameter) and id(child) not in seen:
                    seen.add(id(child))
                    yield prefix + name, child

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        """Number of scalar parameters (shared ones counted once)."""
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    # -- modes, state, device -------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active) for this module and all below it; returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Evaluation mode (dropout is the identity); returns self."""
        return self.train(False)

    def inference_mode(self, mode=True):
        """With ``mode`` True, every forward below this module keeps nothing for backward (no
        activations are held after use; backward becomes an error); False restores the default.
        Independent of train/eval. Returns self."""
        for m in self.modules():
            m.keeps_for_backward = not mode
        return self

    def state_dict(self):
        """{dotted name: NumPy copy of the parameter's data}."""
        return {name: to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays from ``state`` into the parameters (cast to each parameter's dtype and backend).

        Refuses, listing every mismatch, when a name is missing or unexpected or a shape differs.
        """
        params = dict(self.named_parameters())
        problems = [f"missing: {n}" for n in params if n not in state]
        problems += [f"unexpected: {n}" for n in state if n not in params]
        problems += [
            f"shape of {n}: expected {params[n].shape}, received {tuple(state[n].shape)}"
            for n in params
            if n in state and tuple(state[n].shape) != params[n].shape
        ]
        if problems:
            raise ValueError(f"state does not match {type(self).__name__}:\n  " + "\n  ".join(problems))
        for name, p in params.items():
            xp = get_array_module(p.data)
            p.data[...] = xp.asarray(to_backend(to_numpy(state[name]), backend_name(p.data)), dtype=p.dtype)

    def to(self, backend):
        """Move every parameter, gradient and array attribute to ``"numpy"`` or ``"cupy"``; returns self."""
        get_backend(backend)  # an unknown name fails here, even for a module with no arrays
        for p in self.parameters():
            p.data = to_backend(p.data, backend)
            p.grad = to_backend(p.grad, backend)
        for m in self.modules():
            m._cache = None  # cached activations live on the old device
            for name, value in vars(m).items():
                if hasattr(value, "__array__") and hasattr(value, "dtype") and not isinstance(value, Parameter):
                    setattr(m, name, to_backend(value, backend))
        return self


@contextmanager
def no_backward(module):
    """Inside the ``with`` block, forwards below ``module`` keep nothing for backward (as in
    ``inference_mode``); afterwards every module is back in the mode it was in. A KV-cache
    forward runs this way: it is inference only."""
    modules = module.modules()
    kept = [m.keeps_for_backward for m in modules]
    for m in modules:
        m.keeps_for_backward = False
    try:
        yield module
    finally:
        for m, keep in zip(modules, kept):
            m.keeps_for_backward = keep
