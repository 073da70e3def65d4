"""Softmax cross-entropy with label smoothing and ignored positions. Derivation: notes/loss.md."""

import numbers

from .backend import backend_name, get_array_module, to_backend
from .layers.activation import log_softmax
from .module import Module
from .validate import check_float, check_int_ids, check_ndim


class CrossEntropyLoss(Module):
    """Mean cross-entropy between softmax(logits) and smoothed one-hot targets.

    ``label_smoothing`` = eps spreads mass eps uniformly over all V classes, exactly as
    PyTorch's ``CrossEntropyLoss(label_smoothing=eps)``: q = (1 - eps) onehot(y) + eps / V.
    Positions whose target equals ``ignore_index`` do not enter the loss at all: their logits
    are never read (NaN or inf there changes nothing), they count neither in the sum nor in the
    mean, and their gradient is exactly 0. When every position is ignored the loss is 0 and
    the gradient is 0 (PyTorch gives NaN).
    """

    def __init__(self, label_smoothing=0.0, ignore_index=None):
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or not (
            0.0 <= label_smoothing <= 1.0
        ):
            raise ValueError(f"label_smoothing: expected a value in [0, 1], received {label_smoothing!r}")
        integer = isinstance(ignore_index, numbers.Integral) and not isinstance(ignore_index, bool)
        if ignore_index is not None and not integer:
            raise TypeError(f"ignore_index: expected None or an integer token id, received {ignore_index!r}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        """L = sum over kept positions of -sum_v q_v log p_v, divided by their number (ce.1)-(ce.4).

        logits: (B, T, V) float (or any (..., V)); targets: (B, T) integer (the leading shape).
        Returns a 0-d value of the logits' dtype. Only the n kept positions are computed with.
        Caches p = softmax(logits) (B, T, V), 0 at ignored positions; the targets with ignored
        positions replaced by 0; the (B, T) keep mask; the kept count n.
        """
        xp = get_array_module(logits)
        check_float(logits, "logits")
        check_ndim(targets, logits.ndim - 1, "targets", f"(the leading shape of logits {logits.shape})")
        if targets.shape != logits.shape[:-1]:
            raise ValueError(f"targets: expected shape {logits.shape[:-1]}, received {targets.shape}")
        targets = to_backend(targets, backend_name(logits))  # ids from the host follow the logits, as in Embedding
        V, eps = logits.shape[-1], self.label_smoothing
        if self.ignore_index is None:
            keep = xp.ones(targets.shape, dtype=bool)
            z, y = logits.reshape(-1, V), targets.reshape(-1)  # (n, V), (n,): every position
        else:
            keep = targets != self.ignore_index  # (B, T): k of (ce.4)
            z, y = logits[keep], targets[keep]  # (n, V), (n,): ignored positions are never read
        check_int_ids(y, 0, V, "targets")
        n = y.shape[0]
        log_p = log_softmax(z)  # (n, V)  (ce.1)
        nll = -log_p[xp.arange(n), y]  # (n,): -log p_y
        per_token = (1.0 - eps) * nll - eps * log_p.mean(axis=-1) if eps else nll  # (n,)  (ce.3)
        L = per_token.sum() / logits.dtype.type(n) if n else xp.zeros((), dtype=logits.dtype)  # ()  (ce.4)
        p = xp.exp(log_p)  # (n, V): p of (ce.1)
        p = p.reshape(logits.shape) if self.ignore_index is None else _at_kept(p, keep)  # (B, T, V)
        self.save_for_backward(p, xp.where(keep, targets, 0), keep, n, output=L)
        return L

    def backward(self, dout=1.0):
        """dlogits = dout * keep * (p - q) / n (ce.5); ignored positions get 0 (ce.6).

        dout: the scalar upstream gradient dL (1.0 when the loss is the final output): a number,
        or a 0-d array of the loss's dtype. Returns dlogits of the logits' shape and dtype.
        """
        number = isinstance(dout, numbers.Real) and not isinstance(dout, bool) and not hasattr(dout, "shape")
        # An array must be 0-d and of the loss's dtype (a Python number has no dtype to check).
        p, targets, keep, n = self.saved(None if number else dout)
        xp = get_array_module(p)
        V, eps = p.shape[-1], self.label_smoothing
        dz = p - eps / V  # (B, T, V): p - q, with q = eps / V on every class (ce.2) ...
        rows = dz.reshape(-1, V)  # (N, V), a view of dz
        rows[xp.arange(rows.shape[0]), targets.reshape(-1)] -= 1.0 - eps  # ... and 1 - eps more on the target (ce.2)
        k_dL_over_n = keep * p.dtype.type(float(dout) / max(n, 1))  # (B, T): k dL / n in p's dtype
        dz *= k_dL_over_n[..., None]  # (ce.5), and 0 where k = 0 (ce.6)
        return dz


def _at_kept(rows, keep):
    """(B, T, V) zeros with the (n, V) ``rows`` written at the n positions where ``keep`` is True."""
    xp = get_array_module(rows)
    out = xp.zeros((*keep.shape, rows.shape[-1]), dtype=rows.dtype)
    out[keep] = rows
    return out
