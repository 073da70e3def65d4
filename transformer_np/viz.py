"""Plots for the course: attention heatmaps here, curves in viz_curves.py (re-exported here).

    from transformer_np import viz
    model.eval(); model.forward(...)                 any model whose attention layers keep weights
    maps = viz.attention_maps(model)                 {"encoder_self": [(H, S, S) per layer], ...}
    viz.plot_attention(maps["cross"][-1][0], query_labels, key_labels, path="cross.png")
    viz.plot_attention_layers(maps["cross"])         every layer and head at once
    viz.plot_model_attention(model, tokens)          the same in one call, labels = token strings

Every plot function returns a ``matplotlib.figure.Figure`` (no pyplot state: it works headless)
and saves a PNG when given ``path`` (its folder is created). matplotlib is imported inside the
functions only: ``import transformer_np.viz`` does not import it.

The weights are the softmax P (attn.3) that an attention layer keeps after a forward
(``attn_weights``, (B, H, Tq, Tk), before dropout): row q is how query q spreads its attention
over the keys, so every row sums to 1 (0 for a row whose keys are all masked).

Heatmaps are drawn for a lecture hall: large tick labels; a position number beside each token
when a token repeats (``positions="auto"``: "9 (3)", "9 (7)"), so that two 9s can be told
apart; axis titles that say which axis holds the queries and which the keys; and a colour scale
that can be set (``vmin``, ``vmax``; ``vmax=None`` uses the largest weight shown, for long
contexts whose weights are all small and look black on the fixed 0-1 scale).
"""

import math

import numpy as np

from .backend import to_numpy
from .data.symbols import BOS, EOS, NUM_SPECIAL, PAD
from .viz_curves import (  # noqa: F401  (re-exported: ``viz`` is the one place to import plots from)
    FONT,
    as_array,
    finish,
    moving_average,
    new_figure,
    plot_label_smoothing,
    plot_loss_curves,
    plot_lr_schedule,
    plot_positional_encoding,
    smoothed_target,
)

from .viz_maps import (  # noqa: F401  (re-exported)
    alignment_positions,
    attention_layers,
    attention_maps,
    attention_on_positions,
    export_attention,
    to_bertviz,
)

SPECIAL_NAMES = {PAD: "PAD", BOS: "BOS", EOS: "EOS"}
MAX_TICKS = 40  # beyond this many tokens on an axis, only every k-th one is labelled
QUERY, KEY = "query (attending)", "key (attended to)"


def token_labels(ids, names=None):
    """Tick labels for token ids: the toy tasks' PAD/BOS/EOS, and content id k + 3 shown as "k".

    ``names``: a dict id -> label or a function id -> label (e.g. a tokenizer's ``decode`` of one
    id) to use instead.
    """
    ids = [int(i) for i in to_numpy(ids).reshape(-1)]  # device ids are copied to the host explicitly
    if names is None:
        return [SPECIAL_NAMES.get(i, str(i - NUM_SPECIAL)) for i in ids]
    lookup = names.get if isinstance(names, dict) else names
    return [str(lookup(i)) for i in ids]


def with_positions(labels, positions="auto"):
    """``labels`` with their position appended, "9 (3)": always (``positions=True``), never
    (False), or, with "auto", only when some label occurs twice (the only case where the
    tokens alone cannot tell two rows or columns apart)."""
    labels = [str(label) for label in labels]
    if positions not in (True, False, "auto"):
        raise ValueError(f"positions: expected True, False or 'auto', received {positions!r}")
    if positions is False or (positions == "auto" and len(set(labels)) == len(labels)):
        return labels
    return [f"{label} ({i})" for i, label in enumerate(labels)]


def _check_labels(labels, size, name, axis_doc):
    if labels is not None and len(labels) != size:
        raise ValueError(f"{name}: expected {size} labels (one per {axis_doc}), received {len(labels)}")


def _set_ticks(axis, n, labels, positions, vertical):
    """Tick labels on one axis: the labels (positions added where needed) or 0 .. n-1; every k-th
    one beyond MAX_TICKS. x labels longer than 3 characters are turned upright (``vertical``)."""
    labels = with_positions(labels, positions) if labels is not None else [str(i) for i in range(n)]
    every = math.ceil(n / MAX_TICKS)
    ticks = list(range(0, n, every))
    rotation = 90 if vertical and max(map(len, labels), default=0) > 3 else 0
    axis.set_ticks(ticks, [labels[i] for i in ticks], fontsize=FONT["ticks"], rotation=rotation)


