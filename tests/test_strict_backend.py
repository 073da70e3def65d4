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

On a GPU, ``TRANSFORMER_NP_TEST_DEVICE=cupy python -m pytest tests/test_strict_backend.py`` runs the
same comparisons with CuPy as the device (benchmarks/gpu_run.sh does).
"""

import os
import re

import numpy as np
import pytest

import strict_backend as strict
from transformer_np import backend
from transformer_np.backend import backend_name, to_backend, to_numpy
from transformer_np.checks import all_cases

# The device compared with NumPy: the stand-in in CI. On a GPU, TRANSFORMER_NP_TEST_DEVICE=cupy runs the same
# tests on CuPy (benchmarks/gpu_run.sh), with a looser bar: a GPU sums in another order. The tests of the
# stand-in itself are skipped then, visibly.
DEVICE = os.environ.get("TRANSFORMER_NP_TEST_DEVICE", "strict")
BACKENDS = ("numpy", DEVICE)
RTOL, ATOL = (1e-12, 1e-14) if DEVICE == "strict" else (1e-7, 1e-10)
strict_only = pytest.mark.skipif(DEVICE != "strict", reason=f"a test of the stand-in; the device is {DEVICE}")
CASES = all_cases()


@pytest.fixture(autouse=True, scope="module")
def strict_registered():
    backend.register_backend("strict", strict, strict.StrictArray)
    yield
    backend.unregister_backend("strict")


def move(value, name):
    """Arrays (also inside tuples, lists and dicts) moved to backend ``name``; anything else as it is."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # an array of any backend
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

@strict_only
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


@strict_only
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


@strict_only
def test_reductions_and_indexing_give_0d_device_arrays_and_python_scalars_only_on_request():
    x = strict.asarray(np.arange(6.0).reshape(2, 3))
    for scalar in (x.sum(), x[1, 2], strict.max(x), x.mean(axis=None)):
        assert isinstance(scalar, strict.StrictArray) and scalar.shape == ()
    before = strict.host_syncs["count"]
    assert float(x[1, 2]) == 5.0 and int(x.argmax()) == 5 and bool(x[0, 1] > 0)
    assert strict.host_syncs["count"] == before + 3


@strict_only
def test_the_stand_in_random_generator_and_scatter_add():
    draws = strict.random.default_rng(3).standard_normal((4, 5))
    assert backend_name(draws) == "strict"
    np.testing.assert_array_equal(draws.get(), np.random.default_rng(3).standard_normal((4, 5)))
    a = strict.zeros(4)
    backend.scatter_add(a, strict.asarray(np.array([1, 1, 3])), strict.asarray(np.array([1.0, 2.0, 5.0])))
    np.testing.assert_array_equal(a.get(), [0.0, 3.0, 0.0, 5.0])


@strict_only
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
def test_every_catalogue_case_runs_on_the_device_as_on_numpy(case):
    reference, device = run_case_on(case, "numpy"), run_case_on(case, DEVICE)
    assert device.keys() == reference.keys()
    for what in reference:
        np.testing.assert_allclose(device[what], reference[what], rtol=RTOL, atol=ATOL, err_msg=f"{case.layer}: {what}")


# -- whole models, parametrised by backend ---------------------------------------------------------

from transformer_np.beam import beam_search  # noqa: E402
from transformer_np.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from transformer_np.decode import greedy_decode  # noqa: E402
from transformer_np.generate import generate  # noqa: E402
from transformer_np.layers.masks import padding_mask_from_ids  # noqa: E402
from transformer_np.loss import CrossEntropyLoss  # noqa: E402
from transformer_np.models import GPT, Transformer  # noqa: E402
from transformer_np.module import Parameter  # noqa: E402
from transformer_np.optim import SGD, Adam, AdamW, clip_grad_norm, param_groups  # noqa: E402
from transformer_np.train import Trainer  # noqa: E402

V, BLOCK, PAD_ID = 13, 9, 0


def small_gpt(name, dtype=np.float64, dropout=0.1):
    model = GPT(vocab_size=V, block_size=BLOCK, n_layers=2, d_model=12, n_heads=3, dropout=dropout,
                rng=np.random.default_rng(0), dtype=dtype)
    return model.to(name)


