"""A GPT training step and KV-cache generation on a device backend (CuPy on a GPU) next to NumPy on the CPU,
and next to PyTorch on the same GPU when PyTorch sees CUDA (issue 16).

    python benchmarks/backend_compare.py --backend cupy [--only small|large] [--steps 10] [--new-tokens 128]
    python benchmarks/backend_compare.py --backend strict --steps 2 --new-tokens 8   # dry run on a CPU

For each configuration of benchmarks/train_step.py (float32, the same weights and batch on every
backend):
- one training step (forward, loss, backward, clipping, AdamW): the median time over ``--steps``
  after two warm-up steps, tokens per second, and the first step's loss on each backend (they
  agree to float32 rounding: a GPU sums in another order);
- greedy generation with the KV cache (``generate``, batch 1, prompt 8, ``--new-tokens`` new
  tokens, block_size = prompt + new tokens as in benchmarks/generate.py): tokens per second,
  and whether the device produced the CPU's tokens.
A device's time is read after synchronising it (CuPy launches kernels asynchronously), and the
first calls (kernel compilation) are warm-ups. PyTorch: the same architecture written with
``torch.nn`` (pre-LN blocks, GELU, tied output, AdamW, clipping), timed the same way; its weights
are its own, so only its time is compared. ``--backend strict`` uses the tests' CPU stand-in
for CuPy (tests/strict_backend.py): it checks this script's device path without a GPU; its
times mean nothing.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_step import CONFIGS  # noqa: E402

from transformer_np import backend  # noqa: E402
from transformer_np.backend import to_backend, to_numpy  # noqa: E402
from transformer_np.generate import generate  # noqa: E402
from transformer_np.loss import CrossEntropyLoss  # noqa: E402
from transformer_np.models import GPT  # noqa: E402
from transformer_np.optim import AdamW, clip_grad_norm, param_groups  # noqa: E402

PROMPT = 8


def use_backend(name):
    """The backend ``name`` ready to use, and a function that waits until its device is idle."""
    if name == "strict":  # the tests' stand-in, registered as the tests do
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
        import strict_backend

        backend.register_backend("strict", strict_backend, strict_backend.StrictArray)
    xp = backend.get_backend(name)
    if name == "cupy":
        return lambda: xp.cuda.Device().synchronize()
    return lambda: None


def timed(fn, repeats, sync, warmup=2):
    """Median seconds of fn() over ``repeats`` calls after ``warmup`` calls, the device synchronised."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def train_step(cfg, name, steps, sync):
    """(median seconds, first loss) of a training step of the GPT of ``cfg`` on backend ``name``."""
    rng = np.random.default_rng(0)
    model = GPT(vocab_size=cfg["vocab_size"], block_size=cfg["block_size"], n_layers=cfg["n_layers"],
                n_heads=cfg["n_heads"], d_model=cfg["d_model"], rng=rng, dtype=np.float32).to(name)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = CrossEntropyLoss()
    shape = (cfg["batch"], cfg["block_size"])
    x = to_backend(rng.integers(0, cfg["vocab_size"], size=shape), name)
    y = to_backend(rng.integers(0, cfg["vocab_size"], size=shape), name)
    losses = []

    def step():
        optimizer.zero_grad()
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        clip_grad_norm(optimizer.params, 1.0)
        optimizer.step()
        losses.append(loss)

    seconds = timed(step, steps, sync)
    return seconds, float(losses[0])


def generation(cfg, name, new_tokens, sync):
    """(tokens per second, the tokens) of greedy cached generation on backend ``name``."""
    model = GPT(vocab_size=cfg["vocab_size"], block_size=PROMPT + new_tokens, n_layers=cfg["n_layers"],
                n_heads=cfg["n_heads"], d_model=cfg["d_model"], rng=np.random.default_rng(0),
                dtype=np.float32).to(name).eval()
    prompt = to_backend(np.random.default_rng(1).integers(0, cfg["vocab_size"], size=(1, PROMPT)), name)
    out = []
    seconds = timed(lambda: out.append(generate(model, prompt, new_tokens, temperature=0)), 1, sync, warmup=1)
    return new_tokens / seconds, to_numpy(out[-1])


def torch_step(cfg, steps, device="cuda"):
    """Median seconds of the same training step in PyTorch on ``device`` (CUDA), or None without it."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    nn, dev = torch.nn, torch.device(device)
    V, T, L, H, D, B = (cfg[k] for k in ("vocab_size", "block_size", "n_layers", "n_heads", "d_model", "batch"))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
            layer = nn.TransformerEncoderLayer(D, H, 4 * D, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, L, enable_nested_tensor=False)
            self.ln_f = nn.LayerNorm(D)
            self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(T))

        def forward(self, idx):
            h = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
            h = self.ln_f(self.blocks(h, mask=self.causal, is_causal=True))
            return h @ self.tok.weight.T  # the tied output layer

    torch.manual_seed(0)
    model = TorchGPT().to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    x, y = (torch.randint(0, V, (B, T), device=dev) for _ in range(2))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return timed(step, steps, torch.cuda.synchronize if device == "cuda" else lambda: None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("cupy", "strict"), default="cupy")
    parser.add_argument("--only", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    device = args.backend
    sync = use_backend(device)
    if device == "cupy":
        cp = backend.get_backend("cupy")
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"device: {gpu}, CuPy {cp.__version__}")
    else:
        print("device: the CPU stand-in for CuPy (tests/strict_backend.py): a dry run, its times mean nothing")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"NumPy {np.__version__} on the CPU, OPENBLAS_NUM_THREADS={threads}; float32; time = median after warm-up")
    names = [args.only] if args.only else list(CONFIGS)
    print(f"{'config':<7} {'what':<22} {'numpy':>10} {device:>10} {'torch':>10} {'speed-up':>9}  check")
    for name in names:
        cfg = CONFIGS[name]
        t_cpu, loss_cpu = train_step(cfg, "numpy", args.steps, lambda: None)
        t_dev, loss_dev = train_step(cfg, device, args.steps, sync)
        t_torch = torch_step(cfg, args.steps) if device == "cupy" else None
        torch_ms = f"{1e3 * t_torch:8.1f}ms" if t_torch else f"{'-':>10}"
        print(f"{name:<7} {'train step':<22} {1e3 * t_cpu:8.1f}ms {1e3 * t_dev:8.1f}ms {torch_ms} "
              f"{t_cpu / t_dev:8.1f}x  loss {loss_cpu:.6f} vs {loss_dev:.6f} (|diff| {abs(loss_cpu - loss_dev):.1e})")
        tps_cpu, ids_cpu = generation(cfg, "numpy", args.new_tokens, lambda: None)
        tps_dev, ids_dev = generation(cfg, device, args.new_tokens, sync)
        same = int((ids_cpu == ids_dev).all(axis=0).argmin()) if not np.array_equal(ids_cpu, ids_dev) else None
        verdict = "same tokens" if same is None else f"tokens differ from position {same} on"
        print(f"{name:<7} {f'generate {args.new_tokens} (tok/s)':<22} {tps_cpu:10.1f} {tps_dev:10.1f} {'-':>10} "
              f"{tps_dev / tps_cpu:8.1f}x  {verdict}")


if __name__ == "__main__":
    main()
