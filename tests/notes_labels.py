"""The equation labels of notes/ and the citations of them: one parser for every test that needs it.

A label is ``topic.k`` as in ``\\tag{attn.7}``. A citation is a parenthesised group made only of
labels: "(ln.3)", "(ce.1-ce.4)", "(ffn.5, ffn.6)"; "("m.0", 1)" or "(x.T)" are not citations.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"\\tag\{([a-z]+\.\d+)\}")
HEADING = re.compile(r"^(#+)\s+(.*)")
LABEL = r"[a-z]+\.\d+"
CITATION = re.compile(rf"\(({LABEL}(?:\s*(?:-|–|,|and)\s*{LABEL})*)\)")


def note_labels():
    """{label: (file, is_backward)} for every \\tag in notes/*.md (a label defined twice fails)."""
    labels = {}
    for path in sorted((ROOT / "notes").glob("*.md")):
        backward_level = None
        for line in path.read_text().splitlines():
            heading = HEADING.match(line)
            if heading:
                level = len(heading.group(1))
                if "backward" in heading.group(2).lower():
                    backward_level = level
                elif backward_level is not None and level <= backward_level:
                    backward_level = None
            for label in TAG.findall(line):
                assert label not in labels, f"{label} is defined in {labels[label][0]} and again in {path.name}"
                labels[label] = (path.name, backward_level is not None)
    return labels


def citations(text):
    """Every label cited in ``text``, in order of appearance (repeats kept)."""
    return [label for group in CITATION.findall(text) for label in re.findall(LABEL, group)]
