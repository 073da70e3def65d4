"""What every command of ``python -m transformer_np`` shares: one-line refusals and checked numbers.

The rule (DESIGN.md): a user's mistake never shows a traceback. It ends with one line on
stderr naming the option or file, what was expected and what was received, and exit status 2:

    python -m transformer_np train: argument --steps: expected an integer >= 1, received '-5'
    train: checkpoint run.npz: expected a .npz archive written by transformer_np, received an empty file

Options are checked by argparse with the types below (before anything is loaded); what only
a command can check (a checkpoint, a prompt, a path) is raised as ``UsageError`` or refused
with ``refuse``. A traceback is left only for what is not the user's mistake: a bug.
"""

import argparse
import math
import re
import sys

PROG = "python -m transformer_np"


class UsageError(Exception):
    """A mistake of the user: ``main`` prints ``<command>: <message>`` and exits with status 2."""


def one_line(message, details=3):
    """A multi-line message (a first line, then one problem per line) as one line: the first
    ``details`` problems, then how many more."""
    first, *rest = [line.strip() for line in str(message).splitlines() if line.strip()] or [""]
    shown = "; ".join(rest[:details]) + (f"; and {len(rest) - details} more" if len(rest) > details else "")
    return f"{first} {shown}".strip()


def weights_mismatch(path, error):
    """One line for weights (or generators) that do not fit the model the checkpoint's config describes."""
    details = one_line(error).replace(f"checkpoint {path}: ", "")
    return f"checkpoint {path}: expected the weights of the model its config describes, received others: {details}"


def refuse(message):
    """Print ``message`` on stderr; return the exit status of a refusal, 2."""
    print(message, file=sys.stderr)
    return 2


# argparse's own messages, reworded to say what was expected and what was received
_ARGPARSE = [
    (re.compile(r"argument (\S+): invalid choice: (.+?)[ ,]+\(?choose from (.+?)\)?$"),
     r"argument \1: expected one of \3, received \2"),
    (re.compile(r"argument (\S+): expected one argument$"),
     r"argument \1: expected one argument, received none (write a value starting with '-' as \1=VALUE)"),
    (re.compile(r"argument (\S+): not allowed with argument (\S+)$"),
     r"argument \1: expected either \2 or \1, received both"),
    (re.compile(r"the following arguments are required: (.+)$"), r"expected \1, received none"),
    (re.compile(r"one of the arguments (.+) is required$"), r"expected one of \1, received none"),
    (re.compile(r"unrecognized arguments: (.+)$"), r"expected no further arguments, received \1"),
]


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``prog: message``) instead of the usage block."""

    def error(self, message):
        for pattern, replacement in _ARGPARSE:
            if pattern.match(message):
                message = pattern.sub(replacement, message)
                break
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"received {text!r}") from None


def int_at_least(low):
    """An argparse type: an integer >= ``low``."""

    def parse(text):
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, received {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text):
    """An argparse type: a finite number > 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, received {text!r}")
    return value
