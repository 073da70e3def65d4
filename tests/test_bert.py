"""The encoder-only family (notes/bert.md) and the pooling layers (notes/pooling.md): shapes,
padding invariance, the eps of every LayerNorm, the tied MLM head, the parameter count, the
errors, and the forward passes against PyTorch where it is installed."""

import dataclasses

import numpy as np
import pytest

from transformer_np.layers import LayerNorm
from transformer_np.layers.pooling import L2Normalize, MaskedMeanPooling, Pooler
from transformer_np.models import Bert, BertConfig, GPT, MaskedLanguageModel, SentenceEncoder, Transformer
from transformer_np.models.counting import count_parameters, parameter_count

SMALL = {"vocab_size": 23, "n_layers": 2, "n_heads": 3, "d_model": 12, "d_ff": 20, "max_len": 9}


def _bert(**fields):
    return Bert(**{**SMALL, **fields}, rng=np.random.default_rng(0), dtype=np.float64).eval()


def test_every_layernorm_takes_the_configured_eps():
    bert = _bert()
    norms = [m for m in bert.modules() if isinstance(m, LayerNorm)]
    assert len(norms) == 1 + 2 * 2 + 1  # embeddings, two per layer, the MLM head's
    assert {m.eps for m in norms} == {1e-12}
    gpt = GPT(vocab_size=5, block_size=4, n_layers=1, n_heads=1, d_model=4, eps=1e-3)
    assert {m.eps for m in gpt.modules() if isinstance(m, LayerNorm)} == {1e-3}
    tf = Transformer(src_vocab=5, tgt_vocab=5, n_layers=1, n_heads=1, d_model=4, d_ff=4, norm="pre", eps=2e-6)
    assert {m.eps for m in tf.modules() if isinstance(m, LayerNorm)} == {2e-6}
    with pytest.raises(ValueError, match=r"expected eps a finite number > 0, received 0"):
        BertConfig(**SMALL, eps=0)


def test_padding_does_not_change_the_real_tokens():
    """A sentence alone and the same sentence padded in a batch give the same hidden states
    and the same sentence embedding (the key mask, (pool.1))."""
    bert = _bert()
    enc = SentenceEncoder(bert)
    rng = np.random.default_rng(1)
    short = rng.integers(1, 23, size=(1, 4))
    batch = np.zeros((2, 7), dtype=np.int64)
    batch[0, :4] = short[0]
    batch[1] = rng.integers(1, 23, size=7)
    mask = batch != 0
    alone_h = bert.forward(short)
    h = bert.forward(batch, attention_mask=mask)
    assert np.abs(h[0, :4] - alone_h[0]).max() < 1e-12
    e_alone = enc.forward(short)
    e = enc.forward(batch, attention_mask=mask)
    assert np.abs(e[0] - e_alone[0]).max() < 1e-12
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0)


def test_token_types_change_the_output():
    bert = _bert()
    ids = np.arange(1, 7)[None]
    types = np.array([[0, 0, 0, 1, 1, 1]])
    assert np.abs(bert.forward(ids, types) - bert.forward(ids)).max() > 1e-3


def test_mlm_head_is_tied_to_the_word_table_and_counted_once():
    bert = _bert()
    assert bert.mlm_head.decoder.weight is bert.token_embedding.weight
    names = [n for n, _ in bert.named_parameters()]
    assert "mlm_head.decoder.weight" not in names and "mlm_head.decoder.bias" in names
    model = MaskedLanguageModel(bert)
    ids = np.array([[1, 2, 3, 4]])
    z = model.forward(ids)
    assert z.shape == (1, 4, 23)
    model.zero_grad()
    model.backward(np.ones_like(z))
    assert np.abs(bert.token_embedding.weight.grad).sum() > 0


@pytest.mark.parametrize("pooler, mlm_head", [(True, True), (False, True), (True, False), (False, False)])
def test_parameter_count_from_the_configuration(pooler, mlm_head):
    bert = _bert(pooler=pooler, mlm_head=mlm_head)
    for non_embedding in (False, True):
        assert parameter_count(bert.config, non_embedding) == count_parameters(bert, non_embedding)


