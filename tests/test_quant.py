"""Post-training int8 quantisation (notes/quantization.md): the rounding error of each step
(quant.1)-(quant.4), why per-channel scales matter (quant.5), the exact int32 product (quant.6),
QuantLinear, quantize(model), the int8 KV cache and its memory formula (quant.8), checkpoints
and bad input."""

import numpy as np
import pytest

from transformer_np.checkpoint import load_checkpoint, save_checkpoint
from transformer_np.decode import greedy_decode
from transformer_np.layers import Linear
from transformer_np.models.counting import kv_cache_bytes
from transformer_np.models.gpt import GPT
from transformer_np.models.transformer import Transformer
from transformer_np.quant import (
    Int8KVCache,
    QuantLinear,
    dequantize,
    int8_cache,
    int8_matmul,
    int8_matmul_reference,
    quantize,
    quantize_per_channel,
    quantize_per_tensor,
    quantize_per_token,
    weight_bytes,
)

RNG = np.random.default_rng


def gpt(seed=0, **fields):
    config = dict(vocab_size=11, block_size=16, n_layers=2, n_heads=2, d_model=24)
    return GPT(**{**config, **fields}, rng=RNG(seed)).eval()


def ids(B=3, T=16, seed=1):
    return RNG(seed).integers(0, 11, (B, T))


@pytest.mark.parametrize("K", [7, 1040, 1041, 3000])
def test_int8_matmul_is_exactly_the_int32_product(K):
    rng = RNG(K)
    a = rng.integers(-127, 128, (2, 3, K)).astype(np.int8)
    b = rng.integers(-127, 128, (K, 5)).astype(np.int8)
    assert np.array_equal(int8_matmul(a, b), int8_matmul_reference(a, b))
    worst = np.full((1, K), -127, np.int8), np.full((K, 1), 127, np.int8)  # the largest sum in magnitude
    assert int8_matmul(*worst)[0, 0] == -(127 * 127 * K) == int8_matmul_reference(*worst)[0, 0]


def test_rounding_error_is_at_most_half_a_step_per_channel():
    W = RNG(0).normal(size=(40, 30)).astype(np.float32)
    q, s = quantize_per_channel(W)
    assert q.dtype == np.int8 and s.shape == (30,) and np.abs(q).max() == 127
    err = np.abs(dequantize(q, s) - W)
    assert (err <= s / 2 * (1 + 1e-6)).all()  # (quant.1): |x - q s| <= s / 2
    assert (err.max(axis=0) > 0.4 * s).all()  # and it is reached, not a loose bound
    x = RNG(1).normal(size=(2, 5, 30)).astype(np.float32)
    qx, sx = quantize_per_token(x)
    assert sx.shape == (2, 5, 1) and (np.abs(dequantize(qx, sx) - x) <= sx / 2 * (1 + 1e-6)).all()  # (quant.3)
    assert (quantize_per_token(np.zeros((1, 4), np.float32))[0] == 0).all()  # a zero row stays zero


def test_an_outlier_channel_ruins_a_per_tensor_scale_not_per_channel_scales():
    W = RNG(0).normal(size=(64, 32)).astype(np.float32) * 0.02
    W[:, 3] *= 100  # one outlier output channel, as trained transformers have
    qc, sc = quantize_per_channel(W)
    qt, st = quantize_per_tensor(W)
    normal = np.arange(32) != 3
    err_channel = np.abs(dequantize(qc, sc) - W)[:, normal].mean()
    err_tensor = np.abs(dequantize(qt, st) - W)[:, normal].mean()
    assert err_tensor > 20 * err_channel  # (quant.5): the outlier's scale is 100 x too coarse for the rest
    # the per-tensor scale leaves the normal channels only a handful of levels
    assert np.abs(qt[:, normal]).max() <= 6 and np.abs(qc[:, normal]).max() == 127


def test_quant_linear_in_both_modes():
    lin = Linear(20, 7, rng=RNG(0))
    lin.bias.data[...] = RNG(1).normal(size=7)
    x = RNG(2).normal(size=(3, 4, 20)).astype(np.float32)
    w8 = QuantLinear.from_linear(lin)
    q, s = quantize_per_channel(lin.weight.data)
    assert np.allclose(w8.forward(x), x @ (q * s) + lin.bias.data, atol=1e-6)  # (quant.4)
    a8 = QuantLinear.from_linear(lin, mode="weights+activations")
    qx, sx = quantize_per_token(x)
    expected = (qx.astype(np.int64) @ q.astype(np.int64)) * sx * s + lin.bias.data  # (quant.7)
    assert np.allclose(a8.forward(x), expected, rtol=1e-5, atol=1e-6)
    exact = lin.forward(x)
    assert 0 < np.abs(w8.forward(x) - exact).max() < 0.02 and np.abs(a8.forward(x) - exact).max() < 0.05
    assert w8.weight_q.dtype == np.int8 and w8.weight.data.dtype == np.float32


def test_a_quantized_gpt_stays_close_and_is_smaller():
    model = gpt()
    x = ids()
    ref, before = model.forward(x), weight_bytes(model)
    quantize(model)
    assert np.abs(model.forward(x) - ref).max() < 0.01
    linears = sum(p.size for n, p in gpt().named_parameters() if n.endswith("weight") and p.data.ndim == 2
                  and "embedding" not in n)
    assert before - weight_bytes(model) == 3 * linears - 4 * sum(l.d_out for _, l in model.named_modules()
                                                                  if isinstance(l, QuantLinear))
    assert not any(isinstance(m, Linear) for m in model.modules())
    assert model.quantization["weights"] == "int8 per output channel"


