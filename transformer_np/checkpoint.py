"""Checkpoints: one ``.npz`` holding everything a run needs to continue exactly.

Layout of the archive (every entry a plain array, so it loads with ``allow_pickle=False``):

    model/<dotted name>      each parameter, as ``module.state_dict()`` gives it
    optim/<key>              each entry of ``optimizer.state_dict()`` (arrays and numbers)
    step                     the number of optimisation steps taken
    rng                      the generator's bit-generator state, as a JSON string
    config                   the run's configuration (a JSON-able dict), as a JSON string

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk
and then renamed over the target, so a crash leaves either the old checkpoint or the new one,
never half of one.
"""

import json
import os
import tempfile

import numpy as np

from .backend import to_numpy


def save_checkpoint(path, model, optimizer=None, step=0, rng=None, config=None):
    """Write ``model`` (and optionally the optimizer, step, generator and config) to ``path``."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{key}": to_numpy(np.asarray(v)) for key, v in optimizer.state_dict().items()})
    arrays["step"] = np.asarray(step, dtype=np.int64)
    if rng is not None:
        arrays["rng"] = np.asarray(json.dumps(rng.bit_generator.state))
    arrays["config"] = np.asarray(json.dumps(config or {}))
    bad = [k for k, v in arrays.items() if v.dtype == object]
    if bad:
        raise TypeError(f"checkpoint entries must be plain arrays, received object arrays for {bad}")

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path, model, optimizer=None, rng=None, config=None):
    """Load ``path`` into ``model`` (and the optimizer and generator, when given).

    ``config``, when given, must equal the saved configuration; every difference is listed.
    A parameter that is missing, unexpected or of another shape is refused by
    ``model.load_state_dict`` with the list of mismatches. Returns
    ``{"step": int, "config": dict}``.
    """
    with np.load(path, allow_pickle=False) as archive:
        entries = {key: archive[key] for key in archive.files}
    saved_config = json.loads(str(entries["config"]))
    if config is not None and config != saved_config:
        keys = sorted(set(config) | set(saved_config))
        diffs = [f"{k}: expected {config.get(k)!r}, checkpoint has {saved_config.get(k)!r}" for k in keys
                 if config.get(k) != saved_config.get(k)]
        raise ValueError(f"checkpoint {path} was written for another configuration:\n  " + "\n  ".join(diffs))
    model.load_state_dict({k[len("model/"):]: v for k, v in entries.items() if k.startswith("model/")})
    if optimizer is not None:
        optimizer.load_state_dict({k[len("optim/"):]: v for k, v in entries.items() if k.startswith("optim/")})
    if rng is not None:
        if "rng" not in entries:
            raise ValueError(f"checkpoint {path} holds no generator state to restore")
        rng.bit_generator.state = json.loads(str(entries["rng"]))
    return {"step": int(entries["step"]), "config": saved_config}
