"""Runs trained once per test session and shared by the tests that need a trained model.

    run, history = trained("reverse")              the recipe's defaults
    run, history = trained("copy", steps=300)      settings as in build_run

Training is the slow part of the tests that check results; several test files look at the
same trained model (its accuracy, its attention), so it is trained on first use only.
"""

from functools import lru_cache

from transformer_np.recipes import build_run


@lru_cache(maxsize=None)
def _trained(recipe, settings):
    run = build_run(recipe, **dict(settings))
    history = run.trainer(quiet=True, eval_every=None).fit(run.steps)  # evaluated once, at the end
    return run, history


def trained(recipe, **settings):
    """(run, history) of ``recipe`` trained for ``run.steps`` steps, evaluated at the end."""
    return _trained(recipe, tuple(sorted(settings.items())))
