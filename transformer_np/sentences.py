"""The ``attend`` and ``embed`` commands: a real pretrained encoder (all-MiniLM-L6-v2, in the
library's own layers) on sentences typed on the command line.

    python -m transformer_np attend "The animal didn't cross the street because it was too tired."
    python -m transformer_np attend "..." --layer all --out attention.png
    python -m transformer_np embed "A man is eating food." "Someone eats." "The sky is blue."

``attend`` runs one forward, saves the heatmaps of every head of ``--layer`` (default: layer
3, or ``all``: every layer, one row each) with the WordPiece tokens as labels and the colour
scale set to the largest weight shown, and prints, for every token of that layer, where it
looks most: the key with the largest weight averaged over the heads, and the single head that
puts the most weight on another word (not [CLS], [SEP] or the token itself).
``embed`` prints the cosine similarity of every pair of the sentences' embeddings (mean
pooling, unit length: notes/pooling.md).

Both need the ``pretrained`` extra; without it they say how to install it, in one line.
"""

import numpy as np

from .cli import UsageError

SPECIAL = ("[CLS]", "[SEP]")


def _load():
    from .pretrained import PretrainedMissing, load_minilm

    try:
        return load_minilm()
    except PretrainedMissing as error:
        raise UsageError(str(error)) from None


def _check_sentence(text, name):
    if not text.strip():
        raise UsageError(f"{name}: expected a sentence with at least one word, received {text!r}")


def strongest_keys(weights, tokens):
    """For each query of one layer's (H, T, T) weights: (query, key of the largest mean weight,
    that mean, head, key and weight of the strongest head on another word), the "other word"
    being neither [CLS], [SEP] nor the query itself (None when the sentence has no other word)."""
    H, T, _ = weights.shape
    mean = weights.mean(axis=0)  # (T, T)
    rows = []
    for q in range(T):
        top = int(mean[q].argmax())
        allowed = np.array([k != q and tokens[k] not in SPECIAL for k in range(T)])
        best = None
        if allowed.any():
            w = np.where(allowed[None, :], weights[:, q, :], -1.0)  # (H, T)
            h, k = np.unravel_index(int(w.argmax()), w.shape)
            best = (int(h), int(k), float(weights[h, q, k]))
        rows.append((q, top, float(mean[q, top]), best))
    return rows


def attend(args):
    """Save the heatmaps of one layer (or all) and print where every token looks most."""
    from .files import check_writable

    _check_sentence(args.sentence, "sentence")
    if not args.no_plot:
        try:
            check_writable(args.out, "--out")
        except ValueError as error:
            raise UsageError(str(error)) from None
    minilm = _load()
    n_layers = minilm.bert.n_layers
    if args.layer != "all" and not (args.layer.isdigit() and int(args.layer) < n_layers):
        raise UsageError(f"--layer: expected 0 .. {n_layers - 1} or 'all', received {args.layer!r}")
    ids = minilm.tokenizer.encode(args.sentence, max_len=minilm.bert.max_len)
    if len(ids) > minilm.max_len:
        raise UsageError(f"sentence: expected at most {minilm.max_len} word pieces (the model's training length), "
                         f"received {len(ids)}")
    tokens = minilm.tokenizer.tokens(ids)
    bert = minilm.bert.inference_mode()
    bert.forward(ids[None])
    maps = [layer.self_attn.sublayer.attn_weights[0] for layer in bert.encoder.layers]  # (H, T, T) each
    layers = range(n_layers) if args.layer == "all" else [int(args.layer)]
    for l in layers:
        print(f"layer {l}: where each token looks most (mean over the {maps[l].shape[0]} heads; "
              "the strongest single head on another word)")
        for q, top, weight, best in strongest_keys(maps[l], tokens):
            other = "" if best is None else f"   head {best[0]:>2}: {tokens[best[1]]!r} {best[2]:.2f}"
            print(f"  {tokens[q]!r:>14} -> {tokens[top]!r:<14} {weight:.2f}{other}")
    if args.no_plot:
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no heatmap (pip install -e '.[plots]')")
        return 0
    from . import viz

    if args.layer == "all":
        viz.plot_attention_layers(maps, f"attention of all-MiniLM-L6-v2, {n_layers} layers", args.out,
                                  query_labels=tokens, key_labels=tokens, vmax=None)
    else:
        viz.plot_attention_heads(maps[int(args.layer)], tokens, tokens,
                                 f"attention of all-MiniLM-L6-v2, layer {args.layer}", args.out, vmax=None)
    print(f"attention heatmaps: {args.out}")
    return 0


def embed(args):
    """Print the cosine similarity of every pair of sentences."""
    if len(args.sentences) < 2:
        raise UsageError(f"expected at least two sentences to compare, received {len(args.sentences)}")
    for i, text in enumerate(args.sentences):
        _check_sentence(text, f"sentence {i + 1}")
    minilm = _load()
    e = minilm.embed(args.sentences)  # (N, D), unit rows
    cosine = e @ e.T
    width = len(str(len(args.sentences)))
    for i, text in enumerate(args.sentences):
        print(f"[{i + 1:>{width}}] {text}")
    print("cosine similarities:")
    for i in range(len(args.sentences)):
        for j in range(i + 1, len(args.sentences)):
            print(f"  [{i + 1}] - [{j + 1}]  {cosine[i, j]:+.4f}")
    return 0


def add_commands(commands):
    """The attend and embed sub-commands, added to the parser of __main__."""
    att = commands.add_parser("attend", help="heatmaps of a pretrained encoder's attention on a sentence")
    att.add_argument("sentence", help="one sentence, in quotes")
    att.add_argument("--layer", default="3", help="a layer 0 .. 5, or 'all' (default 3, where head 1 links "
                     "'it' to 'animal')")
    att.add_argument("--out", default="attention.png", help="where to save the heatmaps (default attention.png)")
    att.add_argument("--no-plot", action="store_true", help="print only")
    att.set_defaults(run=attend)

    emb = commands.add_parser("embed", help="cosine similarities of sentence embeddings (a pretrained encoder)")
    emb.add_argument("sentences", nargs="+", metavar="SENTENCE", help="two or more sentences, each in quotes")
    emb.set_defaults(run=embed)
