"""Small array operations shared by the layers: each one a faster way to compute a plain expression.

    rows_matmul(x, W)  x @ W for x (..., K) and a matrix W (K, N)
    row_sum(a, axis)   a.sum(axis=axis, keepdims=True)
    row_mean(a)        a.mean(axis=-1, keepdims=True)
    row_mean(a, w)     (a * w).mean(axis=-1, keepdims=True), w a vector of weights (K,)
    moving_average(avg, x, beta)   avg[...] = beta * avg + (1 - beta) * x

NumPy evaluates ``beta * avg + (1 - beta) * x`` into new arrays, one per operator, and
allocating an array costs more than a pass over one already in the cache: the exponential
moving average is therefore updated in place, in the one array it lives in.

Along the last axis both are a matrix-vector product with a vector of ones, a @ 1. NumPy's
reduction along rows of a few hundred entries (the D features of a token, the Tk scores of
a query) runs several times slower than BLAS's matrix-vector product, which streams the
rows once with vector instructions. The result is the same sum, added in another order, so
it may differ from NumPy's in the last bits (tests/test_ops.py checks the agreement). A call
site then reads as its equation: ``var = row_mean(xhat * xhat)  # (ln.2)``.

``x @ W`` with x of shape (B, T, K) is run by NumPy as B separate matrix products of T rows,
each a BLAS call that packs W anew; folding the leading axes into the rows of one matrix,
``x.reshape(-1, K) @ W``, is one product of B T rows (the same dot products; BLAS may block them differently, so
the last bits may differ). Measured for the Linear shapes of the GPT benchmarks, one BLAS thread: 5-15%
faster for ``x @ W``, 15-30% for ``dy @ W.T`` (benchmarks/RESULTS.md, issue 11).
"""

from .backend import get_array_module


def rows_matmul(x, W):
    """``x @ W`` for x (..., K) and a matrix W (K, N): one matrix product over every leading position.

    x: (..., K), W: (K, N) (a transposed view is fine) -> (..., N), a new array in the dtype of
    the operands. The leading axes are folded into rows, (N_rows, K) @ (K, N), and unfolded
    again; a non-contiguous x is copied once by the fold, as matmul would.
    """
    return (x.reshape(-1, x.shape[-1]) @ W).reshape(*x.shape[:-1], W.shape[-1])  # (..., N)


def row_sum(a, axis=-1):
    """``a.sum(axis=axis, keepdims=True)``: the sum of every slice along ``axis``, the axis kept as 1.

    a: (..., K) -> (..., 1) along the last axis (a matrix-vector product with ones); any other
    axis is NumPy's own sum. Dtype and backend of ``a`` are kept.
    """
    if axis not in (-1, a.ndim - 1):
        return a.sum(axis=axis, keepdims=True)
    xp = get_array_module(a)
    return (a @ xp.ones(a.shape[-1], dtype=a.dtype))[..., None]  # (..., 1)


def row_mean(a, weights=None):
    """``a.mean(axis=-1, keepdims=True)``, or ``(a * weights).mean(axis=-1, keepdims=True)``.

    a: (..., K) -> (..., 1). ``weights``, a vector (K,) of a's dtype, weights every column;
    the weighted mean is the matrix-vector product a @ weights / K, so the product array
    a * weights is never formed. Dtype and backend of ``a`` are kept.
    """
    K = a.shape[-1]
    if weights is None:
        total = row_sum(a)  # (..., 1), a new array
    else:
        total = (a @ weights)[..., None]  # (..., 1)
    total /= K
    return total


def moving_average(average, value, beta):
    """``average[...] = beta * average + (1 - beta) * value``, in place; returns ``average``.

    The exponential moving average of Adam's moments, (opt.4) and (opt.5). The same
    arithmetic in the same order as the expression, so the same result bit for bit, with one
    temporary instead of three and no final copy. ``beta`` is a Python float; ``value`` has
    the shape and dtype of ``average``.
    """
    average *= beta
    average += (1.0 - beta) * value
    return average
