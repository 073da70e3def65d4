"""Optimisers and clipping: hand examples, closed forms, groups, torch.optim, state round trip, dtypes."""

import math

import numpy as np
import pytest

from transformer_np.layers.linear import Linear
from transformer_np.module import Module, Parameter
from transformer_np.optim import SGD, Adam, AdamW, clip_grad_norm, param_groups

G1 = [0.5, 0.1]
G2 = [-0.3, 0.2]


def params_of(*arrays, dtype=np.float64):
    return [Parameter(np.array(a, dtype=dtype)) for a in arrays]


def feed(params, grads):
    """Write ``grads`` into the parameters' .grad, as a backward pass would."""
    for p, g in zip(params, grads):
        p.grad[...] = g


def adam_by_hand(p0, grads, lr, weight_decay=0.0, decoupled=True, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam / AdamW one coordinate at a time in plain Python floats, straight from the paper."""
    p = [float(x) for x in p0]
    m, v = [0.0] * len(p), [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        for i in range(len(p)):
            gi = g[i] if decoupled else g[i] + weight_decay * p[i]
            if decoupled:
                p[i] -= lr * weight_decay * p[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


# -- AdamW and Adam against closed forms -------------------------------------------------------------


def test_adamw_first_step_is_the_decay_then_lr_times_sign_of_g():
    (p,) = params_of([1.0, -2.0])
    opt = AdamW([p], lr=0.1, weight_decay=0.01)
    feed([p], [G1])
    opt.step()
    # t = 1: m_hat = g and sqrt(v_hat) = |g|, so the Adam step is lr * g / (|g| + eps).
    expected = [
        1.0 * (1 - 0.1 * 0.01) - 0.1 * 0.5 / (0.5 + 1e-8),
        -2.0 * (1 - 0.1 * 0.01) - 0.1 * 0.1 / (0.1 + 1e-8),
    ]
    np.testing.assert_allclose(p.data, expected, rtol=1e-15)
    np.testing.assert_allclose(p.data, [0.899, -2.098], atol=1e-7)
    np.testing.assert_allclose(opt.state_dict()["m.0"], [0.05, 0.01], rtol=1e-15)
    np.testing.assert_allclose(opt.state_dict()["v.0"], [0.00025, 0.00001], rtol=1e-14)


def test_adamw_second_step_uses_the_bias_corrections_of_t_2():
    (p,) = params_of([1.0, -2.0])
    opt = AdamW([p], lr=0.1, weight_decay=0.01)
    for g in (G1, G2):
        feed([p], [g])
        opt.step()
    g1, g2 = np.array(G1), np.array(G2)
    p1 = np.array([0.899, -2.098]) + np.array([0.1 * 1e-8 / (0.5 + 1e-8), 0.1 * 1e-8 / (0.1 + 1e-8)])
    m2 = 0.9 * 0.1 * g1 + 0.1 * g2
    v2 = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    m_hat, v_hat = m2 / (1 - 0.9**2), v2 / (1 - 0.999**2)
    expected = p1 * (1 - 0.001) - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-13)
    np.testing.assert_allclose(p.data, adam_by_hand([1.0, -2.0], [G1, G2], 0.1, 0.01), rtol=1e-13)


@pytest.mark.parametrize("decoupled", [True, False])
def test_five_steps_match_the_paper_one_coordinate_at_a_time(decoupled):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(5)]
    (p,) = params_of(p0)
    kind = AdamW if decoupled else Adam
    opt = kind([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    for g in grads:
        feed([p], [g])
        opt.step()
    expected = adam_by_hand(p0, grads, 0.05, 0.1, decoupled, beta1=0.8, beta2=0.99, eps=1e-6)
    np.testing.assert_allclose(p.data, expected, rtol=1e-13)


def test_adam_and_adamw_differ_by_exactly_the_decoupled_decay_term():
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal((3, 4))
    (pa,) = params_of(p0)
    (pw,) = params_of(p0)
    adam, adamw = Adam([pa], lr=0.01), AdamW([pw], lr=0.01, weight_decay=0.3)
    for _ in range(4):
        g = rng.standard_normal((3, 4))
        a_before, w_before = pa.data.copy(), pw.data.copy()
        feed([pa], [g])
        feed([pw], [g])
        adam.step()
        adamw.step()
        # The Adam step depends only on the gradients, which both saw: the difference is -lr*wd*p.
        np.testing.assert_allclose((pw.data - w_before) - (pa.data - a_before), -0.01 * 0.3 * w_before,
                                   rtol=1e-9, atol=1e-15)
    assert np.abs(pw.data - pa.data).max() > 1e-3  # the decay did accumulate


def test_adam_weight_decay_is_coupled_l2_and_not_the_same_as_adamw():
    (pa,) = params_of([1.0, -2.0])
    (pw,) = params_of([1.0, -2.0])
    adam, adamw = Adam([pa], lr=0.1, weight_decay=0.5), AdamW([pw], lr=0.1, weight_decay=0.5)
    feed([pa], [G1])
    feed([pw], [G1])
    adam.step()
    adamw.step()
    # L2: the step sees g + wd*p = [1.0, -0.9], whose first Adam step is lr*sign: [0.9, -1.9].
    l2 = [1.0 - 0.1 * 1.0 / (1.0 + 1e-8), -2.0 + 0.1 * 0.9 / (0.9 + 1e-8)]
    np.testing.assert_allclose(pa.data, l2, rtol=1e-15)
    np.testing.assert_allclose(pw.data, [1.0 * 0.95 - 0.1, -2.0 * 0.95 - 0.1], rtol=1e-7)
    assert not np.allclose(pa.data, pw.data)


# -- SGD --------------------------------------------------------------------------------------------


def test_sgd_momentum_against_the_hand_recursion():
    (p,) = params_of([1.0, -2.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    feed([p], [G1])
    opt.step()
    np.testing.assert_allclose(p.data, [0.95, -2.01], rtol=1e-15)  # b = g
    feed([p], [G2])
    opt.step()
    np.testing.assert_allclose(p.data, [0.935, -2.039], rtol=1e-15)  # b = 0.9 g1 + g2 = [0.15, 0.29]
    g3 = [1.0, -1.0]
    feed([p], [g3])
    opt.step()
    b = [0.9 * 0.15 + 1.0, 0.9 * 0.29 - 1.0]
    np.testing.assert_allclose(p.data, [0.935 - 0.1 * b[0], -2.039 - 0.1 * b[1]], rtol=1e-15)


def test_sgd_without_momentum_keeps_no_buffer_and_weight_decay_is_l2():
    (p,) = params_of([1.0, -2.0])
    opt = SGD([p], lr=0.1, weight_decay=0.2)
    feed([p], [G1])
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (0.5 + 0.2), -2.0 - 0.1 * (0.1 - 0.4)], rtol=1e-15)
    assert sorted(opt.state_dict()) == ["lr.0", "step"]


# -- parameter groups ---------------------------------------------------------------------------------


class Tiny(Module):
    def __init__(self, dtype=np.float64):
        rng = np.random.default_rng(0)
        self.tok_embed = Parameter(rng.standard_normal((7, 3)).astype(dtype))
        self.proj = Linear(3, 5, rng=rng, dtype=dtype)
        self.proj.bias.data[...] = 0.5
        self.gain = Parameter(np.ones(5, dtype=dtype))


def test_param_groups_decays_matrices_only_by_default_and_embeddings_on_request():
    decay, keep = param_groups(Tiny().named_parameters(), weight_decay=0.1)
    assert decay["names"] == ["tok_embed", "proj.weight"] and decay["weight_decay"] == 0.1
    assert keep["names"] == ["gain", "proj.bias"] and keep["weight_decay"] == 0.0
    decay, keep = param_groups(Tiny().named_parameters(), 0.1, no_decay_names=("embed",))
    assert decay["names"] == ["proj.weight"]
    assert keep["names"] == ["tok_embed", "gain", "proj.bias"]


def test_a_group_with_weight_decay_0_leaves_biases_and_gains_undecayed():
    model = Tiny()
    before = model.state_dict()
    opt = AdamW(param_groups(model.named_parameters(), weight_decay=0.5), lr=0.1)
    for _ in range(3):
        model.zero_grad()  # zero gradients: the Adam step is exactly 0, only the decay acts
        opt.step()
    after = model.state_dict()
    np.testing.assert_allclose(after["proj.weight"], before["proj.weight"] * 0.95**3, rtol=1e-14)
    np.testing.assert_allclose(after["tok_embed"], before["tok_embed"] * 0.95**3, rtol=1e-14)
    np.testing.assert_array_equal(after["proj.bias"], before["proj.bias"])
    np.testing.assert_array_equal(after["gain"], before["gain"])


def test_a_group_overrides_the_defaults_and_lr_sets_every_group():
    w, b = params_of(np.ones((2, 2)), np.ones(2))
    opt = SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    with pytest.raises(ValueError, match=r"one learning rate for all groups, received \[0\.1, 0\.5\]"):
        _ = opt.lr
    feed([w, b], [np.ones((2, 2)), np.ones(2)])
    opt.step()
    np.testing.assert_allclose(w.data, 0.9)
    np.testing.assert_allclose(b.data, 0.5)
    opt.lr = 0.25
    assert opt.lr == 0.25 and [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    opt.set_lr(np.float32(0.125))
    assert type(opt.lr) is float and opt.lr == 0.125


def test_zero_grad_and_the_update_work_in_place():
    w, b = params_of(np.ones((2, 3)), np.ones(3))
    opt = AdamW([w, b], lr=0.1)
    data, grad = w.data, w.grad
    feed([w, b], [np.ones((2, 3)), np.ones(3)])
    opt.step()
    assert w.data is data and w.grad is grad and np.all(w.data < 1)
    opt.zero_grad()
    assert w.grad is grad and not w.grad.any() and not b.grad.any()


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda w: SGD([], lr=0.1), ValueError, "non-empty list"),
        (lambda w: SGD(Tiny().named_parameters(), lr=0.1), TypeError, "received tuple"),
        (lambda w: SGD([{"params": [w], "weight_dacay": 0.1}], lr=0.1), ValueError, "received keys"),
        (lambda w: SGD([{"params": [w]}, {"params": [w]}], lr=0.1), ValueError, "more than once"),
        (lambda w: SGD([w], lr=-1.0), ValueError, "lr: expected a finite number >= 0, received -1.0"),
        (lambda w: SGD([w], lr=0.1, momentum=-0.9), ValueError, "momentum: expected .* received -0.9"),
        (lambda w: Adam([w], betas=(0.9, 1.0)), ValueError, r"betas: expected two numbers in \[0, 1\)"),
        (lambda w: AdamW([w], eps=0.0), ValueError, "eps: expected a positive number, received 0"),
        (lambda w: AdamW([w], weight_decay=float("nan")), ValueError, "weight_decay: expected"),
    ],
)
def test_bad_arguments_are_refused_with_expected_and_received(build, error, message):
    (w,) = params_of(np.ones(2))
    with pytest.raises(error, match=message):
        build(w)


# -- against torch.optim ------------------------------------------------------------------------------


def two_groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.0}]


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda ps: SGD(two_groups(ps), lr=0.1, momentum=0.9, weight_decay=0.05),
         lambda torch, ps: torch.optim.SGD(two_groups(ps), lr=0.1, momentum=0.9, weight_decay=0.05)),
        (lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
         lambda torch, ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
        (lambda ps: AdamW(two_groups(ps), lr=0.01, weight_decay=0.2),
         lambda torch, ps: torch.optim.AdamW(two_groups(ps), lr=0.01, weight_decay=0.2)),
    ],
    ids=["sgd_momentum", "adam_l2", "adamw_groups"],
)
def test_five_steps_match_torch_optim(ours, theirs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    shapes = [(4, 3), (3, 2, 5), (3,), (5,)]
    p0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(5)]
    lrs = [0.1, 0.05, 0.2, 0.01, 0.1]  # as a schedule would set them
    params = params_of(*p0)
    opt = ours(params)
    tensors = [torch.tensor(p, requires_grad=True) for p in p0]
    topt = theirs(torch, tensors)
    for step_grads, lr in zip(grads, lrs):
        feed(params, step_grads)
        opt.lr = lr
        opt.step()
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g)
        for group in topt.param_groups:
            group["lr"] = lr
        topt.step()
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)  # observed ~1e-15
    assert max(np.abs(p.data - q).max() for p, q in zip(params, p0)) > 1e-3


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    grads = [5 * rng.standard_normal(s) for s in [(4, 3), (7,), (2, 2, 2)]]
    params = params_of(*[np.zeros_like(g) for g in grads])
    feed(params, grads)
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    norm = clip_grad_norm(params, 2.0)
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 2.0)
    assert norm == pytest.approx(float(tnorm), rel=1e-14)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-14)


# -- clipping -------------------------------------------------------------------------------------------


def test_clip_grad_norm_returns_the_global_norm_and_clips_to_max_norm():
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(s) for s in [(4, 3), (7,), (2, 2, 2)]]
    params = params_of(*[np.zeros_like(g) for g in grads])
    feed(params, grads)
    expected = math.sqrt(sum(float(x) ** 2 for g in grads for x in g.ravel()))
    norm = clip_grad_norm(params, 1.5)
    assert norm == pytest.approx(expected, rel=1e-14)
    clipped = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
    assert clipped == pytest.approx(1.5 * norm / (norm + 1e-6), rel=1e-14)
    assert clipped == pytest.approx(1.5, rel=1e-6)
    for p, g in zip(params, grads):  # one factor for all: the direction is kept
        np.testing.assert_allclose(p.grad, g * (1.5 / (norm + 1e-6)), rtol=1e-14)


def test_clip_grad_norm_below_the_threshold_changes_nothing():
    params = params_of(np.ones((2, 2)), np.ones(5))
    feed(params, [np.full((2, 2), 0.5), np.full(5, 0.2)])
    assert clip_grad_norm(params, 3.0) == pytest.approx(math.sqrt(4 * 0.25 + 5 * 0.04), rel=1e-15)
    np.testing.assert_array_equal(params[0].grad, 0.5)
    np.testing.assert_array_equal(params[1].grad, 0.2)


def test_clip_grad_norm_of_zero_gradients_is_0_with_no_nan():
    params = params_of(np.ones((2, 2)), np.ones(3))
    assert clip_grad_norm(params, 1.0) == 0.0
    assert all(np.all(p.grad == 0) for p in params)
    assert clip_grad_norm([], 1.0) == 0.0


def test_clip_grad_norm_leaves_non_finite_gradients_for_the_caller_to_see():
    params = params_of(np.ones(3), np.ones(2))
    feed(params, [[1.0, np.inf, 2.0], [3.0, 4.0]])
    assert clip_grad_norm(params, 1.0) == math.inf
    np.testing.assert_array_equal(params[0].grad, [1.0, np.inf, 2.0])
    np.testing.assert_array_equal(params[1].grad, [3.0, 4.0])
    with pytest.raises(ValueError, match="max_norm: expected a positive number, received 0"):
        clip_grad_norm(params, 0)


def test_clip_grad_norm_keeps_float32_and_is_accurate():
    params = params_of(np.ones(3000), dtype=np.float32)
    feed(params, [np.full(3000, 3.0, dtype=np.float32)])
    norm = clip_grad_norm(params, 1.0)
    assert norm == pytest.approx(3.0 * math.sqrt(3000), rel=1e-7)
    assert params[0].grad.dtype == np.float32
    assert float(np.sqrt((params[0].grad.astype(np.float64) ** 2).sum())) == pytest.approx(1.0, rel=1e-6)


# -- state dict -----------------------------------------------------------------------------------------


def make_sgd(ps):
    return SGD(two_groups(ps), lr=0.1, momentum=0.9, weight_decay=0.01)


def make_adam(ps):
    return Adam(ps, lr=0.01, weight_decay=0.01)


def make_adamw(ps):
    return AdamW(two_groups(ps), lr=0.01, weight_decay=0.1)


@pytest.mark.parametrize("make", [make_sgd, make_adam, make_adamw])
def test_a_restored_optimizer_continues_identically(make, tmp_path):
    rng = np.random.default_rng(8)
    shapes = [(3, 4), (2, 3, 5), (4,)]
    p0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(7)]
    first = params_of(*p0)
    opt = make(first)
    for g in grads[:3]:
        feed(first, g)
        opt.step()
    opt.lr = 0.005
    state = opt.state_dict()
    assert all(isinstance(v, (int, float, np.ndarray)) for v in state.values())
    np.savez(tmp_path / "optim.npz", **state)

    second = params_of(*[p.data.copy() for p in first])
    restored = make(second)
    with np.load(tmp_path / "optim.npz", allow_pickle=False) as archive:
        restored.load_state_dict({k: archive[k] for k in archive.files})
    assert restored.step_count == 3 and restored.lr == 0.005
    fresh = params_of(*[p.data.copy() for p in first])
    control = make(fresh)  # same parameters, no state: must drift away
    control.lr = 0.005
    for g in grads[3:]:
        for ps, o in ((first, opt), (second, restored), (fresh, control)):
            feed(ps, g)
            o.step()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.data, b.data)
    assert max(np.abs(a.data - c.data).max() for a, c in zip(first, fresh)) > 1e-6


def test_load_state_dict_lists_every_mismatch():
    saved = AdamW(params_of(np.zeros((3, 4)), np.zeros(4)), lr=0.1).state_dict()
    groups = param_groups([("w", Parameter(np.zeros((4, 3)))), ("b", Parameter(np.zeros(5)))], 0.1)
    target = AdamW(groups, lr=0.1)
    with pytest.raises(ValueError) as err:
        target.load_state_dict(saved)
    message = str(err.value)
    assert "missing: lr.1" in message
    assert "shape of m.0 (w): expected (4, 3), received (3, 4)" in message
    assert "shape of v.1 (b): expected (5,), received (4,)" in message
    assert message.count("shape of") == 4

    state = AdamW(params_of(np.zeros((3, 4))), lr=0.1).state_dict()
    del state["v.0"]
    state["extra"] = 1.0
    with pytest.raises(ValueError, match=r"missing: v\.0\n  unexpected: extra"):
        AdamW(params_of(np.zeros((3, 4))), lr=0.1).load_state_dict(state)


# -- dtypes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make_sgd, make_adam, make_adamw])
def test_float32_parameters_stay_float32_and_agree_with_float64(make):
    rng = np.random.default_rng(9)
    shapes = [(3, 4), (2, 3, 5), (4,)]
    p0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(4)]
    p32, p64 = params_of(*p0, dtype=np.float32), params_of(*p0)
    opt32, opt64 = make(p32), make(p64)
    for g in grads:
        feed(p32, g)
        feed(p64, g)
        opt32.step()
        opt64.step()
    for a, b in zip(p32, p64):
        assert a.data.dtype == np.float32 and a.grad.dtype == np.float32
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)
    buffers = [v for k, v in opt32.state_dict().items() if isinstance(v, np.ndarray)]
    assert buffers and all(v.dtype == np.float32 for v in buffers)


def test_adamw_shares_one_scratch_buffer_across_shapes_and_dtypes():
    # The update's temporary lives in one buffer shared by all parameters (rebuilt when the
    # dtype changes): the result must be that of each parameter updated on its own.
    rng = np.random.default_rng(3)
    shapes_dtypes = [((3, 4), np.float32), ((5,), np.float32), ((2, 2), np.float64), ((7,), np.float32)]
    together = [Parameter(rng.standard_normal(s).astype(d)) for s, d in shapes_dtypes]
    alone = [Parameter(p.data.copy()) for p in together]
    optimizers = [AdamW([p], lr=0.1, weight_decay=0.1) for p in alone]
    joint = AdamW(together, lr=0.1, weight_decay=0.1)
    for _ in range(3):
        for p, q in zip(together, alone):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.shape)
        joint.step()
        for opt in optimizers:
            opt.step()
    for p, q in zip(together, alone):
        assert p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)
