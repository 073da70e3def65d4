"""Reference answer to the exercise of notebooks/12_positions.ipynb (not shown there)."""

import numpy as np

from transformer_np.layers import RotaryEmbedding
from transformer_np.layers.rotary import pair_slices


class MyRotaryEmbedding(RotaryEmbedding):
    """RoPE with a hand-written backward pass: the inverse rotation (rope.6)."""

    def backward(self, dy):
        """dx = dy R(m)^T, pair by pair, in the forward's layout (rope.6)."""
        cos, sin = self.saved(dy)
        first, second = pair_slices(self.style, self.d_head)
        dy1, dy2 = dy[..., first], dy[..., second]
        dx = np.empty_like(dy)
        dx[..., first], dx[..., second] = dy1 * cos + dy2 * sin, dy2 * cos - dy1 * sin
        return dx
