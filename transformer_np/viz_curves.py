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


def new_figure(figsize):
    """A pyplot-free Figure with constrained layout (colour bars and titles do not overlap)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


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


def plot_positional_encoding(pe, dims=(0, 1, 4, 5, 10, 11), path=None, title=None):
    """The (T, D) table of positional encodings as a heatmap, and a few of its columns as curves.

    ``pe``: the table, e.g. ``sinusoidal_table(T, D)`` or ``SinusoidalPositionalEncoding(D, T).pe``
    (pos.1, pos.2), or a learned table. ``dims``: the columns drawn as curves against the position;
    for the sinusoids, column 2i is a sine and 2i + 1 the cosine of the same frequency, whose
    wavelength grows with i. Axes: the heatmap, the curves, the heatmap's colour bar.
    """
    pe = as_array(pe, 2, "pe", "(T, D): one row per position")
    T, D = pe.shape
    bad = [d for d in dims if not 0 <= d < D]
    if bad:
        raise ValueError(f"dims: expected columns of the table, in [0, {D}), received {bad}")
    fig = new_figure((11, 4))
    heat, curves = fig.subplots(1, 2, width_ratios=(1.1, 1))
    image = heat.imshow(pe, aspect="auto", cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    heat.set_xlabel("encoding dimension (column 2i: sine, 2i + 1: cosine)")
    heat.set_ylabel("position in the sequence")
    heat.set_title(f"positional encodings, {T} positions x {D} dimensions")
    fig.colorbar(image, ax=heat, label="value added to the embedding")
    for d in dims:
        curves.plot(np.arange(T), pe[:, d], label=f"dim {d} ({'sin' if d % 2 == 0 else 'cos'})")
    curves.set_xlabel("position in the sequence")
    curves.set_ylabel("encoding value")
    curves.set_title("a few dimensions against the position")
    curves.legend(fontsize="small", loc="lower left", ncols=2)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def plot_lr_schedule(schedule, steps, title=None, path=None):
    """The learning rate against the update step (counted from 1, as the trainer asks for it).

    ``schedule``: ``step -> lr`` (e.g. ``partial(noam_lr, d_model=512, warmup=4000)``), or a dict
    ``{label: schedule}`` to compare several on one axes. ``steps``: the last step drawn (an int,
    steps 1..steps) or a sequence of steps. The peak of each curve is marked.
    """
    schedules = dict(schedule) if isinstance(schedule, dict) else {None: schedule}
    xs = np.arange(1, int(steps) + 1) if np.ndim(steps) == 0 else np.asarray(steps)
    if xs.size == 0:
        raise ValueError(f"steps: expected at least one step, received {steps!r}")
    fig = new_figure((6.5, 4))
    ax = fig.subplots()
    for label, fn in schedules.items():
        lrs = np.array([fn(int(s)) for s in xs])
        (line,) = ax.plot(xs, lrs, label=label)
        top = int(lrs.argmax())
        ax.plot(xs[top], lrs[top], "o", color=line.get_color())
        ax.annotate(f"peak {lrs[top]:.3g} at step {xs[top]}", (xs[top], lrs[top]), textcoords="offset points",
                    xytext=(6, 4), fontsize="small")
    ax.set_xlabel("update step")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "learning-rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if len(schedules) > 1 or None not in schedules:
        ax.legend(fontsize="small")
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
    """Bars of the hard one-hot target and the label-smoothed target distribution q (ce.2).

    The smoothed target keeps 1 - eps + eps / V on the right class and gives eps / V to every
    class, the padding class included (PyTorch's rule, which CrossEntropyLoss follows).
    ``ignore_index`` names the padding class on the axis; if ``target`` is it, the position is
    ignored and the plot shows no target at all.
    """
    q = smoothed_target(vocab_size, target, smoothing, ignore_index)
    hard = smoothed_target(vocab_size, target, 0.0, ignore_index)
    fig = new_figure((7, 3.6))
    ax = fig.subplots()
    classes = np.arange(vocab_size)
    ax.bar(classes - 0.2, hard, width=0.4, label="one-hot target", color="0.7")
    ax.bar(classes + 0.2, q, width=0.4, label=f"smoothed target, eps = {smoothing:g}")
    ax.set_xticks(classes, [f"{c}\n(pad)" if c == ignore_index else str(c) for c in classes])
    ax.set_xlabel("class (token id)")
    ax.set_ylabel("target probability q")
    ax.set_ylim(0, 1.05)
    if ignore_index is not None and target == ignore_index:
        ax.set_title(f"target {target} = ignore_index: no target, this position adds no loss")
    else:
        ax.set_title(f"label smoothing: target class {target}, each class gets eps / V = {smoothing / vocab_size:.3g}")
        ax.annotate(f"{q[target]:.3g}", (target + 0.2, q[target]), ha="center", va="bottom", fontsize="small")
    ax.legend(fontsize="small", loc="upper right")
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
    fig = new_figure((11, 4) if metrics else (6.5, 4))
    axes = fig.subplots(1, 2 if metrics else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(steps, history["loss"], color="0.75", linewidth=0.8, label="training loss (each step)")
    ax.plot(steps, moving_average(history["loss"], window), label=f"training loss ({window}-step mean)")
    if history.get("val_loss"):
        ax.plot(val_steps, history["val_loss"], "o-", label="held-out loss")
    if history.get("val_train_loss"):
        ax.plot(val_steps, history["val_train_loss"], "s--", label="loss on evaluation batches of the training split")
    ax.set_yscale("log")
    ax.set_xlabel("update step")
    ax.set_ylabel("cross-entropy loss (log scale)")
    ax.set_title(title or "loss during training")
    ax.legend(fontsize="small")
    if metrics:
        for key in metrics:
            axes[1].plot(val_steps, history[key], "o-", label=key[len("val_"):].replace("_", " "))
        axes[1].set_xlabel("update step")
        axes[1].set_ylabel("held-out metric")
        axes[1].set_title("held-out evaluation")
        axes[1].legend(fontsize="small")
    return finish(fig, path)
