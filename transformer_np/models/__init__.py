"""Models built from the layers, each family from one configuration dataclass: the encoder-decoder
Transformer (TransformerConfig), the decoder-only GPT (GPTConfig), and the recurrent baseline
GRUSeq2Seq (GRUSeq2SeqConfig) that attention is measured against, and the encoder-only Bert
(BertConfig)."""

from .bert import Bert, BertConfig, MaskedLanguageModel, SentenceEncoder
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
    "Bert",
    "BertConfig",
    "MaskedLanguageModel",
    "SentenceEncoder",
    "count_parameters",
    "parameter_count",
]
