"""The WordPiece tokenizer (transformer_np/data/wordpiece.py) on a small vocabulary written
here: BERT's basic tokenizer (lower case, accents, punctuation, CJK, control characters),
greedy longest-match-first with ##, [UNK], specials, truncation, pairs and padded batches.
The comparison with Hugging Face's tokenizer on the real vocabulary is in test_pretrained.py."""

import numpy as np
import pytest

from transformer_np.data.wordpiece import WordPiece, basic_tokenize

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "anim", "##al", "##s", "un", "##aff", "##able",
         "cafe", ",", ".", "!", "'", "t", "didn", "中", "文", "$", "1", "##0", "##00", "a", "b", "c", "d"]


@pytest.fixture
def tok():
    return WordPiece(VOCAB)


def test_basic_tokenizer():
    assert basic_tokenize("The Animal didn't!") == ["the", "animal", "didn", "'", "t", "!"]
    assert basic_tokenize("Café  NAÏVE\tx") == ["cafe", "naive", "x"]  # accents stripped, any whitespace
    assert basic_tokenize("中文ab") == ["中", "文", "ab"]  # every CJK ideograph alone
    assert basic_tokenize("a\x00b\x07c\ufffdd") == ["abcd"]  # control characters and U+FFFD dropped
    assert basic_tokenize("$1.5 `x`") == ["$", "1", ".", "5", "`", "x", "`"]  # ASCII symbols are punctuation
    assert basic_tokenize("ΟΔΟΣ") == ["οδοσ"]  # per character: no final sigma
    assert basic_tokenize("Café", lower_case=False) == ["Café"]


def test_greedy_longest_match_first(tok):
    assert tok.wordpiece("animals") == ["anim", "##al", "##s"]
    assert tok.wordpiece("unaffable") == ["un", "##aff", "##able"]
    assert tok.wordpiece("1000") == ["1", "##00", "##0"]  # longest first, not the fewest pieces
    assert tok.wordpiece("animx") == ["[UNK]"]  # one uncovered piece: the whole word is unknown
    assert tok.wordpiece("a" * 101) == ["[UNK]"]


def test_special_tokens_written_in_the_text_stay_whole(tok):
    assert tok.tokenize("the [MASK] animals[SEP]cafe [mask]") == [
        "the", "[MASK]", "anim", "##al", "##s", "[SEP]", "cafe", "[UNK]", "[UNK]", "[UNK]"]  # [mask]: [ mask ]


def test_encode_with_specials_and_truncation(tok):
    ids = tok.encode("The animals!")
    assert tok.tokens(ids) == ["[CLS]", "the", "anim", "##al", "##s", "!", "[SEP]"]
    assert tok.tokens(tok.encode("The animals!", max_len=4)) == ["[CLS]", "the", "anim", "[SEP]"]
    assert tok.decode(ids) == "the animals !"
    with pytest.raises(ValueError, match="max_len: expected at least 2"):
        tok.encode("the", max_len=1)


def test_pairs_get_token_types_and_longest_first_truncation(tok):
    ids, types = tok.encode_with_types("a b c d", "a b", max_len=8)
    assert tok.tokens(ids) == ["[CLS]", "a", "b", "c", "[SEP]", "a", "b", "[SEP]"]
    assert types.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


def test_pair_lengths():
    from transformer_np.data.wordpiece import pair_lengths

    assert pair_lengths(3, 4, 10) == (3, 4)  # both fit
    assert pair_lengths(3, 20, 10) == (3, 7)  # the short part whole, the long one fills the rest
    assert pair_lengths(20, 3, 10) == (7, 3)
    assert pair_lengths(14, 21, 21) == (10, 11)  # both too long for that: halves, the odd place to the longer
    assert pair_lengths(21, 14, 21) == (11, 10)


def test_batch_pads_and_masks(tok):
    batch = tok.batch(["the animal", "a b c d the cafe ."])
    assert batch.ids.shape == batch.attention_mask.shape == batch.token_type_ids.shape == (2, 9)
    assert batch.lengths.tolist() == [5, 9]
    assert batch.ids[0, 5:].tolist() == [tok.pad_id] * 4 and not batch.attention_mask[0, 5:].any()
    assert batch.attention_mask[1].all() and batch.ids.dtype == np.int64 and batch.attention_mask.dtype == bool


def test_errors(tok):
    with pytest.raises(ValueError, match=r"without \[MASK\]"):
        WordPiece(VOCAB[:4] + VOCAB[5:])
    with pytest.raises(TypeError, match="text: expected a str, received int"):
        tok.tokenize(3)
    with pytest.raises(ValueError, match="texts: expected a non-empty list of strings"):
        tok.batch("one string")
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 29\), received 40"):
        tok.tokens([1, 40])


def test_from_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    assert WordPiece.from_file(path).vocab == VOCAB
