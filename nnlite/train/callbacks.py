"""Training callbacks: hooks the `Trainer` calls around epochs and batches.

Writing your own callback:
Subclass `Callback` and override any of the hooks; every hook receives the trainer, so a
callback can read ``trainer.model``, ``trainer.optimizer``, ``trainer.history``,
``trainer.epoch`` (the current 0-based epoch), ``trainer.epochs`` (the epoch ``fit`` stops
before), ``trainer.initial_epoch`` (the epoch ``fit`` started from; > 0 when resuming),
``trainer.has_validation`` (whether the epoch logs will hold ``val_*``),
``trainer.steps_per_epoch``, ``trainer.total_steps``, ``trainer.num_samples`` and
``trainer.rng`` (the trainer's ``numpy.random.Generator``; draw from it to stay
reproducible). Hooks, in order::

    on_train_begin(trainer)
      on_epoch_begin(trainer, epoch)
        on_train_batch_begin(trainer, batch, xb, yb) -> None or (xb, yb)   # per batch
        on_train_batch_end(trainer, batch, logs)                           # per batch
      on_validation_end(trainer, epoch, logs)    # may add metrics; NaNGuard checks here
      on_epoch_end(trainer, epoch, logs)         # every callback, in the given order, then
      on_epoch_end of the callbacks that save checkpoints (``saves_checkpoints = True``,
                   e.g. ModelCheckpoint), so the state they save is the epoch's final state
    on_train_end(trainer)

``on_train_batch_begin`` may return a replacement ``(xb, yb)`` (e.g. adversarial examples);
the next callback then sees the replacement, and the trainer trains on the last one. It runs
after the trainer's ``transform`` (augmentation). Batch ``logs`` hold ``loss`` (the batch's
mean loss), ``acc`` (batch accuracy, NaN when the targets are not class labels), ``size``
(the number of samples) and ``lr`` (the lr used for the step). Epoch ``logs`` hold ``loss``,
``acc``, ``lr`` (the lr at the start of the epoch), ``epoch_time`` (seconds, validation
included) and, only when there is validation data, ``val_loss`` and ``val_acc`` (without
validation data the `History` has no ``val_*`` columns at all).

``on_validation_end`` runs after the epoch's validation, before the schedule step and before
the epoch is recorded: a callback may add its own metrics to ``logs`` there (e.g.
``nnlite.attacks.RobustValidation`` adds ``val_robust_acc``); they are recorded in the
`History` and callbacks such as `EarlyStopping` or `ModelCheckpoint` can monitor them.
`NaNGuard` checks the epoch's losses and the model's weights there, i.e. before any
``on_epoch_end``: a diverged epoch raises before a checkpoint could be written.

Set ``trainer.stop_training = True`` to stop after the current epoch. ``on_epoch_end`` runs
after the epoch's schedule step and after the epoch was appended to ``trainer.history``,
so a checkpoint written there resumes exactly at the next epoch. ``on_train_end`` runs when
``fit`` finishes normally (also after an early stop), not when an exception escapes.

State across resume:
A callback whose decisions depend on earlier epochs keeps that state in ``state_dict()`` (a
flat dict of JSON values and ndarrays) and takes it back in ``load_state_dict(state)``
(validated first by ``check_state_dict(state, trainer)``). Checkpoints written with a
``trainer`` save the state of each of ``trainer.callbacks`` and `load_checkpoint` restores it
(matched by class name and position), and ``on_train_begin`` keeps the state when ``fit``
resumes (``initial_epoch > 0``): two epochs plus a resumed two equal four epochs for
`EarlyStopping` (best value, wait count, best weights) and `ModelCheckpoint` (best value).
"""
from __future__ import annotations

import math
import numbers
import os
import string
import warnings
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np

from .._checks import check_bool, check_choice, check_path
from .history import HISTORY_KEYS, History  # noqa: F401  (re-exported: History moved there)


