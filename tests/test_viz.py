"""transformer_np.viz: every plot returns a Figure with the axes, titles and labels it promises and
saves a non-empty PNG; the attention read-outs have the documented keys and shapes."""

import subprocess
import sys
from functools import partial

import numpy as np
import pytest

from transformer_np import viz
from transformer_np.data import make_seq2seq_batch
from transformer_np.layers.positional import sinusoidal_table
from transformer_np.module import Module
from transformer_np.models.gpt import GPT
from transformer_np.models.transformer import Transformer
from transformer_np.optim import noam_lr, warmup_cosine_lr

pytest.importorskip("matplotlib")


def softmax_rows(rng, *shape):
    w = rng.random(shape)
    return w / w.sum(axis=-1, keepdims=True)


def assert_png(fig, path):
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importing_viz_does_not_import_matplotlib():
    code = "import sys, transformer_np.viz, transformer_np.figures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_plot_attention_has_token_labels_colour_bar_and_titles(tmp_path):
    w = softmax_rows(np.random.default_rng(0), 4, 6)
    path = tmp_path / "sub" / "attn.png"  # the folder is created
    fig = viz.plot_attention(w, list("abcd"), list("ABCDEF"), title="one head", path=path)
    assert_png(fig, path)
    ax, bar = fig.axes
    assert ax.get_title() == "one head" and bar.get_ylabel() == "attention weight"
    assert "query" in ax.get_ylabel() and "key" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == list("ABCDEF")
    assert [t.get_text() for t in ax.get_yticklabels()] == list("abcd")
    np.testing.assert_allclose(ax.images[0].get_array(), w)


def test_plot_attention_refuses_wrong_rank_and_label_counts():
    w = softmax_rows(np.random.default_rng(0), 2, 4, 6)
    with pytest.raises(ValueError, match=r"weights: expected 2 dimensions \(Tq, Tk\).*received shape \(2, 4, 6\)"):
        viz.plot_attention(w)
    with pytest.raises(ValueError, match=r"weights: expected 3 dimensions \(H, Tq, Tk\).*received shape \(4, 6\)"):
        viz.plot_attention_heads(w[0])
    with pytest.raises(ValueError, match="key_labels: expected 6 labels.*received 5"):
        viz.plot_attention(w[0], key_labels=list("abcde"))
    with pytest.raises(ValueError, match=r"weights_per_layer\[1\]: expected 3 dimensions"):
        viz.plot_attention_layers([w, w[0]])


def test_plot_attention_heads_is_a_grid_with_one_colour_bar(tmp_path):
    w = softmax_rows(np.random.default_rng(1), 5, 3, 4)
    fig = viz.plot_attention_heads(w, list("xyz"), list("abcd"), path=tmp_path / "heads.png")
    assert_png(fig, tmp_path / "heads.png")
    assert len(fig.axes) == 5 + 1  # 5 heads (the 3 unused cells of the 2 x 4 grid removed), 1 colour bar
    assert [a.get_title() for a in fig.axes[:5]] == [f"head {h}" for h in range(5)]
    assert "5 heads" in fig.get_suptitle()


def test_plot_attention_layers_is_layers_by_heads(tmp_path):
    w = softmax_rows(np.random.default_rng(2), 2, 3, 3, 4)
    fig = viz.plot_attention_layers(list(w), "overview", tmp_path / "layers.png", query_labels=list("xyz"))
    assert_png(fig, tmp_path / "layers.png")
    assert len(fig.axes) == 2 * 3 + 1
    assert fig.axes[5].get_title() == "layer 1, head 2" and fig.get_suptitle() == "overview"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list("xyz")


