"""The T5 relative-position bias (Raffel et al., 2020): a learned scalar per head and per bucket of
query-key distance, added to the scores. Derivation: notes/score_bias.md.

    rel = T5RelativeBias(n_heads, causal=False)   # 32 buckets, distances up to 128 as T5
    bias = rel.forward(Tq, Tk, like=Q)            # (1, H, Tq, Tk) = weight[bucket(j - i), h]  (rel.2)

Every distance has a bucket (the far ones share the last), so there is no maximum position.
T5 shares one table between all the layers of a stack: give the layers the same Parameter
(the models do), and each layer's backward adds its share into the one .grad.
"""

import math

from ..backend import get_array_module, get_backend, scatter_add
from ..init import make_rng, normal
from ..module import Module, Parameter
from ..validate import check_int
from .alibi import query_key_distance

T5_BUCKETS, T5_MAX_DISTANCE = 32, 128  # T5's defaults


def t5_buckets(relative, causal, n_buckets=T5_BUCKETS, max_distance=T5_MAX_DISTANCE):
    """Bucket ids (same shape as ``relative``, ints in [0, n_buckets)) of the key-minus-query
    distances ``relative`` = j - i, as T5 defines them (rel.1).

    Bidirectional (causal=False): half of the buckets for keys after the query, half for the
    others. Causal: keys after the query all share bucket 0 (they are masked anyway) and every
    bucket goes to n = i - j >= 0. Within a half of N buckets: n < N/2 gets its own bucket n; a
    larger n gets N/2 + floor(log(n / (N/2)) / log(max_distance / (N/2)) (N - N/2)), at most N - 1,
    so the buckets widen logarithmically and every distance past max_distance shares the last.
    """
    np = get_backend("numpy")
    n = -np.asarray(relative)  # i - j: how far back the key is
    N, bucket = n_buckets, np.zeros(n.shape, dtype=np.int64)
    if causal:
        n = np.maximum(n, 0)
    else:
        N //= 2
        bucket += (n < 0) * N  # keys after the query: the upper half
        n = np.abs(n)
    exact = N // 2
    far = np.maximum(n, max(exact, 1))  # log of the far distances only (the near ones are discarded)
    log_bucket = exact + (np.log(far / max(exact, 1)) / math.log(max_distance / max(exact, 1)) * (N - exact))
    log_bucket = np.minimum(log_bucket.astype(np.int64), N - 1)
    return bucket + np.where(n < exact, n, log_bucket)  # (rel.1)


class T5RelativeBias(Module):
    """A learned bias weight[bucket(j - i), h] per head h, (1, H, Tq, Tk) (rel.2).

    weight: (n_buckets, H), N(0, 0.02^2) at first. causal: T5's decoder bucketing (keys after
    the query share bucket 0; all buckets for the past) or, causal=False, the encoder's (half the
    buckets each way). n_buckets >= 2; max_distance > n_buckets / 4 (bidirectional) or / 2.
    """

    def __init__(self, n_heads, causal=False, n_buckets=T5_BUCKETS, max_distance=T5_MAX_DISTANCE, *, rng=None,
                 dtype=None):
        self.n_heads = check_int(n_heads, "n_heads")
        if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 2:
            raise ValueError(f"T5RelativeBias: expected n_buckets an integer >= 2 (at least the near and the far "
                             f"distances), received {n_buckets!r}")
        self.causal, self.n_buckets = bool(causal), n_buckets
        exact = (n_buckets if causal else n_buckets // 2) // 2
        if not isinstance(max_distance, int) or isinstance(max_distance, bool) or max_distance <= max(exact, 1):
            raise ValueError(f"T5RelativeBias: expected max_distance an integer > {max(exact, 1)} (the distances "
                             f"with a bucket of their own), received {max_distance!r}")
        self.max_distance = max_distance
        self.weight = Parameter(normal((n_buckets, self.n_heads), 0.02, make_rng(rng), dtype))

    def forward(self, Tq, Tk, *, like=None):
        """bias[0, h, i, j] = weight[bucket(j - i), h] (rel.2), (1, H, Tq, Tk) in the table's dtype.

        Tq queries, the last Tq of Tk positions (Tq = Tk without a cache). ``like`` is accepted
        for the same call as ALiBi and not needed (the table fixes dtype and backend).
        Caches the (Tq, Tk) bucket ids.
        """
        Tq, Tk = check_int(Tq, "Tq"), check_int(Tk, "Tk")
        if Tq > Tk:
            raise ValueError(f"T5RelativeBias: expected at most as many queries as keys, received Tq={Tq}, Tk={Tk}")
        xp = get_array_module(self.weight.data)
        buckets = t5_buckets(-query_key_distance(Tq, Tk), self.causal, self.n_buckets, self.max_distance)  # (rel.1)
        buckets = xp.asarray(buckets)  # (Tq, Tk)
        bias = self.weight.data[buckets].transpose(2, 0, 1)[None]  # (1, H, Tq, Tk)  (rel.2)
        self.save_for_backward(buckets, output=bias)
        return bias

    def backward(self, dbias):
        """dweight[b, h] += sum of dbias[0, h, i, j] over the (i, j) in bucket b (rel.3), a scatter-add
        as (emb.4) for token ids. dbias: (1, H, Tq, Tk) -> None (no floating-point input)."""
        (buckets,) = self.saved(dbias)
        rows = dbias[0].reshape(self.n_heads, -1).T  # (Tq Tk, H): one row per query-key pair
        scatter_add(self.weight.grad, buckets.reshape(-1), rows)  # (rel.3)
        return None
