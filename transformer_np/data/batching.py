"""Encoder-decoder batches: padding, the decoder's shifted input and output, and the masks.

For one pair (source x, target y) the decoder is trained with "teacher forcing":

    tgt_in  = BOS y_1 ... y_n        what the decoder reads
    tgt_out = y_1 ... y_n EOS        what it must predict, one position ahead

so position t of ``tgt_in`` sees BOS, y_1 .. y_t and is asked for y_{t+1}. Rows of different
length are padded on the right with PAD; the loss skips PAD targets (ignore_index=PAD).

Masks follow the project convention (DESIGN.md): boolean, ``True`` = may attend, broadcastable
to the attention scores (B, H, Tq, Tk), built by the one mask builder, ``layers/masks.py``.
"""

from dataclasses import dataclass

import numpy as np

from ..layers.masks import causal_mask, padding_mask_from_ids, padding_mask_from_lengths
from ..validate import check_generator, check_int, check_sequence
from .symbols import BOS, EOS, PAD


def pad_batch(sequences, pad_id=PAD):
    """Stack B 1-D sequences of varying length into one padded array.

    Returns ``(ids, lengths)``: ids (B, Tmax) int64, row b = sequences[b] followed by
    ``pad_id`` up to Tmax (the longest length, at least 1); lengths (B,) int64.
    """
    if len(sequences) == 0:
        raise ValueError("sequences: expected at least one sequence, received an empty list")
    seqs = [check_sequence(s, f"sequences[{b}]") for b, s in enumerate(sequences)]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    ids = np.full((len(seqs), max(1, int(lengths.max()))), pad_id, dtype=np.int64)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
    return ids, lengths


@dataclass
class Seq2SeqBatch:
    """One encoder-decoder batch; all ids are int64, masks boolean (True = may attend).

    src       (B, S)        source ids, right-padded
    tgt_in    (B, T)        decoder input (starts with BOS)
    tgt_out   (B, T)        decoder targets, tgt_out[:, t] follows tgt_in[:, t]; PAD = no loss
    src_mask  (B, 1, 1, S)  real source keys; serves the encoder's self-attention and the
                            decoder's cross-attention (it broadcasts over any query length)
    tgt_mask  (B, 1, T, T)  real target keys AND causal: query t sees keys 0..t that are real
    n_tokens  int           number of targets that carry loss (non-PAD entries of tgt_out)
    """

    src: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    src_mask: np.ndarray
    tgt_mask: np.ndarray
    n_tokens: int


def make_seq2seq_batch(src_seqs, tgt_seqs, pad=PAD, bos=BOS, eos=EOS):
    """A ``Seq2SeqBatch`` from B source and B target sequences (1-D, without BOS/EOS).

    tgt_in = BOS + tgt and tgt_out = tgt + EOS, both padded to T = longest target + 1. The
    masks come from the lengths, so they are right even if a content id equalled ``pad``.
    """
    if len(src_seqs) != len(tgt_seqs):
        raise ValueError(
            f"tgt_seqs: expected as many target sequences as source sequences ({len(src_seqs)}), "
            f"received {len(tgt_seqs)}"
        )
    src, src_len = pad_batch(src_seqs, pad)
    tgts = [check_sequence(t, f"tgt_seqs[{b}]") for b, t in enumerate(tgt_seqs)]
    tgt_in, tgt_len = pad_batch([np.concatenate([[bos], t]) for t in tgts], pad)
    tgt_out, _ = pad_batch([np.concatenate([t, [eos]]) for t in tgts], pad)
    T = tgt_in.shape[1]
    return Seq2SeqBatch(
        src=src,
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        src_mask=padding_mask_from_lengths(src_len, src.shape[1]),
        tgt_mask=padding_mask_from_lengths(tgt_len, T) & causal_mask(T),
        n_tokens=int(tgt_len.sum()),
    )


def shifted_batch(src, tgt, pad=0):
    """A ``Seq2SeqBatch`` in the Annotated Transformer's convention (its ``Batch`` class).

    src (B, S) and tgt (B, T+1) are already padded id arrays whose first target column is the
    start symbol; then tgt_in = tgt[:, :-1], tgt_out = tgt[:, 1:] (both (B, T)), the masks come
    from ``ids != pad`` (src_mask from src, tgt_mask from tgt_in, AND causal) and n_tokens
    counts the non-pad entries of tgt_out. There is no separate EOS.
    """
    src, tgt = np.asarray(src), np.asarray(tgt)
    for name, a in (("src", src), ("tgt", tgt)):
        if a.ndim != 2 or a.dtype.kind not in "iu":
            raise ValueError(
                f"{name}: expected a 2-D integer array (B, length), received {a.dtype} of shape {a.shape}"
            )
    if tgt.shape[1] < 2 or src.shape[0] != tgt.shape[0]:
        raise ValueError(
            f"tgt: expected shape ({src.shape[0]}, T+1) with T+1 >= 2 (as many rows as src), received {tgt.shape}"
        )
    tgt_in, tgt_out = tgt[:, :-1].astype(np.int64), tgt[:, 1:].astype(np.int64)
    T = tgt_in.shape[1]
    return Seq2SeqBatch(
        src=src.astype(np.int64),
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        src_mask=(src != pad)[:, None, None, :],
        tgt_mask=padding_mask_from_ids(tgt_in, pad) & causal_mask(T),
        n_tokens=int((tgt_out != pad).sum()),
    )


def iterate_batches(sources, targets, batch_size, rng=None, pad=PAD, bos=BOS, eos=EOS):
    """Yield ``Seq2SeqBatch``es of ``batch_size`` pairs (the last one may be smaller).

    With ``rng`` (a numpy Generator) the pairs are visited in a random order, a new one on
    each call; without it, in order.
    """
    if len(sources) != len(targets):
        raise ValueError(f"targets: expected {len(sources)} sequences (one per source), received {len(targets)}")
    batch_size = check_int(batch_size, "batch_size")
    order = np.arange(len(sources)) if rng is None else check_generator(rng).permutation(len(sources))
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        yield make_seq2seq_batch([sources[i] for i in chosen], [targets[i] for i in chosen], pad, bos, eos)
