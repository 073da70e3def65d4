"""Linear (kernelised) attention: softmax's e^(q.k) replaced by a product of features phi(q).phi(k).
Derivation: notes/linear_attention.md.

    LinearAttention()                   phi(x) = elu(x) + 1 (Katharopoulos et al. 2020): another
                                        model, not an approximation of softmax attention
    PerformerAttention(d_head, m)       FAVOR+ (Choromanski et al. 2021): m positive orthogonal
                                        random features whose products approximate e^(q.k / sqrt(Dh))

With phi, O_i = phi(q_i) S / (phi(q_i) . z) where S = sum_j phi(k_j) v_j^T (F x Dv) and
z = sum_j phi(k_j) (F) (lat.2), (lat.3): the keys are summed once, never paired with every query,
so time and memory grow linearly in T. The causal form takes prefix sums of S and z (lat.4),
computed chunk by chunk (lat.10).

Masks: kernelised attention sums over keys, so it honours exactly the masks that are a key
selection, optionally under the causal rule: None, a key-padding mask (B, 1, 1, Tk), a causal
mask (the last Tq rows of a length-Tk one) or their AND, as the models build them. Any other
mask is refused with an error, never approximated. A query row that sees no key gets O = 0 and
zero gradient.
"""

import math

from ..backend import get_array_module, get_backend
from ..module import Module
from ..validate import check_int
from .attention import ScaledDotProductAttention
from .masks import causal_mask


