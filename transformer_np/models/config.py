"""Model configurations, and the one place where a configuration becomes layers.

Each model family has one frozen dataclass (``GPTConfig`` in gpt.py, ``TransformerConfig`` in
transformer.py) that states every field once, with its default and its meaning; both extend
``BlockConfig``, the fields a block reads, so a field added there reaches both families:

    config = GPTConfig(vocab_size=65, block_size=64, n_layers=4, n_heads=4, d_model=128)
    model = GPT(config)                       # GPT(vocab_size=65, ...) builds the same config
    variant = dataclasses.replace(config, dropout=0.1)
    config.to_dict(), GPTConfig.from_dict(d)  # JSON-able: checkpoints store it

The model and its blocks receive the configuration object itself and read the fields they
need; the builders below turn it into the layers every block is made of. A new variant (a
kind of attention, a position scheme) is one field here and one argument of its layer.
Counts and memory formulas read the same object (models/counting.py).
"""

import dataclasses
import functools
import math
import numbers

from ..layers.alibi import ALiBi
from ..layers.feedforward import ACTIVATIONS, PositionwiseFeedForward
from ..layers.linear_attention import LinearAttention, PerformerAttention
from ..layers.multihead import MultiHeadAttention
from ..layers.norm import LayerNorm
from ..layers.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from ..layers.residual import NORM_POSITIONS, Residual
from ..layers.t5_bias import T5RelativeBias
from ..layers.tiled_attention import TiledAttention
from ..layers.window_attention import SlidingWindowAttention

# How the heads attend (notes/flash.md, notes/window.md, notes/linear_attention.md).
ATTENTION_KINDS = ("standard", "tiled", "window", "linear", "performer")

# The position schemes (notes/positional.md, notes/rope.md, notes/score_bias.md): added to the
# embeddings (learned, sinusoidal), rotating Q and K (rope), a bias on the scores (alibi, t5), none.
POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "t5", "none")
ADDED_POSITIONS = ("learned", "sinusoidal")  # the absolute ones: a table added to the input
ROPE_STYLE = "halves"  # GPT-NeoX / LLaMA's pairs (rope.4); "pairs" is the same model permuted (rope.5)


def model_config(cls):
    """Class decorator: ``cls`` becomes a frozen, keyword-only dataclass whose constructor names
    the expected fields when it receives an unknown or misses a required one, and runs
    ``cls.validate`` (which checks the values and may resolve defaults)."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    generated = cls.__init__
    names = [f.name for f in dataclasses.fields(cls)]
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]

    @functools.wraps(generated)
    def __init__(self, **fields):
        unknown = sorted(set(fields) - set(names))
        missing = [n for n in required if n not in fields]
        if unknown or missing:
            raise TypeError(
                f"{cls.__name__}: expected fields among {names} (required: {required}), received "
                + (f"unknown fields {unknown}" if unknown else "") + (" and " if unknown and missing else "")
                + (f"no value for {missing}" if missing else "")
            )
        generated(self, **fields)
        self.validate()

    cls.__init__ = __init__
    return cls


class ModelConfig:
    """What every configuration shares: validation, dict round trip, the head width."""

    def validate(self):
        """Check the fields; a subclass extends this with its own checks (super() first)."""

    @classmethod
    def field_names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self):
        """{field: value}, JSON-able."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields):
        """The configuration with these fields (missing ones take their defaults)."""
        return cls(**dict(fields))


