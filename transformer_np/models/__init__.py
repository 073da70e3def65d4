"""Models built from the layers, each family from one configuration dataclass: the encoder-decoder
Transformer (TransformerConfig) and the decoder-only GPT (GPTConfig)."""

from .config import ModelConfig
from .counting import count_parameters, parameter_count
from .decoder import Decoder, DecoderLayer
from .encoder import Encoder, EncoderLayer
from .gpt import GPT, GPTBlock, GPTConfig
from .transformer import Transformer, TransformerConfig

__all__ = [
    "ModelConfig",
    "Transformer",
    "TransformerConfig",
    "Encoder",
    "EncoderLayer",
    "Decoder",
    "DecoderLayer",
    "GPT",
    "GPTConfig",
    "GPTBlock",
    "count_parameters",
    "parameter_count",
]
