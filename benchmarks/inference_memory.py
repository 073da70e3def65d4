"""What a forward of the pretrained encoder keeps for a backward, and what inference mode saves.

    python benchmarks/inference_memory.py

all-MiniLM-L6-v2 (transformer_np.pretrained, the `pretrained` extra), float32, a batch of 9
sentences of 256 tokens. Memory is NumPy's, traced with tracemalloc (NumPy reports its array
allocations to it): "kept" is what is still allocated after the forward (the activations
cached for backward), "peak" the most allocated during it; the weights are loaded before the
trace starts. Results: benchmarks/RESULTS.md, "Inference mode".
"""

import tracemalloc

import numpy as np

from transformer_np.pretrained import load_minilm


def measure(minilm, ids, mask, inference):
    minilm.bert.inference_mode(inference)
    tracemalloc.start()
    h = minilm.bert.forward(ids, None, mask)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del h
    minilm.bert.inference_mode(False)
    return kept / 2**20, peak / 2**20


def main():
    minilm = load_minilm()
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(9, 256))
    ids[:, 0], ids[:, -1] = minilm.tokenizer.cls_id, minilm.tokenizer.sep_id
    mask = np.ones_like(ids, dtype=bool)
    print("all-MiniLM-L6-v2, float32, batch 9 x 256 tokens")
    print(f"{'mode':<16}{'kept MiB':>10}{'peak MiB':>10}")
    for name, inference in (("training-ready", False), ("inference_mode", True)):
        kept, peak = measure(minilm, ids, mask, inference)
        print(f"{name:<16}{kept:10.1f}{peak:10.1f}")


if __name__ == "__main__":
    main()
