"""The checker itself: it passes right gradients, catches wrong ones, and states its measure."""

import numpy as np
import pytest

from transformer_np.__main__ import main
from transformer_np.checks import GradCase
from transformer_np.gradcheck import check_function, check_module, numerical_gradient, relative_error
from transformer_np.layers import Linear


class ForgetsToSumOverTheBatch(Linear):
    """A classic mistake: dW from the first sequence only, instead of all B*T rows (lin.3)."""

    def backward(self, dy):
        (x,) = self.saved()
        self.weight.grad += x[0].T @ dy[0]
        self.bias.grad += dy.reshape(-1, self.d_out).sum(axis=0)
        return dy @ self.weight.data.T


def test_relative_error_is_relative_to_the_largest_entry():
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert relative_error(np.array([1.0, -4.0]), np.array([1.0, -3.0])) == pytest.approx(0.25)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.zeros(2), np.array([0.0, 1e-3])) == 1.0


def test_numerical_gradient_of_a_known_function_and_restores_the_input():
    x = np.array([[0.3, -1.2, 2.0]])
    before = x.copy()
    grad = numerical_gradient(lambda: np.sin(x), x, upstream=np.array([[1.0, 2.0, -1.0]]))
    np.testing.assert_allclose(grad, np.cos(before) * [1.0, 2.0, -1.0], rtol=1e-9)
    assert np.array_equal(x, before)


def test_a_correct_layer_passes_with_margin():
    rng = np.random.default_rng(0)
    layer = Linear(7, 4, rng=rng, dtype=np.float64)
    results = check_module(layer, rng.standard_normal((3, 5, 7)), names=("x",))
    assert [r.what for r in results] == ["x", "weight", "bias"]
    assert all(r.passed and r.max_rel_error < 1e-8 for r in results)


def test_negative_control_a_wrong_backward_fails():
    rng = np.random.default_rng(0)
    layer = ForgetsToSumOverTheBatch(7, 4, rng=rng, dtype=np.float64)
    results = {r.what: r for r in check_module(layer, rng.standard_normal((3, 5, 7)), names=("x",))}
    assert not results["weight"].passed and results["weight"].max_rel_error > 0.1
    assert results["x"].passed and results["bias"].passed  # the checker pinpoints which gradient is wrong


def test_check_function_on_a_students_own_functions():
    cache = {}

    def tanh(x):
        cache["y"] = np.tanh(x)
        return cache["y"]

    def tanh_backward_right(dy):
        return dy * (1 - cache["y"] ** 2)

    def tanh_backward_wrong(dy):
        return dy * (1 - cache["y"])

    x = np.random.default_rng(1).standard_normal((4, 6))
    (right,) = check_function(tanh, tanh_backward_right, x)
    (wrong,) = check_function(tanh, tanh_backward_wrong, x)
    assert right.passed and right.max_rel_error < 1e-8
    assert not wrong.passed and wrong.max_rel_error > 0.1


def test_float32_is_refused_with_a_reason():
    layer = Linear(3, 2, dtype=np.float32)
    with pytest.raises(TypeError, match="gradient checks expected float64, received float32"):
        check_module(layer, np.ones((2, 3), dtype=np.float32))


def test_the_command_line_reports_a_failure_with_a_nonzero_exit(capsys):
    def build(rng, dtype):
        return ForgetsToSumOverTheBatch(7, 4, rng=rng, dtype=dtype), (rng.standard_normal((3, 5, 7)),), {}

    wrong = GradCase("wrong Linear", build, {"x": ("lin.2",), "weight": ("lin.3",), "bias": ("lin.4",)}, ("x",))
    from transformer_np.__main__ import build_parser, gradcheck

    assert gradcheck(build_parser().parse_args(["gradcheck"]), cases=[wrong]) == 1
    out = capsys.readouterr().out
    assert "lin.3  wrong Linear  weight" in out and "NO" in out
    assert "2 of 3 checks pass" in out


def test_the_command_line_passes_on_the_library(capsys):
    assert main(["gradcheck", "--only", "lin"]) == 0
    out = capsys.readouterr().out
    assert out.count("lin.") >= 3 and " NO" not in out


def test_dropout_is_checked_with_one_fixed_mask():
    from transformer_np.layers import Dropout

    x = np.random.default_rng(2).standard_normal((3, 5, 7))
    (fixed,) = check_module(Dropout(0.5).train(), x)
    assert fixed.passed
    # Without the re-seeding, every finite difference would draw a new mask: nonsense.
    layer = Dropout(0.5).train()
    (fresh,) = check_function(layer.forward, layer.backward, x)
    assert not fresh.passed


# -- no false verdicts (issue 10) ------------------------------------------------------------------
def test_layernorm_passes_when_its_input_comes_from_the_checkers_own_seed():
    """With G drawn from default_rng(0), G would equal x drawn from default_rng(0): the one
    direction LayerNorm's backward removes, a true gradient of exactly zero."""
    from transformer_np.gradcheck import checker_rng
    from transformer_np.layers import LayerNorm

    x = np.random.default_rng(0).standard_normal((3, 5, 7))
    assert not np.array_equal(checker_rng(0).standard_normal(x.shape), x)
    results = {r.what: r for r in check_module(LayerNorm(7, dtype=np.float64), x, names=("x",))}
    assert all(r.passed and r.measure == "relative" for r in results.values())
    assert results["x"].max_rel_error < 1e-8


