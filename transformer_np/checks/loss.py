"""Gradient cases for the cross-entropy loss (notes/loss.md)."""

from ..loss import CrossEntropyLoss
from . import B, T, GradCase

V = 11  # vocabulary size: not B, T or D, not a power of two
PAD = 0


def _cross_entropy(label_smoothing, ignore_index):
    def build(rng, dtype):
        logits = (3 * rng.standard_normal((B, T, V))).astype(dtype)
        targets = rng.integers(1, V, size=(B, T))
        if ignore_index is not None:
            targets[0, -2:] = ignore_index  # padding at the end of one sequence
            targets[2, -1] = ignore_index
        return CrossEntropyLoss(label_smoothing, ignore_index), (logits, targets), {}

    return build


CASES = [
    GradCase("CrossEntropyLoss", _cross_entropy(0.0, None), {"logits": ("ce.5",)}, names=("logits",)),
    GradCase(
        "CrossEntropyLoss (smoothing 0.1, ignore pad)",
        _cross_entropy(0.1, PAD),
        {"logits": ("ce.5", "ce.6")},
        names=("logits",),
    ),
]
