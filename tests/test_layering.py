"""The imports flow one way, from the ground floor up (DESIGN.md, "Layout"): every import
between the package's own modules is read from the source and checked against the levels."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "transformer_np"

# DESIGN.md's floors; a module may import its own floor or lower ones only.
LEVELS = {
    "backend": 1,
    "module": 2, "init": 2, "validate": 2, "special": 2, "ops": 2, "files": 2,
    "layers": 3, "loss": 3, "gradcheck": 3, "optim": 3, "checkpoint": 3,
    "precision": 3, "quant": 3,  # number formats, mixed precision, int8: know modules and layers, never models
    "safetensors": 3,  # reads arrays from a file, like checkpoint
    "models": 4,
    "generate": 5, "decode": 5, "probes": 5, "beam": 5, "train": 5, "recipes": 5, "data": 5, "viz": 5, "viz_curves": 5, "viz_maps": 5,
    "pretrained": 5,  # a Hugging Face BERT folder -> Bert + WordPiece (models, safetensors, data)
    "checks": 6, "figures": 6, "cli": 6, "inference": 6, "__main__": 6,  # inference: the sample/translate commands
    "sentences": 6,  # the attend/embed commands
}  # fmt: skip
# data and viz sit on floor 5 but may not use model code; data may use the one mask builder.
NO_MODEL_CODE = {"data", "viz", "viz_curves", "viz_maps"}


def unit(module_path):
    """The layering unit of a module: its top-level name inside the package ('layers', 'gpt' ...)."""
    return module_path.split(".")[0]


def internal_imports(path):
    """The package-relative dotted names ``path`` imports (absolute or relative)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    here = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x
                    names += [".".join(base + [a.name]) for a in node.names]
                    continue
                names.append(target)
            elif node.module and node.module.startswith("transformer_np"):
                names.append(node.module[len("transformer_np."):])
        elif isinstance(node, ast.Import):
            names += [a.name[len("transformer_np."):] for a in node.names if a.name.startswith("transformer_np.")]
    return [n for n in names if n]


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_from_the_ground_floor_up(path):
    own = unit(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    if own == "__init__":
        return  # the package's own __init__ re-exports nothing heavy
    assert own in LEVELS, f"{own}: add it to DESIGN.md's layout and to LEVELS here"
    for name in internal_imports(path):
        other = unit(name)
        assert other in LEVELS, f"{path.name} imports {name}: unknown unit {other!r}"
        assert LEVELS[other] <= LEVELS[own], (
            f"{path.relative_to(PACKAGE)} (floor {LEVELS[own]}) imports {name} (floor {LEVELS[other]}): "
            "imports must flow from the ground floor up (DESIGN.md)"
        )
        if own in NO_MODEL_CODE:
            assert other != "models", f"{path.relative_to(PACKAGE)} imports model code {name}"
            if own == "data" and other == "layers":
                assert name == "layers.masks", f"data may use layers.masks only, received {name}"


def test_the_check_sees_a_violation():
    """The parser finds relative imports two floors up (so the test above could fail)."""
    found = internal_imports(PACKAGE / "models" / "gpt.py")
    assert "layers.kv_cache" in found and "models.config" in found
