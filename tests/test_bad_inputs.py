"""The library's catalogue of bad inputs outside the layers (issue 10): checkpoints, file paths, the
Trainer, the recipes' settings and the gradient checker. Every case raises an error whose message
names the thing, what was expected and what was received (the command line's catalogue, which
turns these into one line and exit status 2, is tests/test_cli_errors.py).
"""

import pickle

import numpy as np
import pytest

from transformer_np.checkpoint import CheckpointError, load_checkpoint, load_config, save_checkpoint
from transformer_np.files import atomic_write, check_writable
from transformer_np.gradcheck import check_function
from transformer_np.layers import Linear
from transformer_np.loss import CrossEntropyLoss
from transformer_np.optim import SGD
from transformer_np.recipes import check_settings, load_run_config
from transformer_np.train import Trainer


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """A folder of files that are not checkpoints, and one real checkpoint (good.npz)."""
    root = tmp_path_factory.mktemp("bad")
    save_checkpoint(root / "good.npz", Linear(3, 4), step=2, config={"recipe": "copy", "steps": 5})
    good = (root / "good.npz").read_bytes()
    (root / "empty.npz").write_bytes(b"")
    (root / "truncated.npz").write_bytes(good[: len(good) // 2])
    damaged = bytearray(good)
    damaged[200:216] = bytes(16)  # inside the first stored array: its CRC no longer matches
    (root / "damaged.npz").write_bytes(bytes(damaged))
    (root / "notes.txt").write_text("hello")
    np.save(root / "array.npy", np.ones(3))
    (root / "state.pkl").write_bytes(pickle.dumps({"w": 1}))
    np.savez(root / "foreign.npz", a=np.ones(2))
    np.savez(root / "objects.npz", config=np.asarray("{}"), step=np.asarray(0), **{"model/weight": np.array([{}])})
    np.savez(root / "badjson.npz", config=np.asarray("{oops"), step=np.asarray(0))
    np.savez(root / "list.npz", config=np.asarray("[1, 2]"), step=np.asarray(0))
    save_checkpoint(root / "norecipe.npz", Linear(2, 2))
    save_checkpoint(root / "juggle.npz", Linear(2, 2), config={"recipe": "juggle"})
    save_checkpoint(root / "batch0.npz", Linear(2, 2), config={"recipe": "copy", "batch_size": 0})
    return root


def trainer(**kwargs):
    model = Linear(4, 3, rng=np.random.default_rng(0))
    return Trainer(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), lambda rng: None,
                   **{"rng": np.random.default_rng(1), **kwargs})


def linear_model(x):
    return 2.0 * x


# (id, call(folder) -> raises, exception, regex of the message)
CASES = [
    # -- checkpoint files ------------------------------------------------------------------------
    ("missing", lambda d: load_config(d / "missing.npz"),
     CheckpointError, r"missing\.npz: expected a file, received a path where none exists"),
    ("folder", lambda d: load_config(d), CheckpointError, r"expected a file, received a folder"),
    ("empty", lambda d: load_config(d / "empty.npz"),
     CheckpointError, r"empty\.npz: expected a \.npz archive .*, received an empty file"),
    ("truncated", lambda d: load_config(d / "truncated.npz"),
     CheckpointError, r"expected a complete archive, received a truncated or damaged one"),
    ("damaged", lambda d: load_checkpoint(d / "damaged.npz", Linear(3, 4)),
     CheckpointError, r"damaged\.npz: expected a complete archive, received a truncated or damaged one \(Bad CRC-32"),
    ("text", lambda d: load_config(d / "notes.txt"),
     CheckpointError, r"expected a \.npz archive .*, received a file of another kind \(it starts with b'hello'\)"),
    ("npy", lambda d: load_config(d / "array.npy"), CheckpointError, r"received a single \.npy array"),
    ("pickle", lambda d: load_config(d / "state.pkl"), CheckpointError, r"received a pickle, which is never loaded"),
    ("foreign archive", lambda d: load_config(d / "foreign.npz"),
     CheckpointError, r"expected the entries of a .* checkpoint .*, received an archive without \['config', 'step'\]"),
    ("object arrays", lambda d: load_checkpoint(d / "objects.npz", Linear(2, 2)),
     CheckpointError, r"expected plain arrays, received Python objects"),
    ("config not JSON", lambda d: load_config(d / "badjson.npz"),
     CheckpointError, r"expected a JSON object as its config, received '\{oops'"),
    ("config not an object", lambda d: load_config(d / "list.npz"),
     CheckpointError, r"expected a JSON object as its config, received '\[1, 2\]'"),
    ("no recipe", lambda d: load_run_config(d / "norecipe.npz"),
     CheckpointError, r"expected the checkpoint of a training recipe .*, received one with no recipe"),
    ("unknown recipe", lambda d: load_run_config(d / "juggle.npz"),
     CheckpointError, r"received one with the unknown recipe 'juggle'"),
    ("unusable settings", lambda d: load_run_config(d / "batch0.npz"),
     CheckpointError, r"expected the settings of 'copy', received setting 'batch_size': .* >= 1, received 0"),
    ("other shapes", lambda d: load_checkpoint(d / "good.npz", Linear(3, 5)),
     ValueError, r"shape of weight: expected \(3, 5\), received \(3, 4\)"),
    ("other config", lambda d: load_checkpoint(d / "good.npz", Linear(3, 4), config={"recipe": "sort"}),
     ValueError, r"recipe: expected 'sort', checkpoint has 'copy'"),
    # -- paths to write --------------------------------------------------------------------------
    ("atomic_write mode", lambda d: atomic_write(d / "x", "a").__enter__(),
     ValueError, r"mode: expected 'wb' or 'w', received 'a'"),
    ("write a folder", lambda d: check_writable(d, "out"),
     ValueError, r"out: expected a file path, received .*, which is a folder"),
    ("write under a file", lambda d: check_writable(d / "notes.txt" / "x.npz", "out"),
     ValueError, r"out: expected a path that can be written, received .* \(.*notes\.txt is a file, not a folder\)"),
    # -- the Trainer -----------------------------------------------------------------------------
    ("unknown field", lambda d: trainer(checkpoint_path=str(d / "run-{stp}.npz")),
     ValueError, r"checkpoint_path: expected a path whose only field is \{step\} .*\{stp\}\.npz' \(KeyError: 'stp'\)"),
    ("positional field", lambda d: trainer(checkpoint_path=str(d / "run-{}.npz")),
     ValueError, r"checkpoint_path: .*\(IndexError"),
    ("broken brace", lambda d: trainer(checkpoint_path=str(d / "run-{.npz")),
     ValueError, r"checkpoint_path: .*\(ValueError: expected '\}'"),
    ("checkpoint a folder", lambda d: trainer(checkpoint_path=str(d)),
     ValueError, r"checkpoint_path: expected a file path, received .* which is a folder"),
    ("checkpoint under a file", lambda d: trainer(checkpoint_path=str(d / "notes.txt" / "c.npz")),
     ValueError, r"checkpoint_path: expected a path that can be written"),
    ("every without a path", lambda d: trainer(checkpoint_every=2),
     ValueError, r"checkpoint_every: expected a checkpoint_path to write to, received None"),
    ("every 0", lambda d: trainer(checkpoint_path=str(d / "c.npz"), checkpoint_every=0),
     ValueError, r"checkpoint_every: expected an integer >= 1, received 0"),
    ("eval every 0", lambda d: trainer(eval_every=0),
     ValueError, r"eval_every: expected an integer >= 1, received 0"),
    ("clip 0", lambda d: trainer(clip=0.0), ValueError, r"clip: expected a positive max norm or None, received 0\.0"),
    ("rng a seed", lambda d: trainer(rng=0), TypeError, r"rng: expected a numpy\.random\.Generator .*, received int"),
    ("fit -1 steps", lambda d: trainer().fit(-1), ValueError, r"num_steps: expected an integer >= 0, received -1"),
    ("save without a path", lambda d: trainer().save(), ValueError, r"save: expected a path .*, received none"),
    # -- the recipes' settings -------------------------------------------------------------------
    ("unknown recipe setting", lambda d: check_settings("juggle"),
     ValueError, r"recipe: expected one of 'sort-gpt', .*, received 'juggle'"),
    ("unknown key", lambda d: check_settings("copy", depth=3),
     ValueError, r"settings of 'copy': expected keys among .*, received \['depth'\]"),
    ("mistyped", lambda d: check_settings("copy", steps=1.5),
     TypeError, r"setting 'steps': expected int, received 1\.5"),
    ("steps -5", lambda d: check_settings("copy", steps=-5),
     ValueError, r"setting 'steps': expected an integer >= 1, received -5"),
    ("batch 0", lambda d: check_settings("copy", batch_size=0),
     ValueError, r"setting 'batch_size': expected an integer >= 1, received 0"),
    ("seed -1", lambda d: check_settings("copy", seed=-1),
     ValueError, r"setting 'seed': expected an integer >= 0, received -1"),
    ("warmup -1", lambda d: check_settings("copy", warmup=-1),
     ValueError, r"setting 'warmup': expected an integer >= 0, received -1"),
    ("eval_every 0", lambda d: check_settings("copy", eval_every=0),
     ValueError, r"setting 'eval_every': expected an integer >= 1, received 0"),
    ("lr 0", lambda d: check_settings("copy", lr=0.0),
     ValueError, r"setting 'lr': expected a finite number > 0, received 0\.0"),
    ("lr nan", lambda d: check_settings("copy", lr=float("nan")),
     ValueError, r"setting 'lr': expected a finite number > 0, received nan"),
    ("dropout 1", lambda d: check_settings("copy", dropout=1.0),
     ValueError, r"setting 'dropout': expected a finite number in \[0, 1\), received 1\.0"),
    ("smoothing -0.1", lambda d: check_settings("copy", label_smoothing=-0.1),
     ValueError, r"setting 'label_smoothing': expected a finite number in \[0, 1\), received -0\.1"),
    ("weight decay inf", lambda d: check_settings("copy", weight_decay=float("inf")),
     ValueError, r"setting 'weight_decay': expected a finite number >= 0, received inf"),
    ("lr below min_lr", lambda d: check_settings("shakespeare", lr=1e-5),
     ValueError, r"setting 'lr': expected at least min_lr=0\.0001 .*, received 1e-05"),
    # -- the gradient checker --------------------------------------------------------------------
    ("gradcheck float32", lambda d: check_function(linear_model, linear_model, np.ones(3, np.float32)),
     TypeError, r"input x0: gradient checks expected float64, received float32"),
    ("gradcheck names", lambda d: check_function(linear_model, linear_model, np.ones(3), names=("a", "b")),
     ValueError, r"names: expected 1 name\(s\), one per floating-point input, received \('a', 'b'\)"),
    ("gradcheck name as str", lambda d: check_function(linear_model, linear_model, np.ones(3), names="x"),
     ValueError, r"names: expected 1 name\(s\).*received 'x'"),
    ("gradcheck seed -1", lambda d: check_function(linear_model, linear_model, np.ones(3), seed=-1),
     ValueError, r"seed: expected a non-negative integer, received -1"),
    ("gradcheck seed 0.5", lambda d: check_function(linear_model, linear_model, np.ones(3), seed=0.5),
     ValueError, r"seed: expected a non-negative integer, received 0\.5"),
    ("gradcheck two grads for one", lambda d: check_function(linear_model, lambda G: (G, G), np.ones(3)),
     ValueError, r"backward: expected 1 gradient\(s\), one per floating-point input, received 2"),
]


@pytest.mark.parametrize("case_id, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_refused_naming_what_was_expected(bad, case_id, call, error, message):
    with pytest.raises(error, match=message) as raised:
        call(bad)
    text = str(raised.value)
    assert "expected" in text and ("received" in text or "checkpoint has" in text), text
    assert "pickle.load" not in text and "allow_pickle" not in text  # never advice to unpickle