def test_plot_positional_encoding(tmp_path):
    fig = viz.plot_positional_encoding(sinusoidal_table(30, 16), dims=(0, 1, 6), path=tmp_path / "pe.png")
    assert_png(fig, tmp_path / "pe.png")
    heat, curves, bar = fig.axes  # the colour bar's axes is added last
    assert bar.get_ylabel() == "value added to the embedding"
    assert heat.get_ylabel() == "position in the sequence" and "dimension" in heat.get_xlabel()
    assert [line.get_label() for line in curves.get_lines()] == ["dim 0 (sin)", "dim 1 (cos)", "dim 6 (sin)"]
    np.testing.assert_allclose(curves.get_lines()[1].get_ydata(), np.cos(np.arange(30)))  # (pos.2), i = 0
    legend = curves.get_legend()  # below the curves, not over them
    fig.canvas.draw()
    assert legend.get_window_extent().y1 < curves.get_window_extent().y0
    np.testing.assert_allclose(heat.images[0].get_array(), sinusoidal_table(30, 16))
    grouped = viz.plot_positional_encoding(sinusoidal_table(30, 16), dims=(0,), group_sin_cos=True)
    shown = grouped.axes[0].images[0].get_array()  # sines (columns 0, 2, ...) left, cosines right
    np.testing.assert_allclose(shown, np.hstack([sinusoidal_table(30, 16)[:, 0::2], sinusoidal_table(30, 16)[:, 1::2]]))
    with pytest.raises(ValueError, match=r"dims: expected columns of the table, in \[0, 16\), received \[16\]"):
        viz.plot_positional_encoding(sinusoidal_table(30, 16), dims=(0, 16))


def test_plot_lr_schedule_marks_the_paper_peak(tmp_path):
    schedule = partial(noam_lr, d_model=512, warmup=400)
    fig = viz.plot_lr_schedule(schedule, 2000, path=tmp_path / "lr.png")
    assert_png(fig, tmp_path / "lr.png")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "update step" and ax.get_ylabel() == "learning rate"
    curve, peak = ax.get_lines()
    assert peak.get_xdata()[0] == 400  # (opt.15): the peak at step = warmup, lr = 1 / sqrt(512 * 400)
    assert peak.get_ydata()[0] == pytest.approx(1 / np.sqrt(512 * 400))
    assert ax.get_legend().get_texts()[0].get_text() == f"peak {1 / np.sqrt(512 * 400):.3g} at step 400"
    assert not ax.texts  # no note written over the curves: the peaks are stated in the legend
    both = {"noam": schedule, "cosine": partial(warmup_cosine_lr, max_lr=1e-3, warmup=100, total=2000)}
    fig = viz.plot_lr_schedule(both, range(1, 2001, 10), title=r"$d^{-1/2}$ typeset")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[0].startswith("noam: peak") and texts[1] == "cosine: peak 0.001 at step 101"
    fig.canvas.draw()  # the legend sits below the axes, off the curves
    assert fig.axes[0].get_legend().get_window_extent().y1 < fig.axes[0].get_window_extent().y0


def test_plot_label_smoothing_bars_are_the_smoothed_target(tmp_path):
    fig = viz.plot_label_smoothing(5, 2, 0.1, ignore_index=0, path=tmp_path / "ls.png")
    assert_png(fig, tmp_path / "ls.png")
    ax, log = fig.axes
    for axes in (ax, log):
        heights = [p.get_height() for p in axes.patches]
        np.testing.assert_allclose(heights[:5], [0, 0, 1, 0, 0])
        np.testing.assert_allclose(heights[5:], [0.02, 0.02, 0.92, 0.02, 0.02])  # 0.9 + 0.1 / 5 on class 2
    assert ax.get_xticklabels()[0].get_text() == "0\n(pad)" and ax.get_ylabel() == "target probability q"
    assert log.get_yscale() == "log" and log.get_ylim()[0] < 0.02 / 2  # eps / V = 0.02 stands well clear of the floor
    assert log.get_lines()[0].get_ydata()[0] == pytest.approx(0.02)  # the dashed line at eps / V
    fig.canvas.draw()  # no label touches a bar: every note's box is clear of every bar's box
    notes = [t.get_window_extent() for a in fig.axes for t in a.texts] + [ax.get_legend().get_window_extent()]
    bars = [p.get_window_extent() for a in fig.axes for p in a.patches if p.get_height() > 0]
    assert notes and not any(n.overlaps(b) for n in notes for b in bars)
    fig = viz.plot_label_smoothing(5, 0, 0.1, ignore_index=0)
    assert "no loss" in fig.get_suptitle()
    assert sum(p.get_height() for p in fig.axes[0].patches) == 0


