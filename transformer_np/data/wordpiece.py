"""WordPiece: BERT's tokenizer, read from a model's vocab.txt (one token a line, id = line number).

    tok = WordPiece.from_file("vocab.txt")              uncased, as bert-base-uncased / MiniLM
    tok.tokenize("Héllo, world!")  -> ['hello', ',', 'world', '!']
    tok.encode("The animal ...")   -> [CLS] ... [SEP] ids, 1-D int64
    batch = tok.batch(["a sentence", "another, longer sentence"], max_len=256)
    batch.ids, batch.attention_mask, batch.token_type_ids   (B, T) each, padded with [PAD]

Two stages, as in Google's BERT:

1. the basic tokenizer: drop control characters and U+FFFD, turn every kind of whitespace into
   a space, put spaces around every CJK ideograph (each becomes a token of its own), lower-case
   and strip accents (NFD, then drop the combining marks), split off every punctuation
   character (ASCII symbols such as $ and ` count as punctuation, as do Unicode P* characters);
2. WordPiece on each word: greedy longest-match-first against the vocabulary, every piece
   after the first written with the "##" prefix; a word that cannot be covered, or is longer
   than 100 characters, becomes [UNK] as a whole.

A special token written in the text ("a [MASK] here") is kept as that token, as Hugging Face's
tokenizer does.

Encoding adds [CLS] in front and [SEP] after (a pair: [CLS] a [SEP] b [SEP], token types 0 for
the first part and 1 for the second) and truncates to ``max_len`` tokens in all, specials
included (a pair: the shorter part is kept whole if the longer can fill the rest, else each
gets half, ``pair_lengths``).
"""

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS) + ")")
MAX_WORD_CHARS = 100  # a longer "word" is [UNK] without trying (BERT's max_input_chars_per_word)
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip


def is_cjk(ch):
    """A CJK Unified Ideograph (Chinese characters, and the kanji / hanja of Japanese and Korean)."""
    cp = ord(ch)
    return any(low <= cp <= high for low, high in CJK_RANGES)


