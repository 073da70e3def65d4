"""What a 16-bit format does to a model, measured: gradients that underflow to zero, and the
memory of the activations kept for backward. Notes: notes/precision.md."""

from .autocast import autocast
from .formats import get_format


def gradient_underflow(model, loss_fn, inputs, targets, name="float16", scale=1.0):
    """{parameter name: fraction of its gradient entries, nonzero in float32, that are exactly 0
    when the forward and backward run in format ``name`` with loss scale ``scale`` (prec.6)}.

    Runs one float32 forward and backward (the reference) and one under ``autocast``, on the
    same batch (``inputs`` the positional arguments of ``model.forward``). Leaves the gradients
    zeroed. Dropout should be off (eval mode, or dropout 0): both passes must see the same masks.
    """
    get_format(name)
    model.zero_grad()
    loss_fn.forward(model.forward(*inputs), targets)
    model.backward(loss_fn.backward())
    reference = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    with autocast(model, name):
        loss_fn.forward(model.forward(*inputs), targets)
        model.backward(loss_fn.backward(scale))
    fractions = {}
    for n, p in model.named_parameters():
        nonzero = reference[n] != 0
        count = int(nonzero.sum())
        fractions[n] = float(((p.grad == 0) & nonzero).sum()) / count if count else 0.0
    model.zero_grad()
    return fractions


def saved_activation_bytes(model, name=None):
    """Bytes of the floating arrays the modules of ``model`` keep for backward after a forward,
    each array counted once: in its own dtype, or at format ``name``'s bytes per number."""
    itemsize = None if name is None else get_format(name).itemsize
    seen, total = set(), 0
    for m in model.modules():
        for value in m._cache or ():
            if not hasattr(value, "dtype") or id(value) in seen:
                continue
            seen.add(id(value))
            if value.dtype.kind == "f":
                total += value.size * (value.dtype.itemsize if itemsize is None else itemsize)
    return total
