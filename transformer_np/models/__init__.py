"""Models built from the layers, each family from one configuration dataclass: the encoder-decoder
Transformer (TransformerConfig), the decoder-only GPT (GPTConfig), and the recurrent baseline
GRUSeq2Seq (GRUSeq2SeqConfig) that attention is measured against."""

from .config import ModelConfig
from .counting import count_parameters, parameter_count
from .decoder import Decoder, DecoderLayer
from .encoder import Encoder, EncoderLayer
from .gpt import GPT, GPTBlock, GPTConfig
from .rnn_seq2seq import GRUSeq2Seq, GRUSeq2SeqConfig
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
    "GRUSeq2Seq",
    "GRUSeq2SeqConfig",
    "count_parameters",
    "parameter_count",
]
