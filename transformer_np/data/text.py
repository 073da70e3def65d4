"""Language-model batches from one long stream of token ids (nanoGPT style).

    ids = tokenizer.encode(load_shakespeare())      (N,) ids of the whole corpus
    train, val = train_val_split(ids, 0.9)          first 90 % / last 10 %
    x, y = get_batch(train, 32, 128, rng)           (B, T) windows and the same windows
                                                    shifted by one: y[b, t] = x[b, t + 1]

Position t of x predicts y[b, t], the next token, for every t at once; a causal mask makes
that honest. The split is contiguous, not shuffled, so validation text was never seen.
"""

import numpy as np

from ..validate import check_generator, check_int


def train_val_split(ids, frac=0.9):
    """(train, val): the first ``frac`` of ``ids`` and the rest (views, no copy)."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids: expected a 1-D array of token ids, received shape {ids.shape}")
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac: expected a fraction strictly between 0 and 1, received {frac!r}")
    n_train = int(frac * len(ids))
    return ids[:n_train], ids[n_train:]


def get_batch(ids, batch_size, block_size, rng):
    """x, y: (B, T) int64 with B = batch_size, T = block_size, and y = x shifted by one.

    Each row starts at an offset drawn uniformly from [0, N - T), N = len(ids), so that its
    target window ids[i+1 : i+T+1] fits; y[b, t] = ids[i_b + t + 1] = x[b, t + 1].
    """
    ids = np.asarray(ids)
    check_generator(rng)
    batch_size, block_size = check_int(batch_size, "batch_size"), check_int(block_size, "block_size")
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids: expected a 1-D integer array, received {ids.dtype} of shape {ids.shape}")
    if len(ids) <= block_size:
        raise ValueError(
            f"ids: expected more than block_size = {block_size} tokens, received {len(ids)}"
        )
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)
    window = starts[:, None] + np.arange(block_size)[None, :]  # (B, T) positions
    return ids[window].astype(np.int64), ids[window + 1].astype(np.int64)