def test_minilm_sized_count():
    """all-MiniLM-L6-v2's configuration, with its pooler and no MLM head: 22,713,216 parameters,
    the number of scalars in its model.safetensors (position_ids aside)."""
    config = BertConfig(vocab_size=30522, n_layers=6, n_heads=12, d_model=384, d_ff=1536, mlm_head=False)
    assert parameter_count(config) == 22_713_216


def test_configuration_errors():
    with pytest.raises(ValueError, match=r"expected norm one of 'post', received 'pre'"):
        BertConfig(**SMALL, norm="pre")
    with pytest.raises(ValueError, match=r"expected pooler True or False, received 1"):
        BertConfig(**SMALL, pooler=1)
    with pytest.raises(ValueError, match="without an MLM head"):
        MaskedLanguageModel(_bert(mlm_head=False))


def test_input_errors_name_expected_and_received():
    bert = _bert()
    with pytest.raises(ValueError, match=r"at most max_len=9, received 10"):
        bert.forward(np.ones((1, 10), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token_type_ids"):
        bert.forward(np.ones((1, 3), dtype=np.int64), np.full((1, 3), 2))
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(1, 3\)"):
        bert.forward(np.ones((1, 3), dtype=np.int64), attention_mask=np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"no real token .* rows \[1\]|none in rows \[1\]"):
        MaskedMeanPooling().forward(np.ones((2, 3, 4)), np.array([[1, 1, 0], [0, 0, 0]]))


def test_inference_mode_keeps_nothing_and_refuses_backward():
    bert = _bert()
    enc = SentenceEncoder(bert).inference_mode()
    e = enc.forward(np.array([[1, 2, 3]]))
    assert all(m._cache is None or not isinstance(m._cache[0], np.ndarray) for m in enc.modules())
    with pytest.raises(RuntimeError, match="kept nothing for backward"):
        enc.backward(np.ones_like(e))


def test_pooler_reads_the_first_token_only():
    layer = Pooler(5, rng=np.random.default_rng(0), dtype=np.float64)
    h = np.random.default_rng(1).standard_normal((2, 4, 5))
    c = layer.forward(h)
    assert np.allclose(c, np.tanh(h[:, 0] @ layer.dense.weight.data + layer.dense.bias.data))
    dh = layer.backward(np.ones_like(c))
    assert np.all(dh[:, 1:] == 0) and np.abs(dh[:, 0]).sum() > 0


def test_pooling_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    h = rng.standard_normal((3, 5, 7))
    mask = np.arange(5)[None] < np.array([[5], [2], [4]])
    s = MaskedMeanPooling().forward(h, mask)
    th, tm = torch.from_numpy(h), torch.from_numpy(mask).unsqueeze(-1).double()
    expected = (th * tm).sum(1) / tm.sum(1).clamp(min=1e-9)  # sentence-transformers' mean
    assert np.abs(s - expected.numpy()).max() < 1e-12
    e = L2Normalize().forward(s)
    assert np.abs(e - torch.nn.functional.normalize(torch.from_numpy(s), dim=-1).numpy()).max() < 1e-12


def test_bert_matches_torch_transformer_encoder():
    """The whole body against PyTorch's own post-LN encoder layers, fed the library's weights
    (embeddings summed and normalised by hand): an independent check of (bert.1)-(bert.3)."""
    torch = pytest.importorskip("torch")
    bert = _bert(d_ff=20)
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 23, size=(2, 6))
    types = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    mask = np.arange(6)[None] < np.array([[6], [4]])
    h = bert.forward(ids, types, mask)
    x = bert.token_embedding.weight.data[ids] + bert.token_type_embedding.weight.data[types]
    x = x + bert.position_embedding.weight.data[:6]
    x = torch.nn.functional.layer_norm(torch.from_numpy(x), (12,), torch.from_numpy(bert.embedding_norm.weight.data),
                                       torch.from_numpy(bert.embedding_norm.bias.data), eps=1e-12)
    for layer in bert.encoder.layers:
        tl = torch.nn.TransformerEncoderLayer(12, 3, 20, dropout=0.0, activation="gelu", layer_norm_eps=1e-12,
                                              batch_first=True, norm_first=False, dtype=torch.float64)
        a, f = layer.self_attn.sublayer, layer.ffn.sublayer
        W = lambda lin: torch.from_numpy(lin.weight.data.T.copy())  # noqa: E731 (row-vector -> torch's (out, in))
        b = lambda lin: torch.from_numpy(lin.bias.data.copy())  # noqa: E731
        with torch.no_grad():
            tl.self_attn.in_proj_weight.copy_(torch.cat([W(a.w_q), W(a.w_k), W(a.w_v)]))
            tl.self_attn.in_proj_bias.copy_(torch.cat([b(a.w_q), b(a.w_k), b(a.w_v)]))
            tl.self_attn.out_proj.weight.copy_(W(a.w_o)), tl.self_attn.out_proj.bias.copy_(b(a.w_o))
            tl.linear1.weight.copy_(W(f.w_1)), tl.linear1.bias.copy_(b(f.w_1))
            tl.linear2.weight.copy_(W(f.w_2)), tl.linear2.bias.copy_(b(f.w_2))
            for tn, n in ((tl.norm1, layer.self_attn.norm), (tl.norm2, layer.ffn.norm)):
                tn.weight.copy_(torch.from_numpy(n.weight.data)), tn.bias.copy_(torch.from_numpy(n.bias.data))
        tl.eval()
        x = tl(x, src_key_padding_mask=torch.from_numpy(~mask))  # torch: True = padding
    assert np.abs(h[mask] - x.detach().numpy()[mask]).max() < 1e-10


def test_config_round_trip():
    config = BertConfig(**SMALL, pooler=False)
    assert BertConfig.from_dict(config.to_dict()) == config
    assert dataclasses.replace(config, dropout=0.0).dropout == 0.0


def test_viz_reads_the_attention_of_a_bert():
    """viz finds the encoder's attention layers by walking named_modules: no change for a new family."""
    from transformer_np import viz

    bert = _bert()
    bert.forward(np.array([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]]), attention_mask=np.array([[1] * 5, [1, 1, 1, 0, 0]]))
    maps = viz.attention_maps(bert, example_index=1)
    assert list(maps) == ["self"] and len(maps["self"]) == 2
    assert maps["self"][0].shape == (3, 5, 5)
    assert np.all(maps["self"][1][:, :, 3:] == 0)  # padding keys of example 1 get no attention


