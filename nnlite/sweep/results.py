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
line being written.

Damaged lines never make the file unreadable.  Reading skips them with a
:class:`DamagedResultsWarning` (a truncated last line: :class:`TruncatedResultsWarning`);
their trials count as not done and run again.  Opening the file for writing
quarantines them: every damaged line (a cut-off last line, a newline-terminated
line that is not a row, a damaged line in the middle) is appended to the side
file ``<name>.damaged`` and the results file is rewritten atomically with the
valid rows only, with a warning naming the lines and the side file.  Only a file
with no valid row and several damaged lines (probably not a results file at all)
raises ``ValueError`` instead of being rewritten.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from .._checks import check_path
from .._io import atomic_open

__all__ = ["ROW_KEYS", "read_results", "latest_rows", "ResultsWriter", "TruncatedResultsWarning",
           "DamagedResultsWarning", "quarantine_path"]

#: Keys every row written by :func:`nnlite.sweep.run_study` carries.
ROW_KEYS = ("trial_id", "config", "seed", "metrics", "wall_time", "status", "error",
            "traceback", "worker", "finished_at")


class TruncatedResultsWarning(UserWarning):
    """Warned when the last line of a results file is incomplete (a crash mid-write)."""


class DamagedResultsWarning(TruncatedResultsWarning):
    """Warned when lines of a results file are not rows (skipped when read, quarantined when
    the file is opened for writing)."""


def quarantine_path(path) -> Path:
    """The side file damaged lines of ``path`` are moved to: ``<name>.damaged``."""
    path = check_path(path, "results_path")
    return path.with_name(path.name + ".damaged")


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


def _scan(path: Path):
    """(rows, damaged) of a results file: damaged = [(line number, text, complete?)]."""
    lines, tail = _split_lines(path.read_bytes())
    numbered = [(i + 1, ln, True) for i, ln in enumerate(lines) if ln.strip()]
    if tail is not None:
        numbered.append((len(lines) + 1, tail, False))
    rows, damaged = [], []
    for lineno, line, complete in numbered:
        row = _parse_row(line)
        if row is not None:
            rows.append(row)
        else:
            damaged.append((lineno, line, complete))
    if not rows and len(damaged) > 1:
        shown = damaged[0][1] if len(damaged[0][1]) <= 80 else damaged[0][1][:77] + "..."
        raise ValueError(
            f"{path}: no line is a results row (expected JSON objects with trial_id, status and "
            f"config); line {damaged[0][0]} is {shown!r}: is this a results file?")
    return rows, damaged


def _lines_text(damaged) -> str:
    nums = [str(n) for n, _, _ in damaged]
    return ("line " if len(nums) == 1 else "lines ") + ", ".join(nums[:10]) + (" ..." if len(nums) > 10 else "")


def read_results(path) -> list:
    """Read every row of a results file, in file order.

    A missing file gives ``[]``.  Lines that are not rows are skipped with a warning
    (their trials count as not done and run again): an incomplete last line (a write cut
    short by a crash) with a :class:`TruncatedResultsWarning`, any other damaged line with
    a :class:`DamagedResultsWarning`.  The file is not changed (`ResultsWriter` quarantines
    damaged lines).  ``ValueError`` only when no line is a row and several are damaged
    (not a results file).
    """
    path = check_path(path, "results_path")
    if not path.exists():
        return []
    if not path.is_file():
        raise ValueError(f"results_path must be a file, got the directory {str(path)!r}")
    rows, damaged = _scan(path)
    if len(damaged) == 1 and not damaged[0][2]:
        lineno, line, _ = damaged[0]
        warnings.warn(
            f"{path}: ignoring the incomplete last line {lineno} ({len(line)} characters, "
            f"probably cut short by a crash); its trial will be run again",
            TruncatedResultsWarning, stacklevel=2)
    elif damaged:
        warnings.warn(
            f"{path}: ignoring {_lines_text(damaged)}: not a results row (damaged); those "
            f"trials will be run again and the lines moved to {quarantine_path(path).name} "
            "when the sweep next writes", DamagedResultsWarning, stacklevel=2)
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

    Use as a context manager.  Opening repairs the file: a complete row missing only
    its newline gets one; damaged lines (a cut-off last line, lines that are not rows)
    are appended to :func:`quarantine_path` and the file is rewritten atomically with
    the valid rows, with a :class:`DamagedResultsWarning` (a bare cut-off last line:
    :class:`TruncatedResultsWarning`).  ``quarantined`` lists the moved line numbers.
    Every :meth:`write` is a single ``write`` of one line, then ``flush`` and ``os.fsync``.
    """

    def __init__(self, path):
        self.path = check_path(path, "results_path")
        self._fh = None
        self.quarantined = []

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
        data = self.path.read_bytes()
        if not data:
            return
        rows, damaged = _scan(self.path)
        if not damaged:
            if not data.endswith(b"\n"):  # a complete last row without its newline
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            return
        side = quarantine_path(self.path)
        with open(side, "ab") as fh:
            for lineno, line, _ in damaged:
                fh.write(line.encode("utf-8", errors="replace") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        with atomic_open(self.path, "wb") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=True, separators=(", ", ": ")).encode() + b"\n")
        self.quarantined = [n for n, _, _ in damaged]
        cls = (TruncatedResultsWarning if len(damaged) == 1 and not damaged[0][2]
               else DamagedResultsWarning)
        warnings.warn(f"{self.path}: moved the damaged {_lines_text(damaged)} to {side} and "
                      f"rewrote the file with its {len(rows)} valid row(s); those trials run again",
                      cls, stacklevel=3)

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
