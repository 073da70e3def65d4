"""The training loop: exact resumption, checkpoints, history, schedule, clipping, and real learning."""

import io
import math

import numpy as np
import pytest

from transformer_np.layers.linear import Linear
from transformer_np.loss import CrossEntropyLoss
from transformer_np.optim import SGD, noam_lr
from transformer_np.recipes import build_run
from transformer_np.train import HISTORY_KEYS, ProgressBar, Trainer

TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dropout": 0.1, "batch_size": 8, "eval_size": 20}
TINY_RUNS = {
    "copy": {**TINY, "d_ff": 24, "max_len": 6},
    "sort-gpt": {**TINY, "n_heads": 2, "eval_size": 16},
}


def fixed_batch_setup(lr=0.1, clip=None, schedule=None, seed=0):
    """A Linear 'model' on one fixed batch: (B, T, 4) features -> (B, T, 3) logits."""
    rng = np.random.default_rng(seed)
    model = Linear(4, 3, rng=rng)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=(2, 5))
    trainer = Trainer(model, SGD(model.parameters(), lr=lr), CrossEntropyLoss(), lambda g: ((x,), y),
                      rng=np.random.default_rng(1), clip=clip, schedule=schedule, quiet=True)
    return trainer, model, x, y


def raw_gradients(model, x, y):
    """The gradients of one forward and backward, before any clipping."""
    model.zero_grad()
    loss = CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("recipe", sorted(TINY_RUNS))
def test_resume_continues_exactly_as_an_uninterrupted_run(recipe, tmp_path):
    settings = {**TINY_RUNS[recipe], "steps": 6}
    straight = build_run(recipe, **settings).trainer(eval_every=None, eval_fn=None, quiet=True)
    straight.fit(6)

    first = build_run(recipe, **settings).trainer(eval_every=None, eval_fn=None, quiet=True)
    first.fit(3)
    path = first.save(tmp_path / "half.npz")
    run = build_run(recipe, **settings)  # fresh model, optimizer and generators
    second = run.trainer(eval_every=None, eval_fn=None, quiet=True)
    assert second.load(path)["step"] == 3
    second.fit(6)

    assert second.history["step"] == [1, 2, 3, 4, 5, 6]
    assert second.history["loss"] == straight.history["loss"]  # identical, not approximately
    assert second.history["grad_norm"] == straight.history["grad_norm"]
    for (name, p), q in zip(straight.model.named_parameters(), run.model.parameters()):
        np.testing.assert_array_equal(q.data, p.data, err_msg=name)

    # The comparison is sensitive to the dropout generators: without them, step 4 differs.
    third = build_run(recipe, **settings).trainer(eval_every=None, eval_fn=None, quiet=True)
    third.load(path)
    for m in third.model.modules():
        if isinstance(getattr(m, "rng", None), np.random.Generator):
            m.rng = np.random.default_rng(99)
    third.fit(4)
    assert third.history["loss"][3] != straight.history["loss"][3]


