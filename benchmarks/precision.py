"""Mixed precision and int8 quantisation, measured (issue 15; notes/precision.md, notes/quantization.md).

Part 1: the character-level Shakespeare GPT (the "shakespeare" recipe: 4 layers, 4 heads, d_model
128, block 64, batch 12, AdamW, warmup + cosine) trained three times from the same seed, in
float32, in float16 with dynamic loss scaling, and in bfloat16 (no loss scaling): validation
loss, wall time, loss scale and skipped steps, and the bytes of the activations kept for
backward (at 4 and at 2 bytes a number). The bar: the 16-bit validation losses within 0.03 of
float32's.

Part 2: the trained float32 Shakespeare GPT and the trained reverse model (the "reverse"
recipe: encoder-decoder, 1000 held-out sequences), quantised three ways: int8 weights;
int8 weights and activations; both plus the int8 KV cache. Per choice: bytes of the weights,
the largest and the mean absolute logit error on held-out batches, the change in validation
loss, and for the reverse model the change in greedy exact match (decoded with the KV cache).
The bars: int8 weights change the Shakespeare validation loss by less than 0.02 and the
reverse task's exact match by less than 0.5 points.

    python benchmarks/precision.py [--steps 400] [--eval-iters 50] [--reverse-steps 800]

The defaults (400 of the recipe's 2000 steps, with its warmup and cosine schedule compressed to
them; validation on 50 of its 200 batches) took 12 minutes on a loaded 2-core machine,
``--steps 1000`` 27 minutes.

The 16-bit formats are emulated in float32 storage (``round_to``): NumPy has no fast float16
matrix product, so the 16-bit runs are slower here, not faster; the memory column counts 2
bytes a number, what real 16-bit storage takes. Prints Markdown tables for benchmarks/RESULTS.md.
"""

import argparse
import copy
import platform
import time

import numpy as np

from transformer_np.data import get_batch
from transformer_np.loss import CrossEntropyLoss
from transformer_np.precision import saved_activation_bytes
from transformer_np.quant import int8_cache, quantize, weight_bytes
from transformer_np.recipes import build_run
from transformer_np.recipes.base import held_out_rng
from transformer_np.recipes.seq2seq import evaluate_seq2seq, seq2seq_inputs

CHOICES = {"int8 weights": {}, "int8 weights + activations": {"activations": True},
           "+ int8 KV cache": {"activations": True, "kv_cache": True}}


def train_shakespeare(precision, steps, eval_iters):
    run = build_run("shakespeare", steps=steps, eval_iters=eval_iters, eval_every=steps)
    trainer = run.trainer(quiet=True, precision=precision)
    t0 = time.perf_counter()
    history = trainer.fit(steps)
    seconds = time.perf_counter() - t0
    (x,), _ = run.get_batch(np.random.default_rng(0))
    run.model.train()
    run.model.forward(x)
    memory = saved_activation_bytes(run.model), saved_activation_bytes(run.model, "float16")
    run.model.zero_grad()
    run.model.eval()
    return run, history, seconds, memory


def lm_batches(run, iters):
    """The validation batches of the recipe's evaluation (the fixed held-out generator)."""
    text_ids = run.eval_fn.keywords["val"]
    c = run.config
    rng = held_out_rng()
    return [get_batch(text_ids, c["batch_size"], c["block_size"], rng) for _ in range(iters)]


def lm_logits(model, x, kv_cache):
    if not kv_cache:
        return model.forward(x)
    return model.forward(x, cache=model.new_cache(x.shape[0]))  # the whole block through the int8 cache


def measure_lm(run, iters):
    batches, loss_fn = lm_batches(run, iters), CrossEntropyLoss()
    reference = [run.model.forward(x) for x, _ in batches]
    base_loss = np.mean([float(loss_fn.forward(z, y)) for z, (_, y) in zip(reference, batches)])
    rows = [("float32", weight_bytes(run.model), 0.0, 0.0, base_loss, 0.0)]
    for name, options in CHOICES.items():
        model = quantize(copy.deepcopy(run.model), **options)
        logits = [lm_logits(model, x, options.get("kv_cache", False)) for x, _ in batches]
        err = np.concatenate([np.abs(a - b).ravel() for a, b in zip(logits, reference)])
        loss = np.mean([float(loss_fn.forward(z, y)) for z, (_, y) in zip(logits, batches)])
        rows.append((name, weight_bytes(model), err.max(), err.mean(), loss, loss - base_loss))
    return rows


