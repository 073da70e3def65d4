"""Sampling from a language model: temperature, top-k, top-p (nucleus), and ``generate`` for the GPT.

    out = generate(gpt, prompt_ids, max_new_tokens=100, temperature=0.8, top_k=20,
                   rng=np.random.default_rng(0))

Each rule is a small pure function of the logits z (B, V) of the next token, vectorised over
the batch (notes/decoding.md, "Sampling"):

    scale_temperature(z, tau)   z / tau                                           (dec.10)
    top_k_filter(z, k)          all but the k largest logits of each row -> -inf  (dec.11)
    top_p_filter(z, p)          all outside the smallest set of most likely tokens
                                whose probability reaches p -> -inf               (dec.12)
    draw(z, rng)                one token per row from softmax(z)                 (dec.13)

(softmax is the library's one, layers/activation.py.) Logits with NaN, or a row of -inf only,
are refused with a message: no token could be drawn from them honestly.

``next_token`` chains them in that order: temperature first (it changes the distribution that
top-p measures), then top-k, then top-p, then the draw. Temperature 0 means greedy: the argmax,
with no division and no random draw. A token set to -inf has probability exactly 0, so it is
never drawn.
"""

import math
import numbers

from .backend import backend_name, get_array_module, to_backend
from .decode import GPTStepper, eval_mode
from .init import make_rng
from .layers.activation import softmax
from .validate import check_int, check_int_ids, check_ndim

# -- the sampling rules -------------------------------------------------------------------------


def check_logits(z):
    """Refuse logits (B, V) that no token can be drawn from: NaN anywhere (a model with NaN weights
    would otherwise give token 0 every time) or a row with every logit -inf."""
    xp = get_array_module(z)
    check_ndim(z, 2, "logits", "(B, V)")
    nan_rows = xp.isnan(z).any(axis=-1)
    empty_rows = xp.isneginf(z).all(axis=-1)
    if not bool((nan_rows | empty_rows).any()):  # the usual case: one device-to-host synchronisation
        return
    if bool(nan_rows.any()):
        raise ValueError(f"logits: expected numbers (finite or -inf), received NaN in rows "
                         f"{[int(r) for r in xp.nonzero(nan_rows)[0]]} (are the model's weights finite?)")
    if bool(empty_rows.any()):
        raise ValueError(f"logits: expected at least one token with a logit above -inf in every row, received "
                         f"rows {[int(r) for r in xp.nonzero(empty_rows)[0]]} with none (nothing can be drawn)")


def scale_temperature(z, temperature):
    """z / temperature (dec.10): below 1 sharpens the distribution, above 1 flattens it."""
    if not temperature > 0:
        raise ValueError(f"temperature: expected a number > 0 to divide by, received {temperature!r} "
                         "(temperature 0 is greedy decoding: use next_token)")
    return z / z.dtype.type(temperature)


def sort_tokens(z):
    """(order, rank), both (B, V) integers: ``order[b]`` lists row b's token ids from the largest
    logit down, ``rank[b, v]`` is the place of token v in that list (0 for the largest). Ties go
    to the lower token id, so each row holds every rank 0 .. V-1 exactly once."""
    xp = get_array_module(z)
    order = xp.argsort(-z, axis=-1, kind="stable")
    return order, xp.argsort(order, axis=-1, kind="stable")  # rank: the inverse permutation


def top_k_filter(z, k):
    """z with every logit outside each row's k largest set to -inf (dec.11).

    Exactly min(k, V) tokens stay (a tie at the k-th place goes to the lower token id).
    """
    xp = get_array_module(z)
    k = check_int(k, "top_k")
    return xp.where(sort_tokens(z)[1] < k, z, -xp.inf)


def top_p_filter(z, p):
    """z with every logit outside each row's nucleus set to -inf (dec.12).

    The nucleus is the smallest set of most likely tokens whose total probability reaches p:
    with the probabilities sorted, pi_(1) >= pi_(2) >= ..., token (r) is kept when the tokens
    ranked before it hold less than p, i.e. sum_{s<r} pi_(s) < p. The most likely token has
    nothing before it, so it is always kept.
    """
    check_top_p(p)
    xp = get_array_module(z)
    order, rank = sort_tokens(z)
    pi_sorted = xp.take_along_axis(softmax(z), order, axis=-1)  # most likely first
    before = xp.cumsum(pi_sorted, axis=-1) - pi_sorted  # probability of the tokens ranked before
    keep = xp.take_along_axis(before < p, rank, axis=-1)  # back in token order
    return xp.where(keep, z, -xp.inf)


