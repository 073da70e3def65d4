"""The command line's catalogue of mistakes (issue 10): every one ends with ONE line on stderr that
names the option or file, says what was expected and what was received, and exit status 2;
never a traceback, never a silent substitution, and nothing trained first.

Each case is run through ``main()``; a sample of them also through a real subprocess, where a
traceback would show. Paths in a case are written with placeholders ({rev}: a trained reverse
checkpoint, {gpt}: a trained sort-gpt one, {bad}: a folder of files that are not checkpoints,
{tmp}: an empty folder).
"""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from transformer_np.__main__ import main
from transformer_np.checkpoint import save_checkpoint
from transformer_np.layers import Linear

from helpers import train_tiny
from notes_labels import ROOT

TINY = ["--steps", "4", "--batch-size", "4", "--quiet"]
LONG = " ".join(["1"] * 65)  # more symbols than the toy models' 64 positions

# (id, argv, the words the one line must contain). Every line must also say "expected" and
# "received".
CASES = [
    # -- numbers given to an option ------------------------------------------------------------
    ("train steps -5", ["train", "--task", "copy", "--steps", "-5"], ["--steps", "integer >= 1", "'-5'"]),
    ("train steps 0", ["train", "--task", "copy", "--steps", "0"], ["--steps", "integer >= 1", "'0'"]),
    ("train steps text", ["train", "--task", "copy", "--steps", "many"], ["--steps", "an integer", "'many'"]),
    ("train batch 0", ["train", "--task", "copy", "--batch-size", "0"], ["--batch-size", ">= 1", "'0'"]),
    ("train batch -1", ["train", "--task", "copy", "--batch-size", "-1"], ["--batch-size", ">= 1", "'-1'"]),
    ("train seed -1", ["train", "--task", "copy", "--seed", "-1"], ["--seed", ">= 0", "'-1'"]),
    ("train eval-every 0", ["train", "--task", "copy", "--eval-every", "0"], ["--eval-every", ">= 1", "'0'"]),
    ("train eval-every -2", ["train", "--task", "copy", "--eval-every", "-2"], ["--eval-every", ">= 1"]),
    ("train checkpoint-every 0", ["train", "--task", "copy", "--checkpoint-every", "0"], ["--checkpoint-every"]),
    ("train lr 0", ["train", "--task", "copy", "--lr", "0"], ["--lr", "> 0", "'0'"]),
    ("train lr -1", ["train", "--task", "copy", "--lr", "-1"], ["--lr", "> 0", "'-1'"]),
    ("train lr -1e-3", ["train", "--task", "copy", "--lr", "-1e-3"], ["--lr", "one argument", "--lr=VALUE"]),
    ("train lr=-1e-3", ["train", "--task", "copy", "--lr=-1e-3"], ["--lr", "> 0", "'-1e-3'"]),
    ("train lr nan", ["train", "--task", "copy", "--lr", "nan"], ["--lr", "finite", "'nan'"]),
    ("train lr inf", ["train", "--task", "copy", "--lr", "inf"], ["--lr", "finite", "'inf'"]),
    ("train lr below min_lr", ["train", "--task", "shakespeare", "--lr", "1e-5"], ["'lr'", "min_lr=0.0001", "1e-05"]),
    ("demo steps -5", ["demo", "--steps", "-5"], ["--steps", ">= 1", "'-5'"]),
    ("demo steps 0", ["demo", "--steps", "0"], ["--steps", ">= 1", "'0'"]),
    ("demo seed -1", ["demo", "--seed", "-1"], ["--seed", ">= 0"]),
    ("gradcheck tol -1", ["gradcheck", "--tol", "-1"], ["--tol", "> 0", "'-1'"]),
    ("gradcheck tol 0", ["gradcheck", "--tol", "0"], ["--tol", "> 0"]),
    ("gradcheck tol nan", ["gradcheck", "--tol", "nan"], ["--tol", "finite"]),
    ("translate max-len -3", ["translate", "--checkpoint", "{rev}", "--input", "1", "--max-len", "-3"],
     ["--max-len", ">= 1", "'-3'"]),
    ("translate max-len 0", ["translate", "--checkpoint", "{rev}", "--input", "1", "--max-len", "0"], ["--max-len"]),
    ("translate max-len past the model", ["translate", "--checkpoint", "{rev}", "--input", "1", "--max-len", "100"],
     ["--max-len", "at most 64", "100"]),
    ("translate beam 0", ["translate", "--checkpoint", "{rev}", "--input", "1", "--beam-size", "0"], ["beam_size"]),
    ("sample seed -1", ["sample", "--checkpoint", "{gpt}", "--prompt", "1", "--seed", "-1"], ["--seed", ">= 0"]),
    ("sample max-new-tokens -1", ["sample", "--checkpoint", "{gpt}", "--prompt", "1", "--max-new-tokens", "-1"],
     ["max_new_tokens", ">= 0", "-1"]),
    ("sample top-k 0", ["sample", "--checkpoint", "{gpt}", "--prompt", "1", "--top-k", "0"], ["top_k"]),
    ("sample top-p 0", ["sample", "--checkpoint", "{gpt}", "--prompt", "1", "--top-p", "0"], ["top_p"]),
    ("sample temperature nan", ["sample", "--checkpoint", "{gpt}", "--prompt", "1", "--temperature", "nan"],
     ["temperature"]),
    # -- names and combinations of options -----------------------------------------------------
    ("no command", [], ["expected", "command", "none"]),
    ("unknown command", ["juggle"], ["one of", "'juggle'"]),
    ("train unknown task", ["train", "--task", "juggle"], ["--task", "one of", "'copy'", "'juggle'"]),
    ("train no task", ["train"], ["--task", "--resume", "none"]),
    ("train task and resume", ["train", "--task", "copy", "--resume", "{rev}"], ["--resume", "--task", "both"]),
    ("train stray argument", ["train", "--task", "copy", "5"], ["no further arguments", "5"]),
    ("translate without input", ["translate", "--checkpoint", "{rev}"], ["--input", "none"]),
    ("plot without --all", ["plot"], ["--all", "none"]),
    ("checkpoint-every without checkpoint", ["train", "--task", "copy", "--checkpoint-every", "5"],
     ["--checkpoint-every 5", "--checkpoint PATH", "none"]),
    ("overwrite without resume", ["train", "--task", "copy", "--overwrite"], ["--overwrite", "--resume", "none"]),
    # -- files that are not checkpoints --------------------------------------------------------
    ("resume missing", ["train", "--resume", "{tmp}/missing.npz"], ["missing.npz", "expected a file", "none exists"]),
    ("resume folder", ["train", "--resume", "{tmp}"], ["expected a file", "a folder"]),
    ("resume empty", ["train", "--resume", "{bad}/empty.npz"], ["empty.npz", ".npz archive", "an empty file"]),
    ("resume truncated", ["train", "--resume", "{bad}/truncated.npz"], ["truncated.npz", "truncated or damaged"]),
    ("resume damaged", ["train", "--resume", "{bad}/damaged.npz", "--steps", "6", "--checkpoint", "{tmp}/d.npz"],
     ["damaged.npz", "a truncated or damaged one", "CRC"]),
    ("translate damaged", ["translate", "--checkpoint", "{bad}/damaged.npz", "--input", "1"], ["damaged one", "CRC"]),
    ("resume text", ["train", "--resume", "{bad}/notes.txt"], ["notes.txt", ".npz archive", "another kind"]),
    ("resume npy", ["train", "--resume", "{bad}/array.npy"], ["array.npy", "single .npy array"]),
    ("resume pickle", ["train", "--resume", "{bad}/state.pkl"], ["state.pkl", "a pickle, which is never loaded"]),
    ("resume pickle named npz", ["train", "--resume", "{bad}/pickled.npz"], ["pickled.npz", "never loaded"]),
    ("resume foreign npz", ["train", "--resume", "{bad}/foreign.npz"], ["foreign.npz", "entries", "config, step"]),
    ("resume object arrays", ["train", "--resume", "{bad}/objects.npz", "--steps", "6", "--checkpoint", "{tmp}/o.npz"],
     ["objects.npz", "plain arrays", "Python objects"]),
    ("translate object arrays", ["translate", "--checkpoint", "{bad}/objects.npz", "--input", "1"],
     ["objects.npz", "plain arrays", "Python objects"]),
    ("resume no recipe", ["train", "--resume", "{bad}/layer.npz"], ["layer.npz", "training recipe", "no recipe"]),
    ("resume unknown recipe", ["train", "--resume", "{bad}/juggle.npz"], ["juggle.npz", "unknown recipe 'juggle'"]),
    ("resume bad settings", ["train", "--resume", "{bad}/badsettings.npz"], ["badsettings.npz", "'batch_size'"]),
    ("resume bad config", ["train", "--resume", "{bad}/badconfig.npz"], ["badconfig.npz", "JSON object"]),
    ("resume wrong weights", ["train", "--resume", "{bad}/wrongweights.npz", "--steps", "6", "--checkpoint",
                              "{tmp}/w.npz"], ["wrongweights.npz", "expected the weights", "missing: "]),
    ("sample missing", ["sample", "--checkpoint", "{tmp}/missing.npz"], ["missing.npz", "none exists"]),
    ("sample pickle", ["sample", "--checkpoint", "{bad}/state.pkl"], ["state.pkl", "never loaded"]),
    ("sample truncated", ["sample", "--checkpoint", "{bad}/truncated.npz"], ["truncated or damaged"]),
    ("sample wrong weights", ["sample", "--checkpoint", "{bad}/wrongweights.npz"], ["expected the weights", "missing: "]),
    ("translate empty file", ["translate", "--checkpoint", "{bad}/empty.npz", "--input", "1"], ["an empty file"]),
    ("translate foreign npz", ["translate", "--checkpoint", "{bad}/foreign.npz", "--input", "1"], ["entries"]),
    ("translate no recipe", ["translate", "--checkpoint", "{bad}/layer.npz", "--input", "1"], ["training recipe"]),
    # -- a checkpoint of the wrong kind --------------------------------------------------------
    ("sample an encoder-decoder", ["sample", "--checkpoint", "{rev}", "--prompt", "1 2"],
     ["decoder-only recipe", "'reverse'"]),
    ("translate a GPT", ["translate", "--checkpoint", "{gpt}", "--input", "1"], ["toy tasks", "'sort-gpt'"]),
    # -- resuming ------------------------------------------------------------------------------
    ("resume a finished run", ["train", "--resume", "{rev}"], ["step 4 of 4", "--steps above 4", "none"]),
    ("resume to fewer steps", ["train", "--resume", "{rev}", "--steps", "3"], ["--steps above 4", "--steps 3"]),
    ("resume with other settings", ["train", "--resume", "{rev}", "--lr", "0.1"], ["no other settings", "--lr"]),
    ("resume over itself", ["train", "--resume", "{rev}", "--steps", "6"], ["--checkpoint PATH", "--overwrite",
                                                                            "neither"]),
    ("resume into itself", ["train", "--resume", "{rev}", "--steps", "6", "--checkpoint", "{rev}"],
     ["another file", "the same file"]),
    # -- paths to write ------------------------------------------------------------------------
    ("checkpoint unknown field", ["train", "--task", "copy", *TINY, "--checkpoint", "{tmp}/run-{stp}.npz"],
     ["--checkpoint", "{step}", "'stp'"]),
    ("checkpoint positional field", ["train", "--task", "copy", *TINY, "--checkpoint", "{tmp}/run-{}.npz"],
     ["--checkpoint", "{step}", "IndexError"]),
    ("checkpoint broken brace", ["train", "--task", "copy", *TINY, "--checkpoint", "{tmp}/run-{.npz"],
     ["--checkpoint", "{step}"]),
    ("checkpoint is a folder", ["train", "--task", "copy", *TINY, "--checkpoint", "{tmp}"], ["--checkpoint", "folder"]),
    ("checkpoint under a file", ["train", "--task", "copy", *TINY, "--checkpoint", "{bad}/notes.txt/run.npz"],
     ["--checkpoint", "can be written", "notes.txt is a file"]),
    ("demo out is a folder", ["demo", "--steps", "2", "--quiet", "--out", "{tmp}"], ["--out", "folder"]),
    ("demo out under a file", ["demo", "--steps", "2", "--quiet", "--out", "{bad}/notes.txt/a.png"],
     ["--out", "can be written", "notes.txt is a file"]),
    ("demo experiment into the README's figures", ["demo", "--steps", "2", "--out", "figures/demo_attention.png"],
     ["--out", "the README's figures", "figures/demo_attention.png"]),
    ("plot quick into the README's figures", ["plot", "--all", "--quick", "--out", "figures"],
     ["--out", "the README's figures", "'figures'"]),
    # -- inputs --------------------------------------------------------------------------------
    ("translate symbol out of range", ["translate", "--checkpoint", "{rev}", "--input", "12"], ["0 .. 9", "'12'"]),
    ("translate not numbers", ["translate", "--checkpoint", "{rev}", "--input", "a b"], ["--input", "'a b'"]),
    ("translate blank", ["translate", "--checkpoint", "{rev}", "--input", " "], ["--input", "' '"]),
    ("translate longer than the model", ["translate", "--checkpoint", "{rev}", "--input", LONG],
     ["--input", "at most 64", "65"]),
    ("sample digits expected", ["sample", "--checkpoint", "{gpt}", "--prompt", "x"], ["--prompt", "numbers", "'x'"]),
    ("sample no prompt for digits", ["sample", "--checkpoint", "{gpt}"], ["--prompt"]),
    ("sample token out of range", ["sample", "--checkpoint", "{gpt}", "--prompt", "7"], ["[0, 3)", "[7, 7]"]),
    ("sample prompt longer than the model", ["sample", "--checkpoint", "{gpt}", "--prompt", "1 " * 12],
     ["block_size=11", "12"]),
    ("gradcheck unknown topic", ["gradcheck", "--only", "juggling"], ["--only", "'juggling'"]),
    # -- a checkpoint whose weights are NaN: sampling once printed zeros and exited 0 -------------
    ("sample NaN weights", ["sample", "--checkpoint", "{nangpt}", "--prompt", "1"], ["logits", "NaN"]),
]
SUBPROCESS = {"train steps -5", "resume pickle", "resume truncated", "checkpoint unknown field", "translate a GPT",
              "sample prompt longer than the model", "resume a finished run"}


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """{placeholder: path}: trained checkpoints, files that are not checkpoints, an empty folder."""
    root = tmp_path_factory.mktemp("catalogue")
    rev = root / "rev.npz"
    assert main(["train", "--task", "reverse", *TINY, "--eval-every", "100", "--checkpoint", str(rev)]) == 0
    gpt = train_tiny(root / "gpt.npz", "sort-gpt", 2, n_layers=1, eval_size=10)
    bad, tmp = root / "bad", root / "empty"
    bad.mkdir(), tmp.mkdir()
    (bad / "empty.npz").write_bytes(b"")
    (bad / "truncated.npz").write_bytes(rev.read_bytes()[:5000])
    damaged = bytearray(rev.read_bytes())
    damaged[len(damaged) // 2: len(damaged) // 2 + 64] = bytes(64)  # zeros inside a stored array: a CRC error
    (bad / "damaged.npz").write_bytes(bytes(damaged))
    (bad / "notes.txt").write_text("hello")
    np.save(bad / "array.npy", np.ones(3))
    (bad / "state.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    (bad / "pickled.npz").write_bytes(pickle.dumps({"weights": [1, 2]}))
    np.savez(bad / "foreign.npz", a=np.ones(3))
    with np.load(rev) as archive:  # a real checkpoint, plus an entry of Python objects
        np.savez(bad / "objects.npz", **{k: archive[k] for k in archive.files}, **{"extra/x": np.array([{}])})
    save_checkpoint(bad / "layer.npz", Linear(2, 2))
    save_checkpoint(bad / "juggle.npz", Linear(2, 2), config={"recipe": "juggle"})
    save_checkpoint(bad / "badsettings.npz", Linear(2, 2), config={"recipe": "copy", "batch_size": 0})
    np.savez(bad / "badconfig.npz", config=np.asarray("[1, 2"), step=np.asarray(0))
    config = json.loads(str(np.load(rev)["config"]))
    save_checkpoint(bad / "wrongweights.npz", Linear(2, 2), config=config, step=2)
    with np.load(gpt) as archive:  # the trained GPT with every weight NaN
        entries = {k: archive[k] for k in archive.files}
    np.savez(bad / "nangpt.npz", **{k: np.full_like(v, np.nan) if k.startswith("model/") else v
                                    for k, v in entries.items()})
    return {"rev": str(rev), "gpt": str(gpt), "bad": str(bad), "tmp": str(tmp), "nangpt": str(bad / "nangpt.npz")}


def expand(argv, places):
    out = []
    for a in argv:
        for key, value in places.items():
            a = a.replace("{" + key + "}", value)
        out.append(a)
    return out


def check_refusal(case_id, err, words):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{case_id}: expected one line on stderr, received {err!r}"
    assert "Traceback" not in err
    assert "expected" in lines[0] and "received" in lines[0], f"{case_id}: {lines[0]}"
    for w in words:
        assert w in lines[0], f"{case_id}: expected {w!r} in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("case_id, argv, words", CASES, ids=[c[0] for c in CASES])
def test_every_mistake_is_one_line_and_exit_2(places, capsys, monkeypatch, case_id, argv, words):
    monkeypatch.chdir(ROOT)  # "figures" is the README's folder
    capsys.readouterr()
    assert main(expand(argv, places)) == 2, case_id
    captured = capsys.readouterr()
    check_refusal(case_id, captured.err, words)
    assert "exact_match" not in captured.out  # nothing was trained before the refusal


@pytest.mark.parametrize("case_id", sorted(SUBPROCESS))
def test_no_traceback_from_a_real_process(places, case_id):
    (argv, words) = [(a, w) for i, a, w in CASES if i == case_id][0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "transformer_np", *expand(argv, places)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    check_refusal(case_id, done.stderr, words)
