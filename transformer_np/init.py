"""Weight initialisers. Each takes an explicit ``numpy.random.Generator`` so runs repeat exactly.

Parameters are created on the CPU with NumPy; ``module.to("cupy")`` moves them afterwards.
"""

import numpy as np

from .backend import resolve_dtype
from .validate import check_generator


def make_rng(rng=None):
    """``rng`` itself, or a generator seeded with 0 when it is None (repeatable by default).

    A layer that builds several sub-layers passes its one generator to all of them, so that
    they draw different weights.
    """
    if rng is None:
        return np.random.default_rng(0)
    return check_generator(rng)


def xavier_uniform(fan_in, fan_out, rng, dtype=None):
    """(fan_in, fan_out) array from U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(resolve_dtype(dtype))


def normal(shape, std, rng, dtype=None):
    """Array of ``shape`` from N(0, std^2)."""
    return (std * rng.standard_normal(shape)).astype(resolve_dtype(dtype))


def zeros(shape, dtype=None):
    return np.zeros(shape, dtype=resolve_dtype(dtype))


def ones(shape, dtype=None):
    return np.ones(shape, dtype=resolve_dtype(dtype))
