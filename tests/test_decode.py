"""Greedy decoding: stops at EOS, pads after it, matches the model's own forward, any batch order."""

import numpy as np
import pytest
from helpers import StubModel

from transformer_np.data import BOS, EOS, PAD, copy_task, make_seq2seq_batch
from transformer_np.decode import (
    exact_match,
    greedy_decode,
    token_accuracy,
)
from transformer_np.generate import generate
from transformer_np.layers.masks import causal_mask
from transformer_np.models.gpt import GPT
from transformer_np.models.transformer import Transformer

V = 9


class ScriptedModel(StubModel):
    """An encoder-decoder stub: row b writes token 3 + t at output position t, and EOS at position ends[b]."""

    def __init__(self, ends):
        self.ends, self.decode_calls = np.asarray(ends), 0

    def encode(self, src, src_mask):
        assert not self.training
        return np.zeros(src.shape + (2,), dtype=np.float32)

    def decode(self, tgt_in, memory, src_mask, tgt_mask):
        self.decode_calls += 1
        B, t = tgt_in.shape
        assert tgt_mask.shape == (1, 1, t, t) and tgt_in[:, 0].tolist() == [BOS] * B
        next_ids = np.where(self.ends == t - 1, EOS, 3 + t - 1)  # output position t - 1
        logits = np.zeros((B, t, V), dtype=np.float32)
        logits[np.arange(B), -1, next_ids] = 1.0
        return logits


def test_stops_each_row_at_its_eos_and_pads_after_it():
    model = ScriptedModel(ends=[0, 2, 1])
    out = greedy_decode(model, np.ones((3, 4), dtype=np.int64), None, max_len=6, bos=BOS, eos=EOS)
    assert out.tolist() == [
        [EOS, PAD, PAD, PAD, PAD, PAD],
        [3, 4, EOS, PAD, PAD, PAD],
        [3, EOS, PAD, PAD, PAD, PAD],
    ]
    assert model.decode_calls == 3  # stopped once every row had its EOS
    assert model.training  # the mode it was in comes back


def test_without_eos_or_before_it_decodes_max_len_tokens():
    model = ScriptedModel(ends=[9, 1])
    out = greedy_decode(model, np.ones((2, 3), dtype=np.int64), None, max_len=4, bos=BOS, eos=EOS)
    assert out.tolist() == [[3, 4, 5, 6], [3, EOS, PAD, PAD]]
    out = greedy_decode(ScriptedModel(ends=[1]), np.ones((1, 3), dtype=np.int64), None, max_len=3, bos=BOS, eos=None)
    assert out.tolist() == [[3, EOS, 5]]  # eos=None: EOS is an ordinary token


@pytest.fixture(scope="module")
def seq2seq():
    model = Transformer(src_vocab=13, tgt_vocab=13, d_model=24, n_heads=2, n_layers=1, d_ff=40, dropout=0.3, max_len=16,
                        rng=np.random.default_rng(3))
    sources, targets = copy_task(np.random.default_rng(4), 6, min_len=2, max_len=7)
    return model, make_seq2seq_batch(sources, targets)


def test_agrees_with_a_teacher_forced_forward_on_its_own_output(seq2seq):
    model, batch = seq2seq
    out = greedy_decode(model, batch.src, batch.src_mask, max_len=9, bos=BOS, eos=EOS)
    model.eval()
    tgt_in = np.concatenate([np.full((6, 1), BOS), out[:, :-1]], axis=1)
    logits = model.forward(batch.src, tgt_in, batch.src_mask, causal_mask(9))
    model.train()
    argmax = logits.argmax(-1)
    for b in range(6):
        n = next((t + 1 for t in range(9) if out[b, t] == EOS), 9)  # up to and including EOS
        assert out[b, :n].tolist() == argmax[b, :n].tolist()
        assert (out[b, n:] == PAD).all()


def test_a_batch_decodes_as_each_row_alone(seq2seq):
    model, batch = seq2seq  # rows of different lengths: padding must not change any row's output
    out = greedy_decode(model, batch.src, batch.src_mask, max_len=9, bos=BOS, eos=EOS)
    for b in range(6):
        n = int(batch.src_mask[b].sum())
        alone = greedy_decode(model, batch.src[b:b + 1, :n], batch.src_mask[b:b + 1, :, :, :n], 9, BOS, EOS)
        np.testing.assert_array_equal(alone[0], out[b])
    assert out.dtype == batch.src.dtype and model.training


def test_greedy_generation_appends_the_argmax_of_the_last_position():
    model = GPT(vocab_size=5, block_size=8, n_layers=1, n_heads=2, d_model=12, dropout=0.2,
                rng=np.random.default_rng(0))
    prompt = np.array([[1, 2, 3], [4, 0, 0]])
    out = generate(model, prompt, 4, temperature=0)
    assert out.shape == (2, 7) and (out[:, :3] == prompt).all()
    model.eval()
    for t in range(3, 7):
        assert (model.forward(out[:, :t])[:, -1].argmax(-1) == out[:, t]).all()


def test_exact_match_and_token_accuracy():
    target = np.array([[5, 6, EOS, PAD], [7, EOS, PAD, PAD], [8, 9, 4, EOS]])
    pred = np.array([[5, 6, EOS], [7, 7, EOS], [8, 9, 4]])  # right; one wrong token; EOS missing
    assert exact_match(pred, target) == pytest.approx(1 / 3)
    assert token_accuracy(pred, target) == pytest.approx(7 / 9)  # 3 + 1 + 3 of 9 real target positions
    with pytest.raises(ValueError, match=r"pred: expected 3 rows \(as target\), received shape \(2, 3\)"):
        exact_match(pred[:2], target)
