"""Speed of GPT generation with and without the KV cache (notes/decoding.md, "What it saves").

For each GPT configuration of benchmarks/train_step.py: greedy generation of 256 new tokens
(batch 1, float32) from a short random prompt, once recomputing the whole context at every
step (``model.forward``) and once with the cache (``model.forward(..., cache=cache)``: the prompt at once,
then one token per step). Prints tokens per second of both (the best of the repeats for the
cache; recomputation runs once, it is slow), the speed-up, whether both give the same tokens,
and the time of one cached step at new token 32 and at new token 256 (median of the 8 steps
ending there, then median over the repeats, the two measured in turn), whose ratio shows how
little the per-token cost grows with the length (notes/decoding.md, (dec.5) and (dec.6)).

Block size: the configurations' blocks (64 and 256) cannot hold prompt + 256 new tokens, and a
cache of learned absolute positions cannot slide. So both models are built here with
block_size = prompt + new tokens (8 + 256 = 264); every other setting is the configuration's.
Neither path crops: the recomputing path attends to the whole context, as the cached one does.

BLAS threads: at batch 1 the products are thin, so threads gain little; on a shared machine a
second BLAS thread that waits for a busy core can make a forward many times slower. Figures in
RESULTS.md are taken with OPENBLAS_NUM_THREADS=1 (the header prints the setting).

    OPENBLAS_NUM_THREADS=1 python benchmarks/generate.py [--only small|large] [--new-tokens 256] [--repeats 3]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from train_step import CONFIGS  # noqa: E402

from transformer_np.models import GPT  # noqa: E402

PROMPT = 8


def build(cfg, new_tokens):
    model = GPT(vocab_size=cfg["vocab_size"], block_size=PROMPT + new_tokens, n_layers=cfg["n_layers"],
                n_heads=cfg["n_heads"], d_model=cfg["d_model"], rng=np.random.default_rng(0), dtype=np.float32)
    return model.eval()


def generate_recompute(model, prompt, new_tokens):
    """Greedy tokens, rerunning the model on everything so far at every step; returns (ids, seconds)."""
    idx = prompt
    start = time.perf_counter()
    for _ in range(new_tokens):
        next_id = model.forward(idx)[:, -1].argmax(axis=-1)
        idx = np.concatenate([idx, next_id[:, None]], axis=1)
    return idx, time.perf_counter() - start


def generate_cached(model, prompt, new_tokens):
    """Greedy tokens with the KV cache: the prompt at once, then one token per step; returns (ids, seconds)."""
    start = time.perf_counter()
    cache = model.new_cache(prompt.shape[0])
    logits = model.forward(prompt, cache=cache)  # gives new token 1
    ids = [logits[:, -1].argmax(axis=-1)]
    for _ in range(new_tokens - 1):
        logits = model.forward(ids[-1][:, None], cache=cache)
        ids.append(logits[:, -1].argmax(axis=-1))
    seconds = time.perf_counter() - start
    return np.concatenate([prompt, np.stack(ids, axis=1)], axis=1), seconds


def cached_step_ms(model, k, window=8):
    """Median time (ms) of the cached steps that produce new tokens k-window+1 .. k: the step
    producing new token j attends to PROMPT + j - 1 keys (the prompt and the j - 1 tokens before)."""
    cache = model.new_cache(1)
    model.forward(np.zeros((1, PROMPT + k - 1 - window), dtype=np.int64), cache=cache)
    one, times = np.zeros((1, 1), dtype=np.int64), []
    for _ in range(window):
        start = time.perf_counter()
        model.forward(one, cache=cache)
        times.append(time.perf_counter() - start)
    assert cache.length == PROMPT + k - 1
    return 1e3 * float(np.median(times))


def measure(name, cfg, new_tokens, repeats):
    model = build(cfg, new_tokens)
    prompt = np.random.default_rng(1).integers(0, cfg["vocab_size"], size=(1, PROMPT))
    generate_cached(model, prompt, 16)  # warm up: first-touch allocations, BLAS threads
    runs = [generate_cached(model, prompt, new_tokens) for _ in range(repeats)]
    t_cached = min(seconds for _, seconds in runs)
    ids_recompute, t_recompute = generate_recompute(model, prompt, new_tokens)  # long: run once
    # the two positions interleaved, so that a change in the machine's load hits both alike
    at = {32: [], new_tokens: []}
    for _ in range(repeats):
        for k in at:
            at[k].append(cached_step_ms(model, k))
    return {
        "config": name,
        "recompute_tps": new_tokens / t_recompute,
        "cached_tps": new_tokens / t_cached,
        "speedup": t_recompute / t_cached,
        "ms_at_32": float(np.median(at[32])),
        "ms_at_end": float(np.median(at[new_tokens])),
        "same_tokens": bool(np.array_equal(runs[0][0], ids_recompute)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CONFIGS))
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.new_tokens
    names = [args.only] if args.only else list(CONFIGS)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"greedy, batch 1, float32, prompt {PROMPT}, {n} new tokens, block_size {PROMPT + n}, OPENBLAS_NUM_THREADS={threads}")
    print(
        f"{'config':<7} {'recompute tok/s':>15} {'cached tok/s':>12} {'speed-up':>8} "
        f"{'ms @32':>7} {f'ms @{n}':>8} {'growth':>6} {'same ids':>8}"
    )
    for name in names:
        r = measure(name, CONFIGS[name], n, args.repeats)
        print(
            f"{r['config']:<7} {r['recompute_tps']:15.1f} {r['cached_tps']:12.1f} {r['speedup']:7.1f}x "
            f"{r['ms_at_32']:7.2f} {r['ms_at_end']:8.2f} {r['ms_at_end'] / r['ms_at_32']:5.2f}x {str(r['same_tokens']):>8}"
        )


if __name__ == "__main__":
    main()
