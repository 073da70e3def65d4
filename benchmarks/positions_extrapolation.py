"""Extrapolation of each position scheme: the character GPT trained on one context length, evaluated on longer ones.

The longer version of section 5 of notebooks/12_positions.ipynb. For each ``positions`` scheme
(learned, sinusoidal, rope, alibi, t5, none), train the GPT of nanoGPT's CPU recipe (4 layers,
4 heads, d_model 128, no linear biases; recipes/gpt.py "shakespeare") on windows of
``--train-len`` characters, with the recipe's AdamW and warmup-then-cosine schedule, the same
batches for every scheme; then measure the validation loss on the same held-out windows of
each ``--eval-lens`` length (the learned table refuses past its rows: "refused").

Prints a Markdown table for benchmarks/RESULTS.md. About 4 minutes a scheme at the defaults on
the project's shared 2-core machine; OPENBLAS_NUM_THREADS=1 is set here (the machine is shared).

    python benchmarks/positions_extrapolation.py [--steps 1000] [--train-len 64] [--eval-lens 64,128,256,512]
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

from transformer_np.data import CharTokenizer, get_batch, load_shakespeare, train_val_split  # noqa: E402
from transformer_np.loss import CrossEntropyLoss  # noqa: E402
from transformer_np.models import GPT  # noqa: E402
from transformer_np.optim import AdamW  # noqa: E402
from transformer_np.optim.schedules import make_schedule  # noqa: E402

SCHEMES = ("learned", "sinusoidal", "rope", "alibi", "t5", "none")
MODEL = {"n_layers": 4, "n_heads": 4, "d_model": 128, "bias": False}  # the recipe's


def train(positions, train_ids, vocab, args):
    model = GPT(vocab_size=vocab, block_size=args.train_len, positions=positions, rng=np.random.default_rng(args.seed),
                **MODEL)
    optimizer = AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    schedule = make_schedule("warmup_cosine", max_lr=args.lr, warmup=min(args.warmup, args.steps) + 1, total=args.steps + 1,
                             min_lr=args.lr / 10)
    loss_fn, batches = CrossEntropyLoss(), np.random.default_rng(args.seed + 1)
    for step in range(args.steps):
        optimizer.lr = schedule(step + 1)
        x, y = get_batch(train_ids, args.batch_size, args.train_len, batches)
        optimizer.zero_grad()
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        optimizer.step()
    return model.eval()


def evaluate(model, val_ids, length, args):
    loss_fn, held_out = CrossEntropyLoss(), np.random.default_rng(args.seed + 2)
    try:
        return float(np.mean([loss_fn.forward(model.forward(x), y) for x, y in
                              (get_batch(val_ids, 8, length, held_out) for _ in range(args.eval_batches))]))
    except ValueError:  # the learned table past its rows
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--train-len", type=int, default=64)
    parser.add_argument("--eval-lens", default="64,128,256,512")
    parser.add_argument("--eval-batches", type=int, default=25)
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.eval_lens.split(",")]
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    train_ids, val_ids = train_val_split(tokenizer.encode(text), 0.9)
    print(f"GPT {MODEL}, trained on {args.train_len} characters: {args.steps} steps of batch {args.batch_size}, "
          f"AdamW lr {args.lr} warmup {args.warmup} then cosine to lr/10, seed {args.seed}; validation loss "
          f"(nats per character) on {args.eval_batches} x 8 windows of each length\n")
    print("| positions | " + " | ".join(f"T = {T}" for T in lengths) + " | train s |")
    print("|---|" + "---:|" * (len(lengths) + 1))
    for positions in args.schemes.split(","):
        start = time.perf_counter()
        model = train(positions, train_ids, tokenizer.vocab_size, args)
        seconds = time.perf_counter() - start
        losses = [evaluate(model, val_ids, T, args) for T in lengths]
        cells = " | ".join("refused" if v is None else f"{v:.3f}" for v in losses)
        print(f"| {positions} | {cells} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
