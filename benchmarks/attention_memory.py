"""Memory and time of one attention forward + backward as the sequence grows: standard, tiled,
sliding-window (banded) and linear attention (notes/flash.md, notes/window.md,
notes/linear_attention.md).

For each T the inputs Q, K, V (B, H, T, Dh) and the upstream gradient are made first; then
``tracemalloc`` records the peak of the memory NumPy allocates during one forward and one
backward of the attention core alone (the inputs and, for the standard and window paths, the
causal mask array (1, 1, T, T) of T^2 bytes, shared by batch and heads, are made before and not
counted). All are causal: the tiled and linear layers take ``causal=True`` and need no mask array.

    kind        what it keeps                             expected growth
    standard    S, P (B, H, T, T) and the backward's dP, dS    T^2
    tiled       O, log-sum-exp, one tile of scores             T
    window      each query block's P, (block, block + w - 1)   T w
    linear      phi(Q), phi(K) and phi(K)^T V at chunk starts  T F + T F Dv / chunk
    performer   the same with F = the number of features      T m + T m Dv / chunk

Prints a Markdown table for benchmarks/RESULTS.md. OPENBLAS_NUM_THREADS=1 is set here (the
machine is shared). About 3 minutes on the project's 2-core machine with the defaults (the
standard path at T = 4096 needs about 1 GB).

    python benchmarks/attention_memory.py [--lengths 256,512,1024,2048,4096] [--batch 1] [--heads 2] [--d-head 32]
                                          [--plot benchmarks/attention_memory.png]
"""

import argparse
import os
import time
import tracemalloc

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

from transformer_np.layers.attention import ScaledDotProductAttention  # noqa: E402
from transformer_np.layers.linear_attention import LinearAttention, PerformerAttention  # noqa: E402
from transformer_np.layers.masks import causal_mask  # noqa: E402
from transformer_np.layers.tiled_attention import TiledAttention  # noqa: E402
from transformer_np.layers.window_attention import SlidingWindowAttention  # noqa: E402

TILE, WINDOW, FEATURES = 128, 128, 64


def make(kind, d_head):
    """(layer, needs a causal mask array) for one kind."""
    if kind == "standard":
        return ScaledDotProductAttention(), True
    if kind == "tiled":
        return TiledAttention(TILE, TILE, causal=True), False
    if kind == "window":
        return SlidingWindowAttention(WINDOW, block=TILE), True
    if kind == "linear":
        return LinearAttention(causal=True), False
    if kind == "performer":
        return PerformerAttention(d_head, FEATURES, causal=True), False
    raise KeyError(kind)


def measure(kind, T, batch=1, heads=2, d_head=32, dtype=np.float32, seed=0):
    """(peak bytes allocated during one forward + backward, seconds) of one attention core."""
    rng = np.random.default_rng(seed)
    Q, K, V, dO = (rng.standard_normal((batch, heads, T, d_head)).astype(dtype) for _ in range(4))
    layer, masked = make(kind, d_head)
    mask = causal_mask(T) if masked else None
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    layer.forward(Q, K, V, mask=mask)
    layer.backward(dO)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="256,512,1024,2048,4096")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--d-head", type=int, default=32)
    parser.add_argument("--kinds", default="standard,tiled,window,linear,performer")
    parser.add_argument("--plot", default=None, help="also save a log-log plot of the peaks to this PNG")
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    kinds = args.kinds.split(",")
    print(f"B={args.batch}, H={args.heads}, Dh={args.d_head}, float32, causal; tiles {TILE}, window {WINDOW}, "
          f"performer features {FEATURES}\n")
    results = {(k, T): measure(k, T, args.batch, args.heads, args.d_head) for T in lengths for k in kinds}
    print("peak MiB of one forward + backward (tracemalloc)\n")
    print("| T | " + " | ".join(kinds) + " |")
    print("|---:|" + "---:|" * len(kinds))
    for T in lengths:
        print(f"| {T} | " + " | ".join(f"{results[k, T][0] / 2**20:.1f}" for k in kinds) + " |")
    print("\nseconds of one forward + backward\n")
    print("| T | " + " | ".join(kinds) + " |")
    print("|---:|" + "---:|" * len(kinds))
    for T in lengths:
        print(f"| {T} | " + " | ".join(f"{results[k, T][1]:.3f}" for k in kinds) + " |")
    if len(lengths) > 1:
        a, b = lengths[-2], lengths[-1]
        print(f"\ngrowth of the peak from T={a} to T={b} ({b / a:g}x longer): "
              + ", ".join(f"{k} {results[k, b][0] / results[k, a][0]:.2f}x" for k in kinds))

    if args.plot:
        save_plot(results, kinds, lengths, args.plot)


def save_plot(results, kinds, lengths, path):
    """Peak MiB against T on log-log axes, with the slopes 1 and 2 for reference."""
    from transformer_np.viz import new_figure

    fig = new_figure((6, 4.5))
    ax = fig.subplots()
    for kind in kinds:
        ax.loglog(lengths, [results[kind, T][0] / 2**20 for T in lengths], "o-", label=kind)
    first = results[kinds[0], lengths[0]][0] / 2**20
    ax.loglog(lengths, [first * (T / lengths[0]) ** 2 for T in lengths], "k:", label="slope 2 (T^2)")
    ax.loglog(lengths, [first * T / lengths[0] for T in lengths], "k--", label="slope 1 (T)")
    ax.set_xticks(lengths, [str(T) for T in lengths])
    ax.tick_params(axis="x", which="minor", labelbottom=False)
    ax.set_xlabel("T")
    ax.set_ylabel("peak MiB, one forward + backward")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
