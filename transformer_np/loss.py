"""Softmax cross-entropy with label smoothing and ignored positions. Derivation: notes/loss.md."""

from .backend import get_array_module
from .module import Module
from .validate import check_float, check_int_ids, check_ndim


class CrossEntropyLoss(Module):
    """Mean cross-entropy between softmax(logits) and smoothed one-hot targets.

    ``label_smoothing`` = eps spreads mass eps uniformly over all V classes, exactly as
    PyTorch's ``CrossEntropyLoss(label_smoothing=eps)``: q = (1 - eps) onehot(y) + eps / V.
    Positions whose target equals ``ignore_index`` count neither in the sum nor in the mean.
    When every position is ignored the loss is 0 and the gradient is 0 (PyTorch gives NaN).
    """

    def __init__(self, label_smoothing=0.0, ignore_index=None):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing: expected a value in [0, 1], received {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        """L = sum over kept positions of -sum_v q_v log p_v, divided by their number (ce.1-ce.4).

        logits: (B, T, V) float (or any (..., V)); targets: (B, T) integer (the leading shape).
        Returns a 0-d array of the logits' dtype. Caches p = softmax(logits), the targets
        with ignored positions replaced by 0, the (B, T) keep mask and the kept count.
        """
        xp = get_array_module(logits)
        check_float(logits, "logits")
        check_ndim(targets, logits.ndim - 1, "targets", f"(the leading shape of logits {logits.shape})")
        if targets.shape != logits.shape[:-1]:
            raise ValueError(f"targets: expected shape {logits.shape[:-1]}, received {targets.shape}")
        V = logits.shape[-1]
        keep = xp.ones(targets.shape, dtype=bool) if self.ignore_index is None else targets != self.ignore_index
        safe_targets = xp.where(keep, targets, 0)
        check_int_ids(safe_targets, 0, V, "targets")

        # log p = z - max - log sum exp(z - max) (ce.1): exp never sees a positive argument.
        log_p = logits - logits.max(axis=-1, keepdims=True)  # z - max for now
        p = xp.exp(log_p)  # exp(z - max) for now
        total = p.sum(axis=-1, keepdims=True)
        log_p -= xp.log(total)  # (ce.1)
        p /= total  # p = softmax(z), for backward
        nll = -xp.take_along_axis(log_p, safe_targets[..., None], axis=-1)[..., 0]
        eps = self.label_smoothing
        per_token = (1.0 - eps) * nll - eps * log_p.mean(axis=-1) if eps else nll  # (ce.3)
        count = int(keep.sum())
        self.save_for_backward(p, safe_targets, keep, count)
        if count == 0:
            return xp.zeros((), dtype=logits.dtype)
        return (per_token * keep).sum() / logits.dtype.type(count)  # (ce.4)

    def backward(self, dout=1.0):
        """dlogits = dout * keep * (p - q) / n (ce.5); ignored positions get 0 (ce.6).

        dout: scalar upstream gradient (1.0 when the loss is the final output).
        Returns dlogits of the logits' shape and dtype.
        """
        p, safe_targets, keep, count = self.saved()
        xp = get_array_module(p)
        eps = self.label_smoothing
        V = p.shape[-1]
        # p - q with q = (1 - eps) onehot(y) + eps / V (ce.2), written into p's buffer.
        dlogits = p
        dlogits -= p.dtype.type(eps / V)
        rows = dlogits.reshape(-1, V)
        rows[xp.arange(rows.shape[0]), safe_targets.reshape(-1)] -= p.dtype.type(1.0 - eps)
        scale = p.dtype.type(dout / max(count, 1))
        dlogits *= (keep * scale)[..., None]
        return dlogits
