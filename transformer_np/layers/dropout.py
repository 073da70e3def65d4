"""Dropout: zero each unit with probability p during training. Derivation: notes/dropout.md."""

import numbers

from ..backend import backend_name, to_backend
from ..init import make_rng
from ..module import Module
from ..validate import check_float


class Dropout(Module):
    """Inverted dropout (Srivastava et al., 2014): y = x ⊙ m with m = [u >= p] / (1 - p), u ~ U(0, 1).

    Kept units are scaled by 1/(1 - p) during training, so E[y] = x and evaluation needs no
    rescaling: in eval mode (``module.eval()``), and whenever p == 0, the layer is the identity.

    Randomness: the mask is drawn from ``self.rng``, an explicit ``numpy.random.Generator``
    (seeded with 0 when none is given), always on the CPU, then moved to the backend of x. The
    same seed therefore gives the same masks on NumPy and on CuPy, at the price of one
    host-to-device copy of the mask per forward on a GPU. ``self.rng`` may be replaced (or
    re-seeded) at any time; the gradient check does so before every forward, so that every
    finite-difference evaluation sees the same mask.
    """

    def __init__(self, p, *, rng=None):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(f"p: expected a probability in [0, 1), received {p!r}")
        self.p = float(p)
        self.rng = make_rng(rng)

    def forward(self, x):
        """y = x ⊙ m (drop.2), with the mask m of (drop.1); y = x in eval mode or when p == 0.

        x: any shape, e.g. (B, T, D) -> y: same shape and dtype.
        Caches m, already scaled by 1/(1 - p) and in the dtype of x (None when the layer is the
        identity), so backward is a single multiply.
        """
        check_float(x)
        if not self.training or self.p == 0.0:
            self.save_for_backward(None, output=x)
            return x
        keep = self.rng.random(x.shape) >= self.p  # NumPy, on the CPU: P(keep) = 1 - p
        m = to_backend(keep.astype(x.dtype) * (1.0 / (1.0 - self.p)), backend_name(x))  # (drop.1)
        y = x * m  # (drop.2)
        self.save_for_backward(m, output=y)
        return y

    def backward(self, dy):
        """dx = dy ⊙ m (drop.4); dx = dy when forward was the identity.

        dy: the shape of x -> dx: the same shape.
        """
        (m,) = self.saved(dy)
        return dy if m is None else dy * m  # (drop.4)
