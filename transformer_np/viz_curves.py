"""Plots of curves and tables: positional encodings, learning-rate schedules, the label-smoothed
target, loss curves. Part of ``transformer_np.viz`` (import them from there).

matplotlib is imported inside the functions only, so importing this module (or ``viz``) costs
nothing and works without it. Figures are ``matplotlib.figure.Figure`` objects, not pyplot
figures: no global state, no display needed, safe on a headless machine. In a notebook a
Figure left as the last expression of a cell is shown.
"""

from pathlib import Path

import numpy as np

from .backend import to_numpy
from .validate import check_ndim

# Font sizes (points) for figures projected in a lecture hall: readable from the back rows.
FONT = {"ticks": 12, "label": 13, "title": 14, "note": 12}


def new_figure(figsize):
    """A pyplot-free Figure with constrained layout (colour bars and titles do not overlap)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _style(ax, xlabel=None, ylabel=None, title=None):
    """Axis titles and tick labels at the lecture-hall sizes of FONT."""
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=FONT["label"])
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=FONT["label"])
    if title is not None:
        ax.set_title(title, fontsize=FONT["title"])
    ax.tick_params(labelsize=FONT["ticks"])


def finish(fig, path=None, dpi=120):
    """Save ``fig`` as a PNG at ``path`` (creating its folder) when a path is given; return ``fig``."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def as_array(x, ndim, name, shape_doc):
    """A float64 NumPy copy of ``x`` (NumPy or CuPy) after checking its number of dimensions."""
    x = to_numpy(x)
    check_ndim(x, ndim, name, shape_doc)
    return x.astype(np.float64)


def plot_positional_encoding(pe, dims=(0, 1, 4, 5, 10, 11), path=None, title=None, group_sin_cos=False):
    """The (T, D) table of positional encodings as a heatmap, and a few of its columns as curves.

    ``pe``: the table, e.g. ``sinusoidal_table(T, D)`` or ``SinusoidalPositionalEncoding(D, T).pe``
    (pos.1, pos.2), or a learned table. ``dims``: the columns drawn as curves against the position
    (for the sinusoids column 2i is a sine and 2i + 1 the cosine of the same frequency, whose
    wavelength 2 pi 10000^(2i/D) grows with i: pick columns of wavelength well above one position
    for curves that look like curves, not like a sampled zigzag). The legend sits below the
    curves, never over them. ``group_sin_cos=True`` draws the heatmap's even (sine) columns on the
    left and the odd (cosine) columns on the right, each half in order of frequency: neighbouring
    columns are then neighbouring frequencies, and the high-frequency end reads as waves instead
    of the checkerboard that interleaved sines and cosines make. Axes: the heatmap, the curves,
    the heatmap's colour bar.
    """
    pe = as_array(pe, 2, "pe", "(T, D): one row per position")
    T, D = pe.shape
    bad = [d for d in dims if not 0 <= d < D]
    if bad:
        raise ValueError(f"dims: expected columns of the table, in [0, {D}), received {bad}")
    fig = new_figure((13, 5.2))
    heat, curves = fig.subplots(1, 2, width_ratios=(1.1, 1))
    order = np.r_[0:D:2, 1:D:2] if group_sin_cos else np.arange(D)
    # antialiased: a table wider than the panel is averaged down, not decimated into a moire
    image = heat.imshow(pe[:, order], aspect="auto", cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="antialiased")
    if group_sin_cos:
        half = (D + 1) // 2
        heat.axvline(half - 0.5, color="black", linewidth=2)
        heat.set_xticks([(half - 1) / 2, half + (D - half - 1) / 2], ["sines: columns 2i", "cosines: columns 2i + 1"])
        xlabel = "in each half i = 0, 1, ...: the wavelength grows to the right"
    else:
        xlabel = "encoding dimension (column 2i: sine, 2i + 1: cosine)"
    _style(heat, xlabel, "position in the sequence", f"the table: {T} positions x {D} dimensions")
    bar = fig.colorbar(image, ax=heat)
    bar.set_label("value added to the embedding", fontsize=FONT["label"])
    bar.ax.tick_params(labelsize=FONT["ticks"])
    for d in dims:
        curves.plot(np.arange(T), pe[:, d], label=f"dim {d} ({'sin' if d % 2 == 0 else 'cos'})", linewidth=2)
    _style(curves, "position in the sequence", "encoding value", "a few dimensions against the position")
    curves.legend(fontsize=FONT["note"], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=min(len(dims), 2),
                  frameon=False)
    if title:
        fig.suptitle(title, fontsize=FONT["title"])
    return finish(fig, path)


