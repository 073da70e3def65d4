"""Every notebook in notebooks/ is a clean, portable course file (issue 5, notebooks/ conventions).

Valid nbformat 4, stored without outputs, no machine-specific paths, every cited equation label
defined in notes/, numbered 00, 01, ... without gaps, the small-settings cell first; in each
derivation notebook an exercise cell with its check cell right after it (the worked answer
comes after the check); every notebook ending with two or three inline questions, each
answered in the instructors' file notes/instructors/<name>.md; notes referenced as clickable
links; and no private name (``_saved``, ``layer._cache``) in a notebook or a reference answer.
Running the notebooks is nbmake's job (pytest --nbmake); this file only reads them.
"""

import re

import pytest

from notes_labels import ROOT, TAG, citations, note_labels

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
# Derivation notebooks hold an exercise (a backward to write) followed by its check.
DERIVATION = {0, 1, 2, 3, 4, 5, 6, 7, 10, 12, 13, 15}
SMALL_SETTINGS = "# Small settings"
QUESTIONS = "## Inline questions"
QUESTION = re.compile(r"^(\d+)\. ", re.MULTILINE)
ANSWER = re.compile(r"^\*\*(\d+)\. ", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
LINK_WHOLE = re.compile(r"\[[^\]]*\]\([^)\s]+\)")
NOTE = re.compile(r"notes/[a-z_]+\.md")
# An attribute or imported name with one leading underscore: layer._cache, _split_heads, not __init__.
PRIVATE = re.compile(r"(?:\.|\bimport |, )(_[a-zA-Z]\w*)")
# Absolute or per-machine paths: POSIX homes and scratch folders, "~/", and Windows drives
# ("C:\\Users", 'd:/data') where a path can start: not LaTeX such as "\sum_{n:\ i}".
MACHINE_PATH = re.compile(
    r"(?<![\w.])(/work/|/home/|/tmp/|/Users/|/root/|/mnt/|/var/|~/)|(?<![^\s'\"(=])[A-Za-z]:[\\/]+\w"
)


def read(path):
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def number(path):
    return int(path.name[:2])


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, read(request.param)


def test_valid_nbformat_4(notebook):
    path, nb = notebook
    assert nb.nbformat == 4, f"{path.name}: expected nbformat 4, received {nb.nbformat}"
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"


def test_stored_without_outputs(notebook):
    path, nb = notebook
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs or execution counts (clear them)"


def test_no_machine_specific_paths(notebook):
    path, nb = notebook
    found = [(i, m.group(0)) for i, c in enumerate(nb.cells) for m in MACHINE_PATH.finditer(c.source)]
    assert not found, f"{path.name}: machine-specific paths (cell, text): {found}"


def test_cited_labels_exist_in_the_notes(notebook):
    path, nb = notebook
    defined = note_labels()
    # Citations "(attn.7)" in text and code, and equations quoted with their label, \tag{attn.7}.
    cited = {label for c in nb.cells for label in citations(c.source) + TAG.findall(c.source)}
    missing = sorted(cited - set(defined))
    assert not missing, f"{path.name} cites labels no note defines: {missing}"


def test_first_code_cell_is_the_small_settings_cell(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and code[0].source.startswith(SMALL_SETTINGS), (
        f"{path.name}: expected the first code cell to start with {SMALL_SETTINGS!r}, "
        f"received {code[0].source[:60]!r}" if code else f"{path.name}: no code cell"
    )


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if number(p) in DERIVATION], ids=lambda p: p.name)
def test_derivation_notebooks_have_an_exercise_then_its_check(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    exercise = [i for i, c in enumerate(code) if "exercise" in tags(c)]
    check = [i for i, c in enumerate(code) if "exercise-check" in tags(c)]
    assert len(exercise) == 1 and len(check) == 1, (
        f"{path.name}: expected one cell tagged 'exercise' and one tagged 'exercise-check', "
        f"received {len(exercise)} and {len(check)}"
    )
    assert check[0] == exercise[0] + 1, (
        f"{path.name}: expected the check cell to be the code cell right after the exercise cell"
    )
    assert (ROOT / "tests" / "exercise_solutions" / f"{path.stem}.py").is_file(), (
        f"{path.name}: expected its reference answer in tests/exercise_solutions/{path.stem}.py"
    )


def inline_questions(path):
    """The numbers of the inline questions that end the notebook: its last cell, a Markdown cell
    headed "## Inline questions" with a numbered list "1. ...", "2. ..."."""
    last = read(path).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith(QUESTIONS), (
        f"{path.name}: expected the last cell to be Markdown starting with {QUESTIONS!r}, "
        f"received {last.cell_type} {last.source[:40]!r}"
    )
    return [int(n) for n in QUESTION.findall(last.source)]


def answers_file(path):
    """notes/instructors/<name>.md for notebooks/NN_<name>.ipynb: named without the number, so
    that placing a notebook elsewhere in the course order renames nothing."""
    return ROOT / "notes" / "instructors" / f"{path.stem[3:]}.md"


def answers(path):
    """{question number: answer text} from the "## Inline questions" section of the answers file,
    where each answer starts with a bold "**k. ...**" line."""
    text = answers_file(path).read_text()
    assert QUESTIONS + "\n" in text, f"{answers_file(path).name}: expected a section {QUESTIONS!r}"
    section = text.split(QUESTIONS + "\n", 1)[1].split("\n## ", 1)[0]
    parts = ANSWER.split(section)[1:]  # number, text, number, text, ...
    return {int(n): body.strip() for n, body in zip(parts[::2], parts[1::2])}


def test_every_notebook_ends_with_two_or_three_inline_questions(notebook):
    path, _ = notebook
    numbers = inline_questions(path)
    assert numbers in ([1, 2], [1, 2, 3]), f"{path.name}: expected questions numbered 1, 2(, 3), received {numbers}"


def test_every_inline_question_has_an_answer(notebook):
    path, _ = notebook
    assert answers_file(path).is_file(), f"{path.name}: expected its answers in {answers_file(path).relative_to(ROOT)}"
    found = answers(path)
    numbers = inline_questions(path)
    assert sorted(found) == numbers, (
        f"{answers_file(path).name}: expected answers to questions {numbers}, received answers to {sorted(found)}"
    )
    short = [n for n, body in found.items() if len(body) < 80]
    assert not short, f"{answers_file(path).name}: answers {short} are too short to explain anything"


def test_notes_are_clickable_links_that_resolve(notebook):
    path, nb = notebook
    broken, bare = [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for target in LINK.findall(cell.source):
            if not re.match(r"[a-z]+://", target) and not (path.parent / target.split("#")[0]).exists():
                broken.append((i, target))
        bare += [(i, m) for m in NOTE.findall(LINK_WHOLE.sub("", cell.source))]
    assert not broken, f"{path.name}: links that do not resolve from notebooks/ (cell, target): {broken}"
    assert not bare, f"{path.name}: notes named without a link, write [notes/x.md](../notes/x.md) (cell, name): {bare}"


SOLUTIONS = sorted((ROOT / "tests" / "exercise_solutions").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_exercises_and_notebooks_use_public_names_only(path):
    if path.suffix == ".ipynb":
        sources = [c.source for c in read(path).cells if c.cell_type == "code"]
    else:
        sources = [path.read_text()]
    found = sorted({m for s in sources for m in PRIVATE.findall(s)})
    assert not found, f"{path.name}: uses private names {found}; the library offers public ones (save_for_backward/saved, split_heads/merge_heads)"


def test_file_names_are_numbered_without_gaps():
    bad = [p.name for p in NOTEBOOKS if not NAME.match(p.name)]
    assert not bad, f"expected names NN_lower_case.ipynb, received {bad}"
    numbers = [number(p) for p in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {numbers}"
    assert numbers == list(range(len(numbers))), f"expected 00, 01, ... without gaps, received {numbers}"


def test_the_checks_recognise_what_they_must_refuse():
    assert MACHINE_PATH.search("np.load('/home/ann/data.npz')")
    assert MACHINE_PATH.search(r"open('C:\\Users\\x.txt')")
    assert MACHINE_PATH.search("see ~/notes")
    assert MACHINE_PATH.search("data = 'd:/corpus/shakespeare.txt'")
    assert not MACHINE_PATH.search("figures/attention.png and notes/attention.md, 3/tmp")
    assert not MACHINE_PATH.search(r"$$dW_{v,:} = \sum_{n:\ i_n = v} dY_{n,:}$$, a:b, x[:, 1:]")
    assert NAME.match("04_positional_encodings.ipynb") and not NAME.match("3_pos.ipynb")
    assert PRIVATE.findall("x = self._saved(); from m import _split_heads, _merge_heads") == [
        "_saved", "_split_heads", "_merge_heads"]
    assert not PRIVATE.findall("super().__init__(); for _, m in pairs: _ = 1")
    assert NOTE.findall(LINK_WHOLE.sub("", "see [notes/a.md](../notes/a.md) and notes/b.md")) == ["notes/b.md"]
