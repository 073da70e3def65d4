"""Plots for the course: attention heatmaps here, curves in viz_curves.py (re-exported here).

    from transformer_np import viz
    model.eval(); model.forward(src, tgt_in, src_mask, tgt_mask)
    maps = viz.attention_maps(model)                 {"encoder_self": [(H, S, S) per layer], ...}
    viz.plot_attention(maps["cross"][-1][0], query_labels, key_labels, path="cross.png")
    viz.plot_attention_layers(maps["cross"])         every layer and head at once

Every plot function returns a ``matplotlib.figure.Figure`` (no pyplot state: it works headless)
and saves a PNG when given ``path`` (its folder is created). matplotlib is imported inside the
functions only: ``import transformer_np.viz`` does not import it.

The weights are the softmax P (attn.3) that every MultiHeadAttention keeps after a forward
(``attn_weights``, (B, H, Tq, Tk), before dropout): row q is how query q spreads its attention
over the keys, so every row sums to 1 (0 for a row whose keys are all masked).
"""

import math

import numpy as np

from .data.symbols import BOS, EOS, NUM_SPECIAL, PAD
from .viz_curves import (  # noqa: F401  (re-exported: ``viz`` is the one place to import plots from)
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

SPECIAL_NAMES = {PAD: "PAD", BOS: "BOS", EOS: "EOS"}


def token_labels(ids, names=None):
    """Tick labels for token ids: the toy tasks' PAD/BOS/EOS, and content id k + 3 shown as "k".

    ``names``: a dict id -> label or a function id -> label (e.g. a tokenizer's ``decode`` of one
    id) to use instead.
    """
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    if names is None:
        return [SPECIAL_NAMES.get(i, str(i - NUM_SPECIAL)) for i in ids]
    lookup = names.get if isinstance(names, dict) else names
    return [str(lookup(i)) for i in ids]


def _check_labels(labels, size, name, axis_doc):
    if labels is not None and len(labels) != size:
        raise ValueError(f"{name}: expected {size} labels (one per {axis_doc}), received {len(labels)}")


def _heatmap(ax, weights, query_labels, key_labels, xlabel, ylabel, ticks_x=True, ticks_y=True):
    """imshow of one (Tq, Tk) weight matrix on a fixed 0..1 scale, token labels on both axes."""
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    Tq, Tk = weights.shape
    if ticks_x:
        ax.set_xticks(range(Tk), key_labels if key_labels is not None else range(Tk),
                      rotation=90 if key_labels is not None and max(map(len, map(str, key_labels)), default=0) > 3 else 0)
        ax.set_xlabel(xlabel)
    else:
        ax.set_xticks([])
    if ticks_y:
        ax.set_yticks(range(Tq), query_labels if query_labels is not None else range(Tq))
        ax.set_ylabel(ylabel)
    else:
        ax.set_yticks([])
    return image


def plot_attention(weights, query_labels=None, key_labels=None, title=None, path=None, *,
                   xlabel="key (attended to)", ylabel="query (attending)"):
    """Heatmap of ONE head's attention weights (Tq, Tk): row q = where query q looks.

    ``query_labels`` / ``key_labels``: one tick label per query / key (e.g. ``token_labels(ids)``);
    positions 0, 1, ... when None. Colour scale fixed to [0, 1]. Axes: the heatmap, its colour bar.
    """
    w = as_array(weights, 2, "weights", "(Tq, Tk): one head of one example; index a (B, H, Tq, Tk) array first")
    _check_labels(query_labels, w.shape[0], "query_labels", "query, the rows of weights")
    _check_labels(key_labels, w.shape[1], "key_labels", "key, the columns of weights")
    fig = new_figure((1.2 + 0.42 * w.shape[1] + 1.2, 1.2 + 0.42 * w.shape[0]))
    ax = fig.subplots()
    image = _heatmap(ax, w, query_labels, key_labels, xlabel, ylabel)
    ax.set_title(title or "attention weights")
    fig.colorbar(image, ax=ax, label="attention weight", shrink=0.9)
    return finish(fig, path)


def plot_attention_heads(weights, query_labels=None, key_labels=None, title=None, path=None, *,
                         xlabel="key", ylabel="query", ncols=4):
    """A grid of every head of one layer, (H, Tq, Tk), one shared colour bar.

    Axes: H heatmaps titled "head h" (unused grid cells are removed), then the colour bar.
    """
    w = as_array(weights, 3, "weights", "(H, Tq, Tk): the heads of one layer for one example")
    H, Tq, Tk = w.shape
    _check_labels(query_labels, Tq, "query_labels", "query")
    _check_labels(key_labels, Tk, "key_labels", "key")
    ncols = min(ncols, H)
    nrows = math.ceil(H / ncols)
    fig = new_figure((0.6 + ncols * (0.9 + 0.3 * Tk), 0.8 + nrows * (0.9 + 0.3 * Tq)))
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for h, ax in enumerate(axes):
        if h >= H:
            fig.delaxes(ax)
            continue
        image = _heatmap(ax, w[h], query_labels, key_labels, xlabel, ylabel,
                         ticks_x=True, ticks_y=h % ncols == 0)
        ax.set_title(f"head {h}")
    fig.colorbar(image, ax=[ax for ax in axes[:H]], label="attention weight", shrink=0.8)
    fig.suptitle(title or f"attention weights of the {H} heads")
    return finish(fig, path)


def plot_attention_layers(weights_per_layer, title=None, path=None, *, query_labels=None, key_labels=None,
                          xlabel="key", ylabel="query"):
    """Overview: one row per layer, one column per head, from a list of (H, Tq, Tk) arrays.

    Token labels, if given, go on the bottom row (keys) and the left column (queries).
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
    fig = new_figure((0.8 + H * (0.9 + 0.28 * Tk), 0.8 + L * (0.9 + 0.28 * Tq)))
    axes = fig.subplots(L, H, squeeze=False)
    for l in range(L):
        for h in range(H):
            image = _heatmap(axes[l, h], layers[l][h], query_labels, key_labels, xlabel, ylabel,
                             ticks_x=l == L - 1, ticks_y=h == 0)
            axes[l, h].set_title(f"layer {l}, head {h}", fontsize="medium")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="attention weight", shrink=0.8)
    fig.suptitle(title or f"attention weights, {L} layers x {H} heads")
    return finish(fig, path)


# -- reading the weights out of a model -----------------------------------------------------------


def _layer_weights(attention_layers, example_index, kind):
    maps = []
    for l, mha in enumerate(attention_layers):
        P = mha.attn_weights
        if P is None:
            raise ValueError(f"attention_maps: expected a forward pass first, received a model whose {kind} "
                             f"attention of layer {l} holds no weights (run model.forward, in eval mode)")
        if not -P.shape[0] <= example_index < P.shape[0]:
            raise ValueError(f"example_index: expected an index into the last batch of {P.shape[0]}, "
                             f"received {example_index}")
        maps.append(as_array(P[example_index], 3, "attn_weights", "(H, Tq, Tk)"))
    return maps


def attention_maps(model, example_index=0):
    """The attention weights of the model's last forward for one example of that batch.

    Returns a dict of lists, one (H, Tq, Tk) NumPy array per layer, first layer first:
    Transformer: "encoder_self" (H, S, S), "decoder_self" (H, T, T), "cross" (H, T, S);
    GPT: "self" (H, T, T). After ``greedy_decode`` the decoder's maps are those of its last
    step (every position written so far); run one forward of the whole output for a clean map.
    """
    if hasattr(model, "encoder") and hasattr(model, "decoder"):
        enc, dec = model.encoder.layers, model.decoder.layers
        return {
            "encoder_self": _layer_weights([l.self_attn.sublayer for l in enc], example_index, "encoder self"),
            "decoder_self": _layer_weights([l.self_attn.sublayer for l in dec], example_index, "decoder self"),
            "cross": _layer_weights([l.cross_attn.sublayer for l in dec], example_index, "cross"),
        }
    if hasattr(model, "blocks"):
        return {"self": _layer_weights([b.attn.sublayer for b in model.blocks], example_index, "self")}
    raise TypeError(f"model: expected a Transformer or a GPT, received {type(model).__name__}")


def to_bertviz(weights_per_layer):
    """The per-layer list of (1, H, Tq, Tk) arrays that bertviz's head_view and model_view take.

    bertviz wants, per layer, the attention of a batch of one: our (H, Tq, Tk) with a leading
    axis. It calls torch operations on them, so wrap each one: ``[torch.from_numpy(a) for a in
    to_bertviz(maps["self"])]`` (see notebooks/07_training_toy_task.ipynb).
    """
    out = []
    for l, w in enumerate(weights_per_layer):
        w = as_array(w, (3, 4), f"weights_per_layer[{l}]", "(H, Tq, Tk), or (1, H, Tq, Tk)")
        if w.ndim == 4 and w.shape[0] != 1:
            raise ValueError(f"weights_per_layer[{l}]: expected a batch of one, (1, H, Tq, Tk), received shape {w.shape}")
        out.append((w[None] if w.ndim == 3 else w).astype(np.float32))
    return out


# -- what the weights mean ------------------------------------------------------------------------


def alignment_positions(lengths, T, reverse=False):
    """(B, T) integer array: the source position each decoder query must read in copy or reverse.

    Decoder input t (t = 0 is BOS, then y_0, y_1, ...) predicts output t, which is y_t: for
    copy source position t, for reverse n - 1 - t (n = the source length). Queries t >= n (the
    one that predicts EOS, and padding) have no source position: -1.
    """
    n = np.asarray(lengths).reshape(-1, 1)
    t = np.arange(T)[None, :]
    return np.where(t < n, n - 1 - t if reverse else t, -1)


def attention_on_positions(weights, positions):
    """Mean attention weight, per head, on one chosen key for each query: (H,) array.

    weights: (B, H, Tq, Tk) or (H, Tq, Tk); positions: integer (B, Tq) or (Tq,), the key each
    query should look at, negative for queries to leave out. The mean is over every kept
    (example, query) pair. 1 means each kept query puts all its weight on its key.
    """
    w = as_array(weights, (3, 4), "weights", "(B, H, Tq, Tk) or (H, Tq, Tk)")
    w = w[None] if w.ndim == 3 else w
    B, H, Tq, Tk = w.shape
    pos = np.asarray(positions)
    pos = pos[None] if pos.ndim == 1 else pos
    if pos.shape != (B, Tq) or not np.issubdtype(pos.dtype, np.integer):
        raise ValueError(f"positions: expected integers of shape {(B, Tq)} (one key per query of weights "
                         f"{w.shape}), received {pos.dtype} of shape {np.shape(positions)}")
    keep = pos >= 0
    if not keep.any():
        raise ValueError("positions: expected at least one query with a position >= 0, received none")
    if pos.max() >= Tk:
        raise ValueError(f"positions: expected key positions below Tk = {Tk}, received {pos.max()}")
    picked = np.take_along_axis(w, np.maximum(pos, 0)[:, None, :, None], axis=-1)[..., 0]  # (B, H, Tq)
    return (picked * keep[:, None, :]).sum(axis=(0, 2)) / keep.sum()
