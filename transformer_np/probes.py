"""Measurements inside a trained (or untrained) encoder-decoder: how much gradient reaches each
source position. Used by notebooks/01_why_attention.ipynb and benchmarks/why_attention.py.

    norms = source_gradient_norms(model, batch)       (B, S): ||dL/dx_t|| per source position
    profile = mean_by_position(norms)                 (S,): averaged over the real tokens

x_t is the vector the source embedding hands to the rest of the model at position t (for the
Transformer the scaled embedding, before the positional encoding is added, which passes the
gradient unchanged (pos.6)). Any model with a ``src_embed`` layer and the encoder-decoder
interface works (the Transformer, GRUSeq2Seq): the probe reads the gradient that arrives at
``src_embed.backward``. No model code is imported here.
"""

import numpy as np

from .backend import to_numpy
from .data.symbols import PAD
from .decode import eval_mode
from .loss import CrossEntropyLoss


def source_gradient_norms(model, batch, loss_fn=None):
    """||dL/dx_t||_2 for every source position t of every example: (B, S) NumPy array, NaN at padding.

    ``batch``: a Seq2SeqBatch; ``loss_fn``: the mean cross-entropy over the target tokens
    (PAD ignored) by default. One forward and backward in eval mode (no dropout); the
    gradients this adds to the parameters are zeroed again, so a training run is not disturbed.
    """
    loss_fn = loss_fn or CrossEntropyLoss(ignore_index=PAD)
    embed = model.src_embed
    received = []

    def recording_backward(dY, backward=embed.backward):
        received.append(to_numpy(dY).copy())
        return backward(dY)

    embed.backward = recording_backward  # an instance attribute, shadowing the class's method
    try:
        with eval_mode(model):
            model.zero_grad()
            logits = model.forward(batch.src, batch.tgt_in, batch.src_mask, batch.tgt_mask)
            loss_fn.forward(logits, batch.tgt_out)
            model.backward(loss_fn.backward())
    finally:
        del embed.backward
        model.zero_grad()
    if len(received) != 1:
        raise RuntimeError(f"expected the source embedding's backward to run once, received {len(received)} calls")
    norms = np.sqrt((received[0].astype(np.float64) ** 2).sum(axis=-1))  # (B, S)
    real = to_numpy(batch.src_mask).reshape(norms.shape)
    return np.where(real, norms, np.nan)


def mean_by_position(norms):
    """The mean over the examples of (B, S) per-position values, ignoring NaN (padding): (S,)."""
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 2:
        raise ValueError(f"norms: expected a (B, S) array, received shape {norms.shape}")
    counts = (~np.isnan(norms)).sum(axis=0)
    return np.where(counts > 0, np.nansum(norms, axis=0) / np.maximum(counts, 1), np.nan)


def accuracy_by_position(pred, target, pad=PAD):
    """Fraction of the examples whose token at output position t is right, for every t: (T,) array.

    pred, target: (B, T) ids (pred from ``greedy_decode``, target = tgt_out); positions where
    the target is ``pad`` do not count (NaN where no example has a token).
    """
    pred, target = to_numpy(pred), to_numpy(target)
    width = target.shape[1]
    if pred.shape[1] < width:
        pred = np.pad(pred, ((0, 0), (0, width - pred.shape[1])), constant_values=pad)
    right = (pred[:, :width] == target) & (target != pad)
    counts = (target != pad).sum(axis=0)
    return np.where(counts > 0, right.sum(axis=0) / np.maximum(counts, 1), np.nan)
