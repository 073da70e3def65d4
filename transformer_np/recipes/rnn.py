"""Recurrent baselines: the GRU encoder-decoder (models/rnn_seq2seq.py) on the copy and reverse tasks.

gru-copy, gru-reverse   the toy tasks and held-out evaluation of the Transformer's copy and
                        reverse recipes (recipes/seq2seq.py: the same data, the same 1000
                        distinct held-out sources, greedy decoding), a GRUSeq2Seq instead of the
                        Transformer, Adam with warmup and cosine decay, gradients clipped at 1.
                        notebooks/01_why_attention.ipynb and benchmarks/why_attention.py compare
                        the two families as the sequence length grows, with ``measure``.
"""

import time
from functools import partial

from ..data import PAD, TASKS, make_seq2seq_batch, vocab_size
from ..decode import greedy_decode
from ..loss import CrossEntropyLoss
from ..models.rnn_seq2seq import GRUSeq2Seq
from ..optim import Adam, make_schedule
from ..probes import accuracy_by_position, mean_by_position, source_gradient_norms
from .base import Run, build_run, register, seeded
from .seq2seq import SEQUENCES, distinct_pairs, evaluate_seq2seq, seq2seq_inputs

GRU_MODEL = {"d_embed": 32, "hidden_size": 128}
GRU_TRAINING = {"batch_size": 64, "lr": 3e-3, "warmup": 50, "clip": 1.0, "eval_size": 1000, "eval_every": 250}


def _gru_recipe(task_name, steps):
    @register(f"gru-{task_name}", f"{task_name} 1-10 symbols out of 10 with a GRU encoder-decoder (no attention)",
              {"steps": steps, **GRU_MODEL, **GRU_TRAINING, **SEQUENCES})
    def build(config):
        c = config
        task = TASKS[task_name]
        lengths = {k: c[k] for k in SEQUENCES}
        draw = lambda rng, n, split, exclude=None: task(rng, n, split=split, exclude=exclude, **lengths)  # noqa: E731
        vocab = vocab_size(c["num_symbols"])
        model = GRUSeq2Seq(src_vocab=vocab, tgt_vocab=vocab, d_embed=c["d_embed"], hidden_size=c["hidden_size"],
                           rng=seeded(c["seed"], 0))
        optimizer = Adam(model.parameters(), lr=c["lr"])
        schedule = make_schedule("warmup_cosine", max_lr=c["lr"], warmup=min(c["warmup"], c["steps"]),
                                 total=c["steps"], min_lr=c["lr"] / 10)

        def get_batch(rng):
            batch = make_seq2seq_batch(*draw(rng, c["batch_size"], "train"))
            return seq2seq_inputs(batch), batch.tgt_out

        held_out = make_seq2seq_batch(*distinct_pairs(draw, c["eval_size"]))
        eval_fn = partial(evaluate_seq2seq, batch=held_out, loss_fn=CrossEntropyLoss(ignore_index=PAD))
        return Run(c, model, optimizer, CrossEntropyLoss(ignore_index=PAD), get_batch, schedule, c["clip"], eval_fn,
                   c["eval_every"], metric="exact_match", held_out=held_out)

    return build


_gru_recipe("copy", 1500)
_gru_recipe("reverse", 1500)


def measure(recipe, length, steps, seed=0, **settings):
    """Train ``recipe`` ("copy", "gru-reverse", ...) on sources of exactly ``length`` symbols and
    measure it on its held-out sources: what the notebook and the benchmark tabulate.

    ``settings`` override the recipe's (model sizes, batch_size, eval_size, ...). Returns a dict:
    recipe, length, steps, params, seconds (training only), exact_match, token_accuracy,
    grad_init and grad_trained ((length,) mean ||dL/dx_t|| per source position, probes.py),
    accuracy_by_position ((length + 1,) including the EOS position) and the Trainer's history.
    """
    run = build_run(recipe, steps=steps, min_len=length, max_len=length, seed=seed, eval_every=steps, **settings)
    held_out = run.held_out
    grad_init = mean_by_position(source_gradient_norms(run.model, held_out))
    start = time.perf_counter()
    history = run.trainer(quiet=True).fit(steps)
    seconds = time.perf_counter() - start
    pred = greedy_decode(run.model, held_out.src, held_out.src_mask, held_out.tgt_out.shape[1], 1, 2)
    return {"recipe": recipe, "length": length, "steps": steps, "params": run.model.num_parameters(),
            "seconds": seconds, "exact_match": history["val_exact_match"][-1],
            "token_accuracy": history["val_token_accuracy"][-1], "grad_init": grad_init,
            "grad_trained": mean_by_position(source_gradient_norms(run.model, held_out)),
            "accuracy_by_position": accuracy_by_position(pred, held_out.tgt_out), "history": history}
