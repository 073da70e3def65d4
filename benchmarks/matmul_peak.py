"""NumPy's float32 matrix-multiply peak on this machine, in GFLOP/s.

The training benchmarks report their speed as a fraction of this number: a Transformer's
training step is mostly matrix products, so this is the ceiling that the layers can approach.

    python benchmarks/matmul_peak.py
"""

import time

import numpy as np


def matmul_gflops(n, dtype=np.float32, repeats=5):
    """Best GFLOP/s of an (n, n) @ (n, n) product over ``repeats`` timed runs (2 n^3 flops each)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=out)  # warm up (thread pool, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def matmul_peak(sizes=(512, 1024, 2048)):
    """{n: GFLOP/s} for a few square sizes, and the best of them (the peak)."""
    table = {n: matmul_gflops(n) for n in sizes}
    return table, max(table.values())


if __name__ == "__main__":
    table, peak = matmul_peak()
    print("float32 matmul, NumPy", np.__version__)
    for n, gflops in table.items():
        print(f"  n = {n:5d}: {gflops:7.1f} GFLOP/s")
    print(f"peak: {peak:.1f} GFLOP/s")
