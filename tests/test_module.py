"""Parameter and Module: names, accumulation, modes, state_dict, device moves."""

import numpy as np
import pytest

from transformer_np.layers import Linear
from transformer_np.module import Module, Parameter


class TwoLayers(Module):
    """Linear -> Linear with the second one's weight optionally shared with the first's."""

    def __init__(self, tie=False):
        rng = np.random.default_rng(0)
        self.first = Linear(4, 4, rng=rng, dtype=np.float64)
        self.blocks = [Linear(4, 4, bias=False, rng=rng, dtype=np.float64)]
        if tie:
            self.blocks[0].weight = self.first.weight

    def forward(self, x):
        return self.blocks[0].forward(self.first.forward(x))

    def backward(self, dy):
        return self.first.backward(self.blocks[0].backward(dy))


def test_named_parameters_are_stable_dotted_names():
    assert [n for n, _ in TwoLayers().named_parameters()] == ["first.weight", "first.bias", "blocks.0.weight"]


def test_a_shared_parameter_is_listed_once_and_gets_both_gradients():
    tied, untied = TwoLayers(tie=True), TwoLayers(tie=False)
    assert [n for n, _ in tied.named_parameters()] == ["first.weight", "first.bias"]
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    dy = np.ones((2, 3, 4))
    untied.blocks[0].weight.data[...] = untied.first.weight.data
    for model in (tied, untied):
        model.forward(x)
        model.backward(dy)
    np.testing.assert_allclose(
        tied.first.weight.grad, untied.first.weight.grad + untied.blocks[0].weight.grad, rtol=1e-12
    )


def test_gradients_accumulate_until_zero_grad():
    layer = Linear(3, 2, dtype=np.float64)
    x = np.ones((1, 3))
    for _ in range(2):
        layer.forward(x)
        layer.backward(np.ones((1, 2)))
    np.testing.assert_allclose(layer.bias.grad, [2.0, 2.0])
    layer.zero_grad()
    assert not layer.bias.grad.any()


def test_train_and_eval_reach_every_module():
    model = TwoLayers()
    assert all(not m.training for m in model.eval().modules())
    assert all(m.training for m in model.train().modules())


def test_state_dict_round_trip_and_mismatch_report():
    a, b = TwoLayers(), TwoLayers()
    for p in b.parameters():
        p.data += 1.0
    a.load_state_dict(b.state_dict())
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    state = b.state_dict()
    state["first.weight"] = np.zeros((5, 4))
    del state["first.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError) as err:
        a.load_state_dict(state)
    message = str(err.value)
    assert "missing: first.bias" in message and "unexpected: extra" in message
    assert "shape of first.weight: expected (4, 4), received (5, 4)" in message


def test_state_dict_is_a_copy():
    layer = Linear(2, 2)
    state = layer.state_dict()
    state["weight"][...] = 7.0
    assert not (layer.weight.data == 7.0).any()


def test_parameter_grad_matches_data():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32 and not p.grad.any()


def test_to_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'torch': expected one of 'numpy', 'cupy'"):
        Linear(2, 2).to("torch")


def test_to_numpy_keeps_parameters_in_place():
    layer = Linear(2, 3)
    before = layer.weight.data.copy()
    assert layer.to("numpy") is layer
    np.testing.assert_array_equal(layer.weight.data, before)
