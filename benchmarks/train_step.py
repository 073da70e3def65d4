"""Speed of one GPT training step (forward, loss, backward, clipping, AdamW) on this machine.

For each configuration: the median step time, tokens per second, the achieved GFLOP/s by the
usual estimate 6N + 12 L T d flops per token (N = non-embedding parameters; the attention
term counts the score and value products), that figure as a fraction of NumPy's float32
matmul peak (benchmarks/matmul_peak.py), and the peak memory of the arrays one step allocates.

    python benchmarks/train_step.py [--steps 20] [--only small|large] [--system-malloc]

Memory allocator: a step allocates and frees a few hundred arrays of 0.1 to 20 MB. With
glibc's default settings freed memory goes back to the system and comes back as fresh pages,
each first touch a page fault: about 3500 faults (13 MiB) per step of the small
configuration, 10% of its time. Like PyTorch's CPU performance guides (which recommend jemalloc
or tcmalloc for the same reason), THIS BENCHMARK therefore asks glibc, through ``mallopt``, to
keep freed memory for reuse, and prints that it did. The library itself never changes the
allocator (a process-wide setting); a script or notebook that wants the same speed-up can set
MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ in the environment before
starting Python, or call ``keep_freed_memory`` below. ``--system-malloc`` measures with the
defaults instead. Results are identical either way; only the time differs.
"""

import argparse
import ctypes
import ctypes.util
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from matmul_peak import matmul_peak  # noqa: E402

from transformer_np.loss import CrossEntropyLoss  # noqa: E402
from transformer_np.models import GPT  # noqa: E402
from transformer_np.models.counting import flops_per_token  # noqa: E402
from transformer_np.optim import AdamW, clip_grad_norm, param_groups  # noqa: E402

CONFIGS = {
    # nanoGPT's CPU recipe for character-level Shakespeare (vocabulary 65).
    "small": dict(vocab_size=65, block_size=64, n_layers=4, n_heads=4, d_model=128, batch=12),
    # The larger configuration of the issue: 6 layers, 6 heads, d = 384, block 256, batch 8.
    "large": dict(vocab_size=65, block_size=256, n_layers=6, n_heads=6, d_model=384, batch=8),
}


M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
MiB = 2**20


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse; True when the settings were applied.

    The same as setting MALLOC_MMAP_THRESHOLD_=268435456, MALLOC_TRIM_THRESHOLD_=1073741824 and
    MALLOC_TOP_PAD_=268435456 in the environment before starting Python. On systems without
    glibc it does nothing and returns False.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, 256 * MiB)  # arrays below 256 MiB come from the heap ...
    ok &= mallopt(M_TRIM_THRESHOLD, 1024 * MiB)  # ... which is not trimmed below 1 GiB ...
    ok &= mallopt(M_TOP_PAD, 256 * MiB)  # ... and grows in steps of 256 MiB
    return bool(ok)


def make_step(cfg, rng):
    """A closure running one full training step on a fixed random batch, and the model."""
    model = GPT(vocab_size=cfg["vocab_size"], block_size=cfg["block_size"], n_layers=cfg["n_layers"],
                n_heads=cfg["n_heads"], d_model=cfg["d_model"], rng=rng)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = CrossEntropyLoss()
    shape = (cfg["batch"], cfg["block_size"])
    x = rng.integers(0, cfg["vocab_size"], size=shape)
    y = rng.integers(0, cfg["vocab_size"], size=shape)

    def step():
        optimizer.zero_grad()
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        clip_grad_norm(optimizer.params, 1.0)
        optimizer.step()
        return loss

    return step, model


def measure(name, cfg, steps, peak):
    step, model = make_step(cfg, np.random.default_rng(0))
    for _ in range(3):  # warm up: first-touch allocations, BLAS threads
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    step()
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    median = float(np.median(times))
    tokens = cfg["batch"] * cfg["block_size"]
    flops = flops_per_token(model.config, cfg["block_size"]) * tokens
    gflops = flops / median / 1e9
    return {
        "config": name,
        "step_ms": 1e3 * median,
        "tokens_per_s": tokens / median,
        "gflops": gflops,
        "of_peak": gflops / peak,
        "peak_mib": peak_bytes / 2**20,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", choices=sorted(CONFIGS))
    parser.add_argument("--system-malloc", action="store_true", help="keep glibc's default malloc settings")
    args = parser.parse_args(argv)
    tuned = not args.system_malloc and keep_freed_memory()
    print(
        "malloc: this benchmark set glibc's mallopt to keep freed memory for reuse"
        if tuned
        else "malloc: system defaults"
    )
    table, peak = matmul_peak()
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s  ({', '.join(f'n={n}: {g:.0f}' for n, g in table.items())})")
    names = [args.only] if args.only else list(CONFIGS)
    print(f"{'config':<7} {'step ms':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'of peak':>8} {'peak MiB':>9}")
    for name in names:
        r = measure(name, CONFIGS[name], args.steps, peak)
        print(
            f"{r['config']:<7} {r['step_ms']:8.1f} {r['tokens_per_s']:9.0f} {r['gflops']:8.1f} "
            f"{r['of_peak']:8.0%} {r['peak_mib']:9.1f}"
        )


if __name__ == "__main__":
    main()
