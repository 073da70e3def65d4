"""Beam search (notes/decoding.md, "Beam search"): the length penalty (dec.14) and score (dec.15),
the hand-built examples of the note, beam size 1 = greedy, cache = no cache, and beam >= greedy
on a trained model's held-out set."""

import math

import numpy as np
import pytest
from helpers import StubModel
from trained import trained

from transformer_np.beam import beam_search, length_penalty, sequence_scores
from transformer_np.data import BOS, EOS, PAD, copy_task, make_seq2seq_batch
from transformer_np.decode import greedy_decode
from transformer_np.models.transformer import Transformer

A, B_, C, D, E = 3, 4, 5, 6, 7  # the content tokens of the hand-built models: "a" ... "e"


class BigramModel(StubModel):
    """A hand-built encoder-decoder whose next token depends on the previous token only:
    p(y_t = w | y_{t-1} = v) = table[v][w], whatever the source. Its "cache" holds nothing but
    the number of positions seen and records the rows beam search selects."""

    def __init__(self, table, vocab=8):
        probs = np.full((vocab, vocab), 1.0 / vocab)  # rows not given: uniform (never decisive)
        for v, row in table.items():
            probs[v] = [row.get(w, 0.0) for w in range(vocab)]
        with np.errstate(divide="ignore"):
            self.logits = np.log(probs)  # a probability 0 is a logit of -inf

    def encode(self, src, src_mask):
        return np.zeros(src.shape + (1,))

    def new_cache(self, memory, src_mask):
        return BigramCache(memory.shape[0])

    def decode(self, tgt_in, memory=None, src_mask=None, tgt_mask=None, cache=None):
        if cache is not None:
            assert not self.training and tgt_in.shape[0] == cache.batch_size and memory is None
            cache.length += tgt_in.shape[1]
        return self.logits[tgt_in]  # (B, T, V)

    def forward(self, src, tgt_in, src_mask, tgt_mask):
        return self.logits[tgt_in]


class BigramCache:
    def __init__(self, batch_size):
        self.batch_size, self.length, self.selected = batch_size, 0, []

    def select(self, rows):
        self.selected.append(np.asarray(rows).tolist())
        self.batch_size = len(rows)


# notes/decoding.md, "A worked example": greedy takes "a" (0.6) and then ends with probability 0.4;
# "b" (0.4) is followed by EOS with probability 0.9. Greedy P = 0.24, best P = 0.36.
GREEDY_MISSES = {BOS: {A: 0.6, B_: 0.4}, A: {EOS: 0.4, A: 0.3, B_: 0.3}, B_: {EOS: 0.9, A: 0.05, B_: 0.05}}
# notes/decoding.md, "Beam search can lose to greedy": two b-continuations push "a EOS" out of 2 beams.
BEAM_LOSES = {BOS: {A: 0.5, B_: 0.45, EOS: 0.05}, A: {EOS: 0.4, A: 0.3, B_: 0.3}, B_: {A: 0.5, B_: 0.5}}
# A short and a long hypothesis: "a EOS" (P = 0.4) and "c d e EOS" (P = 0.6 * 0.8 * 0.8 = 0.384).
SHORT_OR_LONG = {BOS: {A: 0.4, C: 0.6}, A: {EOS: 1.0}, C: {D: 0.8, EOS: 0.2}, D: {E: 0.8, EOS: 0.2}, E: {EOS: 1.0}}


def search(table, beam_size, max_len=4, alpha=0.0, src_rows=1):
    model = BigramModel(table)
    src = np.full((src_rows, 2), 7)
    return model, beam_search(model, src, None, beam_size, max_len, BOS, EOS, alpha=alpha)


def test_the_length_penalty_of_gnmt():
    assert length_penalty(1, 0.6) == 1.0 and length_penalty(7, 0.0) == 1.0
    assert length_penalty(np.array([4, 13]), 1.0).tolist() == [1.5, 3.0]
    assert length_penalty(10, 0.6) == pytest.approx(2.5 ** 0.6)


