"""Optimisers, gradient clipping and learning-rate schedules. Derivation: notes/optim.md.

optimizers.py   SGD (momentum), Adam, AdamW (decoupled weight decay), parameter groups,
                global-norm gradient clipping
schedules.py    constant, Noam (inverse square root with warmup), warmup + cosine decay
"""

from .optimizers import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    clip_grad_norm,
    is_vector,
    param_groups,
)
from .schedules import SCHEDULES, constant_lr, make_schedule, noam_lr, warmup_cosine_lr

__all__ = [
    "SCHEDULES",
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "clip_grad_norm",
    "constant_lr",
    "is_vector",
    "make_schedule",
    "noam_lr",
    "param_groups",
    "warmup_cosine_lr",
]
