"""Beam search for the encoder-decoder, with the GNMT length penalty, and the scores it ranks by.

    ids, scores = beam_search(model, src, src_mask, beam_size=4, max_len=12, bos=BOS, eos=EOS)
    ids[:, 0]          (B, max_len) the best hypothesis of each source (EOS, then padding)
    scores[:, 0]       (B,) its score log P(Y|X) / lp(Y)

Greedy decoding (decode.greedy_decode) keeps one prefix per source and commits to its most
likely next token; beam search keeps the ``beam_size`` = K best prefixes and, at each step,
scores every one-token continuation of every prefix, K * V candidates per source, keeping the
K best (notes/decoding.md, "Beam search"). A hypothesis ranks by its length-penalised score

    lp(Y) = ((5 + |Y|) / 6) ** alpha                                             (dec.14)
    s(Y) = log P(Y | X) / lp(Y),   log P(Y | X) = sum_t log p(y_t | y_<t, X)      (dec.15)

|Y| counts the output tokens, EOS included, BOS not. alpha = 0 ranks by log-probability
alone, which favours short outputs (every token multiplies P by a number below 1); alpha > 0
divides the (negative) log-probability of a long hypothesis by more, and so compensates.

End of sequence: a hypothesis that emits ``eos`` is finished. It stays among the K beams with
one continuation only, ``pad`` at no cost, so its log-probability and length stop changing
and it competes with the live hypotheses on its final score s(Y). The search stops when the K
beams of every source are finished (a live candidate outside the K best can never come back)
or after ``max_len`` tokens; a hypothesis still live then is returned as it is, without EOS.

Everything is vectorised over (sources x beams): the beams of source b are rows b*K ... b*K+K-1
of the decoder's batch; the only loop is over output positions. Beam size 1 keeps the one best
continuation, the argmax: exactly greedy decoding.
"""

import math
import numbers

from .backend import backend_name, get_array_module, to_backend
from .data.symbols import PAD
from .decode import Seq2SeqStepper, eval_mode
from .layers.activation import log_softmax
from .layers.masks import causal_mask
from .validate import check_int, check_ndim


def length_penalty(length, alpha):
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha (dec.14), elementwise on an array of lengths."""
    return ((5.0 + length) / 6.0) ** alpha


def log_probabilities(z):
    """log p of logits z (..., V) in float64 (scores summed over many steps keep their digits),
    by the library's one log_softmax (layers/activation.py)."""
    return log_softmax(z.astype("float64"))


def beam_search(model, src, src_mask, beam_size, max_len, bos, eos, alpha=0.6, pad=PAD, use_cache=None):
    """Beam search over the encoder-decoder's outputs for a batch of sources (module docstring).

    src: (B, S) ids, sources of different lengths padded; src_mask: (B, 1, 1, S) boolean
    (True = real token) or None. Returns ``(ids, scores)``: ids (B, K, max_len) the K beams of
    each source, best first, each without BOS and padded with ``pad`` after its EOS; scores
    (B, K) float64, their s(Y) (dec.15). ``alpha`` >= 0 is the length penalty's exponent
    (dec.14). ``use_cache`` as in decode.greedy_decode; both give the same beams.
    """
    check_ndim(src, 2, "src", "(B, S)")
    K, max_len = check_int(beam_size, "beam_size"), check_int(max_len, "max_len")
    check_alpha(alpha)
    xp = get_array_module(src)
    B, N = src.shape[0], src.shape[0] * beam_size
    first = xp.arange(B)[:, None] * K  # (B, 1): the row of each source's first beam
    with eval_mode(model):
        step = Seq2SeqStepper(model, src, src_mask, use_cache)
        step.select(xp.repeat(xp.arange(B), K))  # every source K times: rows b*K ... b*K+K-1
        tokens = xp.full((N, 1), bos, dtype=src.dtype)  # (N, t): BOS, then the beams' outputs
        logp = xp.zeros((B, K))  # log P(prefix | X) of each beam (float64)
        logp[:, 1:] = -xp.inf  # at the start the K beams are one: only beam 0 may grow
        length = xp.zeros((B, K), dtype="int64")
        finished = xp.zeros((B, K), dtype=bool)
        for t in range(1, max_len + 1):
            logits = to_backend(step(tokens), backend_name(src))  # src's backend (a model elsewhere: an explicit copy)
            token_logp = log_probabilities(logits).reshape(B, K, -1)  # (B, K, V): log p(y_t | y_<t, X)
            V = token_logp.shape[-1]
            only_pad = xp.where(xp.arange(V) == pad, 0.0, -xp.inf)  # a finished beam's one continuation
            token_logp = xp.where(finished[:, :, None], only_pad, token_logp)
            cand_logp = (logp[:, :, None] + token_logp).reshape(B, K * V)  # k*V + v: beam k, then token v
            cand_length = xp.repeat(xp.where(finished, length, t), V, axis=1)  # (B, K*V)
            cand_score = cand_logp / length_penalty(cand_length, alpha)  # (dec.15)
            best = xp.argsort(-cand_score, axis=1, kind="stable")[:, :K]  # (B, K), best first
            beam, token = best // V, best % V
            logp = xp.take_along_axis(cand_logp, best, axis=1)
            length = xp.take_along_axis(cand_length, best, axis=1)
            finished = xp.take_along_axis(finished, beam, axis=1) | (token == eos)
            rows = (first + beam).reshape(N)  # the row each new beam extends
            tokens = xp.concatenate([tokens[rows], token.reshape(N, 1).astype(tokens.dtype)], axis=1)
            step.select(rows)
            if bool(finished.all()):
                break
    ids = xp.full((N, max_len), pad, dtype=src.dtype)
    ids[:, : tokens.shape[1] - 1] = tokens[:, 1:]
    return ids.reshape(B, K, max_len), logp / length_penalty(length, alpha)


def sequence_scores(model, src, src_mask, ids, bos, eos, alpha=0.6):
    """(log P(Y|X), s(Y)), both (B,) float64, of given outputs ``ids`` (B, L), by teacher forcing.

    A row counts its tokens up to and including its first ``eos`` (all L when it has none);
    positions after it are ignored. This is the score beam search ranks by (dec.15), computed
    in one forward pass with no search: the tests use it to compare greedy and beam outputs.
    """
    check_ndim(ids, 2, "ids", "(B, L)")
    check_alpha(alpha)
    xp = get_array_module(ids)
    B, L = ids.shape
    tgt_in = xp.concatenate([xp.full((B, 1), bos, dtype=ids.dtype), ids[:, :-1]], axis=1)
    with eval_mode(model):
        logits = to_backend(model.forward(src, tgt_in, src_mask, causal_mask(L, xp)), backend_name(ids))
        token_logp = log_probabilities(logits)  # (B, L, V)
    picked = xp.take_along_axis(token_logp, ids[:, :, None].astype("int64"), axis=-1)[:, :, 0]
    is_eos = ids == eos
    counted = (xp.cumsum(is_eos, axis=1) - is_eos) == 0  # no EOS before this position
    logp = xp.where(counted, picked, 0.0).sum(axis=1)
    return logp, logp / length_penalty(counted.sum(axis=1), alpha)


def check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (alpha >= 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha (the length penalty): expected a finite number >= 0, received {alpha!r}")
