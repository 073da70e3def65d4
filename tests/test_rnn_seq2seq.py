"""The recurrent encoder-decoder (models/rnn_seq2seq.py), its recipes, and the gradient probes (probes.py).

Its whole-model gradient check is in the catalogue (transformer_np/checks/rnn.py).
"""

import numpy as np
import pytest

from transformer_np.data import make_seq2seq_batch
from transformer_np.decode import exact_match, greedy_decode
from transformer_np.models.rnn_seq2seq import GRUSeq2Seq
from transformer_np.models.transformer import Transformer
from transformer_np.probes import accuracy_by_position, mean_by_position, source_gradient_norms
from transformer_np.recipes import build_run

V = 13


def model_and_batch(dtype=np.float64):
    model = GRUSeq2Seq(src_vocab=V, tgt_vocab=V, d_embed=5, hidden_size=7, rng=np.random.default_rng(0), dtype=dtype)
    batch = make_seq2seq_batch([np.array([3, 4, 5, 6]), np.array([7, 8]), np.array([9, 10, 11])],
                               [np.array([6, 5, 4, 3]), np.array([8]), np.array([11, 10, 9])])
    return model, batch


def test_forward_is_decode_of_encode_and_padding_changes_nothing():
    model, batch = model_and_batch()
    logits = model.forward(batch.src, batch.tgt_in, batch.src_mask, batch.tgt_mask)
    assert logits.shape == (3, 5, V)
    state = model.encode(batch.src, batch.src_mask)
    assert state.shape == (3, 7)
    np.testing.assert_array_equal(model.decode(batch.tgt_in, state), logits)
    for b, n in enumerate(batch.src_mask.reshape(3, -1).sum(axis=1)):
        alone = model.forward(batch.src[b:b + 1, :n], batch.tgt_in[b:b + 1])  # no padding, no mask
        np.testing.assert_allclose(alone[0], logits[b], rtol=1e-12)


def test_the_decoder_is_causal_without_a_mask():
    model, batch = model_and_batch()
    logits = model.forward(batch.src, batch.tgt_in, batch.src_mask)
    changed = batch.tgt_in.copy()
    changed[:, 3] = 12
    later = model.forward(batch.src, changed, batch.src_mask)
    np.testing.assert_array_equal(later[:, :3], logits[:, :3])  # positions before 3 never read it
    assert not np.allclose(later[:, 3:], logits[:, 3:])


def test_float32_stays_float32_and_backward_needs_a_forward():
    model, batch = model_and_batch(np.float32)
    with pytest.raises(RuntimeError, match="GRUSeq2Seq.backward\\(\\) called before forward"):
        model.backward(np.zeros((3, 5, V), dtype=np.float32))
    logits = model.forward(batch.src, batch.tgt_in, batch.src_mask)
    assert model.backward(np.ones_like(logits)) is None
    assert logits.dtype == np.float32
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}


def test_bad_input_fails_loudly():
    model, batch = model_and_batch()
    with pytest.raises(ValueError, match=r"src_mask: expected a boolean \(B, 1, 1, S\) = \(3, 1, 1, 4\)"):
        model.forward(batch.src, batch.tgt_in, batch.src_mask.reshape(3, 4))
    with pytest.raises(ValueError, match=r"tgt_in: expected batch size 3 \(the batch size of src\)"):
        model.forward(batch.src, batch.tgt_in[:2])
    with pytest.raises(ValueError, match=r"src: expected values in \[0, 13\), received values in \[2, 13\]"):
        model.forward(batch.src + 2, batch.tgt_in)


def test_learns_to_copy_short_sequences_with_the_trainer():
    run = build_run("gru-copy", steps=300, min_len=3, max_len=3, hidden_size=48, eval_size=200, eval_every=300)
    history = run.trainer(quiet=True).fit(run.steps)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert history["val_exact_match"][-1] > 0.9  # measured 1.0 with these settings
    held_out = run.held_out
    pred = greedy_decode(run.model, held_out.src, held_out.src_mask, held_out.tgt_out.shape[1], 1, 2)
    assert exact_match(pred, held_out.tgt_out) == history["val_exact_match"][-1]


def test_source_gradient_norms_are_the_gradient_of_each_source_vector():
    # Every source token id occurs once in the batch, and the source table is not shared: row
    # id of the source embedding's gradient is then exactly dL/dx at the one position holding id.
    model, batch = model_and_batch()
    model.train()
    norms = source_gradient_norms(model, batch)
    assert norms.shape == (3, 4) and model.training  # the mode is restored
    assert np.isnan(norms[1, 2:]).all() and np.isnan(norms[2, 3]) and not np.isnan(norms[0]).any()
    assert all(np.abs(p.grad).max() == 0 for p in model.parameters())  # zeroed again
    assert "backward" not in vars(model.src_embed)  # the recording wrapper is gone
    from transformer_np.loss import CrossEntropyLoss

    loss_fn = CrossEntropyLoss(ignore_index=0)
    model.eval()
    loss_fn.forward(model.forward(batch.src, batch.tgt_in, batch.src_mask), batch.tgt_out)
    model.backward(loss_fn.backward())
    rows = np.linalg.norm(model.src_embed.weight.grad[np.where(batch.src > 0, batch.src, 0)], axis=-1)
    real = batch.src > 0
    np.testing.assert_allclose(norms[real], rows[real], rtol=1e-12)


def test_source_gradient_norms_of_a_transformer_undo_the_embedding_scale():
    model = Transformer(src_vocab=V, tgt_vocab=V, d_model=8, n_heads=2, n_layers=1, d_ff=12, dropout=0.0, rng=np.random.default_rng(1),
                        dtype=np.float64)
    _, batch = model_and_batch()
    norms = source_gradient_norms(model, batch)
    from transformer_np.loss import CrossEntropyLoss

    loss_fn = CrossEntropyLoss(ignore_index=0)
    model.eval()
    loss_fn.forward(model.forward(batch.src, batch.tgt_in, batch.src_mask, batch.tgt_mask), batch.tgt_out)
    model.backward(loss_fn.backward())
    rows = np.linalg.norm(model.src_embed.weight.grad[batch.src], axis=-1) / np.sqrt(8)  # (emb.3): dE = sqrt(D) dY
    real = batch.src > 0
    np.testing.assert_allclose(norms[real], rows[real], rtol=1e-12)


def test_mean_and_accuracy_by_position_ignore_padding():
    norms = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]])
    np.testing.assert_allclose(mean_by_position(norms), [2.0, 2.0, np.nan])
    pred = np.array([[3, 4, 2], [5, 2, 0]])
    target = np.array([[3, 9, 2, 0], [5, 2, 0, 0]])
    np.testing.assert_allclose(accuracy_by_position(pred, target), [1.0, 0.5, 1.0, np.nan])
    with pytest.raises(ValueError, match=r"norms: expected a \(B, S\) array, received shape \(3,\)"):
        mean_by_position(np.ones(3))
