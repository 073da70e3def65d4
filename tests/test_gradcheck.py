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
    with pytest.raises(TypeError, match="gradient checks need float64, received float32"):
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
