"""Training loop, callbacks, progress display and checkpoints.

* `Trainer`: ``fit`` / ``evaluate`` / ``predict`` / ``predict_proba`` / ``predict_logits``
  (batched, deterministic for a given seed, built-in learning-rate schedule handling).
* callbacks: `Callback` (base, write your own), `History`, `EarlyStopping`,
  `ModelCheckpoint`, `NaNGuard` (raises `TrainingDiverged`), `ProgressBar`.
* checkpoints: `save_checkpoint`, `load_checkpoint`, `read_checkpoint` (``.npz`` or ``.h5``,
  no pickle, atomic writes, SHA-256 verified); errors `CheckpointError`,
  `CheckpointMismatchError`.
"""
from .callbacks import (Callback, EarlyStopping, History, ModelCheckpoint, NaNGuard,
                        TrainingDiverged)
from .checkpoint import (CheckpointError, CheckpointMismatchError, load_checkpoint,
                         read_checkpoint, save_checkpoint)
from .progress import ProgressBar
from .trainer import Trainer, stratified_split

__all__ = ["Trainer", "stratified_split", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "NaNGuard", "TrainingDiverged", "ProgressBar",
           "save_checkpoint", "load_checkpoint", "read_checkpoint", "CheckpointError",
           "CheckpointMismatchError"]