def small_transformer(name, dtype=np.float64, dropout=0.1):
    model = Transformer(src_vocab=V, tgt_vocab=V + 2, max_len=BLOCK, n_layers=2, d_model=12, n_heads=3, d_ff=20,
                        dropout=dropout, rng=np.random.default_rng(0), dtype=dtype)
    return model.to(name)


def gpt_batch(seed=1, B=3, T=7):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, size=(B, T + 1))
    ids[0, -2:] = PAD_ID  # targets to ignore
    return ids[:, :-1], ids[:, 1:]


def seq2seq_batch(seed=2, B=3, S=6, T=5):
    rng = np.random.default_rng(seed)
    src, tgt = rng.integers(3, V, size=(B, S)), rng.integers(3, V + 2, size=(B, T + 1))
    src[1, -2:] = PAD_ID
    tgt[2, -3:] = PAD_ID
    return src, tgt[:, :-1], tgt[:, 1:]


def training_step(model, inputs, targets, name, optimizer=None):
    """Forward, loss, backward, clipping and one AdamW step of ``model`` on backend ``name``;
    returns (loss, grad norm, optimizer)."""
    optimizer = optimizer or AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-2)
    loss_fn = CrossEntropyLoss(label_smoothing=0.1, ignore_index=PAD_ID)
    model.train().zero_grad()
    logits = model.forward(*move(inputs, name))
    assert on(name, logits)
    loss = loss_fn.forward(logits, move(targets, name))
    assert on(name, loss) and loss.shape == ()
    model.backward(loss_fn.backward())
    norm = clip_grad_norm(model.parameters(), 0.5)
    optimizer.step()
    assert on(name, *(p.data for p in model.parameters()), *(p.grad for p in model.parameters()))
    assert on(name, *(b for state in optimizer._state for b in state.values()))
    return float(loss), norm, optimizer


def host_state(model):
    return {n: to_numpy(p.data) for n, p in model.named_parameters()}


def assert_same_state(a, b, rtol=RTOL):
    assert a.keys() == b.keys()
    for n in a:
        np.testing.assert_allclose(a[n], b[n], rtol=RTOL if rtol is None else rtol, atol=0 if rtol == 0 else ATOL,
                                   err_msg=n)


@pytest.mark.parametrize("name", BACKENDS)
def test_gpt_forward_backward_loss_and_adamw_step_match_numpy(name):
    ids, targets = gpt_batch()
    reference = small_gpt("numpy")
    loss_ref, norm_ref, _ = training_step(reference, (ids,), targets, "numpy")
    model = small_gpt(name)
    loss, norm, _ = training_step(model, (ids,), targets, name)
    assert loss == pytest.approx(loss_ref, rel=RTOL) and norm == pytest.approx(norm_ref, rel=RTOL)
    assert norm > 0.5  # the clipping acted
    assert_same_state(host_state(model), host_state(reference))


@pytest.mark.parametrize("name", BACKENDS)
def test_transformer_forward_backward_loss_and_adamw_step_match_numpy(name):
    src, tgt_in, tgt_out = seq2seq_batch()
    inputs = (src, tgt_in, padding_mask_from_ids(src, PAD_ID), padding_mask_from_ids(tgt_in, PAD_ID))
    reference = small_transformer("numpy")
    loss_ref, norm_ref, _ = training_step(reference, inputs, tgt_out, "numpy")
    model = small_transformer(name)
    loss, norm, _ = training_step(model, inputs, tgt_out, name)
    assert loss == pytest.approx(loss_ref, rel=RTOL) and norm == pytest.approx(norm_ref, rel=RTOL)
    assert_same_state(host_state(model), host_state(reference))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("use_cache", [True, False], ids=["kv-cache", "no-cache"])
def test_sampling_and_greedy_generation_give_numpys_tokens(name, use_cache):
    model = small_gpt(name, dtype=np.float32)
    prompt = move(np.array([[3, 5, 7], [1, 2, 2]]), name)
    settings = [dict(temperature=0), dict(temperature=0.9, top_k=5, top_p=0.9)]
    for kwargs in settings:  # 10 new tokens: past block_size = 9, so the cached window restarts
        out = generate(model, prompt, 10, rng=np.random.default_rng(4), use_cache=use_cache, **kwargs)
        reference = generate(small_gpt("numpy", dtype=np.float32), to_numpy(prompt), 10,
                             rng=np.random.default_rng(4), use_cache=True, **kwargs)
        assert on(name, out) and out.shape == (2, 13)
        np.testing.assert_array_equal(to_numpy(out), reference, err_msg=str(kwargs))