def test_plot_loss_curves_from_a_trainer_history(tmp_path):
    history = {"step": [1, 2, 3, 4], "loss": [2.0, 1.0, 0.5, 0.25], "lr": [1e-3] * 4, "val_step": [2, 4],
               "val_loss": [1.2, 0.3], "val_exact_match": [0.1, 0.8]}
    fig = viz.plot_loss_curves(history, path=tmp_path / "loss.png")
    assert_png(fig, tmp_path / "loss.png")
    loss_ax, metric_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and "loss" in loss_ax.get_ylabel()
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["training loss (each step)", "training loss (20-step mean)", "held-out loss"]
    np.testing.assert_allclose(loss_ax.get_lines()[1].get_ydata(), [2.0, 1.5, 3.5 / 3, 3.75 / 4])
    assert [line.get_label() for line in metric_ax.get_lines()] == ["exact match"]
    no_val = viz.plot_loss_curves({"step": [1, 2], "loss": [1.0, 0.5]})
    assert len(no_val.axes) == 1
    # a language model's evaluation loss on the training split is a loss, not a held-out metric
    lm = viz.plot_loss_curves({"step": [1, 2], "loss": [1.0, 0.5], "val_step": [2], "val_loss": [0.7],
                               "val_train_loss": [0.6]})
    assert len(lm.axes) == 1 and lm.axes[0].get_lines()[-1].get_ydata().tolist() == [0.6]
    with pytest.raises(ValueError, match="history: expected a Trainer's history with a non-empty 'loss' list"):
        viz.plot_loss_curves({"loss": []})


