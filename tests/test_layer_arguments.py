"""Constructor arguments of the leaf layers, the loss and the optimisers are checked when the object is
built, with a message naming the argument, what was expected and what was received (issue 10)."""

import numpy as np
import pytest

from transformer_np.layers import (
    GELU,
    Dropout,
    Embedding,
    LayerNorm,
    LearnedPositionalEmbedding,
    Linear,
    PositionwiseFeedForward,
    Residual,
    ScaledDotProductAttention,
    SinusoidalPositionalEncoding,
    Softmax,
    TiedOutput,
)
from transformer_np.module import Parameter
from transformer_np.optim import SGD, Adam, AdamW

W = [Parameter(np.ones((2, 3)))]

BAD = [
    # (what is built, exception, message)
    (lambda: LayerNorm(7, eps=0.0), ValueError, r"eps: expected a finite number > 0, received 0\.0"),
    (lambda: LayerNorm(7, eps=-1e-5), ValueError, r"eps: expected a finite number > 0, received -1e-05"),
    (lambda: LayerNorm(7, eps=float("nan")), ValueError, r"eps: expected a finite number > 0, received nan"),
    (lambda: LayerNorm(7, eps="1e-5"), ValueError, r"eps: expected a finite number > 0, received '1e-5'"),
    (lambda: LayerNorm(0), ValueError, r"d_model: expected an integer >= 1, received 0"),
    (lambda: Linear(-1, 4), ValueError, r"d_in: expected an integer >= 1, received -1"),
    (lambda: Linear(4, 0), ValueError, r"d_out: expected an integer >= 1, received 0"),
    (lambda: Linear(2.5, 4), ValueError, r"d_in: expected an integer >= 1, received 2\.5"),
    (lambda: Embedding(0, 4), ValueError, r"vocab_size: expected an integer >= 1, received 0"),
    (lambda: Embedding(5, -2), ValueError, r"d_model: expected an integer >= 1, received -2"),
    (lambda: Dropout(1.0), ValueError, r"p: expected a probability in \[0, 1\), received 1\.0"),
    (lambda: Dropout(-0.1), ValueError, r"p: expected a probability in \[0, 1\), received -0\.1"),
    (lambda: Dropout("0.1"), ValueError, r"p: expected a probability in \[0, 1\), received '0\.1'"),
    (lambda: Dropout(float("nan")), ValueError, r"p: expected a probability in \[0, 1\), received nan"),
    (lambda: ScaledDotProductAttention(dropout=1.5), ValueError,
     r"p: expected a probability in \[0, 1\), received 1\.5"),
    (lambda: GELU("fast"), ValueError, r"approximate: expected one of 'none', 'tanh', received 'fast'"),
    (lambda: Softmax(axis=1.5), TypeError, r"axis: expected an int, received 1\.5"),
    (lambda: PositionwiseFeedForward(8, 16, "swish"), ValueError,
     r"activation: expected one of 'relu', 'gelu', 'gelu_tanh', received 'swish'"),
    (lambda: PositionwiseFeedForward(8, 0), ValueError, r"d_ff: expected an integer >= 1, received 0"),
    (lambda: Residual(Linear(4, 4), 4, norm="middle"), ValueError,
     r"norm: expected one of 'post', 'pre', received 'middle'"),
    (lambda: Residual(Linear(4, 4), 0), ValueError, r"d_model: expected an integer >= 1, received 0"),
    (lambda: SinusoidalPositionalEncoding(0), ValueError, r"d_model: expected an integer >= 1, received 0"),
    (lambda: SinusoidalPositionalEncoding(8, max_len=0), ValueError, r"max_len: expected an integer >= 1, received 0"),
    (lambda: LearnedPositionalEmbedding(8, 2.0), ValueError, r"max_len: expected an integer >= 1, received 2\.0"),
    (lambda: TiedOutput(np.ones((3, 4))), TypeError,
     r"weight: expected the Parameter of an Embedding .* received ndarray"),
    (lambda: SGD(W, lr=-0.1), ValueError, r"lr: expected a finite number >= 0, received -0\.1"),
    (lambda: SGD(W, lr=float("inf")), ValueError, r"lr: expected a finite number >= 0, received inf"),
    (lambda: SGD(W, lr=0.1, momentum=-0.5), ValueError, r"momentum: expected a finite number >= 0, received -0\.5"),
    (lambda: SGD(W, lr=0.1, weight_decay=-1e-4), ValueError,
     r"weight_decay: expected a finite number >= 0, received -0\.0001"),
    (lambda: Adam(W, lr=-1e-3), ValueError, r"lr: expected a finite number >= 0, received -0\.001"),
    (lambda: Adam(W, betas=(0.9, 1.0)), ValueError,
     r"betas: expected two numbers in \[0, 1\), received \(0\.9, 1\.0\)"),
    (lambda: Adam(W, betas=(-0.1, 0.999)), ValueError,
     r"betas: expected two numbers in \[0, 1\), received \(-0\.1, 0\.999\)"),
    (lambda: Adam(W, betas=0.9), ValueError, r"betas: expected two numbers in \[0, 1\), received 0\.9"),
    (lambda: Adam(W, betas=(0.9,)), ValueError, r"betas: expected two numbers in \[0, 1\), received \(0\.9,\)"),
    (lambda: AdamW(W, eps=0.0), ValueError, r"eps: expected a positive number, received 0"),
    (lambda: AdamW(W, eps=-1e-8), ValueError, r"eps: expected a finite number >= 0, received -1e-08"),
    (lambda: AdamW(W, weight_decay=-0.1), ValueError, r"weight_decay: expected a finite number >= 0, received -0\.1"),
]


@pytest.mark.parametrize("build, error, message", BAD, ids=[m for _, _, m in BAD])
def test_a_bad_constructor_argument_names_expected_and_received(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_layernorm_with_a_tiny_positive_eps_stays_finite_on_a_constant_row():
    layer = LayerNorm(4, eps=1e-12, dtype=np.float64)
    y = layer.forward(np.full((2, 3, 4), 5.0))
    assert np.array_equal(y, np.zeros_like(y))
    assert np.isfinite(layer.backward(np.ones_like(y))).all()


def test_numpy_integers_and_floats_are_accepted():
    assert Linear(np.int64(3), np.int32(2)).weight.shape == (3, 2)
    assert LayerNorm(np.int64(3), eps=np.float32(1e-3)).eps == pytest.approx(1e-3)
    assert Dropout(np.float32(0.25)).p == 0.25
