"""16-bit forward and backward passes of a float32 model, with float32 master weights.
Notes: notes/precision.md, "The mixed-precision mode".

    with autocast(model, "float16"):        weights rounded to float16; every layer rounds
        logits = model.forward(idx)         its floating inputs and outputs, and in backward
        loss = loss_fn.forward(logits, y)   the gradients it returns; Softmax and LayerNorm
        model.backward(loss_fn.backward())  compute and return float32
    # on leaving: the float32 master weights are back, each p.grad holds a 16-bit gradient

The arrays stay float32 (``round_to``), so the products still run in float32 BLAS and
accumulate in float32, as 16-bit matrix units do; the values are exactly those of 16-bit
storage at every place listed above.
"""

from contextlib import contextmanager

import numpy as np

from ..backend import get_array_module
from ..layers.activation import Softmax
from ..layers.norm import LayerNorm
from ..module import Parameter
from .formats import get_format, round_to

FLOAT32_LAYERS = (Softmax, LayerNorm)  # computed in float32 in mixed precision, as in PyTorch's autocast


def _rounded(value, name):
    """``value`` rounded to format ``name`` when it is a float32 array (tuples element-wise); else as is."""
    if isinstance(value, tuple):
        return tuple(_rounded(v, name) for v in value)
    if hasattr(value, "dtype") and value.dtype == get_array_module(value).float32:
        return round_to(value, name)
    return value


def _rounding(method, name, inputs):
    """``method`` with its result rounded to format ``name``, and (``inputs``) its positional
    floating inputs too."""

    def rounded_method(*args, **kwargs):
        return _rounded(method(*(_rounded(args, name) if inputs else args), **kwargs), name)

    return rounded_method


@contextmanager
def autocast(model, name, float32_layers=FLOAT32_LAYERS):
    """Inside the block, ``model``'s forward and backward compute in format ``name``.

    On entry every parameter's ``data`` is replaced by a rounded copy (except the parameters of
    ``float32_layers``, LayerNorm's gain and shift, which stay float32), and every module that is
    not one of ``float32_layers`` gets (instance-level) forward and backward that round their
    results (activations, and the gradients backward returns) and, in a module holding
    parameters of its own (a Linear, an Embedding), their floating inputs too: a matrix product
    reads 16-bit operands even after a LayerNorm, whose output is float32. (Rounding every
    input of every module would give the same numbers, with more passes.) On exit the float32
    master arrays are back (the optimiser updates them), the instance methods are removed, and
    every rounded parameter's ``grad`` is rounded to the format: the 16-bit gradient a 16-bit
    backward would have produced. float32 changes nothing.
    Inside the block NumPy's overflow and invalid-value warnings are off (``numpy.errstate``,
    restored on exit): an inf from float16's range is expected, and the loss scaler handles it.
    """
    fmt = get_format(name)
    if fmt.name == "float32":  # nothing to do, whatever the model's dtype (float64 for gradient checks)
        yield model
        return
    params = model.parameters()
    for p in params:
        if p.data.dtype != get_array_module(p.data).float32:
            raise TypeError(f"autocast: expected a float32 model (the master weights), received {p.dtype} parameters")
    kept = [m for m in model.modules() if isinstance(m, tuple(float32_layers))]
    kept_params = {id(child) for m in kept for _, child in m._children() if isinstance(child, Parameter)}
    params = [p for p in params if id(p) not in kept_params]  # the parameters computed with in 16 bits
    masters = [p.data for p in params]
    wrapped = [m for m in model.modules() if not isinstance(m, tuple(float32_layers))]
    for p in params:
        p.data = round_to(p.data, fmt.name)
    for m in wrapped:
        owns_parameters = any(isinstance(child, Parameter) for _, child in m._children())
        m.forward = _rounding(type(m).forward.__get__(m), fmt.name, owns_parameters)
        m.backward = _rounding(type(m).backward.__get__(m), fmt.name, owns_parameters)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            yield model
    finally:
        for m in wrapped:
            del m.forward, m.backward
        for p, master in zip(params, masters):
            p.data = master
            p.grad[...] = round_to(p.grad, fmt.name)
