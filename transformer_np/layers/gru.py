"""GRU: a gated recurrent layer, run forward through time, with a hand-written backward through
time. Derivation: notes/rnn.md (rnn.2)-(rnn.17)."""

import math

from ..backend import backend_name, get_array_module, to_backend
from ..init import make_rng
from ..module import Module, Parameter
from ..validate import check_float, check_last_dim, check_ndim, check_same_dtype
from .linear import Linear


def sigmoid(u):
    """sigma(u) = 1 / (1 + e^-u), written as (1 + tanh(u / 2)) / 2: no overflow for any u, dtype kept."""
    xp = get_array_module(u)
    return 0.5 * (1.0 + xp.tanh(0.5 * u))


class GRU(Module):
    """One GRU layer (PyTorch's form and gate order: reset r, update z, candidate n).

    ``input``: a Linear(d_in, 3N) holding W and b of (rnn.2), applied to every position at once.
    ``weight_hh`` U (N, 3N) and ``bias_hh`` c (3N,): the recurrent product (rnn.3).
    Initialisation: W Xavier-uniform (the Linear's), U and c uniform in +-1/sqrt(N) as PyTorch,
    b zero. With ``weight_ih = W.T``, ``weight_hh = U.T``, ``bias_ih = b``, ``bias_hh = c`` the
    layer computes what ``torch.nn.GRU(d_in, N, batch_first=True)`` computes.
    """

    def __init__(self, d_in, hidden_size, *, rng=None, dtype=None):
        rng = make_rng(rng)
        self.d_in, self.hidden_size = d_in, hidden_size
        N, bound = hidden_size, 1.0 / math.sqrt(hidden_size)
        self.input = Linear(d_in, 3 * N, rng=rng, dtype=dtype)
        dtype = self.input.weight.dtype
        self.weight_hh = Parameter(rng.uniform(-bound, bound, size=(N, 3 * N)).astype(dtype))
        self.bias_hh = Parameter(rng.uniform(-bound, bound, size=3 * N).astype(dtype))

    def forward(self, x, h0=None, mask=None):
        """Every state H = (h_1 .. h_T) of the recurrence (rnn.2)-(rnn.7).

        x: (B, T, D); h0: (B, N) initial state, or None for zeros; mask: boolean (B, T), True
        at a real token, or None (every step real); a masked step carries the state (rnn.7)
        -> H: (B, T, N), the dtype of x. Caches, per step, h_{t-1}, r_t, z_t, n_t and g^n_t
        (each stacked to (B, T, N)), the mask and whether h0 was given; the input Linear caches x.
        """
        xp = get_array_module(x)
        B, T, N = *self._check(x, h0, mask), self.hidden_size
        mask = None if mask is None else to_backend(mask, backend_name(x))  # masks come from the CPU pipeline
        A = self.input.forward(x)  # (B, T, 3N)   (rnn.2)
        U, c = self.weight_hh.data, self.bias_hh.data
        h = xp.zeros((B, N), dtype=x.dtype) if h0 is None else h0
        H_prev, R, Z, N_cand, G_n, H = (xp.empty((B, T, N), dtype=x.dtype) for _ in range(6))
        for t in range(T):
            G = h @ U + c  # (B, 3N)   (rnn.3)
            r = sigmoid(A[:, t, :N] + G[:, :N])  # (B, N)   (rnn.4)
            z = sigmoid(A[:, t, N:2 * N] + G[:, N:2 * N])  # (B, N)   (rnn.4)
            n = xp.tanh(A[:, t, 2 * N:] + r * G[:, 2 * N:])  # (B, N)   (rnn.5)
            h_new = (1.0 - z) * n + z * h  # (B, N)   (rnn.6)
            if mask is not None:
                h_new = xp.where(mask[:, t, None], h_new, h)  # (rnn.7)
            H_prev[:, t], R[:, t], Z[:, t], N_cand[:, t], G_n[:, t] = h, r, z, n, G[:, 2 * N:]
            H[:, t] = h = h_new
        self.save_for_backward(H_prev, R, Z, N_cand, G_n, mask, h0 is not None, output=H)
        return H

    def backward(self, dH):
        """Backward through time, t = T .. 1, carrying delta (rnn.8)-(rnn.14); dU, dc summed over
        the steps (rnn.15); the input Linear's backward for every position at once (rnn.16).

        dH: (B, T, N), the loss's gradient of every state -> dx (B, T, D), or (dx, dh0) with
        dh0 (B, N) (rnn.17) when forward was given h0. Adds into the gradients of the input
        Linear, ``weight_hh`` and ``bias_hh``.
        """
        H_prev, R, Z, N_cand, G_n, mask, has_h0 = self.saved(dH)
        xp = get_array_module(dH)
        B, T, N = dH.shape
        U = self.weight_hh.data
        dA = xp.empty((B, T, 3 * N), dtype=dH.dtype)
        dG = xp.empty((B, 3 * N), dtype=dH.dtype)
        delta = xp.zeros((B, N), dtype=dH.dtype)  # the gradient carried from step t + 1
        for t in reversed(range(T)):
            h_prev, r, z, n, g_n = H_prev[:, t], R[:, t], Z[:, t], N_cand[:, t], G_n[:, t]
            dh = dH[:, t] + delta  # (rnn.8)
            if mask is None:
                dh_tilde, delta = dh, 0.0
            else:
                dh_tilde = xp.where(mask[:, t, None], dh, 0.0)  # (rnn.9)
                delta = dh - dh_tilde  # (rnn.9): a padded step passes dh on unchanged
            dn = dh_tilde * (1.0 - z)  # (rnn.10)
            dz = dh_tilde * (h_prev - n)  # (rnn.10)
            delta += dh_tilde * z  # (rnn.10)
            da_n = dn * (1.0 - n * n)  # (rnn.11)
            dr = da_n * g_n  # (rnn.11)
            dG[:, 2 * N:] = da_n * r  # (rnn.11): dg^n
            dG[:, :N] = dr * r * (1.0 - r)  # (rnn.12): dg^r = da^r
            dG[:, N:2 * N] = dz * z * (1.0 - z)  # (rnn.12): dg^z = da^z
            dA[:, t, :2 * N] = dG[:, :2 * N]  # (rnn.13): the gates' blocks of dA and dG agree
            dA[:, t, 2 * N:] = da_n  # (rnn.13)
            delta += dG @ U.T  # (rnn.14)
            self.weight_hh.grad += h_prev.T @ dG  # (rnn.15)
            self.bias_hh.grad += dG.sum(axis=0)  # (rnn.15)
        dx = self.input.backward(dA)  # (rnn.16)
        return (dx, delta) if has_h0 else dx  # delta is now dh0 (rnn.17)

    def _check(self, x, h0, mask):
        """x: float (B, T, D); h0: (B, N) of x's dtype or None; mask: boolean (B, T) or None. Returns (B, T)."""
        check_float(x)
        check_ndim(x, 3, "x", "(B, T, D)")
        check_last_dim(x, self.d_in)
        check_same_dtype(x, self.weight_hh.data, "x", "weight_hh")
        B, T, _ = x.shape
        if h0 is not None:
            check_float(h0, "h0")
            check_same_dtype(h0, self.weight_hh.data, "h0", "weight_hh")
            if tuple(h0.shape) != (B, self.hidden_size):
                raise ValueError(f"h0: expected shape (B, N) = {(B, self.hidden_size)}, received {tuple(h0.shape)}")
        if mask is not None and (getattr(mask, "dtype", None) != bool or tuple(mask.shape) != (B, T)):
            raise ValueError(f"mask: expected a boolean (B, T) = {(B, T)} array (True = real token), received "
                             f"{getattr(mask, 'dtype', type(mask).__name__)} of shape {getattr(mask, 'shape', None)}")
        return B, T
