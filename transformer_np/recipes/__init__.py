"""Named training recipes: a model, an optimizer and schedule, data and an evaluation, ready to train.

    run = build_run("copy", steps=300)
    run.trainer().fit(run.steps)

Encoder-decoder (recipes/seq2seq.py): copy, reverse, sort, add, annotated-copy.
Recurrent baselines (recipes/rnn.py): gru-copy, gru-reverse.
Decoder-only (recipes/gpt.py): sort-gpt (minGPT's gpt-nano demo), shakespeare (nanoGPT's
character-level CPU recipe).
Encoder-only (recipes/mlm.py): mlm-shakespeare (BERT's masked-language-model objective).
"""

from . import gpt, mlm, rnn, seq2seq  # noqa: F401  (importing them registers their recipes)
from .base import EVAL_SEED, RECIPES, Recipe, Run, build_run, check_settings, load_run_config, seeded
from .gpt import evaluate_lm, evaluate_sort_gpt
from .seq2seq import evaluate_seq2seq, seq2seq_inputs

__all__ = [
    "EVAL_SEED", "RECIPES", "Recipe", "Run", "build_run", "check_settings", "evaluate_lm", "evaluate_seq2seq",
    "evaluate_sort_gpt", "load_run_config", "seeded", "seq2seq_inputs",
]
