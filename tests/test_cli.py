"""The command line: train (with checkpoints and an exact --resume) and a short demo."""

import re

import pytest

from transformer_np.__main__ import main

TINY = ["--steps", "12", "--batch-size", "8", "--seed", "3", "--quiet", "--eval-every", "100"]


def final_line(text, task):
    (line,) = [l for l in text.splitlines() if l.startswith(f"{task}: ")]
    return line


def test_train_prints_the_final_metric_and_resume_reproduces_it(tmp_path, capsys):
    assert main(["train", "--task", "copy", *TINY, "--checkpoint", str(tmp_path / "c-{step}.npz"),
                 "--checkpoint-every", "6"]) == 0
    straight = final_line(capsys.readouterr().out, "copy")
    match = re.match(r"copy: exact_match (\d\.\d{4}) \(loss [\d.e-]+, token_accuracy [\d.e-]+\) at step 12, ", straight)
    assert match, straight
    assert 0.0 <= float(match.group(1)) <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-12.npz", "c-6.npz"]

    assert main(["train", "--resume", str(tmp_path / "c-6.npz"), "--quiet", "--checkpoint",
                 str(tmp_path / "resumed.npz")]) == 0
    out = capsys.readouterr().out
    assert "resumed copy from" in out and "at step 6 of 12" in out
    resumed = final_line(out, "copy")
    assert resumed.rsplit(",", 1)[0] == straight.rsplit(",", 1)[0]  # same numbers; only the time differs
    assert (tmp_path / "resumed.npz").exists()


def test_resume_refuses_other_settings(tmp_path, capsys):
    assert main(["train", "--task", "reverse", *TINY, "--checkpoint", str(tmp_path / "r.npz")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r.npz"), "--lr", "0.1"]) == 2
    assert "expected no other settings, received --lr" in capsys.readouterr().err


def test_train_rejects_an_unknown_task(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "juggle"])
    assert "invalid choice: 'juggle'" in capsys.readouterr().err


def test_demo_reports_accuracy_examples_and_saves_a_heatmap(tmp_path, capsys):
    out_png = tmp_path / "figs" / "attention.png"
    assert main(["demo", "--steps", "40", "--quiet", "--out", str(out_png)]) == 0
    out = capsys.readouterr().out
    accuracy = re.search(r"exact match on 1000 held-out sequences: (\d+\.\d)%", out)
    assert accuracy and 0.0 <= float(accuracy.group(1)) <= 100.0
    examples = [l for l in out.splitlines() if " -> " in l]
    assert 4 <= len(examples) <= 7 and all(l.rstrip().endswith("ok") or "WRONG, expected" in l for l in examples)
    if "matplotlib is not installed" in out:
        pytest.skip("matplotlib is not installed: the heatmap PNG was not checked")
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
