"""Checkpoints: exact round trip (dropout generators included), atomic writes, no pickle, refusal of mismatches."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from transformer_np.checkpoint import load_checkpoint, load_config, save_checkpoint
from transformer_np.layers import Dropout, Linear
from transformer_np.recipes import build_run


def test_round_trip_restores_parameters_step_generator_and_config(tmp_path):
    path = tmp_path / "run.npz"
    model = Linear(3, 4, rng=np.random.default_rng(1))
    rng = np.random.default_rng(5)
    rng.standard_normal(7)  # advance it, so the saved state is not the seed's
    save_checkpoint(path, model, step=42, rng=rng, config={"d_model": 3, "task": "copy"})
    expected_next = rng.standard_normal(3)

    restored, restored_rng = Linear(3, 4, rng=np.random.default_rng(2)), np.random.default_rng(0)
    info = load_checkpoint(path, restored, rng=restored_rng, config={"d_model": 3, "task": "copy"})
    assert info == {"step": 42, "config": {"d_model": 3, "task": "copy"}}
    np.testing.assert_array_equal(restored.weight.data, model.weight.data)
    assert restored.weight.dtype == np.float32
    np.testing.assert_array_equal(restored_rng.standard_normal(3), expected_next)


def test_archive_loads_without_pickle_and_write_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "ckpt.npz"
    save_checkpoint(path, Linear(2, 2), config={"a": [1, 2]})
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"model/weight", "model/bias", "step", "config"}
    assert os.listdir(path.parent) == ["ckpt.npz"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, Linear(2, 2), step=1)
    with pytest.raises(TypeError):
        save_checkpoint(path, Linear(2, 2), step=2, config={"bad": object()})  # not JSON-able
    assert load_checkpoint(path, Linear(2, 2))["step"] == 1
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_mismatched_model_is_refused_with_the_list_of_mismatches(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, Linear(3, 4))
    with pytest.raises(ValueError, match=r"shape of weight: expected \(3, 5\), received \(3, 4\)"):
        load_checkpoint(path, Linear(3, 5))
    save_checkpoint(path, Linear(3, 4, bias=False))
    with pytest.raises(ValueError, match="missing: bias"):
        load_checkpoint(path, Linear(3, 4))


def test_mismatched_config_is_refused_listing_each_difference(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, Linear(2, 2), config={"d_model": 2, "n_heads": 1})
    with pytest.raises(ValueError) as err:
        load_checkpoint(path, Linear(2, 2), config={"d_model": 2, "n_heads": 2, "task": "sort"})
    assert "n_heads: expected 2, checkpoint has 1" in str(err.value)
    assert "task: expected 'sort', checkpoint has None" in str(err.value)


class Noisy(Linear):
    """A Linear with a Dropout after it: one parameterised module, one generator below it."""

    def __init__(self, seed, dropout=True):
        super().__init__(3, 4, rng=np.random.default_rng(seed))
        if dropout:
            self.drop = Dropout(0.5, rng=np.random.default_rng(seed + 1))


def test_dropout_generators_are_saved_and_restored(tmp_path):
    path = tmp_path / "noisy.npz"
    model = Noisy(1)
    model.drop.rng.random(5)  # advance it
    save_checkpoint(path, model, extra={"history/loss": [0.5, 0.25]})
    expected = model.drop.forward(np.ones((2, 4), dtype=np.float32))
    restored = Noisy(10)
    info = load_checkpoint(path, restored)
    np.testing.assert_array_equal(restored.drop.forward(np.ones((2, 4), dtype=np.float32)), expected)
    np.testing.assert_array_equal(info["extra"]["history/loss"], [0.5, 0.25])
    assert load_config(path) == {}
    with np.load(path, allow_pickle=False) as archive:
        assert "model_rng/drop.rng" in archive.files


def test_generators_that_do_not_match_are_refused_before_anything_is_loaded(tmp_path):
    path = tmp_path / "noisy.npz"
    save_checkpoint(path, Noisy(1))
    plain = Noisy(2, dropout=False)
    before = plain.weight.data.copy()
    with pytest.raises(ValueError, match=r"generators do not match Noisy:\n  unexpected: drop.rng"):
        load_checkpoint(path, plain)
    np.testing.assert_array_equal(plain.weight.data, before)
    save_checkpoint(path, Noisy(1, dropout=False))
    with pytest.raises(ValueError, match="missing: drop.rng"):
        load_checkpoint(path, Noisy(2))


# -- the model's configuration, and checkpoints of the older layout ------------------------------

LAYOUT1 = Path(__file__).parent / "data"  # written by the code before configuration dataclasses


@pytest.mark.parametrize("name, recipe", [("layout1_copy.npz", "copy"), ("layout1_sort_gpt.npz", "sort-gpt")])
def test_a_checkpoint_of_the_older_layout_still_loads(name, recipe):
    path = LAYOUT1 / name
    config = load_config(path)
    assert config["recipe"] == recipe
    with np.load(path, allow_pickle=False) as archive:
        assert "model_config" not in archive.files  # the older layout
        saved = {k[len("model/"):]: archive[k] for k in archive.files if k.startswith("model/")}
    run = build_run(**config)
    trainer = run.trainer(quiet=True)
    assert trainer.load(path)["step"] == 2
    for name_, p in run.model.named_parameters():
        np.testing.assert_array_equal(p.data, saved[name_], err_msg=name_)


def test_an_older_layout_that_does_not_fit_is_refused_saying_so():
    run = build_run("copy", d_model=16, n_heads=2, n_layers=2, d_ff=24, max_len=6, batch_size=8, eval_size=20)
    with pytest.raises(ValueError, match="(?s)comes from an older layout of transformer_np .*missing: encoder.layers.1"):
        load_checkpoint(LAYOUT1 / "layout1_copy.npz", run.model)


def test_the_model_configuration_round_trips_and_another_one_is_refused(tmp_path):
    from transformer_np.models import GPT

    model = GPT(vocab_size=7, block_size=5, n_layers=1, n_heads=2, d_model=8)
    save_checkpoint(tmp_path / "m.npz", model)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        assert json.loads(str(archive["model_config"])) == {"class": "GPTConfig", **model.config.to_dict()}
    again = GPT(model.config)
    load_checkpoint(tmp_path / "m.npz", again)
    other = GPT(vocab_size=7, block_size=5, n_layers=1, n_heads=2, d_model=8, activation="relu")
    with pytest.raises(ValueError, match="holds another model configuration:\n  activation: expected 'relu', "
                                         "checkpoint has 'gelu'"):
        load_checkpoint(tmp_path / "m.npz", other)

# -- the atomic write: permissions, and what a killed save leaves behind (files.py) ------------------


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_checkpoint_gets_the_permissions_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)  # process-wide, restored at once
    try:
        save_checkpoint(tmp_path / "c.npz", Linear(2, 2))
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == mode  # mkstemp would give 0o600 whatever the umask


KILLED_SAVE = """
import os, sys
import numpy as np
from transformer_np.files import atomic_write
with atomic_write(sys.argv[1]) as f:
    np.save(f, np.ones(1000))
    os._exit(9)  # killed in the middle of the save: no clean-up code runs
"""


@pytest.mark.skipif(os.name != "posix", reason="finding dead writers by process id is POSIX only")
def test_a_killed_save_leaves_no_orphan_after_the_next_save(tmp_path):
    import subprocess
    import sys

    from notes_labels import ROOT

    path = tmp_path / "c.npz"
    save_checkpoint(path, Linear(2, 2), step=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)], env=env).returncode == 9
    orphans = [p.name for p in tmp_path.iterdir() if p.name != "c.npz"]
    assert len(orphans) == 1 and orphans[0].startswith(".c.npz.") and orphans[0].endswith(".tmp")
    assert load_checkpoint(path, Linear(2, 2))["step"] == 1  # the old checkpoint is intact
    live = tmp_path / f".c.npz.{os.getppid()}-0000.tmp"  # a writer that still runs (our parent): kept
    live.write_bytes(b"")
    save_checkpoint(path, Linear(2, 2), step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.npz", live.name])
    assert load_checkpoint(path, Linear(2, 2))["step"] == 2
