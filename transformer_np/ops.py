"""Small array operations shared by the layers: each one a faster way to compute a plain expression.

    rows_matmul(x, W)  x @ W for x (..., K) and a matrix W (K, N)
    by_row_blocks(f, *arrays)   f(*arrays), for a function acting row by row, a block of rows at a time
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

An element-wise formula such as GELU's x Phi(x) is a dozen NumPy passes, each writing a new
temporary array of the input's size. For the hidden activations of a training step (1.5 MB in
the small GPT, 13 MB in the large one) every temporary is fresh memory, first touched with a
page fault, and every pass streams from main memory. ``by_row_blocks`` runs the same formula
on blocks of rows of about 256 KB, so its temporaries stay in the core's cache and are reused
by the allocator; only the results are arrays of the full size. Arrays of at most WHOLE entries
(4 MB of float32) run whole: their temporaries already fit the caches, and blocks only add
calls. Measured, one thread, forward and backward together: the exact GELU on (9, 256, 1536)
35 ms whole, 25 ms in blocks; the softmax on (9, 12, 256, 256) 36 ms and 30 ms; the same bits.
"""

import math

from .backend import get_array_module, get_backend

BLOCK = 2**16  # entries per block of by_row_blocks: 256 KB of float32, within a core's L2 cache
WHOLE = 2**20  # by_row_blocks runs arrays of at most this many entries whole


def rows_matmul(x, W):
    """``x @ W`` for x (..., K) and a matrix W (K, N): one matrix product over every leading position.

    x: (..., K), W: (K, N) (a transposed view is fine) -> (..., N), a new array in the dtype of
    the operands. The leading axes are folded into rows, (N_rows, K) @ (K, N), and unfolded
    again; a non-contiguous x is copied once by the fold, as matmul would.
    """
    return (x.reshape(-1, x.shape[-1]) @ W).reshape(*x.shape[:-1], W.shape[-1])  # (..., N)


def by_row_blocks(function, *arrays, block=BLOCK, whole=WHOLE):
    """``function(*arrays)``, computed on blocks of rows of about ``block`` entries, and joined.

    function: takes arrays (n, K_i), n rows each, and returns an array (n, M) or a tuple of them,
    row r of every result depending on row r of the inputs only (an element-wise formula, a
    softmax along the last axis). arrays: NumPy or CuPy arrays of the same leading shape
    (..., K_i). Returns what ``function(*arrays)`` returns, with the leading shape (...) kept.
    On CuPy, for 0- or 1-dimensional input, when no input has more than ``whole`` entries, or
    when one block holds every row, the function simply runs on the whole arrays.
    """
    xp = get_array_module(arrays[0])
    if xp is not get_backend("numpy") or any(a.ndim < 2 for a in arrays) or max(a.size for a in arrays) <= whole:
        return function(*arrays)
    lead = arrays[0].shape[:-1]
    n = math.prod(lead)
    rows = [a.reshape(n, a.shape[-1]) for a in arrays]  # views when the arrays are contiguous
    step = max(1, block // max(1, max(a.shape[-1] for a in arrays)))  # rows per block
    if n <= step:
        return function(*arrays)
    results, single = None, False
    for start in range(0, n, step):
        part = function(*(r[start:start + step] for r in rows))
        if results is None:  # the first block fixes the results' widths and dtypes
            single = not isinstance(part, tuple)
            results = tuple(xp.empty((n,) + p.shape[1:], dtype=p.dtype) for p in ((part,) if single else part))
        for result, p in zip(results, (part,) if single else part):
            result[start:start + step] = p
    results = tuple(r.reshape(lead + r.shape[1:]) for r in results)
    return results[0] if single else results


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
