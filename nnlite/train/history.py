"""`History`: the per-epoch metrics of a training run (data, not a callback).

The `Trainer` owns one History (``trainer.history``), fills it after every epoch, returns it
from ``fit``; checkpoints save and restore it. It lives in its own module so that callbacks
and checkpoints can both import it without importing each other.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, List, Optional

#: Columns every History has from the start; validation columns (``val_loss``, ``val_acc``)
#: and metrics added by callbacks appear with the first epoch that logs them.
BASE_KEYS = ("loss", "acc", "lr", "epoch_time")
#: Every column the `Trainer` itself may log (``val_*`` only with validation data).
HISTORY_KEYS = ("loss", "acc", "val_loss", "val_acc", "lr", "epoch_time")


def _as_float(value, what: str) -> float:
    """A JSON/float value of a history column: real numbers (NaN allowed) or None (-> NaN)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {type(value).__name__} ({value!r:.40})")
    return float(value)


class History:
    """Per-epoch metrics of a training run: a dict of lists plus the epoch indices.

    ``history.history`` maps each metric to a list with one float per epoch: always ``loss``,
    ``acc`` (NaN when the targets are not class labels), ``lr`` and ``epoch_time``;
    ``val_loss`` and ``val_acc`` only when the run had validation data; any metric a callback
    adds to the epoch logs (earlier epochs without it get NaN). ``history.epoch`` lists the
    0-based epoch indices; ``history["loss"]`` reads a list.

    history: optional dict ``{name: list of numbers}`` (None entries read as NaN);
    epoch: optional list of the epoch indices (default ``0 .. n-1``).
    Raises TypeError/ValueError naming the bad column for non-numeric entries or columns of
    different lengths.
    """

    def __init__(self, history: Optional[Dict[str, List[float]]] = None,
                 epoch: Optional[List[int]] = None):
        self.history: Dict[str, List[float]] = {k: [] for k in BASE_KEYS}
        if history is not None:
            if not isinstance(history, dict):
                raise TypeError(f"history must be a dict of lists, got {type(history).__name__}")
            for k, v in history.items():
                if not isinstance(k, str):
                    raise TypeError(f"history keys must be str, got {type(k).__name__} ({k!r})")
                if not isinstance(v, (list, tuple)):
                    raise TypeError(f"history[{k!r}] must be a list of numbers, got {type(v).__name__}")
                self.history[k] = [_as_float(a, f"history[{k!r}][{i}]") for i, a in enumerate(v)]
        lengths = {k: len(v) for k, v in self.history.items() if v}
        n = max(lengths.values(), default=0)
        if epoch is not None:
            if not isinstance(epoch, (list, tuple)):
                raise TypeError(f"epoch must be a list of ints, got {type(epoch).__name__}")
            for i, e in enumerate(epoch):
                if isinstance(e, bool) or not isinstance(e, numbers.Integral) or e < 0:
                    raise ValueError(f"epoch[{i}] must be a non-negative int, got {e!r}")
            self.epoch: List[int] = [int(e) for e in epoch]
            n = len(self.epoch)
        else:
            self.epoch = list(range(n))
        for k, length in lengths.items():
            if length != n:
                raise ValueError(f"history[{k!r}] has {length} entries, expected {n} (one per epoch)")
        for k, v in self.history.items():
            if not v and n:  # a base column absent from the given dict
                self.history[k] = [math.nan] * n

    def append(self, epoch: int, logs: Dict[str, float]) -> None:
        """Record one epoch's logs (columns missing from ``logs`` get NaN; a new column gets
        NaN for the earlier epochs)."""
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
        """Inverse of `to_dict` (validated as the constructor)."""
        if not isinstance(d, dict):
            raise TypeError(f"History.from_dict expects a dict, got {type(d).__name__}")
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
