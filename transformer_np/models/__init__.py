"""Models built from the layers: the encoder-decoder Transformer and the decoder-only GPT."""

from .counting import count_parameters
from .decoder import Decoder, DecoderLayer
from .encoder import Encoder, EncoderLayer
from .gpt import GPT, GPTBlock
from .transformer import Transformer

__all__ = ["Transformer", "Encoder", "EncoderLayer", "Decoder", "DecoderLayer", "GPT", "GPTBlock", "count_parameters"]
