"""Greedy decoding, the next-token logits it is built on (with or without the KV cache), and
the accuracy of what it produces.

    ids = greedy_decode(model, src, src_mask, max_len=12, bos=BOS, eos=EOS)   encoder-decoder
    ids = generate(gpt, prompt, 6, temperature=0)      decoder-only: generate.py (greedy at 0)

Greedy decoding feeds the model its own most likely token, one position at a time. Both
model families reach the model through a *stepper*, which answers one question: "given every
row's tokens so far, what are the logits of the next token?"

    step = Seq2SeqStepper(model, src, src_mask)      encodes the sources once
    step = GPTStepper(gpt, batch_size)
    logits = step(tokens)                            tokens (N, t): all so far -> (N, V)
    step.select(rows)                                keep, reorder or repeat rows (beam search)

With the key/value cache (``use_cache=True``, the default when the model has ``new_cache``)
the stepper sends only the tokens the cache has not seen yet, one per step: O(L) decoder
positions for L outputs. Without it (``use_cache=False``) the decoder reruns on the whole
prefix at every step, O(L^2) positions: slow, but the plain definition, which the tests use as
the reference the cache must reproduce. generate.py (sampling) and beam.py (beam search) use
the same steppers.

The loop over output positions is inherent (token t+1 depends on token t); everything inside
it is vectorised over the batch. The model is put in eval mode (no dropout) while decoding and
put back into the mode it was in.
"""

from contextlib import contextmanager

from .backend import backend_name, get_array_module, to_backend
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


def _wants_cache(model, use_cache):
    return hasattr(model, "new_cache") if use_cache is None else bool(use_cache)


class Seq2SeqStepper:
    """Next-token logits of an encoder-decoder for a batch of growing target prefixes.

    The encoder runs once, here: ``memory = model.encode(src, src_mask)``. With the cache,
    the cross-attention keys and values of ``memory`` are computed once too
    (``model.new_cache``) and every call feeds the decoder only the new tokens; without it,
    every call reruns ``model.decode`` on the whole prefix under a causal mask.
    """

    def __init__(self, model, src, src_mask, use_cache=None):
        self.model, self.src_mask = model, src_mask
        self.memory = model.encode(src, src_mask)  # (B, S, D)
        self.cache = model.new_cache(self.memory, src_mask) if _wants_cache(model, use_cache) else None
        self.fed = 0  # target positions the cache holds

    def __call__(self, tokens):
        """tokens (N, t): every row's target prefix, BOS first -> logits (N, V) of position t + 1."""
        if self.cache is None:
            t = tokens.shape[1]
            logits = self.model.decode(tokens, self.memory, self.src_mask, causal_mask(t, get_array_module(tokens)))
        else:
            logits = self.model.decode(tokens[:, self.fed:], cache=self.cache)
            self.fed = tokens.shape[1]
        return logits[:, -1]

    def select(self, rows):
        """Keep the rows ``rows`` (1-D integer array, any length N'), in that order: the sources
        (or the cache built from them) follow the prefixes they belong to."""
        if self.cache is not None:
            self.cache.select(rows)
        else:
            self.memory = self.memory[to_backend(rows, backend_name(self.memory))]  # rows may be on another backend
            if self.src_mask is not None:
                self.src_mask = self.src_mask[to_backend(rows, backend_name(self.src_mask))]


class GPTStepper:
    """Next-token logits of a decoder-only model for a batch of growing sequences.

    A GPT sees at most ``block_size`` tokens. While the sequence fits, the cache grows by the
    new tokens at each call. When it is full and a token must be added, the context is cropped
    to the last ``block_size`` tokens and the cache restarts from that window: the window is
    recomputed, because with learned absolute positions every token's position in the window
    changes when it slides, and with it every cached key and value. So from then on each new
    token costs one forward pass over ``block_size`` tokens, exactly what ``model.forward`` on
    the cropped context costs and gives (which is the uncached path).
    """

    def __init__(self, model, batch_size, use_cache=None):
        self.model, self.batch_size = model, batch_size
        self.use_cache = _wants_cache(model, use_cache)
        self.cache, self.start = None, 0  # the cache holds tokens[:, start : start + cache.length]
        self.restarts = 0  # how many times the window was cropped and recomputed

    def __call__(self, tokens):
        """tokens (B, T): every row's sequence so far -> logits (B, V) of the token after it."""
        block, T = self.model.block_size, tokens.shape[1]
        if not self.use_cache:
            return self.model.forward(tokens[:, -block:])[:, -1]
        if self.cache is None or T - self.start > self.cache.max_len:  # first call, or no room left
            self.restarts += self.cache is not None
            self.cache, self.start = self.model.new_cache(self.batch_size), max(0, T - block)
        new = tokens[:, self.start + self.cache.length:]
        return self.model.forward(new, cache=self.cache)[:, -1]


def greedy_decode(model, src, src_mask, max_len, bos, eos=None, pad=PAD, use_cache=None):
    """(B, max_len) ids: the encoder-decoder's greedy output for each source, without BOS.

    src: (B, S) ids; src_mask: (B, 1, 1, S) boolean (True = real token). The decoder starts
    from ``bos`` and appends argmax of the next-token logits ``max_len`` times. A sequence that
    has produced ``eos`` is finished: its later positions are ``pad``, and the loop stops early
    once every sequence is finished (the rest is ``pad``). ``eos=None`` (the Annotated
    Transformer's copy task) decodes exactly ``max_len`` tokens. ``use_cache``: see the module
    docstring (None: the cache when the model has one); both give the same tokens.
    """
    check_ndim(src, 2, "src", "(B, S)")
    max_len = check_int(max_len, "max_len")
    xp = get_array_module(src)
    B = src.shape[0]
    out = xp.full((B, max_len + 1), pad, dtype=src.dtype)
    out[:, 0] = bos
    done = xp.zeros(B, dtype=bool)
    with eval_mode(model):
        step = Seq2SeqStepper(model, src, src_mask, use_cache)
        for t in range(1, max_len + 1):
            next_ids = step(out[:, :t]).argmax(axis=-1)  # on the model's backend ...
            next_ids = to_backend(next_ids, backend_name(out)).astype(src.dtype)  # ... moved to src's
            out[:, t] = xp.where(done, pad, next_ids)
            if eos is not None:
                done |= next_ids == eos
                if bool(done.all()):
                    break
    return out[:, 1:]


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
