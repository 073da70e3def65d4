"""CrossEntropyLoss: value against a direct formula, smoothing, ignore_index, stability, errors."""

import math

import numpy as np
import pytest

from transformer_np.loss import CrossEntropyLoss


def direct_loss(logits, targets, eps=0.0, ignore_index=None):
    """The loss written element by element, as a reader would compute it by hand."""
    B, T, V = logits.shape
    total, count = 0.0, 0
    for b in range(B):
        for t in range(T):
            y = targets[b, t]
            if y == ignore_index:
                continue
            z = [float(v) for v in logits[b, t]]
            m = max(z)
            log_sum = m + math.log(sum(math.exp(v - m) for v in z))
            q = [(1 - eps) * (v == y) + eps / V for v in range(V)]
            total += -sum(q[v] * (z[v] - log_sum) for v in range(V))
            count += 1
    return total / count


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    logits = 2 * rng.standard_normal((2, 4, 6))
    targets = rng.integers(1, 6, size=(2, 4))
    targets[1, 2:] = 0  # padding
    return logits, targets


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("ignore_index", [None, 0])
def test_matches_the_direct_formula(batch, eps, ignore_index):
    logits, targets = batch
    loss = CrossEntropyLoss(eps, ignore_index).forward(logits, targets)
    assert float(loss) == pytest.approx(direct_loss(logits, targets, eps, ignore_index), rel=1e-12)


def test_ignored_positions_change_nothing(batch):
    logits, targets = batch
    ce = CrossEntropyLoss(0.1, ignore_index=0)
    before = float(ce.forward(logits, targets))
    grad = ce.backward()
    changed = logits.copy()
    changed[1, 2:] += 50.0  # only the padded positions
    assert float(ce.forward(changed, targets)) == before
    assert np.all(grad[1, 2:] == 0.0)


def test_gradient_rows_sum_to_zero_and_equal_p_minus_q(batch):
    logits, targets = batch
    eps, V = 0.1, logits.shape[-1]
    ce = CrossEntropyLoss(eps)
    ce.forward(logits, targets)
    grad = ce.backward(2.0)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    q = np.full_like(p, eps / V)
    np.put_along_axis(q, targets[..., None], 1 - eps + eps / V, axis=-1)
    np.testing.assert_allclose(grad, 2.0 * (p - q) / targets.size, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad.sum(-1), 0.0, atol=1e-15)


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 5, 7))
    targets = rng.integers(0, 7, size=(3, 5))
    targets[0, 3:] = 2
    ce = CrossEntropyLoss(label_smoothing=0.2, ignore_index=2)
    loss = ce.forward(logits, targets)
    grad = ce.backward()
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(
        t_logits.reshape(-1, 7), torch.tensor(targets).reshape(-1), label_smoothing=0.2, ignore_index=2
    )
    t_loss.backward()
    assert float(loss) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t_logits.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_finite_with_logits_of_magnitude_1e4():
    rng = np.random.default_rng(3)
    logits = (1e4 * rng.standard_normal((2, 3, 5))).astype(np.float32)
    targets = rng.integers(0, 5, size=(2, 3))
    ce = CrossEntropyLoss(0.1)
    loss = ce.forward(logits, targets)
    grad = ce.backward()
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert float(loss) > 100.0  # wrong predictions by ~1e4 cost about that much, not inf or 0


def test_all_positions_ignored_gives_zero_not_nan():
    ce = CrossEntropyLoss(ignore_index=0)
    loss = ce.forward(np.ones((1, 2, 3)), np.zeros((1, 2), dtype=np.int64))
    assert float(loss) == 0.0
    assert np.all(ce.backward() == 0.0)


def test_float32_stays_float32(batch):
    logits, targets = batch
    ce = CrossEntropyLoss(0.1, 0)
    loss = ce.forward(logits.astype(np.float32), targets)
    grad = ce.backward()
    assert loss.dtype == np.float32 and grad.dtype == np.float32