@pytest.mark.parametrize("name", BACKENDS)
def test_greedy_decoding_and_beam_search_with_the_cache_give_numpys_outputs(name):
    src, _, _ = seq2seq_batch()
    src_mask = padding_mask_from_ids(src, PAD_ID)
    model, reference = small_transformer(name), small_transformer("numpy")
    for use_cache in (True, False):
        ids = greedy_decode(model, move(src, name), move(src_mask, name), max_len=6, bos=1, eos=2, use_cache=use_cache)
        assert on(name, ids)
        np.testing.assert_array_equal(to_numpy(ids), greedy_decode(reference, src, src_mask, 6, bos=1, eos=2))
        beams, scores = beam_search(model, move(src, name), move(src_mask, name), beam_size=3, max_len=6, bos=1,
                                    eos=2, use_cache=use_cache)
        ref_beams, ref_scores = beam_search(reference, src, src_mask, beam_size=3, max_len=6, bos=1, eos=2)
        assert on(name, beams, scores)
        np.testing.assert_array_equal(to_numpy(beams), ref_beams)
        np.testing.assert_allclose(to_numpy(scores), ref_scores, rtol=RTOL)


def trainer_on(name, steps):
    """A Trainer of a small GPT on backend ``name``: batches drawn on the host, moved by a wrapper."""
    model = small_gpt(name)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-2)

    def get_batch(rng):
        ids, targets = gpt_batch(int(rng.integers(1 << 30)))
        return (move(ids, name),), move(targets, name)

    trainer = Trainer(model, optimizer, CrossEntropyLoss(ignore_index=PAD_ID), get_batch,
                      rng=np.random.default_rng(5), clip=1.0, quiet=True)
    trainer.fit(steps)
    return trainer


@pytest.mark.parametrize("name", BACKENDS)
def test_trainer_steps_match_numpy(name):
    trainer, reference = trainer_on(name, 3), trainer_on("numpy", 3)
    assert all(isinstance(v, float) for key in ("loss", "grad_norm") for v in trainer.history[key])
    np.testing.assert_allclose(trainer.history["loss"], reference.history["loss"], rtol=RTOL)
    np.testing.assert_allclose(trainer.history["grad_norm"], reference.history["grad_norm"], rtol=RTOL)
    assert_same_state(host_state(trainer.model), host_state(reference.model))


@pytest.mark.parametrize("saved_on, loaded_on", [(DEVICE, "numpy"), ("numpy", DEVICE)])
def test_a_checkpoint_saved_on_one_backend_loads_on_the_other(saved_on, loaded_on, tmp_path):
    trainer = trainer_on(saved_on, 2)
    path = tmp_path / "run.npz"
    save_checkpoint(path, trainer.model, trainer.optimizer, trainer.step, trainer.rng)
    model = small_gpt(loaded_on)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-2)
    rng = np.random.default_rng(99)
    assert load_checkpoint(path, model, optimizer, rng)["step"] == 2
    assert on(loaded_on, *(p.data for p in model.parameters()), *(b for s in optimizer._state for b in s.values()))
    assert_same_state(host_state(model), host_state(trainer.model), rtol=0)
    for saved, loaded in zip(trainer.optimizer._state, optimizer._state):
        for b in saved:
            np.testing.assert_array_equal(to_numpy(loaded[b]), to_numpy(saved[b]))
    assert rng.bit_generator.state == trainer.rng.bit_generator.state
    # the loaded run goes on exactly as the saved one
    ids, targets = gpt_batch(7)
    loss_saved, _, _ = training_step(trainer.model, (ids,), targets, saved_on, trainer.optimizer)
    loss_loaded, _, _ = training_step(model, (ids,), targets, loaded_on, optimizer)
    assert loss_loaded == pytest.approx(loss_saved, rel=RTOL)
    assert_same_state(host_state(model), host_state(trainer.model))


def array_attributes(model):
    """(module path, attribute, array) for every array a module holds besides its Parameters."""
    return [(prefix, key, value) for prefix, m in model.named_modules() for key, value in vars(m).items()
            if hasattr(value, "dtype") and hasattr(value, "shape") and not isinstance(value, Parameter)]


