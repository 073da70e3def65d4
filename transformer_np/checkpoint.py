"""Checkpoints: one ``.npz`` holding everything a run needs to continue exactly.

Layout of the archive (every entry a plain array, so it loads with ``allow_pickle=False``):

    model/<dotted name>      each parameter, as ``module.state_dict()`` gives it
    model_rng/<dotted name>  the state of each generator a sub-module draws from (its ``rng``
                             attribute, e.g. Dropout's), as a JSON string: ``model_rng/rng``
                             for the model itself, ``model_rng/<module path>.rng`` below it
    optim/<key>              each entry of ``optimizer.state_dict()`` (arrays and numbers)
    step                     the number of optimisation steps taken
    rng                      the generator's bit-generator state, as a JSON string
    config                   the run's configuration (a JSON-able dict), as a JSON string
    model_config             the model's own configuration (``model.config.to_dict()`` and its
                             class name), as a JSON string, when the model has one
    extra/<key>              any further arrays the caller passes (the trainer's history)
    quantization             how the model was quantised (``model.quantization``), as a JSON
                             string, for an int8-quantised model only (notes/quantization.md)

Saving the dropout generators as well as the weights is what lets a resumed run draw the same
dropout masks, and so take exactly the steps an uninterrupted run would have taken.

Writing is atomic (``files.atomic_write``): the archive goes to a temporary file in the same
folder, is flushed to disk and then renamed over the target, so a crash leaves either the old
checkpoint or the new one, never half of one; the file gets the permissions the umask gives.

Reading never unpickles anything, and a file that cannot serve as a checkpoint (missing,
empty, truncated, damaged, a .npy array, a pickle, an archive of something else) is refused
with one ``CheckpointError`` line saying which, never with NumPy's advice to unpickle it.
"""

import json
import zipfile
import zlib

import numpy as np

from .backend import to_numpy
from .files import atomic_write

REQUIRED = ("config", "step")  # the entries every checkpoint has


class CheckpointError(ValueError):
    """A file that cannot be used as a checkpoint: missing, unreadable, damaged or of another kind."""


def model_generators(model):
    """{"<module path>.rng": generator} for every sub-module whose ``rng`` is a numpy Generator.

    The model's own generator is named ``"rng"``. A generator shared by several modules is
    listed under each of their names (saving it twice costs a few bytes; restoring it twice
    sets the same state twice).
    """
    return {f"{prefix}rng": m.rng for prefix, m in model.named_random_modules()}


