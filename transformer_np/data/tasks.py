"""Toy tasks with integer tokens: copy, reverse, sort and multi-digit addition.

Encoder-decoder form (``copy_task``, ``reverse_task``, ``sort_task``, ``addition_task``):
each returns ``(sources, targets)``, two lists of 1-D int64 arrays of token ids laid out as in
``symbols.py``: content value k is token id k + 3, ids 0, 1, 2 are PAD, BOS, EOS (never
produced here; ``batching.make_seq2seq_batch`` adds BOS/EOS and padding).

Decoder-only (GPT) form, as in minGPT: source and target are written one after the other,
the model reads ``x = (src + tgt)[:-1]`` and predicts ``y = (src + tgt)[1:]``, and the first
len(src) - 1 targets (predictions of the source itself) are ``IGNORE_INDEX`` (-1): the loss is
taken on the answer only. Tokens are the content values 0 .. n-1, no special symbols.

Held-out data. A sequence belongs to the "test" split when the CRC-32 of its content values
is divisible by ``HELD_OUT_EVERY`` (4), otherwise to "train". The split of a sequence is thus
fixed by the sequence alone, so ``split="train"`` and ``split="test"`` never share a source,
whatever the seeds and sizes (the test set is about 1/4 of the possible sources). The one
exception: a single symbol is always "train". There are only ten of them, and a length-1 source
held out would be a length that symbol never shows in training, a test of something the
model was never given the chance to learn. ``split=None``
uses every sequence. ``exclude`` (a set of tuples of source ids, see ``as_keys``) skips given
sources, e.g. to keep a validation set out of the training data.

Everything is drawn from the numpy Generator passed as ``rng``: the same seed gives the same data.
"""

import zlib

import numpy as np

from .batching import shifted_batch
from ..validate import check_generator, check_int
from .symbols import IGNORE_INDEX, NUM_SPECIAL

HELD_OUT_EVERY = 4
SPLITS = (None, "train", "test")

ADDITION_PLUS = NUM_SPECIAL + 10  # token id of "+"; the digits 0..9 are ids 3..12
ADDITION_VOCAB_SIZE = NUM_SPECIAL + 11  # PAD, BOS, EOS, ten digits, "+"


def split_of(values):
    """``"test"`` or ``"train"``: the held-out split that the content values ``values`` belong to."""
    if len(values) < 2:
        return "train"  # every single symbol is seen in training (module docstring)
    key = ",".join(str(int(v)) for v in values).encode()
    return "test" if zlib.crc32(key) % HELD_OUT_EVERY == 0 else "train"


def as_keys(sequences):
    """The set of tuples of ids of ``sequences``, the form ``exclude`` expects."""
    return {tuple(int(v) for v in s) for s in sequences}


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, received {split!r}")


def _draw_pairs(rng, n_examples, draw, split, exclude, max_tries_per_example=1000):
    """Call ``draw(rng) -> (src_values, tgt_values)`` until ``n_examples`` pairs pass the filters.

    A pair is kept when its source is in ``split`` and its source ids are not in ``exclude``.
    Returns two lists of int64 id arrays (values + NUM_SPECIAL).
    """
    check_generator(rng)
    n_examples = check_int(n_examples, "n_examples")
    _check_split(split)
    sources, targets = [], []
    for _ in range(max_tries_per_example * n_examples):
        src, tgt = draw(rng)
        if split is not None and split_of(src) != split:
            continue
        src_ids = np.asarray(src, dtype=np.int64) + NUM_SPECIAL
        if exclude and tuple(src_ids.tolist()) in exclude:
            continue
        sources.append(src_ids)
        targets.append(np.asarray(tgt, dtype=np.int64) + NUM_SPECIAL)
        if len(sources) == n_examples:
            return sources, targets
    raise RuntimeError(
        f"expected {n_examples} examples, found only {len(sources)} in {max_tries_per_example * n_examples} "
        f"draws: the split {split!r} and exclude set leave too few possible sources"
    )