def plot_lr_schedule(schedule, steps, title=None, path=None):
    """The learning rate against the update step (counted from 1, as the trainer asks for it).

    ``schedule``: ``step -> lr`` (e.g. ``partial(noam_lr, d_model=512, warmup=4000)``), or a dict
    ``{label: schedule}`` to compare several on one axes. ``steps``: the last step drawn (an int,
    steps 1..steps) or a sequence of steps. The peak of each curve is marked with a dot and
    stated in the legend, which sits below the axes: no note is written over a curve.
    ``title`` may hold matplotlib mathtext (``$d^{-0.5}$``), typeset.
    """
    schedules = dict(schedule) if isinstance(schedule, dict) else {None: schedule}
    xs = np.arange(1, int(steps) + 1) if np.ndim(steps) == 0 else np.asarray(steps)
    if xs.size == 0:
        raise ValueError(f"steps: expected at least one step, received {steps!r}")
    fig = new_figure((8, 5.2))
    ax = fig.subplots()
    for label, fn in schedules.items():
        lrs = np.array([fn(int(s)) for s in xs])
        top = int(lrs.argmax())
        peak = f"peak {lrs[top]:.3g} at step {xs[top]}"
        (line,) = ax.plot(xs, lrs, linewidth=2, label=peak if label is None else f"{label}: {peak}")
        ax.plot(xs[top], lrs[top], "o", markersize=8, color=line.get_color())
    _style(ax, "update step", "learning rate", title or "learning-rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.yaxis.get_offset_text().set_fontsize(FONT["ticks"])
    ax.legend(fontsize=FONT["note"], loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return finish(fig, path)


def smoothed_target(vocab_size, target, smoothing, ignore_index=None):
    """q = (1 - eps) onehot(target) + eps / V over the V classes (ce.2), as CrossEntropyLoss uses it;
    all zeros when ``target == ignore_index`` (that position has no target and adds no loss)."""
    if ignore_index is not None and target == ignore_index:
        return np.zeros(vocab_size)
    if not 0 <= target < vocab_size:
        raise ValueError(f"target: expected a class in [0, {vocab_size}), received {target}")
    q = np.full(vocab_size, smoothing / vocab_size)
    q[target] += 1.0 - smoothing
    return q


def plot_label_smoothing(vocab_size, target, smoothing, ignore_index=None, path=None):
    """Bars of the hard one-hot target and the label-smoothed target distribution q (ce.2), on a
    linear scale (left) and a log scale (right), where the small mass eps / V of every other class
    is as visible as the large one.

    The smoothed target keeps 1 - eps + eps / V on the right class and gives eps / V to every
    class, the padding class included (PyTorch's rule, which CrossEntropyLoss follows).
    ``ignore_index`` names the padding class on the axis; if ``target`` is it, the position is
    ignored and the plot shows no target at all. Axes: linear, log.
    """
    q = smoothed_target(vocab_size, target, smoothing, ignore_index)
    hard = smoothed_target(vocab_size, target, 0.0, ignore_index)
    fig = new_figure((13, 5))
    linear, log = fig.subplots(1, 2)
    classes = np.arange(vocab_size)
    names = [f"{c}\n(pad)" if c == ignore_index else str(c) for c in classes]
    small = smoothing / vocab_size
    for ax in (linear, log):
        ax.bar(classes - 0.2, hard, width=0.4, label="one-hot target", color="0.65")
        ax.bar(classes + 0.2, q, width=0.4, label=f"smoothed target, eps = {smoothing:g}", color="tab:blue")
        ax.set_xticks(classes, names)
        _style(ax, "class (token id)")
    linear.set_ylim(0, 1.5)  # room above the bars for the note and, above it, the legend
    _style(linear, ylabel="target probability q", title="linear scale")
    if ignore_index is not None and target == ignore_index:
        fig.suptitle(f"target {target} = ignore_index: no target, this position adds no loss", fontsize=FONT["title"])
        log.set_ylim(0, 1.5)
        _style(log, title="(nothing to show)")
    else:
        fig.suptitle(f"label smoothing (ce.2): target class {target}, every class also gets eps / V = {small:.3g}",
                     fontsize=FONT["title"])
        top = max(hard[target], q[target])  # both bars of the target class end below this
        linear.annotate(f"q = 1 - eps + eps / V = {q[target]:.3g}", (target + 0.2, top), xytext=(0, 10),
                        textcoords="offset points", ha="center", va="bottom", fontsize=FONT["note"])
        log.set_yscale("log")
        log.set_ylim(small / 5, 5.0)
        log.axhline(small, color="tab:red", linestyle="--", linewidth=1.2)
        log.annotate(f"eps / V = {small:.3g}", (0.02, small), xycoords=("axes fraction", "data"), xytext=(0, 8),
                     textcoords="offset points", va="bottom", color="tab:red", fontsize=FONT["note"])
        _style(log, ylabel="target probability q (log scale)", title="log scale: the small mass made visible")
    linear.legend(fontsize=FONT["note"], loc="upper right", frameon=False)
    return finish(fig, path)


def moving_average(values, window):
    """The mean of the last ``window`` values at each point (fewer at the start)."""
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_loss_curves(history, path=None, title=None, window=20):
    """Training loss per step (raw, and its moving average over ``window`` steps) and the held-out
    loss at each evaluation, on a log scale; a second axes with the other held-out metrics
    (e.g. exact match) when the history has some.

    ``history``: ``Trainer.history`` (keys "step", "loss", "val_step", "val_<metric>").
    """
    if not isinstance(history, dict) or not history.get("loss"):
        raise ValueError("history: expected a Trainer's history with a non-empty 'loss' list, "
                         f"received {type(history).__name__} with keys {sorted(history) if isinstance(history, dict) else None}")
    steps = np.asarray(history.get("step") or np.arange(1, len(history["loss"]) + 1))
    val_steps = np.asarray(history.get("val_step", []))
    # "val_train_loss" (a language model's loss on evaluation batches of the training split) is
    # a loss, drawn beside the held-out loss; the other "val_" keys are held-out metrics
    losses = ("val_step", "val_loss", "val_train_loss")
    metrics = sorted(k for k in history if k.startswith("val_") and k not in losses and history[k])
    fig = new_figure((13, 5) if metrics else (7.5, 5))
    axes = fig.subplots(1, 2 if metrics else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(steps, history["loss"], color="0.75", linewidth=0.8, label="training loss (each step)")
    ax.plot(steps, moving_average(history["loss"], window), label=f"training loss ({window}-step mean)")
    if history.get("val_loss"):
        ax.plot(val_steps, history["val_loss"], "o-", label="held-out loss")
    if history.get("val_train_loss"):
        ax.plot(val_steps, history["val_train_loss"], "s--", label="loss on evaluation batches of the training split")
    ax.set_yscale("log")
    _style(ax, "update step", "cross-entropy loss (log scale)", title or "loss during training")
    ax.legend(fontsize=FONT["note"])
    if metrics:
        for key in metrics:
            axes[1].plot(val_steps, history[key], "o-", label=key[len("val_"):].replace("_", " "))
        _style(axes[1], "update step", "held-out metric", "held-out evaluation")
        axes[1].legend(fontsize=FONT["note"])
    return finish(fig, path)
