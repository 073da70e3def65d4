"""Post-training quantisation of a whole trained model. Notes: notes/quantization.md.

    model.eval()
    quantize(model, activations=False, kv_cache=False)   in place; returns the model

Every ``Linear`` below the model becomes a ``QuantLinear`` (int8 weights, a float32 scale per
output channel; the biases stay float32). Embedding tables, the tied output layer and the
LayerNorms stay float32 (in the small models of this course they are a few percent of the
weights: ``weight_bytes`` counts everything). ``activations=True`` also quantises each Linear's
input per token at run time; ``kv_cache=True`` makes ``model.new_cache`` return int8 caches.
The choice is recorded in ``model.quantization`` and in checkpoints, and a checkpoint is
loaded only into a model quantised the same way (checkpoint.py).
"""

from ..layers.linear import Linear
from ..module import Module
from .kv_cache import int8_cache
from .linear import QuantLinear


def quantize(model, activations=False, kv_cache=False):
    """Replace every Linear of the trained ``model`` (in eval mode) by its QuantLinear, in place.

    Raises RuntimeError for a model in training mode (quantisation comes after training, and a
    quantised model has no backward) and ValueError for a model quantised already.
    """
    if model.training:
        raise RuntimeError("quantize: expected a trained model in eval mode (call model.eval() first), "
                           "received a model in training mode: a quantised model cannot be trained")
    if getattr(model, "quantization", None) is not None:
        raise ValueError(f"quantize: expected a float model, received one quantised already ({model.quantization})")
    mode = "weights+activations" if activations else "weights"
    for _, parent in list(model.named_modules()):
        for name, value in list(vars(parent).items()):
            if isinstance(value, Linear):
                setattr(parent, name, QuantLinear.from_linear(value, mode))
            elif isinstance(value, list) and any(isinstance(v, Linear) for v in value):
                setattr(parent, name, [QuantLinear.from_linear(v, mode) if isinstance(v, Linear) else v for v in value])
    model.quantization = {"weights": "int8 per output channel",
                          "activations": "int8 per token" if activations else "float",
                          "kv_cache": "int8 per head and position" if kv_cache else "float"}
    if kv_cache:
        float_cache = model.new_cache  # the model class's own method, bound to this model
        model.new_cache = lambda *args, **kwargs: int8_cache(float_cache(*args, **kwargs))
    return model


def weight_bytes(model):
    """Bytes of every parameter of ``model`` (int8 weights, their scales, float tables), each once."""
    return sum(p.data.nbytes for p in model.parameters())


def is_quantized(model):
    return isinstance(model, Module) and getattr(model, "quantization", None) is not None
