"""Embedding: token ids -> rows of a learned table. Derivation: notes/embedding.md."""

import math

from ..backend import backend_name, scatter_add, to_backend
from ..init import make_rng, normal
from ..module import Module, Parameter
from ..validate import check_int, check_int_ids, check_ndim


class Embedding(Module):
    """A table ``weight`` of shape (V, D): token id v is represented by row v.

    ``scale=True`` multiplies the looked-up rows by sqrt(D), as in "Attention Is All You Need"
    (Vaswani et al., 2017, section 3.4).

    Initialisation: every entry is drawn from N(0, 1/D) (standard deviation D^-1/2), with or
    without ``scale``. Two reasons (notes/embedding.md, "Initialisation"):
      * the same matrix may be tied to the output layer, logits = h weight^T; with h of unit
        variance per feature, entries of variance 1/D give logits of unit variance, so the
        first softmax is neither flat nor saturated;
      * with ``scale=True`` the looked-up rows sqrt(D) * weight[v] then have unit variance per
        feature, the same size as the sinusoidal positional encodings (values in [-1, 1]) they
        are added to, so neither drowns the other.
    ``weight`` is the Parameter named "weight", so an output layer can share it.
    """

    def __init__(self, vocab_size, d_model, scale=False, *, rng=None, dtype=None):
        vocab_size, d_model = check_int(vocab_size, "vocab_size"), check_int(d_model, "d_model")
        rng = make_rng(rng)
        self.vocab_size, self.d_model = vocab_size, d_model
        self.scale = bool(scale)
        self.factor = math.sqrt(d_model) if scale else 1.0  # s in (emb.1)
        self.weight = Parameter(normal((vocab_size, d_model), 1.0 / math.sqrt(d_model), rng, dtype))

    def forward(self, ids):
        """Y[b, t] = s * weight[ids[b, t]] (emb.1), with s = sqrt(D) if ``scale`` else 1.

        ids: integer (B, T), every value in [0, V) -> Y: (B, T, D) in the dtype of ``weight``.
        ids are moved to the backend of ``weight`` if they arrive on another one (token ids
        usually come from the CPU data pipeline). Caches ids.
        """
        check_int_ids(ids, 0, self.vocab_size)
        check_ndim(ids, 2, "ids", "(B, T)")
        ids = to_backend(ids, backend_name(self.weight.data))
        Y = self.weight.data[ids]  # (B, T, D): a gather of rows, i.e. E W of (emb.2)
        if self.scale:
            Y *= self.factor  # (emb.1); Y is a fresh copy, so scaling in place leaves weight untouched
        self.save_for_backward(ids, output=Y)
        return Y

    def backward(self, dY):
        """dweight += s * E^T dY (emb.3): row v receives the sum of s * dY over the positions holding v (emb.4).

        dY: (B, T, D). A token that occurs several times adds all its gradients (a scatter-add,
        not an assignment). Returns None: integer ids have no gradient.
        """
        (ids,) = self.saved(dY)
        dY_rows = dY.reshape(-1, self.d_model)  # (N, D), one row per position
        if self.scale:
            dY_rows = dY_rows * self.factor  # s dY of (emb.3)
        scatter_add(self.weight.grad, ids.reshape(-1), dY_rows)  # (emb.3), (emb.4)
        return None

