"""Command line: python -m transformer_np {demo, train, sample, translate, plot, gradcheck}.

    demo        train a small encoder-decoder to reverse sequences (a minute or two on a CPU),
                report held-out accuracy, show decoded examples, save an attention heatmap
    train       train a named recipe (transformer_np/recipes), with checkpoints and --resume
    sample      continue a prompt with a trained GPT checkpoint (temperature, top-k, top-p)
    translate   decode toy-task sources with a trained encoder-decoder checkpoint (beam search)
    plot        regenerate every PNG of figures/ (plot --all [--out figures])
    gradcheck   check every backward pass against finite differences
"""

import argparse
import sys
import time

from .checks import WHOLE_MODEL_TOLERANCE
from .gradcheck import TOLERANCE

from .figures import DEMO_STEPS  # figures.py imports nothing heavy at the top


def gradcheck(args, cases=None):
    """Print one row per (equation label, layer, gradient); return 1 if any check fails."""
    from .checks import all_cases, format_rows, run_rows

    cases = all_cases() if cases is None else cases
    if args.only:
        cases = [c for c in cases if any(args.only in (l, l.split(".")[0]) for ls in c.labels.values() for l in ls)]
        if not cases:
            print(f"no gradient check cites the topic or label {args.only!r}", file=sys.stderr)
            return 2
    rows = run_rows(cases, tol=args.tol)
    print(format_rows(rows))
    failed = [r for r in rows if not r.passed]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} checks pass (max relative error below "
        + (f"{args.tol:g}" if args.tol else f"{TOLERANCE:g} per layer, {WHOLE_MODEL_TOLERANCE:g} per whole model")
        + "; float64 central differences, see transformer_np/gradcheck.py)"
    )
    return 1 if failed else 0


def train(args):
    """Train a recipe (or resume a checkpoint) and print its final metric."""
    from .checkpoint import load_config
    from .recipes import build_run

    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    if args.resume:
        config = load_config(args.resume)
        given = sorted(k for k, v in overrides.items() if v is not None and v != config.get(k))
        if given:
            print(f"--resume continues the saved run as configured; expected no other settings, received "
                  f"{', '.join('--' + k.replace('_', '-') for k in given)}", file=sys.stderr)
            return 2
        run = build_run(**config)
    else:
        run = build_run(args.task, **overrides)
    trainer = run.trainer(
        quiet=args.quiet,
        eval_every=args.eval_every or run.eval_every,
        checkpoint_path=args.checkpoint or args.resume,
        checkpoint_every=args.checkpoint_every,
    )
    if args.resume:
        trainer.load(args.resume)
        print(f"resumed {run.name} from {args.resume} at step {trainer.step} of {run.steps}")
    start = time.perf_counter()
    history = trainer.fit(run.steps)
    print(summary(run, history, time.perf_counter() - start))
    if trainer.saved_paths:
        print(f"checkpoint: {trainer.saved_paths[-1]}")
    return 0


def summary(run, history, seconds):
    """One line: the recipe, its final metric first, the other evaluation numbers, steps and time."""
    final = {k[len("val_"):]: v[-1] for k, v in history.items() if k.startswith("val_") and k != "val_step" and v}
    others = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k != run.metric)
    return (f"{run.name}: {run.metric} {final[run.metric]:.4f} ({others}) "
            f"at step {history['val_step'][-1]}, {seconds:.1f} s")


def demo(args):
    """Reverse (or copy) sequences with a small encoder-decoder; accuracy, examples, a heatmap."""
    from .decode import greedy_decode
    from .recipes import build_run

    run = build_run(args.task, steps=args.steps, seed=args.seed)
    model = run.model
    print(f"training a {model.num_parameters():,}-parameter encoder-decoder to {args.task} sequences of "
          f"1-10 symbols for {run.steps} steps (batches of {run.config['batch_size']})", flush=True)
    start = time.perf_counter()
    history = run.trainer(quiet=args.quiet, eval_every=None).fit(run.steps)
    seconds = time.perf_counter() - start
    held_out = run.held_out
    print(f"exact match on {held_out.src.shape[0]} held-out sequences: {history['val_exact_match'][-1]:.1%} "
          f"(token accuracy {history['val_token_accuracy'][-1]:.1%}) after {seconds:.0f} s")

    pred = greedy_decode(model, held_out.src, held_out.src_mask, held_out.tgt_out.shape[1], bos=1, eos=2)
    right = (pred == held_out.tgt_out).all(axis=1)
    wrong = [int(i) for i in (~right).nonzero()[0][:3]]
    print("examples, source then greedy output" + (" (the first 4, then the first wrong ones):" if wrong else ":"))
    for i in list(range(4)) + wrong:
        print(f"  {show(held_out.src[i]):<20} -> {show(pred[i]):<20} "
              f"{'ok' if right[i] else 'WRONG, expected ' + show(held_out.tgt_out[i])}")
    if not args.no_plot:
        from .figures import longest_example

        i = longest_example(run)
        plot_cross_attention(model, held_out.src[i:i + 1], pred[i:i + 1], args.out)
    return 0


