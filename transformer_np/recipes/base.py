"""A recipe is a name, its default settings and a function that builds a ready-to-train ``Run``.

    run = build_run("reverse", steps=800, seed=1)      defaults, with some settings overridden
    trainer = run.trainer(quiet=True)                 a Trainer wired with the run's pieces
    trainer.fit(run.steps)
    trainer.history["val_exact_match"][-1]

Settings are flat and JSON-able (numbers and strings), so the whole of them, with the recipe's
name, is the run's ``config``: it goes into every checkpoint, and ``build_run(**config)``
rebuilds the same run to resume it. Seeds: the model's weights and dropout draw from
``default_rng([seed, 0])``, the training batches from ``default_rng([seed, 1])``; held-out
data comes from ``EVAL_SEED`` and the task's test split, the same for every seed.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..checkpoint import CheckpointError, load_config
from ..train import Trainer

EVAL_SEED = 20170612  # the held-out sets: the same sequences in every run


@dataclass
class Recipe:
    """``build(settings) -> Run``; ``defaults`` lists every setting the recipe understands."""

    name: str
    description: str
    defaults: dict
    build: object


@dataclass
class Run:
    """Everything a Trainer needs, plus what the command line reports.

    metric           the key of ``eval_fn``'s result that sums the run up (e.g. "exact_match")
    higher_is_better whether a larger ``metric`` is better (accuracy) or worse (a loss)
    held_out         the evaluation data, for printing examples (recipe-specific, may be None)
    """

    config: dict
    model: object
    optimizer: object
    loss_fn: object
    get_batch: object
    schedule: object
    clip: object
    eval_fn: object
    eval_every: int
    metric: str
    higher_is_better: bool = True
    held_out: object = None
    extras: dict = field(default_factory=dict)

    @property
    def name(self):
        return self.config["recipe"]

    @property
    def steps(self):
        return self.config["steps"]

    def trainer(self, **kwargs):
        """A Trainer for this run (fresh data generator from the seed); ``kwargs`` override its options
        (quiet, eval_every, checkpoint_path, checkpoint_every, ...). A run with a tokenizer saves it
        in its checkpoints (as JSON), so that ``sample`` needs no corpus."""
        tokenizer = self.extras.get("tokenizer")
        extra = None if tokenizer is None else {"tokenizer": json.dumps(tokenizer.to_dict())}
        options = {"rng": seeded(self.config["seed"], 1), "schedule": self.schedule, "clip": self.clip,
                   "eval_fn": self.eval_fn, "eval_every": self.eval_every, "config": self.config,
                   "extra": extra, **kwargs}
        return Trainer(self.model, self.optimizer, self.loss_fn, self.get_batch, **options)


RECIPES = {}


def register(name, description, defaults):
    """Decorator: ``build(settings) -> Run`` becomes the recipe ``name``."""
    def wrap(build):
        RECIPES[name] = Recipe(name, description, {"seed": 0, **defaults}, build)
        return build
    return wrap


def build_run(recipe, **settings):
    """The Run of ``recipe`` with ``settings`` overriding its defaults (None means "the default")."""
    checked = check_settings(recipe, **settings)
    return RECIPES[recipe].build({"recipe": recipe, **checked})


def check_settings(recipe, **settings):
    """The settings of ``recipe``: its defaults, overridden by ``settings`` (None: the default),
    each checked (known, of the default's type, usable); refused with a message naming it."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe: expected one of {', '.join(map(repr, RECIPES))}, received {recipe!r}")
    defaults = RECIPES[recipe].defaults
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"settings of {recipe!r}: expected keys among {sorted(defaults)}, received {unknown}")
    merged = {**defaults, **{k: v for k, v in settings.items() if v is not None}}
    for key, value in merged.items():
        expected = type(defaults[key])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            merged[key] = value = float(value)  # lr=1 means 1.0
        if type(value) is not expected:
            raise TypeError(f"setting {key!r}: expected {expected.__name__}, received {value!r}")
        _check_setting(key, value)
    if "min_lr" in merged and merged["min_lr"] > merged["lr"]:
        raise ValueError(f"setting 'lr': expected at least min_lr={merged['min_lr']} (where the schedule ends), "
                         f"received {merged['lr']}")
    return merged


def load_run_config(path):
    """The config of a checkpoint written by a recipe's run (``train``), to rebuild that run;
    a CheckpointError naming the file when it holds no such config."""
    config = load_config(path)
    recipe = config.get("recipe")
    if recipe not in RECIPES:
        raise CheckpointError(f"checkpoint {path}: expected the checkpoint of a training recipe "
                              f"({', '.join(RECIPES)}), received one with "
                              + (f"the unknown recipe {recipe!r}" if recipe else "no recipe in its config"))
    try:
        settings = check_settings(recipe, **{k: v for k, v in config.items() if k != "recipe"})
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path}: expected the settings of {recipe!r}, received {error}") from None
    return {"recipe": recipe, **settings}


# Settings that may be 0 (every other integer is a count or a size: at least 1), and the
# fractions that must stay below 1; every float is finite and >= 0, a learning rate or a
# clipping norm > 0.
_MAY_BE_ZERO = ("seed", "warmup")
_FRACTIONS = ("dropout", "label_smoothing", "beta2")
_POSITIVE = ("lr", "clip")


def _check_setting(key, value):
    """Refuse a setting no run can use, naming it, before anything is built or trained."""
    if isinstance(value, int):
        low = 0 if key in _MAY_BE_ZERO else 1
        if value < low:
            raise ValueError(f"setting {key!r}: expected an integer >= {low}, received {value}")
    elif isinstance(value, float):
        ok = math.isfinite(value) and (value > 0 if key in _POSITIVE else value >= 0)
        if ok and key in _FRACTIONS:
            ok = value < 1
        if not ok:
            want = "in [0, 1)" if key in _FRACTIONS else "> 0" if key in _POSITIVE else ">= 0"
            raise ValueError(f"setting {key!r}: expected a finite number {want}, received {value}")


def seeded(seed, stream):
    """The generator of one random stream of a run: 0 model (weights, dropout), 1 batches."""
    return np.random.default_rng([int(seed), stream])


def held_out_rng():
    """A new generator for held-out data: the same draws every time, in every run."""
    return np.random.default_rng(EVAL_SEED)
