"""Every figure of the README, regenerated: ``python -m transformer_np plot --all [--out figures]``.

    make_all_figures("figures")              trains the demo model (about as long as the demo)
    make_all_figures("/tmp/f", quick=True)   a few training steps: the same files, for tests

The demo model is trained as ``python -m transformer_np demo`` trains it (the reverse recipe,
seed 0, DEMO_STEPS steps), with evaluations every 100 steps so that the loss curve has held-out
points (evaluation draws nothing from the training generator, so the trained weights are the
demo's).
"""

from pathlib import Path

DEMO_STEPS = 800
FIGURES = ("demo_attention", "attention_encoder_self", "attention_decoder_self", "attention_cross",
           "positional_encoding", "lr_schedule", "lr_warmup_cosine", "label_smoothing", "loss_curve")
QUICK = {"steps": 30, "eval_size": 40, "eval_every": 10}  # quick=True: the same pipeline in seconds


def decoded_inputs(src, pred, bos=1, eos=2):
    """The decoder input that makes the model produce ``pred`` again: BOS, then ``pred`` up to but
    not including its EOS. ``src``, ``pred``: 1-D ids of one example -> (src (1, S), tgt_in (1, T))."""
    import numpy as np

    pred = np.asarray(pred).reshape(-1)
    stop = next((i for i, v in enumerate(pred.tolist()) if v == eos), pred.size)
    return np.asarray(src).reshape(1, -1), np.concatenate([[bos], pred[:stop]])[None, :].astype(pred.dtype)


def example_attention(model, src, tgt_in, pad=0):
    """Run one example (src (1, S), tgt_in (1, T)) through the model in eval mode.

    Returns (maps, src_labels, tgt_labels): ``viz.attention_maps`` of that forward and tick
    labels for the source and the decoder input.
    """
    from . import viz
    from .decode import eval_mode
    from .layers.masks import causal_mask

    with eval_mode(model):
        model.forward(src, tgt_in, (src != pad)[:, None, None, :], causal_mask(tgt_in.shape[1]))
    return viz.attention_maps(model, 0), viz.token_labels(src[0]), viz.token_labels(tgt_in[0])


def plot_demo_attention(model, src, pred, path=None):
    """The demo's heatmap: the sharpest cross-attention head of the last decoder layer (the head
    whose rows peak highest on average) for one source ``src`` (S,) and its greedy output ``pred``."""
    from . import viz

    maps, src_labels, tgt_labels = example_attention(model, *decoded_inputs(src, pred))
    weights = maps["cross"][-1]  # (H, T, S)
    head = int(weights.max(axis=-1).mean(axis=-1).argmax())
    return viz.plot_attention(weights[head], tgt_labels, src_labels, path=path,
                              title=f"cross-attention, last decoder layer, head {head}",
                              xlabel="key: source token", ylabel="query: decoder input")


def longest_example(run):
    """Index of the first of the longest held-out sources (the demo plots this one)."""
    return int(run.held_out.src_mask.sum(axis=-1).argmax())


def make_all_figures(outdir="figures", quick=False, quiet=True, log=None):
    """Write every PNG the README shows into ``outdir``; returns the list of paths written.

    Progress: ``quiet=False`` draws the training's progress bar; ``log(line)`` (e.g. ``print``)
    is told what is being trained and each path as soon as it is written.

    demo_attention.png           the demo's heatmap (plot_demo_attention) of the trained reverse model
    attention_encoder_self.png   encoder self-attention, every layer and head, same example
    attention_decoder_self.png   decoder masked self-attention (nothing above the diagonal)
    attention_cross.png          cross-attention (the reversal shows as an anti-diagonal)
    positional_encoding.png      the sinusoidal table (pos.1, pos.2), d_model 512, and four slow columns
    lr_schedule.png              the paper's schedule (opt.14) for d_model 512 and 4000 warmup steps
    lr_warmup_cosine.png         the demo's own schedule: warmup then cosine decay (opt.16, opt.17)
    label_smoothing.png          the label-smoothed target (ce.2) for eps = 0.1
    loss_curve.png               the demo's training and held-out loss, and held-out accuracy
    """
    from functools import partial

    from . import viz
    from .decode import greedy_decode
    from .layers.positional import sinusoidal_table
    from .optim import noam_lr
    from .recipes import build_run

    out = Path(outdir)
    paths = []
    log = log or (lambda line: None)

    def save(fig, name):
        paths.append(out / name)
        viz.finish(fig, paths[-1])
        log(f"{paths[-1]}  ({len(paths)} of {len(FIGURES)})")

    settings = dict(QUICK) if quick else {"steps": DEMO_STEPS, "eval_every": 100}
    run = build_run("reverse", seed=0, **settings)  # eval_every is a recipe setting
    log(f"training the demo model (reverse, seed 0, {run.steps} steps), then writing {len(FIGURES)} figures "
        f"to {out}")
    history = run.trainer(quiet=quiet).fit(run.steps)
    held_out, model = run.held_out, run.model
    i = longest_example(run)
    pred = greedy_decode(model, held_out.src[i:i + 1], held_out.src_mask[i:i + 1], held_out.tgt_out.shape[1], 1, 2)
    save(plot_demo_attention(model, held_out.src[i], pred[0]), "demo_attention.png")

    src, tgt_in = decoded_inputs(held_out.src[i], pred[0])
    maps, src_labels, tgt_labels = example_attention(model, src, tgt_in)
    trained = f"reverse model after {run.steps} steps"
    kinds = {
        "encoder_self": ("encoder self-attention", src_labels, src_labels, "source token", "source token"),
        "decoder_self": ("decoder masked self-attention", tgt_labels, tgt_labels, "decoder input", "decoder input"),
        "cross": ("cross-attention", tgt_labels, src_labels, "decoder input", "source token"),
    }
    for key, (what, q_labels, k_labels, q_doc, k_doc) in kinds.items():
        fig = viz.plot_attention_layers(maps[key], f"{what}, {trained}", query_labels=q_labels,
                                        key_labels=k_labels, xlabel=f"key: {k_doc}", ylabel=f"query: {q_doc}")
        save(fig, f"attention_{key}.png")

    pe = sinusoidal_table(100, 512)  # the paper's d_model: neighbouring frequencies differ by 3.6 %
    save(viz.plot_positional_encoding(pe, dims=(96, 97, 160, 161), group_sin_cos=True), "positional_encoding.png")
    paper = {f"d_model {d}, warmup {w}": partial(noam_lr, d_model=d, warmup=w) for d, w in
             ((512, 4000), (512, 8000), (256, 4000))}
    formula = r"$\mathrm{lr}(s) = d_{\mathrm{model}}^{-1/2}\,\min(s^{-1/2},\; s\,w^{-3/2})$"
    save(viz.plot_lr_schedule(paper, 20000, f"the paper's schedule (opt.14): {formula}"), "lr_schedule.png")
    save(viz.plot_lr_schedule({"demo (reverse recipe)": run.schedule}, run.steps,
                              "linear warmup, then cosine decay to lr / 10"), "lr_warmup_cosine.png")
    save(viz.plot_label_smoothing(13, 5, 0.1, ignore_index=0), "label_smoothing.png")
    save(viz.plot_loss_curves(history, title=f"training the demo model ({trained})"), "loss_curve.png")
    return [str(p) for p in paths]