def measure_reverse(steps):
    run = build_run("reverse", steps=steps)
    t0 = time.perf_counter()
    run.trainer(quiet=True).fit(steps)
    seconds = time.perf_counter() - t0
    run.model.eval()
    batch, loss_fn = run.held_out, CrossEntropyLoss(ignore_index=0)
    reference = run.model.forward(*seq2seq_inputs(batch))
    base = evaluate_seq2seq(run.model, batch, loss_fn)
    rows = [("float32", weight_bytes(run.model), 0.0, 0.0, base["loss"], 0.0, base["exact_match"], 0.0)]
    for name, options in CHOICES.items():
        model = quantize(copy.deepcopy(run.model), **options)
        err = np.abs(model.forward(*seq2seq_inputs(batch)) - reference)
        m = evaluate_seq2seq(model, batch, loss_fn)  # greedy decoding through model.new_cache
        rows.append((name, weight_bytes(model), err.max(), err.mean(), m["loss"], m["loss"] - base["loss"],
                     m["exact_match"], 100 * (m["exact_match"] - base["exact_match"])))
    return rows, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-iters", type=int, default=50)
    parser.add_argument("--reverse-steps", type=int, default=800)
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, NumPy {np.__version__}; shakespeare recipe at "
          f"{args.steps} steps, validation loss on {args.eval_iters} held-out batches; reverse recipe at "
          f"{args.reverse_steps} steps, 1000 held-out sequences\n")
    print("| format | val loss | - float32 | wall time | loss scale (final) | skipped steps | activations kept (MB) |")
    print("|---|---|---|---|---|---|---|")
    runs, float32_loss = {}, None
    for precision in ("float32", "float16", "bfloat16"):
        run, history, seconds, (full, half) = train_shakespeare(precision, args.steps, args.eval_iters)
        runs[precision] = run
        loss = history["val_loss"][-1]
        float32_loss = history["val_loss"][-1] if precision == "float32" else float32_loss
        scale = history.get("loss_scale", ["-"])[-1]
        skipped = sum(history.get("skipped", [])) if "skipped" in history else "-"
        memory = full if precision == "float32" else half
        print(f"| {precision} | {loss:.4f} | {loss - float32_loss:+.4f} | {seconds:.0f} s | {scale} | {skipped} | "
              f"{memory / 2**20:.2f} |", flush=True)
    print("\nShakespeare GPT (trained in float32), int8 post-training quantisation (the last row's logits come "
          "through the int8 KV cache, the whole block fed at once):\n")
    print("| choice | weight bytes | max logit error | mean logit error | val loss | change |")
    print("|---|---|---|---|---|---|")
    for name, nbytes, emax, emean, loss, change in measure_lm(runs["float32"], args.eval_iters):
        print(f"| {name} | {nbytes:,} | {emax:.4f} | {emean:.5f} | {loss:.4f} | {change:+.4f} |", flush=True)
    rows, seconds = measure_reverse(args.reverse_steps)
    print(f"\nReverse model (encoder-decoder, trained {seconds:.0f} s), int8 post-training quantisation (logits and "
          "loss teacher-forced, without a cache; exact match by greedy decoding, through the int8 KV cache in the "
          "last row):\n")
    print("| choice | weight bytes | max logit error | mean logit error | val loss | change | exact match | change (points) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, nbytes, emax, emean, loss, change, em, em_change in rows:
        print(f"| {name} | {nbytes:,} | {emax:.4f} | {emean:.5f} | {loss:.5f} | {change:+.5f} | {100 * em:.1f} % | "
              f"{em_change:+.1f} |", flush=True)


if __name__ == "__main__":
    main()
