"""Greedy decoding, without a cache, and the accuracy of what it produces.

    ids = greedy_decode(model, src, src_mask, max_len=12, bos=BOS, eos=EOS)   encoder-decoder
    ids = greedy_continue(gpt, prompt, num_new=6)                              decoder-only

Greedy decoding feeds the model its own most likely token, one position at a time. Nothing is
cached: at output position t the decoder reruns on all t tokens written so far, which costs
O(L^2) decoder positions for L outputs instead of O(L). That is plain to read and fast enough
for the toy tasks; generate.py adds the key/value cache, sampling and beam search.

The loop over output positions is inherent (token t+1 depends on token t); everything inside
it is vectorised over the batch. The model is put in eval mode (no dropout) while decoding and
put back into the mode it was in.
"""

from contextlib import contextmanager

from .backend import get_array_module
from .data.symbols import PAD
from .layers.masks import causal_mask
from .validate import check_int, check_ndim


@contextmanager
def eval_mode(model):
    """Evaluation mode inside the ``with`` block, the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def greedy_decode(model, src, src_mask, max_len, bos, eos=None, pad=PAD):
    """(B, max_len) ids: the encoder-decoder's greedy output for each source, without BOS.

    src: (B, S) ids; src_mask: (B, 1, 1, S) boolean (True = real token). The encoder runs once;
    the decoder starts from ``bos`` and appends argmax of the last position's logits
    ``max_len`` times. A sequence that has produced ``eos`` is finished: its later positions are
    ``pad``, and the loop stops early once every sequence is finished (the rest is ``pad``).
    ``eos=None`` (the Annotated Transformer's copy task) decodes exactly ``max_len`` tokens.
    """
    check_ndim(src, 2, "src", "(B, S)")
    max_len = check_int(max_len, "max_len")
    xp = get_array_module(src)
    B = src.shape[0]
    out = xp.full((B, max_len + 1), pad, dtype=src.dtype)
    out[:, 0] = bos
    done = xp.zeros(B, dtype=bool)
    with eval_mode(model):
        memory = model.encode(src, src_mask)
        for t in range(1, max_len + 1):
            logits = model.decode(out[:, :t], memory, src_mask, causal_mask(t, xp=xp))  # (B, t, V)
            next_ids = logits[:, -1].argmax(axis=-1).astype(src.dtype)
            out[:, t] = xp.where(done, pad, next_ids)
            if eos is not None:
                done |= next_ids == eos
                if bool(done.all()):
                    break
    return out[:, 1:]


def greedy_continue(model, idx, num_new):
    """(B, T0 + num_new) ids: a decoder-only model's prompt ``idx`` (B, T0) and its greedy continuation.

    Every new token is the argmax of the logits at the last position of ``model.forward`` on
    everything so far (the whole sequence must fit in the model's block size).
    """
    check_ndim(idx, 2, "idx", "(B, T0)")
    xp = get_array_module(idx)
    with eval_mode(model):
        for _ in range(check_int(num_new, "num_new")):
            next_ids = model.forward(idx)[:, -1].argmax(axis=-1).astype(idx.dtype)
            idx = xp.concatenate([idx, next_ids[:, None]], axis=1)
    return idx


def exact_match(pred, target, pad=PAD):
    """Fraction of rows of ``pred`` equal to ``target`` in every position.

    Both (B, L1) and (B, L2) ids; the shorter is padded with ``pad`` first, so a prediction
    must end (EOS, then padding) exactly where its target does.
    """
    pred, target = _same_width(pred, target, pad)
    return float((pred == target).all(axis=1).mean())


def token_accuracy(pred, target, pad=PAD):
    """Fraction of the non-``pad`` positions of ``target`` that ``pred`` gets right."""
    pred, target = _same_width(pred, target, pad)
    real = target != pad
    return float(((pred == target) & real).sum() / max(int(real.sum()), 1))


def _same_width(pred, target, pad):
    check_ndim(pred, 2, "pred", "(B, L)")
    check_ndim(target, 2, "target", "(B, L)")
    if pred.shape[0] != target.shape[0]:
        raise ValueError(f"pred: expected {target.shape[0]} rows (as target), received shape {pred.shape}")
    xp = get_array_module(pred)
    width = max(pred.shape[1], target.shape[1])
    pad_to = lambda a: xp.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=pad)
    return pad_to(pred), pad_to(target)
