"""Training callbacks: hooks the `Trainer` calls around epochs and batches.

Writing your own callback
-------------------------
Subclass `Callback` and override any of the hooks; every hook receives the trainer, so a
callback can read ``trainer.model``, ``trainer.optimizer``, ``trainer.history``,
``trainer.epoch`` (the current 0-based epoch), ``trainer.epochs`` (the epoch ``fit`` stops
before), ``trainer.steps_per_epoch``, ``trainer.num_samples`` and ``trainer.rng`` (the
trainer's ``numpy.random.Generator``; draw from it to stay reproducible). Hooks, in order::

    on_train_begin(trainer)
      on_epoch_begin(trainer, epoch)
        on_train_batch_begin(trainer, batch, xb, yb) -> None or (xb, yb)   # per batch
        on_train_batch_end(trainer, batch, logs)                           # per batch
      on_validation_end(trainer, epoch, logs)    # may add metrics to the epoch's logs
      on_epoch_end(trainer, epoch, logs)
    on_train_end(trainer)

``on_train_batch_begin`` may return a replacement ``(xb, yb)`` (e.g. adversarial examples);
the next callback then sees the replacement, and the trainer trains on the last one. It runs
after the trainer's ``transform`` (augmentation). Batch ``logs`` hold ``loss`` (the batch's
mean loss), ``acc`` (batch accuracy, NaN when the targets are not class labels), ``size``
(the number of samples) and ``lr`` (the lr used for the step). Epoch ``logs`` hold ``loss``,
``acc``, ``lr`` (the lr at the start of the epoch), ``epoch_time`` (seconds, validation
included) and, only when there is validation data, ``val_loss`` and ``val_acc`` (the
`History` then records NaN for them).

``on_validation_end`` runs after the epoch's validation, before the schedule step and before
the epoch is recorded: a callback may add its own metrics to ``logs`` there (e.g.
``nnlite.attacks.RobustValidation`` adds ``val_robust_acc``); they are recorded in the
`History` and callbacks such as `EarlyStopping` or `ModelCheckpoint` can monitor them.

Set ``trainer.stop_training = True`` to stop after the current epoch. ``on_epoch_end`` runs
after the epoch's schedule step and after the epoch was appended to ``trainer.history``,
so a checkpoint written there resumes exactly at the next epoch. ``on_train_end`` runs when
``fit`` finishes normally (also after an early stop), not when an exception escapes.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, List, Optional

import numpy as np

HISTORY_KEYS = ("loss", "acc", "val_loss", "val_acc", "lr", "epoch_time")


class TrainingDiverged(FloatingPointError):
    """Raised by `NaNGuard` when the training loss becomes NaN or infinite.

    Attributes ``epoch`` (0-based), ``batch`` (0-based index within the epoch) and ``loss``.
    """

    def __init__(self, message: str, epoch: int, batch: int, loss: float):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


class Callback:
    """Base class of training callbacks: every hook does nothing by default.

    See the module docstring for the hook order and the ``logs`` contents.
    """

    def on_train_begin(self, trainer) -> None:
        """Called once at the start of ``fit``."""

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


class History(Callback):
    """Per-epoch metrics of a training run: a dict of lists plus the epoch indices.

    ``history.history`` maps each of ``loss, acc, val_loss, val_acc, lr, epoch_time`` to a list
    with one float per epoch (NaN where a value does not apply, e.g. ``val_loss`` without
    validation data); ``history.epoch`` lists the 0-based epoch indices. ``history["loss"]``
    reads a list. The `Trainer` owns one History (``trainer.history``) and fills it itself,
    before the other callbacks' ``on_epoch_end``; it is what ``fit`` returns and what
    checkpoints save.
    """

    def __init__(self, history: Optional[Dict[str, List[float]]] = None,
                 epoch: Optional[List[int]] = None):
        self.history: Dict[str, List[float]] = {k: [] for k in HISTORY_KEYS}
        self.epoch: List[int] = []
        if history is not None:
            if not isinstance(history, dict):
                raise TypeError(f"history must be a dict of lists, got {type(history).__name__}")
            for k, v in history.items():
                self.history[str(k)] = [float(a) for a in v]
        if epoch is not None:
            self.epoch = [int(e) for e in epoch]
        else:
            n = max((len(v) for v in self.history.values()), default=0)
            self.epoch = list(range(n))

    def append(self, epoch: int, logs: Dict[str, float]) -> None:
        """Record one epoch's logs (keys missing from ``logs`` get NaN)."""
        keys = list(self.history) + [k for k in logs if k not in self.history]
        n = len(self.epoch)
        for k in keys:
            column = self.history.setdefault(k, [math.nan] * n)
            column.append(float(logs.get(k, math.nan)))
        self.epoch.append(int(epoch))

    def truncate(self, epoch: int) -> None:
        """Drop every record of epoch ``epoch`` and later (used when ``fit`` resumes)."""
        keep = [i for i, e in enumerate(self.epoch) if e < epoch]
        self.epoch = [self.epoch[i] for i in keep]
        for k in self.history:
            self.history[k] = [self.history[k][i] for i in keep]

    def to_dict(self) -> Dict[str, list]:
        """A JSON-serializable copy: the metric lists plus ``"epoch"``."""
        d = {k: list(v) for k, v in self.history.items()}
        d["epoch"] = list(self.epoch)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, list]) -> "History":
        """Inverse of `to_dict`."""
        d = dict(d)
        epoch = d.pop("epoch", None)
        return cls(d, epoch)

    def __getitem__(self, key: str) -> List[float]:
        return self.history[key]

    def __contains__(self, key) -> bool:
        return key in self.history

    def keys(self):
        return self.history.keys()

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs: Dict[str, float], monitor: str, who: str) -> float:
    if monitor not in logs:
        hint = ("; pass val_data or val_split to fit" if monitor.startswith("val_") else "")
        raise ValueError(f"{who} monitors {monitor!r}, but the epoch logs only have "
                         f"{sorted(logs)}{hint}")
    value = float(logs[monitor])
    return value


