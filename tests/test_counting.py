"""Parameter counts and FLOPs (notes/counting.md): closed forms against built models, the
12 L d^2 identity with its exact terms, the paper's base model, FLOPs against hand computations."""

import numpy as np
import pytest

from transformer_np.models.counting import count_parameters, flops_per_token, parameter_count
from transformer_np.models.gpt import GPT, GPTConfig
from transformer_np.models.transformer import Transformer, TransformerConfig

GPT_CONFIGS = [
    {"vocab_size": 13, "block_size": 7, "n_layers": 2, "n_heads": 2, "d_model": 10},
    {"vocab_size": 65, "block_size": 64, "n_layers": 4, "n_heads": 4, "d_model": 128},
    {"vocab_size": 50, "block_size": 9, "n_layers": 3, "n_heads": 3, "d_model": 24, "bias": False},
    {"vocab_size": 7, "block_size": 5, "n_layers": 1, "n_heads": 1, "d_model": 6, "activation": "relu"},
]
TRANSFORMER_CONFIGS = [
    {"src_vocab": 11, "tgt_vocab": 13, "d_model": 12, "n_heads": 3, "n_layers": 2, "d_ff": 20},
    {"src_vocab": 17, "tgt_vocab": 17, "d_model": 12, "n_heads": 3, "n_layers": 3, "d_ff": 30, "share_embeddings": True},
    {"src_vocab": 9, "tgt_vocab": 5, "d_model": 8, "n_heads": 2, "n_layers": 1, "d_ff": 14, "norm": "pre"},
    {"src_vocab": 19, "tgt_vocab": 19, "d_model": 10, "n_heads": 5, "n_layers": 2, "d_ff": 7, "norm": "pre",
     "share_embeddings": True},
]  # fmt: skip
BASE = {"src_vocab": 37000, "tgt_vocab": 37000, "d_model": 512, "n_heads": 8, "n_layers": 6, "d_ff": 2048,
        "share_embeddings": True}  # fmt: skip


def _slow_count(model):
    """Unique parameters by object identity, counted here independently of the library."""
    unique = {}
    for m in model.modules():
        for value in vars(m).values():
            if hasattr(value, "data") and hasattr(value, "grad"):
                unique[id(value)] = value.data.size
    return sum(unique.values())


@pytest.mark.parametrize("config", GPT_CONFIGS)
def test_gpt_formula_equals_the_built_model(config):
    model = GPT(**config)
    assert parameter_count(model.config) == count_parameters(model) == _slow_count(model)
    assert parameter_count(model.config, non_embedding=True) == count_parameters(model, non_embedding=True)


@pytest.mark.parametrize("config", TRANSFORMER_CONFIGS)
def test_transformer_formula_equals_the_built_model(config):
    model = Transformer(**config)
    assert parameter_count(model.config) == count_parameters(model) == _slow_count(model)
    assert parameter_count(model.config, non_embedding=True) == count_parameters(model, non_embedding=True)


def test_tied_matrix_is_counted_once():
    config = GPT_CONFIGS[1]
    model = GPT(**config)
    V, d = config["vocab_size"], config["d_model"]
    per_module = sum(p.size for m in model.modules() for p in vars(m).values() if hasattr(p, "grad"))
    assert per_module - count_parameters(model) == V * d  # the head's reference to the table


@pytest.mark.parametrize("L, d", [(1, 6), (2, 10), (4, 128), (12, 768), (3, 24)])
def test_non_embedding_count_is_12_L_d2_plus_exact_terms(L, d):
    config = {"vocab_size": 5, "block_size": 3, "n_layers": L, "n_heads": 1, "d_model": d}
    per_layer = (4 * d * d + 4 * d) + (8 * d * d + 5 * d) + 4 * d  # attention, FFN, two LayerNorms
    assert per_layer == 12 * d * d + 13 * d
    n = parameter_count(GPTConfig(**config), non_embedding=True)
    assert n == 12 * L * d * d + 13 * L * d + 2 * d
    assert parameter_count(GPTConfig(**{**config, "bias": False}), non_embedding=True) == 12 * L * d * d + 4 * L * d + 2 * d
    assert parameter_count(GPTConfig(**config)) == n + 5 * d + 3 * d  # token table (tied) + 3 positions


def test_gpt2_small_has_124439808_parameters():
    config = {"vocab_size": 50257, "block_size": 1024, "n_layers": 12, "n_heads": 12, "d_model": 768}
    assert parameter_count(GPTConfig(**config), non_embedding=True) == 85_056_000
    assert parameter_count(GPTConfig(**config)) == 124_439_808


def test_paper_base_and_big_counts():
    assert parameter_count(TransformerConfig(**BASE), non_embedding=True) == 44_138_496
    assert parameter_count(TransformerConfig(**BASE)) == 63_082_496
    assert parameter_count(TransformerConfig(**{**BASE, "share_embeddings": False})) == 101_007_496
    big = {**BASE, "d_model": 1024, "n_heads": 16, "d_ff": 4096}
    assert parameter_count(TransformerConfig(**big)) == 214_245_376


def test_paper_base_model_built_by_the_library():
    """The one test that builds the base model (63M float32 parameters, about 250 MB)."""
    model = Transformer(**BASE, dtype=np.float32)
    assert count_parameters(model) == 63_082_496
    assert count_parameters(model, non_embedding=True) == 44_138_496


def test_gpt_flops_per_token_by_hand():
    config = GPT_CONFIGS[1]  # L = 4, d = 128, V = 65
    N = 4 * (12 * 128 * 128 + 13 * 128) + 2 * 128
    assert N == 793_344
    assert flops_per_token(GPTConfig(**config), 64) == 6 * 793_344 + 12 * 4 * 64 * 128 == 5_153_280
    assert flops_per_token(GPTConfig(**config), 64, include_logits=True) == 5_153_280 + 6 * 65 * 128
    assert flops_per_token(GPTConfig(**config), 32) == 6 * 793_344 + 12 * 4 * 32 * 128


@pytest.mark.parametrize("config", TRANSFORMER_CONFIGS)
def test_transformer_flops_by_enumerating_the_weights(config):
    """6 FLOPs per weight per position it touches, found from each parameter's name."""
    S, T = 5, 3
    model = Transformer(**config)
    weights = 0
    for name, p in model.named_parameters():
        if name.endswith("embed.weight") or name.startswith("output."):
            continue
        reads_source = name.startswith("encoder.") or ".cross_attn.sublayer.w_k." in name or (
            ".cross_attn.sublayer.w_v." in name
        )
        weights += 6 * p.size * (S if reads_source else T)
    L, d = config["n_layers"], config["d_model"]
    scores = 12 * L * d * (S * S + T * T + T * S)
    assert flops_per_token(TransformerConfig(**config), T, source_length=S) == pytest.approx((weights + scores) / T, rel=1e-12)
    with_logits = flops_per_token(TransformerConfig(**config), T, source_length=S, include_logits=True)
    assert with_logits == pytest.approx((weights + scores + 6 * d * config["tgt_vocab"] * T) / T, rel=1e-12)


def test_the_session_counts_every_model_it_builds():
    """tests/conftest.py checks parameter_count against the built model for every GPT and
    Transformer constructed in the session; this one builds two and sees them counted."""
    from conftest import MODELS_COUNTED

    before = len(MODELS_COUNTED)
    GPT(**GPT_CONFIGS[0])
    Transformer(**TRANSFORMER_CONFIGS[0])
    assert [type(c) for c in MODELS_COUNTED[before:]] == [GPTConfig, TransformerConfig]
