"""transformer_np against PyTorch on the CPU: the same workloads, one process after the other.

    python benchmarks/vs_torch.py [--quick] [--only NAME ...] [--pairs 5] [--threads 1] [--no-neighbour]

For every workload the benchmark starts a fresh process for this library (A) and one for an
equivalent plain-PyTorch implementation written below (B), alternately, A B A B ..., ``--pairs``
times. Each process builds its model, warms up, times a few repetitions and reports their
median. The figure of a workload is the median over the pairs of the ratio A / B of two
neighbouring processes: on a shared machine absolute times drift from minute to minute, the
ratio of two runs taken one after the other much less.

The workloads (issue 11):

    gpt-small-train     GPT training step, nanoGPT's CPU recipe (4 layers, 4 heads, d 128, block 64, batch 12)
    gpt-large-train     GPT training step, 6 layers, 6 heads, d 384, block 256, batch 8
    encdec-base-train   encoder-decoder training step at the paper's base shape (6 + 6 layers,
                        d 512, 8 heads, d_ff 2048), batch 8 x 32 source and 8 x 32 target tokens,
                        vocabulary 4000, dropout 0
    encoder-forward     encoder-only forward at all-MiniLM-L6-v2's shape (6 layers, 12 heads,
                        d 384, d_ff 1536, post-LN, GELU), 9 sequences padded to 256 tokens, inference mode
    gpt-small-generate  greedy generation with the KV cache, prompt 8, 256 new tokens, batch 1
    gpt-large-generate  the same on the large configuration

A training step is: forward, cross-entropy, backward, clipping at 1.0 (GPTs), AdamW with weight
decay 0.1 on the matrices, float32, exact GELU for the GPTs. The PyTorch side is what a reader
would write without fused kernels: nn.Linear, nn.LayerNorm, nn.Embedding, attention as
``softmax(q @ k^T / sqrt(dh) masked with -inf) @ v`` (nanoGPT's non-flash path), torch.optim.AdamW,
autograd. Both sides use the same shapes, the same algorithm and float32.

Threads: every process runs with ``--threads`` BLAS / OpenMP threads (default 1), set through
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS before NumPy or PyTorch is imported,
and torch.set_num_threads. On a machine that others share, one thread each is the comparison
that can be repeated. The last section measures the small training step with one BLAS thread
and with two, with nothing else started and beside a second CPU-bound process (a pure-Python
busy loop, as in benchmarks/blas_threads.py), because course machines are shared.

The header says which BLAS and which kernel set NumPy runs (OpenBLAS's core name: a machine
whose environment sets OPENBLAS_CORETYPE runs older, slower kernels), the thread settings, the
load average, and NumPy's float32 matmul peak (benchmarks/matmul_peak.py) with those threads.

PyTorch is optional: without it the benchmark says how to install it
(``pip install torch --index-url https://download.pytorch.org/whl/cpu``) and measures only this
library.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

GPT_CONFIGS = {
    "small": dict(vocab_size=65, block_size=64, n_layers=4, n_heads=4, d_model=128, batch=12),
    "large": dict(vocab_size=65, block_size=256, n_layers=6, n_heads=6, d_model=384, batch=8),
}
ENCDEC = dict(vocab=4000, n_layers=6, d_model=512, n_heads=8, d_ff=2048, batch=8, src_len=32, tgt_len=32)
MINILM = dict(n_layers=6, n_heads=12, d_model=384, d_ff=1536, batch=9, length=256,
              lengths=(256, 241, 220, 198, 175, 150, 122, 90, 57))  # 9 sequences padded to 256
PROMPT, NEW_TOKENS = 8, 256

# name: (kind, argument, warm-up runs, timed runs, timed runs with --quick)
WORKLOADS = {
    "gpt-small-train": ("gpt_train", "small", 3, 10, 5),
    "gpt-large-train": ("gpt_train", "large", 1, 4, 2),
    "encdec-base-train": ("encdec_train", None, 1, 3, 2),
    "encoder-forward": ("encoder_forward", None, 1, 5, 3),
    "gpt-small-generate": ("gpt_generate", "small", 1, 3, 2),
    "gpt-large-generate": ("gpt_generate", "large", 1, 3, 1),
}
BARS = {"gpt-small-train": 1.8, "gpt-large-train": 1.5, "encdec-base-train": 1.5, "encoder-forward": 1.5}


# -- this library ------------------------------------------------------------------------------------
def ours_gpt_train(size):
    import numpy as np

    from transformer_np.loss import CrossEntropyLoss
    from transformer_np.models import GPT
    from transformer_np.optim import AdamW, clip_grad_norm, param_groups

    cfg = GPT_CONFIGS[size]
    rng = np.random.default_rng(0)
    model = GPT(vocab_size=cfg["vocab_size"], block_size=cfg["block_size"], n_layers=cfg["n_layers"],
                n_heads=cfg["n_heads"], d_model=cfg["d_model"], rng=rng, dtype=np.float32)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = CrossEntropyLoss()
    x = rng.integers(0, cfg["vocab_size"], size=(cfg["batch"], cfg["block_size"]))
    y = rng.integers(0, cfg["vocab_size"], size=(cfg["batch"], cfg["block_size"]))

    def step():
        optimizer.zero_grad()
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        clip_grad_norm(optimizer.params, 1.0)
        optimizer.step()
        return float(loss)

    step.parts = dict(model=model, loss=loss_fn, optimizer=optimizer)  # for benchmarks/profile_step.py
    return step


def ours_encdec_train(_):
    import numpy as np

    from transformer_np.layers.masks import padding_mask_from_lengths
    from transformer_np.loss import CrossEntropyLoss
    from transformer_np.models import Transformer
    from transformer_np.optim import AdamW, param_groups

    c = ENCDEC
    rng = np.random.default_rng(0)
    model = Transformer(src_vocab=c["vocab"], tgt_vocab=c["vocab"], n_layers=c["n_layers"], d_model=c["d_model"],
                        n_heads=c["n_heads"], d_ff=c["d_ff"], dropout=0.0, max_len=64, rng=rng, dtype=np.float32)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-4, betas=(0.9, 0.98))
    loss_fn = CrossEntropyLoss()
    src = rng.integers(0, c["vocab"], size=(c["batch"], c["src_len"]))
    tgt_in = rng.integers(0, c["vocab"], size=(c["batch"], c["tgt_len"]))
    tgt_out = rng.integers(0, c["vocab"], size=(c["batch"], c["tgt_len"]))
    src_mask = padding_mask_from_lengths(np.full(c["batch"], c["src_len"]), c["src_len"])

    def step():
        optimizer.zero_grad()
        loss = loss_fn.forward(model.forward(src, tgt_in, src_mask=src_mask), tgt_out)
        model.backward(loss_fn.backward())
        optimizer.step()
        return float(loss)

    step.parts = dict(model=model, loss=loss_fn, optimizer=optimizer)
    return step


def ours_encoder_forward(_):
    import numpy as np

    from transformer_np.layers.masks import padding_mask_from_lengths
    from transformer_np.models import Encoder, TransformerConfig

    c = MINILM
    rng = np.random.default_rng(0)
    # The library's Encoder, configured by the block fields of a TransformerConfig (vocabularies unused).
    config = TransformerConfig(src_vocab=1, tgt_vocab=1, n_layers=c["n_layers"], d_model=c["d_model"],
                               n_heads=c["n_heads"], d_ff=c["d_ff"], activation="gelu", norm="post", dropout=0.0)
    encoder = Encoder(config, rng=rng, dtype=np.float32)
    encoder.eval().inference_mode()
    x = rng.standard_normal((c["batch"], c["length"], c["d_model"])).astype(np.float32)
    mask = padding_mask_from_lengths(np.array(c["lengths"]), c["length"])  # (B, 1, 1, T)

    def forward():
        return float(encoder.forward(x, mask)[0, 0, 0])

    forward.parts = dict(model=encoder)
    return forward


def ours_gpt_generate(size):
    import numpy as np

    from transformer_np.models import GPT

    cfg = GPT_CONFIGS[size]
    model = GPT(vocab_size=cfg["vocab_size"], block_size=PROMPT + NEW_TOKENS, n_layers=cfg["n_layers"],
                n_heads=cfg["n_heads"], d_model=cfg["d_model"], rng=np.random.default_rng(0), dtype=np.float32)
    model.eval()
    prompt = np.random.default_rng(1).integers(0, cfg["vocab_size"], size=(1, PROMPT))

    def generate():
        cache = model.new_cache(1)
        logits = model.forward(prompt, cache=cache)
        next_id = logits[:, -1].argmax(axis=-1)
        for _ in range(NEW_TOKENS - 1):
            next_id = model.forward(next_id[:, None], cache=cache)[:, -1].argmax(axis=-1)
        return int(next_id[0])

    return generate


# -- plain PyTorch -----------------------------------------------------------------------------------
def torch_modules():
    """The PyTorch equivalents, defined only once torch is imported."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def attention(q, k, v, keep=None):
        """softmax(q k^T / sqrt(dh), with -inf where keep is False) v, written out (no fused kernel)."""
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if keep is not None:
            s = s.masked_fill(~keep, float("-inf"))
        return F.softmax(s, dim=-1) @ v

    class MultiHead(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.w_q, self.w_k, self.w_v, self.w_o = (nn.Linear(d, d) for _ in range(4))

        def split(self, x):
            B, T, D = x.shape
            return x.view(B, T, self.h, D // self.h).transpose(1, 2)

        def forward(self, x, memory=None, keep=None, cache=None):
            m = x if memory is None else memory
            q, k, v = self.split(self.w_q(x)), self.split(self.w_k(m)), self.split(self.w_v(m))
            if cache is not None:  # (K buffer, V buffer, length): append, attend to everything so far
                kb, vb, n = cache
                kb[:, :, n:n + k.size(2)] = k
                vb[:, :, n:n + k.size(2)] = v
                k, v = kb[:, :, :n + k.size(2)], vb[:, :, :n + k.size(2)]
            o = attention(q, k, v, keep)
            B, H, T, Dh = o.shape
            return self.w_o(o.transpose(1, 2).reshape(B, T, H * Dh))

    class FeedForward(nn.Module):
        def __init__(self, d, d_ff, activation):
            super().__init__()
            self.w_1, self.w_2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
            self.act = activation

        def forward(self, x):
            return self.w_2(self.act(self.w_1(x)))

    class GPTBlock(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.ln_1, self.attn, self.ln_2, self.ffn = nn.LayerNorm(d), MultiHead(d, h), nn.LayerNorm(d), \
                FeedForward(d, 4 * d, F.gelu)

        def forward(self, x, keep, cache=None):
            x = x + self.attn(self.ln_1(x), keep=keep, cache=cache)
            return x + self.ffn(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self, vocab_size, block_size, n_layers, n_heads, d_model):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab_size, d_model), nn.Embedding(block_size, d_model)
            self.blocks = nn.ModuleList(GPTBlock(d_model, n_heads) for _ in range(n_layers))
            self.ln_f = nn.LayerNorm(d_model)
            self.register_buffer("causal", torch.ones(block_size, block_size, dtype=torch.bool).tril())
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(("w_o.weight", "w_2.weight")) else 0.02
                    nn.init.normal_(p, std=std)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, caches=None, start=0):
            T = idx.size(1)
            x = self.tok(idx) + self.pos(torch.arange(start, start + T))
            keep = self.causal[start:start + T, :start + T]
            for i, block in enumerate(self.blocks):
                x = block(x, keep, None if caches is None else (*caches[i], start))
            return self.ln_f(x) @ self.tok.weight.T  # the output layer tied to the embedding

    class Sinusoid(nn.Module):
        def __init__(self, d, n):
            super().__init__()
            pos = torch.arange(n, dtype=torch.float32)[:, None]
            freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
            pe = torch.zeros(n, d)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
            self.register_buffer("pe", pe)

        def forward(self, x):
            return x + self.pe[:x.size(1)]

    class EncoderLayer(nn.Module):  # post-LN, as the paper and BERT
        def __init__(self, d, h, d_ff, activation):
            super().__init__()
            self.attn, self.ln_1 = MultiHead(d, h), nn.LayerNorm(d)
            self.ffn, self.ln_2 = FeedForward(d, d_ff, activation), nn.LayerNorm(d)

        def forward(self, x, keep):
            x = self.ln_1(x + self.attn(x, keep=keep))
            return self.ln_2(x + self.ffn(x))

    class DecoderLayer(nn.Module):
        def __init__(self, d, h, d_ff):
            super().__init__()
            self.self_attn, self.ln_1 = MultiHead(d, h), nn.LayerNorm(d)
            self.cross_attn, self.ln_2 = MultiHead(d, h), nn.LayerNorm(d)
            self.ffn, self.ln_3 = FeedForward(d, d_ff, F.relu), nn.LayerNorm(d)

        def forward(self, y, memory, causal, src_keep):
            y = self.ln_1(y + self.self_attn(y, keep=causal))
            y = self.ln_2(y + self.cross_attn(y, memory, keep=src_keep))
            return self.ln_3(y + self.ffn(y))

    class Transformer(nn.Module):
        def __init__(self, vocab, n_layers, d, h, d_ff, max_len):
            super().__init__()
            self.d = d
            self.src_embed, self.tgt_embed = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
            self.pos = Sinusoid(d, max_len)
            self.encoder = nn.ModuleList(EncoderLayer(d, h, d_ff, F.relu) for _ in range(n_layers))
            self.decoder = nn.ModuleList(DecoderLayer(d, h, d_ff) for _ in range(n_layers))
            self.output = nn.Linear(d, vocab)

        def forward(self, src, tgt_in, src_keep):
            x = self.pos(self.src_embed(src) * math.sqrt(self.d))
            for layer in self.encoder:
                x = layer(x, src_keep)
            T = tgt_in.size(1)
            causal = torch.ones(T, T, dtype=torch.bool).tril()
            y = self.pos(self.tgt_embed(tgt_in) * math.sqrt(self.d))
            for layer in self.decoder:
                y = layer(y, x, causal, src_keep)
            return self.output(y)

    return dict(GPT=GPT, Transformer=Transformer, EncoderLayer=EncoderLayer)


def adamw_groups(model, weight_decay):
    """nanoGPT's groups, as param_groups: matrices decayed, vectors not."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def torch_gpt_train(size):
    import torch
    import torch.nn.functional as F

    cfg = GPT_CONFIGS[size]
    torch.manual_seed(0)
    model = torch_modules()["GPT"](cfg["vocab_size"], cfg["block_size"], cfg["n_layers"], cfg["n_heads"],
                                   cfg["d_model"])
    optimizer = torch.optim.AdamW(adamw_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    x = torch.randint(0, cfg["vocab_size"], (cfg["batch"], cfg["block_size"]))
    y = torch.randint(0, cfg["vocab_size"], (cfg["batch"], cfg["block_size"]))

    def step():
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return step


def torch_encdec_train(_):
    import torch
    import torch.nn.functional as F

    c = ENCDEC
    torch.manual_seed(0)
    model = torch_modules()["Transformer"](c["vocab"], c["n_layers"], c["d_model"], c["n_heads"], c["d_ff"], 64)
    optimizer = torch.optim.AdamW(adamw_groups(model, 0.1), lr=1e-4, betas=(0.9, 0.98))
    src = torch.randint(0, c["vocab"], (c["batch"], c["src_len"]))
    tgt_in = torch.randint(0, c["vocab"], (c["batch"], c["tgt_len"]))
    tgt_out = torch.randint(0, c["vocab"], (c["batch"], c["tgt_len"]))
    src_keep = torch.ones(c["batch"], 1, 1, c["src_len"], dtype=torch.bool)

    def step():
        optimizer.zero_grad()
        logits = model(src, tgt_in, src_keep)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt_out.view(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def torch_encoder_forward(_):
    import torch
    import torch.nn.functional as F

    c = MINILM
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(torch_modules()["EncoderLayer"](c["d_model"], c["n_heads"], c["d_ff"], F.gelu)
                                 for _ in range(c["n_layers"])).eval()
    x = torch.randn(c["batch"], c["length"], c["d_model"])
    keep = (torch.arange(c["length"])[None, :] < torch.tensor(c["lengths"])[:, None])[:, None, None, :]

    def forward():
        with torch.inference_mode():
            h = x
            for layer in layers:
                h = layer(h, keep)
            return float(h[0, 0, 0])

    return forward


def torch_gpt_generate(size):
    import torch

    cfg = GPT_CONFIGS[size]
    torch.manual_seed(0)
    model = torch_modules()["GPT"](cfg["vocab_size"], PROMPT + NEW_TOKENS, cfg["n_layers"], cfg["n_heads"],
                                   cfg["d_model"]).eval()
    prompt = torch.randint(0, cfg["vocab_size"], (1, PROMPT))
    dh = cfg["d_model"] // cfg["n_heads"]

    def generate():
        with torch.inference_mode():
            caches = [(torch.empty(1, cfg["n_heads"], PROMPT + NEW_TOKENS, dh),
                       torch.empty(1, cfg["n_heads"], PROMPT + NEW_TOKENS, dh)) for _ in range(cfg["n_layers"])]
            next_id = model(prompt, caches, 0)[:, -1].argmax(dim=-1)
            for t in range(NEW_TOKENS - 1):
                next_id = model(next_id[:, None], caches, PROMPT + t)[:, -1].argmax(dim=-1)
            return int(next_id[0])

    return generate


# -- one process: build, warm up, time ---------------------------------------------------------------
def child(side, name, quick, threads):
    kind, arg, warm, runs, quick_runs = WORKLOADS[name]
    if side == "torch":
        import torch

        torch.set_num_threads(threads)
    run = globals()[f"{side}_{kind}"](arg)
    for _ in range(warm):
        run()
    times, cpu = [], []
    for _ in range(quick_runs if quick else runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(json.dumps({"median_s": statistics.median(times), "cpu_s": statistics.median(cpu), "times": times}))


def timed_process(side, name, quick, threads, timeout=900):
    """The median wall and CPU seconds of one repetition of ``name`` on ``side``, in a fresh process
    ({"median_s": ..., "cpu_s": ...}); None if stopped."""
    env = {**os.environ, "PYTHONPATH": ROOT, **{v: str(threads) for v in THREAD_VARIABLES}}
    command = [sys.executable, os.path.abspath(__file__), "--child", side, name, "--threads", str(threads)]
    if quick:
        command.append("--quick")
    try:
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{side} {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- what the machine runs -------------------------------------------------------------------------------
def openblas_core():
    """OpenBLAS's core name (its kernel set) and thread count as NumPy loaded it, or None."""
    import ctypes

    import numpy  # noqa: F401  (loads the BLAS)

    paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower()} \
        if os.path.exists("/proc/self/maps") else set()
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", ""), ("scipy_openblas", "")):
            try:
                corename = getattr(lib, f"{prefix}_get_corename{suffix}")
                nthreads = getattr(lib, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            corename.restype = ctypes.c_char_p
            return f"{os.path.basename(path)}, core {corename().decode()}, {nthreads()} thread(s)"
    return None


def header(threads, quick):
    import numpy as np

    sys.path.insert(0, HERE)
    from blas_threads import machine  # noqa: E402
    from matmul_peak import matmul_peak  # noqa: E402

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}, {platform.machine()}")
    build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    print(f"NumPy BLAS: {build.get('name')} {build.get('version')}; loaded: {openblas_core() or 'unknown'}")
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            print(f"  threadpoolctl: {info.get('internal_api')} {info.get('version')} "
                  f"{info.get('architecture')} threads {info.get('num_threads')}")
    except ImportError:
        print("  (threadpoolctl not installed: core name read from OpenBLAS directly)")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}; each process: "
          + ", ".join(f"{v}={threads}" for v in THREAD_VARIABLES) + f", torch.set_num_threads({threads})")
    try:
        import torch

        print(f"PyTorch {torch.__version__}: {'MKL' if torch.backends.mkl.is_available() else 'no MKL'}, "
              f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}, "
              f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
        have_torch = True
    except ImportError:
        print("PyTorch is not installed: only this library is measured. To compare, install the CPU build:\n"
              "    pip install torch --index-url https://download.pytorch.org/whl/cpu")
        have_torch = False
    table, peak = matmul_peak()
    print(f"float32 matmul peak (this process, {threads} thread(s)): {peak:.1f} GFLOP/s  "
          f"({', '.join(f'n={n}: {g:.0f}' for n, g in table.items())})")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {'--quick' if quick else 'full'} run")
    return have_torch


