"""Finite-difference gradient checking, for the tests, the notebooks, the CLI and your own code.

The checked scalar is L = sum(y * G), with y the output and G a fixed random array of y's
shape (the "upstream gradient"). Then dL/dy = G, so ``backward(G)`` must return dL/dx, and
every gradient can be compared with central differences in float64:

    numeric_i = sum((y(x + eps e_i) - y(x - eps e_i)) * G) / (2 eps)

G comes from the checker's own random stream, default_rng([GRADCHECK_STREAM, seed]), which
no user seed reproduces. Drawn from default_rng(seed) it could equal an input drawn from the
same seed, and for LayerNorm G = x is exactly the one direction its backward removes: the
true gradient is then zero and the verdict meaningless.

The error of one gradient array a (analytic) against n (numeric) is

    rel_error(a, n) = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|)      (0 when both are 0)

that is, the largest error relative to the largest entry of that gradient. An element-wise
ratio |a_i - n_i| / (|a_i| + |n_i|) is not used: entries that are tiny compared with the rest
of the array are dominated by the rounding error of L itself (about 1e-16 |L| / eps) and
would fail a correct backward.

A gradient that is zero by the mathematics (the key bias of attention) has no scale to be
relative to: its analytic value is rounding noise of one size, its numeric value rounding
noise of another, and their relative error is about 1. When both arrays lie below an
absolute floor, the result is reported as "zero" (measure: absolute, the floor stated)
instead of compared. The default floor is ten times the rounding error of one central
difference when every entry of y is off by one unit in the last place,

    zero_floor = 10 * u * sum_j |y_j G_j| / eps          (u = 2.2e-16, float64)

below which no relative error of 1e-7 could be measured anyway.

Accumulation is checked too: every parameter's .grad is pre-filled with a known random
array before backward, and backward must ADD to it (the Module contract). A backward that
assigns (``=``) instead of adding (``+=``) fails with a message saying so.

Usage on a layer:  ``check_module(layer, x)``; on your own pair of functions:
``check_function(f, f_backward, x, W, names=("x", "W"))``. Both return one GradResult per
input and parameter; ``format_results`` prints them with the measure used.
"""

from dataclasses import dataclass

import numpy as np

from .backend import backend_name, get_array_module, to_backend, to_numpy

TOLERANCE = 1e-7
EPS = 1e-6
ZERO_FLOOR_FACTOR = 10.0
GRADCHECK_STREAM = 0x67726164  # "grad": the checker's own stream of random numbers


@dataclass(frozen=True)
class GradResult:
    """The comparison for one input or parameter called ``what``.

    measure "relative": passed when max_rel_error < tol. measure "absolute": analytic and
    numeric gradients both lie below ``zero_floor`` (zero by the mathematics), passed.
    ``overwrote``: backward replaced the pre-filled .grad instead of adding to it, failed.
    """

    what: str
    max_rel_error: float
    max_abs_error: float
    tol: float = TOLERANCE
    zero_floor: float = None
    is_zero: bool = False
    overwrote: bool = False

    @property
    def measure(self):
        return "absolute" if self.is_zero else "relative"

    @property
    def passed(self):
        return not self.overwrote and (self.is_zero or bool(self.max_rel_error < self.tol))

    @property
    def verdict(self):
        """The pass column: "yes", "zero" (both below the floor), "NO", or "NO (= not +=)"."""
        if self.overwrote:
            return "NO (= not +=)"
        if self.is_zero:
            return "zero"
        return "yes" if self.passed else "NO"


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
    if not get_array_module(x).shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous array it can perturb in place")
    for i in range(flat.size):
        original = flat[i].copy()
        flat[i] = original + eps
        plus = to_numpy(f()).astype(np.float64)  # on a device, the output is copied to the host
        flat[i] = original - eps
        minus = to_numpy(f()).astype(np.float64)
        flat[i] = original
        grad.reshape(-1)[i] = np.sum((plus - minus) * upstream) / (2 * eps)
    return grad