def test_attention_maps_of_a_transformer():
    rng = np.random.default_rng(3)
    model = Transformer(src_vocab=13, tgt_vocab=13, d_model=12, n_heads=3, n_layers=2, d_ff=20, dropout=0.0, rng=rng)
    with pytest.raises(ValueError, match="expected a forward pass first"):
        viz.attention_maps(model)
    batch = make_seq2seq_batch([np.array([3, 4, 5, 6, 7]), np.array([8, 9])], [np.array([5, 4, 3]), np.array([9])])
    model.forward(batch.src, batch.tgt_in, batch.src_mask, batch.tgt_mask)
    maps = viz.attention_maps(model, example_index=1)
    assert sorted(maps) == ["cross", "decoder_self", "encoder_self"]
    assert [m.shape for m in maps["encoder_self"]] == [(3, 5, 5)] * 2
    assert [m.shape for m in maps["decoder_self"]] == [(3, 4, 4)] * 2
    assert [m.shape for m in maps["cross"]] == [(3, 4, 5)] * 2
    np.testing.assert_array_equal(maps["cross"][0][:, :, 2:], 0.0)  # example 1 has 2 source tokens
    assert np.triu(maps["decoder_self"][1][0], k=1).max() == 0.0  # causal: nothing above the diagonal
    np.testing.assert_allclose(maps["cross"][1].sum(axis=-1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="example_index: expected an index into the last batch of 2, received 2"):
        viz.attention_maps(model, example_index=2)


def test_attention_maps_of_a_gpt_and_the_bertviz_format():
    model = GPT(vocab_size=7, block_size=9, n_layers=3, n_heads=2, d_model=8, rng=np.random.default_rng(4))
    model.forward(np.array([[1, 2, 3, 4, 5, 6]]))
    maps = viz.attention_maps(model)
    assert list(maps) == ["self"] and [m.shape for m in maps["self"]] == [(2, 6, 6)] * 3
    bert = viz.to_bertviz(maps["self"])
    assert [a.shape for a in bert] == [(1, 2, 6, 6)] * 3 and bert[0].dtype == np.float32
    np.testing.assert_allclose(bert[2][0], maps["self"][2], rtol=1e-6)
    with pytest.raises(ValueError, match=r"expected a batch of one, \(1, H, Tq, Tk\), received shape \(2, 2, 6, 6\)"):
        viz.to_bertviz([np.zeros((2, 2, 6, 6))])
    with pytest.raises(TypeError, match="model: expected a model with attention layers .* received Linear"):
        from transformer_np.layers.linear import Linear

        viz.attention_maps(Linear(2, 2))


def test_alignment_positions_and_attention_on_positions():
    pos = viz.alignment_positions([3, 1], T=4, reverse=True)
    np.testing.assert_array_equal(pos, [[2, 1, 0, -1], [0, -1, -1, -1]])
    np.testing.assert_array_equal(viz.alignment_positions([3], T=4), [[0, 1, 2, -1]])
    w = np.zeros((2, 2, 4, 3))  # (B, H, Tq, Tk): head 0 follows pos exactly, head 1 looks at key 0
    for b in range(2):
        for q in range(4):
            w[b, 0, q, max(pos[b, q], 0)] = 1.0
    w[:, 1, :, 0] = 1.0
    np.testing.assert_allclose(viz.attention_on_positions(w, pos), [1.0, 2 / 4])  # 4 kept queries, 2 at key 0
    with pytest.raises(ValueError, match=r"positions: expected integers of shape \(2, 4\)"):
        viz.attention_on_positions(w, pos[:, :3])


def test_token_labels():
    assert viz.token_labels([1, 3, 12, 2, 0]) == ["BOS", "0", "9", "EOS", "PAD"]
    assert viz.token_labels(np.array([[0, 1]]), names={0: "a", 1: "b"}) == ["a", "b"]


def test_plot_all_writes_every_png(tmp_path, capsys):
    # the command line's `plot --all`, through make_all_figures with a few training steps
    from transformer_np.__main__ import main

    assert main(["plot", "--all", "--quick", "--quiet", "--out", str(tmp_path / "figs")]) == 0
    lines = capsys.readouterr().out.splitlines()  # what is trained, then each path as it is written
    assert lines[0].startswith("training the demo model (reverse, seed 0, 30 steps), then writing 9 figures")
    assert [line.split("  ")[1] for line in lines[1:]] == [f"({i} of 9)" for i in range(1, 10)]
    names = sorted(line.split()[0].rsplit("/", 1)[-1] for line in lines[1:])
    assert names == sorted(["demo_attention.png", "attention_encoder_self.png", "attention_decoder_self.png",
                            "attention_cross.png", "positional_encoding.png", "lr_schedule.png",
                            "lr_warmup_cosine.png", "label_smoothing.png", "loss_curve.png"])
    for name in names:
        assert (tmp_path / "figs" / name).stat().st_size > 1000


# -- lecture-hall options and any model (issue 17, issue 14) ----------------------------------------


def tick_texts(axis):
    return [t.get_text() for t in axis.get_ticklabels()]


def test_repeated_tokens_get_their_positions():
    assert viz.with_positions(["BOS", "0", "0", "9"]) == ["BOS (0)", "0 (1)", "0 (2)", "9 (3)"]
    assert viz.with_positions(["a", "b"]) == ["a", "b"]  # "auto": nothing repeats, nothing added
    assert viz.with_positions(["a", "b"], positions=True) == ["a (0)", "b (1)"]
    assert viz.with_positions(["a", "a"], positions=False) == ["a", "a"]
    with pytest.raises(ValueError, match="positions: expected True, False or 'auto', received 'yes'"):
        viz.plot_attention(np.eye(2), positions="yes")
    fig = viz.plot_attention(softmax_rows(np.random.default_rng(5), 3, 4), ["9", "9", "9"], ["0", "1", "0", "2"])
    ax = fig.axes[0]
    assert tick_texts(ax.yaxis) == ["9 (0)", "9 (1)", "9 (2)"] and tick_texts(ax.xaxis) == ["0 (0)", "1 (1)", "0 (2)", "2 (3)"]
    assert ax.xaxis.get_ticklabels()[0].get_fontsize() >= 12  # readable when projected


def test_the_colour_scale_can_be_set():
    w = softmax_rows(np.random.default_rng(6), 30, 30)  # a long context: every weight is small
    fixed = viz.plot_attention(w).axes[0].images[0]
    assert fixed.get_clim() == (0.0, 1.0)
    auto = viz.plot_attention(w, vmax=None).axes[0].images[0]
    assert auto.get_clim() == (0.0, pytest.approx(w.max()))
    both = viz.plot_attention(w, vmin=None, vmax=None, cmap="magma").axes[0].images[0]
    assert both.get_clim() == (pytest.approx(w.min()), pytest.approx(w.max())) and both.get_cmap().name == "magma"
    layers = [softmax_rows(np.random.default_rng(7), 2, 3, 3), 0.5 * softmax_rows(np.random.default_rng(8), 2, 3, 3)]
    fig = viz.plot_attention_layers(layers, vmax=None)  # one scale for every panel: the largest weight of all
    assert [a.images[0].get_clim()[1] for a in fig.axes[:4]] == [pytest.approx(max(map(np.max, layers)))] * 4
    assert "scale set" in fig.axes[-1].get_ylabel()


def test_long_axes_label_every_kth_token():
    w = softmax_rows(np.random.default_rng(9), 100, 100)
    ax = viz.plot_attention(w, [f"t{i}" for i in range(100)], [f"t{i}" for i in range(100)]).axes[0]
    assert len(ax.get_xticks()) == 34 and tick_texts(ax.xaxis)[:2] == ["t0", "t3"]  # every 3rd of 100: <= 40


class EncoderOnly(Module):
    """A model family viz has never heard of: an embedding, then a list of encoder layers."""

    def __init__(self, rng):
        from transformer_np.layers.embedding import Embedding
        from transformer_np.models.encoder import EncoderLayer

        self.embed = Embedding(11, 12, rng=rng)
        self.layers = [EncoderLayer(d_model=12, n_heads=3, d_ff=20, dropout=0.0, rng=rng) for _ in range(2)]

    def forward(self, ids):
        x = self.embed.forward(ids)
        for layer in self.layers:
            x = layer.forward(x)
        return x


def test_attention_maps_of_any_model_with_attention_layers():
    model = EncoderOnly(np.random.default_rng(10))
    model.forward(np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]))
    layers = viz.attention_layers(model)
    assert list(layers) == ["self"] and [name for name, _ in layers["self"]] == ["layers.0.self_attn.sublayer.",
                                                                                 "layers.1.self_attn.sublayer."]
    maps = viz.attention_maps(model, example_index=1)
    assert [m.shape for m in maps["self"]] == [(3, 5, 5)] * 2
    np.testing.assert_array_equal(maps["self"][1], layers["self"][1][1].attn_weights[1])
    tokens = ["the", "cat", "sat", "the", "mat"]
    fig = viz.plot_model_attention(model, tokens, vmax=None)
    assert len(fig.axes) == 2 * 3 + 1 and "self attention of EncoderOnly" in fig.get_suptitle()
    assert tick_texts(fig.axes[3].xaxis)[0] == "the (0)" and tick_texts(fig.axes[0].yaxis)[3] == "the (3)"
    heads = viz.plot_model_attention(model, tokens, layer=-1)
    assert len(heads.axes) == 3 + 1 and heads.get_suptitle().endswith("layer -1")
    with pytest.raises(ValueError, match=r"kind: expected one of \['self'\], received 'cross'"):
        viz.plot_model_attention(model, tokens, kind="cross")
    with pytest.raises(ValueError, match="layer: expected an index into the 2 layers of 'self', received 2"):
        viz.plot_model_attention(model, tokens, layer=2)


