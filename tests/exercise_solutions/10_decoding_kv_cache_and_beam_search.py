"""Reference answer to the exercise of notebooks/10_decoding_kv_cache_and_beam_search.ipynb (not shown there)."""

import math

import numpy as np

from transformer_np.layers import merge_heads, split_heads


def cached_attention_step(mha, x_new, K_past, V_past):
    """One new position through a self-attention layer with a KV cache (dec.2, dec.3).

    x_new (B, 1, D); K_past, V_past (B, H, t, Dh) -> (y_new (B, 1, D), K, V (B, H, t + 1, Dh)).
    """
    q = split_heads(mha.w_q.forward(x_new), mha.n_heads)  # (dec.2)
    k = split_heads(mha.w_k.forward(x_new), mha.n_heads)
    v = split_heads(mha.w_v.forward(x_new), mha.n_heads)
    K = np.concatenate([K_past, k], axis=2)  # (dec.3): append the new key and value
    V = np.concatenate([V_past, v], axis=2)
    S = q @ K.transpose(0, 1, 3, 2) / math.sqrt(mha.d_head)  # (B, H, 1, t + 1)
    P = np.exp(S - S.max(axis=-1, keepdims=True))
    P = P / P.sum(axis=-1, keepdims=True)
    y_new = mha.w_o.forward(merge_heads(P @ V))  # (mha.4), (mha.5)
    return y_new, K, V