def checker_rng(seed=0):
    """The checker's generator for ``seed``: a stream no default_rng(user seed) reproduces."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, received {seed!r}")
    return np.random.default_rng([GRADCHECK_STREAM, int(seed)])


def _require_float64(x, what):
    if x.dtype != np.float64:
        raise TypeError(
            f"{what}: gradient checks expected float64, received {x.dtype} "
            "(build the layer with dtype=np.float64 and pass float64 inputs)"
        )


def _as_tuple(grads):
    if grads is None:  # no floating-point inputs, e.g. an Embedding fed integer ids
        return ()
    return grads if isinstance(grads, tuple) else (grads,)


def check_function(forward, backward, *inputs, params=None, names=None, seed=0, eps=EPS, tol=TOLERANCE,
                   zero_floor=None):
    """Compare ``backward`` with central differences of ``forward``.

    forward(*inputs) -> y                     any shape (a scalar loss too)
    backward(G)      -> dL/dx for every floating-point input, in order (a tuple if several)
    params           {name: Parameter} whose .grad backward adds into (optional)
    names            names of the floating-point inputs, in order (default x0, x1, ... by position)
    seed             selects G and the pre-filled .grad from the checker's own stream
    zero_floor       the absolute floor of a "zero" gradient (default: 10 u sum|y G| / eps)

    Integer inputs (token ids, targets) are passed through and not differentiated.
    Returns a list of GradResult, inputs first, then params.
    """
    params = params or {}
    float_idx = [i for i, x in enumerate(inputs) if hasattr(x, "dtype") and x.dtype.kind == "f"]
    if names is None:
        names = [f"x{i}" for i in float_idx]
    elif isinstance(names, str) or len(names) != len(float_idx):
        raise ValueError(f"names: expected {len(float_idx)} name(s), one per floating-point input, "
                         f"received {names!r}")
    for i, name in zip(float_idx, names):
        _require_float64(inputs[i], f"input {name}")
    for name, p in params.items():
        _require_float64(p.data, name)

    rng = checker_rng(seed)
    out = forward(*inputs)
    G = rng.standard_normal(getattr(out, "shape", ()))  # drawn on the host, whatever the backend
    if zero_floor is None:
        zero_floor = ZERO_FLOOR_FACTOR * np.finfo(np.float64).eps * float(np.sum(np.abs(to_numpy(out) * G))) / eps
    prefill = {name: rng.standard_normal(p.grad.shape) for name, p in params.items()}
    for name, p in params.items():
        p.grad[...] = to_backend(prefill[name], backend_name(p.grad))
    grads = _as_tuple(backward(to_backend(G, backend_name(out))))
    if len(grads) != len(float_idx):
        raise ValueError(
            f"backward: expected {len(float_idx)} gradient(s), one per floating-point input, "
            f"received {len(grads)}"
        )

    def output():
        return forward(*inputs)

    results = []
    for i, name, grad in zip(float_idx, names, grads):
        numeric = numerical_gradient(output, inputs[i], G, eps)
        results.append(_result(name, grad, numeric, tol, zero_floor))
    for name, p in params.items():
        numeric = numerical_gradient(output, p.data, G, eps)
        raw = to_numpy(p.grad).copy()
        # leave .grad holding backward's own contribution, as before the check
        p.grad -= to_backend(prefill[name], backend_name(p.grad))
        result = _result(name, raw - prefill[name], numeric, tol, zero_floor)
        if not result.passed and _result(name, raw, numeric, tol, zero_floor).passed:
            result = GradResult(name, result.max_rel_error, result.max_abs_error, tol, zero_floor, False, True)
        results.append(result)
    return results


def check_module(module, *inputs, names=None, seed=0, eps=EPS, tol=TOLERANCE, zero_floor=None, **forward_kwargs):
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

    return check_function(
        forward,
        module.backward,
        *inputs,
        params=dict(module.named_parameters()),
        names=names,
        seed=seed,
        eps=eps,
        tol=tol,
        zero_floor=zero_floor,
    )


def _result(what, analytic, numeric, tol, zero_floor):
    a = to_numpy(analytic)
    abs_err = float(np.abs(a - numeric).max(initial=0.0))
    is_zero = max(np.abs(a).max(initial=0.0), np.abs(numeric).max(initial=0.0)) <= zero_floor
    return GradResult(what, relative_error(a, numeric), abs_err, tol, zero_floor, bool(is_zero))


def format_results(results):
    """A plain-text table of GradResults (what, max relative error, max absolute error, pass),
    then the measure it used and what each failure means."""
    width = max([len("what")] + [len(r.what) for r in results])
    lines = [f"{'what':<{width}}  {'max rel err':>11}  {'max abs err':>11}  pass"]
    for r in results:
        rel = f"{'-':>11}" if r.is_zero else f"{r.max_rel_error:11.2e}"
        lines.append(f"{r.what:<{width}}  {rel}  {r.max_abs_error:11.2e}  {r.verdict}")
    tols = sorted({f"{r.tol:g}" for r in results})
    lines.append(f"measure: relative error max|a - n| / max(max|a|, max|n|), passes below {', '.join(tols)}"
                 " (transformer_np/gradcheck.py)")
    for r in results:
        if r.is_zero:
            lines.append(f"{r.what}: zero, measured absolutely: analytic and numeric both below the floor "
                         f"{r.zero_floor:.1e}; zero by the mathematics, nothing to compare")
        if r.overwrote:
            lines.append(f"{r.what}: backward replaced .grad (=) instead of adding to it (+=): the pre-filled "
                         "value was lost; gradients accumulate (transformer_np/module.py)")
    return "\n".join(lines)
