"""The command line: train (with checkpoints and an exact --resume), a short demo, and sample and
translate reading the checkpoints that train writes."""

import json
import re

import numpy as np
import pytest

from transformer_np.__main__ import main
from transformer_np.checkpoint import load_config
from transformer_np.data import CharTokenizer, load_shakespeare

from helpers import train_tiny

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
    assert "expected no other settings than --steps, received --lr" in capsys.readouterr().err


def test_resume_extends_a_finished_run_and_keeps_the_checkpoint_it_resumed_from(tmp_path, capsys):
    first, longer = tmp_path / "r.npz", tmp_path / "r16.npz"
    assert main(["train", "--task", "reverse", *TINY, "--checkpoint", str(first)]) == 0
    before = first.read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(first), "--steps", "16", "--quiet", "--checkpoint", str(longer)]) == 0
    out = capsys.readouterr().out
    assert "resumed reverse from" in out and "at step 12 of 16, extended from 12 steps" in out
    assert "at step 16," in final_line(out, "reverse") and f"checkpoint: {longer}" in out
    assert first.read_bytes() == before  # untouched
    with np.load(longer, allow_pickle=False) as archive:
        assert int(archive["step"]) == 16 and json.loads(str(archive["config"]))["steps"] == 16
        assert archive["extra/history/step"].tolist() == list(range(1, 17))
    # Over itself only when asked:
    assert main(["train", "--resume", str(longer), "--steps", "18", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--resume", str(longer), "--steps", "18", "--quiet", "--overwrite"]) == 0
    with np.load(longer, allow_pickle=False) as archive:
        assert int(archive["step"]) == 18


def test_the_last_checkpoint_of_a_run_holds_its_final_evaluation(tmp_path, capsys):
    path = tmp_path / "c-{step}.npz"
    assert main(["train", "--task", "copy", *TINY, "--checkpoint", str(path), "--checkpoint-every", "6"]) == 0
    with np.load(tmp_path / "c-12.npz", allow_pickle=False) as archive:
        assert archive["extra/history/val_step"].tolist() == [12]
        assert archive["extra/history/val_exact_match"].size == 1


def test_train_rejects_an_unknown_task(capsys):
    assert main(["train", "--task", "juggle"]) == 2
    err = capsys.readouterr().err
    assert "argument --task: expected one of " in err and "received 'juggle'" in err and len(err.splitlines()) == 1


def test_help_exits_0(capsys):
    assert main(["train", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out


def test_the_demo_does_not_write_into_the_readmes_figures(tmp_path, monkeypatch):
    from transformer_np.__main__ import build_parser

    assert build_parser().parse_args(["demo"]).out == "demo_attention.png"  # the current folder
    assert build_parser().parse_args(["plot", "--all"]).out is None  # figures/, or figures-quick/ with --quick


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


# -- sample and translate: decoding the checkpoints that train writes ------------------------------


@pytest.fixture(scope="module")
def reverse_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("reverse") / "reverse.npz"
    assert main(["train", "--task", "reverse", *TINY, "--checkpoint", str(path)]) == 0
    return path


def test_translate_prints_each_source_its_output_and_score(reverse_checkpoint, capsys):
    capsys.readouterr()
    args = ["translate", "--checkpoint", str(reverse_checkpoint), "--input", "3 1 4 1 5", "--input", "2 7"]
    assert main(args + ["--beam-size", "3", "--length-penalty", "0.6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("3 1 4 1 5 -> ") and lines[1].startswith("2 7 -> ")
    for line in lines:
        match = re.fullmatch(r"[\d ]+ -> ((?:\d( \d)*)?)   \(score (-\d+\.\d{4})\)", line)
        assert match, line
        assert float(match.group(3)) <= 0.0  # a log-probability over a positive length penalty
    assert main(args + ["--beam-size", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # deterministic
    assert main(args + ["--beam-size", "3", "--no-cache"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # the cache changes nothing


@pytest.mark.parametrize("extra, message", [
    (["--input", "3 x"], (r"translate: --input: expected symbols in 0 \.\. 9 separated by spaces, e\.g\. "
                          r"\"3 1 4 1 5\", received '3 x'")),
    (["--input", "1 2", "--beam-size", "0"], r"translate: beam_size: expected an integer >= 1, received 0"),
    (["--input", "1 2", "--length-penalty", "-1"], (r"translate: alpha \(the length penalty\): expected a finite "
                                                    r"number >= 0, received -1\.0")),
])
def test_translate_refuses_bad_input_and_settings(reverse_checkpoint, capsys, extra, message):
    assert main(["translate", "--checkpoint", str(reverse_checkpoint), *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_sample_and_translate_refuse_the_other_family(reverse_checkpoint, capsys):
    assert main(["sample", "--checkpoint", str(reverse_checkpoint), "--prompt", "1 2"]) == 2
    assert "sample: expected the checkpoint of a decoder-only recipe (sort-gpt, shakespeare), received one of " \
           "'reverse': use translate" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shakespeare_checkpoint(tmp_path_factory):
    """A one-layer character model (block size 16) trained for 3 steps."""
    return train_tiny(tmp_path_factory.mktemp("shakespeare") / "shakespeare.npz", "shakespeare", 3,
                      n_layers=1, n_heads=2, d_model=16, block_size=16, warmup=1, eval_iters=1)


def test_train_saves_the_tokenizer_and_sample_is_repeatable(shakespeare_checkpoint, capsys):
    with np.load(shakespeare_checkpoint, allow_pickle=False) as archive:
        saved = CharTokenizer.from_dict(json.loads(str(archive["extra/tokenizer"])))
    assert saved.chars == sorted(set(load_shakespeare()))
    assert load_config(shakespeare_checkpoint)["block_size"] == 16
    capsys.readouterr()
    args = ["sample", "--checkpoint", str(shakespeare_checkpoint), "--prompt", "ROMEO:", "--max-new-tokens", "40"]
    assert main(args + ["--seed", "1", "--top-k", "5", "--temperature", "0.9"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40 + 1  # 40 characters and a newline
    assert set(first[:-1]) <= set(saved.chars)
    assert main(args + ["--seed", "1", "--top-k", "5", "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out == first  # the same seed, the same text (past block_size 16: cropped)
    assert main(args + ["--seed", "1", "--top-k", "5", "--temperature", "0.9", "--no-cache"]) == 0
    assert capsys.readouterr().out == first  # the cache changes nothing
    assert main(args + ["--seed", "2", "--top-k", "5", "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out != first


def test_sample_continues_digits_for_sort_gpt(tmp_path, capsys):
    path = train_tiny(tmp_path / "sort.npz", "sort-gpt", 2, n_layers=1, eval_size=10)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(path), "--prompt", "2 0 1 1 0 2", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"2 0 1 1 0 2 -> [012]( [012]){5}\n", out), out  # the answer's length: 6 digits
    assert main(["sample", "--checkpoint", str(path)]) == 2
    assert "sample: sort-gpt reads digits: expected --prompt" in capsys.readouterr().err
def test_sample_refuses_bad_settings_and_prompts(shakespeare_checkpoint, capsys):
    base = ["sample", "--checkpoint", str(shakespeare_checkpoint)]
    for extra, message in [
        (["--top-k", "0"], "sample: top_k: expected an integer >= 1, received 0"),
        (["--top-p", "1.5"], "sample: top_p: expected a probability in (0, 1], received 1.5"),
        (["--temperature", "-1"], "sample: temperature: expected a finite number >= 0 (0 = greedy), received -1.0"),
        (["--prompt", ""], "sample: prompt_ids: expected a non-empty prompt (at least one token), received shape (0,)"),
        (["--prompt", "x" * 17], ("sample: prompt_ids: expected at most block_size=16 tokens (the model's "
                                  "context), received 17")),
        (["--prompt", "ROMEO\u00e9"], "sample: --prompt: unknown character"),
    ]:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err, extra


def test_translate_warns_outside_training_and_names_special_symbols(reverse_checkpoint, capsys):
    from transformer_np.data import BOS, EOS, PAD
    from transformer_np.inference import show_output

    capsys.readouterr()
    long = " ".join(str(i % 10) for i in range(13))
    assert main(["translate", "--checkpoint", str(reverse_checkpoint), "--input", long, "--input", "1 2"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"translate: warning: --input {long!r} has 13 symbols, the model was trained on 1 to 10: "
                            "expect a wrong answer\n")
    assert len(captured.out.splitlines()) == 2
    assert show_output(np.array([3, BOS, 4, PAD, EOS, 5]), {"recipe": "reverse"}) == "0 <bos> 1 <pad>"
    assert show_output(np.array([5, 3, 4, EOS]), {"recipe": "add"}) == "201 (least significant digit first: 102)"
    assert show_output(np.array([5, 13, BOS, EOS]), {"recipe": "add"}) == "2+<bos>"  # no sum to read back


def test_the_command_line_restarts_with_one_blas_thread_unless_chosen(monkeypatch):
    from transformer_np import __main__ as cli

    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda path, argv, env: calls.append((path, list(argv), env)))
    for name in cli.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    cli.one_blas_thread_unless_chosen()
    if cli.os.name != "posix":
        assert calls == []
        return
    (path, argv, env), = calls
    assert argv == list(cli.sys.orig_argv) and all(env[name] == "1" for name in cli.THREAD_VARIABLES)
    calls.clear()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user's choice is kept: no restart
    cli.one_blas_thread_unless_chosen()
    assert calls == []


def test_the_test_suite_runs_with_one_blas_thread_unless_chosen():
    import os

    chosen = os.environ.get("OPENBLAS_NUM_THREADS")
    assert chosen is not None  # conftest.py at the top of the repository sets it before NumPy loads
