"""Rotary position embedding (RoPE, Su et al. 2021): rotate each head's queries and keys by angles
proportional to their positions, so that q_m . k_n depends on m - n only. Derivation: notes/rope.md.

    rope = RotaryEmbedding(d_head, style="halves")   # GPT-NeoX / LLaMA; "pairs" as in RoFormer
    Q = rope.forward(Q, offset=start)                 # (B, H, T, Dh), positions start .. start+T-1

Parameter-free; the angles are computed from the positions at each call (in float64, then cast),
so there is no maximum position. A multi-head attention layer holds two of these, one for the
queries and one for the keys, because each caches what its own backward needs.
"""

from ..backend import get_array_module, get_backend
from ..module import Module
from ..validate import check_float, check_int, check_last_dim, check_ndim

ROPE_STYLES = ("pairs", "halves")
ROPE_BASE = 10000.0  # RoFormer's and LLaMA's base: theta_i = base^(-2i / Dh)


def rope_angles(positions, d_head, base=ROPE_BASE):
    """(T, Dh/2) NumPy float64 angles m theta_i, theta_i = base^(-2i/Dh) (rope.1), for the given positions."""
    np = get_backend("numpy")
    theta = base ** (-np.arange(0, d_head, 2, dtype=np.float64) / d_head)  # (Dh/2,)  (rope.1)
    return np.asarray(positions, dtype=np.float64)[:, None] * theta[None, :]  # (T, Dh/2)


def pair_slices(style, d_head):
    """The (first, second) members of the Dh/2 rotated pairs: dims (2i, 2i+1) for "pairs",
    (i, i + Dh/2) for "halves" (rope.4)."""
    if style == "pairs":
        return slice(0, None, 2), slice(1, None, 2)
    return slice(0, d_head // 2), slice(d_head // 2, None)


def halves_permutation(d_head):
    """The fixed permutation of a head's Dh dimensions that takes the "pairs" layout to the "halves"
    one (rope.5): index i of the result is dimension perm[i], the even dimensions first, then the odd."""
    np = get_backend("numpy")
    return np.concatenate([np.arange(0, d_head, 2), np.arange(1, d_head, 2)])


class RotaryEmbedding(Module):
    """Rotate pairs of features of x (B, H, T, Dh) by angle m theta_i at position m (rope.2).

    d_head: Dh, even (a rotation acts on a pair of features). style: "halves" pairs dimension i
    with i + Dh/2 (GPT-NeoX, LLaMA); "pairs" pairs 2i with 2i+1 (RoFormer). The two are the same
    model up to a fixed permutation of each head's dimensions (rope.5). base: theta_i = base^(-2i/Dh).
    No parameters and no maximum position.
    """

    def __init__(self, d_head, style="halves", base=ROPE_BASE):
        self.d_head = check_int(d_head, "d_head")
        if self.d_head % 2:
            raise ValueError(f"RotaryEmbedding: expected an even head dimension (features rotate in pairs), "
                             f"received d_head={self.d_head}")
        if style not in ROPE_STYLES:
            raise ValueError(f"RotaryEmbedding: expected style one of {', '.join(map(repr, ROPE_STYLES))}, "
                             f"received {style!r}")
        if not base > 1:
            raise ValueError(f"RotaryEmbedding: expected base > 1, received {base!r}")
        self.style, self.base = style, float(base)

    def _cos_sin(self, x, offset):
        """cos and sin of the angles of positions offset .. offset + T - 1, (T, Dh/2) in x's dtype and backend."""
        xp, np = get_array_module(x), get_backend("numpy")
        angle = rope_angles(np.arange(offset, offset + x.shape[-2]), self.d_head, self.base)  # (T, Dh/2)  (rope.1)
        return xp.asarray(np.cos(angle), dtype=x.dtype), xp.asarray(np.sin(angle), dtype=x.dtype)

    def forward(self, x, offset=0):
        """y = x R(m) pair by pair (rope.2): (y1, y2) = (x1 cos - x2 sin, x1 sin + x2 cos), angle m theta_i.

        x: (B, H, T, Dh) (any leading axes; the last two are positions and features) -> y of the
        same shape; the token at index t is at position m = offset + t (the KV cache's length when
        decoding step by step). Caches cos and sin of the angles, not x.
        """
        check_float(x)
        check_ndim(x, 4, shape_doc="(B, H, T, Dh)")
        check_last_dim(x, self.d_head)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(f"offset: expected a non-negative int, received {offset!r}")
        cos, sin = self._cos_sin(x, offset)  # (T, Dh/2) each
        first, second = pair_slices(self.style, self.d_head)
        x1, x2 = x[..., first], x[..., second]  # (B, H, T, Dh/2) each
        y = get_array_module(x).empty_like(x)  # (B, H, T, Dh)
        y[..., first] = x1 * cos - x2 * sin  # (rope.2)
        y[..., second] = x1 * sin + x2 * cos  # (rope.2)
        self.save_for_backward(cos, sin, output=y)
        return y

    def backward(self, dy):
        """dx = dy R(m)^T, the inverse rotation (rope.6): (dx1, dx2) = (dy1 cos + dy2 sin, -dy1 sin + dy2 cos).

        dy: (B, H, T, Dh) -> dx: (B, H, T, Dh).
        """
        cos, sin = self.saved(dy)
        first, second = pair_slices(self.style, self.d_head)
        dy1, dy2 = dy[..., first], dy[..., second]  # (B, H, T, Dh/2) each
        dx = get_array_module(dy).empty_like(dy)  # (B, H, T, Dh)
        dx[..., first] = dy1 * cos + dy2 * sin  # (rope.6)
        dx[..., second] = dy2 * cos - dy1 * sin  # (rope.6)
        return dx
