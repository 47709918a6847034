"""`ProgressBar`: a text progress display for `Trainer.fit`.

Two styles, chosen per stream:

* **bar** (the stream is a terminal, or ``force=True``): one line per epoch, rewritten in
  place with ``\\r`` after each batch (at most every ``min_interval`` seconds, and always for
  the first and last batch), showing batches done/total, a bar, the image rate (img/s), the
  ETA of the epoch and the running mean loss/accuracy; the epoch's summary ends the line.
  The line is fitted to the terminal's width (``shutil.get_terminal_size()``, read at every
  redraw, so resizing is followed): the bar shrinks first, then the rate, the accuracy and
  the ETA are left out, so a redraw never wraps onto a new line (a wrapped line cannot be
  rewritten with ``\\r``, and every redraw would then start a new line).
* **summary** (the stream is not a terminal, e.g. a log file or a CI pipe): no per-batch
  output, only one summary line per epoch (so logs are not flooded with ``\\r`` updates).

``enabled=False`` silences it entirely.
"""
from __future__ import annotations

import math
import numbers
import shutil
import sys
import time

from .callbacks import Callback


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def format_duration(seconds: float) -> str:
    """Seconds as ``H:MM:SS`` (or ``M:SS`` under an hour); ``"?"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


class ProgressBar(Callback):
    """Progress display for training (a `Callback`; `Trainer` adds one from its ``progress`` argument).

    stream: a text stream with ``write``/``flush`` (default: ``sys.stdout`` at the time of
    writing). force: draw the per-batch bar even when ``stream.isatty()`` is false (e.g. into
    an ``io.StringIO``). enabled: False prints nothing at all. width: the widest bar in
    characters (narrower when the line must fit the terminal). min_interval: the shortest time in
    seconds between two redraws of the bar. columns: the line width to fit the bar line into;
    None (default) = the terminal's width at each redraw (``shutil.get_terminal_size()``, 80
    when unknown).
    """

    def __init__(self, stream=None, force: bool = False, enabled: bool = True, width: int = 24,
                 min_interval: float = 0.1, columns=None):
        if stream is not None and not hasattr(stream, "write"):
            raise TypeError(f"stream must have a write() method, got {type(stream).__name__}")
        if int(width) < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if columns is not None and (isinstance(columns, bool) or not isinstance(columns, numbers.Integral)
                                    or columns < 20):
            raise ValueError(f"columns must be None or an int >= 20, got {columns!r}")
        self._stream = stream
        self.force, self.enabled = bool(force), bool(enabled)
        self.width, self.min_interval = int(width), float(min_interval)
        self.columns = None if columns is None else int(columns)
        self._last_len = 0

    def _budget(self) -> int:
        """Characters a bar line may use: the terminal's width minus one (a line that fills the
        last column makes some terminals wrap the cursor)."""
        cols = self.columns if self.columns is not None else shutil.get_terminal_size((80, 24)).columns
        return max(int(cols) - 1, 19)

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    @property
    def mode(self) -> str:
        """``"off"``, ``"bar"`` (per-batch updates) or ``"summary"`` (one line per epoch)."""
        if not self.enabled:
            return "off"
        return "bar" if (self.force or _isatty(self.stream)) else "summary"

    def _write(self, text: str) -> None:
        s = self.stream
        s.write(text)
        try:
            s.flush()
        except (AttributeError, ValueError, OSError):
            pass

    # -- hooks --------------------------------------------------------------------------------
    def on_epoch_begin(self, trainer, epoch):
        self._t0 = time.perf_counter()
        self._last_draw = -math.inf
        self._seen = 0
        self._loss_sum = 0.0
        self._acc_sum = 0.0
        self._acc_n = 0
        self._last_len = 0

    def on_train_batch_end(self, trainer, batch, logs):
        n = int(logs.get("size", 0))
        self._seen += n
        self._loss_sum += float(logs["loss"]) * n
        acc = logs.get("acc", math.nan)
        if acc is not None and not math.isnan(acc):
            self._acc_sum += float(acc) * n
            self._acc_n += n
        if self.mode != "bar":
            return
        total = int(getattr(trainer, "steps_per_epoch", 0) or 0)
        now = time.perf_counter()
        last = batch + 1 >= total
        if batch != 0 and not last and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._draw(trainer, batch + 1, total, now - self._t0)

    def _line(self, trainer, done: int, total: int, elapsed: float) -> str:
        epochs = getattr(trainer, "epochs", None)
        head = f"Epoch {trainer.epoch + 1}/{epochs}" if epochs else f"Epoch {trainer.epoch + 1}"
        frac = done / total if total else 0.0
        rate = self._seen / elapsed if elapsed > 0 else math.inf
        n_total = getattr(trainer, "num_samples", None)
        remaining = (n_total - self._seen) if n_total else None
        eta = remaining / rate if (remaining is not None and rate > 0 and math.isfinite(rate)) else (
            0.0 if remaining == 0 else None)
        loss = self._loss_sum / self._seen if self._seen else math.nan
        items = [("rate", f"{rate:,.0f} img/s" if math.isfinite(rate) else "? img/s"),
                 ("eta", f"ETA {format_duration(eta)}"), ("loss", f"loss {_fmt(loss)}"),
                 ("acc", f"acc {_fmt(self._acc_sum / self._acc_n)}" if self._acc_n else "")]

        def bar(w):
            filled = int(round(w * frac))
            b = "=" * max(filled - 1, 0) + (">" if 0 < filled < w else "=" if filled else "")
            return "[" + b.ljust(w, ".") + "]"

        def compose(bar_w, drop):
            parts = [head, f"{done}/{total}"] + ([bar(bar_w)] if bar_w else [])
            return " ".join(parts + [v for k, v in items if v and k not in drop])

        budget = self._budget()
        drops = ((), ("rate",), ("rate", "acc"), ("rate", "acc", "eta"))
        for drop in drops:                  # the widest bar (>= 8 columns) that fits, else drop more
            room = budget - len(compose(0, drop)) - 3
            if room >= min(8, self.width):
                return compose(min(self.width, room), drop)
        for drop in drops:                  # no room for a bar
            text = compose(0, drop)
            if len(text) <= budget:
                return text
        return text[:budget]

    def _draw(self, trainer, done, total, elapsed):
        text = self._line(trainer, done, total, elapsed)
        pad = max(min(self._last_len, self._budget()) - len(text), 0)
        self._last_len = len(text)
        self._write("\r" + text + " " * pad)

    def abort(self) -> None:
        """End a partly drawn bar line (called by the trainer when ``fit`` raises)."""
        if self._last_len and self.mode == "bar":
            self._write("\n")
        self._last_len = 0

    def on_epoch_end(self, trainer, epoch, logs):
        mode = self.mode
        if mode == "off":
            return
        epochs = getattr(trainer, "epochs", None)
        head = f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"
        t = float(logs.get("epoch_time", math.nan))
        parts = [head, f"{t:.2f}s" if math.isfinite(t) else "?s"]
        extra = [k for k in logs if k not in ("loss", "acc", "val_loss", "val_acc", "lr", "epoch_time")]
        for key in ["loss", "acc", "val_loss", "val_acc"] + extra:   # extra: metrics added by callbacks
            v = logs.get(key, math.nan)
            if not isinstance(v, numbers.Real):   # e.g. a callback's non-numeric entry
                continue
            if v is not None and not math.isnan(v):
                parts.append(f"{key} {_fmt(v)}")
        lr = logs.get("lr", math.nan)
        if lr is not None and not math.isnan(lr):
            parts.append(f"lr {lr:.3g}")
        text = " - ".join(parts)
        if mode == "bar":
            pad = max(self._last_len - len(text), 0)
            self._write("\r" + text + " " * pad + "\n")
        else:
            self._write(text + "\n")
        self._last_len = 0
