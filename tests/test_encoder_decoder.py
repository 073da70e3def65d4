"""The encoder-decoder Transformer (notes/transformer.md): values against a slow reference built
from the formulas, shapes, causality, source padding, post-LN vs pre-LN, shared embeddings and
their three gradient contributions (tf.13), float32, config round trip, errors.

The gradient checks of (tf.8)-(tf.13) run from the catalogue (transformer_np/checks/models.py).
"""

import json
import math

import numpy as np
import pytest

from transformer_np.layers.masks import causal_mask, padding_mask_from_lengths
from transformer_np.layers.norm import LayerNorm
from transformer_np.models import DecoderLayer, EncoderLayer, Transformer

B, S, T, D, H, D_FF, N, V_SRC, V_TGT, MAX_LEN = 3, 6, 5, 10, 2, 13, 2, 11, 9, 16
SRC_LEN, TGT_LEN = np.array([6, 4, 2]), np.array([5, 3, 4])


def _model(norm="post", share=False, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    v_tgt = V_SRC if share else V_TGT
    model = Transformer(src_vocab=V_SRC, tgt_vocab=v_tgt, d_model=D, n_heads=H, n_layers=N, d_ff=D_FF, dropout=0.1,
                        max_len=MAX_LEN, norm=norm, share_embeddings=share, rng=rng, dtype=dtype)
    for name, p in model.named_parameters():  # gains and biases start at 1 and 0: make them count
        if p.data.ndim == 1:
            p.data[...] = (name.endswith("norm.weight") + 0.3 * rng.standard_normal(p.shape)).astype(dtype)
    return model.eval()


def _batch(seed=1, v_tgt=V_TGT):
    rng = np.random.default_rng(seed)
    src, tgt = rng.integers(1, V_SRC, (B, S)), rng.integers(1, v_tgt, (B, T))
    src[np.arange(S) >= SRC_LEN[:, None]] = 0
    tgt[np.arange(T) >= TGT_LEN[:, None]] = 0
    return src, tgt, padding_mask_from_lengths(SRC_LEN, S), padding_mask_from_lengths(TGT_LEN, T) & causal_mask(T)


# -- a slow reference, written from the formulas (tf.1)-(tf.7) -----------------------------------
def _ln(x, p, prefix):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * p[prefix + ".weight"] + p[prefix + ".bias"]


def _attention(xq, p, prefix, mask, xkv=None):
    """Multi-head attention, head by head; self-attention when xkv is None."""
    xkv = xq if xkv is None else xkv
    Q, K, V = (x @ p[f"{prefix}.w_{n}.weight"] + p[f"{prefix}.w_{n}.bias"] for x, n in zip((xq, xkv, xkv), "qkv"))
    out, dh = np.zeros_like(Q), D // H
    for h in range(H):
        c = slice(h * dh, (h + 1) * dh)
        scores = np.where(mask[:, 0], Q[..., c] @ K[..., c].transpose(0, 2, 1) / math.sqrt(dh), -np.inf)
        w = np.exp(scores - scores.max(-1, keepdims=True))
        out[..., c] = (w / w.sum(-1, keepdims=True)) @ V[..., c]
    return out @ p[f"{prefix}.w_o.weight"] + p[f"{prefix}.w_o.bias"]


def _ffn(x, p, prefix):
    hidden = np.maximum(x @ p[prefix + ".w_1.weight"] + p[prefix + ".w_1.bias"], 0)  # ReLU
    return hidden @ p[prefix + ".w_2.weight"] + p[prefix + ".w_2.bias"]


def _block(x, p, prefix, norm, f, *args):
    """post: LN(x + F(x)); pre: x + F(LN(x)) (res.1, res.2), with F(h) = f(h, p, prefix.sublayer, *args)."""
    if norm == "post":
        return _ln(x + f(x, p, prefix + ".sublayer", *args), p, prefix + ".norm")
    return x + f(_ln(x, p, prefix + ".norm"), p, prefix + ".sublayer", *args)


def _reference(model, src, tgt, src_mask, tgt_mask, norm):
    p = model.state_dict()
    E_src = p["src_embed.weight"]
    E_tgt, W_out = (E_src, E_src.T) if "output.weight" not in p else (p["tgt_embed.weight"], p["output.weight"])
    pe = np.array([[math.sin(t / 10000 ** (i / D)) if i % 2 == 0 else math.cos(t / 10000 ** ((i - 1) / D))
                    for i in range(D)] for t in range(max(S, T))])  # fmt: skip
    x = math.sqrt(D) * E_src[src] + pe[: src.shape[1]]
    for l in range(N):
        x = _block(x, p, f"encoder.layers.{l}.self_attn", norm, _attention, src_mask)
        x = _block(x, p, f"encoder.layers.{l}.ffn", norm, _ffn)
    memory = _ln(x, p, "encoder.norm") if norm == "pre" else x
    y = math.sqrt(D) * E_tgt[tgt] + pe[: tgt.shape[1]]
    for l in range(N):
        y = _block(y, p, f"decoder.layers.{l}.self_attn", norm, _attention, tgt_mask)
        y = _block(y, p, f"decoder.layers.{l}.cross_attn", norm, _attention, src_mask, memory)
        y = _block(y, p, f"decoder.layers.{l}.ffn", norm, _ffn)
    y = _ln(y, p, "decoder.norm") if norm == "pre" else y
    return y @ W_out + p.get("output.bias", 0.0)


@pytest.mark.parametrize("norm, share", [("post", False), ("pre", False), ("post", True)])
def test_forward_matches_the_slow_reference(norm, share):
    model = _model(norm, share)
    src, tgt, src_mask, tgt_mask = _batch(v_tgt=V_SRC if share else V_TGT)
    expected = _reference(model, src, tgt, src_mask, tgt_mask, norm)
    np.testing.assert_allclose(model.forward(src, tgt, src_mask, tgt_mask), expected, rtol=1e-10, atol=1e-11)


def test_shapes():
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    memory = model.encode(src, src_mask)
    assert memory.shape == (B, S, D) and model.decode(tgt, memory, src_mask, tgt_mask).shape == (B, T, V_TGT)
    assert model.forward(src, tgt, src_mask, tgt_mask).shape == (B, T, V_TGT)
    assert model.backward(np.ones((B, T, V_TGT))) is None  # token ids have no gradient
    layer = DecoderLayer(d_model=D, n_heads=H, d_ff=D_FF, rng=np.random.default_rng(0), dtype=np.float64)
    x, mem = np.ones((B, T, D)), np.ones((B, S, D))
    assert layer.forward(x, mem, tgt_mask, src_mask).shape == (B, T, D)
    assert [g.shape for g in layer.backward(x)] == [(B, T, D), (B, S, D)]  # (dx, dmemory)
    enc = EncoderLayer(d_model=D, n_heads=H, d_ff=D_FF, rng=np.random.default_rng(0), dtype=np.float64)
    assert enc.forward(mem, src_mask).shape == enc.backward(mem).shape == (B, S, D)


@pytest.mark.parametrize("with_mask", [True, False])
def test_a_target_token_changes_no_logit_before_it(with_mask):
    """Causal: position t sees tokens 0..t only, with the batch's mask or with none (always ANDed in)."""
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    tgt_mask = tgt_mask if with_mask else None
    before = model.forward(src, tgt, src_mask, tgt_mask)
    for t in range(T - 1):
        changed = tgt.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % V_TGT
        after = model.forward(src, changed, src_mask, tgt_mask)
        np.testing.assert_array_equal(after[:, : t + 1], before[:, : t + 1])
        assert np.abs(after[:, t + 1 :] - before[:, t + 1 :]).max() > 1e-3


def test_a_padded_source_token_changes_no_logit_and_gets_no_gradient():
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    before = model.forward(src, tgt, src_mask, tgt_mask)
    model.backward(np.random.default_rng(2).standard_normal(before.shape))
    grad = model.src_embed.weight.grad  # id 0 sits only at padded source positions
    assert not grad[0].any() and np.abs(grad[src[0, 0]]).max() > 1e-3
    changed = src.copy()
    changed[2, SRC_LEN[2]:] = 7  # every padded position of the third source
    np.testing.assert_allclose(model.forward(changed, tgt, src_mask, tgt_mask), before, rtol=0, atol=1e-13)
    changed[2, 0] = 8  # a real token does change them
    assert np.abs(model.forward(changed, tgt, src_mask, tgt_mask)[2] - before[2]).max() > 1e-3


def test_pre_ln_and_post_ln_differ_and_only_pre_ln_has_final_norms():
    post, pre = _model("post"), _model("pre")
    src, tgt, src_mask, tgt_mask = _batch()
    assert np.abs(pre.forward(src, tgt, src_mask, tgt_mask) - post.forward(src, tgt, src_mask, tgt_mask)).max() > 0.1
    assert isinstance(pre.encoder.norm, LayerNorm) and isinstance(pre.decoder.norm, LayerNorm)
    assert post.encoder.norm is None and post.decoder.norm is None
    assert set(dict(pre.named_parameters())) - set(dict(post.named_parameters())) == {
        "encoder.norm.weight", "encoder.norm.bias", "decoder.norm.weight", "decoder.norm.bias"}  # fmt: skip


def test_parameter_count_follows_the_architecture():
    attn, ffn, ln = 4 * (D * D + D), 2 * D * D_FF + D_FF + D, 2 * D
    layers = N * (attn + ffn + 2 * ln) + N * (2 * attn + ffn + 3 * ln)
    assert _model().num_parameters() == layers + V_SRC * D + V_TGT * D + D * V_TGT + V_TGT
    assert _model(share=True).num_parameters() == layers + V_SRC * D  # one table, no output bias


def test_shared_embedding_is_one_parameter_whose_gradient_sums_three_uses():
    shared = _model(share=True)
    assert shared.tgt_embed.weight is shared.src_embed.weight is shared.output.weight
    names = [n for n, _ in shared.named_parameters()]
    assert "src_embed.weight" in names and not {"tgt_embed.weight", "output.weight"} & set(names)
    # The same function with three separate copies of the table.
    untied = Transformer(src_vocab=V_SRC, tgt_vocab=V_SRC, d_model=D, n_heads=H, n_layers=N, d_ff=D_FF, dropout=0.1,
                         max_len=MAX_LEN, rng=np.random.default_rng(5), dtype=np.float64)
    state = shared.state_dict()
    E = state["src_embed.weight"]
    untied.load_state_dict({**state, "tgt_embed.weight": E, "output.weight": E.T, "output.bias": np.zeros(V_SRC)})
    untied.eval()
    src, tgt, src_mask, tgt_mask = _batch(v_tgt=V_SRC)
    z = shared.forward(src, tgt, src_mask, tgt_mask)
    np.testing.assert_allclose(untied.forward(src, tgt, src_mask, tgt_mask), z, rtol=1e-12, atol=1e-12)
    G = np.random.default_rng(3).standard_normal(z.shape)
    shared.backward(G)
    untied.backward(G)
    parts = [untied.src_embed.weight.grad, untied.tgt_embed.weight.grad, untied.output.weight.grad.T]
    assert all(np.abs(g).max() > 1e-3 for g in parts)  # each use really contributes
    np.testing.assert_allclose(shared.src_embed.weight.grad, sum(parts), rtol=1e-12, atol=1e-12)  # (tf.13)


def test_float32_end_to_end():
    model = _model(dtype=np.float32).train()
    src, tgt, src_mask, tgt_mask = _batch()
    z = model.forward(src, tgt, src_mask, tgt_mask)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    model.backward(np.ones_like(z))
    assert model.encode(src, src_mask).dtype == np.float32
    wrong = {n: (p.data.dtype, p.grad.dtype) for n, p in model.named_parameters() if np.float32 != p.data.dtype
             or np.float32 != p.grad.dtype}  # fmt: skip
    assert not wrong
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


def test_dropout_is_active_in_train_mode_only():
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    z_eval = model.forward(src, tgt, src_mask, tgt_mask)
    np.testing.assert_array_equal(model.forward(src, tgt, src_mask, tgt_mask), z_eval)
    assert np.abs(model.train().forward(src, tgt, src_mask, tgt_mask) - z_eval).max() > 1e-3


def test_config_round_trip():
    model = _model("pre", share=True)
    config = json.loads(json.dumps(model.config.to_dict()))  # JSON-able
    sizes = {"src_vocab": V_SRC, "tgt_vocab": V_SRC, "d_model": D, "n_heads": H, "n_layers": N, "d_ff": D_FF}
    rest = {"dropout": 0.1, "max_len": MAX_LEN, "norm": "pre", "activation": "relu", "share_embeddings": True,
            "bias": True, "n_kv_heads": H, "eps": 1e-5, "positions": "sinusoidal"}
    rest.update(attention="standard", tile=64, window=None, features=64)  # how the heads attend (notes/flash.md)
    assert config == {**sizes, **rest}
    rebuilt = Transformer(config, rng=np.random.default_rng(0), dtype=np.float64)
    assert rebuilt.config == model.config
    assert {n: p.shape for n, p in rebuilt.named_parameters()} == {n: p.shape for n, p in model.named_parameters()}
    rebuilt.load_state_dict(model.state_dict())
    src, tgt, src_mask, tgt_mask = _batch(v_tgt=V_SRC)
    z = model.forward(src, tgt, src_mask, tgt_mask)
    np.testing.assert_array_equal(rebuilt.eval().forward(src, tgt, src_mask, tgt_mask), z)
    with pytest.raises(TypeError, match=r"TransformerConfig: expected fields among .* received unknown fields \['heads'\]"):
        Transformer({**config, "heads": 2})


def test_errors_name_expected_and_received():
    with pytest.raises(ValueError, match="expected src_vocab == tgt_vocab, received src_vocab=11, tgt_vocab=9"):
        Transformer(src_vocab=V_SRC, tgt_vocab=V_TGT, d_model=D, n_heads=H, n_layers=N, d_ff=D_FF, share_embeddings=True)
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    with pytest.raises(ValueError, match=r"src_mask: expected .*\(3, 2, 1, 6\).*received shape \(3, 1, 1, 5\)"):
        model.forward(src, tgt, src_mask[..., :5], tgt_mask)
    with pytest.raises(ValueError, match=r"tgt_mask: expected .*\(3, 2, 5, 5\).*received shape \(3, 1, 4, 4\)"):
        model.forward(src, tgt, src_mask, tgt_mask[:, :, :4, :4])
    too_long = np.ones((B, MAX_LEN + 1), dtype=np.int64)
    with pytest.raises(ValueError, match="src: expected a length of at most max_len=16, received 17"):
        model.forward(too_long, tgt)
    with pytest.raises(ValueError, match="tgt_in: expected a length of at most max_len=16, received 17"):
        model.forward(src, too_long)
    with pytest.raises(ValueError, match=r"tgt_in: expected values in \[0, 9\), received values in \[9, 9\]"):
        model.forward(src, np.full((B, T), 9))
    with pytest.raises(ValueError, match=r"src: expected 2 dimensions \(B, length\), received shape \(6,\)"):
        model.forward(src[0], tgt)
    with pytest.raises(ValueError, match=r"tgt_in: expected batch size 3 \(the batch size of src\), received shape"):
        model.forward(src, tgt[:2])
    memory = model.encode(src, src_mask)
    memory[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="memory: expected finite values"):
        model.decode(tgt, memory, src_mask, tgt_mask)
    with pytest.raises(TypeError, match="memory: expected dtype float64 .* received float32"):
        model.decode(tgt, np.zeros((B, S, D), np.float32), src_mask, tgt_mask)


def test_backward_needs_a_whole_forward():
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    with pytest.raises(RuntimeError, match="Transformer.backward\\(\\) called before forward"):
        model.backward(np.ones((B, T, V_TGT)))
    model.decode(tgt, model.encode(src, src_mask), src_mask, tgt_mask)  # the halves alone are not a forward
    with pytest.raises(RuntimeError, match="Transformer.backward\\(\\) called before forward"):
        model.backward(np.ones((B, T, V_TGT)))


def test_an_empty_source_or_target_is_refused_at_the_entry():
    model = _model()
    src, tgt, src_mask, tgt_mask = _batch()
    with pytest.raises(ValueError, match=r"src: expected at least one sequence of at least one token, received shape \(3, 0\)"):
        model.forward(src[:, :0], tgt)
    with pytest.raises(ValueError, match=r"tgt_in: expected at least one sequence of at least one token, received shape \(3, 0\)"):
        model.forward(src, tgt[:, :0])