class TrainingDiverged(FloatingPointError):
    """Raised by `NaNGuard` when the training loss, a validation loss or the weights become
    NaN or infinite.

    Attributes ``epoch`` (0-based), ``batch`` (0-based index within the epoch, or ``None`` when
    the epoch-end check fired) and ``loss`` (the offending value, NaN for weights).
    """

    def __init__(self, message: str, epoch: int, batch: Optional[int], loss: float):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


class Callback:
    """Base class of training callbacks: every hook does nothing by default.

    See the module docstring for the hook order, the ``logs`` contents and the state kept
    across a resume. ``saves_checkpoints = True`` (class attribute) makes the trainer call
    this callback's ``on_epoch_end`` after every other callback's.
    """

    saves_checkpoints = False

    def on_train_begin(self, trainer) -> None:
        """Called once at the start of ``fit`` (``trainer.initial_epoch`` > 0 when resuming)."""

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Called at the start of each epoch (``epoch`` is 0-based and counts from ``initial_epoch``)."""

    def on_train_batch_begin(self, trainer, batch: int, xb: np.ndarray, yb: np.ndarray):
        """Called before each training step on the (augmented) batch.

        Return ``None`` to keep ``(xb, yb)``, or a tuple ``(xb, yb)`` of ndarrays to replace
        the batch (``xb`` and ``yb`` of equal length; rank and dtype as the model expects).
        """
        return None

    def on_train_batch_end(self, trainer, batch: int, logs: Dict[str, float]) -> None:
        """Called after each optimizer step with the batch's ``loss``, ``acc``, ``size``, ``lr``."""

    def on_validation_end(self, trainer, epoch: int, logs: Dict[str, float]) -> None:
        """Called after each epoch's validation, before it is recorded; may add entries to ``logs``."""

    def on_epoch_end(self, trainer, epoch: int, logs: Dict[str, float]) -> None:
        """Called after each epoch (after validation and the schedule step) with the epoch's logs."""

    def on_train_end(self, trainer) -> None:
        """Called once when ``fit`` finishes normally."""

    # -- state kept across a resume ----------------------------------------------------------
    def state_dict(self) -> dict:
        """State that must survive a resume: a flat dict ``{name: JSON value or ndarray}``.

        The base class keeps none (``{}``); checkpoints store JSON values in their metadata
        and arrays as arrays.
        """
        return {}

    def check_state_dict(self, state: dict, trainer=None) -> None:
        """Raise ValueError/TypeError naming the entry if ``state`` cannot be loaded; change nothing."""
        if not isinstance(state, dict):
            raise TypeError(f"{type(self).__name__} state must be a dict, got {type(state).__name__}")
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got entries {sorted(state)[:5]}")

    def load_state_dict(self, state: dict, trainer=None) -> None:
        """Restore `state_dict` output (checked first with `check_state_dict`)."""
        self.check_state_dict(state, trainer)


def _resolve_mode(mode: str, monitor: str) -> str:
    check_choice(mode, "mode", ("auto", "min", "max"))
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


_VAL_HINT = "; pass validation_data=, val_data or val_split to fit"


def _monitored(logs: Dict[str, float], monitor: str, who: str) -> float:
    if monitor not in logs:
        hint = _VAL_HINT if monitor.startswith("val_") else ""
        raise ValueError(f"{who} monitors {monitor!r}, but the epoch logs only have "
                         f"{sorted(logs)}{hint}")
    value = float(logs[monitor])
    return value


def _check_val_monitor(trainer, monitor: str, who: str) -> None:
    """At ``on_train_begin``: a ``val_*`` metric needs validation data (fail now, not after an epoch)."""
    if monitor.startswith("val_") and not getattr(trainer, "has_validation", True):
        raise ValueError(f"{who} monitors {monitor!r}, but fit has no validation data, so the "
                         f"epoch logs will have no {monitor!r}{_VAL_HINT}")


