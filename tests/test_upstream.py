"""Every backward checks its upstream gradient against its forward's output (issue 10).

For every gradient case of the catalogue (layers, attention, the stacks and whole models of
every family, and the loss): after a forward, a gradient of
the wrong shape (axes swapped, a batch of 1 for a larger batch) or of the wrong dtype
(float32 for a float64 output) is refused with an error naming the layer, what was expected
and what was received; the refused call leaves the forward's cache, so the right gradient is
still accepted afterwards.
"""

import re

import numpy as np
import pytest

from transformer_np.checks import all_cases, blocks, loss

LOSS_CASES = loss.CASES
CASES = [c for c in all_cases() if c not in LOSS_CASES]


def _forward(case):
    module, inputs, kwargs = case.build(np.random.default_rng(0), np.float64)
    out = module.forward(*inputs, **kwargs)
    return module, out


def _name(module):
    return type(module).__name__


def _wrong_shapes(shape):
    """Shapes that must be refused: the first two axes swapped and a batch of 1 (when they differ)."""
    wrong = []
    if len(shape) >= 2 and shape[0] != shape[1]:
        wrong.append((shape[1], shape[0], *shape[2:]))
    if shape and shape[0] != 1:
        wrong.append((1, *shape[1:]))
    return wrong


def test_the_cases_give_every_wrong_shape_something_to_refuse():
    for case in CASES:
        _, out = _forward(case)
        assert len(_wrong_shapes(out.shape)) == 2, (case.layer, out.shape)


@pytest.mark.parametrize("case", CASES, ids=[c.layer for c in CASES])
def test_a_gradient_of_the_wrong_shape_is_refused_naming_layer_expected_and_received(case):
    module, out = _forward(case)
    for shape in _wrong_shapes(out.shape):
        with pytest.raises(ValueError) as err:
            module.backward(np.ones(shape))
        message = str(err.value)
        assert message.startswith(f"{_name(module)}.backward: dout: expected"), message
        assert f"expected the shape of forward's output {tuple(out.shape)}, received {shape}" in message
    grads = module.backward(np.ones(out.shape))  # the cache survived the refusals
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert g is None or np.isfinite(g).all()


@pytest.mark.parametrize("case", CASES, ids=[c.layer for c in CASES])
def test_a_gradient_of_the_wrong_dtype_is_refused_naming_layer_expected_and_received(case):
    module, out = _forward(case)
    with pytest.raises(TypeError, match=re.escape(
        f"{_name(module)}.backward: dout: expected the dtype of forward's output float64, received float32"
    )):
        module.backward(np.ones(out.shape, dtype=np.float32))
    module.backward(np.ones(out.shape))


@pytest.mark.parametrize("case", LOSS_CASES, ids=[c.layer for c in LOSS_CASES])
def test_the_loss_backward_takes_a_scalar_of_its_dtype(case):
    module, out = _forward(case)
    assert np.shape(out) == ()
    for wrong in (np.ones(1), np.ones((2, 3)), np.ones((1, 1))):
        with pytest.raises(ValueError, match=re.escape(
            f"CrossEntropyLoss.backward: dout: expected the shape of forward's output (), received {wrong.shape}"
        )):
            module.backward(wrong)
    with pytest.raises(TypeError, match="CrossEntropyLoss.backward: dout: expected the dtype of forward's "
                                        "output float64, received float32"):
        module.backward(np.ones((), dtype=np.float32))
    assert np.isfinite(module.backward(np.ones(()))).all()


def test_a_layer_inside_a_container_is_named_by_the_container():
    # The feed-forward network checks dy itself, before any child sees it.
    case = next(c for c in blocks.CASES if c.layer == "PositionwiseFeedForward (gelu)")
    module, out = _forward(case)
    with pytest.raises(ValueError, match=r"^PositionwiseFeedForward\.backward: dout"):
        module.backward(np.ones((1, *out.shape[1:])))