def test_the_int8_kv_cache_reads_back_close_and_its_bytes_match_the_formula():
    model, x = gpt(n_kv_heads=1), ids(B=2, T=9)  # grouped-query: one key/value head
    ref = model.forward(x)
    cache = int8_cache(model.new_cache(2))
    full = model.forward(x, cache=cache)
    assert np.abs(full - ref).max() < 0.01
    assert cache.nbytes() == kv_cache_bytes(model.config, 2, 9, dtype="int8")  # (quant.8)
    assert cache.nbytes() == 2 * 2 * 2 * 9 * 1 * (12 + 4)
    # one token at a time: each position has its own scale, so the same numbers as all at once
    step = int8_cache(model.new_cache(2))
    rows = [model.forward(x[:, t:t + 1], cache=step) for t in range(9)]
    assert np.allclose(np.concatenate(rows, axis=1), full, atol=1e-6)
    float_cache = model.new_cache(2)
    model.forward(x, cache=float_cache)
    assert float_cache.nbytes() == kv_cache_bytes(model.config, 2, 9, dtype="float32")
    assert float_cache.nbytes() / cache.nbytes() == pytest.approx(4 * 12 / 16)


def test_quantize_with_kv_cache_decodes_an_encoder_decoder():
    model = Transformer(src_vocab=9, tgt_vocab=9, n_layers=2, d_model=16, n_heads=2, d_ff=32, max_len=40,
                        dropout=0.0, rng=RNG(0)).eval()
    src = RNG(3).integers(3, 9, (4, 7))
    mask = np.ones((4, 1, 1, 7), bool)
    plain = greedy_decode(model, src, mask, 12, 1, 2)
    quantize(model, activations=True, kv_cache=True)
    memory = model.encode(src, mask)
    cache = model.new_cache(memory, mask)
    assert isinstance(cache, Int8KVCache)
    decoded = greedy_decode(model, src, mask, 12, 1, 2)  # grows and selects rows through the int8 cache
    assert decoded.shape == plain.shape and (decoded == plain).mean() > 0.7
    model.decode(src[:, :5], cache=cache)
    assert cache.nbytes() == kv_cache_bytes(model.config, 4, 5, dtype="int8", source_length=7)
    twin = model.new_cache(memory, mask)
    model.decode(src[:, :5], cache=twin)
    cache.select([0, 0, 3])  # beam search's expansion and reordering of rows
    assert cache.batch_size == 3 and cache.nbytes() == kv_cache_bytes(model.config, 3, 5, dtype="int8", source_length=7)
    for layer in range(2):
        assert np.array_equal(cache.self_attn[layer].k[2], twin.self_attn[layer].k[3])
        assert np.array_equal(cache.cross_attn[layer].v[1], twin.cross_attn[layer].v[0])


def test_checkpoints_refuse_mixing_float_and_quantized(tmp_path):
    model = gpt()
    save_checkpoint(tmp_path / "float.npz", model)
    quantize(model)
    save_checkpoint(tmp_path / "int8.npz", model)
    with pytest.raises(ValueError, match="holds an int8-quantised model .*expected a float model"):
        load_checkpoint(tmp_path / "int8.npz", gpt(seed=5))
    with pytest.raises(ValueError, match="holds a float model: expected an int8-quantised model"):
        load_checkpoint(tmp_path / "float.npz", quantize(gpt(seed=5)))
    with pytest.raises(ValueError, match="activations.*int8 per token"):
        load_checkpoint(tmp_path / "int8.npz", quantize(gpt(seed=5), activations=True))
    other = quantize(gpt(seed=5))
    load_checkpoint(tmp_path / "int8.npz", other)
    assert np.array_equal(other.forward(ids()), model.forward(ids()))


def test_bad_input_names_expected_and_received():
    with pytest.raises(RuntimeError, match="expected a trained model in eval mode .*received a model in training mode"):
        quantize(gpt().train())
    model = quantize(gpt())
    with pytest.raises(ValueError, match="expected a float model, received one quantised already"):
        quantize(model)
    with pytest.raises(RuntimeError, match="QuantLinear.backward: expected no backward"):
        model.blocks[0].attn.sublayer.w_q.backward(np.zeros((1, 1, 24), np.float32))
    model.train()
    with pytest.raises(RuntimeError, match="expected eval mode .*received training mode"):
        model.forward(ids())
    with pytest.raises(TypeError, match="expected two int8 arrays, received int16 and int8"):
        int8_matmul(np.zeros((2, 2), np.int16), np.zeros((2, 2), np.int8))
    with pytest.raises(ValueError, match="mode: expected one of 'weights', 'weights\\+activations', received 'int4'"):
        QuantLinear.from_linear(Linear(2, 2), mode="int4")
    with pytest.raises(ValueError, match="expected dtype one of float64, float32, float16, bfloat16, int8, received 'int4'"):
        kv_cache_bytes(gpt().config, 1, 1, dtype="int4")
    with pytest.raises(TypeError, match="expected itemsize or dtype"):
        kv_cache_bytes(gpt().config, 1, 1, 4, dtype="int8")
    cache = gpt().new_cache(1)
    gpt().forward(ids(B=1, T=2), cache=cache)
    with pytest.raises(ValueError, match="expected an empty cache, received one holding 2 positions"):
        int8_cache(cache)