def test_model_to_moves_everything_both_ways_and_keeps_the_numbers():
    model = small_gpt("numpy", dtype=np.float32).eval()
    ids, targets = gpt_batch()
    before = model.forward(ids)
    _, _, optimizer = training_step(model, (ids,), targets, "numpy")
    after_step = host_state(model)
    for name in (DEVICE, "numpy", DEVICE):
        model.to(name)
        assert on(name, *(p.data for p in model.parameters()), *(p.grad for p in model.parameters()),
                  *(a for _, _, a in array_attributes(model)))
        assert {p.dtype for p in model.parameters()} == {np.dtype(np.float32)}
        assert_same_state(host_state(model), after_step, rtol=0)
    training_step(model, (ids,), targets, DEVICE, optimizer)  # the optimizer's buffers follow the parameters
    model.to("numpy").eval()
    assert model.forward(ids).shape == before.shape
    assert all(isinstance(m.rng, np.random.Generator) for _, m in model.named_random_modules())


@pytest.mark.parametrize("name", BACKENDS)
def test_random_draws_are_the_hosts_and_repeat_on_every_backend(name):
    """Dropout masks, initial weights and samples come from NumPy generators on the host, so the
    same seed gives the same numbers on each backend; the stand-in's own generator gives device arrays."""
    ids, _ = gpt_batch()
    outs = []
    for backend_ in ("numpy", name):
        model = small_gpt(backend_, dropout=0.5).train()
        outs.append(to_numpy(model.forward(move(ids, backend_))))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], to_numpy(small_gpt(name, dropout=0.5).eval().forward(move(ids, name))))
    xp = backend.get_backend(name)
    draws = xp.random.default_rng(0).standard_normal((2, 3))
    assert on(name, draws) and draws.shape == (2, 3)
    if name in ("numpy", "strict"):  # the stand-in draws NumPy's numbers; CuPy's stream is its own
        np.testing.assert_array_equal(to_numpy(draws), np.random.default_rng(0).standard_normal((2, 3)))


# -- mixing backends in one call -------------------------------------------------------------------

from transformer_np.layers import LayerNorm, Linear  # noqa: E402
from transformer_np.layers.masks import padding_mask_from_lengths  # noqa: E402


def mixing_calls(model_on):
    """(what, call) pairs that hand a layer or model float data of the other backend."""
    data_on = "numpy" if model_on == DEVICE else DEVICE
    x = to_backend(np.random.default_rng(0).standard_normal((2, 4, 12)), data_on)
    linear = Linear(12, 5, dtype=np.float64).to(model_on)
    norm = LayerNorm(12, dtype=np.float64).to(model_on)
    encoder = small_transformer(model_on).encoder
    return data_on, [("Linear", lambda: linear.forward(x)), ("LayerNorm", lambda: norm.forward(x)),
                     ("Encoder", lambda: encoder.forward(x, None))]


@pytest.mark.parametrize("model_on", BACKENDS)
def test_float_data_of_the_other_backend_is_refused_naming_both_and_how_to_move(model_on):
    data_on, calls = mixing_calls(model_on)
    for what, call in calls:
        with pytest.raises(TypeError) as err:
            call()
        message = str(err.value)
        assert f"expected a {model_on} array" in message and f"received a {data_on} array" in message, (what, message)
        assert f"model.to({data_on!r})" in message and f"to_backend(x, {model_on!r})" in message, (what, message)


@pytest.mark.parametrize("model_on", BACKENDS)
def test_token_ids_and_masks_follow_the_parameters_backend(model_on):
    """Token ids and masks come from the host's data pipeline: a model moves them to its backend
    (a small, explicit copy) instead of refusing them; its output is on its own backend."""
    data_on = "numpy" if model_on == DEVICE else DEVICE
    ids, _ = gpt_batch()
    mask = padding_mask_from_lengths(np.array([7, 5, 6]), 7)
    logits = small_gpt(model_on).eval().forward(move(ids, data_on), move(mask, data_on))
    reference = small_gpt("numpy").eval().forward(ids, mask)
    assert on(model_on, logits)
    np.testing.assert_allclose(to_numpy(logits), reference, rtol=RTOL)


