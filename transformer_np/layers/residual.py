"""Residual connection with layer normalisation around a sub-layer ("Add & Norm").

Derivation: notes/residual.md.
"""

from ..init import make_rng
from ..module import Module
from ..validate import check_int
from .dropout import Dropout
from .norm import LayerNorm

NORM_POSITIONS = ("post", "pre")


class Residual(Module):
    """Wraps ``sublayer`` (self-attention, cross-attention or a feed-forward network) in a skip path.

    norm="post" (the paper, "Add & Norm"):  y = LayerNorm(x + Dropout(sublayer(x, ...)))
    norm="pre"  (GPT-2 and most models since): y = x + Dropout(sublayer(LayerNorm(x), ...))

    The sub-layer must map x (B, T, D) to an output of the same shape. Extra arguments of
    ``forward`` (the encoder memory, a mask) go to the sub-layer untouched. ``dropout`` is the
    paper's dropout on each sub-layer's output, before the addition. ``rng`` drives the
    dropout masks; the sub-layer was built, with its own parameters, by the caller. ``eps`` is
    the LayerNorm's (ln.3) (BERT: 1e-12).

    A stack of pre-LN blocks needs one final LayerNorm after the last block (the model's job).
    """

    def __init__(self, sublayer, d_model, norm="post", dropout=0.0, *, eps=1e-5, rng=None, dtype=None):
        if norm not in NORM_POSITIONS:
            raise ValueError(
                f"norm: expected one of {', '.join(map(repr, NORM_POSITIONS))}, received {norm!r}"
            )
        if not isinstance(sublayer, Module):
            raise TypeError(f"sublayer: expected a Module, received {type(sublayer).__name__}")
        rng = make_rng(rng)
        self.d_model, self.norm_position = check_int(d_model, "d_model"), norm
        self.sublayer = sublayer
        self.norm = LayerNorm(d_model, eps, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)

    def _sublayer_forward(self, x_in, x, args, kwargs):
        s = self.sublayer.forward(x_in, *args, **kwargs)
        if getattr(s, "shape", None) != x.shape:
            raise ValueError(
                f"sublayer output: expected shape {x.shape} (the shape of x, for the residual sum), "
                f"received {getattr(s, 'shape', type(s).__name__)}"
            )
        return s

    def forward(self, x, *args, **kwargs):
        """post: y = LN(x + Dropout(F(x, ...))) (res.1); pre: y = x + Dropout(F(LN(x), ...)) (res.2).

        x: (B, T, D) -> y: (B, T, D); ``args``/``kwargs`` (memory (B, S, D), mask ...) are
        passed to the sub-layer F. Caches nothing itself: the children (LayerNorm, F,
        Dropout) cache what their own backward passes need.
        """
        if self.norm_position == "post":
            s = self._sublayer_forward(x, x, args, kwargs)
            y = self.norm.forward(x + self.dropout.forward(s))  # (res.1)
        else:
            h = self.norm.forward(x)
            s = self._sublayer_forward(h, x, args, kwargs)
            y = x + self.dropout.forward(s)  # (res.2)
        self.save_for_backward(output=y)  # nothing to keep: the children keep what they need
        return y

    def backward(self, dy):
        """post: dz = LN backward of dy (res.3); ds = Dropout backward of dz (res.4);
        dx = dz + F backward of ds (res.5).
        pre: ds = Dropout backward of dy (res.6); dh = F backward of ds (res.7);
        dx = dy + LN backward of dh (res.8).
        The skip path adds its gradient (dz or dy) to dx only: any further input of F
        (memory) gets F's gradient alone (res.9).

        dy: (B, T, D) -> dx: (B, T, D), or the tuple (dx, dmemory, ...) when F's backward
        returns a tuple.
        """
        self.saved(dy)
        if self.norm_position == "post":
            dz = self.norm.backward(dy)  # (res.3)
            ds = self.dropout.backward(dz)  # (res.4)
            d_sub, d_extra = _split_first(self.sublayer.backward(ds))
            dx = dz + d_sub  # (res.5): the skip path adds dz
        else:
            ds = self.dropout.backward(dy)  # (res.6)
            dh, d_extra = _split_first(self.sublayer.backward(ds))  # (res.7)
            dx = dy + self.norm.backward(dh)  # (res.8): the skip path adds dy
        return dx if d_extra is None else (dx, *d_extra)  # (res.9)


def _split_first(grads):
    """(dx, the other gradients or None) from a backward that returned one array or a tuple."""
    if isinstance(grads, tuple):
        return grads[0], grads[1:]
    return grads, None