def compare(names, pairs, quick, threads, have_torch):
    """Per workload: median wall ms of each side, the median over pairs of the wall ratio A / B,
    the same for CPU time (with one thread, time the process actually ran: other users' jobs
    that take the core away do not count), the bar, and the pairs' wall ratios."""
    print(f"\n{'workload':<20} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} {'cpu':>6} {'bar':>5}  "
          "wall ratio of each pair; load average range")
    results = {}
    for name in names:
        ours, theirs, ratios, cpu_ratios, loads = [], [], [], [], []
        for _ in range(pairs):
            loads.append(os.getloadavg()[0])
            a = timed_process("ours", name, quick, threads)
            b = timed_process("torch", name, quick, threads) if have_torch else None
            ours.append(a["median_s"])
            if b is not None:
                theirs.append(b["median_s"])
                ratios.append(a["median_s"] / b["median_s"])
                cpu_ratios.append(a["cpu_s"] / b["cpu_s"])
        bar = BARS.get(name)
        nan = float("nan")
        ratio = statistics.median(ratios) if ratios else nan
        cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else nan
        results[name] = ratio
        print(f"{name:<20} {1e3 * statistics.median(ours):9.1f} {1e3 * statistics.median(theirs) if theirs else nan:9.1f} "
              f"{ratio:6.2f} {cpu_ratio:6.2f} {bar if bar else '-':>5}  {' '.join(f'{r:.2f}' for r in ratios)}; "
              f"load {min(loads):.1f}-{max(loads):.1f}", flush=True)
    return results