def test_asking_for_cupy_without_cupy_says_how_to_install_it(monkeypatch):
    import sys

    INSTALL = "backend 'cupy' needs CuPy and a CUDA GPU: pip install -e \".[gpu]\""
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" now fails, GPU or not
    for ask in (lambda: backend.get_backend("cupy"), lambda: Linear(2, 3).to("cupy")):
        with pytest.raises(ImportError, match=re.escape(INSTALL)):
            ask()
    assert not backend.cupy_available()


def test_decoding_host_ids_with_a_model_on_the_device_gives_host_ids():
    """The data pipeline's ids are on the host; a model on the device decodes them, and the tokens
    come back on the host (each step's new tokens copied explicitly), equal to NumPy's."""
    from transformer_np.beam import sequence_scores

    gpt, gpt_ref = small_gpt(DEVICE, dtype=np.float32), small_gpt("numpy", dtype=np.float32)
    prompt = np.array([[3, 5, 7], [1, 2, 2]])
    for kwargs in (dict(temperature=0), dict(temperature=0.9, top_k=5)):
        out = generate(gpt, prompt, 10, rng=np.random.default_rng(4), **kwargs)
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, generate(gpt_ref, prompt, 10, rng=np.random.default_rng(4), **kwargs))
    src, _, _ = seq2seq_batch()
    src_mask = padding_mask_from_ids(src, PAD_ID)
    model, reference = small_transformer(DEVICE), small_transformer("numpy")
    for use_cache in (True, False):
        ids = greedy_decode(model, src, src_mask, max_len=6, bos=1, eos=2, use_cache=use_cache)
        assert isinstance(ids, np.ndarray)
        np.testing.assert_array_equal(ids, greedy_decode(reference, src, src_mask, 6, bos=1, eos=2))
        beams, scores = beam_search(model, src, src_mask, beam_size=3, max_len=6, bos=1, eos=2, use_cache=use_cache)
        ref_beams, ref_scores = beam_search(reference, src, src_mask, beam_size=3, max_len=6, bos=1, eos=2)
        assert isinstance(beams, np.ndarray) and isinstance(scores, np.ndarray)
        np.testing.assert_array_equal(beams, ref_beams)
        np.testing.assert_allclose(scores, ref_scores, rtol=RTOL)
    logp, score = sequence_scores(model, src, src_mask, ref_beams[:, 0], bos=1, eos=2)
    ref_logp, ref_score = sequence_scores(reference, src, src_mask, ref_beams[:, 0], bos=1, eos=2)
    assert isinstance(logp, np.ndarray)
    np.testing.assert_allclose(logp, ref_logp, rtol=RTOL)
    np.testing.assert_allclose(score, ref_score, rtol=RTOL)


@pytest.mark.parametrize("recipe, sizes", [("copy", dict(d_model=16, n_layers=1)),
                                           ("gru-copy", dict(d_embed=8, hidden_size=16))], ids=["copy", "gru-copy"])
def test_a_recipes_evaluation_of_a_model_on_the_device_matches_numpy(recipe, sizes):
    """The recipes' held-out data is on the host; their eval_fn (loss, greedy decoding, accuracy) runs
    a model moved to the device and gives NumPy's numbers."""
    from transformer_np.recipes import build_run

    run = build_run(recipe, batch_size=8, eval_size=12, **sizes)
    reference = run.eval_fn(run.model)
    run.model.to(DEVICE)
    assert run.eval_fn(run.model) == pytest.approx(reference, rel=1e-6)


# -- the gradient checker on a device --------------------------------------------------------------

ON_DEVICE_CHECKS = ["Linear", "Embedding", "Dropout (p=0.3)", "ScaledDotProductAttention (causal + padding)",
                    "LayerNorm", "Residual (pre-LN, x and memory)", "CrossEntropyLoss (smoothing 0.1, ignore pad)",
                    "Embedding + TiedOutput (one shared weight)", "GRU (h0, padding mask)"]


@pytest.mark.parametrize("layer", ON_DEVICE_CHECKS)
def test_the_float64_gradient_check_runs_on_the_device_with_numpys_verdicts(layer):
    """A sample of the catalogue (one case per kind of layer: the whole catalogue on the stand-in costs
    minutes; benchmarks/gpu_run.sh runs all of it on a GPU with ``gradcheck --backend cupy``)."""
    from transformer_np.checks import run_case

    (case,) = [c for c in CASES if c.layer == layer]
    device, host = run_case(case, backend=DEVICE), run_case(case)
    assert [r.what for r in device] == [r.what for r in host]
    for d, h in zip(device, host):
        assert d.passed and d.verdict == h.verdict, (layer, d.what, d.verdict, h.verdict)
        if DEVICE == "strict":  # the same arithmetic: the same errors (a GPU rounds differently)
            assert d.max_rel_error == pytest.approx(h.max_rel_error, rel=1e-6, abs=1e-15)