def test_attention_kinds_are_named_by_role_and_disambiguated_by_stack():
    model = Transformer(src_vocab=13, tgt_vocab=13, d_model=12, n_heads=3, n_layers=2, d_ff=20, dropout=0.0,
                        rng=np.random.default_rng(11))
    assert list(viz.attention_layers(model)) == ["encoder_self", "decoder_self", "cross"]
    # the inner ScaledDotProductAttention (it has attn_weights too) is not listed again
    assert all(type(layer).__name__ == "MultiHeadAttention" for found in viz.attention_layers(model).values()
               for _, layer in found)
    gpt = GPT(vocab_size=7, block_size=9, n_layers=2, n_heads=2, d_model=8, rng=np.random.default_rng(12))
    assert list(viz.attention_layers(gpt)) == ["self"]
    from transformer_np.viz_maps import _role  # an inner, generically named module keeps its outer role

    assert [_role(n) for n in ("decoder.layers.3.cross_attn.sublayer.attention.", "blocks.0.attn.", "h.1.mlp.")] == [
        "cross", "self", "self"]


def test_a_model_without_attention_is_refused():
    from transformer_np.models.rnn_seq2seq import GRUSeq2Seq

    with pytest.raises(TypeError, match="expected a model with attention layers.*received GRUSeq2Seq, which has none"):
        viz.attention_maps(GRUSeq2Seq(src_vocab=5, tgt_vocab=5, d_embed=3, hidden_size=4))
