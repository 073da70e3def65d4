"""Mixed-precision training (notes/precision.md): a small GPT trains in float16 with loss scaling,
in bfloat16 and in float32 to the same loss; the loss scaler skips a step on overflow and recovers
(prec.7); gradients underflow without loss scaling and not with it (prec.6); Softmax and LayerNorm
stay float32; where float16 breaks (the -1e9 mask constant (prec.8), LayerNorm's variance)."""

import io

import numpy as np
import pytest

from transformer_np.layers import LayerNorm, Linear
from transformer_np.layers.attention import ScaledDotProductAttention
from transformer_np.loss import CrossEntropyLoss
from transformer_np.models.gpt import GPT
from transformer_np.optim import AdamW
from transformer_np.precision import LossScaler, autocast, gradient_underflow, round_to, saved_activation_bytes
from transformer_np.train import Trainer

V, T, B = 13, 16, 16


def counting_batch(rng):
    """Sequences start, start+1, ... (mod V): learnable in a few dozen steps."""
    seq = (rng.integers(0, V, (B, 1)) + np.arange(T + 1)) % V
    return (seq[:, :-1],), seq[:, 1:]


def small_gpt(seed=1):
    return GPT(vocab_size=V, block_size=T, n_layers=2, n_heads=2, d_model=24, rng=np.random.default_rng(seed))


def trainer(precision, steps=None, **kwargs):
    model = small_gpt()
    return Trainer(model, AdamW(model.parameters(), lr=3e-3), CrossEntropyLoss(), counting_batch,
                   rng=np.random.default_rng(2), quiet=True, precision=precision, **kwargs)


@pytest.fixture(scope="module")
def trained():
    runs = {p: trainer(p) for p in ("float32", "float16", "bfloat16")}
    for run in runs.values():
        run.fit(60)
    return runs


@pytest.fixture(scope="module")
def histories(trained):
    return {p: run.history for p, run in trained.items()}


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_a_small_model_trains_in_each_format(histories, precision):
    loss = histories[precision]["loss"]
    assert loss[0] > 2.4 and np.mean(loss[-5:]) < 0.4, (loss[0], np.mean(loss[-5:]))
    # the 16-bit runs follow the float32 run closely: same batches, same initial weights
    assert abs(np.mean(loss[-5:]) - np.mean(histories["float32"]["loss"][-5:])) < 0.03


def test_float16_records_the_scale_and_bfloat16_needs_none(histories):
    h16, hbf = histories["float16"], histories["bfloat16"]
    assert h16["loss_scale"] == [2.0**16] * 60 and h16["skipped"] == [0] * 60
    assert "loss_scale" not in hbf and "loss_scale" not in histories["float32"]
    # the runs differ from float32 (the rounding is real), but not by much
    assert h16["loss"][1:] != histories["float32"]["loss"][1:]


def test_the_master_weights_stay_float32_and_are_not_rounded():
    t = trainer("bfloat16")
    t.fit(3)
    for p in t.model.parameters():
        assert p.dtype == np.float32
    w = t.model.blocks[0].ffn.sublayer.w_1.weight.data
    assert not np.array_equal(w, round_to(w, "bfloat16"))  # updates smaller than a bfloat16 step survive
    moments = {k: v for k, v in t.optimizer.state_dict().items() if k[0] in "mv"}
    assert moments and all(v.dtype == np.float32 for v in moments.values())  # optimiser state in float32
    assert not all(np.array_equal(v, round_to(v, "bfloat16")) for v in moments.values())