def test_bad_inputs_name_expected_and_received(batch):
    logits, targets = batch
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"expected values in \[0, 6\), received values in \[1, 9\]"):
        ce.forward(logits, np.where(targets == 0, 9, targets))
    with pytest.raises(ValueError, match=r"targets: expected shape \(2, 4\), received \(4, 2\)"):
        ce.forward(logits, targets.T)
    with pytest.raises(ValueError, match="expected 2 dimensions"):
        ce.forward(logits, targets[0])
    with pytest.raises(TypeError, match="expected an integer array, received float64"):
        ce.forward(logits, targets.astype(float))
    with pytest.raises(ValueError, match=r"label_smoothing: expected a value in \[0, 1\], received 1.5"):
        CrossEntropyLoss(1.5)
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        CrossEntropyLoss().backward()


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_non_finite_logits_at_ignored_positions_change_nothing(batch, poison, eps):
    logits, targets = batch  # targets[1, 2:] are padding (0)
    ce = CrossEntropyLoss(eps, ignore_index=0)
    clean = float(ce.forward(logits, targets))
    clean_grad = ce.backward()
    poisoned = logits.copy()
    poisoned[1, 2:] = poison  # every logit of the padded positions
    poisoned[1, 3, 2] = 1e30  # and a huge one
    loss = ce.forward(poisoned, targets)
    grad = ce.backward()
    assert float(loss) == clean == pytest.approx(direct_loss(logits, targets, eps, 0), rel=1e-12)
    assert np.isfinite(grad).all() and not grad[1, 2:].any()
    np.testing.assert_array_equal(grad, clean_grad)


def test_ignored_targets_may_be_any_integer_and_are_never_range_checked(batch):
    logits, targets = batch
    ce = CrossEntropyLoss(ignore_index=-100)
    targets = np.where(targets == 0, -100, targets)
    assert float(ce.forward(logits, targets)) == pytest.approx(direct_loss(logits, targets, 0.0, -100), rel=1e-12)


def test_a_row_of_minus_inf_logits_at_a_kept_position_costs_inf_not_nan():
    logits = np.zeros((1, 2, 3))
    logits[0, 1] = -np.inf
    loss = CrossEntropyLoss().forward(logits, np.array([[0, 1]]))
    assert loss == np.inf


@pytest.mark.parametrize(
    "dout, error, message",
    [
        (np.ones(1), ValueError,
         r"CrossEntropyLoss\.backward: dout: expected the shape of forward's output \(\), received \(1,\)"),
        (np.ones((2, 4)), ValueError, r"expected the shape of forward's output \(\), received \(2, 4\)"),
        ("1.0", ValueError, r"expected the shape of forward's output \(\), received str"),
        (True, ValueError, r"expected the shape of forward's output \(\), received bool"),
        (np.float32(1.0), TypeError,
         r"CrossEntropyLoss\.backward: dout: expected the dtype .* float64, received float32"),
        (np.ones((), dtype=np.float32), TypeError, "expected the dtype of forward's output float64, received float32"),
    ],
)
def test_backward_takes_a_scalar_of_the_loss_dtype(batch, dout, error, message):
    logits, targets = batch
    ce = CrossEntropyLoss()
    ce.forward(logits, targets)
    with pytest.raises(error, match=message):
        ce.backward(dout)
    expected = 2.5 * ce.backward()  # a refused dout leaves the forward's cache for the next call
    ce.forward(logits, targets)
    for ok in (2.5, np.float64(2.5), np.array(2.5)):
        np.testing.assert_array_equal(ce.backward(ok), expected)
        ce.forward(logits, targets)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"label_smoothing": -0.1}, ValueError, r"label_smoothing: expected a value in \[0, 1\], received -0.1"),
        ({"label_smoothing": float("nan")}, ValueError, r"label_smoothing: expected a value in \[0, 1\], received nan"),
        ({"label_smoothing": "0.1"}, ValueError, r"label_smoothing: expected a value in \[0, 1\], received '0.1'"),
        ({"ignore_index": 0.5}, TypeError, "ignore_index: expected None or an integer token id, received 0.5"),
        ({"ignore_index": True}, TypeError, "ignore_index: expected None or an integer token id, received True"),
    ],
)
def test_constructor_arguments_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        CrossEntropyLoss(**kwargs)