def _heatmap(ax, weights, query_labels, key_labels, xlabel, ylabel, ticks_x=True, ticks_y=True, *, scale):
    """imshow of one (Tq, Tk) weight matrix, token labels on both axes; ``scale``: the keyword
    options of the colour scale (vmin, vmax, cmap, positions)."""
    vmax = weights.max() if scale["vmax"] is None else scale["vmax"]
    vmin = weights.min() if scale["vmin"] is None else scale["vmin"]
    image = ax.imshow(weights, cmap=scale["cmap"], vmin=vmin, vmax=max(vmax, vmin + 1e-12), interpolation="nearest")
    Tq, Tk = weights.shape
    if ticks_x:
        _set_ticks(ax.xaxis, Tk, key_labels, scale["positions"], vertical=True)
        ax.set_xlabel(xlabel, fontsize=FONT["label"])
    else:
        ax.set_xticks([])
    if ticks_y:
        _set_ticks(ax.yaxis, Tq, query_labels, scale["positions"], vertical=False)
        ax.set_ylabel(ylabel, fontsize=FONT["label"])
    else:
        ax.set_yticks([])
    return image


def _scale(vmin, vmax, cmap, positions):
    with_positions([], positions)  # checks the value
    return {"vmin": vmin, "vmax": vmax, "cmap": cmap, "positions": positions}


def _colorbar(fig, image, axes, scale, shrink):
    bar = fig.colorbar(image, ax=axes, shrink=shrink)
    full = scale["vmin"] == 0.0 and scale["vmax"] == 1.0
    bar.set_label("attention weight" if full else "attention weight (scale set to the weights shown)",
                  fontsize=FONT["label"])
    bar.ax.tick_params(labelsize=FONT["ticks"])
    return bar


def plot_attention(weights, query_labels=None, key_labels=None, title=None, path=None, *, xlabel=KEY, ylabel=QUERY,
                   vmin=0.0, vmax=1.0, cmap="viridis", positions="auto"):
    """Heatmap of ONE head's attention weights (Tq, Tk): row q = where query q looks.

    ``query_labels`` / ``key_labels``: one tick label per query / key (token strings, or
    ``token_labels(ids)``); positions 0, 1, ... when None. ``positions``: append each label's
    position ("auto": when a label repeats). Colour scale from ``vmin`` to ``vmax`` (None: the
    smallest / largest weight shown). Axes: the heatmap, its colour bar.
    """
    w = as_array(weights, 2, "weights", "(Tq, Tk): one head of one example; index a (B, H, Tq, Tk) array first")
    _check_labels(query_labels, w.shape[0], "query_labels", "query, the rows of weights")
    _check_labels(key_labels, w.shape[1], "key_labels", "key, the columns of weights")
    scale = _scale(vmin, vmax, cmap, positions)
    cell = 0.5 if max(w.shape) <= 24 else max(0.12, 12 / max(w.shape))
    fig = new_figure((2.6 + cell * w.shape[1] + 1.4, 2.0 + cell * w.shape[0]))
    ax = fig.subplots()
    image = _heatmap(ax, w, query_labels, key_labels, xlabel, ylabel, scale=scale)
    ax.set_title(title or "attention weights", fontsize=FONT["title"])
    _colorbar(fig, image, ax, scale, shrink=0.9)
    return finish(fig, path)


def plot_attention_heads(weights, query_labels=None, key_labels=None, title=None, path=None, *, xlabel="key",
                         ylabel="query", ncols=4, vmin=0.0, vmax=1.0, cmap="viridis", positions="auto"):
    """A grid of every head of one layer, (H, Tq, Tk), one shared colour bar.

    Options as ``plot_attention``. Axes: H heatmaps titled "head h" (unused grid cells are
    removed), then the colour bar.
    """
    w = as_array(weights, 3, "weights", "(H, Tq, Tk): the heads of one layer for one example")
    H, Tq, Tk = w.shape
    _check_labels(query_labels, Tq, "query_labels", "query")
    _check_labels(key_labels, Tk, "key_labels", "key")
    scale = _scale(vmin, vmax, cmap, positions)
    ncols = min(ncols, H)
    nrows = math.ceil(H / ncols)
    fig = new_figure((1.8 + ncols * (1.4 + 0.36 * Tk), 1.2 + nrows * (1.6 + 0.36 * Tq)))
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for h, ax in enumerate(axes):
        if h >= H:
            fig.delaxes(ax)
            continue
        image = _heatmap(ax, w[h], query_labels, key_labels, xlabel, ylabel, ticks_x=True, ticks_y=h % ncols == 0,
                         scale=scale)
        ax.set_title(f"head {h}", fontsize=FONT["label"])
    _colorbar(fig, image, [ax for ax in axes[:H]], scale, shrink=0.8)
    fig.suptitle(title or f"attention weights of the {H} heads", fontsize=FONT["title"])
    return finish(fig, path)


