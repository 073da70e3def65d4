"""The training loop, shared by the command line, the tests and the notebooks.

One step is the chain rule run once, in the order a reader expects:

    inputs, targets = get_batch(rng)             a batch, drawn from the trainer's generator
    model.zero_grad()
    logits = model.forward(*inputs)
    loss = loss_fn.forward(logits, targets)
    model.backward(loss_fn.backward())           dL/dlogits, then back through the model
    grad_norm = clip_grad_norm(params, clip)     the norm BEFORE clipping is recorded
    optimizer.lr = schedule(step)                step counts updates from 1 (optim/schedules.py)
    optimizer.step()

Mixed precision (``precision="float16"`` or ``"bfloat16"``, notes/precision.md): the forward
and backward run inside ``autocast`` (16-bit values, float32 master weights and optimiser state,
Softmax and LayerNorm in float32); with a loss scaler the backward starts from
``loss_fn.backward(scale)`` and the gradients are unscaled before clipping (prec.6); a step whose
gradients are not finite is skipped and the scale lowered (prec.7).

``get_batch(rng) -> (inputs, targets)``: ``inputs`` is the tuple of positional arguments of
``model.forward`` (``(idx,)`` for a GPT, ``(src, tgt_in, src_mask, tgt_mask)`` for the
encoder-decoder), ``targets`` the ids the loss compares the logits with.

Exact resumption. Every random draw of a run comes from two places: the trainer's generator
``rng`` (batches) and the generators inside the model (dropout). A checkpoint holds both, with
the weights, the optimizer's moments, the step and the history, so that ``load`` followed by
``fit`` takes bit for bit the steps an uninterrupted run would have taken. Evaluation must not
draw from ``rng`` (give ``eval_fn`` its own fixed data) and runs in eval mode, where dropout
draws nothing.
"""

import json
import math
import time

import numpy as np

from ..checkpoint import load_checkpoint, load_config, save_checkpoint
from ..files import check_writable
from ..optim import clip_grad_norm
from ..precision import LossScaler, autocast, get_format
from ..validate import check_generator, check_int
from .progress import ProgressBar

HISTORY_KEYS = ("step", "loss", "lr", "grad_norm", "tokens_per_s")


