"""Reference answer to the exercise of notebooks/06_embeddings_output_loss.ipynb: the
cross-entropy backward pass with label smoothing and ignored positions.

Same names as the notebook's exercise cell; tests/test_exercises.py runs it in place of that cell,
then the notebook's check cell.
"""

import numpy as np

from transformer_np.loss import CrossEntropyLoss


class MyCrossEntropyLoss(CrossEntropyLoss):
    # The library's forward (it caches p, targets, keep, count); the backward is yours.

    def backward(self, dout=1.0):
        # dout: the upstream gradient dL (a number) -> dlogits (B, T, V), by (ce.2), (ce.5), (ce.6).
        p, targets, keep, count = self.saved()
        eps, V = self.label_smoothing, p.shape[-1]
        q = np.full_like(p, eps / V)  # (ce.2): eps / V everywhere ...
        np.put_along_axis(q, targets[..., None], 1.0 - eps + eps / V, axis=-1)  # ... plus 1 - eps at the target
        scale = dout / max(count, 1)  # count = 0: every row is ignored, and keep makes them 0
        return scale * keep[..., None] * (p - q)  # (ce.5); ignored rows are 0 (ce.6)
