"""The ``sample`` and ``translate`` commands: a checkpoint written by ``train``, back as a model
with its tokenizer, decoded from the command line.

    python -m transformer_np sample --checkpoint shakespeare.npz --prompt "ROMEO:" --top-k 20
    python -m transformer_np translate --checkpoint reverse.npz --input "3 1 4 1 5" --beam-size 4

A checkpoint holds the run's config (the recipe and its settings): ``build_run(**config)``
rebuilds the model, ``load_checkpoint`` fills in its weights. A character-level model's
tokenizer is saved by ``train`` as ``extra/tokenizer`` (JSON); a checkpoint written before
that is read too: the tokenizer is then the one the recipe rebuilds from its corpus.

Symbols on the command line. sort-gpt reads and writes digits ("2 0 1 1 0 2"); copy, reverse
and sort read content values 0 .. num_symbols-1 ("3 1 4 1 5"); add reads two numbers and a
plus ("123+456") and writes the digits of the sum least significant first, as it was trained.
Special symbols in an output are printed by name (<pad>, <bos>). A source longer than the
model's positions is refused; one of a length (or, for add, a form) the model never saw in
training is decoded with a warning on stderr: expect a wrong answer.

A checkpoint that is missing, damaged or of another kind is refused in one line (exit 2).
"""

import json
import sys
from functools import partial

import numpy as np

from .beam import beam_search, check_alpha
from .checkpoint import CheckpointError, load_checkpoint
from .cli import UsageError, non_negative_int, positive_int, refuse, weights_mismatch
from .data import (
    ADDITION_PLUS,
    BOS,
    EOS,
    NUM_SPECIAL,
    PAD,
    CharTokenizer,
    make_seq2seq_batch,
)
from .generate import check_sampling, generate
from .validate import check_int

SPECIAL_NAMES = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>"}

SEQUENCE_TASKS = ("copy", "reverse", "sort", "add")


def load_trained(path):
    """(run, tokenizer or None): the recipe's run with the checkpoint's weights, in eval mode.

    A file that is not the checkpoint of a recipe's run raises UsageError (one line)."""
    from .recipes import build_run, load_run_config

    try:
        config = load_run_config(path)
        run = build_run(**config)
        info = load_checkpoint(path, run.model)
        saved = info.get("extra", {}).get("tokenizer")
        tokenizer = run.extras.get("tokenizer") if saved is None else CharTokenizer.from_dict(json.loads(str(saved)))
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    except ValueError as error:  # weights that do not fit the model its config describes
        raise UsageError(weights_mismatch(path, error)) from None
    return run, tokenizer


# -- sample: a decoder-only model ------------------------------------------------------------------


def sample(args):
    """Print the prompt and its continuation; the same --seed prints the same text."""
    from .models.gpt import GPT

    try:
        check_sampling(args.temperature, args.top_k, args.top_p)  # before the (slower) loading
    except ValueError as error:
        return refuse(f"sample: {error}")
    run, tokenizer = load_trained(args.checkpoint)
    if not isinstance(run.model, GPT):
        return refuse(f"sample: expected the checkpoint of a decoder-only recipe (sort-gpt, shakespeare), "
                      f"received one of {run.name!r}" + (": use translate" if run.name in SEQUENCE_TASKS else ""))
    if tokenizer is not None:
        prompt = "\n" if args.prompt is None else args.prompt
        encode, decode = tokenizer.encode, tokenizer.decode
    else:
        if args.prompt is None:
            return refuse(f"sample: {run.name} reads digits: expected --prompt, e.g. \"2 0 1 1 0 2\", received none")
        prompt = args.prompt
        encode = partial(parse_digits, example="2 0 1 1 0 2")
        decode = lambda ids: " ".join(str(int(v)) for v in ids)
    try:
        ids = encode(prompt)
    except ValueError as error:
        return refuse(f"sample: --prompt: {error}")
    new = args.max_new_tokens if args.max_new_tokens is not None else run.config.get("length", 200)
    try:
        out = generate(run.model, ids, new, args.temperature, args.top_k, args.top_p,
                       np.random.default_rng(args.seed), use_cache=not args.no_cache)
    except ValueError as error:  # a bad setting or prompt: the message names expected and received
        return refuse(f"sample: {error}")
    print(decode(out) if tokenizer is not None else f"{decode(out[:len(ids)])} -> {decode(out[len(ids):])}")
    return 0