def test_the_worked_example_greedy_misses_what_beam_search_finds():
    model = BigramModel(GREEDY_MISSES)
    src = np.full((1, 2), 7)
    greedy = greedy_decode(model, src, None, 4, BOS, EOS)
    assert greedy.tolist() == [[A, EOS, PAD, PAD]]
    model, (ids, scores) = search(GREEDY_MISSES, beam_size=2, alpha=0.6)
    assert ids.tolist() == [[[B_, EOS, PAD, PAD], [A, EOS, PAD, PAD]]]  # best first; greedy's is second
    lp = (7 / 6) ** 0.6  # both have |Y| = 2 (dec.14)
    np.testing.assert_allclose(scores, [[math.log(0.36) / lp, math.log(0.24) / lp]], rtol=1e-12)
    assert model.training  # the mode it was in came back
    logp, _ = sequence_scores(model, src, None, np.array([[B_, EOS], [A, EOS]]), BOS, EOS, alpha=0.6)
    np.testing.assert_allclose(logp, [math.log(0.36), math.log(0.24)], rtol=1e-12)


def test_the_cache_rows_follow_the_beams():
    model = BigramModel(GREEDY_MISSES)
    cache_log = []
    model.new_cache = lambda memory, src_mask: cache_log.append(BigramCache(memory.shape[0])) or cache_log[-1]
    beam_search(model, np.full((2, 3), 7), None, 2, 4, BOS, EOS)
    (cache,) = cache_log
    # expand 2 sources to 2 beams each; step 1: both beams descend from beam 0 of their source;
    # step 2: both finish (b EOS from beam 1, a EOS from beam 0), and the search stops
    assert cache.selected == [[0, 0, 1, 1], [0, 0, 2, 2], [1, 0, 3, 2]]
    assert cache.length == 2


def test_beam_search_can_lose_to_greedy_and_a_wider_beam_recovers():
    model = BigramModel(BEAM_LOSES)
    greedy = greedy_decode(model, np.full((1, 2), 7), None, 4, BOS, EOS)
    assert greedy.tolist() == [[A, EOS, PAD, PAD]]  # P = 0.5 * 0.4 = 0.2
    _, (ids, scores) = search(BEAM_LOSES, beam_size=2)
    assert ids[0, 0].tolist() == [B_, B_, B_, A]  # no EOS within max_len = 4: returned as it is
    np.testing.assert_allclose(scores[0, 0], math.log(0.45 * 0.5 ** 3), rtol=1e-12)  # 0.056 < 0.2
    _, (ids, scores) = search(BEAM_LOSES, beam_size=3)
    assert ids[0, 0].tolist() == [A, EOS, PAD, PAD]
    np.testing.assert_allclose(scores[0, 0], math.log(0.2), rtol=1e-12)


@pytest.mark.parametrize("alpha, best", [(0.0, [A, EOS, PAD, PAD, PAD]), (1.0, [C, D, E, EOS, PAD])])
def test_the_length_penalty_decides_between_a_short_and_a_long_hypothesis(alpha, best):
    # alpha = 0: log 0.4 = -0.916 beats log 0.384 = -0.957. alpha = 1: lp = 7/6 and 9/6 (dec.14),
    # -0.916 / (7/6) = -0.785 loses to -0.957 / (9/6) = -0.638 (dec.15)
    _, (ids, scores) = search(SHORT_OR_LONG, beam_size=2, max_len=5, alpha=alpha)
    assert ids[0, 0].tolist() == best
    short, long_ = math.log(0.4) / length_penalty(2, alpha), math.log(0.384) / length_penalty(4, alpha)
    np.testing.assert_allclose(scores[0], sorted([short, long_], reverse=True), rtol=1e-12)


# -- real Transformers: beam size 1, the cache, the batch, the scores ------------------------------


def random_transformer(dtype, seed=0, norm="pre"):
    model = Transformer(src_vocab=13, tgt_vocab=13, d_model=24, n_heads=2, n_layers=2, d_ff=40, dropout=0.2, max_len=32, norm=norm,
                        rng=np.random.default_rng(seed), dtype=dtype)
    model.output.bias.data[EOS] += 0.7  # so that outputs end, at various places
    model.output.bias.data[[PAD, BOS]] = -30.0  # and never write PAD or BOS, as a trained model
    return model


def sources(n, seed=1):
    src, tgt = copy_task(np.random.default_rng(seed), n, num_symbols=10, min_len=1, max_len=8)
    batch = make_seq2seq_batch(src, tgt)
    return batch.src, batch.src_mask


