"""Position-wise feed-forward network: Linear -> activation -> dropout -> Linear.

Derivation: notes/feedforward.md.
"""

from ..init import make_rng
from ..module import Module
from ..validate import check_int
from .activation import GELU, ReLU
from .dropout import Dropout
from .linear import Linear

# activation name -> a function making the activation layer
ACTIVATIONS = {
    "relu": lambda: ReLU(),  # the paper
    "gelu": lambda: GELU(approximate="none"),  # BERT: x * Phi(x), exact
    "gelu_tanh": lambda: GELU(approximate="tanh"),  # GPT-2: the tanh approximation of GELU
}


class PositionwiseFeedForward(Module):
    """FFN(x) = act(x W1 + b1) W2 + b2, applied to every position (every row) independently.

    ``w_1``: Linear(d_model, d_ff), ``w_2``: Linear(d_ff, d_model); the paper uses
    d_ff = 4 d_model (2048 for d_model = 512). ``activation`` is ``"relu"`` (the paper),
    ``"gelu"`` (exact, as in BERT) or ``"gelu_tanh"`` (GPT-2).

    ``dropout`` acts on the d_ff hidden units, after the activation, as in the Annotated
    Transformer (and tensor2tensor's ``relu_dropout``); the paper itself only mentions the
    dropout on each sub-layer's output, which belongs to ``Residual``. ``dropout=0.0`` (the
    default) makes it the identity. ``bias=False`` drops b1 and b2.
    """

    def __init__(self, d_model, d_ff, activation="relu", dropout=0.0, *, bias=True, rng=None, dtype=None):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {', '.join(map(repr, ACTIVATIONS))}, received {activation!r}"
            )
        rng = make_rng(rng)
        self.d_model, self.d_ff = check_int(d_model, "d_model"), check_int(d_ff, "d_ff")
        self.activation_name = activation
        self.w_1 = Linear(d_model, d_ff, bias, rng=rng, dtype=dtype)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = Dropout(dropout, rng=rng)
        self.w_2 = Linear(d_ff, d_model, bias, rng=rng, dtype=dtype)

    def forward(self, x):
        """H = x W1 + b1 (ffn.1); A = act(H) (ffn.2); A' = dropout(A) (ffn.3); y = A' W2 + b2 (ffn.4).

        x: (B, T, D) -> y: (B, T, D); any leading axes work, every row is processed alone.
        H: (B, T, d_ff). Caches nothing itself: each child caches what its backward needs
        (w_1: x; the activation: its input; dropout: its mask; w_2: A').
        """
        H = self.w_1.forward(x)  # (B, T, d_ff)  (ffn.1)
        A = self.activation.forward(H)  # (ffn.2)
        A_drop = self.dropout.forward(A)  # (ffn.3)
        y = self.w_2.forward(A_drop)  # (B, T, D)  (ffn.4)
        self.save_for_backward(output=y)  # nothing to keep: the children keep what they need
        return y

    def backward(self, dy):
        """The children's backward passes in reverse order: dA' = dy W2^T and dW2, db2 (ffn.5, ffn.6);
        dA = dropout backward (ffn.7); dH = dA * act'(H) (ffn.8); dW1, db1 (ffn.9); dx = dH W1^T (ffn.10).

        dy: (B, T, D) -> dx: (B, T, D).
        """
        self.saved(dy)
        dA_drop = self.w_2.backward(dy)  # (ffn.5), (ffn.6)
        dA = self.dropout.backward(dA_drop)  # (ffn.7)
        dH = self.activation.backward(dA)  # (ffn.8)
        return self.w_1.backward(dH)  # (ffn.9), (ffn.10)
