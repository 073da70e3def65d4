"""Reference answer to the exercise of notebooks/05_layernorm_residual_ffn.ipynb: the LayerNorm backward.

Same names as the notebook's exercise cell; tests/test_exercises.py runs it in place of that cell,
then the notebook's check cell.
"""

from transformer_np.layers import LayerNorm


class MyLayerNorm(LayerNorm):
    # The library's forward (it caches xhat (..., D) and rstd (..., 1)); the backward is yours.

    def backward(self, dy):
        # dy: (..., D) -> dx: (..., D).
        # Add dbeta (ln.5) into self.bias.grad and dgamma (ln.6) into self.weight.grad,
        # then return dx from dxhat (ln.7) by (ln.8).
        xhat, rstd = self.saved(dy)
        D = dy.shape[-1]
        self.bias.grad += dy.reshape(-1, D).sum(axis=0)  # (ln.5)
        self.weight.grad += (dy * xhat).reshape(-1, D).sum(axis=0)  # (ln.6)
        dxhat = dy * self.weight.data  # (ln.7)
        return rstd * (
            dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
        )  # (ln.8)