def show(ids):
    """Content ids as their values (id 3 -> "0"), stopping at EOS; PAD and BOS are not shown."""
    values = []
    for i in ids.tolist():
        if i == 2:
            break
        if i >= 3:
            values.append(str(i - 3))
    return " ".join(values)


def plot_cross_attention(model, src, pred, path):
    """Save the demo's heatmap (figures.plot_demo_attention) for one source and its greedy output."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no heatmap (pip install -e '.[plots]')")
        return None
    from .figures import plot_demo_attention

    plot_demo_attention(model, src, pred, path)
    print(f"attention heatmap: {path}")
    return path


def plot(args):
    """Regenerate every PNG of the README (trains the demo model first, about as long as the demo)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no figures (pip install -e '.[plots]')", file=sys.stderr)
        return 2
    from .figures import make_all_figures

    for path in make_all_figures(args.out, quick=args.quick):
        print(path)
    return 0


def build_parser():
    from .inference import add_commands
    from .recipes import RECIPES

    parser = argparse.ArgumentParser(prog="python -m transformer_np", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("gradcheck", help="check every backward pass against finite differences")
    check.add_argument("--only", metavar="TOPIC", help="only the cases citing a topic (e.g. ln) or a label (e.g. ln.4)")
    check.add_argument("--tol", type=float, help="one pass bar for every case (default: each case's own)")
    check.set_defaults(run=gradcheck)

    show_demo = commands.add_parser("demo", help="train a small encoder-decoder on a toy task, in minutes")
    show_demo.add_argument("--task", choices=("reverse", "copy"), default="reverse")
    show_demo.add_argument("--steps", type=int, default=DEMO_STEPS)
    show_demo.add_argument("--seed", type=int, default=0)
    show_demo.add_argument("--out", default="figures/demo_attention.png", help="where to save the heatmap")
    show_demo.add_argument("--no-plot", action="store_true", help="skip the heatmap")
    show_demo.add_argument("--quiet", action="store_true", help="no progress bar")
    show_demo.set_defaults(run=demo)

    fit = commands.add_parser("train", help="train a named recipe; --resume a checkpoint")
    task = fit.add_mutually_exclusive_group(required=True)
    task.add_argument("--task", choices=sorted(RECIPES), help="the recipe (transformer_np/recipes)")
    task.add_argument("--resume", metavar="CHECKPOINT", help="continue a run saved with --checkpoint")
    fit.add_argument("--steps", type=int, help="number of updates (default: the recipe's)")
    fit.add_argument("--batch-size", type=int)
    fit.add_argument("--lr", type=float, help="peak learning rate (annotated-copy: the factor of the paper's schedule)")
    fit.add_argument("--seed", type=int)
    fit.add_argument("--checkpoint", metavar="PATH", help="save here at the end (and every --checkpoint-every); "
                     "may contain {step}")
    fit.add_argument("--checkpoint-every", type=int, metavar="N")
    fit.add_argument("--eval-every", type=int, metavar="N")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=train)

    add_commands(commands)  # sample and translate: transformer_np/inference.py

    draw = commands.add_parser("plot", help="regenerate every figure of the README")
    draw.add_argument("--all", action="store_true", required=True, help="every figure (the only choice for now)")
    draw.add_argument("--out", default="figures", help="the folder the PNGs go to")
    draw.add_argument("--quick", action="store_true", help="a few training steps only (tests)")
    draw.set_defaults(run=plot)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