def draw(z, rng):
    """(B,) int64 token ids, one per row, drawn from softmax(z) with the generator ``rng`` (dec.13).

    Inverse-CDF sampling: u ~ U[0, 1) scaled to the row's total c, token = the first whose
    cumulative probability exceeds u. A token of probability 0 adds nothing to the cumulative
    sum, so it can never be the first to exceed u. One call to ``rng.random`` per batch.
    """
    xp = get_array_module(z)
    cdf = xp.cumsum(softmax(z), axis=-1)
    u = xp.asarray(rng.random((z.shape[0], 1)), dtype=cdf.dtype) * cdf[:, -1:]  # 0 <= u < c
    return (cdf <= u).sum(axis=-1).astype("int64")


def next_token(z, temperature=1.0, top_k=None, top_p=None, rng=None):
    """(B,) next token ids from the logits z (B, V): greedy when ``temperature`` is 0, otherwise
    a draw after temperature, top-k and top-p in that order (dec.10)-(dec.13).

    ``rng``: the numpy Generator to draw from (None: a new one seeded with 0, so pass one
    generator along when calling this step after step, as ``generate`` does).
    """
    check_sampling(temperature, top_k, top_p)
    check_logits(z)
    if temperature == 0:
        return z.argmax(axis=-1).astype("int64")
    z = scale_temperature(z, temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return draw(z, make_rng(rng))


def check_top_p(p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"top_p: expected a probability in (0, 1], received {p!r}")


def check_sampling(temperature, top_k=None, top_p=None):
    """Refuse a negative (or NaN, or infinite) temperature, top_k below 1, top_p outside (0, 1]."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature: expected a finite number >= 0 (0 = greedy), received {temperature!r}")
    if top_k is not None:
        check_int(top_k, "top_k")
    if top_p is not None:
        check_top_p(top_p)


# -- generating with a GPT ----------------------------------------------------------------------


def generate(model, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, rng=None,
             use_cache=None):
    """The prompt followed by ``max_new_tokens`` tokens sampled from a decoder-only model.

    prompt_ids: integer (B, T0) or (T0,) ids, 1 <= T0 <= model.block_size -> the same rank,
    (B, T0 + max_new_tokens) or (T0 + max_new_tokens,). Sampling settings as in
    ``next_token``; ``rng`` a numpy Generator (None: seeded with 0), so the same generator
    state gives the same tokens. The model runs in eval mode (no dropout) and goes back to
    its mode afterwards.

    With the KV cache (``use_cache``, the default when the model has one) each step feeds
    only the newest token. When the sequence outgrows ``block_size``, the context is cropped
    to its last ``block_size`` tokens and the cache restarts from them, i.e. that window is
    recomputed (``GPTStepper``): the tokens are those of ``use_cache=False``, which runs the
    whole cropped context through ``model.forward`` at every step.
    """
    check_sampling(temperature, top_k, top_p)
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", low=0)
    idx = _check_prompt(model, prompt_ids)
    rng = make_rng(rng)
    xp = get_array_module(idx)
    with eval_mode(model):
        step = GPTStepper(model, idx.shape[0], use_cache)
        for _ in range(max_new_tokens):
            new = next_token(step(idx), temperature, top_k, top_p, rng)
            new = to_backend(new, backend_name(idx))  # the prompt's backend (a model elsewhere: an explicit copy)
            idx = xp.concatenate([idx, xp.asarray(new, dtype=idx.dtype)[:, None]], axis=1)
    return idx[0] if prompt_ids.ndim == 1 else idx


def _check_prompt(model, prompt_ids):
    """prompt_ids as (B, T0) with 1 <= T0 <= block_size and ids in [0, vocab_size)."""
    check_ndim(prompt_ids, (1, 2), "prompt_ids", "(T0,) or (B, T0)")
    idx = prompt_ids[None] if prompt_ids.ndim == 1 else prompt_ids
    if idx.shape[1] == 0 or idx.shape[0] == 0:
        raise ValueError(f"prompt_ids: expected a non-empty prompt (at least one token), received shape "
                         f"{prompt_ids.shape}")
    if idx.shape[1] > model.block_size:
        raise ValueError(f"prompt_ids: expected at most block_size={model.block_size} tokens (the model's context), "
                         f"received {idx.shape[1]}")
    check_int_ids(idx, 0, model.vocab_size, "prompt_ids")
    return idx