def _sequence_task(rng, n_examples, num_symbols, min_len, max_len, split, exclude, transform):
    num_symbols = check_int(num_symbols, "num_symbols")
    min_len = check_int(min_len, "min_len")
    max_len = check_int(max_len, "max_len")
    if max_len < min_len:
        raise ValueError(f"max_len: expected an integer >= min_len = {min_len}, received {max_len}")

    def draw(rng):
        values = rng.integers(0, num_symbols, size=int(rng.integers(min_len, max_len + 1)))
        return values, transform(values)

    return _draw_pairs(rng, n_examples, draw, split, exclude)


def copy_task(rng, n_examples, num_symbols=10, min_len=1, max_len=10, split=None, exclude=None):
    """Copy: target = source. Lengths uniform in [min_len, max_len], symbols uniform in ids 3..3+n-1.

    Returns (sources, targets), lists of ``n_examples`` 1-D int64 arrays.
    """
    return _sequence_task(rng, n_examples, num_symbols, min_len, max_len, split, exclude, lambda v: v.copy())


def reverse_task(rng, n_examples, num_symbols=10, min_len=1, max_len=10, split=None, exclude=None):
    """Reverse: target = source read backwards. Arguments and result as ``copy_task``."""
    return _sequence_task(rng, n_examples, num_symbols, min_len, max_len, split, exclude, lambda v: v[::-1].copy())


def sort_task(rng, n_examples, num_symbols=10, min_len=1, max_len=10, split=None, exclude=None):
    """Sort: target = source in ascending order. Arguments and result as ``copy_task``."""
    return _sequence_task(rng, n_examples, num_symbols, min_len, max_len, split, exclude, np.sort)


def digits(number, width):
    """The decimal digits of ``number``, zero-padded to ``width``, most significant first (int64)."""
    return np.array([int(c) for c in f"{int(number):0{width}d}"], dtype=np.int64)


def addition_task(rng, n_examples, n_digits=3, split=None, exclude=None, reverse_target=True):
    """Addition a + b with a, b uniform in [0, 10^n_digits).

    Source: the n_digits digits of a (zero-padded, most significant first), "+", the digits of
    b: 2*n_digits + 1 tokens. Target: the n_digits + 1 digits of a + b, zero-padded, LEAST
    significant first when ``reverse_target`` (the default, as minGPT's adder: each digit then
    needs only two source digits and the carry out of the digits already written), most
    significant first otherwise.
    Token ids: digit d is id 3 + d, "+" is ``ADDITION_PLUS`` (13); ``ADDITION_VOCAB_SIZE`` = 14.
    """
    n_digits = check_int(n_digits, "n_digits")
    plus = ADDITION_PLUS - NUM_SPECIAL

    def draw(rng):
        a, b = (int(v) for v in rng.integers(0, 10**n_digits, size=2))
        total = digits(a + b, n_digits + 1)
        src = np.concatenate([digits(a, n_digits), [plus], digits(b, n_digits)])
        return src, total[::-1] if reverse_target else total

    return _draw_pairs(rng, n_examples, draw, split, exclude)


TASKS = {"copy": copy_task, "reverse": reverse_task, "sort": sort_task, "addition": addition_task}


# -- the Annotated Transformer's copy task ---------------------------------------------------------


def annotated_copy_data(rng, batch_size, length=10, vocab=11):
    """(B, length) int64 array as in the Annotated Transformer's ``data_gen``.

    Its convention differs from ``symbols.py``: id 0 is padding (none occurs here), the data
    symbols are 1..vocab-1 drawn uniformly, and the first column is set to 1, which doubles as
    the start symbol (greedy decoding starts from 1). The same array is source and target.
    """
    check_generator(rng)
    batch_size = check_int(batch_size, "batch_size")
    length, vocab = check_int(length, "length", 2), check_int(vocab, "vocab", 2)
    data = rng.integers(1, vocab, size=(batch_size, length), dtype=np.int64)
    data[:, 0] = 1
    return data