def test_the_scaler_skips_a_step_on_overflow_and_recovers():
    scaler = LossScaler(init_scale=2.0**40, growth_interval=5)  # 2^40 times a gradient overflows float16
    t = trainer("float16", loss_scaler=scaler)
    before = [p.data.copy() for p in t.model.parameters()]
    record = t.train_step()
    assert record["skipped"] == 1 and record["grad_norm"] == np.inf and record["loss_scale"] == 2.0**40
    assert all(np.array_equal(b, p.data) for b, p in zip(before, t.model.parameters()))  # nothing changed
    assert t.optimizer.state_dict()["step"] == 0  # the optimiser took no step
    h = t.fit(60)
    skipped, scales = np.array(h["skipped"]), np.array(h["loss_scale"])
    first_good = int(np.argmin(skipped == 1))
    assert 5 < first_good < 40 and (skipped[:first_good] == 1).all()
    assert (scales[:first_good + 1] == 2.0**40 / 2.0 ** np.arange(first_good + 1)).all()  # halved per skip (prec.7)
    # after it: the scale doubles after 5 good steps, and backs off again at a single skipped step
    later = skipped[first_good:]
    assert 0 < later.mean() < 0.3 and not (later[1:] & later[:-1]).any()
    grew = np.flatnonzero(scales[1:] > scales[:-1])
    assert len(grew) and (scales[grew + 1] == 2 * scales[grew]).all()
    assert np.mean(h["loss"][-5:]) < h["loss"][0] - 1  # the run still trains


def test_progress_output_shows_the_scale_and_the_skipped_steps(capsys):
    t = trainer("float16", loss_scaler=LossScaler(init_scale=2.0**40))
    t.quiet = False
    t.fit(3)
    err = capsys.readouterr().err
    assert "scale" in err and "skipped" in err and "3 skipped" in err


def test_the_scaler_state_is_saved_and_restored(tmp_path):
    t = trainer("float16", loss_scaler=LossScaler(init_scale=2.0**40, growth_interval=4))
    t.fit(12)
    path = t.save(tmp_path / "run.npz")
    u = trainer("float16", loss_scaler=LossScaler())
    u.load(path)
    assert u.loss_scaler.state_dict() == t.loss_scaler.state_dict()
    assert u.history["loss_scale"] == t.history["loss_scale"]
    t.fit(16), u.fit(16)
    assert t.history["loss"] == u.history["loss"]  # resumption is exact


def test_gradients_underflow_in_float16_without_loss_scaling(trained):
    model = trained["float32"].model  # trained: confident predictions, small gradients
    x, y = counting_batch(np.random.default_rng(5))
    plain = gradient_underflow(model, CrossEntropyLoss(), x, y, "float16")
    scaled = gradient_underflow(model, CrossEntropyLoss(), x, y, "float16", scale=2.0**12)
    bf16 = gradient_underflow(model, CrossEntropyLoss(), x, y, "bfloat16")
    # the key biases have a gradient of exactly 0 in exact arithmetic (notes/attention.md): skip them
    real = [n for n in plain if not n.endswith("w_k.bias")]
    assert max(plain[n] for n in real) > 0.05  # some layer loses more than 5 % of its gradient entries
    assert sum(plain[n] > 0 for n in real) >= 3
    assert max(scaled[n] for n in real) < 0.01 and max(bf16[n] for n in real) < 0.01
    assert all(p.grad.max() == 0 and p.grad.min() == 0 for p in model.parameters())  # left zeroed


def test_softmax_and_layernorm_stay_float32_and_the_rest_is_rounded():
    model = small_gpt().eval()
    x, _ = counting_batch(np.random.default_rng(0))
    with autocast(model, "float16"):
        model.forward(*x)
        h = model.ln_f.forward(model.blocks[-1].forward(model.token_embedding.forward(x[0]), None))
        q = model.blocks[0].attn.sublayer.w_q.forward(h)
        weights = model.token_embedding.weight.data
        gain = model.ln_f.weight.data
    assert not np.array_equal(h, round_to(h, "float16"))  # LayerNorm's output: float32 values
    assert np.array_equal(q, round_to(q, "float16"))  # a Linear's output: float16 values
    assert np.array_equal(weights, round_to(weights, "float16"))
    assert gain is model.ln_f.weight.data  # LayerNorm's own parameters stay the float32 masters
    assert not np.array_equal(model.token_embedding.weight.data, weights)  # the master is back
    assert "forward" not in vars(model.blocks[0])  # the rounding methods are removed