def save_checkpoint(path, model, optimizer=None, step=0, rng=None, config=None, extra=None):
    """Write ``model`` (its parameters and generators), and optionally the optimizer, step,
    generator, config and ``extra`` arrays ({key: array-like}), to ``path``."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"model_rng/{name}": np.asarray(json.dumps(g.bit_generator.state))
                   for name, g in model_generators(model).items()})
    if optimizer is not None:
        arrays.update({f"optim/{key}": to_numpy(np.asarray(v)) for key, v in optimizer.state_dict().items()})
    arrays["step"] = np.asarray(step, dtype=np.int64)
    if rng is not None:
        arrays["rng"] = np.asarray(json.dumps(rng.bit_generator.state))
    arrays["config"] = np.asarray(json.dumps(config or {}))
    if _model_config(model) is not None:
        arrays["model_config"] = np.asarray(json.dumps(_model_config(model)))
    if getattr(model, "quantization", None) is not None:
        arrays["quantization"] = np.asarray(json.dumps(model.quantization))
    arrays.update({f"extra/{key}": np.asarray(value) for key, value in (extra or {}).items()})
    bad = [k for k, v in arrays.items() if v.dtype == object]
    if bad:
        raise TypeError(f"checkpoint entries must be plain arrays, received object arrays for {bad}")

    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_checkpoint(path, model, optimizer=None, rng=None, config=None):
    """Load ``path`` into ``model`` (and the optimizer and generator, when given).

    ``config``, when given, must equal the saved configuration; every difference is listed.
    A parameter that is missing, unexpected or of another shape is refused by
    ``model.load_state_dict`` with the list of mismatches; so is a model whose generators
    (``model_generators``) are not those saved. Returns ``{"step": int, "config": dict}``, plus
    ``"extra": {key: array}`` when the checkpoint holds extra arrays.
    """
    entries = read_entries(path)
    saved_config = _config(path, entries)
    if config is not None and config != saved_config:
        keys = sorted(set(config) | set(saved_config))
        diffs = [f"{k}: expected {config.get(k)!r}, checkpoint has {saved_config.get(k)!r}" for k in keys
                 if config.get(k) != saved_config.get(k)]
        raise ValueError(f"checkpoint {path} was written for another configuration:\n  " + "\n  ".join(diffs))
    _check_model_config(path, model, entries)
    _check_quantization(path, model, entries)
    try:
        generators = _matching_generators(path, model, entries)  # checked before anything is changed
        model.load_state_dict({k[len("model/"):]: v for k, v in entries.items() if k.startswith("model/")})
    except ValueError as error:
        if "model_config" in entries or _model_config(model) is None:
            raise
        raise ValueError(f"checkpoint {path} comes from an older layout of transformer_np (it holds no "
                         f"model_config) and its parameters do not fit this model: {error}") from error
    for name, g in generators.items():
        g.bit_generator.state = json.loads(str(entries[f"model_rng/{name}"]))
    if optimizer is not None:
        optimizer.load_state_dict({k[len("optim/"):]: v for k, v in entries.items() if k.startswith("optim/")})
    if rng is not None:
        if "rng" not in entries:
            raise ValueError(f"checkpoint {path} holds no generator state to restore")
        rng.bit_generator.state = json.loads(str(entries["rng"]))
    info = {"step": int(entries["step"]), "config": saved_config}
    extra = {k[len("extra/"):]: v for k, v in entries.items() if k.startswith("extra/")}
    if extra:
        info["extra"] = extra
    return info


def load_config(path):
    """The configuration saved in the checkpoint at ``path`` (to rebuild its model before loading)."""
    return _config(path, read_entries(path, REQUIRED))


def load_step(path):
    """The number of optimisation steps the checkpoint at ``path`` was saved after."""
    return int(read_entries(path, REQUIRED)["step"])


def read_entries(path, keys=None):
    """{key: array} of the checkpoint at ``path`` (only ``keys`` when given), read without pickle.

    Every way a file can fail to be a checkpoint is one CheckpointError line naming the path.
    """
    where = f"checkpoint {path}"
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise CheckpointError(f"{where}: expected a file, received a path where none exists") from None
    except IsADirectoryError:
        raise CheckpointError(f"{where}: expected a file, received a folder") from None
    except OSError as error:
        raise CheckpointError(f"{where}: expected a readable file, received one that cannot be read "
                              f"({error.strerror or error})") from None
    if not head.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{where}: expected a .npz archive written by transformer_np, received {_kind(head)}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in REQUIRED if k not in archive.files]
            if missing:
                raise CheckpointError(f"{where}: expected the entries of a transformer_np checkpoint "
                                      f"({', '.join(REQUIRED)}, model/...), received an archive without {missing}")
            return {key: archive[key] for key in (archive.files if keys is None else keys)}
    except ValueError as error:
        if isinstance(error, CheckpointError):
            raise
        if "pickle" in str(error):  # NumPy's message would suggest unpickling: never repeat that advice
            raise CheckpointError(f"{where}: expected plain arrays, received Python objects, which are never "
                                  "loaded from a file (they could run code)") from None
        raise CheckpointError(f"{where}: expected a readable archive, received a damaged one ({error})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise CheckpointError(f"{where}: expected a complete archive, received a truncated or damaged one "
                              f"({error})") from None


def _kind(head):
    """What the first bytes of a file say it is, for a refusal."""
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array (np.save), not an archive"
    if head[:1] == b"\x80":
        return "a pickle, which is never loaded (it could run code)"
    return f"a file of another kind (it starts with {head!r})"


def _config(path, entries):
    try:
        config = json.loads(str(entries["config"]))
    except (json.JSONDecodeError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {path}: expected a JSON object as its config, received "
                              f"{str(entries['config'])[:60]!r}")
    return config


def _model_config(model):
    """{"class": ..., field: value, ...} of a model built from a configuration object, else None."""
    config = getattr(model, "config", None)
    if not hasattr(config, "to_dict"):
        return None
    return {"class": type(config).__name__, **config.to_dict()}


def _check_model_config(path, model, entries):
    """Refuse a checkpoint whose saved model configuration differs from the model's, listing the
    differences. A checkpoint without one (an older layout) is let through: its parameters are
    still checked name by name and shape by shape."""
    mine = _model_config(model)
    if mine is None or "model_config" not in entries:
        return
    saved = json.loads(str(entries["model_config"]))
    if saved != mine:
        diffs = [f"{k}: expected {mine.get(k)!r}, checkpoint has {saved.get(k)!r}"
                 for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)]
        raise ValueError(f"checkpoint {path} holds another model configuration:\n  " + "\n  ".join(diffs))


def _check_quantization(path, model, entries):
    """Refuse a quantised checkpoint for a float model and the reverse, or another quantisation."""
    saved = json.loads(str(entries["quantization"])) if "quantization" in entries else None
    expected = getattr(model, "quantization", None)
    if saved != expected:
        describe = lambda q: "a float model" if q is None else f"an int8-quantised model {q}"
        raise ValueError(f"checkpoint {path} holds {describe(saved)}: expected {describe(expected)} "
                         "(quantise a float model with transformer_np.quant.quantize before loading a quantised "
                         "checkpoint into it, with the same choices; load a float checkpoint into a float model)")


def _matching_generators(path, model, entries):
    """``model_generators(model)``, refused with the list of differences unless the checkpoint
    holds exactly those generators."""
    generators = model_generators(model)
    saved = [k[len("model_rng/"):] for k in entries if k.startswith("model_rng/")]
    problems = [f"missing: {n}" for n in generators if n not in saved]
    problems += [f"unexpected: {n}" for n in saved if n not in generators]
    if problems:
        raise ValueError(f"checkpoint {path}: generators do not match {type(model).__name__}:\n  " + "\n  ".join(problems))
    return generators
