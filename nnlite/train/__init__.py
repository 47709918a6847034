"""Training loop, callbacks, progress display and checkpoints.

* `Trainer`: ``fit`` / ``evaluate`` / ``predict`` / ``predict_proba`` / ``predict_logits``
  (batched, deterministic for a given seed, built-in learning-rate schedule handling).
* `History` (``nnlite.train.history``): the per-epoch metrics ``fit`` returns.
* callbacks: `Callback` (base, write your own), `EarlyStopping`, `ModelCheckpoint`,
  `NaNGuard` (raises `TrainingDiverged`), `ProgressBar`.
* `stratified_split`: an alias of ``nnlite.data.stratified_split`` (kept for old imports).
* checkpoints: `save_checkpoint`, `load_checkpoint`, `read_checkpoint` (``.npz`` or ``.h5``,
  no pickle, atomic writes, SHA-256 over metadata and arrays); errors `CheckpointError`,
  `CheckpointMismatchError`.
"""
from ..data.preprocess import stratified_split  # alias: the one split lives in nnlite.data
from .callbacks import Callback, EarlyStopping, ModelCheckpoint, NaNGuard, TrainingDiverged
from .checkpoint import (CheckpointError, CheckpointMismatchError, load_checkpoint,
                         read_checkpoint, save_checkpoint)
from .history import History
from .progress import ProgressBar
from .trainer import Trainer

__all__ = ["Trainer", "stratified_split", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "NaNGuard", "TrainingDiverged", "ProgressBar",
           "save_checkpoint", "load_checkpoint", "read_checkpoint", "CheckpointError",
           "CheckpointMismatchError"]
