"""BERT's masked-language-model objective on Shakespeare: the recipe mlm-shakespeare with its
own settings (transformer_np/recipes/mlm.py), its held-out curve and the frequency baseline.

    python benchmarks/mlm_shakespeare.py [--steps N]

Prints one row per evaluation: step, held-out masked-token loss and accuracy, the baseline
accuracy (always the most frequent character), and the wall time so far. Results:
benchmarks/RESULTS.md, "Masked language model".
"""

import argparse
import platform
import time

import numpy as np

from transformer_np.recipes import build_run


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    run = build_run("mlm-shakespeare", steps=args.steps)
    print(f"mlm-shakespeare: {run.config}")
    print(f"{platform.machine()}, {platform.python_version()}, NumPy {np.__version__}; "
          f"{run.model.num_parameters():,} parameters")
    start = time.perf_counter()
    history = run.trainer(quiet=True).fit(run.steps)
    seconds = time.perf_counter() - start
    print(f"{'step':>6}  {'val loss':>8}  {'masked acc':>10}  {'baseline':>8}")
    for i, step in enumerate(history["val_step"]):
        print(f"{step:>6}  {history['val_loss'][i]:8.3f}  {history['val_masked_accuracy'][i]:10.3f}  "
              f"{history['val_baseline_accuracy'][i]:8.3f}")
    print(f"{run.steps} steps in {seconds:.0f} s")


if __name__ == "__main__":
    main()
