"""A recurrent encoder-decoder against the Transformer on copy and reverse as the length grows.

The longer version of notebooks/01_why_attention.ipynb. For each task and each source length L
(every source exactly L symbols out of 10), train the GRU encoder-decoder (recipes gru-copy,
gru-reverse) and the Transformer (recipes copy, reverse) for the same number of steps on the
same batches, then measure on the tasks' 500 distinct held-out sources (never trained on):

  exact match, token accuracy       greedy decoding, as the recipes score
  grad first/last, init / trained   mean ||dL/dx_t|| at source position 0 over that at the last
                                    position (transformer_np/probes.py), before and after
                                    training: how much gradient reaches the earliest token
  seconds                           training time, one process, on this machine's CPU

Prints a Markdown table for benchmarks/RESULTS.md. About 35 minutes on the project's shared
2-core machine with the defaults (the Transformer at L = 40 takes 5 of them);
OPENBLAS_NUM_THREADS=1 is set here (the products are small and the machine shared).

    python benchmarks/why_attention.py [--steps 2000] [--lengths 5,10,20,40] [--seed 0]
"""

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

from transformer_np.recipes.rnn import measure  # noqa: E402

GRU = {"d_embed": 32, "hidden_size": 144}  # about as many parameters as the Transformer
TRANSFORMER = {"d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 128}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lengths", default="5,10,20,40")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    print(f"steps {args.steps}, batch 64, 500 held-out sources, seed {args.seed}; "
          f"GRU {GRU}; Transformer {TRANSFORMER}\n")
    print("| task | L | model | params | exact match | token accuracy | grad first/last, init | "
          "grad first/last, trained | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task in ("copy", "reverse"):
        for length in lengths:
            for recipe, settings in ((f"gru-{task}", GRU), (task, TRANSFORMER)):
                r = measure(recipe, length, args.steps, seed=args.seed, batch_size=64, eval_size=500, **settings)
                ratio = lambda g: g[0] / g[-1]  # noqa: E731
                name = "GRU" if recipe.startswith("gru") else "Transformer"
                print(f"| {task} | {length} | {name} | {r['params']:,} | {r['exact_match']:.1%} | "
                      f"{r['token_accuracy']:.1%} | {ratio(r['grad_init']):.2g} | {ratio(r['grad_trained']):.2g} | "
                      f"{r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
