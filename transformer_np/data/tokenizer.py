"""CharTokenizer: one token per character, ids = positions in a sorted character list.

    tok = CharTokenizer.from_text(text)     vocabulary: the sorted distinct characters of text
    ids = tok.encode("To be")                1-D int64 array
    tok.decode(ids) == "To be"

The tokenizer is nothing but its character list, so it is saved as JSON (``to_dict`` /
``from_dict``, ``save`` / ``load``), never pickled.
"""

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write


class CharTokenizer:
    """Character-level tokenizer; ``chars[i]`` is the character of token id i."""

    def __init__(self, chars):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"chars: expected single characters, received {bad[0]!r}")
        if len(set(chars)) != len(chars) or not chars:
            raise ValueError(f"chars: expected a non-empty list of distinct characters, received {len(chars)} "
                             f"entries of which {len(set(chars))} are distinct")
        self.chars = chars
        self._char_array = np.array(chars)
        # encode looks characters up by code point: sorted code points and the id of each
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        self._order = np.argsort(codes).astype(np.int64)
        self._codes = codes[self._order]

    @classmethod
    def from_text(cls, text):
        """The tokenizer whose vocabulary is the sorted distinct characters of ``text``."""
        if not text:
            raise ValueError("text: expected a non-empty string, received ''")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        """``text`` (a str of length N) -> (N,) int64 ids. An unknown character is a ValueError naming it."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        where = np.minimum(np.searchsorted(self._codes, codes), self.vocab_size - 1)
        unknown = np.flatnonzero(self._codes[where] != codes)
        if unknown.size:
            i = int(unknown[0])
            raise ValueError(
                f"unknown character {text[i]!r} (U+{ord(text[i]):04X}) at position {i}: expected one of "
                f"the {self.vocab_size} characters of the vocabulary"
            )
        return self._order[where]

    def decode(self, ids):
        """(N,) integer ids -> str of length N. Ids outside [0, vocab_size) are a ValueError."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids: expected a 1-D integer array, received {ids.dtype} of shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(
                f"ids: expected values in [0, {self.vocab_size}), received values in [{ids.min()}, {ids.max()}]"
            )
        return "".join(self._char_array[ids].tolist())

    # -- saving: a plain, JSON-able description -------------------------------------------------
    def to_dict(self):
        return {"type": "char", "chars": list(self.chars)}

    @classmethod
    def from_dict(cls, state):
        if not isinstance(state, dict) or state.get("type") != "char" or "chars" not in state:
            raise ValueError(f"state: expected {{'type': 'char', 'chars': [...]}}, received {state!r:.80}")
        return cls(state["chars"])

    def save(self, path):
        """Write ``to_dict()`` as JSON to ``path`` atomically (temporary file, then rename)."""
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path):
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