class Trainer:
    """Trains ``model`` with ``optimizer`` on batches from ``get_batch``; see the module docstring.

    schedule          ``lr = schedule(step)`` with step = 1, 2, ...; None keeps the optimizer's lr
    clip              max global gradient norm (None: no clipping; the norm is recorded anyway)
    eval_fn           ``eval_fn(model) -> {metric: number}``, run in eval mode every
                      ``eval_every`` steps and at the end of ``fit`` (None: no evaluation)
    checkpoint_path   where ``save`` writes; may contain ``{step}`` (e.g. "run-{step:06d}.npz")
                      to keep one file per checkpoint instead of overwriting one
    checkpoint_every  save every N steps (and always at the end of ``fit`` when a path is set)
    config            JSON-able description of the run, saved in checkpoints and checked on load
    extra             {key: array or str} saved in every checkpoint as ``extra/<key>`` beside the
                      history, e.g. the tokenizer as JSON, so that sampling needs no corpus
    quiet             no progress bar (tests, scripts)
    precision         "float32" (default), "float16" or "bfloat16": the format of the forward and
                      backward passes (mixed precision, notes/precision.md); the model stays float32
    loss_scaler       a LossScaler, False for none, or None: a dynamic LossScaler() for float16,
                      none for bfloat16 and float32 (prec.6), (prec.7)

    ``history`` is a dict of lists, one entry per step for "step", "loss", "lr", "grad_norm",
    "tokens_per_s", and one per evaluation for "val_step" and "val_<metric>"; with a loss scaler
    also "loss_scale" (the scale the step used) and "skipped" (1 for a skipped step, else 0).
    """

    def __init__(self, model, optimizer, loss_fn, get_batch, *, rng, schedule=None, clip=None,
                 eval_fn=None, eval_every=None, checkpoint_path=None, checkpoint_every=None,
                 config=None, extra=None, quiet=False, precision="float32", loss_scaler=None):
        if clip is not None and not clip > 0:
            raise ValueError(f"clip: expected a positive max norm or None, received {clip!r}")
        if checkpoint_every is not None and checkpoint_path is None:
            raise ValueError("checkpoint_every: expected a checkpoint_path to write to, received None")
        self.model, self.optimizer, self.loss_fn, self.get_batch = model, optimizer, loss_fn, get_batch
        self.rng = check_generator(rng)
        self.schedule, self.clip = schedule, clip
        self.eval_fn = eval_fn
        self.eval_every = None if eval_every is None else check_int(eval_every, "eval_every")
        self.checkpoint_path = None if checkpoint_path is None else check_checkpoint_path(checkpoint_path)
        self.checkpoint_every = None if checkpoint_every is None else check_int(checkpoint_every, "checkpoint_every")
        self.config = None if config is None else json.loads(json.dumps(config))  # as it reads back
        self.extra = dict(extra or {})
        self.quiet = quiet
        self.precision = get_format(precision).name
        if self.precision != "float32":
            dtypes = sorted({str(p.dtype) for p in model.parameters()})
            if dtypes != ["float32"]:
                raise TypeError(f"precision={self.precision!r}: expected a float32 model (its master weights), "
                                f"received parameters of dtype {', '.join(dtypes)}")
        if loss_scaler is None:
            loss_scaler = LossScaler() if self.precision == "float16" else False
        if loss_scaler is not False and not isinstance(loss_scaler, LossScaler):
            raise TypeError(f"loss_scaler: expected a LossScaler, False or None, received {type(loss_scaler).__name__}")
        self.loss_scaler = loss_scaler or None
        self.step = 0
        self.history = {key: [] for key in self._history_keys() + ("val_step",)}
        self.saved_paths = []
        self._saved_step = None

    # -- one step -------------------------------------------------------------------------------
    def train_step(self):
        """One update; returns its history record ("step", "loss", "lr", "grad_norm", "tokens_per_s"),
        "tokens" (target positions, B * T) and "seconds" (batch, forward, backward and update)."""
        t0 = time.perf_counter()
        inputs, targets = self.get_batch(self.rng)
        self.model.zero_grad()
        scaler = self.loss_scaler
        with autocast(self.model, self.precision):  # float32: changes nothing
            logits = self.model.forward(*inputs)
            loss = float(self.loss_fn.forward(logits, targets))
            self.model.backward(self.loss_fn.backward(1.0 if scaler is None else scaler.scale))  # (prec.6)
        if scaler is not None:
            scale = scaler.scale
            finite = scaler.unscale(self.optimizer.params)  # (prec.6)
            scaler.update(finite)  # (prec.7)
            if not finite and math.isfinite(loss):
                return self._record(t0, targets, loss, math.inf, {"loss_scale": scale, "skipped": 1})
        grad_norm = clip_grad_norm(self.optimizer.params, self.clip if self.clip is not None else math.inf)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise FloatingPointError(
                f"step {self.step + 1}: expected a finite loss and gradient norm, received loss {loss}, "
                f"gradient norm {grad_norm}: training diverged (lower the lr or clip the gradients)"
            )
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(self.step + 1)
        self.optimizer.step()
        return self._record(t0, targets, loss, grad_norm, {} if scaler is None else {"loss_scale": scale, "skipped": 0})

    def _record(self, t0, targets, loss, grad_norm, scaling):
        """Count the step (taken or skipped) and append its record to the history."""
        self.step += 1
        tokens, seconds = int(targets.size), time.perf_counter() - t0  # tokens: target positions (no np. on a device array)
        record = {"step": self.step, "loss": loss, "lr": self.optimizer.lr, "grad_norm": grad_norm,
                  "tokens_per_s": tokens / seconds, **scaling}
        for key, value in record.items():
            self.history[key].append(value)
        return {**record, "tokens": tokens, "seconds": seconds}

    def _history_keys(self):
        return HISTORY_KEYS + (() if self.loss_scaler is None else ("loss_scale", "skipped"))

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, num_steps):
        """Train until ``self.step == num_steps`` (a total: after ``load``, the run goes on to it).

        Evaluates every ``eval_every`` steps and at the end, saves every ``checkpoint_every``
        steps and at the end; the last checkpoint is written after the final evaluation, so it
        holds it. Returns ``history``.
        """
        num_steps = check_int(num_steps, "num_steps", low=0)
        bar = ProgressBar(num_steps, start=self.step, enabled=not self.quiet)
        tokens, seconds = 0, 0.0  # training only: the throughput shown leaves evaluations out
        self.model.train()
        try:
            while self.step < num_steps:
                record = self.train_step()
                tokens, seconds = tokens + record["tokens"], seconds + record["seconds"]
                scaling = {} if self.loss_scaler is None else {
                    "scale": record["loss_scale"], "skipped": self.loss_scaler.skipped}
                bar.update(self.step, loss=record["loss"], lr=record["lr"], **scaling, **{"tok/s": tokens / seconds})
                if self.eval_fn and self.eval_every and self.step % self.eval_every == 0 and self.step < num_steps:
                    bar.message(self._format_metrics(self.evaluate()))
                if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.step < num_steps:
                    self.save()  # the last one is saved below, after the final evaluation
        finally:
            bar.close()
        if self.eval_fn is not None and (not self.history["val_step"] or self.history["val_step"][-1] != self.step):
            metrics = self.evaluate()
            if not self.quiet:
                bar.stream.write(self._format_metrics(metrics) + "\n")
        if self.checkpoint_path is not None and self._saved_step != self.step:
            self.save()
        return self.history

    def evaluate(self):
        """Run ``eval_fn(model)`` in eval mode, record it in the history and return it."""
        was_training = self.model.training
        self.model.eval()
        try:
            metrics = {key: float(value) for key, value in self.eval_fn(self.model).items()}
        finally:
            self.model.train(was_training)
        self.history["val_step"].append(self.step)
        for key, value in metrics.items():
            self.history.setdefault(f"val_{key}", []).append(value)
        return metrics

    def _format_metrics(self, metrics):
        return f"step {self.step}: " + "  ".join(f"val {k} {v:.4g}" for k, v in metrics.items())

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path=None):
        """Write a checkpoint (model, its generators, optimizer, step, rng, config, history, ``extra``);
        returns the path."""
        if path is None:
            if self.checkpoint_path is None:
                raise ValueError("save: expected a path (or a checkpoint_path given to the Trainer), received none")
            path = self.checkpoint_path.format(step=self.step)
        history = {f"history/{key}": np.asarray(values) for key, values in self.history.items()}
        scaler = {} if self.loss_scaler is None else {
            f"loss_scaler/{key}": np.asarray(value) for key, value in self.loss_scaler.state_dict().items()}
        save_checkpoint(path, self.model, self.optimizer, self.step, self.rng, self.config,
                        extra={**self.extra, **history, **scaler})
        self.saved_paths.append(str(path))
        self._saved_step = self.step
        return str(path)

    def load(self, path, may_differ=()):
        """Restore everything ``save`` wrote; the next ``fit`` continues exactly where the run stopped.

        The checkpoint's config must equal this trainer's (when it has one), except for the keys
        in ``may_differ`` (``("steps",)`` extends a run to more steps). Returns the checkpoint's
        {"step", "config", ...}.
        """
        expected = self.config
        if expected is not None and may_differ:
            saved = load_config(path)
            expected = {**expected, **{k: saved[k] for k in may_differ if k in saved}}
        info = load_checkpoint(path, self.model, self.optimizer, self.rng, config=expected)
        self.step = self._saved_step = info["step"]  # the checkpoint already holds this step
        saved = info.get("extra", {})
        self.history = {key[len("history/"):]: value.tolist() for key, value in saved.items()
                        if key.startswith("history/")} or {key: [] for key in self._history_keys() + ("val_step",)}
        if self.loss_scaler is not None and "loss_scaler/scale" in saved:
            self.loss_scaler.load_state_dict({key[len("loss_scaler/"):]: value for key, value in saved.items()
                                              if key.startswith("loss_scaler/")})
        return info


def check_checkpoint_path(path, name="checkpoint_path"):
    """``path`` as a str, refused now (not after training) unless ``path.format(step=...)`` works
    and the formatted path can be written; ``name`` is what the message calls it."""
    path = str(path)
    try:
        formatted = path.format(step=0)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"{name}: expected a path whose only field is {{step}} (e.g. 'run-{{step:06d}}.npz'), "
                         f"received {path!r} ({type(error).__name__}: {error})") from None
    check_writable(formatted, name)
    return path
