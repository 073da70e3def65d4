"""Command line: ``python -m transformer_np gradcheck [--only TOPIC]``."""

import argparse
import sys

from .gradcheck import TOLERANCE


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
        f"\n{len(rows) - len(failed)} of {len(rows)} checks pass "
        f"(max relative error < {args.tol:g}, float64 central differences; see transformer_np/gradcheck.py)"
    )
    return 1 if failed else 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m transformer_np", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("gradcheck", help="check every backward pass against finite differences")
    check.add_argument("--only", metavar="TOPIC", help="only the cases citing a topic (e.g. ln) or a label (e.g. ln.4)")
    check.add_argument("--tol", type=float, default=TOLERANCE, help="pass bar for the max relative error")
    check.set_defaults(run=gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
