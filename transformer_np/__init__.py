"""transformer_np: the Transformer family in NumPy, every backward pass written out and checked.

Start with ``transformer_np.layers`` (the building blocks), ``notes/`` (their derivations) and
``transformer_np.gradcheck`` (the proof that the two agree).
"""

from .backend import get_array_module, get_backend, get_default_dtype, set_default_dtype
from .module import Module, Parameter

__version__ = "0.1.0"

__all__ = ["Module", "Parameter", "get_array_module", "get_backend", "get_default_dtype", "set_default_dtype"]