def parse_digits(text, example):
    """Integer token ids written as numbers separated by spaces."""
    try:
        return np.array([int(v) for v in text.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"expected numbers separated by spaces, e.g. {example!r}, received {text!r}") from None


# -- translate: an encoder-decoder on a toy task -----------------------------------------------------


def parse_source(text, config):
    """Token ids of one source written as on the command line (module docstring)."""
    if config["recipe"] == "add":
        symbols = [c for c in text if not c.isspace()]
        bad = [c for c in symbols if not (c.isdigit() or c == "+")]
        if bad or not symbols:
            raise ValueError(f"expected digits and one '+', e.g. \"123+456\", received {text!r}")
        return np.array([ADDITION_PLUS if c == "+" else NUM_SPECIAL + int(c) for c in symbols], dtype=np.int64)
    n = config["num_symbols"]
    try:
        values = [int(v) for v in text.split()]
    except ValueError:
        values = None
    if not values or min(values) < 0 or max(values) >= n:
        raise ValueError(f"expected symbols in 0 .. {n - 1} separated by spaces, e.g. \"3 1 4 1 5\", "
                         f"received {text!r}")
    return np.array(values, dtype=np.int64) + NUM_SPECIAL


def show_output(ids, config):
    """An output as symbols, up to its EOS (special symbols by name); add also reads the sum back
    (most significant first)."""
    content = []
    for i in ids.tolist():
        if i == EOS:
            break
        if i in SPECIAL_NAMES:
            content.append(SPECIAL_NAMES[i])
        else:
            content.append("+" if config["recipe"] == "add" and i == ADDITION_PLUS else str(i - NUM_SPECIAL))
    if config["recipe"] != "add":
        return " ".join(content)
    digits = all(c.isdigit() for c in content)
    return "".join(content) + (f" (least significant digit first: {''.join(reversed(content))})"
                               if content and digits else "")


def warn_outside_training(text, source, config):
    """A warning on stderr when ``source`` has a length (add: a form) the model was not trained on."""
    if config["recipe"] == "add":
        n = config["n_digits"]
        parts = text.replace(" ", "").split("+")
        if len(parts) != 2 or any(len(p) != n for p in parts):
            print(f"translate: warning: --input {text!r}: the model was trained on two {n}-digit numbers "
                  f"(e.g. {'1' * n}+{'2' * n}, zero-padded): expect a wrong answer", file=sys.stderr)
        return
    low, high = config["min_len"], config["max_len"]
    if not low <= len(source) <= high:
        print(f"translate: warning: --input {text!r} has {len(source)} symbols, the model was trained on "
              f"{low} to {high}: expect a wrong answer", file=sys.stderr)


def model_length_limit(model):
    """The most positions the encoder-decoder ``model`` has (its positional table's length)."""
    config = model.config
    return int(config["max_len"] if isinstance(config, dict) else config.max_len)


def translate(args):
    """Decode each --input with beam search (beam size 1: greedy); print it, the output and its score."""
    from .models.transformer import Transformer

    try:
        check_int(args.beam_size, "beam_size")  # before the (slower) loading
        check_alpha(args.length_penalty)
    except ValueError as error:
        return refuse(f"translate: {error}")
    run, _ = load_trained(args.checkpoint)
    if not isinstance(run.model, Transformer) or run.name not in SEQUENCE_TASKS:
        return refuse(f"translate: expected the checkpoint of one of the toy tasks {', '.join(SEQUENCE_TASKS)}, "
                      f"received one of {run.name!r}")
    try:
        sources = [parse_source(text, run.config) for text in args.input]
    except ValueError as error:
        return refuse(f"translate: --input: {error}")
    limit = model_length_limit(run.model)
    for text, source in zip(args.input, sources):
        if len(source) > limit:
            return refuse(f"translate: --input: expected at most {limit} symbols (the model's positions), "
                          f"received {len(source)}")
        warn_outside_training(text, source, run.config)
    max_len = max(len(s) for s in sources) + 2 if args.max_len is None else args.max_len
    if max_len > limit:
        return refuse(f"translate: --max-len: expected at most {limit} (the model's positions), received {max_len}"
                      + ("" if args.max_len else " (the longest input + 2)"))
    batch = make_seq2seq_batch(sources, sources)  # the targets are unused: only src and its mask
    ids, scores = beam_search(run.model, batch.src, batch.src_mask, args.beam_size, max_len, BOS, EOS,
                              alpha=args.length_penalty, use_cache=not args.no_cache)
    for text, best, score in zip(args.input, ids[:, 0], scores[:, 0]):
        print(f"{text} -> {show_output(best, run.config)}   (score {score:.4f})")
    return 0


def add_commands(commands):
    """The sample and translate sub-commands, added to the parser of __main__."""
    gen = commands.add_parser("sample", help="continue a prompt with a trained decoder-only model")
    gen.add_argument("--checkpoint", required=True, metavar="PATH", help="written by train (sort-gpt, shakespeare)")
    gen.add_argument("--prompt", help="text (shakespeare, default a newline) or digits (sort-gpt: \"2 0 1 1 0 2\")")
    gen.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1)")
    gen.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    gen.add_argument("--top-p", type=float, help="sample within the nucleus of probability p only")
    gen.add_argument("--max-new-tokens", type=int, help="default: sort-gpt's answer length, else 200")
    gen.add_argument("--seed", type=non_negative_int, default=0, help="the same seed gives the same sample")
    gen.add_argument("--no-cache", action="store_true", help="recompute every step (slow; same tokens)")
    gen.set_defaults(run=sample)

    tr = commands.add_parser("translate", help="decode a source with a trained encoder-decoder (toy tasks)")
    tr.add_argument("--checkpoint", required=True, metavar="PATH", help="written by train (copy, reverse, sort, add)")
    tr.add_argument("--input", required=True, action="append", metavar="TEXT",
                    help="a source, e.g. \"3 1 4 1 5\" (add: \"123+456\"); repeat for a batch")
    tr.add_argument("--beam-size", type=int, default=1, help="1 = greedy (default)")
    tr.add_argument("--length-penalty", type=float, default=0.6, help="GNMT's alpha (default 0.6)")
    tr.add_argument("--max-len", type=positive_int, help="most output tokens (default: longest input + 2)")
    tr.add_argument("--no-cache", action="store_true", help="recompute every step (slow; same output)")
    tr.set_defaults(run=translate)
