"""Atomic file writing, shared by checkpoints, data caches, downloads and figures.

A file is written to a uniquely named temporary file in the destination folder, flushed and
fsynced, then moved over the destination with ``os.replace``: a reader (or a crash) never sees
a half-written file, and an earlier file at that path survives any failure intact.
"""
from __future__ import annotations

import contextlib
import os
import secrets


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


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", fsync: bool = True):
    """``with atomic_open(path) as f: f.write(...)`` -- the file appears only if the block succeeds.

    path: destination (parent folders are created); mode: "wb" or "w".
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, mode) as f:
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
    if fsync:
        _fsync_dir(directory)