class _Monitor:
    """Shared 'did the monitored value improve' logic for EarlyStopping / ModelCheckpoint."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str naming an epoch log key, got {type(monitor).__name__}")
        if not isinstance(min_delta, numbers.Real) or min_delta < 0:
            raise ValueError(f"min_delta must be a non-negative number, got {min_delta!r}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = float(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

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
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if not isinstance(patience, numbers.Integral) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"patience must be a non-negative int, got {patience!r}")
        self._mon = _Monitor(monitor, mode, min_delta)
        self.monitor, self.mode, self.min_delta = self._mon.monitor, self._mon.mode, self._mon.min_delta
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self):
        self._mon.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None

    @property
    def best(self) -> float:
        return self._mon.best

    def on_train_begin(self, trainer):
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


class ModelCheckpoint(Callback):
    """Write a full checkpoint (see `nnlite.train.checkpoint`) at the end of epochs.

    path: file name, may hold ``str.format`` fields filled from the epoch logs plus ``epoch``
    (1-based count of completed epochs), e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``;
    ``.h5`` writes HDF5. Each file holds the model, the optimizer and schedule state, the
    trainer's and the modules' RNG states, ``epoch`` = epochs completed and the history, so
    ``load_checkpoint(...)`` then ``fit(..., initial_epoch=info["epoch"])`` resumes the run.
    Files are written atomically (a crash never leaves a half-written checkpoint in place).

    save_best_only: write only when ``monitor`` improves (``mode`` as in `EarlyStopping`);
    otherwise write every epoch. ``last_saved`` is the last path written (or ``None``) and
    ``best`` the best monitored value.
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto"):
        import os
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self._mon = _Monitor(monitor, mode)
        self.monitor, self.mode = self._mon.monitor, self._mon.mode
        self.save_best_only = bool(save_best_only)
        self.last_saved = None
        self.saved = []

    @property
    def best(self) -> float:
        return self._mon.best

    def on_train_begin(self, trainer):
        self._mon.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, trainer, epoch, logs):
        from .checkpoint import save_checkpoint
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not self._mon.improved(value):
                return
            self._mon.best = value
        fields = {k: v for k, v in logs.items()}
        fields["epoch"] = epoch + 1
        path = self.path.format(**fields)
        save_checkpoint(path, trainer.model, optimizer=trainer.optimizer,
                        schedule=trainer.schedule, trainer=trainer, epoch=epoch + 1)
        self.last_saved = path
        self.saved.append(path)


class NaNGuard(Callback):
    """Stop training with `TrainingDiverged` (a ``FloatingPointError``) on a NaN/inf batch loss.

    The message names the 0-based epoch and batch index and the loss value, e.g.
    ``"training diverged: loss is nan at epoch 3, batch 17 ..."``. The check runs after the
    batch's step, so the model's weights may already hold non-finite values; keep a
    `ModelCheckpoint` to go back.
    """

    def on_train_batch_end(self, trainer, batch, logs):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            epoch = trainer.epoch
            raise TrainingDiverged(
                f"training diverged: loss is {loss} at epoch {epoch}, batch {batch} "
                f"(lr={logs.get('lr')}); lower the learning rate or clip gradients (grad_clip)",
                epoch, batch, loss)
