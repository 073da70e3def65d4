"""The encoder-only recipe: BERT's masked-language-model objective on the Shakespeare text.

mlm-shakespeare   a small character-level BERT (2 layers, 4 heads, d_model 64, d_ff 256, 32
                  positions, no dropout) reads windows of 32 characters; 15% of the positions
                  are chosen and corrupted 80/10/10 (data/mlm.py), the loss is the cross-entropy
                  at the chosen positions only (ignore_index). AdamW(0.9, 0.99), lr 3e-3 with 50
                  warmup steps then cosine decay to 3e-4, weight decay 0.01, clip 1.0, batches
                  of 32, float32. The vocabulary is the corpus's characters plus [MASK].
                  Scored on the last 10% of the corpus: the masked-token accuracy over 50 fixed
                  batches, against the frequency baseline (always the training text's most
                  frequent character, a space); benchmarks/RESULTS.md has the measured curve.
"""

from functools import partial

import numpy as np

from ..data import IGNORE_INDEX, CharTokenizer, get_batch, load_shakespeare, train_val_split
from ..data.mlm import mask_tokens
from ..loss import CrossEntropyLoss
from ..models.bert import Bert, MaskedLanguageModel
from ..optim import AdamW, make_schedule, param_groups
from .base import Run, held_out_rng, register, seeded


def evaluate_mlm(model, val, batch_size, block_size, iters, mask_id, vocab_size, baseline_id, loss_fn):
    """Loss and accuracy at the masked positions of ``iters`` fixed held-out batches, and the
    accuracy of always predicting ``baseline_id`` at the same positions."""
    rng = held_out_rng()
    losses, right, baseline, total = [], 0, 0, 0
    for _ in range(iters):
        x, _ = get_batch(val, batch_size, block_size, rng)
        inputs, targets = mask_tokens(x, rng, mask_id, vocab_size)
        logits = model.forward(inputs)
        losses.append(float(loss_fn.forward(logits, targets)))
        chosen = targets != IGNORE_INDEX
        right += int((logits.argmax(-1)[chosen] == targets[chosen]).sum())
        baseline += int((targets[chosen] == baseline_id).sum())
        total += int(chosen.sum())
    return {"loss": float(np.mean(losses)), "masked_accuracy": right / total, "baseline_accuracy": baseline / total}


def mlm_model(vocab_size, c):
    bert = Bert(vocab_size=vocab_size, max_len=c["block_size"], n_layers=c["n_layers"], n_heads=c["n_heads"],
                d_model=c["d_model"], d_ff=4 * c["d_model"], dropout=c["dropout"], pooler=False, type_vocab_size=1,
                rng=seeded(c["seed"], 0))
    return MaskedLanguageModel(bert)


@register("mlm-shakespeare", "BERT's masked-language-model objective, character level, on Shakespeare (encoder-only)",
          {"steps": 1500, "batch_size": 32, "block_size": 32, "n_layers": 2, "n_heads": 4, "d_model": 64,
           "dropout": 0.0, "lr": 3e-3, "min_lr": 3e-4, "warmup": 50, "weight_decay": 0.01, "clip": 1.0,
           "eval_every": 250, "eval_iters": 50})
def _build_mlm(config):
    c = config
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    train, val = train_val_split(tokenizer.encode(text), 0.9)
    mask_id = tokenizer.vocab_size  # one id more than the characters: [MASK]
    vocab_size = mask_id + 1
    model = mlm_model(vocab_size, c)
    optimizer = AdamW(param_groups(model.named_parameters(), c["weight_decay"]), lr=c["lr"], betas=(0.9, 0.99))
    schedule = make_schedule("warmup_cosine", max_lr=c["lr"], warmup=min(c["warmup"], c["steps"]) + 1,
                             total=c["steps"] + 1, min_lr=c["min_lr"])
    loss_fn = CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def draw_batch(rng):
        x, _ = get_batch(train, c["batch_size"], c["block_size"], rng)
        inputs, targets = mask_tokens(x, rng, mask_id, vocab_size)
        return (inputs,), targets

    baseline_id = int(np.bincount(train, minlength=vocab_size).argmax())
    eval_fn = partial(evaluate_mlm, val=val, batch_size=c["batch_size"], block_size=c["block_size"],
                      iters=c["eval_iters"], mask_id=mask_id, vocab_size=vocab_size, baseline_id=baseline_id,
                      loss_fn=CrossEntropyLoss(ignore_index=IGNORE_INDEX))
    return Run(c, model, optimizer, loss_fn, draw_batch, schedule, c["clip"], eval_fn, c["eval_every"],
               metric="masked_accuracy", extras={"tokenizer": tokenizer})
