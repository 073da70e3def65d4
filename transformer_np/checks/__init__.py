"""The catalogue of gradient checks: every backward equation in notes/ and the check that proves it.

Each GradCase builds one layer in float64 on awkward shapes (B, T, D, H all different, D not a
power of two, masks present where the layer takes them) and says, for every input and
parameter it differentiates (its "what"), which equation labels that gradient verifies.
The tests and ``python -m transformer_np gradcheck`` both run this catalogue.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backend import to_backend
from ..gradcheck import TOLERANCE, check_module

# Shapes shared by the cases: all different, none a power of two.
B, T, D = 3, 5, 7

# The bar for a whole model (issue 3): its gradients pass through dozens of layers, and the
# smallest ones (a bias deep in the decoder) sit closer to the finite-difference rounding floor.
WHOLE_MODEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class GradCase:
    """One layer configuration to check.

    build(rng, dtype) -> (module, inputs, forward_kwargs): the layer and its inputs in ``dtype``
    (float64 for the gradient check; the dtype tests rebuild every case in float32).
    labels: {what: (label, ...)} for each input name and parameter name the check reports.
    names: names of the floating-point inputs, in order (default x0, x1, ...).
    tol: the pass bar for the max relative error (1e-7 for a layer, 1e-6 for a whole model).
    """

    layer: str
    build: Callable
    labels: dict
    names: tuple = None
    tol: float = TOLERANCE


@dataclass(frozen=True)
class GradRow:
    """One printed row: the equation ``label`` verified through the gradient of ``what``."""

    label: str
    layer: str
    what: str
    max_rel_error: float
    passed: bool
    verdict: str = None  # GradResult.verdict: "yes", "NO", "zero" (below the absolute floor), "NO (= not +=)"


def run_case(case, seed=0, tol=None, backend="numpy"):
    """Run ``case`` against ``tol`` (default: the case's own bar); one GradResult per input and parameter.

    ``backend``: where the layer and its inputs live ("cupy": the float64 checks on a GPU). The
    case is built on the CPU as always, then moved with ``module.to`` and ``to_backend``.
    """
    tol = case.tol if tol is None else tol
    module, inputs, kwargs = case.build(np.random.default_rng(seed), np.float64)
    if backend != "numpy":
        module.to(backend)
        inputs = tuple(to_backend(x, backend) if hasattr(x, "dtype") else x for x in inputs)
        kwargs = {k: to_backend(v, backend) if hasattr(v, "dtype") else v for k, v in kwargs.items()}
    return check_module(module, *inputs, names=case.names, seed=seed, tol=tol, **kwargs)


def case_rows(case, results):
    """One GradRow per (label, what); a gradient the case does not label is an error."""
    rows = []
    for r in results:
        if r.what not in case.labels:
            raise KeyError(f"{case.layer}: gradient {r.what!r} has no equation label in its GradCase")
        rows += [GradRow(label, case.layer, r.what, r.max_rel_error, r.passed, r.verdict) for label in case.labels[r.what]]
    return rows


def all_cases():
    """Every GradCase, in the order of the notes."""
    from . import attention, basic, bert, blocks, core, efficient, gpt, loss, models, positions, rnn

    return [*core.CASES, *basic.CASES, *attention.CASES, *positions.CASES, *efficient.CASES, *blocks.CASES, *loss.CASES,
            *models.CASES, *gpt.CASES, *bert.CASES, *rnn.CASES]


def run_rows(cases, tol=None, backend="numpy"):
    """Run ``cases`` (on ``backend``); one GradRow per (case, gradient, label)."""
    return [row for case in cases for row in case_rows(case, run_case(case, tol=tol, backend=backend))]


def format_rows(rows):
    """The table that ``python -m transformer_np gradcheck`` prints."""
    w_label = max([5] + [len(r.label) for r in rows])
    w_layer = max([5] + [len(r.layer) for r in rows])
    w_what = max([4] + [len(r.what) for r in rows])
    lines = [f"{'label':<{w_label}}  {'layer':<{w_layer}}  {'what':<{w_what}}  {'max rel err':>11}  pass"]
    for r in rows:
        verdict = r.verdict or ("yes" if r.passed else "NO")
        rel = f"{'-':>11}" if verdict == "zero" else f"{r.max_rel_error:11.2e}"
        lines.append(f"{r.label:<{w_label}}  {r.layer:<{w_layer}}  {r.what:<{w_what}}  {rel}  {verdict}")
    return "\n".join(lines)