def plot_attention_layers(weights_per_layer, title=None, path=None, *, query_labels=None, key_labels=None,
                          xlabel="key", ylabel="query", vmin=0.0, vmax=1.0, cmap="viridis", positions="auto"):
    """Overview: one row per layer, one column per head, from a list of (H, Tq, Tk) arrays.

    Token labels, if given, go on the bottom row (keys) and the left column (queries); other
    options as ``plot_attention`` (one colour scale for every panel).
    Axes: layers x heads heatmaps titled "layer l, head h", then one colour bar.
    """
    if isinstance(weights_per_layer, np.ndarray) or not len(weights_per_layer):
        raise ValueError("weights_per_layer: expected a non-empty list of (H, Tq, Tk) arrays, one per layer, "
                         f"received {type(weights_per_layer).__name__}")
    layers = [as_array(w, 3, f"weights_per_layer[{l}]", "(H, Tq, Tk)") for l, w in enumerate(weights_per_layer)]
    shapes = {w.shape for w in layers}
    if len(shapes) != 1:
        raise ValueError(f"weights_per_layer: expected every layer to have the same (H, Tq, Tk), received {sorted(shapes)}")
    L, (H, Tq, Tk) = len(layers), layers[0].shape
    _check_labels(query_labels, Tq, "query_labels", "query")
    _check_labels(key_labels, Tk, "key_labels", "key")
    scale = _scale(vmin, vmax, cmap, positions)
    if vmax is None:  # one scale for all panels: the largest weight of any of them
        scale["vmax"] = max(float(w.max()) for w in layers)
    if vmin is None:
        scale["vmin"] = min(float(w.min()) for w in layers)
    fig = new_figure((1.8 + H * (1.3 + 0.34 * Tk), 1.2 + L * (1.5 + 0.34 * Tq)))
    axes = fig.subplots(L, H, squeeze=False)
    for l in range(L):
        for h in range(H):
            image = _heatmap(axes[l, h], layers[l][h], query_labels, key_labels, xlabel, ylabel,
                             ticks_x=l == L - 1, ticks_y=h == 0, scale=scale)
            axes[l, h].set_title(f"layer {l}, head {h}", fontsize=FONT["label"])
    _colorbar(fig, image, axes.ravel().tolist(), {**scale, "vmin": vmin, "vmax": vmax}, shrink=0.8)
    fig.suptitle(title or f"attention weights, {L} layers x {H} heads", fontsize=FONT["title"])
    return finish(fig, path)


def plot_model_attention(model, query_labels=None, key_labels=None, kind=None, layer=None, example_index=0,
                         title=None, path=None, **options):
    """The attention of the model's last forward, in one call: every layer and head of one kind
    (``plot_attention_layers``), or every head of one ``layer`` (``plot_attention_heads``).

    ``kind``: a key of ``attention_maps`` (None: the only one, or "cross" when there are several);
    labels: token strings (``key_labels`` defaults to ``query_labels`` for self-attention);
    ``options``: vmin, vmax, cmap, positions, xlabel, ylabel, as ``plot_attention``.
    """
    maps = attention_maps(model, example_index)
    if kind is None:
        kind = next(iter(maps)) if len(maps) == 1 else "cross" if "cross" in maps else None
    if kind not in maps:
        raise ValueError(f"kind: expected one of {sorted(maps)}, received {kind!r}")
    if key_labels is None and kind != "cross":
        key_labels = query_labels
    what = title or f"{kind.replace('_', ' ')} attention of {type(model).__name__}"
    if layer is None:
        return plot_attention_layers(maps[kind], what, path, query_labels=query_labels, key_labels=key_labels,
                                     **options)
    if not -len(maps[kind]) <= layer < len(maps[kind]):
        raise ValueError(f"layer: expected an index into the {len(maps[kind])} layers of {kind!r}, received {layer}")
    return plot_attention_heads(maps[kind][layer], query_labels, key_labels, f"{what}, layer {layer}", path, **options)