def _resuming(trainer) -> bool:
    return int(getattr(trainer, "initial_epoch", 0) or 0) > 0


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_entries(state, who: str, spec: Dict[str, tuple], array_prefix: Optional[str] = None):
    """Validate a callback state dict: ``spec`` maps each JSON entry to (kind, optional) with
    kind 'real' (number, +-inf allowed), 'int' (>= 0) or 'str'; keys starting with
    ``array_prefix`` must be ndarrays. Raises TypeError/ValueError naming the entry."""
    if not isinstance(state, dict):
        raise TypeError(f"{who} state must be a dict, got {type(state).__name__}")
    for key, value in state.items():
        if array_prefix is not None and isinstance(key, str) and key.startswith(array_prefix):
            if not isinstance(value, np.ndarray) or value.dtype.hasobject:
                raise TypeError(f"{who} state entry {key!r} must be a numeric ndarray, "
                                f"got {type(value).__name__}")
            continue
        if key not in spec:
            raise ValueError(f"{who} state has the unexpected entry {key!r} (expected {sorted(spec)})")
    for key, (kind, optional) in spec.items():
        if key not in state:
            raise ValueError(f"{who} state is missing the entry {key!r}")
        v = state[key]
        if v is None and optional:
            continue
        if kind == "real":
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v)
            want = "a number"
        elif kind == "int":
            ok = _is_int(v) and v >= 0
            want = "a non-negative int"
        elif kind == "strlist":
            ok = isinstance(v, list) and all(isinstance(a, str) for a in v)
            want = "a list of str"
        else:
            ok = isinstance(v, str)
            want = "a str"
        if not ok:
            raise ValueError(f"{who} state entry {key!r} must be {want}"
                             f"{' or None' if optional else ''}, got {v!r:.60}")