def threads_beside_a_neighbour(quick, have_torch):
    """The small training step with 1 and 2 BLAS threads, alone and beside a busy process."""
    print("\ngpt-small-train, 1 or 2 threads, alone and beside a CPU-bound neighbour (a Python busy loop)")
    print(f"{'neighbour':<10} {'threads':>7} {'ours ms':>9} {'torch ms':>9}  load")
    sides = ("ours", "torch") if have_torch else ("ours",)
    for neighbour in (False, True):
        for threads in (1, 2):
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
            try:
                load = os.getloadavg()[0]
                ms = {s: timed_process(s, "gpt-small-train", quick, threads, timeout=300) for s in sides}
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            cells = [f"{1e3 * ms[s]['median_s']:9.1f}" if ms.get(s) else ("  stopped" if s in ms else "        -")
                     for s in ("ours", "torch")]
            print(f"{'busy' if neighbour else 'none':<10} {threads:>7} {cells[0]} {cells[1]}  {load:.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer pairs (2) and fewer timed repetitions")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="these workloads only")
    parser.add_argument("--pairs", type=int, help="A B pairs per workload (default 5, 2 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / OpenMP threads per process (default 1)")
    parser.add_argument("--no-neighbour", action="store_true", help="skip the 1-or-2-threads section")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.quick, args.threads)
    os.environ.update({v: str(args.threads) for v in THREAD_VARIABLES})  # before NumPy is imported
    have_torch = header(args.threads, args.quick)
    pairs = args.pairs or (2 if args.quick else 5)
    compare(args.only or list(WORKLOADS), pairs, args.quick, args.threads, have_torch)
    if not args.no_neighbour:
        threads_beside_a_neighbour(args.quick, have_torch)


if __name__ == "__main__":
    main()