def test_checkpoints_every_n_steps_and_at_the_end(tmp_path):
    trainer = fixed_batch_setup()[0]
    trainer.checkpoint_path, trainer.checkpoint_every = str(tmp_path / "run-{step}.npz"), 2
    trainer.fit(5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-2.npz", "run-4.npz", "run-5.npz"]
    restored = fixed_batch_setup(seed=7)[0]
    assert restored.load(tmp_path / "run-4.npz")["step"] == 4
    assert restored.history["loss"] == trainer.history["loss"][:4]
    assert restored.optimizer.step_count == 4

    single = fixed_batch_setup()[0]
    single.checkpoint_path, single.checkpoint_every = str(tmp_path / "last.npz"), 2
    single.fit(3)
    with np.load(tmp_path / "last.npz", allow_pickle=False) as archive:
        assert int(archive["step"]) == 3


def test_history_has_one_entry_per_step_and_per_evaluation():
    run = build_run("copy", **TINY_RUNS["copy"], steps=5)
    trainer = run.trainer(eval_every=2, quiet=True)
    history = trainer.fit(5)
    assert set(HISTORY_KEYS) <= set(history)
    assert history["step"] == [1, 2, 3, 4, 5]
    assert all(len(history[k]) == 5 for k in HISTORY_KEYS)
    assert history["val_step"] == [2, 4, 5]  # every 2 steps, and at the end
    for key in ("val_loss", "val_exact_match", "val_token_accuracy"):
        assert len(history[key]) == 3 and all(math.isfinite(v) for v in history[key])
    assert all(0.0 <= v <= 1.0 for v in history["val_exact_match"])
    assert all(v > 0 for v in history["tokens_per_s"])
    assert run.model.training  # evaluation ran in eval mode, training mode came back

    fresh = build_run("copy", **TINY_RUNS["copy"], steps=5)  # the first loss is that of the first batch
    inputs, targets = fresh.get_batch(fresh.trainer().rng)
    assert history["loss"][0] == float(fresh.loss_fn.forward(fresh.model.forward(*inputs), targets))


def test_lr_follows_the_schedule_from_step_one():
    schedule = lambda step: noam_lr(step, d_model=16, warmup=3)
    trainer = fixed_batch_setup(schedule=schedule)[0]
    trainer.fit(6)
    assert trainer.history["lr"] == [schedule(s) for s in range(1, 7)]
    assert trainer.optimizer.lr == schedule(6)


def test_clipping_records_the_norm_before_and_applies_the_norm_after():
    trainer, model, x, y = fixed_batch_setup(lr=0.5, clip=1e-2)
    before = [p.data.copy() for p in model.parameters()]
    raw = raw_gradients(model, x, y)
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in raw))
    trainer.train_step()
    assert trainer.history["grad_norm"] == [pytest.approx(norm, rel=1e-6)]
    assert norm > 1e-2
    scale = 1e-2 / (norm + 1e-6)
    for b, p, g in zip(before, model.parameters(), raw):  # SGD moved by lr * the clipped gradient
        np.testing.assert_allclose(p.data, b - 0.5 * scale * g, rtol=1e-5, atol=1e-7)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf in the forward, on purpose
def test_a_non_finite_loss_stops_training_with_a_clear_error():
    trainer, model, _, _ = fixed_batch_setup()
    model.weight.data[0, 0] = np.inf
    with pytest.raises(FloatingPointError, match="step 1: expected a finite loss"):
        trainer.fit(2)


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    trainer = build_run("copy", **TINY_RUNS["copy"], steps=1).trainer(quiet=True, eval_fn=None)
    path = trainer.save(tmp_path / "c.npz")
    other = build_run("copy", **TINY_RUNS["copy"], steps=1, lr=0.5).trainer(quiet=True, eval_fn=None)
    with pytest.raises(ValueError, match="lr: expected 0.5, checkpoint has 0.001"):
        other.load(path)


def test_recipes_refuse_unknown_or_mistyped_settings():
    with pytest.raises(ValueError, match=r"settings of 'copy': expected keys among .*, received \['depth'\]"):
        build_run("copy", depth=3)
    with pytest.raises(TypeError, match="setting 'steps': expected int, received 1.5"):
        build_run("copy", steps=1.5)
    with pytest.raises(ValueError, match="recipe: expected one of 'sort-gpt', .*, received 'juggle'"):
        build_run("juggle")
    assert build_run("copy", lr=1, **TINY_RUNS["copy"]).config["lr"] == 1.0  # an int for a float setting


def test_progress_bar_redraws_one_line_and_prints_messages_above_it():
    stream = io.StringIO()
    bar = ProgressBar(4, stream=stream, min_interval=0.0)
    for step in range(1, 5):
        bar.update(step, loss=1.0 / step, lr=1e-3, **{"tok/s": 12345.6})
    bar.message("step 4: val loss 0.1")
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 2 and text.count("\r") >= 4
    assert "4/4  loss 0.25  lr 1.0e-03  12,346 tok/s" in text
    assert "[" + "#" * 20 + "]" in text and "\rstep 4: val loss 0.1\n" in text
    silent = io.StringIO()
    ProgressBar(4, stream=silent, enabled=False).update(4, loss=1.0)
    assert silent.getvalue() == ""


