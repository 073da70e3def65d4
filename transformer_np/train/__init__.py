"""Training: the loop (Trainer), its progress bar, and what it records and saves.

    trainer = Trainer(model, optimizer, loss_fn, get_batch, rng=rng, schedule=schedule, clip=1.0)
    history = trainer.fit(num_steps)

Named, ready-made runs (model, optimizer, schedule, data, evaluation) are in
transformer_np/recipes.
"""

from .progress import ProgressBar
from .trainer import HISTORY_KEYS, Trainer

__all__ = ["HISTORY_KEYS", "ProgressBar", "Trainer"]
