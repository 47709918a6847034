"""Atomic file writing, shared by checkpoints, data caches, downloads and figures.

A file is written to a uniquely named temporary file in the destination folder, flushed and
fsynced, then moved over the destination with ``os.replace``: a reader (or a crash) never sees
a half-written file, and an earlier file at that path survives any failure intact.

Temporary files are named ``.<name>.<12 hex>.<pid>.tmp``. A process killed mid-write leaves
its temporary file behind; the next write of the same path removes such orphans: those of
processes that no longer run, and (older names without a pid) those untouched for an hour.
Temporary files of a live process (a concurrent writer) are left alone.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import time

#: Age after which a temporary file without a pid in its name counts as orphaned.
STALE_SECONDS = 3600.0
_ACTIVE = set()  # temporary files this process is writing now


def _default_mode(path: str) -> int:
    """Keep an existing file's permissions; else 0o666 filtered by the umask (as ``open``)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: keep its file
    return True


def remove_orphan_temps(path) -> list:
    """Remove temporary files left next to ``path`` by earlier, killed writes; return them.

    Only names of this module's pattern for exactly this ``path`` are considered; a file is
    removed when the pid in its name no longer runs (or it is this process's and not being
    written), or, for names without a pid, when it was last modified over
    ``STALE_SECONDS`` ago.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(r"^\." + re.escape(os.path.basename(path))
                         + r"\.[0-9a-f]{12}(?:\.(\d+))?\.tmp$")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        full = os.path.join(directory, name)
        if full in _ACTIVE:
            continue
        try:
            if m.group(1) is not None:
                pid = int(m.group(1))
                stale = pid == os.getpid() or not _pid_alive(pid)
            else:
                stale = now - os.stat(full).st_mtime > STALE_SECONDS
            if stale:
                os.unlink(full)
                removed.append(full)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", fsync: bool = True):
    """``with atomic_open(path) as f: f.write(...)`` -- the file appears only if the block succeeds.

    path: destination (parent folders are created); mode: "wb" or "w" (text, UTF-8 whatever the locale).
    On an exception the temporary file is removed and ``path`` is left as it was. Orphaned
    temporary files of earlier killed writes of ``path`` are removed first
    (:func:`remove_orphan_temps`).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_orphan_temps(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    _ACTIVE.add(tmp)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, _default_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _ACTIVE.discard(tmp)
    if fsync:
        _fsync_dir(directory)
