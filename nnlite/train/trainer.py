"""`Trainer`: the mini-batch training loop, evaluation and batched prediction.

Conventions:
* Data: ``x`` is an ndarray whose first axis is the sample axis (e.g. (N, C, H, W) or (N, D)),
  ``y`` an ndarray of length N (integer class labels (N,) for classification; any targets the
  loss accepts otherwise). Accuracy is reported only for integer labels (N,) with 2-D logits
  (N, C); otherwise it is NaN.
* Randomness: the trainer owns one ``numpy.random.Generator`` (``rng``: a Generator or an int
  seed; never NumPy's global RNG). It draws each epoch's permutation and is passed to
  ``transform(xb, rng)``. The validation split uses its own seed, drawn from ``rng`` once when
  the trainer is built (so a resumed run splits the same way). With a model built from
  seeded Generators, the same seed reproduces a run bit for bit (``epoch_time`` aside).
* Epoch numbering follows Keras: ``fit(x, y, epochs=E, initial_epoch=k)`` runs epochs
  k, k+1, ..., E-1 (0-based), i.e. ``E - k`` epochs; ``epochs`` is the index to stop before.
* Schedules are handled by the trainer (no scheduler callback is needed): with
  ``schedule_interval="epoch"`` (default) ``schedule.step()`` runs after every epoch (after
  validation, before the callbacks' ``on_epoch_end``); a schedule whose ``step`` needs a
  metric (``ReduceLROnPlateau``) gets ``val_loss`` when there is validation data, else the
  training ``loss``. ``schedule_interval="step"`` calls ``schedule.step()`` after every
  optimizer step instead (metric-driven schedules cannot run per step). A schedule built
  without its length (``WarmupCosine(opt, warmup_steps=W)``, ``CosineAnnealingLR(opt)``:
  ``total_steps``/``T_max`` left None) learns it from ``fit``: ``epochs * steps_per_epoch``
  with ``schedule_interval="step"`` (after the validation split is held out), ``epochs``
  otherwise; ``trainer.total_steps`` holds the run's optimizer steps.
* The reported ``loss`` is the data loss only (without the ``l2`` penalty), averaged over the
  epoch's samples (each batch's mean loss weighted by its size), computed from the forward
  passes of training itself (in training mode, weights changing during the epoch).
"""
from __future__ import annotations

import inspect
import math
import numbers
import time
from typing import Dict, Optional, Sequence

import numpy as np

from .. import parallel
from .._checks import as_generator, check_choice, check_int
from ..data.preprocess import stratified_split
from ..functional import softmax_forward
from ..grad_mode import no_grad
from ..nn.module import Module
from ..optim import ReduceLROnPlateau, clip_grad_norm, is_weight, l2_penalty
from .callbacks import Callback
from .history import History
from .progress import ProgressBar


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------
def _check_xy(x, y, name_x="x", name_y="y", need_y=True):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name_x} must be a numpy.ndarray, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"{name_x} must have a sample axis (rank >= 1), got shape {x.shape}")
    if y is None and not need_y:
        return x, None
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name_y} must be a numpy.ndarray, got {type(y).__name__}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{name_y} must have one entry per sample of {name_x}: expected length "
                         f"{x.shape[0]}, got shape {y.shape}")
    return x, y


def _is_labels(logits: np.ndarray, y: np.ndarray) -> bool:
    return (logits.ndim == 2 and y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
            and logits.shape[0] == y.shape[0])


def _holdout_split(y: np.ndarray, fraction: float, seed) -> tuple:
    """The trainer's validation split: (train_idx, val_idx), sorted int64.

    Integer labels (N,): `nnlite.data.stratified_split` (class proportions kept); other
    targets (regression): a plain random split of ``round(fraction * N)`` samples. Raises
    ValueError if either part would be empty.
    """
    rng = as_generator(seed)
    n = y.shape[0]
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        train, val = stratified_split(y, fraction, rng)
    else:
        val = np.sort(rng.permutation(n)[:int(round(fraction * n))])
        train = np.setdiff1d(np.arange(n), val)
    if val.size == 0 or train.size == 0:
        raise ValueError(f"val_split={fraction} of {n} samples leaves an empty "
                         f"{'validation' if val.size == 0 else 'training'} set")
    return train.astype(np.int64), val.astype(np.int64)


