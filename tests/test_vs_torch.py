"""benchmarks/vs_torch.py compares like with like: its PyTorch models have exactly the parameters
of the library's, and both sides' steps run (the timing itself is the benchmark's, not a test's)."""

import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import vs_torch  # noqa: E402


def _counts(ours_builder, torch_model, arg=None):
    ours = sum(p.data.size for _, p in ours_builder(arg).parts["model"].named_parameters())
    return ours, sum(p.numel() for p in torch_model.parameters())


@pytest.mark.parametrize("size", ["small", "large"])
def test_the_gpts_have_the_same_parameters(size):
    c = vs_torch.GPT_CONFIGS[size]
    model = vs_torch.torch_modules()["GPT"](c["vocab_size"], c["block_size"], c["n_layers"], c["n_heads"], c["d_model"])
    ours, theirs = _counts(vs_torch.ours_gpt_train, model, size)
    assert ours == theirs == {"small": 809856, "large": 10770816}[size]


def test_the_encoders_and_encoder_decoders_have_the_same_parameters():
    c = vs_torch.MINILM
    layers = torch.nn.ModuleList(vs_torch.torch_modules()["EncoderLayer"](c["d_model"], c["n_heads"], c["d_ff"],
                                                                         torch.nn.functional.gelu)
                                 for _ in range(c["n_layers"]))
    assert _counts(vs_torch.ours_encoder_forward, layers) == (10646784, 10646784)
    c = vs_torch.ENCDEC
    model = vs_torch.torch_modules()["Transformer"](c["vocab"], c["n_layers"], c["d_model"], c["n_heads"], c["d_ff"], 64)
    ours, theirs = _counts(vs_torch.ours_encdec_train, model)
    assert ours == theirs


def test_both_small_steps_start_near_log_v_and_both_generators_give_a_token():
    torch.set_num_threads(1)
    first = [vs_torch.ours_gpt_train("small")(), vs_torch.torch_gpt_train("small")()]
    np.testing.assert_allclose(first, math.log(65), atol=0.15)  # random targets: the loss of a near-uniform model
    for side in ("ours", "torch"):
        token = getattr(vs_torch, f"{side}_gpt_generate")("small")()
        assert 0 <= token < 65
