"""The building blocks of the Transformer, one concept per file, each with forward and backward."""

from .linear import Linear

__all__ = ["Linear"]
