"""Gradient cases for the Linear layer (notes/linear.md)."""

from ..layers import Linear
from . import B, D, T, GradCase


def _linear(bias):
    def build(rng, dtype):
        layer = Linear(D, 4, bias=bias, rng=rng, dtype=dtype)
        return layer, (rng.standard_normal((B, T, D)).astype(dtype),), {}

    return build


CASES = [
    GradCase(
        "Linear",
        _linear(bias=True),
        {"x": ("lin.2",), "weight": ("lin.3",), "bias": ("lin.4",)},
        names=("x",),
    ),
    GradCase("Linear (no bias)", _linear(bias=False), {"x": ("lin.2",), "weight": ("lin.3",)}, names=("x",)),
]
