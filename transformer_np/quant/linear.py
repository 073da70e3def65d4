"""QuantLinear: a trained Linear with int8 weights, and optionally int8 activations.
Notes: notes/quantization.md."""

from ..module import Module, Parameter
from ..validate import check_float, check_last_dim
from .int8 import dequantize, int8_matmul, quantize_per_channel, quantize_per_token

MODES = ("weights", "weights+activations")


class DequantizedWeight:
    """What a QuantLinear offers where other layers read ``linear.weight``: ``data`` is the float
    weight W_hat = q * s (quant.4), computed when read (it is not stored), with its dtype and shape."""

    def __init__(self, layer):
        self._layer = layer

    @property
    def data(self):
        return dequantize(self._layer.weight_q.data, self._layer.weight_scale.data, self._layer.weight_scale.dtype)

    @property
    def dtype(self):
        return self._layer.weight_scale.dtype

    @property
    def shape(self):
        return self._layer.weight_q.shape


class QuantLinear(Module):
    """y = x W_hat + b with W_hat = q_W s_W, int8 q_W (D_in, D_out) and one float32 scale per
    output channel (quant.2); the bias stays float32. Inference only: no backward.

    mode "weights": the input stays float, y = x (q_W s_W) + b (quant.4).
    mode "weights+activations": each row (token) of x is quantised at run time (quant.3), the
    product runs on int8 and accumulates in int32, then is rescaled:
    y = (q_x q_W) s_x s_W + b (quant.6), (quant.7).
    """

    def __init__(self, weight_q, weight_scale, bias=None, mode="weights"):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(map(repr, MODES))}, received {mode!r}")
        self.d_in, self.d_out = weight_q.shape
        self.weight_q = Parameter(weight_q)
        self.weight_scale = Parameter(weight_scale)
        self.bias = None if bias is None else Parameter(bias)
        self.mode = mode
        self.training = False

    @classmethod
    def from_linear(cls, linear, mode="weights"):
        """The quantised copy of a trained ``Linear`` (its weights quantised per output channel)."""
        q, s = quantize_per_channel(linear.weight.data)
        bias = None if linear.bias is None else linear.bias.data.copy()
        return cls(q, s, bias, mode)

    @property
    def weight(self):
        return DequantizedWeight(self)

    def forward(self, x):
        """x: (..., D_in) float -> y: (..., D_out) in x's dtype. Keeps nothing (no backward)."""
        if self.training:
            raise RuntimeError("QuantLinear.forward: expected eval mode (a quantised model is for inference, "
                               "call model.eval()), received training mode")
        check_float(x)
        check_last_dim(x, self.d_in)
        if self.mode == "weights":
            y = x @ self.weight.data  # (..., D_out)  (quant.4)
        else:
            q_x, s_x = quantize_per_token(x)  # (..., D_in) int8, (..., 1)  (quant.3)
            acc = int8_matmul(q_x, self.weight_q.data)  # (..., D_out) int32  (quant.6)
            y = acc.astype(x.dtype) * (s_x * self.weight_scale.data)  # (..., D_out)  (quant.7)
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, dy):
        raise RuntimeError("QuantLinear.backward: expected no backward (post-training quantisation is for "
                           "inference), received a call: train the float model, then quantise it")
