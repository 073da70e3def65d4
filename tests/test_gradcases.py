"""Every gradient case of the catalogue, one test per (equation label, layer, gradient).

Also, for every case: float32 stays float32, and backward without forward is refused.
"""

from functools import lru_cache

import numpy as np
import pytest

from transformer_np.checks import all_cases, run_case
from transformer_np.gradcheck import TOLERANCE

CASES = all_cases()
ROWS = [(label, i, what) for i, case in enumerate(CASES) for what, labels in case.labels.items() for label in labels]


@lru_cache(maxsize=None)
def results(i):
    return {r.what: r for r in run_case(CASES[i])}


@pytest.mark.parametrize(
    "label, i, what", ROWS, ids=[f"{label}-{CASES[i].layer}-{what}" for label, i, what in ROWS]
)
def test_gradient(label, i, what):
    result = results(i)[what]
    assert result.passed, f"({label}) {CASES[i].layer} d{what}: {result.max_rel_error:.2e} ({result.verdict})"
    key_bias = (what == "w_k.bias" or what.endswith(".w_k.bias")) and "RoPE" not in CASES[i].layer  # rotated: not zero (notes/rope.md)
    assert result.is_zero == key_bias, f"{CASES[i].layer} d{what}: only the key bias is zero"


def test_only_whole_models_have_the_looser_bar():
    looser = {case.build.__module__.rsplit(".", 1)[-1] for case in CASES if case.tol != TOLERANCE}
    assert looser <= {"models", "gpt", "bert"}
    assert all(case.tol <= 1e-6 for case in CASES)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.layer for c in CASES])
def test_every_gradient_is_labelled(i):
    assert set(results(i)) == set(CASES[i].labels)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.layer for c in CASES])
def test_float32_stays_float32(i):
    module, inputs, kwargs = CASES[i].build(np.random.default_rng(0), np.float32)
    out = module.forward(*inputs, **kwargs)
    grads = module.backward(np.ones(np.shape(out), dtype=np.float32))
    grads = grads if isinstance(grads, tuple) else (grads,)
    arrays = {"output": out}
    arrays.update({f"grad {k}": g for k, g in enumerate(grads) if g is not None})
    arrays.update({f"{name}.grad": p.grad for name, p in module.named_parameters()})
    arrays.update({name: p.data for name, p in module.named_parameters()})
    wrong = {name: np.asarray(a).dtype for name, a in arrays.items() if np.asarray(a).dtype != np.float32}
    assert not wrong, f"{CASES[i].layer}: not float32: {wrong}"


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.layer for c in CASES])
def test_backward_needs_a_forward_each_time(i):
    module, inputs, kwargs = CASES[i].build(np.random.default_rng(0), np.float64)
    with pytest.raises(RuntimeError, match="called before forward"):
        module.backward(np.ones(1))
    out = module.forward(*inputs, **kwargs)
    module.backward(np.ones(np.shape(out)))
    with pytest.raises(RuntimeError, match="called before forward"):
        module.backward(np.ones(np.shape(out)))