@pytest.mark.parametrize("dtype, norm", [(np.float32, "pre"), (np.float64, "post")])
def test_beam_size_one_is_greedy_token_for_token(dtype, norm):
    model = random_transformer(dtype, norm=norm)
    src, mask = sources(40)
    greedy = greedy_decode(model, src, mask, 10, BOS, EOS)
    for use_cache in (True, False):
        ids, scores = beam_search(model, src, mask, 1, 10, BOS, EOS, alpha=0.6, use_cache=use_cache)
        np.testing.assert_array_equal(ids[:, 0], greedy)
    assert ids.shape == (40, 1, 10) and ids.dtype == src.dtype and scores.dtype == np.float64
    assert model.training  # the mode it was in came back
    ends = (greedy == EOS).argmax(axis=1)[(greedy == EOS).any(axis=1)]
    assert len(ends) >= 10 and len(set(ends.tolist())) >= 3  # outputs end, at various places


def test_cache_and_recomputation_give_the_same_beams_and_scores():
    model = random_transformer(np.float64, seed=2)
    src, mask = sources(12, seed=3)
    cached = beam_search(model, src, mask, 4, 10, BOS, EOS, use_cache=True)
    recomputed = beam_search(model, src, mask, 4, 10, BOS, EOS, use_cache=False)
    np.testing.assert_array_equal(cached[0], recomputed[0])
    np.testing.assert_allclose(cached[1], recomputed[1], rtol=0, atol=1e-10)


def test_beams_are_best_first_their_scores_are_dec15_and_padding_follows_eos():
    model = random_transformer(np.float64, seed=4)
    src, mask = sources(15, seed=5)
    ids, scores = beam_search(model, src, mask, 3, 10, BOS, EOS, alpha=0.8)
    assert (np.diff(scores, axis=1) <= 0).all()
    for k in range(3):  # the search's scores are the teacher-forced (dec.15) of what it returns
        _, rescored = sequence_scores(model, src, mask, ids[:, k], BOS, EOS, alpha=0.8)
        np.testing.assert_allclose(scores[:, k], rescored, rtol=0, atol=1e-10)
    for row in ids.reshape(-1, 10).tolist():
        if EOS in row:
            assert set(row[row.index(EOS) + 1:]) <= {PAD} and PAD not in row[:row.index(EOS)]
    assert len({tuple(r) for r in ids[0].tolist()}) == 3  # three different hypotheses


def test_a_batch_of_sources_of_different_lengths_decodes_as_each_alone():
    model = random_transformer(np.float64, seed=6)
    src, mask = sources(5, seed=7)
    ids, scores = beam_search(model, src, mask, 3, 10, BOS, EOS)
    for b in range(5):
        n = int(mask[b].sum())
        alone_ids, alone_scores = beam_search(model, src[b:b + 1, :n], mask[b:b + 1, ..., :n], 3, 10, BOS, EOS)
        np.testing.assert_array_equal(alone_ids[0], ids[b])
        np.testing.assert_allclose(alone_scores[0], scores[b], rtol=0, atol=1e-10)


@pytest.mark.parametrize("settings, message", [
    ({"beam_size": 0}, r"beam_size: expected an integer >= 1, received 0"),
    ({"alpha": -0.5}, r"alpha \(the length penalty\): expected a finite number >= 0, received -0.5"),
    ({"max_len": 0}, r"max_len: expected an integer >= 1, received 0"),
])
def test_bad_settings_are_refused_naming_expected_and_received(settings, message):
    args = {"beam_size": 2, "max_len": 5, "alpha": 0.6, **settings}
    with pytest.raises(ValueError, match=message):
        beam_search(BigramModel(GREEDY_MISSES), np.ones((1, 2), dtype=np.int64), None, args["beam_size"],
                    args["max_len"], BOS, EOS, alpha=args["alpha"])


def test_beam_search_never_loses_to_greedy_on_held_out_sources():
    run, _ = trained("reverse")  # shared with test_results.py: trained once per session
    model, held_out = run.model, run.held_out
    src, mask, max_len = held_out.src, held_out.src_mask, held_out.tgt_out.shape[1]
    greedy = greedy_decode(model, src, mask, max_len, BOS, EOS)
    for alpha in (0.0, 0.6):
        _, greedy_score = sequence_scores(model, src, mask, greedy, BOS, EOS, alpha)
        for beam_size in (2, 4):
            ids, _ = beam_search(model, src, mask, beam_size, max_len, BOS, EOS, alpha=alpha)
            _, beam_score = sequence_scores(model, src, mask, ids[:, 0], BOS, EOS, alpha)
            assert (beam_score >= greedy_score - 1e-6).all(), (alpha, beam_size)
