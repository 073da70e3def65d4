"""The reserved token ids shared by the toy tasks and the batching code.

An encoder-decoder vocabulary of the toy tasks is laid out as

    id 0       PAD   padding; the loss ignores it (ignore_index=PAD) and masks hide it
    id 1       BOS   start of the decoder input (the "begin" symbol greedy decoding starts from)
    id 2       EOS   end of the target; the decoder learns to emit it and decoding stops there
    id 3 ...   content symbols: content value k (0 <= k < n) is token id k + 3

so a task with ``n`` content symbols has ``vocab_size(n) = n + 3`` token ids in all.

The decoder-only (GPT) tasks use no special symbols at all, as in minGPT: their tokens are the
content values themselves (0 .. n-1), and positions that carry no loss get the target
``IGNORE_INDEX = -1``.
"""

PAD = 0
BOS = 1
EOS = 2
NUM_SPECIAL = 3
IGNORE_INDEX = -1


def vocab_size(num_symbols):
    """Token ids needed by an encoder-decoder task with ``num_symbols`` content symbols (+3 specials)."""
    if int(num_symbols) != num_symbols or num_symbols < 1:
        raise ValueError(f"num_symbols: expected a positive integer, received {num_symbols!r}")
    return int(num_symbols) + NUM_SPECIAL
