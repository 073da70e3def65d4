"""Reading attention weights out of a model, and what they mean: part of ``transformer_np.viz``
(import them from there).

    attention_layers(model)      {kind: [(name, layer), ...]}: every attention layer, by role
    attention_maps(model)        {kind: [(H, Tq, Tk) per layer]}: their weights for one example
    to_bertviz(maps["self"])     the layout bertviz's head_view and model_view take
    alignment_positions, attention_on_positions    how much weight lands where it should
    export_attention(path, tokens, maps["self"])   bertviz's layout as .json, or an .html page

No model code is imported: a model is anything whose ``named_modules()`` holds layers with an
``attn_weights`` attribute, so a new model family needs no change here.
"""

import numpy as np

from .viz_curves import as_array


def _role(name):
    """The role of an attention layer from its dotted name: the last part that names a kind of
    attention ("self_attn" -> "self", "cross_attn" -> "cross"; a bare "attn" or "attention", or
    none at all, -> "self")."""
    roles = []
    for part in name.strip(".").split("."):
        if "attn" in part or "attention" in part:
            for suffix in ("_attention", "attention", "_attn", "attn"):
                part = part.removesuffix(suffix)
            roles.append(part)
    return next((role for role in reversed(roles) if role), "self")


def attention_layers(model):
    """Every attention layer of ``model``, grouped by role: {kind: [(name, layer), ...]}, layers in order.

    An attention layer is a module with an ``attn_weights`` attribute (MultiHeadAttention, and
    any variant that keeps its weights the same way); one inside another is not listed again
    (the multi-head layer, not its inner scaled dot-product attention). Found by walking
    ``model.named_modules()``, so any model works with no change here. The kind is the layer's
    role (``self``, ``cross``), prefixed with the first part of its name when two groups would
    share it: "encoder_self", "decoder_self" and "cross" for the Transformer, "self" for a GPT
    or an encoder-only model.
    """
    found = []
    for name, module in model.named_modules():
        if hasattr(module, "attn_weights") and not any(name.startswith(outer) for outer, _ in found):
            found.append((name, module))
    groups = {}  # the name without layer indices -> [(name, layer)]
    for name, module in found:
        groups.setdefault(tuple(p for p in name.strip(".").split(".") if not p.isdigit()), []).append((name, module))
    roles = [_role(".".join(template)) for template in groups]
    kinds = {}
    for template, role in zip(groups, roles):
        kind = f"{template[0]}_{role}" if roles.count(role) > 1 and template else role
        kinds["_".join(template) if kind in kinds else kind] = groups[template]
    return kinds


def _layer_weights(layers, example_index, kind):
    maps = []
    for l, (name, layer) in enumerate(layers):
        P = layer.attn_weights
        if P is None:
            raise ValueError(f"attention_maps: expected a forward pass first, received a model whose {kind} "
                             f"attention of layer {l} ({name.strip('.')}) holds no weights "
                             "(run model.forward, in eval mode; the tiled, banded-window and linear attention kinds "
                             "never form the weights: plot a model with attention='standard')")
        if not -P.shape[0] <= example_index < P.shape[0]:
            raise ValueError(f"example_index: expected an index into the last batch of {P.shape[0]}, "
                             f"received {example_index}")
        maps.append(as_array(P[example_index], 3, "attn_weights", "(H, Tq, Tk)"))
    return maps


def attention_maps(model, example_index=0):
    """The attention weights of the model's last forward for one example of that batch.

    Returns a dict of lists, one (H, Tq, Tk) NumPy array per layer, first layer first, one key
    per kind of attention (``attention_layers``): Transformer "encoder_self" (H, S, S),
    "decoder_self" (H, T, T), "cross" (H, T, S); GPT (or any single stack) "self" (H, T, T).
    After ``greedy_decode`` the decoder's maps are those of its last step (every position
    written so far); run one forward of the whole output for a clean map.
    """
    layers = attention_layers(model)
    if not layers:
        raise TypeError(f"model: expected a model with attention layers (modules with attn_weights, such as "
                        f"MultiHeadAttention), received {type(model).__name__}, which has none")
    return {kind: _layer_weights(found, example_index, kind) for kind, found in layers.items()}


def to_bertviz(weights_per_layer):
    """The per-layer list of (1, H, Tq, Tk) arrays that bertviz's head_view and model_view take.

    bertviz wants, per layer, the attention of a batch of one: our (H, Tq, Tk) with a leading
    axis. It calls torch operations on them, so wrap each one: ``[torch.from_numpy(a) for a in
    to_bertviz(maps["self"])]`` (see notebooks/08_training_toy_task.ipynb).
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


# -- a file anyone can open: the bertviz layout without bertviz ------------------------------------

_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif}} td{{width:22px;height:22px;padding:0}} th{{font-weight:normal;font-size:12px}}
th.k{{writing-mode:vertical-rl;transform:rotate(180deg)}}</style></head>
<body><h3>{title}</h3>
<p>layer <select id="layer"></select> head <select id="head"></select>
(row = query, column = key; darker = more attention; hover for the weight)</p>
<table id="map"></table>
<script>
const data = {data};
const L = data.attention.length, H = data.attention[0][0].length, tokens = data.tokens;
const layer = document.getElementById("layer"), head = document.getElementById("head");
for (let l = 0; l < L; l++) layer.add(new Option(l, l));
for (let h = 0; h < H; h++) head.add(new Option(h, h));
function draw() {{
  const w = data.attention[layer.value][0][head.value];
  let html = "<tr><th></th>" + tokens.map(t => `<th class="k">${{t}}</th>`).join("") + "</tr>";
  w.forEach((row, q) => {{
    html += `<tr><th>${{tokens[q]}}</th>` + row.map((v, k) =>
      `<td title="${{tokens[q]}} -> ${{tokens[k]}}: ${{v.toFixed(3)}}" style="background:rgba(20,60,160,${{v}})"></td>`).join("") + "</tr>";
  }});
  document.getElementById("map").innerHTML = html;
}}
layer.onchange = head.onchange = draw; draw();
</script></body></html>
"""


def export_attention(path, tokens, weights_per_layer, title="attention"):
    """Write the attention of one example to ``path``: ``.json`` holds {"tokens": [...],
    "attention": [per layer, (1, H, T, T) as nested lists]}, the layout bertviz's head_view and
    model_view take (``head_view(attention, tokens)`` after turning each layer into a tensor);
    ``.html`` is a page that shows any layer and head as a heatmap, with no bertviz, no
    internet and nothing but a browser. Weights are rounded to 4 decimals. Returns ``path``."""
    import json

    from .files import atomic_write

    layers = to_bertviz(weights_per_layer)
    T = layers[0].shape[-1]
    if len(tokens) != T or any(w.shape[-2:] != (T, T) for w in layers):
        raise ValueError(f"tokens: expected one per query and key of every layer ({T}), received {len(tokens)} "
                         f"for layers of shapes {sorted({w.shape for w in layers})}")
    data = {"tokens": [str(t) for t in tokens], "attention": [np.round(w, 4).tolist() for w in layers]}
    text = json.dumps(data)
    if str(path).endswith(".html"):
        safe = text.replace("</", "<\\/")  # no token can close the script element
        title = str(title).replace("&", "&amp;").replace("<", "&lt;")
        text = _HTML.format(title=title, data=safe)
    elif not str(path).endswith(".json"):
        raise ValueError(f"path: expected a name ending in .json or .html, received {str(path)!r}")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
