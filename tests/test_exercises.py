"""The notebooks' exercises: the stub runs and says "not done yet", the reference answer passes
its check (a gradient check; for 09, a comparison with the library's decoding), and wrong
answers fail it, each classic one with a message that names the mistake (notebooks/
conventions, issues 5 and 17).

For every notebook with a cell tagged "exercise", programs are run, each in a fresh namespace
and without the rest of the notebook (the two cells are self-contained):
  1. the exercise cell (the student's stub) + the "exercise-check" cell;
  2. tests/exercise_solutions/<notebook>.py in place of the stub + the check cell;
  3. the same solution, made wrong, + the check cell.
The check cell reports through the variable ``exercise_passed`` (True / False).

Wrong answers: every notebook's solution is made wrong the same way (the ``backward`` it defines
returns 1.01 times its gradients and adds 1.01 times its parameter gradients; a plain function
returns 1.01 times its result), and each is also given the classic bugs of its topic
(MUTATIONS: a term dropped, a sum over the batch missing, ``=`` instead of ``+=``, a transposed
factor, the unbiased variance...): each must fail the check, and the check must print the
message that points at that mistake.
"""

import ast
import contextlib
import io

import pytest

from notes_labels import ROOT

nbformat = pytest.importorskip("nbformat")

SOLUTIONS = ROOT / "tests" / "exercise_solutions"
WRONG = 1.01  # a 1% error in a gradient is ~1e-2 relative error, far above the 1e-7 bar
# notebook stem -> [(text in the solution, its wrong replacement, what the check must print)]:
# the classic bugs of the topic, each with the words of the hint that names it.
MUTATIONS = {
    "00_setup_and_backend": [
        ("self.bias.grad += dy_rows.sum(axis=0)", "pass", "db is zero"),
        ("self.weight.grad += x_rows.T", "self.weight.grad = x_rows.T", "use += on .grad"),
        ("x_rows.T @ dy_rows", "x[-1].T @ dy[-1]", "one sequence of the batch only"),
        ("dy_rows.sum(axis=0)", "dy_rows.mean(axis=0)", "a mean over the 8 rows instead of a sum"),
        ("dy @ self.weight.data.T", "dy @ self.weight.data", "dx (8, 5) from dy (8, 3) and W (5, 3)"),
    ],
    "02_softmax_and_attention": [
        ("(dy - (dy * y).sum(axis=self.axis, keepdims=True))", "dy", "you are missing the i != k terms"),
        ("axis=self.axis", "axis=-1", "sum along self.axis, not a fixed axis"),
        (".sum(axis=self.axis, keepdims=True)", ".sum()", "one number per slice along self.axis"),
        (", keepdims=True", "", "unless keepdims=True"),
    ],
    "03_multihead_and_masks": [
        ("dx_q + dx_k + dx_v", "dx_q + dx_k", "a path is missing"),
        ("return dx_q, dx_k + dx_v", "return dx_q, dx_v", "dmemory needs a term per use"),
        ("dx_k = self.w_k.backward(dK)", "dx_k = dK @ self.w_k.weight.data.T", "w_k received no gradient"),
        ("return dx_q, dx_k + dx_v", "return dx_k + dx_v, dx_q", "in the order of forward's inputs"),
        ("if is_cross:", "if False:", "cross-attention returns two"),
    ],
    "04_positional_encodings": [
        ("[offset : offset + T]", "[:T]", "your gradient landed in rows 0 .. T-1"),
        (".sum(axis=0)", "[0]", "one sequence of the batch only"),
        (".sum(axis=0)", ".mean(axis=0)", "a mean over the batch instead of a sum"),
        ("] += dy", "] = dy", "= instead of +="),
        ("return dy", "return None", "return the gradient of x"),
    ],
    "05_layernorm_residual_ffn": [
        (" - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)", "", "the term that comes from the variance"),
        ("dxhat - dxhat.mean(axis=-1, keepdims=True)", "dxhat", "the term that comes from the mean"),
        ("self.bias.grad += dy", "self.bias.grad = dy", "use += on .grad"),
        ("(dxhat * xhat).mean(axis=-1, keepdims=True)", "(dxhat * xhat).sum(axis=-1, keepdims=True) / (D - 1)",
         "the derivative of the unbiased variance"),
        ("dy.reshape(-1, D).sum(axis=0)", "dy.sum(axis=0)", "sum over every leading axis"),
        ("dxhat = dy * self.weight.data", "dxhat = dy", "right when gamma = 1, wrong otherwise"),
    ],
    "06_embeddings_output_loss": [
        ("keep[..., None] * ", "", "the ignored positions (target 0) received a gradient"),
        ("1.0 - eps + eps / V", "1.0 - eps", "the true class keeps its share eps / V"),
        ("max(count, 1)", "keep.size", "divided by all B * T positions"),
        ("scale = dout / max(count, 1)", "scale = 1.0 / max(count, 1)", "dout is ignored"),
        ("eps, V = self.label_smoothing, p.shape[-1]", "eps, V = 0.0, p.shape[-1]", "right without smoothing, wrong with it"),
        ("max(count, 1)", "count", "never 0 / 0 (NaN)"),
    ],
    "07_encoder_decoder": [
        ("dx = dz + dx_attn", "dx = dx_attn", "with silent attentions your dx is 0"),
        ("dmemory_k if dmemory is None else dmemory + dmemory_k", "dmemory_k", "the memory feeds both attentions"),
        ("dx = dz + dx_attn", "dx = dx + dx_attn", "your skip path carried the gradient from above the LayerNorm"),
        ("dz = norm.backward(dx)", "dz = dx", "received no gradient: go back through each LayerNorm"),
    ],
    "10_decoding_kv_cache_and_beam_search": [
        ("/ math.sqrt(mha.d_head)", "", "scores not divided by sqrt(D_h)"),
        ("[K_past, k]", "[k, K_past]", "your K has the newest key first"),
        ("mha.w_o.forward(merge_heads(P @ V))", "merge_heads(P @ V)", "before the output projection"),
        ("P = P / P.sum(axis=-1, keepdims=True)", "P = P / P.sum(axis=2, keepdims=True)", "must sum to 1 over its keys"),
    ],
    # RoPE's backward: forward again instead of back, the identity, the other layout's pairs, written into dy
    "12_positions": [
        ("dy1 * cos + dy2 * sin, dy2 * cos - dy1 * sin", "dy1 * cos - dy2 * sin, dy2 * cos + dy1 * sin",
         "you rotated dy forward again"),
        ("return dx", "return dy", "you returned dy unchanged"),
        ("pair_slices(self.style, self.d_head)", "pair_slices(\"pairs\", self.d_head)", "right for the other layout"),
        ("dx = np.empty_like(dy)", "dx = dy", "you wrote into dy"),
    ],
    # the tiled backward (notes/flash.md): D missing or per tile, P from the tile's maximum, the scale, = for +=
    "13_cost_of_attention": [
        ("dS = P * (dP - D[:, :, q0:q0 + self.tile])", "dS = P * dP", "the term D of (attn.7) is missing or partial"),
        ("(dP - D[:, :, q0:q0 + self.tile])", "(dP - (dP * P).sum(axis=-1, keepdims=True))",
         "the term D of (attn.7) is missing or partial"),
        ("np.exp(S - L[:, :, q0:q0 + self.tile, None])", "np.exp(S - S.max(axis=-1, keepdims=True))",
         "with the stored log-sum-exp L"),
        ("dS @ Kj * scale", "dS @ Kj", "dQ is off by the factor sqrt(D_h)"),
        ("dK[:, :, k0:k0 + self.tile] += ", "dK[:, :, k0:k0 + self.tile] = ", "add (+=) every query tile's term"),
    ],
    # int8 quantisation: one scale for the whole matrix, 128 levels, truncation, the sign forgotten
    "15_numbers_and_formats": [
        ("np.abs(W).max(axis=0) / 127", "np.abs(W).max() / 127", "one scale for the whole matrix (per tensor)"),
        ("/ 127  #", "/ 128  #", "divide by 127, the largest code"),
        ("np.clip(np.rint(W / s), -127, 127)", "np.clip(W / s, -127, 127)", "rounded toward zero"),
        ("np.abs(W).max(axis=0)", "W.max(axis=0)", "a negative weight larger in magnitude"),
    ],
    # backpropagation through time: the future forgotten, each step overwriting dU, the wrong state read
    "01_why_attention": [
        ("dH[:, t] + dh_next", "dH[:, t]", "the last step is right and the earlier ones are not"),
        ("self.weight_hh.grad += h_prev.T @ du", "self.weight_hh.grad[...] = h_prev.T @ du", "dU is exactly 0"),
        ("H[:, t - 1] if t > 0", "H[:, t] if t > 0", "use the state that step read"),
        ("(1.0 - H[:, t] ** 2)", "(1.0 - np.tanh(H[:, t]) ** 2)", "Check the derivative of tanh"),
    ],
}