def test_copy_task_is_learned_in_seconds():
    # 300 steps of a 1-layer, d_model 32 model: about 2 s on 2 cores; 99.3 % was measured.
    run = build_run("copy", steps=300, d_model=32, n_heads=2, n_layers=1, d_ff=64, batch_size=64, lr=5e-3,
                    warmup=30, max_len=6, eval_size=300)
    history = run.trainer(eval_every=None, quiet=True).fit(run.steps)
    assert history["val_exact_match"][-1] >= 0.95, history["val_exact_match"]
    assert history["loss"][-1] < 0.1 * history["loss"][0]


def test_the_library_leaves_the_process_allocator_alone():
    # A teaching library does not change process-wide settings behind the user's back
    # (DESIGN.md): no module reaches the C library (mallopt) or the environment's allocator
    # variables. benchmarks/train_step.py sets the allocator itself, and says so.
    from pathlib import Path

    import transformer_np

    root = Path(transformer_np.__file__).parent
    offenders = {
        path.relative_to(root).as_posix(): word
        for path in root.rglob("*.py")
        for word in ("ctypes", "mallopt", "MALLOC_")
        if word in path.read_text()
    }
    assert not offenders, offenders


def test_the_last_checkpoint_holds_the_final_evaluation_when_the_interval_divides_the_steps(tmp_path):
    trainer = fixed_batch_setup()[0]
    trainer.eval_fn = lambda model: {"loss": 1.0}
    trainer.checkpoint_path, trainer.checkpoint_every = str(tmp_path / "run-{step}.npz"), 2
    trainer.fit(4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-2.npz", "run-4.npz"]
    with np.load(tmp_path / "run-4.npz", allow_pickle=False) as archive:
        assert archive["extra/history/val_step"].tolist() == [4]  # evaluated at the end, then saved


def test_a_checkpoint_path_is_checked_when_the_trainer_is_made(tmp_path):
    """Not after training: a run-{stp}.npz typo used to throw a finished run away."""
    with pytest.raises(ValueError, match=r"checkpoint_path: expected a path whose only field is \{step\}.*'stp'"):
        Trainer(*_trainer_parts(), rng=np.random.default_rng(0), checkpoint_path=str(tmp_path / "run-{stp}.npz"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"checkpoint_path: expected a path that can be written, .*file is a file"):
        Trainer(*_trainer_parts(), rng=np.random.default_rng(0), checkpoint_path=str(tmp_path / "file" / "r.npz"))
    with pytest.raises(ValueError, match="checkpoint_path: expected a file path, received .* which is a folder"):
        Trainer(*_trainer_parts(), rng=np.random.default_rng(0), checkpoint_path=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probes left nothing behind


def _trainer_parts():
    trainer, model, x, y = fixed_batch_setup()
    return model, trainer.optimizer, trainer.loss_fn, trainer.get_batch


def test_load_may_extend_a_run_to_more_steps(tmp_path):
    run = build_run("copy", **TINY_RUNS["copy"], steps=3)
    first = run.trainer(quiet=True, eval_every=None)
    first.fit(3)
    first.save(tmp_path / "c.npz")
    longer = build_run("copy", **TINY_RUNS["copy"], steps=5)
    trainer = longer.trainer(quiet=True, eval_every=None)
    with pytest.raises(ValueError, match="steps: expected 5, checkpoint has 3"):
        trainer.load(tmp_path / "c.npz")
    assert trainer.load(tmp_path / "c.npz", may_differ=("steps",))["step"] == 3
    trainer.fit(5)
    assert trainer.step == 5 and trainer.history["step"] == [1, 2, 3, 4, 5]
    assert trainer.history["loss"][:3] == first.history["loss"]


def test_the_shakespeare_recipe_caps_its_warmup_at_the_steps():
    from transformer_np.recipes import RECIPES

    small = {"n_layers": 1, "n_heads": 2, "d_model": 16, "block_size": 16, "eval_iters": 1}
    assert RECIPES["shakespeare"].defaults["warmup"] > 20
    run = build_run("shakespeare", steps=20, **small)
    lrs = [run.schedule(s) for s in range(1, 21)]
    assert all(0 < a < b for a, b in zip(lrs, lrs[1:]))  # 20 steps, all of them warming up
    assert lrs[-1] == pytest.approx(1e-3 * 20 / 21)
