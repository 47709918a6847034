"""The results file of a sweep: one JSON object per line, appended as trials finish.

Each row is a dict with the keys

``trial_id``     stable id of the trial (see :func:`nnlite.sweep.study.trial_id`)
``config``       the full configuration, ``seed`` included
``seed``         the trial's seed
``metrics``      dict returned by the trial function (``{}`` on error)
``wall_time``    seconds spent in the trial function
``status``       ``"ok"`` or ``"error"``
``error``        ``"ExceptionType: message"`` or ``None``
``traceback``    formatted traceback text or ``None``
``worker``       ``"host:pid"`` of the process that ran the trial
``finished_at``  ISO-8601 UTC time the trial finished

Only the parent process writes, one line per :meth:`ResultsWriter.write`
followed by ``flush`` and ``fsync``, so a crash or Ctrl-C loses at most the
line being written.  A truncated last line is ignored with a warning when read
and cut off before anything new is appended, so that trial simply runs again.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

__all__ = ["ROW_KEYS", "read_results", "latest_rows", "ResultsWriter", "TruncatedResultsWarning"]

#: Keys every row written by :func:`nnlite.sweep.run_study` carries.
ROW_KEYS = ("trial_id", "config", "seed", "metrics", "wall_time", "status", "error",
            "traceback", "worker", "finished_at")


class TruncatedResultsWarning(UserWarning):
    """Warned when the last line of a results file is incomplete (a crash mid-write)."""


def _check_path(path) -> Path:
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    raise TypeError(f"results_path must be a str or os.PathLike, got {type(path).__name__}")


def _parse_row(line: str):
    """Parse one line; return the row dict or None if it is not a valid row."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if (not isinstance(row, dict) or not isinstance(row.get("trial_id"), str)
            or not isinstance(row.get("status"), str) or not isinstance(row.get("config"), dict)):
        return None
    return row


def _split_lines(data: bytes):
    """Split file content into (complete line texts, trailing partial text or None)."""
    parts = data.split(b"\n")
    tail = parts.pop()  # text after the last newline ('' when the file ends with one)
    lines = [p.decode("utf-8", errors="replace") for p in parts]
    return lines, (tail.decode("utf-8", errors="replace") if tail.strip() else None)


def read_results(path) -> list:
    """Read every row of a results file, in file order.

    A missing file gives ``[]``.  An unreadable *last* line (a write cut short by a
    crash) is skipped with a :class:`TruncatedResultsWarning`; its trial counts as
    not done.  An unreadable line anywhere else means the file was damaged or is
    not a results file, and raises ``ValueError`` naming the line number.
    """
    path = _check_path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise ValueError(f"results_path must be a file, got the directory {str(path)!r}")
    lines, tail = _split_lines(path.read_bytes())
    if tail is not None:
        lines.append(tail)
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    rows = []
    for k, (lineno, line) in enumerate(numbered):
        row = _parse_row(line)
        if row is not None:
            rows.append(row)
            continue
        if k == len(numbered) - 1:
            warnings.warn(
                f"{path}: ignoring the incomplete last line {lineno} ({len(line)} characters, "
                f"probably cut short by a crash); its trial will be run again",
                TruncatedResultsWarning, stacklevel=2)
        else:
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise ValueError(
                f"{path}: line {lineno} is not a results row (expected a JSON object with "
                f"trial_id, status and config), got {shown!r}")
    return rows


def latest_rows(rows) -> dict:
    """Map ``trial_id -> row`` keeping, per trial, the last ``"ok"`` row if any, else the last row."""
    out = {}
    for row in rows:
        if not isinstance(row, dict) or "trial_id" not in row:
            raise TypeError(f"rows must be dicts with a 'trial_id' key, got {row!r:.80}")
        tid = row["trial_id"]
        prev = out.get(tid)
        if prev is None or row.get("status") == "ok" or prev.get("status") != "ok":
            out[tid] = row
    return out


class ResultsWriter:
    """Append rows to a JSON-lines results file, durably, one line at a time.

    Use as a context manager.  Opening repairs a file whose last line was cut
    short: an incomplete line is removed, a complete row missing only its newline
    gets one.  Every :meth:`write` is a single ``write`` of one line, then
    ``flush`` and ``os.fsync``.
    """

    def __init__(self, path):
        self.path = _check_path(path)
        self._fh = None

    def __enter__(self) -> "ResultsWriter":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Open the file for appending (creating folders and the file as needed)."""
        if self._fh is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = open(self.path, "a", encoding="utf-8", newline="\n")

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "r+b") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1  # 0 when the file has a single partial line
            tail = data[cut:].decode("utf-8", errors="replace")
            if _parse_row(tail) is not None:
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
            else:
                fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())

    def write(self, row: dict) -> None:
        """Append one row as a JSON line and force it to disk."""
        if self._fh is None:
            raise ValueError("ResultsWriter is closed; use it as a context manager or call open()")
        if not isinstance(row, dict):
            raise TypeError(f"row must be a dict, got {type(row).__name__}")
        line = json.dumps(row, ensure_ascii=True, separators=(", ", ": "))
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
