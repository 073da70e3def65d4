"""Reference answer to the exercise of notebooks/07_encoder_decoder.ipynb: the backward pass of two
post-LN cross-attention sub-layers that read the same memory.

Same names as the notebook's exercise cell; tests/test_exercises.py runs it in place of that cell,
then the notebook's check cell.
"""

import numpy as np  # noqa: F401  (the exercise cell imports it too)

from transformer_np.init import make_rng
from transformer_np.layers import LayerNorm, MultiHeadAttention
from transformer_np.module import Module


class CrossAttentionBlocks(Module):
    # Two post-LN cross-attention sub-layers reading the same memory, as in two decoder layers:
    #   z_k = x_{k-1} + CrossAttn_k(x_{k-1}, memory),  x_k = LN_k(z_k),  k = 1, 2   (res.1)
    # x (B, T, D), memory (B, S, D), mask (B, 1, 1, S) or None  ->  x_2 (B, T, D)

    def __init__(self, d_model, n_heads, *, rng=None, dtype=None):
        rng = make_rng(rng)
        self.attn = [MultiHeadAttention(d_model, n_heads, rng=rng, dtype=dtype) for _ in range(2)]
        self.norm = [LayerNorm(d_model, dtype=dtype) for _ in range(2)]

    def forward(self, x, memory, mask=None):
        for attn, norm in zip(self.attn, self.norm):
            x = norm.forward(x + attn.forward(x, memory, mask=mask))  # (res.1)
        self.save_for_backward(output=x)
        return x

    def backward(self, dy):
        # dy (B, T, D) -> (dx (B, T, D), dmemory (B, S, D)).
        self.saved(dy)
        dx, dmemory = dy, None
        for attn, norm in zip(reversed(self.attn), reversed(self.norm)):
            dz = norm.backward(dx)  # (res.3)
            dx_attn, dmemory_k = attn.backward(dz)  # (mha.10)
            dx = dz + dx_attn  # (res.5): the skip path adds dz
            dmemory = dmemory_k if dmemory is None else dmemory + dmemory_k  # (res.9), summed (tf.10)
        return dx, dmemory
