"""Grouped-query and multi-query attention (notes/gqa.md): the same numbers as an independent
formulation (K and V repeated into H heads; PyTorch's enable_gqa when installed), no copy of
K and V, the cache holding n_kv_heads heads, both model families, and the errors."""

import math

import numpy as np
import pytest

from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.layers.masks import causal_mask, combine_masks, padding_mask_from_lengths
from transformer_np.layers.multihead import MultiHeadAttention
from transformer_np.models import GPT, GPTConfig, Transformer
from transformer_np.models.counting import kv_cache_bytes, parameter_count

B, TQ, TK, H, DH, DV = 3, 5, 7, 6, 4, 3
TOL = 1e-12


def _mask(Tq, Tk):
    """(B, 1, Tq, Tk): key padding (lengths Tk, 4, 2) AND causal (the last Tq rows of a length-Tk mask)."""
    return combine_masks(padding_mask_from_lengths(np.array([Tk, 4, 2]), Tk), causal_mask(Tq, offset=Tk - Tq))


def repeated_attention(Q, K, V, mask):
    """The reference: every key/value head copied for the G query heads of its group, then
    plain softmax attention head by head, written out with explicit loops."""
    H_, Hkv = Q.shape[1], K.shape[1]
    G = H_ // Hkv
    K_rep, V_rep = np.repeat(K, G, axis=1), np.repeat(V, G, axis=1)  # head h gets K[h // G]
    O = np.zeros(Q.shape[:3] + (V.shape[-1],))
    full = np.broadcast_to(mask, Q.shape[:3] + (K.shape[2],))
    for b in range(Q.shape[0]):
        for h in range(H_):
            S = Q[b, h] @ K_rep[b, h].T / math.sqrt(Q.shape[-1])
            S = np.where(full[b, min(h, full.shape[1] - 1)], S, -np.inf)
            with np.errstate(invalid="ignore"):
                P = np.exp(S - S.max(axis=-1, keepdims=True))
                P = np.nan_to_num(P / P.sum(axis=-1, keepdims=True))
            O[b, h] = P @ V_rep[b, h]
    return O


@pytest.mark.parametrize("n_kv", [1, 2, 3, 6])
def test_attention_with_fewer_key_value_heads_equals_repeating_them(n_kv):
    rng = np.random.default_rng(n_kv)
    Q = rng.standard_normal((B, H, TQ, DH))
    K, V = rng.standard_normal((B, n_kv, TK, DH)), rng.standard_normal((B, n_kv, TK, DV))
    mask = _mask(TQ, TK)
    core = ScaledDotProductAttention()
    O = core.forward(Q, K, V, mask=mask)
    assert O.shape == (B, H, TQ, DV) and core.attn_weights.shape == (B, H, TQ, TK)
    assert np.abs(O - repeated_attention(Q, K, V, mask)).max() < TOL
    dO = rng.standard_normal(O.shape)
    dQ, dK, dV = core.backward(dO)
    assert dK.shape == K.shape and dV.shape == V.shape  # summed over each group (gqa.4), (gqa.5)
    # the gradients of the repeated formulation, summed back over the copies of each head
    G = H // n_kv
    full = ScaledDotProductAttention()
    full.forward(Q, np.repeat(K, G, axis=1), np.repeat(V, G, axis=1), mask=mask)
    dQ_ref, dK_rep, dV_rep = full.backward(dO)
    assert np.abs(dQ - dQ_ref).max() < TOL
    assert np.abs(dK - dK_rep.reshape(B, n_kv, G, TK, DH).sum(axis=2)).max() < TOL
    assert np.abs(dV - dV_rep.reshape(B, n_kv, G, TK, DV).sum(axis=2)).max() < TOL


@pytest.mark.parametrize("n_kv", [1, 2])
def test_against_torch_enable_gqa(n_kv):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10 + n_kv)
    Q = rng.standard_normal((B, H, TQ, DH))
    K, V = rng.standard_normal((B, n_kv, TK, DH)), rng.standard_normal((B, n_kv, TK, DH))
    mask = _mask(TQ, TK)
    mask[0, 0, :, :] = True  # torch gives NaN for a row with no key: keep every row non-empty here
    mask[1:, :, :, 0] = True
    ours = ScaledDotProductAttention()
    O = ours.forward(Q, K, V, mask=mask)
    dO = rng.standard_normal(O.shape)
    dQ, dK, dV = ours.backward(dO)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (Q, K, V))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask), enable_gqa=True)
    out.backward(torch.tensor(dO))
    assert np.abs(O - out.detach().numpy()).max() < TOL
    for ours_g, theirs in ((dQ, tq), (dK, tk), (dV, tv)):
        assert np.abs(ours_g - theirs.grad.numpy()).max() < TOL


def test_the_keys_and_values_are_not_copied_into_query_heads():
    """The group's queries are stacked against the one K (gqa.3): no (B, H, Tk, Dh) array is made."""
    rng = np.random.default_rng(3)
    layer = MultiHeadAttention(24, 6, n_kv_heads=2, rng=rng, dtype=np.float64)
    assert layer.w_k.weight.shape == layer.w_v.weight.shape == (24, 2 * 4)
    x = rng.standard_normal((2, 5, 24))
    layer.forward(x, mask=causal_mask(5))
    _, K, V, _ = layer.attention._cache  # what the core keeps for backward
    assert K.shape == V.shape == (2, 2, 5, 4)


