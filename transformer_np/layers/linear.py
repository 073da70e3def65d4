"""Linear: y = x W + b in the row-vector convention. Derivation: notes/linear.md."""

from ..init import make_rng, xavier_uniform, zeros
from ..module import Module, Parameter
from ..ops import rows_matmul
from ..validate import check_float, check_int, check_last_dim, check_same_dtype


class Linear(Module):
    """Affine map on the last axis, ``W`` of shape (D_in, D_out) and ``b`` of shape (D_out,).

    ``bias=False`` drops b. Weights are Xavier-uniform, the bias starts at zero.
    """

    def __init__(self, d_in, d_out, bias=True, *, rng=None, dtype=None):
        self.d_in, self.d_out = check_int(d_in, "d_in"), check_int(d_out, "d_out")
        rng = make_rng(rng)
        self.weight = Parameter(xavier_uniform(self.d_in, self.d_out, rng, dtype))
        self.bias = Parameter(zeros(self.d_out, dtype)) if bias else None

    def forward(self, x):
        """y = x W + b (lin.1).

        x: (..., D_in) -> y: (..., D_out), any number of leading axes (B, T, ...).
        Caches x.
        """
        check_float(x)
        check_last_dim(x, self.d_in)
        check_same_dtype(x, self.weight.data)
        y = rows_matmul(x, self.weight.data)  # (..., D_out)  (lin.1): x W, one product over all rows
        if self.bias is not None:
            y += self.bias.data  # (lin.1)
        self.save_for_backward(x, output=y)
        return y

    def backward(self, dy):
        """dx = dy W^T (lin.2); dW += x^T dy (lin.3) and db += sum of dy (lin.4) over all leading axes.

        dy: (..., D_out) -> dx: (..., D_in).
        """
        (x,) = self.saved(dy)
        # Every leading position is one row n of the sums (lin.3), (lin.4): fold them into N rows.
        x_rows = x.reshape(-1, self.d_in)  # (N, D_in)
        dy_rows = dy.reshape(-1, self.d_out)  # (N, D_out)
        self.weight.grad += x_rows.T @ dy_rows  # (lin.3)
        if self.bias is not None:
            self.bias.grad += dy_rows.sum(axis=0)  # (lin.4)
        return rows_matmul(dy, self.weight.data.T)  # (..., D_in)  (lin.2): dy W^T