def test_dropout_where_bert_puts_it():
    """On the attention weights and each sub-layer's output, not inside the FFN (the paper's
    encoder layer keeps its hidden dropout)."""
    from transformer_np.models import EncoderLayer

    layer = _bert(dropout=0.1).encoder.layers[0]
    assert layer.ffn.sublayer.dropout.p == 0.0
    assert layer.ffn.dropout.p == layer.self_attn.dropout.p == layer.self_attn.sublayer.attention.dropout.p == 0.1
    assert EncoderLayer(d_model=4, n_heads=1, dropout=0.1).ffn.sublayer.dropout.p == 0.1


def test_host_ids_and_masks_with_a_model_on_the_device():
    """Token ids, token types and the mask may come from the CPU data pipeline (as for the GPT):
    they follow the model to its backend (the strict stand-in of tests/test_strict_backend.py)."""
    import strict_backend as strict
    from transformer_np import backend

    backend.register_backend("strict", strict, strict.StrictArray)
    try:
        bert = _bert(mlm_head=False).to("strict")
        enc = SentenceEncoder(bert)
        ids = np.array([[1, 2, 3, 4], [5, 6, 0, 0]])
        e = enc.forward(ids, np.zeros_like(ids), ids != 0)
        assert backend.backend_name(e) == "strict"
        reference = SentenceEncoder(_bert(mlm_head=False)).forward(ids, np.zeros_like(ids), ids != 0)
        assert np.abs(backend.to_numpy(e) - reference).max() < 1e-12
    finally:
        backend.unregister_backend("strict")