def test_multi_query_layer_equals_a_multi_head_layer_with_tied_key_value_heads():
    """MQA is MHA whose H key (and value) heads are all the same head: build that MHA and compare."""
    rng = np.random.default_rng(4)
    mqa = MultiHeadAttention(12, 3, n_kv_heads=1, rng=rng, dtype=np.float64)
    mha = MultiHeadAttention(12, 3, rng=np.random.default_rng(0), dtype=np.float64)
    for name in ("w_q", "w_o"):
        getattr(mha, name).load_state_dict(getattr(mqa, name).state_dict())
    for name in ("w_k", "w_v"):
        small, big = getattr(mqa, name), getattr(mha, name)
        big.weight.data[...] = np.tile(small.weight.data, (1, 3))  # every head the same columns
        big.bias.data[...] = np.tile(small.bias.data, 3)
    x = rng.standard_normal((2, 6, 12))
    mask = causal_mask(6)
    assert np.abs(mqa.forward(x, mask=mask) - mha.forward(x, mask=mask)).max() < TOL


@pytest.mark.parametrize("family", ["gpt", "transformer"])
def test_both_families_take_n_kv_heads_and_the_cache_holds_only_those_heads(family):
    rng = np.random.default_rng(5)
    if family == "gpt":
        model = GPT(vocab_size=11, block_size=9, n_layers=2, n_heads=4, n_kv_heads=2, d_model=16, rng=rng,
                    dtype=np.float64).eval()
        idx = rng.integers(0, 11, size=(2, 7))
        full = model.forward(idx)
        cache = model.new_cache(2)
        steps = [model.forward(idx[:, :3], cache=cache)] + [model.forward(idx[:, t:t + 1], cache=cache)
                                                             for t in range(3, 7)]
        assert np.abs(np.concatenate(steps, axis=1) - full).max() < 1e-10
        assert cache.self_attn[0].k.shape == (2, 2, 7, 4)
        assert cache.nbytes() == kv_cache_bytes(model.config, 2, 7, 8) == 2 * 2 * 2 * 7 * 2 * 4 * 8  # (gqa.8)
    else:
        model = Transformer(src_vocab=9, tgt_vocab=9, d_model=12, n_heads=6, n_kv_heads=1, n_layers=2, d_ff=20,
                            dropout=0.0, rng=rng, dtype=np.float64).eval()
        src, tgt = rng.integers(0, 9, size=(2, 5)), rng.integers(0, 9, size=(2, 4))
        src_mask = padding_mask_from_lengths(np.array([5, 3]), 5)
        memory = model.encode(src, src_mask)
        full = model.decode(tgt, memory, src_mask)
        cache = model.new_cache(memory, src_mask)
        steps = [model.decode(tgt[:, t:t + 1], cache=cache) for t in range(4)]
        assert np.abs(np.concatenate(steps, axis=1) - full).max() < 1e-10
        assert cache.cross_attn[0].k.shape == (2, 1, 5, 2) and cache.self_attn[1].v.shape == (2, 1, 4, 2)
        assert cache.nbytes() == kv_cache_bytes(model.config, 2, 4, 8, source_length=5)
    assert parameter_count(model.config) == model.num_parameters()


def test_fewer_key_value_heads_shrink_the_parameters_by_the_formula():
    """(gqa.7): W_k and W_v are d x Hkv Dh; the query and output projections are unchanged."""
    base = dict(vocab_size=11, block_size=9, n_layers=3, n_heads=8, d_model=32)
    full, gqa = parameter_count(GPTConfig(**base)), parameter_count(GPTConfig(**base, n_kv_heads=2))
    d, dh, L = 32, 4, 3
    assert full - gqa == L * 2 * (d * (8 - 2) * dh + (8 - 2) * dh)


def test_bad_inputs_name_expected_and_received():
    with pytest.raises(ValueError, match=r"expected n_kv_heads dividing n_heads=6 .*received n_kv_heads=4"):
        MultiHeadAttention(12, 6, n_kv_heads=4)
    with pytest.raises(ValueError, match=r"GPTConfig: expected n_kv_heads dividing n_heads=4 .*received n_kv_heads=3"):
        GPTConfig(vocab_size=5, block_size=4, n_layers=1, n_heads=4, d_model=8, n_kv_heads=3)
    with pytest.raises(ValueError, match=r"expected n_kv_heads an integer >= 1, received 0"):
        GPTConfig(vocab_size=5, block_size=4, n_layers=1, n_heads=4, d_model=8, n_kv_heads=0)
    core = ScaledDotProductAttention()
    with pytest.raises(ValueError, match=r"K: expected .*a number of heads dividing H=4.*received \(1, 3, 5, 2\)"):
        core.forward(np.zeros((1, 4, 5, 2)), np.zeros((1, 3, 5, 2)), np.zeros((1, 3, 5, 2)))
    # a cache built for another configuration: a multi-head layer's cache given to a grouped one
    mha = MultiHeadAttention(12, 6, rng=np.random.default_rng(0), dtype=np.float64).eval()
    gqa = MultiHeadAttention(12, 6, n_kv_heads=2, rng=np.random.default_rng(0), dtype=np.float64).eval()
    with pytest.raises(ValueError, match=r"cache: expected one built for this layer .*\(1, 2, t, 2\).*received \(1, 6, 0, 2\)"):
        gqa.forward(np.zeros((1, 1, 12)), cache=mha.self_cache(1, 4))
    with pytest.raises(RuntimeError, match="expected eval mode"):
        gqa.train().forward(np.zeros((1, 1, 12)), cache=gqa.self_cache(1, 4))