def test_gradcheck_on_cupy_without_a_gpu_is_one_line_and_exit_2(capsys):
    from transformer_np.__main__ import main

    if backend.cupy_available():
        pytest.skip("this machine has CuPy and a GPU: the refusal cannot be seen here")
    assert main(["gradcheck", "--backend", "cupy", "--only", "lin"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--backend cupy" in err and 'pip install -e ".[gpu]"' in err, err


def test_attention_maps_and_token_labels_of_a_model_on_the_device():
    pytest.importorskip("matplotlib")
    from transformer_np import viz

    ids, _ = gpt_batch()
    maps = {}
    for name in BACKENDS:
        model = small_gpt(name).eval()
        model.forward(move(ids, name))
        maps[name] = viz.attention_maps(model)["self"]
        assert viz.token_labels(move(ids[0], name)) == viz.token_labels(ids[0])
        fig = viz.plot_model_attention(model, viz.token_labels(move(ids[0], name)))
        assert len(fig.axes) >= model.n_layers * model.n_heads
        import matplotlib.pyplot as plt

        plt.close(fig)
    for device, host in zip(maps[DEVICE], maps["numpy"]):
        assert isinstance(device, np.ndarray)
        np.testing.assert_allclose(device, host, rtol=RTOL)


@strict_only
def test_host_synchronisations_per_step_stay_few():
    """float()/int()/bool() of a device value waits for the GPU. A training step synchronises for its
    loss and gradient norm (the Trainer records both as Python floats) and once per id check; a
    generated token for its id check and the two logits checks. A check added to every layer would
    multiply these counts: this test would catch it."""
    trainer_on("strict", 1)  # warm up, nothing to count yet
    before = strict.host_syncs["count"]
    trainer = trainer_on("strict", 3)
    per_step = (strict.host_syncs["count"] - before) / 3
    # 5 today: the loss and the norm, the ids checked by GPT, its Embedding and the loss
    assert len(trainer.history["loss"]) == 3 and per_step <= 6, per_step
    model = small_gpt("strict").eval()
    before = strict.host_syncs["count"]
    generate(model, strict.asarray(np.array([[1, 2, 3]])), 8, rng=np.random.default_rng(0))
    per_token = (strict.host_syncs["count"] - before) / 8
    assert per_token <= 4, per_token  # 3 today: the ids checked by GPT and its Embedding, the logits



OPTIMISERS = {
    "SGD": lambda model: SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01),
    "Adam": lambda model: Adam(model.parameters(), lr=0.01, weight_decay=0.01),
    "AdamW": lambda model: AdamW(param_groups(model.named_parameters(), 0.1), lr=0.01),
}


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("kind", sorted(OPTIMISERS))
def test_every_optimiser_steps_like_numpy_and_its_state_moves_between_backends(kind, name):
    """Three steps of each optimiser on a GPT's gradients give NumPy's weights; the state saved on one
    backend loads on the other, and the next step agrees."""
    ids, targets = gpt_batch()
    runs = {}
    for where in ("numpy", name):
        model = small_gpt(where, dropout=0.0)
        optimizer = OPTIMISERS[kind](model)
        for _ in range(3):
            training_step(model, (ids,), targets, where, optimizer)
        runs[where] = model, optimizer
    assert_same_state(host_state(runs[name][0]), host_state(runs["numpy"][0]))
    other = "numpy" if name != "numpy" else DEVICE
    model = small_gpt(other, dropout=0.0)
    model.load_state_dict(runs[name][0].state_dict())
    optimizer = OPTIMISERS[kind](model)
    optimizer.load_state_dict(runs[name][1].state_dict())
    assert on(other, *(b for state in optimizer._state for b in state.values()))
    training_step(model, (ids,), targets, other, optimizer)
    training_step(runs[name][0], (ids,), targets, name, runs[name][1])
    assert_same_state(host_state(model), host_state(runs[name][0]))
