"""TiedOutput: logits from an embedding table used a second time, z = h W^T. Derivation: notes/tied.md.

Weight tying (Press & Wolf, 2017; "Attention Is All You Need", section 3.4) lets the output
layer reuse the token-embedding table instead of learning a separate (D, V) matrix: the score
of token v is the dot product of the hidden state with that token's own embedding row.
"""

from ..backend import backend_name, to_backend
from ..init import zeros
from ..module import Module, Parameter
from ..ops import rows_matmul
from ..validate import check_float, check_last_dim, check_ndim, check_same_dtype


class TiedOutput(Module):
    """Output layer sharing the (V, D) ``weight`` Parameter of an Embedding: logits = h W^T (+ b).

    ``weight`` is the very Parameter object of the embedding (``embedding.weight``), not a copy:
    an optimiser step on it changes both uses, and ``named_parameters`` of a model holding both
    layers lists it once, under the first name it reaches it by. ``bias=True`` adds a learned
    (V,) bias of its own (GPT-2 has none; the default is False). There is no ``dtype``
    argument: the layer takes the dtype (and backend) of ``weight``.

    Gradients are ADDED into ``weight.grad`` (tie.3), on top of what the embedding's backward
    adds (emb.3), so after one backward pass through the whole model the shared gradient is the
    sum of the two contributions (tie.5) with no special case in the code.
    """

    def __init__(self, weight, bias=False):
        if not isinstance(weight, Parameter):
            raise TypeError(
                f"weight: expected the Parameter of an Embedding (embedding.weight), received {type(weight).__name__}"
            )
        if weight.data.ndim != 2:
            raise ValueError(f"weight: expected a (V, D) table with 2 dimensions, received shape {weight.shape}")
        self.weight = weight  # shared, never copied
        self.vocab_size, self.d_model = weight.shape
        if bias:  # on the backend of weight, so that a table already on a GPU gets a GPU bias
            self.bias = Parameter(to_backend(zeros(self.vocab_size, weight.dtype), backend_name(weight.data)))
        else:
            self.bias = None

    def forward(self, h):
        """z = h W^T + b (tie.1): the score of token v is h . W[v].

        h: (B, T, D) (any leading axes) -> z: (B, T, V), in the dtype of ``weight``.
        Caches h.
        """
        check_float(h, "h")
        check_ndim(h, tuple(range(1, 8)), "h", "(B, T, D)")
        check_last_dim(h, self.d_model, "h")
        check_same_dtype(h, self.weight.data, "h", "weight")
        z = rows_matmul(h, self.weight.data.T)  # (B, T, V), W^T a transposed view: no copy of the table  (tie.1)
        if self.bias is not None:
            z += self.bias.data  # (tie.1)
        self.save_for_backward(h, output=z)
        return z

    def backward(self, dz):
        """dh = dz W (tie.2); dW += dz^T h summed over every leading position (tie.3); db += sum of dz (tie.4).

        dz: (B, T, V) -> dh: (B, T, D). The += into ``weight.grad`` accumulates with the
        embedding's own contribution (tie.5).
        """
        (h,) = self.saved(dz)
        # Fold the leading positions into N rows: the sum over n of (tie.3) is one matrix product.
        dz_rows = dz.reshape(-1, self.vocab_size)  # (N, V)
        h_rows = h.reshape(-1, self.d_model)  # (N, D)
        self.weight.grad += dz_rows.T @ h_rows  # (tie.3)
        if self.bias is not None:
            self.bias.grad += dz_rows.sum(axis=0)  # (tie.4)
        return rows_matmul(dz, self.weight.data)  # (B, T, D)  (tie.2)