class KernelAttention(Module):
    """phi(Q) (phi(K)^T V) / (phi(Q) phi(K)^T 1) on (B, H, T, Dh) arrays: the shared machinery.

    A subclass gives the feature map: ``features(X, keys)`` -> (phi(X), saved) and
    ``features_backward(dphi, saved)`` -> dX. ``attn_weights`` is None: no (Tq, Tk) matrix exists.
    The causal form runs over chunks of ``chunk`` queries (lat.10): the prefix sums are kept at
    chunk starts only, O(T / chunk F Dv + T chunk) memory instead of O(T F Dv).
    """

    attn_weights = None
    causal = False  # True: the causal rule without a mask array (query i sees keys 0 .. i + Tk - Tq)
    chunk = 64

    def forward(self, Q, K, V, mask=None):
        """O = phi(Q) S / (phi(Q) z) (lat.2), (lat.3); causal by prefix sums (lat.4), chunk by chunk (lat.10).

        Q: (B, H, Tq, Dh), K: (B, Hkv, Tk, Dh), V: (B, Hkv, Tk, Dv) -> O: (B, H, Tq, Dv), Hkv
        dividing H (gqa.2). mask: None, key padding, causal, or both (see the module docstring).
        Caches phi(Q), phi(K) (masked), V, S and z (their values at each chunk start when
        causal), O and 1 / (phi(Q) z): memory linear in T.
        """
        ScaledDotProductAttention._check_inputs(Q, K, V, mask)
        keys, causal = key_selection(mask, Q.shape[2], K.shape[2])
        causal = causal or self.causal
        if causal and Q.shape[2] > K.shape[2]:
            raise ValueError(f"{type(self).__name__}: causal: expected Tq <= Tk (the queries are the last Tq of the "
                             f"Tk positions), received Tq={Q.shape[2]}, Tk={K.shape[2]}")
        xp = get_array_module(Q)
        B, H, Tq, Dh = Q.shape
        Hkv, Tk = K.shape[1], K.shape[2]
        fq, q_saved = self.features(Q.reshape(B, Hkv, H // Hkv, Tq, Dh), keys=False)  # (B, Hkv, G, Tq, F)  (lat.1)
        fk, k_saved = self.features(K[:, :, None], keys=True)  # (B, Hkv, 1, Tk, F)  (lat.1)
        if keys is not None:
            fk = fk * _grouped(keys, Hkv)  # (B, Hkv, G', Tk, F): hidden keys contribute nothing
        Vg = V[:, :, None]  # (B, Hkv, 1, Tk, Dv)
        if causal:
            num, den, S, z = self._causal_sums(xp, fq, fk, Vg)  # (lat.4), (lat.10)
        else:
            S = xp.swapaxes(fk, -1, -2) @ Vg  # (B, Hkv, G', F, Dv)  (lat.2)
            z = fk.sum(axis=-2)  # (B, Hkv, G', F)  (lat.2)
            num = fq @ S  # (B, Hkv, G, Tq, Dv)  (lat.3)
            den = (fq * z[..., None, :]).sum(axis=-1)  # (B, Hkv, G, Tq)  (lat.3)
        inv = xp.where(den > 0, 1.0 / xp.where(den > 0, den, 1.0), 0.0)  # 1 / den; 0 for a row that sees no key
        O = num * inv[..., None]  # (B, Hkv, G, Tq, Dv)  (lat.3)
        self.save_for_backward(fq, q_saved, fk, k_saved, keys, Vg, S, z, O, inv, causal, output=O.reshape(B, H, Tq, -1))
        return O.reshape(B, H, Tq, V.shape[-1])  # (B, H, Tq, Dv)

    def _causal_sums(self, xp, fq, fk, Vg):
        """Numerators (B, Hkv, G, Tq, Dv) and denominators (B, Hkv, G, Tq) of (lat.4) by chunks (lat.10),
        and the sums S (F, Dv), z (F) at each chunk start (lists, one entry per chunk)."""
        Tq, Tk = fq.shape[-2], fk.shape[-2]
        off = Tk - Tq  # query i sits at position off + i
        S = xp.swapaxes(fk[..., :off, :], -1, -2) @ Vg[..., :off, :]  # (B, Hkv, G', F, Dv): the keys before every query
        z = fk[..., :off, :].sum(axis=-2)  # (B, Hkv, G', F)
        num = xp.empty(fq.shape[:-1] + (Vg.shape[-1],), dtype=fq.dtype)  # (B, Hkv, G, Tq, Dv)
        den = xp.empty(fq.shape[:-1], dtype=fq.dtype)  # (B, Hkv, G, Tq)
        S_starts, z_starts = [], []
        for q0, q1 in _chunks(Tq, self.chunk):
            fq_c, fk_c, V_c = fq[..., q0:q1, :], fk[..., off + q0:off + q1, :], Vg[..., off + q0:off + q1, :]
            A = (fq_c @ xp.swapaxes(fk_c, -1, -2)) * _lower(xp, q1 - q0, fq.dtype)  # (B, Hkv, G, n, n): phi(q_i).phi(k_j), j <= i
            num[..., q0:q1, :] = fq_c @ S + A @ V_c  # (lat.10)
            den[..., q0:q1] = (fq_c * z[..., None, :]).sum(axis=-1) + A.sum(axis=-1)  # (lat.10)
            S_starts.append(S)
            z_starts.append(z)
            S = S + xp.swapaxes(fk_c, -1, -2) @ V_c  # (lat.4): the chunk's keys join the prefix
            z = z + fk_c.sum(axis=-2)
        return num, den, S_starts, z_starts

    def backward(self, dO):
        """dnum, dden (lat.5); dphi(Q) (lat.6); dS, dz summed over the queries, suffix sums when
        causal (lat.7), chunk by chunk (lat.10); dphi(K), dV (lat.8); then back through the feature map.

        dO: (B, H, Tq, Dv) -> (dQ, dK, dV) with the shapes of Q, K, V.
        """
        fq, q_saved, fk, k_saved, keys, Vg, S, z, O, inv, causal = self.saved(dO)
        xp = get_array_module(dO)
        B, Hkv, G, Tq, F = fq.shape
        Gk = fk.shape[2]
        dO = dO.reshape(O.shape)  # (B, Hkv, G, Tq, Dv)
        dnum = dO * inv[..., None]  # (B, Hkv, G, Tq, Dv)  (lat.5)
        dden = -(dO * O).sum(axis=-1) * inv  # (B, Hkv, G, Tq)  (lat.5)
        if causal:
            dfq, dfk, dV = self._causal_backward(xp, fq, fk, Vg, S, z, dnum, dden)
        else:
            dfq = dnum @ xp.swapaxes(S, -1, -2) + dden[..., None] * z[..., None, :]  # (B, Hkv, G, Tq, F)  (lat.6)
            dS = _sum_to(xp.swapaxes(fq, -1, -2) @ dnum, Gk)  # (B, Hkv, G', F, Dv)  (lat.7)
            dz = _sum_to((fq * dden[..., None]).sum(axis=-2), Gk)  # (B, Hkv, G', F)  (lat.7)
            dfk = Vg @ xp.swapaxes(dS, -1, -2) + dz[..., None, :]  # (B, Hkv, G', Tk, F)  (lat.8)
            dV = _sum_to(fk @ dS, 1)  # (B, Hkv, 1, Tk, Dv)  (lat.8)
        if keys is not None:
            dfk = dfk * _grouped(keys, Hkv)  # a hidden key's features were multiplied by 0
        dQ = self.features_backward(dfq, q_saved)  # (B, Hkv, G, Tq, Dh)
        dK = self.features_backward(_sum_to(dfk, 1), k_saved)  # (B, Hkv, 1, Tk, Dh)
        return dQ.reshape(B, Hkv * G, Tq, -1), dK[:, :, 0], dV[:, :, 0]

    def _causal_backward(self, xp, fq, fk, Vg, S_starts, z_starts, dnum, dden):
        """(lat.6)-(lat.8) chunk by chunk, last chunk first: R, r are the suffix sums (lat.7) over the
        queries of the later chunks, which see every key of this chunk through their prefix sums."""
        Tq, Tk, Gk = fq.shape[-2], fk.shape[-2], fk.shape[2]
        off = Tk - Tq
        dfq, dfk, dV = xp.empty_like(fq), xp.empty_like(fk), xp.empty(Vg.shape, dtype=fq.dtype)
        R = xp.zeros(S_starts[0].shape, dtype=fq.dtype)  # (B, Hkv, G', F, Dv): sum of phi(q_i) dn_i^T, later queries
        r = xp.zeros(z_starts[0].shape, dtype=fq.dtype)  # (B, Hkv, G', F): sum of phi(q_i) dd_i, later queries
        for (q0, q1), S, z in reversed(list(zip(_chunks(Tq, self.chunk), S_starts, z_starts))):
            k0, k1 = off + q0, off + q1
            fq_c, fk_c, V_c = fq[..., q0:q1, :], fk[..., k0:k1, :], Vg[..., k0:k1, :]
            dn, dd = dnum[..., q0:q1, :], dden[..., q0:q1]
            lower = _lower(xp, q1 - q0, fq.dtype)
            A = (fq_c @ xp.swapaxes(fk_c, -1, -2)) * lower  # (B, Hkv, G, n, n), recomputed
            dA = (dn @ xp.swapaxes(V_c, -1, -2) + dd[..., None]) * lower  # (B, Hkv, G, n, n): dn_i . v_j + dd_i, j <= i
            dfq[..., q0:q1, :] = dn @ xp.swapaxes(S, -1, -2) + dd[..., None] * z[..., None, :] + dA @ fk_c  # (lat.6)
            dfk[..., k0:k1, :] = _sum_to(xp.swapaxes(dA, -1, -2) @ fq_c, Gk) + V_c @ xp.swapaxes(R, -1, -2) + r[..., None, :]  # (lat.8)
            dV[..., k0:k1, :] = _sum_to(xp.swapaxes(A, -1, -2) @ dn, 1) + _sum_to(fk_c @ R, 1)  # (lat.8)
            R = R + _sum_to(xp.swapaxes(fq_c, -1, -2) @ dn, Gk)  # (lat.7): this chunk's queries join the suffix
            r = r + _sum_to((fq_c * dd[..., None]).sum(axis=-2), Gk)
        dfk[..., :off, :] = Vg[..., :off, :] @ xp.swapaxes(R, -1, -2) + r[..., None, :]  # (lat.8): keys every query sees
        dV[..., :off, :] = _sum_to(fk[..., :off, :] @ R, 1)  # (lat.8)
        return dfq, dfk, dV


class LinearAttention(KernelAttention):
    """Kernelised attention with phi(x) = elu(x) + 1 (lat.1), positive everywhere; no parameters.
    ``causal=True`` applies the causal rule with no mask array (a mask may still select keys);
    ``chunk``: queries per chunk of the causal form (lat.10)."""

    def __init__(self, *, causal=False, chunk=64):
        self.causal = _check_bool(causal, "causal")
        self.chunk = check_int(chunk, "chunk")

    def features(self, X, keys):
        """phi(X) = elu(X) + 1 = X + 1 where X > 0, e^X elsewhere (lat.1). X: (..., T, Dh) -> (..., T, Dh)."""
        xp = get_array_module(X)
        phi = xp.where(X > 0, X + 1.0, xp.exp(xp.minimum(X, 0.0)))  # (lat.1)
        return phi, (X, phi)

    def features_backward(self, dphi, saved):
        """dX = dphi * phi'(X), phi' = 1 where X > 0, e^X = phi elsewhere (lat.9)."""
        X, phi = saved
        xp = get_array_module(X)
        return dphi * xp.where(X > 0, 1.0, phi)  # (lat.9)


class PerformerAttention(KernelAttention):
    """FAVOR+: phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / Dh^(1/4) (fav.1), with m
    random features W (m, Dh) drawn once, orthogonal in blocks of Dh (fav.2); E[phi(q) . phi(k)]
    = exp(q . k / sqrt(Dh)), softmax attention's kernel. No parameters.

    ``causal``, ``chunk`` as for LinearAttention. ``seed`` fixes W (default 0), drawn once with
    NumPy and moved to the input's backend at each forward, so a model rebuilt from its
    configuration, e.g. from a checkpoint, has the same features. A constant subtracted in the exponent for numerical
    safety (per query row, and per batch element and head over all keys) cancels between the
    numerator and the denominator of (lat.3): the output and its gradient do not depend on it.
    """

    def __init__(self, d_head, n_features=64, *, seed=0, causal=False, chunk=64):
        np = get_backend("numpy")  # the features are drawn once, on the CPU
        self.causal = _check_bool(causal, "causal")
        self.chunk = check_int(chunk, "chunk")
        self.d_head = check_int(d_head, "d_head")
        self.n_features = check_int(n_features, "n_features")
        rng = np.random.default_rng(check_int(seed, "seed", low=0))
        blocks = []
        for _ in range(-(-self.n_features // self.d_head)):
            q, r = np.linalg.qr(rng.standard_normal((self.d_head, self.d_head)))  # orthonormal columns
            blocks.append((q * np.sign(np.diag(r))).T)  # signs fixed so that the directions are uniform
        W = np.concatenate(blocks)[: self.n_features]  # (m, Dh): orthonormal rows within a block (fav.2)
        norms = np.sqrt((rng.standard_normal((self.n_features, self.d_head)) ** 2).sum(axis=1))  # chi(Dh) lengths
        self.W = W * norms[:, None]  # (m, Dh): each row distributed as a standard normal vector (fav.2)

    def features(self, X, keys):
        """phi(X) (fav.1). X: (..., T, Dh) -> (..., T, m)."""
        if X.shape[-1] != self.d_head:
            raise ValueError(f"PerformerAttention: expected heads of width d_head={self.d_head}, received {X.shape[-1]}")
        xp = get_array_module(X)
        W = xp.asarray(self.W, dtype=X.dtype)
        Xs = X * (1.0 / math.sqrt(math.sqrt(self.d_head)))  # x' = x / Dh^(1/4)
        U = Xs @ W.T - 0.5 * (Xs * Xs).sum(axis=-1, keepdims=True)  # (..., T, m): W x' - |x'|^2 / 2
        axes = (-2, -1) if keys else (-1,)
        U -= U.max(axis=axes, keepdims=True)  # the constant that cancels in (lat.3)
        phi = xp.exp(U) * (1.0 / math.sqrt(self.n_features))  # (fav.1)
        return phi, (Xs, phi, W)

    def features_backward(self, dphi, saved):
        """dU = dphi * phi; dx' = dU W - x' rowsum(dU); dx = dx' / Dh^(1/4) (fav.3)."""
        Xs, phi, W = saved
        dU = dphi * phi  # (..., T, m)
        dXs = dU @ W - Xs * dU.sum(axis=-1, keepdims=True)  # (fav.3)
        return dXs * (1.0 / math.sqrt(math.sqrt(self.d_head)))  # (fav.3)


def key_selection(mask, Tq, Tk):
    """(keys, causal) when ``mask`` is None, a key selection (B|1, H|1, 1, Tk), a causal mask
    (query i sees keys 0 .. i + Tk - Tq), or the AND of both; any other mask raises ValueError.
    keys: None or the boolean (B|1, H|1, 1, Tk) selection; causal: whether the rule applies."""
    if mask is None:
        return None, False
    if mask.shape[2] == 1 and mask.shape[3] == Tk:
        return mask, False
    xp = get_array_module(mask)
    keys = mask[:, :, -1:, :] if mask.shape[3] == Tk else None
    if keys is not None:
        if bool((mask == keys).all()):
            return keys, False
        if Tq <= Tk and bool((mask == (keys & causal_mask(Tq, xp, offset=Tk - Tq))).all()):
            return keys, True
    raise ValueError(
        f"kernelised attention: expected a mask it can honour, None, a key-padding mask (B, 1, 1, Tk), a causal "
        f"mask or both ANDed (Tq={Tq}, Tk={Tk}), received a mask of shape {tuple(mask.shape)} that is none of "
        "these (the keys are summed once for all queries, so other (query, key) patterns cannot be hidden)"
    )


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, received {value!r}")
    return value


def _grouped(keys, Hkv):
    """A (b, h, 1, Tk) key selection as a (b, Hkv|1, G|1, Tk, 1) multiplier of phi(K)."""
    b, h, _, Tk = keys.shape
    shape = (b, 1, 1, Tk, 1) if h == 1 else (b, Hkv, h // Hkv, Tk, 1)
    return keys.reshape(shape)


def _sum_to(x, groups):
    """Sum axis 2 (the query heads of a group) down to ``groups`` (1 or all of them)."""
    return x.sum(axis=2, keepdims=True) if groups == 1 and x.shape[2] != 1 else x


def _chunks(n, size):
    """[(start, stop), ...] covering 0 .. n in steps of ``size``; the last chunk may be shorter."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _lower(xp, n, dtype):
    """(n, n) lower triangle of ones (diagonal included): within a chunk, key j is visible from query i when j <= i."""
    return xp.tril(xp.ones((n, n), dtype=dtype))