def is_punctuation(ch):
    """Every non-letter, non-digit, non-space ASCII character, and every Unicode punctuation (P*)."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False  # whitespace, kept as a separator
    return unicodedata.category(ch).startswith("C")


def basic_tokenize(text, lower_case=True):
    """The words and punctuation marks of ``text`` after stage 1 (module docstring)."""
    out = []
    for ch in text:
        if ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
            continue
        if is_whitespace(ch):
            out.append(" ")
        elif is_cjk(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    tokens = []
    for word in "".join(out).split():
        if lower_case:
            word = "".join(c.lower() for c in word)  # per character: no final-sigma rule, as BERT
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        current = []
        for ch in word:
            if is_punctuation(ch):
                if current:
                    tokens.append("".join(current))
                    current = []
                tokens.append(ch)
            else:
                current.append(ch)
        if current:
            tokens.append("".join(current))
    return tokens


def pair_lengths(n1, n2, room):
    """How many tokens of a pair of lengths n1, n2 to keep in ``room`` places ("longest first",
    as Hugging Face's fast tokenizers do it): the shorter part is kept whole if the longer can
    fill the rest; otherwise both get half, the odd place going to the longer part."""
    if n1 + n2 <= room:
        return n1, n2
    swap = n1 > n2
    short, long_ = (n2, n1) if swap else (n1, n2)
    long_ = max(short, room - short)
    if short + long_ > room:
        short, long_ = room // 2, room // 2 + room % 2
    return (long_, short) if swap else (short, long_)


@dataclass(frozen=True)
class EncodedBatch:
    """Token ids (B, T) int64 padded with [PAD]; attention_mask (B, T) bool, True = a real token;
    token_type_ids (B, T) int64; lengths (B,): real tokens per row, [CLS] and [SEP] included."""

    ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray


class WordPiece:
    """BERT's WordPiece tokenizer over ``vocab`` (a list of tokens, id = index)."""

    def __init__(self, vocab, lower_case=True):
        vocab = list(vocab)
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"vocab: expected distinct tokens, received {len(vocab) - len(set(vocab))} repeated")
        missing = [s for s in SPECIALS if s not in vocab]
        if missing:
            raise ValueError(f"vocab: expected the special tokens {', '.join(SPECIALS)}, received a vocabulary "
                             f"without {', '.join(missing)}")
        self.vocab = vocab
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.lower_case = bool(lower_case)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (self.ids[s] for s in SPECIALS)

    @classmethod
    def from_file(cls, path, lower_case=True):
        """The tokenizer of a vocab.txt: one token a line, UTF-8, id = line number (from 0)."""
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\n").rstrip("\r") for line in f]
        while vocab and vocab[-1] == "":
            vocab.pop()
        return cls(vocab, lower_case)

    def __len__(self):
        return len(self.vocab)

    # -- text -> tokens -------------------------------------------------------------------------
    def wordpiece(self, word):
        """The pieces of one word: greedy longest match first, "##" on every piece but the first."""
        if len(word) > MAX_WORD_CHARS:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    break
                end -= 1
            else:
                return ["[UNK]"]  # no prefix of the rest is in the vocabulary
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text):
        """Every WordPiece token of ``text``. A special token written in the text ("[MASK]", "[SEP]"),
        exactly so, stays one token, as Hugging Face's tokenizer keeps it; no [CLS]/[SEP] is added."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, received {type(text).__name__}")
        tokens = []
        for i, part in enumerate(SPECIAL_SPLIT.split(text)):
            if i % 2:  # the split keeps the specials at odd positions
                tokens.append(part)
            else:
                tokens += [piece for word in basic_tokenize(part, self.lower_case) for piece in self.wordpiece(word)]
        return tokens

    def encode(self, text, pair=None, max_len=512):
        """1-D int64 ids of [CLS] text [SEP] (or [CLS] text [SEP] pair [SEP]), at most ``max_len``
        in all; ``encode_with_types`` also returns the token types."""
        return self.encode_with_types(text, pair, max_len)[0]

    def encode_with_types(self, text, pair=None, max_len=512):
        """(ids, token_type_ids), both 1-D int64 (module docstring)."""
        first = [self.ids[t] for t in self.tokenize(text)]
        second = None if pair is None else [self.ids[t] for t in self.tokenize(pair)]
        room = max_len - (2 if second is None else 3)
        if room < 0 or (second is not None and room < 0):
            raise ValueError(f"max_len: expected at least {2 if second is None else 3} (room for the special "
                             f"tokens), received {max_len}")
        if second is None:
            first = first[:room]
        else:
            n1, n2 = pair_lengths(len(first), len(second), room)
            first, second = first[:n1], second[:n2]
        ids = [self.cls_id, *first, self.sep_id]
        types = [0] * len(ids)
        if second is not None:
            ids += [*second, self.sep_id]
            types += [1] * (len(second) + 1)
        return np.array(ids, dtype=np.int64), np.array(types, dtype=np.int64)

    def batch(self, texts, pairs=None, max_len=512):
        """Encode ``texts`` (and ``pairs``, one per text, or None) and pad them to the longest: an
        EncodedBatch with ids, attention_mask, token_type_ids (B, T) and lengths (B,)."""
        if isinstance(texts, str) or not len(texts):
            raise ValueError(f"texts: expected a non-empty list of strings, received {texts!r:.60}")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"pairs: expected one per text ({len(texts)}), received {len(pairs)}")
        encoded = [self.encode_with_types(t, None if pairs is None else pairs[i], max_len) for i, t in enumerate(texts)]
        lengths = np.array([len(ids) for ids, _ in encoded], dtype=np.int64)
        T = int(lengths.max())
        ids = np.full((len(texts), T), self.pad_id, dtype=np.int64)
        types = np.zeros((len(texts), T), dtype=np.int64)
        for b, (row, row_types) in enumerate(encoded):
            ids[b, : len(row)], types[b, : len(row)] = row, row_types
        mask = np.arange(T)[None, :] < lengths[:, None]
        return EncodedBatch(ids, mask, types, lengths)

    # -- ids -> text ------------------------------------------------------------------------------
    def tokens(self, ids):
        """The token string of every id (for plot labels): [CLS], 'anim', '##al', ..."""
        ids = np.asarray(ids).reshape(-1)
        bad = [int(i) for i in ids if not 0 <= int(i) < len(self.vocab)]
        if bad:
            raise ValueError(f"ids: expected values in [0, {len(self.vocab)}), received {bad[0]}")
        return [self.vocab[int(i)] for i in ids]

    def decode(self, ids, skip_special=True):
        """Text from ids: pieces joined, "##" glued to the piece before; specials left out."""
        words = []
        for token in self.tokens(ids):
            if skip_special and token in SPECIALS:
                continue
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)
