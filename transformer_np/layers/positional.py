"""Positional information added to token embeddings: fixed sinusoids or a learned table.

Derivation: notes/positional.md. Neither layer applies dropout: the paper drops out the sum
of embeddings and positional encodings, and a model does that with a separate ``Dropout``
layer right after this one, so that each layer does one thing and can be checked alone.
"""

from ..backend import get_backend, resolve_dtype
from ..init import make_rng, normal
from ..module import Module, Parameter
from ..validate import check_float, check_int, check_last_dim, check_ndim, check_same_dtype


def sinusoidal_table(max_len, d_model):
    """(max_len, d_model) NumPy float64 table: PE[pos, 2i] = sin(pos / 10000^(2i/d)) (pos.1)
    and PE[pos, 2i+1] = cos(pos / 10000^(2i/d)) (pos.2).

    An odd d_model has one more sine column than cosine columns: the last column is a sine.
    """
    np = get_backend("numpy")  # a constant table, built once on the CPU
    pos = np.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # 2i = 0, 2, 4, ...: ceil(d/2) values
    angle = pos / 10000.0 ** (two_i / d_model)  # (max_len, ceil(d/2))
    table = np.empty((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angle)  # (pos.1): ceil(d/2) even columns
    table[:, 1::2] = np.cos(angle[:, : d_model // 2])  # (pos.2): floor(d/2) odd columns
    return table


def _check_positions(x, offset, max_len):
    """x: (B, T, D) must fit the table: positions offset .. offset + T - 1 all below max_len."""
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"offset: expected a non-negative int, received {offset!r}")
    T = x.shape[1]
    if offset + T > max_len:
        if offset == 0:
            raise ValueError(f"x: expected a sequence length of at most max_len={max_len}, received {T}")
        raise ValueError(
            f"x: expected offset + sequence length of at most max_len={max_len}, "
            f"received offset {offset} + length {T} = {offset + T}"
        )


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal encodings of Vaswani et al. (2017) to x (B, T, D).

    The (max_len, D) table ``pe`` is computed once, in float64, then cast to ``dtype``; it is a
    plain array attribute, not a Parameter (nothing to learn), and ``Module.to`` moves it.
    No dropout inside: see the module docstring.
    """

    def __init__(self, d_model, max_len=5000, *, dtype=None):
        self.d_model, self.max_len = check_int(d_model, "d_model"), check_int(max_len, "max_len")
        self.pe = sinusoidal_table(self.max_len, self.d_model).astype(resolve_dtype(dtype))  # (max_len, D)

    def forward(self, x, offset=0):
        """y = x + PE[offset : offset + T], the same rows for every batch element (pos.3).

        x: (B, T, D) -> y: (B, T, D). ``offset`` is the position of the first token (0 for a
        whole sequence; the number of tokens already generated when decoding step by step).
        Caches nothing but the fact that forward ran.
        """
        check_float(x)
        check_ndim(x, 3, shape_doc="(B, T, D)")
        check_last_dim(x, self.d_model)
        check_same_dtype(x, self.pe, name_b="pe")
        _check_positions(x, offset, self.max_len)
        y = x + self.pe[offset : offset + x.shape[1]]  # (pos.3)
        self.save_for_backward(output=y)
        return y

    def backward(self, dy):
        """dx = dy (pos.6): adding a constant does not change the gradient.

        dy: (B, T, D) -> dx: (B, T, D), the same array.
        """
        self.saved(dy)
        return dy  # (pos.6)


class LearnedPositionalEmbedding(Module):
    """Adds a learned row per position, ``weight`` of shape (max_len, D), to x (B, T, D).

    As in BERT and GPT-2; ``weight`` starts from N(0, 0.02^2). No dropout inside: see the
    module docstring. Arguments in the order of SinusoidalPositionalEncoding(d_model, max_len),
    so that switching between the two changes only the class name.
    """

    def __init__(self, d_model, max_len, *, rng=None, dtype=None):
        self.d_model, self.max_len = check_int(d_model, "d_model"), check_int(max_len, "max_len")
        rng = make_rng(rng)
        self.weight = Parameter(normal((self.max_len, self.d_model), 0.02, rng, dtype))

    def forward(self, x, offset=0):
        """y = x + P[offset : offset + T], the same rows for every batch element (pos.4).

        x: (B, T, D) -> y: (B, T, D); ``offset`` as in SinusoidalPositionalEncoding.forward.
        Caches offset and T (which rows were used), not x.
        """
        check_float(x)
        check_ndim(x, 3, shape_doc="(B, T, D)")
        check_last_dim(x, self.d_model)
        check_same_dtype(x, self.weight.data)
        _check_positions(x, offset, self.max_len)
        T = x.shape[1]
        y = x + self.weight.data[offset : offset + T]  # (pos.4)
        self.save_for_backward(offset, T, output=y)
        return y

    def backward(self, dy):
        """dx = dy (pos.6); dP[offset + t] += sum over the batch of dy[:, t], other rows untouched (pos.7).

        dy: (B, T, D) -> dx: (B, T, D), the same array.
        """
        offset, T = self.saved(dy)
        self.weight.grad[offset : offset + T] += dy.sum(axis=0)  # (pos.7)
        return dy  # (pos.6)