@model_config
class BlockConfig(ModelConfig):
    """What one Transformer block is made of: the fields every family's blocks read.

    d_model      width of the block's input and output (the residual stream)
    n_heads      attention heads, d_model / n_heads features each
    n_kv_heads   key/value heads, shared by groups of query heads (None: n_heads; 1: multi-query;
                 a divisor of n_heads: grouped-query attention, notes/gqa.md)
    d_ff         the feed-forward width (None: 4 d_model)
    dropout      on the attention weights, the FFN's hidden units and each sub-layer's output
    activation   "relu" (the paper), "gelu" (exact) or "gelu_tanh" (GPT-2's approximation)
    norm         "post" (the paper: LayerNorm after each residual sum) or "pre" (GPT-2)
    bias         biases of the linear layers (the LayerNorms keep theirs)
    positions    where position information enters: "learned" or "sinusoidal" (a table added to
                 the embeddings), "rope" (queries and keys rotated in every self-attention),
                 "alibi" or "t5" (a bias on the self-attention scores), "none"
    attention    how the heads attend: "standard" (softmax, the (T, T) weights stored),
                 "tiled" (the same numbers in tiles of ``tile``, O(T) memory, notes/flash.md),
                 "window" (each query sees the keys within ``window`` positions, banded in
                 blocks of ``tile``, notes/window.md; cross-attention stays standard), "linear"
                 (elu + 1 features) or "performer" (``features`` random features approximating
                 softmax), notes/linear_attention.md. Only "standard" has attention dropout.
    tile         rows per query and key tile ("tiled"), per query block ("window")
    window       "window" only: the keys each query sees, |position difference| < window
    features     "performer" only: the number of random features
    eps          the epsilon of every LayerNorm of the model, inside its square root (ln.3)
                 (1e-5 as torch.nn.LayerNorm; BERT uses 1e-12)

    An EncoderLayer, DecoderLayer or GPTBlock can be built from one on its own
    (``EncoderLayer(BlockConfig(d_model=24, n_heads=2))``); the model families' configurations
    extend it with their own fields and defaults.
    """

    d_model: int
    n_heads: int
    n_kv_heads: int = None
    d_ff: int = None
    dropout: float = 0.0
    activation: str = "relu"
    norm: str = "post"
    bias: bool = True
    positions: str = "sinusoidal"
    attention: str = "standard"
    tile: int = 64
    window: int = None
    features: int = 64
    eps: float = 1e-5

    @property
    def d_head(self):
        """Features per head, d_model / n_heads."""
        return self.d_model // self.n_heads

    def validate(self):
        super().validate()
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        for name in ("d_model", "n_heads", "n_kv_heads", "d_ff"):
            positive_int(self, name)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{type(self).__name__}: expected n_kv_heads dividing n_heads={self.n_heads} "
                             f"(1 = multi-query, n_heads = multi-head), received n_kv_heads={self.n_kv_heads}")
        if self.d_model % self.n_heads:
            raise ValueError(f"{type(self).__name__}: expected d_model divisible by n_heads, received "
                             f"d_model={self.d_model}, n_heads={self.n_heads}")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"{type(self).__name__}: expected dropout in [0, 1), received {dropout!r}")
        object.__setattr__(self, "dropout", float(dropout))
        choice(self, "activation", ACTIVATIONS)
        choice(self, "norm", NORM_POSITIONS)
        choice(self, "positions", POSITIONS)
        if self.positions == "rope" and self.d_head % 2:
            raise ValueError(f"{type(self).__name__}: expected an even head dimension d_model / n_heads for "
                             f"positions='rope' (features rotate in pairs), received d_model={self.d_model}, "
                             f"n_heads={self.n_heads}, d_head={self.d_head}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"{type(self).__name__}: expected bias True or False, received {self.bias!r}")
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"{type(self).__name__}: expected eps a finite number > 0, received {eps!r}")
        object.__setattr__(self, "eps", float(eps))
        self._validate_attention()
        if self.positions in ("alibi", "t5") and self.attention != "standard":
            raise ValueError(f"{type(self).__name__}: positions={self.positions!r} adds a bias to the scores, which "
                             f"only the standard attention takes: expected attention='standard', received "
                             f"attention={self.attention!r}")

    def _validate_attention(self):
        """The attention kind and its parameters (notes/flash.md): nothing set that the kind ignores."""
        name = type(self).__name__
        choice(self, "attention", ATTENTION_KINDS)
        positive_int(self, "tile")
        positive_int(self, "features")
        if self.attention == "window":
            positive_int(self, "window")
        elif self.window is not None:
            raise ValueError(f"{name}: expected window=None unless attention='window', received window={self.window!r} "
                             f"with attention={self.attention!r}")
        if self.attention != "standard" and self.dropout:
            raise ValueError(f"{name}: attention={self.attention!r} has no dropout on the attention weights (only "
                             f"'standard' forms them all): expected dropout=0, received dropout={self.dropout!r}")