def test_the_upstream_gradient_is_the_checkers_own_stream():
    seen = []

    def forward(x):
        return 2.0 * x

    def backward(G):
        seen.append(G.copy())
        return 2.0 * G

    x = np.random.default_rng(0).standard_normal((4, 3))
    check_function(forward, backward, x)
    check_function(forward, backward, x, seed=0)
    check_function(forward, backward, x, seed=1)
    assert np.array_equal(seen[0], seen[1]) and not np.allclose(seen[0], seen[2])
    for user_seed in range(5):
        assert not np.allclose(seen[0], np.random.default_rng(user_seed).standard_normal((4, 3)))


def test_a_zero_gradient_is_reported_as_zero_with_its_floor():
    from transformer_np.gradcheck import format_results
    from transformer_np.layers import MultiHeadAttention

    rng = np.random.default_rng(0)
    layer = MultiHeadAttention(28, 4, rng=rng, dtype=np.float64)
    results = {r.what: r for r in check_module(layer, rng.standard_normal((3, 5, 28)), names=("x",))}
    key_bias = results.pop("w_k.bias")
    assert key_bias.is_zero and key_bias.passed and key_bias.measure == "absolute" and key_bias.verdict == "zero"
    assert key_bias.max_rel_error > 1e-3  # the relative error of rounding noise, which no longer decides
    assert 1e-9 < key_bias.zero_floor < 1e-5 and key_bias.max_abs_error < key_bias.zero_floor
    assert all(r.passed and not r.is_zero for r in results.values())
    text = format_results([key_bias, results["x"]])
    assert "w_k.bias" in text and "zero" in text and f"{key_bias.zero_floor:.1e}" in text
    assert "measure: relative error" in text


def test_a_nonzero_gradient_is_never_called_zero():
    """A backward that returns zeros where the true gradient is not zero fails (the numeric side is large)."""
    x = np.random.default_rng(3).standard_normal((4, 3))
    (r,) = check_function(lambda x: x**2, lambda G: np.zeros_like(G), x)
    assert not r.passed and not r.is_zero and r.verdict == "NO"


def test_an_explicit_zero_floor_is_used_and_reported():
    x = np.random.default_rng(3).standard_normal((4, 3))
    (r,) = check_function(lambda x: 1e-9 * x, lambda G: np.zeros_like(G), x, zero_floor=1e-6)
    assert r.is_zero and r.zero_floor == 1e-6 and r.passed
    (r,) = check_function(lambda x: 1e-9 * x, lambda G: np.zeros_like(G), x, zero_floor=1e-12)
    assert not r.is_zero and not r.passed


class AssignsInsteadOfAdding(Linear):
    """A student's mistake: ``=`` instead of ``+=`` for the weight (the Module contract says add)."""

    def backward(self, dy):
        (x,) = self.saved(dy)
        self.weight.grad[...] = x.reshape(-1, self.d_in).T @ dy.reshape(-1, self.d_out)
        self.bias.grad += dy.reshape(-1, self.d_out).sum(axis=0)
        return dy @ self.weight.data.T


def test_assigning_instead_of_adding_fails_with_a_message_saying_so():
    from transformer_np.gradcheck import format_results

    rng = np.random.default_rng(0)
    layer = AssignsInsteadOfAdding(7, 4, rng=rng, dtype=np.float64)
    results = {r.what: r for r in check_module(layer, rng.standard_normal((3, 5, 7)), names=("x",))}
    assert results["weight"].overwrote and not results["weight"].passed
    assert results["weight"].verdict == "NO (= not +=)"
    assert results["x"].passed and results["bias"].passed and not results["bias"].overwrote
    text = format_results(list(results.values()))
    assert "weight: backward replaced .grad (=) instead of adding to it (+=)" in text


def test_after_a_check_grad_holds_backwards_own_contribution():
    rng = np.random.default_rng(0)
    layer = Linear(7, 4, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 5, 7))
    check_module(layer, x)
    from transformer_np.gradcheck import checker_rng

    G = checker_rng(0).standard_normal((3, 5, 4))
    np.testing.assert_allclose(layer.weight.grad, x.reshape(-1, 7).T @ G.reshape(-1, 4), rtol=1e-12, atol=1e-12)


def test_check_function_names_its_inputs():
    def forward(a, ids, b):
        return a * b[ids]

    def backward(G):
        db = np.zeros_like(cache["b"])
        np.add.at(db, cache["ids"], G * cache["a"])
        return G * cache["b"][cache["ids"]], db

    rng = np.random.default_rng(4)
    cache = {"a": rng.standard_normal(5), "ids": rng.integers(0, 3, size=5), "b": rng.standard_normal(3)}
    results = check_function(forward, backward, cache["a"], cache["ids"], cache["b"], names=("a", "b"))
    assert [r.what for r in results] == ["a", "b"] and all(r.passed for r in results)
    with pytest.raises(ValueError, match=r"names: expected 2 name\(s\), one per floating-point input, received \('a',\)"):
        check_function(forward, backward, cache["a"], cache["ids"], cache["b"], names=("a",))


def test_a_seed_that_is_not_a_non_negative_integer_is_refused():
    with pytest.raises(ValueError, match="seed: expected a non-negative integer, received -1"):
        check_function(lambda x: x, lambda G: G, np.ones(3), seed=-1)
