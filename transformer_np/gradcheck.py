"""Finite-difference gradient checking, for the tests, the notebooks, the CLI and your own code.

The checked scalar is L = sum(y * G), with y the output and G a fixed random array of y's
shape (the "upstream gradient"). Then dL/dy = G, so ``backward(G)`` must return dL/dx, and
every gradient can be compared with central differences in float64:

    numeric_i = sum((y(x + eps e_i) - y(x - eps e_i)) * G) / (2 eps)

The error of one gradient array a (analytic) against n (numeric) is

    rel_error(a, n) = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|)      (0 when both are 0)

that is, the largest error relative to the largest entry of that gradient. An element-wise
ratio |a_i - n_i| / (|a_i| + |n_i|) is not used: entries that are tiny compared with the rest
of the array are dominated by the rounding error of L itself (about 1e-16 |L| / eps) and
would fail a correct backward.

Usage on a layer:  ``check_module(layer, x)``; on your own pair of functions:
``check_function(f, f_backward, x, W)``. Both return one GradResult per input and parameter.
"""

from dataclasses import dataclass

import numpy as np

from .backend import to_numpy

TOLERANCE = 1e-7
EPS = 1e-6


@dataclass(frozen=True)
class GradResult:
    """The comparison for one input or parameter called ``what``."""

    what: str
    max_rel_error: float
    max_abs_error: float
    tol: float = TOLERANCE

    @property
    def passed(self):
        return bool(self.max_rel_error < self.tol)


def relative_error(analytic, numeric):
    """max |a - n| / max(max |a|, max |n|), and 0.0 when both arrays are all zeros."""
    a, n = to_numpy(analytic).astype(np.float64), to_numpy(numeric).astype(np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic gradient has shape {a.shape}, numeric gradient has shape {n.shape}")
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0))
    err = np.abs(a - n).max(initial=0.0)
    return 0.0 if scale == 0.0 else float(err / scale)


def numerical_gradient(f, x, upstream=1.0, eps=EPS):
    """d sum(f() * upstream) / dx by central differences, perturbing ``x`` in place.

    ``f()`` computes an array (or scalar) from the current contents of ``x``; ``x`` is
    restored exactly after each entry. The two outputs are subtracted before they are
    weighted and summed, so entries that do not move cancel exactly and the rounding error
    stays near 1e-16 |y| / eps instead of 1e-16 |L| / eps.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view: writing into it writes into x
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous array it can perturb in place")
    for i in range(flat.size):
        original = flat[i].copy()
        flat[i] = original + eps
        plus = np.array(f(), dtype=np.float64)
        flat[i] = original - eps
        minus = np.array(f(), dtype=np.float64)
        flat[i] = original
        grad.reshape(-1)[i] = np.sum((plus - minus) * upstream) / (2 * eps)
    return grad


def _require_float64(x, what):
    if x.dtype != np.float64:
        raise TypeError(
            f"{what}: gradient checks need float64, received {x.dtype} "
            "(build the layer with dtype=np.float64 and pass float64 inputs)"
        )


def _as_tuple(grads):
    if grads is None:  # no floating-point inputs, e.g. an Embedding fed integer ids
        return ()
    return grads if isinstance(grads, tuple) else (grads,)


def check_function(forward, backward, *inputs, params=None, seed=0, eps=EPS, tol=TOLERANCE):
    """Compare ``backward`` with central differences of ``forward``.

    forward(*inputs) -> y                     any shape (a scalar loss too)
    backward(G)      -> dL/dx for every floating-point input, in order (a tuple if several)
    params           {name: Parameter} whose .grad backward adds into (optional)

    Integer inputs (token ids, targets) are passed through and not differentiated.
    Returns a list of GradResult, inputs first (named x0, x1, ... by position), then params.
    """
    params = params or {}
    float_idx = [i for i, x in enumerate(inputs) if hasattr(x, "dtype") and x.dtype.kind == "f"]
    for i in float_idx:
        _require_float64(inputs[i], f"input {i}")
    for name, p in params.items():
        _require_float64(p.data, name)

    out = forward(*inputs)
    G = np.random.default_rng(seed).standard_normal(np.shape(out))
    for p in params.values():
        p.grad[...] = 0
    grads = _as_tuple(backward(G))
    if len(grads) != len(float_idx):
        raise ValueError(
            f"backward returned {len(grads)} gradient(s), expected {len(float_idx)} "
            f"(one per floating-point input)"
        )

    def output():
        return forward(*inputs)

    results = []
    for i, grad in zip(float_idx, grads):
        numeric = numerical_gradient(output, inputs[i], G, eps)
        results.append(_result(f"x{i}", grad, numeric, tol))
    for name, p in params.items():
        numeric = numerical_gradient(output, p.data, G, eps)
        results.append(_result(name, p.grad, numeric, tol))
    return results


def check_module(module, *inputs, names=None, seed=0, eps=EPS, tol=TOLERANCE, **forward_kwargs):
    """Check every floating-point input and every parameter of ``module``.

    ``forward_kwargs`` (a mask, for instance) are passed to forward and not differentiated.
    ``names`` optionally renames the inputs (e.g. ``("x", "memory")``); parameters keep their
    dotted names from ``module.named_parameters()``.

    Sub-modules that draw random numbers from a generator ``rng`` (Dropout in training mode)
    get the same generator state before every forward. Otherwise each of the many forward
    passes of the finite differences would draw a new mask, and y(x + eps) - y(x - eps) would
    compare two different functions; with it, the check differentiates the one function, with
    one fixed mask, whose gradient backward computes.
    """
    random = [m for _, m in module.named_random_modules()]

    def forward(*xs):
        for i, m in enumerate(random):
            m.rng = np.random.default_rng([seed, i])
        return module.forward(*xs, **forward_kwargs)

    results = check_function(
        forward,
        module.backward,
        *inputs,
        params=dict(module.named_parameters()),
        seed=seed,
        eps=eps,
        tol=tol,
    )
    if names is not None:
        n_inputs = len(results) - len(module.parameters())
        if len(names) != n_inputs:
            raise ValueError(f"names: expected {n_inputs} names, received {len(names)}")
        results[:n_inputs] = [
            GradResult(name, r.max_rel_error, r.max_abs_error, r.tol) for name, r in zip(names, results)
        ]
    return results


def _result(what, analytic, numeric, tol):
    abs_err = float(np.abs(to_numpy(analytic) - numeric).max(initial=0.0))
    return GradResult(what, relative_error(analytic, numeric), abs_err, tol)


def format_results(results):
    """A plain-text table of GradResults: what, max relative error, max absolute error, pass."""
    width = max([len("what")] + [len(r.what) for r in results])
    lines = [f"{'what':<{width}}  {'max rel err':>11}  {'max abs err':>11}  pass"]
    for r in results:
        lines.append(
            f"{r.what:<{width}}  {r.max_rel_error:11.2e}  {r.max_abs_error:11.2e}  {'yes' if r.passed else 'NO'}"
        )
    return "\n".join(lines)
