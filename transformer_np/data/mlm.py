"""BERT's masked-language-model corruption (notes/bert.md, "The masked-language-model objective").

    inputs, targets = mask_tokens(ids, rng, mask_id=V, vocab_size=V + 1)

Of the positions that may be chosen (``special`` ids never are), each is chosen with
probability ``p`` (15%). A chosen position's target is its original id; every other target is
``ignore_index``, so the loss (CrossEntropyLoss(ignore_index=...)) is the cross-entropy at the
chosen positions only. A chosen input is replaced by [MASK] with probability 0.8, by a random
id with probability 0.1 (drawn from the ``random_ids`` given, default every id below
``vocab_size`` except the specials) and left unchanged with probability 0.1, so that the model
must represent every token, not only the masked ones.
"""

import numpy as np

from .symbols import IGNORE_INDEX


def mask_tokens(ids, rng, mask_id, vocab_size, p=0.15, special=(), random_ids=None, ignore_index=IGNORE_INDEX):
    """(inputs, targets), both integer arrays of the shape of ``ids`` (any shape; a copy).

    ids: integer token ids; rng: numpy Generator; mask_id: the [MASK] id; vocab_size: ids are
    below it; p: the fraction of positions chosen; special: ids never chosen (padding, [CLS]).
    At least one position of the batch is chosen, so that the loss is never empty.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids: expected integer token ids, received {ids.dtype}")
    if not 0 < p < 1:
        raise ValueError(f"p: expected a fraction in (0, 1), received {p!r}")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id: expected an id below vocab_size={vocab_size}, received {mask_id}")
    if random_ids is None:
        random_ids = np.setdiff1d(np.arange(vocab_size), np.array([mask_id, *special], dtype=np.int64))
    eligible = ~np.isin(ids, np.array(list(special), dtype=ids.dtype))
    chosen = eligible & (rng.random(ids.shape) < p)
    if not chosen.any() and eligible.any():
        flat = np.flatnonzero(eligible)
        chosen.reshape(-1)[flat[rng.integers(len(flat))]] = True
    targets = np.where(chosen, ids, ignore_index).astype(np.int64)
    u = rng.random(ids.shape)
    inputs = ids.astype(np.int64, copy=True)
    inputs[chosen & (u < 0.8)] = mask_id  # 80%: [MASK]
    swap = chosen & (u >= 0.8) & (u < 0.9)  # 10%: a random token; the other 10% stay as they are
    inputs[swap] = rng.choice(random_ids, size=int(swap.sum()))
    return inputs, targets
