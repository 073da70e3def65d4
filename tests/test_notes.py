"""The notes, the code and the checks cite the same equations.

Fails when code, tests or notebooks cite a label no note defines, when a label is defined
twice, or when a backward equation in the notes has no gradient check that names it.
"""

from transformer_np.checks import all_cases

from notes_labels import CITATION, ROOT, citations, note_labels


def cited_labels():
    """{label: file} for every label cited, e.g. "(ln.3)" or "(ce.1-ce.4)"; "("m.0", 1)" is no citation."""
    sources = [*(ROOT / "transformer_np").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    sources += (ROOT / "notebooks").glob("*.ipynb")
    cited = {}
    for path in sources:
        for label in citations(path.read_text()):
            cited.setdefault(label, path.relative_to(ROOT).as_posix())
    return cited


def checked_labels():
    return {label for case in all_cases() for labels in case.labels.values() for label in labels}


def test_the_notes_define_labels_and_backward_equations():
    labels = note_labels()
    assert len(labels) > 20
    assert any(backward for _, backward in labels.values())


def test_every_cited_label_is_defined_in_the_notes():
    defined = note_labels()
    missing = {label: where for label, where in cited_labels().items() if label not in defined}
    assert not missing, f"cited but not defined in notes/: {missing}"


def test_every_checked_label_is_a_backward_equation_in_the_notes():
    labels = note_labels()
    wrong = sorted(label for label in checked_labels() if not labels.get(label, (None, False))[1])
    assert not wrong, f"gradient cases name labels that are not backward equations in notes/: {wrong}"


def test_every_backward_equation_has_a_gradient_check():
    backward = {label for label, (_, is_backward) in note_labels().items() if is_backward}
    unchecked = sorted(backward - checked_labels())
    assert not unchecked, f"backward equations with no gradient check: {unchecked}"


def test_what_counts_as_a_citation():
    text = 'dx (ln.8); (ce.1-ce.4), (ffn.5, ffn.6); not ("m.0", 1) nor (layers.0.weight) nor (x.T)'
    assert CITATION.findall(text) == ["ln.8", "ce.1-ce.4", "ffn.5, ffn.6"]