def _wants_metric(schedule) -> bool:
    """True if ``schedule.step`` needs a metric argument (ReduceLROnPlateau-like)."""
    if isinstance(schedule, ReduceLROnPlateau):
        return True
    try:
        sig = inspect.signature(schedule.step)
    except (TypeError, ValueError):
        return False
    params = [p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return bool(params) and params[0].default is inspect.Parameter.empty


class _Modes:
    """Remember every submodule's train/eval flag and put them back on exit."""

    def __init__(self, model: Module, training: bool):
        self.model, self.training = model, training

    def __enter__(self):
        self.saved = [(m, m.training) for _, m in self.model.named_modules()]
        self.model.train(self.training)
        return self

    def __exit__(self, *exc):
        for m, flag in self.saved:
            object.__setattr__(m, "training", flag)
        return False


# -------------------------------------------------------------------------------------------------
# Trainer
# -------------------------------------------------------------------------------------------------
class Trainer:
    """Mini-batch trainer for an ``nnlite`` model: ``fit``, ``evaluate``, ``predict*``.

    x: (N, ...) -> model -> (N, C); y: (N,) int labels or (N, ...) targets.  Arguments:
    model: a ``Module`` mapping a batch (B, ...) to outputs (B, C) (logits for classification).
    loss: a loss object (``value = loss.forward(out, yb)``, ``dout = loss.backward()``).
    optimizer: an ``nnlite.optim`` optimizer built on the model's parameters (``step``,
        ``param_groups``, ``state_dict``/``load_state_dict``).
    schedule: optional learning-rate schedule bound to ``optimizer`` (see module docstring).
    callbacks: iterable of `Callback` (or None), called in the given order (the progress bar
        last; callbacks that save checkpoints run their ``on_epoch_end`` after the others).
    batch_size: training batch size B; the last partial batch of an epoch is kept.
    rng: Generator or int seed for shuffling, the validation split and ``transform``.
    transform: optional augmentation ``transform(xb, rng) -> xb`` applied to each training
        batch (never to validation/prediction); it must keep the batch length.
    grad_clip: optional max global L2 norm of the gradients (``nnlite.optim.clip_grad_norm``).
    progress: ``"auto"`` (a `ProgressBar` on stdout: per-batch bar on a terminal, one line per
        epoch otherwise), ``True`` (force the per-batch bar), ``False`` (silent) or a
        `ProgressBar` instance.
    l2: explicit L2 regularization strength ``reg`` via ``nnlite.optim.l2_penalty`` (default
        ``select=is_weight``): adds ``reg * w`` to the gradient of every trainable parameter
        with ndim >= 2 (weights, not biases / norm scales), the gradient of
        ``reg/2 * ||w||^2``. The penalty is NOT included in the reported loss (so ``loss`` and
        ``val_loss`` stay comparable). Do not combine with the optimizer's ``weight_decay``.
    schedule_interval: ``"epoch"`` or ``"step"`` (see the module docstring; a schedule
        built without its length learns it from ``fit``).
    eval_batch_size: default batch size for `evaluate`, `predict*` and validation
        (default: ``max(batch_size, 256)``).
    threads: worker threads for the kernels during ``fit``, ``evaluate`` and ``predict*``
        (a ``nnlite.parallel.threads`` block: chunks of each batch on that many cores, BLAS
        single-threaded meanwhile); default ``None`` = ``nnlite.parallel.default_num_threads()``
        (BLAS's thread count when threadpoolctl is installed, else 1); 1 = sequential.

    Attributes during ``fit`` (read by callbacks): ``epoch`` (current 0-based epoch),
    ``epochs``, ``initial_epoch``, ``has_validation``, ``steps_per_epoch``, ``total_steps``
    (``epochs * steps_per_epoch``), ``num_samples``, ``stop_training``, ``history``.
    """

    def __init__(self, model, loss, optimizer, schedule=None, callbacks: Sequence[Callback] = (),
                 batch_size: int = 128, rng=0, transform=None, grad_clip: Optional[float] = None,
                 progress="auto", l2: float = 0.0, schedule_interval: str = "epoch",
                 eval_batch_size: Optional[int] = None, threads: Optional[int] = None):
        if not isinstance(model, Module):
            raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
        for attr in ("forward", "backward"):
            if not callable(getattr(loss, attr, None)):
                raise TypeError(f"loss must have forward(pred, target) and backward() methods, "
                                f"got {type(loss).__name__}")
        for attr in ("step", "param_groups"):
            if not hasattr(optimizer, attr):
                raise TypeError(f"optimizer must have step() and param_groups, got "
                                f"{type(optimizer).__name__}")
        if schedule is not None and not callable(getattr(schedule, "step", None)):
            raise TypeError(f"schedule must have a step() method, got {type(schedule).__name__}")
        check_choice(schedule_interval, "schedule_interval", ("epoch", "step"))
        if schedule is not None and schedule_interval == "step" and _wants_metric(schedule):
            raise ValueError(f"{type(schedule).__name__}.step needs a metric, so it cannot run "
                             "per batch; use schedule_interval='epoch'")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable as transform(xb, rng), got "
                            f"{type(transform).__name__}")
        if grad_clip is not None:
            if not isinstance(grad_clip, numbers.Real) or not grad_clip > 0:
                raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
            grad_clip = float(grad_clip)
        if not isinstance(l2, numbers.Real) or not l2 >= 0:
            raise ValueError(f"l2 must be a non-negative number, got {l2!r}")
        if threads is not None:
            threads = check_int(threads, "threads", what="a positive int")
        if callbacks is None:
            callbacks = ()
        if isinstance(callbacks, Callback):
            raise TypeError("callbacks must be a list of Callback, got a single "
                            f"{type(callbacks).__name__}; pass [callback]")
        try:
            cbs = list(callbacks)
        except TypeError:
            raise TypeError(f"callbacks must be a list of Callback or None, got "
                            f"{type(callbacks).__name__}") from None
        for i, cb in enumerate(cbs):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}] must be an nnlite Callback, got {type(cb).__name__}")
        if isinstance(progress, ProgressBar):
            bar = progress
        elif progress == "auto" and isinstance(progress, str):
            bar = ProgressBar()
        elif progress is True:
            bar = ProgressBar(force=True)
        elif progress is False or progress is None:
            bar = None
        else:
            raise ValueError(f"progress must be 'auto', True, False or a ProgressBar, got {progress!r}")

        self.model, self.loss, self.optimizer, self.schedule = model, loss, optimizer, schedule
        self.callbacks = cbs
        self.progress_bar = bar
        self.batch_size = check_int(batch_size, "batch_size", what="a positive int")
        self.eval_batch_size = (max(self.batch_size, 256) if eval_batch_size is None
                                else check_int(eval_batch_size, "eval_batch_size", what="a positive int"))
        self.rng = as_generator(rng)
        self.split_seed = int(self.rng.integers(0, 2**63 - 1))
        self.transform = transform
        self.grad_clip = grad_clip
        self.l2 = float(l2)
        self.schedule_interval = schedule_interval
        self.threads = threads
        self.history = History()
        self.stop_training = False
        self.epoch = 0
        self.epochs = 0
        self.initial_epoch = 0
        self.has_validation = False
        self.steps_per_epoch = 0
        self.total_steps = 0
        self.num_samples = 0

    # -- state for checkpoints ---------------------------------------------------------------
    def get_state(self) -> dict:
        """JSON-serializable trainer state: the Generator's bit-generator state and the split seed."""
        return {"rng": self.rng.bit_generator.state, "split_seed": self.split_seed}

    def check_state(self, state: dict) -> None:
        """Check `get_state` output without changing anything: ValueError/TypeError naming the entry."""
        if not isinstance(state, dict) or "rng" not in state or "split_seed" not in state:
            raise ValueError(f"trainer state must be a dict with 'rng' and 'split_seed', got {state!r:.80}")
        seed = state["split_seed"]
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
            raise ValueError(f"trainer state 'split_seed' must be an int in [0, 2**63), got {seed!r}")
        try:
            type(self.rng.bit_generator)(0).state = state["rng"]  # on a scratch bit generator
        except Exception as e:
            raise ValueError(f"trainer state 'rng' is not a valid "
                             f"{type(self.rng.bit_generator).__name__} state: {e}") from None

    def set_state(self, state: dict) -> None:
        """Restore `get_state` output (checked first; the Generator is updated in place)."""
        self.check_state(state)
        self.rng.bit_generator.state = state["rng"]
        self.split_seed = int(state["split_seed"])

    # -- callbacks ---------------------------------------------------------------------------
    def _all_callbacks(self):
        return self.callbacks + ([self.progress_bar] if self.progress_bar is not None else [])

    def _call(self, hook, *args):
        cbs = self._all_callbacks()
        if hook == "on_epoch_end":  # checkpoint writers last: they save the epoch's final state
            cbs = ([cb for cb in cbs if not getattr(cb, "saves_checkpoints", False)]
                   + [cb for cb in cbs if getattr(cb, "saves_checkpoints", False)])
        for cb in cbs:
            getattr(cb, hook)(self, *args)

    def _current_lr(self) -> float:
        try:
            return float(self.optimizer.param_groups[0]["lr"])
        except (AttributeError, IndexError, KeyError, TypeError):
            return math.nan

    def _trainable(self):
        params = getattr(self.optimizer, "params", None)
        if params is None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
        return [p for p in params if p.trainable]

    # -- training ------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, val_data=None, val_split: float = 0.0,
            initial_epoch: int = 0, validation_data=None) -> History:
        """Train for epochs ``initial_epoch .. epochs-1``; returns ``self.history``.

        x: (N, ...) inputs; y: (N,) labels (or targets the loss accepts).
        val_data: optional ``(x_val, y_val)``, evaluated in eval mode after every epoch;
            ``validation_data`` is the same argument under its Keras name (pass one of them).
        val_split: fraction in [0, 1) of (x, y) held out for validation, stratified by class
            (``nnlite.data.stratified_split``; a random split for non-label targets), drawn
            from the trainer's split seed; cannot be combined with ``val_data``.
        initial_epoch: first epoch index, ``<= epochs`` (to resume: ``initial_epoch=info["epoch"]``
            from `load_checkpoint`). With ``initial_epoch == 0`` the history starts afresh;
            otherwise records of epochs >= initial_epoch are dropped and the run appends to the
            rest, and callbacks keep their state (best value, patience count).

        Each epoch draws a fresh permutation of the training samples from ``self.rng`` (every
        sample once, last partial batch kept). Per batch: ``transform``, the callbacks'
        ``on_train_batch_begin`` (which may replace the batch), ``model.train()``, forward,
        loss, zero gradients, backward, ``l2``, gradient clipping, ``optimizer.step()``.
        Without validation data the History has no ``val_*`` columns. A schedule built without
        its length gets it here (see the module docstring). Errors from the model (e.g. shape
        mismatches) propagate unchanged.
        """
        if y is None:
            raise TypeError("y must be a numpy.ndarray of labels or targets (one per sample of "
                            "x), got None")
        x, y = _check_xy(x, y)
        epochs = check_int(epochs, "epochs", minimum=0, what="a non-negative int")
        initial_epoch = check_int(initial_epoch, "initial_epoch", minimum=0, what="a non-negative int")
        if initial_epoch > epochs:
            raise ValueError(f"initial_epoch={initial_epoch} is after epochs={epochs}: fit runs "
                             f"epochs initial_epoch .. epochs-1 (epochs is the index to stop "
                             f"before, as in Keras), so nothing would be trained; pass "
                             f"epochs >= {initial_epoch}")
        if (isinstance(val_split, bool) or not isinstance(val_split, numbers.Real)
                or not 0 <= val_split < 1):
            raise ValueError(f"val_split must be a number in [0, 1), got {val_split!r}")
        if validation_data is not None:
            if val_data is not None:
                raise ValueError("pass either val_data or validation_data (the same argument), not both")
            val_data, vname = validation_data, "validation_data"
        else:
            vname = "val_data"
        if val_split and val_data is not None:
            raise ValueError(f"pass either {vname} or val_split, not both")
        if x.shape[0] == 0:
            raise ValueError("x holds no samples (shape {})".format(x.shape))
        if val_data is not None:
            if not isinstance(val_data, (tuple, list)) or len(val_data) != 2:
                raise TypeError(f"{vname} must be a pair (x_val, y_val), got {type(val_data).__name__}")
            xv, yv = _check_xy(val_data[0], val_data[1], f"{vname}[0]", f"{vname}[1]")
            if xv.shape[0] == 0:
                raise ValueError(f"{vname}[0] holds no samples (shape {xv.shape})")
        elif val_split:
            tr, va = _holdout_split(y, float(val_split), self.split_seed)
            xv, yv = x[va], y[va]
            x, y = x[tr], y[tr]
        else:
            xv = yv = None

        n = x.shape[0]
        self.epochs = int(epochs)
        self.initial_epoch = int(initial_epoch)
        self.has_validation = xv is not None
        self.num_samples = n
        self.steps_per_epoch = -(-n // self.batch_size)
        self.total_steps = self.epochs * self.steps_per_epoch
        self.stop_training = False
        self._size_schedule()
        if initial_epoch == 0:
            self.history = History()
        else:
            self.history.truncate(initial_epoch)

        try:
            with parallel.threads(self.threads):
                self._fit_epochs(x, y, xv, yv, initial_epoch, epochs)
        except BaseException:
            if self.progress_bar is not None:
                self.progress_bar.abort()  # end a half-drawn bar line before the traceback
            raise
        return self.history

    def _size_schedule(self) -> None:
        """Give a schedule built without its length the run's number of schedule steps."""
        sched = self.schedule
        if sched is None or not getattr(sched, "needs_total_steps", False):
            return
        steps = self.total_steps if self.schedule_interval == "step" else self.epochs
        if steps < 1:
            return  # epochs=0: nothing will step
        sched.set_total_steps(steps)

    def _fit_epochs(self, x, y, xv, yv, initial_epoch, epochs):
        self._call("on_train_begin")
        for epoch in range(int(initial_epoch), int(epochs)):
            self.epoch = epoch
            logs = self._run_epoch(x, y, xv, yv, epoch)
            self.history.append(epoch, logs)
            self._call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        self._call("on_train_end")

    def _run_epoch(self, x, y, xv, yv, epoch) -> Dict[str, float]:
        t0 = time.perf_counter()
        self._call("on_epoch_begin", epoch)
        lr_epoch = self._current_lr()
        n, bs = x.shape[0], self.batch_size
        perm = self.rng.permutation(n)
        loss_sum, seen, correct, acc_n = 0.0, 0, 0, 0
        for b, start in enumerate(range(0, n, bs)):
            idx = perm[start:start + bs]
            xb, yb = x[idx], y[idx]
            if self.transform is not None:
                xb = self.transform(xb, self.rng)
                if not isinstance(xb, np.ndarray) or xb.shape[:1] != yb.shape[:1]:
                    raise ValueError(f"transform must return an array with {yb.shape[0]} samples, "
                                     f"got {getattr(xb, 'shape', type(xb).__name__)}")
            for cb in self._all_callbacks():
                rep = cb.on_train_batch_begin(self, b, xb, yb)
                if rep is not None:
                    if not isinstance(rep, tuple) or len(rep) != 2:
                        raise TypeError(f"{type(cb).__name__}.on_train_batch_begin must return None "
                                        f"or a tuple (xb, yb), got {type(rep).__name__}")
                    xb, yb = _check_xy(rep[0], rep[1], "replacement xb", "replacement yb")
            lr = self._current_lr()
            value, batch_correct = self._train_step(xb, yb)
            m = xb.shape[0]
            loss_sum += value * m
            seen += m
            batch_acc = math.nan
            if batch_correct is not None:
                correct += batch_correct
                acc_n += m
                batch_acc = batch_correct / m
            self._call("on_train_batch_end", b, {"loss": value, "acc": batch_acc, "size": m,
                                                 "lr": lr})
        logs = {"loss": loss_sum / seen, "acc": correct / acc_n if acc_n else math.nan}
        if xv is not None:
            ev = self.evaluate(xv, yv)
            logs["val_loss"], logs["val_acc"] = ev["loss"], ev["acc"]
        logs["lr"] = lr_epoch
        self._call("on_validation_end", epoch, logs)
        if self.schedule is not None and self.schedule_interval == "epoch":
            if _wants_metric(self.schedule):
                self.schedule.step(logs["val_loss"] if xv is not None else logs["loss"])
            else:
                self.schedule.step()
        logs["epoch_time"] = time.perf_counter() - t0
        return logs

    def _train_step(self, xb, yb):
        """One optimizer step on a batch; returns (mean loss, number correct or None)."""
        self.model.train()
        out = self.model.forward(xb)
        value = float(self.loss.forward(out, yb))
        dout = self.loss.backward()
        correct = int(np.count_nonzero(out.argmax(axis=1) == yb)) if _is_labels(out, yb) else None
        self.model.zero_grad()
        self.model.backward(dout)
        if self.l2 or self.grad_clip is not None:
            params = self._trainable()
            if params and self.l2:
                l2_penalty(params, self.l2, select=is_weight)
            if params and self.grad_clip is not None:
                clip_grad_norm(params, self.grad_clip)
        self.optimizer.step()
        if self.schedule is not None and self.schedule_interval == "step":
            self.schedule.step()
        return value, correct

    # -- inference -----------------------------------------------------------------------------
    def predict_logits(self, x: np.ndarray, batch_size: Optional[int] = None) -> np.ndarray:
        """Model outputs for ``x`` (N, ...) -> (N, C), in eval mode, ``batch_size`` samples at a time,
        under ``nnlite.no_grad()`` (no backward follows). Every submodule's train/eval flag is
        restored afterwards.
        """
        x, _ = _check_xy(x, None, need_y=False)
        bs = self.eval_batch_size if batch_size is None else check_int(batch_size, "batch_size", what="a positive int")
        outs = []
        with _Modes(self.model, training=False), parallel.threads(self.threads), no_grad():
            for start in range(0, x.shape[0], bs):
                outs.append(np.array(self.model.forward(x[start:start + bs]), copy=True))
        if not outs:
            raise ValueError(f"x holds no samples (shape {x.shape})")
        return np.concatenate(outs, axis=0)

    def predict_proba(self, x: np.ndarray, batch_size: Optional[int] = None) -> np.ndarray:
        """Softmax class probabilities (N, C) for ``x`` (batched, eval mode, rows sum to 1)."""
        logits = self.predict_logits(x, batch_size)
        if logits.ndim != 2:
            raise ValueError(f"predict_proba needs 2-D logits (N, C), the model gives {logits.shape}")
        return softmax_forward(logits, axis=1)[0]

    def predict(self, x: np.ndarray, batch_size: Optional[int] = None) -> np.ndarray:
        """Predicted class labels (N,) int64: the argmax of the logits (batched, eval mode)."""
        logits = self.predict_logits(x, batch_size)
        if logits.ndim != 2:
            raise ValueError(f"predict needs 2-D logits (N, C), the model gives {logits.shape}")
        return logits.argmax(axis=1).astype(np.int64)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: Optional[int] = None) -> Dict[str, float]:
        """Mean loss and accuracy of the model on (x, y) in eval mode, batched.

        Returns ``{"loss": float, "acc": float}``; the loss is the size-weighted mean of the
        batch losses (the exact sample mean for unweighted mean losses), acc is NaN when y are
        not class labels. Runs under ``nnlite.no_grad()``. Every submodule's train/eval flag is
        restored afterwards.
        """
        x, y = _check_xy(x, y)
        if x.shape[0] == 0:
            raise ValueError(f"x holds no samples (shape {x.shape})")
        bs = self.eval_batch_size if batch_size is None else check_int(batch_size, "batch_size", what="a positive int")
        loss_sum, correct, labels = 0.0, 0, True
        with _Modes(self.model, training=False), parallel.threads(self.threads), no_grad():
            for start in range(0, x.shape[0], bs):
                xb, yb = x[start:start + bs], y[start:start + bs]
                out = self.model.forward(xb)
                loss_sum += float(self.loss.forward(out, yb)) * xb.shape[0]
                if labels and _is_labels(out, yb):
                    correct += int(np.count_nonzero(out.argmax(axis=1) == yb))
                else:
                    labels = False
        n = x.shape[0]
        return {"loss": loss_sum / n, "acc": correct / n if labels else math.nan}

    def __repr__(self) -> str:
        return (f"Trainer(model={type(self.model).__name__}, optimizer={type(self.optimizer).__name__}, "
                f"batch_size={self.batch_size}, callbacks={[type(c).__name__ for c in self.callbacks]})")
