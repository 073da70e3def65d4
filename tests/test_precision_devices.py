"""Mixed precision and int8 quantisation on the strict CuPy stand-in (tests/strict_backend.py):
no stray ``np.`` on a data path, the same numbers as on NumPy (issues 15 and 16)."""

import numpy as np
import pytest

import strict_backend as strict
from transformer_np import backend
from transformer_np.backend import backend_name, to_backend, to_numpy
from transformer_np.loss import CrossEntropyLoss
from transformer_np.models.gpt import GPT
from transformer_np.optim import AdamW
from transformer_np.precision import LossScaler, round_to
from transformer_np.quant import quantize
from transformer_np.train import Trainer

V, T, B = 13, 16, 8


@pytest.fixture(autouse=True, scope="module")
def strict_registered():
    backend.register_backend("strict", strict, strict.StrictArray)
    yield
    backend.unregister_backend("strict")


def trainer_on(name, precision, loss_scaler=None, steps=3):
    def get_batch(rng):
        seq = (rng.integers(0, V, (B, 1)) + np.arange(T + 1)) % V
        return (to_backend(seq[:, :-1], name),), to_backend(seq[:, 1:], name)

    model = GPT(vocab_size=V, block_size=T, n_layers=1, n_heads=2, d_model=16, rng=np.random.default_rng(1)).to(name)
    trainer = Trainer(model, AdamW(model.parameters(), lr=3e-3), CrossEntropyLoss(), get_batch,
                      rng=np.random.default_rng(2), quiet=True, precision=precision, loss_scaler=loss_scaler)
    trainer.fit(steps)
    return trainer


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_steps_match_numpy(precision):
    device, host = trainer_on("strict", precision), trainer_on("numpy", precision)
    np.testing.assert_allclose(device.history["loss"], host.history["loss"], rtol=1e-6)
    assert all(backend_name(p.data) == "strict" and p.dtype == np.float32 for p in device.model.parameters())


def test_the_loss_scaler_skips_on_the_device_too():
    assert trainer_on("strict", "float16", LossScaler(init_scale=2.0**40)).history["skipped"] == [1, 1, 1]


def test_rounding_matches_numpy_with_subnormals_and_overflow():
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32) * np.float32([[1e-7], [1e-3], [1], [1e4], [1e5]])
    for name in ("float16", "bfloat16"):
        assert np.array_equal(to_numpy(round_to(to_backend(x, "strict"), name)), round_to(x, name))


def test_a_quantized_model_with_its_int8_cache_matches_numpy():
    ids = np.random.default_rng(3).integers(0, V, (2, 9))
    results = {}
    for name in ("strict", "numpy"):
        model = quantize(trainer_on(name, "float32").model.eval(), activations=True, kv_cache=True)
        cache = model.new_cache(2)
        results[name] = (model.forward(to_backend(ids, name), cache=cache), cache.nbytes())
    np.testing.assert_allclose(to_numpy(results["strict"][0]), results["numpy"][0], rtol=1e-5, atol=1e-6)
    assert results["strict"][1] == results["numpy"][1] > 0
