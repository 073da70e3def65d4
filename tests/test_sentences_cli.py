"""The attend and embed commands (transformer_np/sentences.py): what they print and save with
the pretrained encoder, and their refusals in one line, exit status 2, with or without it."""

import subprocess
import sys

import numpy as np
import pytest

from transformer_np import pretrained
from transformer_np.__main__ import main
from transformer_np.sentences import strongest_keys

IT = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def installed():
    try:
        pretrained.minilm_folder()
    except pretrained.PretrainedMissing as error:
        pytest.skip(str(error))


def _one_line_refusal(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "expected" in err and "received" in err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("argv, words", [
    (["embed", "only one"], ["at least two sentences", "received 1"]),
    (["embed", "a b", "   "], ["sentence 2", "at least one word"]),
    (["attend", ""], ["sentence", "at least one word"]),
    (["attend", "x", "--out", "/proc/no/such/dir/a.png"], ["--out", "can be written"]),
])
def test_mistakes_before_loading_anything(capsys, argv, words):
    _one_line_refusal(capsys, argv, *words)


def test_without_the_extra_the_commands_say_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    _one_line_refusal(capsys, ["embed", "a", "b"], 'pip install -e ".[pretrained]"')
    _one_line_refusal(capsys, ["attend", "a", "--no-plot"], 'pip install -e ".[pretrained]"')


def test_mistakes_after_loading(installed, capsys):
    _one_line_refusal(capsys, ["attend", "x", "--layer", "6", "--no-plot"], "--layer", "0 .. 5", "'6'")
    _one_line_refusal(capsys, ["attend", "x", "--layer", "-1", "--no-plot"], "--layer")
    _one_line_refusal(capsys, ["attend", " ".join(["word"] * 300), "--no-plot"], "at most 256 word pieces", "302")


def test_attend_prints_where_each_token_looks_and_saves_the_heatmaps(installed, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "it.png"
    assert main(["attend", IT, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if "->" in line]
    assert len(lines) == 16  # [CLS], 14 word pieces, [SEP]
    assert any(line.strip().startswith("'it' ->") for line in lines)
    assert out.exists() and out.stat().st_size > 10_000


def test_embed_prints_every_pair(installed, capsys):
    assert main(["embed", "A man is eating food.", "Someone is having a meal.", "The sky is blue."]) == 0
    text = capsys.readouterr().out
    pairs = {line.split()[0] + line.split()[2]: float(line.split()[3]) for line in text.splitlines() if " - " in line}
    assert set(pairs) == {"[1][2]", "[1][3]", "[2][3]"}
    assert pairs["[1][2]"] > 0.5 > pairs["[1][3]"]  # the two meals are close, the sky is not


def test_a_real_process_shows_no_traceback():
    done = subprocess.run([sys.executable, "-m", "transformer_np", "embed", "one"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_strongest_keys_skips_specials_and_itself():
    tokens = ["[CLS]", "a", "b", "[SEP]"]
    w = np.zeros((2, 4, 4))
    w[:, :, 0] = 0.7  # every query looks mostly at [CLS] ...
    w[1, 1, 2] = 0.3  # ... but head 1 sends "a" to "b"
    w[0, 1, 1] = 0.3
    rows = strongest_keys(w, tokens)
    assert rows[1][1] == 0 and rows[1][3] == (1, 2, 0.3)