def test_activation_memory_halves_in_16_bits():
    model = small_gpt()
    x, _ = counting_batch(np.random.default_rng(0))
    model.forward(*x)
    full, half = saved_activation_bytes(model), saved_activation_bytes(model, "bfloat16")
    assert full > 0 and half * 2 == full


def test_the_mask_constant_overflows_float16_and_the_boolean_mask_does_not():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(1, 1, 3, 4)).astype(np.float16)
    visible = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)[None, None]
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(-1e9))  # (prec.8)
    with np.errstate(invalid="ignore", over="ignore"):
        masked = scores + (1 - visible).astype(np.float16) * np.float16(-1e9)
    assert np.isnan(masked[0, 0, 0, :2]).all()  # the visible scores, 0 * (-inf) = NaN
    q = rng.normal(size=(1, 1, 3, 8)).astype(np.float16)
    k = rng.normal(size=(1, 1, 4, 8)).astype(np.float16)
    out = ScaledDotProductAttention().forward(q, k, k, mask=visible)
    assert out.dtype == np.float16 and np.isfinite(out).all() and (out[0, 0, 2] == 0).all()


def test_layernorm_in_float16_overflows_where_float32_does_not():
    x = (np.random.default_rng(0).normal(size=(2, 48)) * 300).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        y16 = LayerNorm(48, dtype=np.float16).forward(x.astype(np.float16))
    y32 = LayerNorm(48).forward(x)
    assert np.isfinite(y32).all() and np.abs(y32).max() > 1
    assert not np.isfinite(y16).all() or np.abs(y16).max() < 1e-3  # variance inf: the outputs collapse


def test_bad_input_names_expected_and_received():
    with pytest.raises(ValueError, match="expected a positive finite number, received 0"):
        LossScaler(init_scale=0)
    with pytest.raises(ValueError, match="expected a positive finite number, received -1.0"):
        LossScaler(init_scale=-1.0)
    with pytest.raises(ValueError, match="precision: expected one of 'float32', 'float16', 'bfloat16', received 'int8'"):
        trainer("int8")
    with pytest.raises(TypeError, match="loss_scaler: expected a LossScaler, False or None, received float"):
        trainer("float16", loss_scaler=128.0)
    model = GPT(vocab_size=V, block_size=T, n_layers=1, n_heads=2, d_model=8, dtype=np.float64)
    with pytest.raises(TypeError, match="expected a float32 model .*received parameters of dtype float64"):
        Trainer(model, AdamW(model.parameters()), CrossEntropyLoss(), counting_batch, rng=np.random.default_rng(0),
                precision="float16")
    with pytest.raises(TypeError, match="expected a float32 model"):
        with autocast(Linear(3, 2, dtype=np.float64), "float16"):
            pass


def test_float32_precision_changes_nothing_and_keeps_float64_models_working():
    model = GPT(vocab_size=V, block_size=T, n_layers=1, n_heads=2, d_model=8, dtype=np.float64,
                rng=np.random.default_rng(0))
    history = Trainer(model, AdamW(model.parameters()), CrossEntropyLoss(), counting_batch,
                      rng=np.random.default_rng(0), quiet=True).fit(2)
    assert "loss_scale" not in history and model.token_embedding.weight.dtype == np.float64


def test_an_encoder_decoder_trains_in_float16():
    from transformer_np.recipes import build_run

    run = build_run("reverse", steps=20, batch_size=32, eval_size=10)
    history = run.trainer(quiet=True, precision="float16", eval_fn=None).fit(20)
    assert sum(history["skipped"]) == 0 and np.mean(history["loss"][-5:]) < history["loss"][0] - 0.5