def positive_int(config, name):
    """Refuse a field that is not an integer >= 1 (naming it); store it as a Python int."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{type(config).__name__}: expected {name} an integer >= 1, received {value!r}")
    object.__setattr__(config, name, int(value))


def choice(config, name, choices):
    """Refuse a field whose value is not one of ``choices``, naming them."""
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{type(config).__name__}: expected {name} one of {', '.join(map(repr, choices))}, "
                         f"received {value!r}")


def config_from(cls, config, fields):
    """The ``cls`` configuration a model or block was given: ``config`` itself (an instance of
    ``cls`` or of a subclass, or a dict read from a checkpoint), or one built from the keyword
    ``fields``; not both."""
    if config is not None and fields:
        raise TypeError(f"expected a {cls.__name__} or its fields as keywords, received both "
                        f"(a config and {sorted(fields)})")
    if config is None:
        return cls(**fields)
    if isinstance(config, dict):
        return cls.from_dict(config)
    if not isinstance(config, cls):
        raise TypeError(f"config: expected a {cls.__name__} (or a dict of its fields), received "
                        f"{type(config).__name__}")
    return config


# -- the builders: a configuration becomes layers ----------------------------------------------------


def attention_layer(config, *, rng, dtype, causal=False, cross=False):
    """The MultiHeadAttention of one block, as ``config`` describes it. A self-attention layer
    (``cross=False``) carries the position scheme's part inside attention: RoPE, or an ALiBi / T5
    bias in its ``causal`` (decoder) or bidirectional (encoder) form; cross-attention none.
    ``cross``: it attends to another sequence (a sliding window is a rule about positions in one
    sequence: standard there)."""
    positions = None if cross else config.positions
    rope = ROPE_STYLE if positions == "rope" else None
    score_bias = None
    if positions == "alibi":
        score_bias = ALiBi(config.n_heads, causal=causal)
    elif positions == "t5":
        score_bias = T5RelativeBias(config.n_heads, causal=causal, rng=rng, dtype=dtype)
    return MultiHeadAttention(config.d_model, config.n_heads, config.n_kv_heads, dropout=config.dropout,
                              bias=config.bias, rope=rope, score_bias=score_bias, rng=rng, dtype=dtype,
                              attention=attention_core(config, cross))


def share_position_bias(attentions):
    """T5 shares one bias table between the layers of a stack (notes/score_bias.md): give every
    MultiHeadAttention in ``attentions`` the first one's T5 Parameter (the same object, as a tied
    embedding); each layer's backward adds its share into the one .grad. No-op for other schemes."""
    first = attentions[0].score_bias
    if isinstance(first, T5RelativeBias):
        for attn in attentions[1:]:
            attn.score_bias.weight = first.weight


def position_table(config, max_len, *, rng, dtype):
    """The table added to the embeddings for "learned" or "sinusoidal" positions, else None."""
    if config.positions == "learned":
        return LearnedPositionalEmbedding(config.d_model, max_len, rng=rng, dtype=dtype)
    if config.positions == "sinusoidal":
        return SinusoidalPositionalEncoding(config.d_model, max_len, dtype=dtype)
    return None


def attention_core(config, cross=False):
    """The core of ``config.attention`` (None: the standard ScaledDotProductAttention)."""
    kind = config.attention
    if kind == "standard" or (kind == "window" and cross):
        return None
    if kind == "tiled":
        return TiledAttention(config.tile, config.tile)
    if kind == "window":
        return SlidingWindowAttention(config.window, block=config.tile)
    if kind == "linear":
        return LinearAttention()
    return PerformerAttention(config.d_head, config.features)


def feedforward_layer(config, *, rng, dtype, dropout=None):
    """The PositionwiseFeedForward of one block (d_model -> d_ff -> d_model); ``dropout`` on its
    hidden units defaults to the configuration's."""
    dropout = config.dropout if dropout is None else dropout
    return PositionwiseFeedForward(config.d_model, config.d_ff, config.activation, dropout, bias=config.bias,
                                   rng=rng, dtype=dtype)


def residual(sublayer, config, *, rng, dtype):
    """``sublayer`` in a residual wrapper with the configuration's LayerNorm position, dropout and eps."""
    return Residual(sublayer, config.d_model, config.norm, config.dropout, eps=config.eps, rng=rng, dtype=dtype)


def layer_norm(config, *, dtype):
    """A LayerNorm over d_model features with the configuration's eps."""
    return LayerNorm(config.d_model, eps=config.eps, dtype=dtype)