def annotated_copy_batch(rng, batch_size, length=10, vocab=11):
    """A ``Seq2SeqBatch`` of the Annotated Transformer's copy task (V=11, length 10 by default).

    src = data (B, length); tgt_in = data[:, :-1] and tgt_out = data[:, 1:] (B, length-1);
    masks from ids != 0; n_tokens = B * (length - 1). See ``annotated_copy_data``.
    """
    data = annotated_copy_data(rng, batch_size, length, vocab)
    return shifted_batch(data, data, pad=0)


# -- decoder-only (GPT) form -------------------------------------------------------------------------


def gpt_example(src, tgt):
    """(x, y), each of length len(src) + len(tgt) - 1: x = (src+tgt)[:-1], y = (src+tgt)[1:],
    with y[:len(src)-1] = IGNORE_INDEX so that only the answer tgt carries loss."""
    seq = np.concatenate([np.asarray(src, dtype=np.int64), np.asarray(tgt, dtype=np.int64)])
    x, y = seq[:-1].copy(), seq[1:].copy()
    y[: len(src) - 1] = IGNORE_INDEX
    return x, y


def sort_gpt_example(rng, length=6, num_digits=3, split="train"):
    """One example of minGPT's sort task ("gpt-nano" demo): x, y of length 2*length - 1.

    As minGPT's SortDataset: draw ``length`` digits in 0..num_digits-1; half of the time
    (rng.random() < 0.5) redraw when more than length // 2 distinct digits occur, to get more
    repeats; keep the draw when it is in ``split``; then the sequence is followed by its sorted
    version and ``gpt_example`` makes x and y (y[:length-1] = -1). minGPT decides the split with
    Python's ``hash`` (salted per process); here ``split_of`` (CRC-32, about 1/4 test) makes it
    the same in every run.
    """
    check_generator(rng)
    length, num_digits = check_int(length, "length", 2), check_int(num_digits, "num_digits")
    _check_split(split)
    for _ in range(100_000):
        inp = rng.integers(0, num_digits, size=length, dtype=np.int64)
        if rng.random() < 0.5 and len(np.unique(inp)) > length // 2:
            continue
        if split is None or split_of(inp) == split:
            return gpt_example(inp, np.sort(inp))
    raise RuntimeError(f"no sequence of length {length} over {num_digits} digits found in split {split!r}")


def sort_gpt_batch(rng, batch_size, length=6, num_digits=3, split="train"):
    """(x, y), each (B, 2*length - 1) int64: ``batch_size`` independent ``sort_gpt_example``s."""
    batch_size = check_int(batch_size, "batch_size")
    pairs = [sort_gpt_example(rng, length, num_digits, split) for _ in range(batch_size)]
    return np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs])


def addition_gpt_batch(rng, batch_size, n_digits=2, split="train"):
    """(x, y), each (B, 3*n_digits), of minGPT's adder: tokens are digits 0..9 (vocabulary 10).

    The sequence is the n_digits digits of a, those of b (no "+"), then the n_digits + 1 digits
    of a + b reversed (least significant first); y ignores the first 2*n_digits - 1 positions.
    The split is that of ``addition_task`` (decided by the source "a+b"); minGPT holds out a
    random part of all pairs instead.
    """
    batch_size = check_int(batch_size, "batch_size")
    sources, targets = addition_task(rng, batch_size, n_digits, split=split)
    plus = ADDITION_PLUS - NUM_SPECIAL
    values = [(s - NUM_SPECIAL, t - NUM_SPECIAL) for s, t in zip(sources, targets)]
    pairs = [gpt_example(s[s != plus], t) for s, t in values]  # the digits of a and b, then of a + b
    return np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs])