class _Monitor:
    """Shared 'did the monitored value improve' logic for EarlyStopping / ModelCheckpoint."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str naming an epoch log key, got {type(monitor).__name__}")
        if (isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real)
                or not math.isfinite(min_delta) or min_delta < 0):
            raise ValueError(f"min_delta must be a non-negative finite number, got {min_delta!r}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = float(min_delta)
        self.best = self.initial()

    def initial(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    An epoch improves when its value beats the best so far by more than ``min_delta``
    (``mode="min"``: lower is better; ``"max"``: higher; ``"auto"``: max when the name holds
    ``"acc"``, else min). A NaN value never counts as an improvement. After ``patience``
    consecutive epochs without improvement, ``trainer.stop_training`` is set (training stops
    after that epoch) and ``stopped_epoch`` records it (0-based; ``None`` if never stopped).

    ``restore_best_weights=True`` keeps a copy of the model's ``state_dict`` at the best epoch
    and loads it back when training ends (whether it stopped early or ran all epochs).
    ``best`` and ``best_epoch`` hold the best value and its 0-based epoch.

    State across resume: ``best``, ``best_epoch``, ``wait`` and the best weights are saved in
    checkpoints written with the trainer and restored by `load_checkpoint`; a resumed ``fit``
    (``initial_epoch > 0``) continues counting instead of starting afresh. A ``val_*``
    monitor without validation data raises ValueError at ``on_train_begin``.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if not _is_int(patience) or patience < 0:
            raise ValueError(f"patience must be a non-negative int, got {patience!r}")
        self._mon = _Monitor(monitor, mode, min_delta)
        self.monitor, self.mode, self.min_delta = self._mon.monitor, self._mon.mode, self._mon.min_delta
        self.patience = int(patience)
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")
        self._reset()

    def _reset(self):
        self._mon.best = self._mon.initial()
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None

    @property
    def best(self) -> float:
        return self._mon.best

    def on_train_begin(self, trainer):
        _check_val_monitor(trainer, self.monitor, "EarlyStopping")
        if _resuming(trainer):
            self.stopped_epoch = None  # keep best / wait / weights: the run continues
        else:
            self._reset()

    def on_epoch_end(self, trainer, epoch, logs):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._mon.improved(value):
            self._mon.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    _SPEC = {"best": ("real", False), "wait": ("int", False), "best_epoch": ("int", True),
             "stopped_epoch": ("int", True), "monitor": ("str", False)}

    def state_dict(self) -> dict:
        """``best``, ``wait``, ``best_epoch``, ``stopped_epoch``, ``monitor`` and, with
        ``restore_best_weights``, the best weights as ``best_weights/<name>`` arrays."""
        state = {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch,
                 "stopped_epoch": self.stopped_epoch, "monitor": self.monitor}
        if self.best_weights is not None:
            for name, a in self.best_weights.items():
                state["best_weights/" + name] = np.array(a, copy=True)
        return state

    def check_state_dict(self, state, trainer=None) -> None:
        _check_entries(state, "EarlyStopping", self._SPEC, array_prefix="best_weights/")
        if state["monitor"] != self.monitor:
            raise ValueError(f"EarlyStopping state monitors {state['monitor']!r}, this callback "
                             f"monitors {self.monitor!r}")
        weights = {k[len("best_weights/"):]: v for k, v in state.items()
                   if k.startswith("best_weights/")}
        if weights and trainer is not None:
            trainer.model.check_state_dict(weights, strict=True, source="saved best weights")

    def load_state_dict(self, state, trainer=None) -> None:
        self.check_state_dict(state, trainer)
        self._mon.best = float(state["best"])
        self.wait = int(state["wait"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.stopped_epoch = None if state["stopped_epoch"] is None else int(state["stopped_epoch"])
        weights = OrderedDict((k[len("best_weights/"):], np.array(v, copy=True))
                              for k, v in state.items() if k.startswith("best_weights/"))
        self.best_weights = weights or None


def _format_fields(path: str) -> list:
    try:
        return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(path)
                if f is not None]
    except ValueError as e:
        raise ValueError(f"path {path!r} is not a valid str.format pattern: {e}") from None


def _first_nonfinite(model) -> Optional[str]:
    """Name of the first parameter or floating buffer holding NaN/inf, else None."""
    for name, p in model.named_parameters():
        if not np.all(np.isfinite(p.data)):
            return name
    for name, b in model.named_buffers():
        b = np.asarray(b)
        if np.issubdtype(b.dtype, np.floating) and not np.all(np.isfinite(b)):
            return name
    return None


class ModelCheckpoint(Callback):
    """Write a full checkpoint (see `nnlite.train.checkpoint`) at the end of epochs.

    path: file name, may hold ``str.format`` fields filled from the epoch logs plus ``epoch``
    (1-based count of completed epochs), e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``;
    ``.h5`` writes HDF5. Each file holds the model, the optimizer and schedule state, the
    trainer's and the modules' RNG states, ``epoch`` = epochs completed, the history and the
    callbacks' state, so ``load_checkpoint(...)`` then ``fit(..., initial_epoch=info["epoch"])``
    resumes the run. Files are written atomically (a crash never leaves a half-written
    checkpoint in place). A ``val_*`` field or monitor without validation data raises
    ValueError at ``on_train_begin``.

    save_best_only: write only when ``monitor`` improves (``mode`` as in `EarlyStopping`);
    otherwise write every epoch. ``last_saved`` is the last path written (or ``None``) and
    ``best`` the best monitored value (kept across a resume, see the module docstring).

    Never saves non-finite weights: when a parameter or buffer holds NaN/inf the file is not
    written and a ``RuntimeWarning`` names the parameter (the previous file stays the last
    good model). Its ``on_epoch_end`` runs after every other callback's (``saves_checkpoints``).
    """

    saves_checkpoints = True

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto"):
        check_path(path)
        self.path = os.fspath(path)
        if not self.path:
            raise ValueError("path must be a non-empty file name, got ''")
        self._fields = _format_fields(self.path)
        self._mon = _Monitor(monitor, mode)
        self.monitor, self.mode = self._mon.monitor, self._mon.mode
        self.save_best_only = check_bool(save_best_only, "save_best_only")
        self.last_saved = None
        self.saved = []
        self.skipped = []  # epochs (0-based) not saved because of non-finite weights

    @property
    def best(self) -> float:
        return self._mon.best

    def on_train_begin(self, trainer):
        if self.save_best_only:
            _check_val_monitor(trainer, self.monitor, "ModelCheckpoint")
        if not getattr(trainer, "has_validation", True):
            bad = [f for f in self._fields if f.startswith("val_")]
            if bad:
                raise ValueError(f"ModelCheckpoint path {self.path!r} uses {{{bad[0]}}}, but fit "
                                 f"has no validation data{_VAL_HINT}")
        if not _resuming(trainer):
            self._mon.best = self._mon.initial()

    def on_epoch_end(self, trainer, epoch, logs):
        from .checkpoint import save_checkpoint
        bad = _first_nonfinite(trainer.model)
        if bad is not None:
            warnings.warn(f"ModelCheckpoint: not saving epoch {epoch + 1}: '{bad}' holds NaN or "
                          f"inf (the last file written stays the last good model)",
                          RuntimeWarning, stacklevel=2)
            self.skipped.append(epoch)
            return
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not self._mon.improved(value):
                return
            self._mon.best = value
        fields = {k: v for k, v in logs.items()}
        fields["epoch"] = epoch + 1
        try:
            path = self.path.format(**fields)
        except KeyError as e:
            raise ValueError(f"ModelCheckpoint path {self.path!r} uses {{{e.args[0]}}}, but the "
                             f"epoch logs only have {sorted(fields)}") from None
        save_checkpoint(path, trainer.model, optimizer=trainer.optimizer,
                        schedule=trainer.schedule, trainer=trainer, epoch=epoch + 1)
        self.last_saved = path
        self.saved.append(path)

    _SPEC = {"best": ("real", False), "monitor": ("str", False), "last_saved": ("str", True),
             "saved": ("strlist", False)}

    def state_dict(self) -> dict:
        """``best``, ``monitor``, ``last_saved`` and ``saved`` (the paths written so far)."""
        return {"best": self.best, "monitor": self.monitor, "last_saved": self.last_saved,
                "saved": list(self.saved)}

    def check_state_dict(self, state, trainer=None) -> None:
        _check_entries(state, "ModelCheckpoint", self._SPEC)
        if state["monitor"] != self.monitor:
            raise ValueError(f"ModelCheckpoint state monitors {state['monitor']!r}, this callback "
                             f"monitors {self.monitor!r}")

    def load_state_dict(self, state, trainer=None) -> None:
        self.check_state_dict(state, trainer)
        self._mon.best = float(state["best"])
        self.last_saved = state["last_saved"]
        self.saved = list(state["saved"])


class NaNGuard(Callback):
    """Stop training with `TrainingDiverged` (a ``FloatingPointError``) when training diverges.

    Checks, in this order: every batch loss (``on_train_batch_end``); then, at
    ``on_validation_end`` (before any callback's ``on_epoch_end``, so before a checkpoint
    can be written), the epoch's ``loss``, ``val_loss`` and every other ``*_loss`` log, and
    every parameter and floating buffer of the model. The message names the 0-based epoch
    and batch index (or the log / parameter) and the value, e.g.
    ``"training diverged: loss is nan at epoch 3, batch 17 ..."``. The batch check runs
    after the batch's step, so the weights may already hold non-finite values; the epoch
    check catches a step whose loss was still finite but whose update was not (e.g. the
    last batch of an epoch).
    """

    def on_train_batch_end(self, trainer, batch, logs):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            epoch = trainer.epoch
            raise TrainingDiverged(
                f"training diverged: loss is {loss} at epoch {epoch}, batch {batch} "
                f"(lr={logs.get('lr')}); lower the learning rate or clip gradients (grad_clip)",
                epoch, batch, loss)

    def on_validation_end(self, trainer, epoch, logs):
        for key, value in logs.items():
            if key != "loss" and not key.endswith("_loss"):
                continue
            if isinstance(value, numbers.Real) and not math.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged: {key} is {value} at the end of epoch {epoch}; lower "
                    f"the learning rate or clip gradients (grad_clip)", epoch, None, float(value))
        bad = _first_nonfinite(trainer.model)
        if bad is not None:
            raise TrainingDiverged(
                f"training diverged: parameter '{bad}' holds NaN or inf at the end of epoch "
                f"{epoch}; lower the learning rate or clip gradients (grad_clip)",
                epoch, None, math.nan)
