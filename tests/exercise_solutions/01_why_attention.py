"""Reference answer to the exercise of notebooks/01_why_attention.ipynb: backpropagation through
time for the Elman RNN (rnn.1).

Same names as the notebook's exercise cell; tests/test_exercises.py runs it in place of that cell,
then the notebook's check cell. The derivation is in notes/instructors/why_attention.md.
"""

import numpy as np

from transformer_np.init import make_rng, xavier_uniform
from transformer_np.module import Module, Parameter


class MyElmanRNN(Module):
    """h_t = tanh(x_t W + h_{t-1} U + b) (rnn.1) with h_0 = 0: x (B, T, D) -> H (B, T, N)."""

    def __init__(self, d_in, hidden_size, *, rng=None, dtype=np.float64):
        rng = make_rng(rng)
        self.weight_ih = Parameter(xavier_uniform(d_in, hidden_size, rng, dtype))  # W (D, N)
        self.weight_hh = Parameter(xavier_uniform(hidden_size, hidden_size, rng, dtype))  # U (N, N)
        self.bias = Parameter((0.1 * rng.standard_normal(hidden_size)).astype(dtype))  # b (N,)

    def forward(self, x):
        B, T, _ = x.shape
        N = self.weight_hh.shape[0]
        H = np.empty((B, T, N), dtype=x.dtype)
        h = np.zeros((B, N), dtype=x.dtype)
        for t in range(T):
            h = np.tanh(x[:, t] @ self.weight_ih.data + h @ self.weight_hh.data + self.bias.data)  # (rnn.1)
            H[:, t] = h
        self.save_for_backward(x, H, output=H)
        return H

    def backward(self, dH):
        """dH: (B, T, N), the loss's gradient of every state -> dx (B, T, D).

        Adds dW, dU and db into self.weight_ih.grad, self.weight_hh.grad and self.bias.grad.
        """
        x, H = self.saved(dH)
        B, T, N = H.shape
        dx = np.empty_like(x)
        dh_next = np.zeros((B, N), dtype=dH.dtype)  # what h_t receives from step t + 1 (none after the last)
        for t in reversed(range(T)):
            dh = dH[:, t] + dh_next  # both paths into h_t: the loss directly, and the next step
            du = dh * (1.0 - H[:, t] ** 2)  # through tanh: tanh'(u_t) = 1 - h_t^2
            h_prev = H[:, t - 1] if t > 0 else np.zeros((B, N), dtype=H.dtype)
            self.weight_ih.grad += x[:, t].T @ du  # W, U, b serve every step: add each step's term
            self.weight_hh.grad += h_prev.T @ du
            self.bias.grad += du.sum(axis=0)
            dx[:, t] = du @ self.weight_ih.data.T
            dh_next = du @ self.weight_hh.data.T  # what h_{t-1} receives from step t
        return dx