def tagged(path):
    """{tag: [source of each cell with that tag]} for one notebook."""
    by_tag = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            by_tag.setdefault(tag, []).append(cell.source)
    return by_tag


def exercise_cells(path):
    """(stub source, check source): the notebook's cells tagged exercise and exercise-check."""
    by_tag = tagged(path)
    stubs, checks = by_tag.get("exercise", []), by_tag.get("exercise-check", [])
    assert len(stubs) == 1 and len(checks) == 1, (
        f"{path.name}: expected one 'exercise' and one 'exercise-check' cell, received {len(stubs)} and {len(checks)}"
    )
    return stubs[0], checks[0]


NOTEBOOKS = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if "exercise" in tagged(p)]
pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebook with an exercise yet")


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def exercise(request):
    path = request.param
    stub, check = exercise_cells(path)
    solution = SOLUTIONS / f"{path.stem}.py"
    assert solution.is_file(), f"{path.name}: expected its reference answer in {solution.relative_to(ROOT)}"
    return path.stem, stub, check, solution.read_text()


def run(*programs, prepare=None):
    """Exec the sources in one fresh namespace (``prepare(ns)`` between the first and the rest);
    returns (namespace, printed text)."""
    ns = {"__name__": "__exercise__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, source in enumerate(programs):
            exec(compile(source, f"<cell {i}>", "exec"), ns)
            if i == 0 and prepare is not None:
                prepare(ns)
    return ns, out.getvalue()


def defined_names(source):
    """Names of the classes and functions a cell defines at top level."""
    return [n.name for n in ast.parse(source).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]


def _scaled(grads):
    if grads is None:
        return None
    if isinstance(grads, tuple):
        return tuple(_scaled(g) for g in grads)
    return grads * WRONG


def _wrong_method(backward):
    def wrong_backward(self, *args, **kwargs):
        before = [p.grad.copy() for p in self.parameters()]
        grads = backward(self, *args, **kwargs)
        for p, b in zip(self.parameters(), before):
            p.grad[...] = b + WRONG * (p.grad - b)
        return _scaled(grads)

    return wrong_backward


def _wrong_function(backward):
    def wrong(*args, **kwargs):
        return _scaled(backward(*args, **kwargs))

    return wrong


def make_wrong(names):
    """A ``prepare`` that turns the solution's backward(s) among ``names`` into 1.01 x the right answer."""

    def prepare(ns):
        targets = 0
        for name in names:
            obj = ns[name]
            if isinstance(obj, type) and "backward" in vars(obj):
                obj.backward = _wrong_method(vars(obj)["backward"])
                targets += 1
            elif callable(obj) and not isinstance(obj, type):  # a backward, or 09's forward step
                ns[name] = _wrong_function(obj)
                targets += 1
        assert targets, f"expected a class defining backward or a function among {names}"

    return prepare


def test_the_stub_runs_and_says_not_done_yet(exercise):
    stem, stub, check, _ = exercise
    ns, printed = run(stub, check)
    assert "not done yet" in printed.lower(), f"{stem}: the check cell should say 'not done yet', printed {printed!r}"
    assert ns.get("exercise_passed") is False, f"{stem}: expected exercise_passed = False for the stub"


def test_the_solution_passes_the_check(exercise):
    stem, stub, check, solution = exercise
    missing = sorted(set(defined_names(stub)) - set(defined_names(solution)))
    assert not missing, f"{stem}: the solution must define the stub's names, missing {missing}"
    ns, printed = run(solution, check)
    assert ns.get("exercise_passed") is True, f"{stem}: the reference answer fails its check:\n{printed}"
    assert "max rel err" in printed, f"{stem}: expected the gradient-check table, printed {printed!r}"


def test_a_wrong_answer_fails_the_check(exercise):
    stem, stub, check, solution = exercise
    ns, printed = run(solution, check, prepare=make_wrong(defined_names(stub)))
    assert ns.get("exercise_passed") is False, f"{stem}: a 1% wrong backward passed the check:\n{printed}"


@pytest.mark.parametrize(
    "stem, old, new, message",
    [pytest.param(s, *m, id=f"{s}-{i}") for s, mutations in MUTATIONS.items() for i, m in enumerate(mutations)],
)
def test_the_classic_bug_fails_the_check_and_is_named(stem, old, new, message):
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    _, check = exercise_cells(path)
    solution = (SOLUTIONS / f"{stem}.py").read_text()
    assert solution.count(old) == 1, f"{stem}: expected {old!r} once in the solution"
    ns, printed = run(solution.replace(old, new), check)
    assert ns.get("exercise_passed") is False, f"{stem}: the bug {old!r} -> {new!r} passed the check:\n{printed}"
    assert message in printed, f"{stem}: the bug {old!r} -> {new!r} fails, but the check does not say {message!r}:\n{printed}"


def test_every_derivation_notebook_has_classic_bugs():
    stems = {p.stem for p in NOTEBOOKS}
    assert stems <= set(MUTATIONS), f"notebooks with an exercise but no classic bug in MUTATIONS: {sorted(stems - set(MUTATIONS))}"
    few = sorted(s for s, mutations in MUTATIONS.items() if len(mutations) < 3)
    assert not few, f"expected at least three classic bugs per exercise, received fewer for {few}"
