"""Checkpoints: save and restore a whole training run, safely and without pickle.

File format (``.npz``, version 1)
---------------------------------
A NumPy ``.npz`` archive written with ``np.savez`` (uncompressed) holding plain arrays only:

* ``model/<name>``: every parameter and buffer of ``model.state_dict()`` (dotted names);
* ``optim/<key>``: the optimizer's flat ``state_dict()`` (if an optimizer was given);
* ``sched/<key>``: the schedule's flat ``state_dict()`` (if a schedule was given);
* ``__meta__``: a 0-d unicode array holding JSON with ``format``, ``version``, ``epoch``,
  ``history``, ``extra``, the RNG states (``Generator.bit_generator.state`` of the trainer and
  of every module found by ``model.named_modules()`` with a Generator ``rng`` attribute, e.g.
  ``Dropout``), the trainer state, the ordered list of array ``keys`` and ``sha256``: the
  SHA-256 over, for each key in that order, the key, its dtype, its shape and its bytes.

Paths ending in ``.h5`` / ``.hdf5`` are written with h5py instead: the same keys as datasets
(``model/...`` etc. become groups) and the JSON in the root attribute ``__meta__``. The
format is detected from the file's first bytes when loading.

Safety
------
* Writing is atomic: a temporary file in the target's directory is written, flushed,
  fsync'ed and moved over the target with ``os.replace``; if anything fails the temporary
  file is removed and a previous checkpoint at ``path`` is left untouched.
* Loading reads and verifies the whole file (zip CRCs, the SHA-256, the JSON) and checks it
  against the model, optimizer, schedule and trainer BEFORE changing any of them. A damaged
  file (truncated, corrupted bytes, not a checkpoint) raises `CheckpointError`; a checkpoint
  for another architecture raises `CheckpointMismatchError` listing missing/unexpected names
  or naming the first parameter whose shape/dtype differs. Either way nothing is modified.
  Arrays are loaded with ``allow_pickle=False``.

Resuming
--------
``save_checkpoint(path, model, optimizer, schedule, trainer, epoch=k)`` after k epochs, then
with freshly built objects (same constructors and arguments)
``info = load_checkpoint(path, model, optimizer, schedule, trainer)`` and
``trainer.fit(x, y, epochs=E, initial_epoch=info["epoch"])`` continues the run bit for bit.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np

from ..nn.module import Module
from .callbacks import History
from .._io import atomic_open

FORMAT = "nnlite-checkpoint"
VERSION = 1
_META = "__meta__"
_PREFIXES = ("model/", "optim/", "sched/")
_H5_SUFFIXES = (".h5", ".hdf5")


class CheckpointError(ValueError):
    """The checkpoint file is damaged (truncated, corrupted) or is not an nnlite checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint is intact but does not fit the given model / optimizer / schedule / trainer."""


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------
def _fspath(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _is_h5_name(path: str) -> bool:
    return path.lower().endswith(_H5_SUFFIXES)


def _digest(arrays: "OrderedDict[str, np.ndarray]") -> str:
    """SHA-256 over key, dtype, shape and bytes of every array, in the given key order."""
    h = hashlib.sha256()
    for key, a in arrays.items():
        a = np.ascontiguousarray(a)
        h.update(key.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(repr(tuple(a.shape)).encode("ascii") + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def _plain(name: str, value) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.hasobject:
        raise TypeError(f"cannot save '{name}': it is an object array (dtype {a.dtype}); "
                        "checkpoints hold plain numeric arrays only")
    return a


def _module_rngs(model: Module) -> Dict[str, np.random.Generator]:
    out = {}
    for name, m in model.named_modules():
        g = getattr(m, "rng", None)
        if isinstance(g, np.random.Generator):
            out[name] = g
    return out


def _history_dict(history):
    if history is None:
        return None, None
    if isinstance(history, History):
        return history.to_dict(), "History"
    if isinstance(history, dict):
        return {str(k): [float(v) for v in vals] for k, vals in history.items()}, "dict"
    raise TypeError(f"history must be a History, a dict of lists or None, got {type(history).__name__}")


def _atomic_write(path: str, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync it and move it into place."""
    with atomic_open(path) as f:
        write(f)


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("writing/reading .h5 checkpoints needs h5py (pip install h5py); "
                          "use a .npz path otherwise") from e
    return h5py


# -------------------------------------------------------------------------------------------------
# saving
# -------------------------------------------------------------------------------------------------
def save_checkpoint(path, model: Module, optimizer=None, schedule=None, trainer=None,
                    epoch: Optional[int] = None, history=None, extra: Optional[dict] = None) -> str:
    """Write a checkpoint of a training run to ``path`` atomically; returns the path.

    path: file name; ``.h5``/``.hdf5`` writes HDF5 (needs h5py), anything else ``.npz``
        (written as given: no suffix is appended).
    model: the ``Module`` (parameters, buffers and module Generators are saved).
    optimizer, schedule: objects with a flat ``state_dict() -> {str: ndarray}`` (optional).
    trainer: a `Trainer` (optional): its Generator state, split seed and, when ``history`` is
        None, its ``history``.
    epoch: number of completed epochs (resume with ``fit(..., initial_epoch=epoch)``).
    history: a `History` or a dict of lists of floats (optional).
    extra: any JSON-serializable dict of user data (optional).
    Raises TypeError for non-serializable ``extra`` or object arrays (nothing is written).
    """
    path = _fspath(path)
    if not isinstance(model, Module):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
    if epoch is not None and (not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool)
                              or epoch < 0):
        raise ValueError(f"epoch must be a non-negative int or None, got {epoch!r}")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a JSON-serializable dict or None, got {type(extra).__name__}")

    arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, value in model.state_dict().items():
        arrays["model/" + name] = _plain(name, value)
    for prefix, obj, what in (("optim/", optimizer, "optimizer"), ("sched/", schedule, "schedule")):
        if obj is None:
            continue
        if not callable(getattr(obj, "state_dict", None)):
            raise TypeError(f"{what} must have a state_dict() method, got {type(obj).__name__}")
        state = obj.state_dict()
        if not isinstance(state, dict):
            raise TypeError(f"{what}.state_dict() must return a flat dict of arrays, "
                            f"got {type(state).__name__}")
        for key, value in state.items():
            arrays[prefix + str(key)] = _plain(f"{what} key {key!r}", value)

    if history is None and trainer is not None:
        history = getattr(trainer, "history", None)
    hist, hist_kind = _history_dict(history)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": None if epoch is None else int(epoch),
        "history": hist,
        "history_kind": hist_kind,
        "extra": extra,
        "has_optimizer": optimizer is not None,
        "has_schedule": schedule is not None,
        "optimizer_class": None if optimizer is None else type(optimizer).__name__,
        "schedule_class": None if schedule is None else type(schedule).__name__,
        "trainer": None if trainer is None else trainer.get_state(),
        "module_rngs": {name: g.bit_generator.state for name, g in _module_rngs(model).items()},
        "keys": list(arrays),
        "sha256": _digest(arrays),
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint metadata is not JSON-serializable (check `extra`): {e}") from None

    if _is_h5_name(path):
        h5py = _h5py()

        def write(f):
            with h5py.File(f, "w") as h:
                h.attrs[_META] = text
                for key, a in arrays.items():
                    h.create_dataset(key, data=a)
    else:
        def write(f):
            np.savez(f, allow_pickle=False, **arrays, **{_META: np.array(text)})

    _atomic_write(path, write)
    return path


# -------------------------------------------------------------------------------------------------
# loading
# -------------------------------------------------------------------------------------------------
def _damaged(path, why) -> CheckpointError:
    return CheckpointError(f"checkpoint file '{path}' is damaged or not an nnlite checkpoint: {why}")


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("not an .npz archive")
            arrays = {k: z[k] for k in z.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError ...
        raise _damaged(path, f"{type(e).__name__}: {e}") from e
    if _META not in arrays:
        raise _damaged(path, f"no '{_META}' entry")
    meta = arrays.pop(_META)
    if meta.shape != () or meta.dtype.kind != "U":
        raise _damaged(path, f"'{_META}' must be a 0-d unicode array, got {meta.dtype} {meta.shape}")
    return str(meta[()]), arrays


def _read_h5(path, keys_hint=None):
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as h:
            if _META not in h.attrs:
                raise ValueError(f"no '{_META}' attribute")
            text = h.attrs[_META]
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            arrays = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj[()]
            h.visititems(visit)
            arrays = {k: np.asarray(v) for k, v in arrays.items()}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:
        raise _damaged(path, f"{type(e).__name__}: {e}") from e
    return str(text), arrays


def read_checkpoint(path):
    """Read and verify a checkpoint without applying it.

    Returns ``(meta, arrays)``: the metadata dict and an ordered dict of every array keyed as
    in the file (``model/...``, ``optim/...``, ``sched/...``). Raises `CheckpointError` if the
    file is damaged (unreadable, truncated, checksum mismatch, bad metadata) and
    ``FileNotFoundError`` if it does not exist.
    """
    path = _fspath(path)
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"PK"):
        text, arrays = _read_npz(path)
    elif magic.startswith(b"\x89HDF"):
        text, arrays = _read_h5(path)
    else:
        raise _damaged(path, "unrecognized file header (expected an .npz zip archive or HDF5)"
                       if magic else "the file is empty")
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise _damaged(path, f"metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _damaged(path, f"metadata does not declare format '{FORMAT}'")
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"checkpoint file '{path}' has format version {version!r}; this "
                              f"nnlite reads versions up to {VERSION}")
    keys = meta.get("keys")
    if not isinstance(keys, list) or sorted(keys) != sorted(arrays):
        missing = sorted(set(keys or []) - set(arrays))
        extra = sorted(set(arrays) - set(keys or []))
        raise _damaged(path, f"array entries do not match the metadata (missing {missing[:5]}, "
                             f"unexpected {extra[:5]})")
    ordered = OrderedDict((k, arrays[k]) for k in keys)
    if _digest(ordered) != meta.get("sha256"):
        raise _damaged(path, "SHA-256 checksum mismatch (the array bytes were changed)")
    return meta, ordered


def _check_rng_state(state, target: np.random.Generator, what: str, path: str) -> None:
    name = target.bit_generator.state.get("bit_generator")
    if not isinstance(state, dict) or state.get("bit_generator") != name:
        got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise CheckpointMismatchError(f"checkpoint '{path}': {what} RNG is {got}, but the "
                                      f"object to restore uses {name}")
    try:
        type(target.bit_generator)(0).state = state  # validate on a scratch bit generator
    except Exception as e:
        raise _damaged(path, f"invalid {what} RNG state ({e})") from e


def _list(names, n=8):
    return f"{names[:n]}{' ...' if len(names) > n else ''}"


def load_checkpoint(path, model: Module, optimizer=None, schedule=None, trainer=None,
                    strict: bool = True) -> dict:
    """Restore a checkpoint written by `save_checkpoint` into the given (freshly built) objects.

    Everything is read and validated before anything is modified (see the module docstring):
    a damaged file raises `CheckpointError`, an incompatible one `CheckpointMismatchError`
    (both ``ValueError``), leaving model, optimizer, schedule and trainer untouched.

    strict=True: the model's parameter/buffer names must equal the checkpoint's, and every
    object passed (optimizer, schedule, trainer) must have its state in the file; module RNGs
    must match by name. strict=False: missing names keep their current values, unexpected
    ones are ignored, absent optimizer/schedule/trainer state is skipped. Shapes and dtypes
    must match in both modes.

    Restores: model parameters and buffers, every module Generator (e.g. ``Dropout.rng``),
    optimizer and schedule state, the trainer's Generator, split seed and ``history``.
    Returns ``{"epoch", "history", "extra", "version", "missing", "unexpected"}``: ``epoch``
    is the saved count of completed epochs (pass it as ``initial_epoch``), ``history`` a
    `History` (or the saved dict), ``missing``/``unexpected`` the model names skipped.
    """
    path = _fspath(path)
    if not isinstance(model, Module):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
    meta, arrays = read_checkpoint(path)

    # -- model: names, shapes, dtypes -----------------------------------------------------------
    saved = OrderedDict((k[len("model/"):], v) for k, v in arrays.items() if k.startswith("model/"))
    try:
        model.check_state_dict(saved, strict, source="checkpoint")
    except (KeyError, ValueError) as e:
        reason = e.args[0] if e.args else str(e)
        raise CheckpointMismatchError(f"checkpoint '{path}' does not match the model: {reason}") from None
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    missing = [n for n in names if n not in saved]
    unexpected = [n for n in saved if n not in names]

    # -- RNGs -------------------------------------------------------------------------------------
    saved_rngs = meta.get("module_rngs") or {}
    if not isinstance(saved_rngs, dict):
        raise _damaged(path, "module_rngs must be a dict")
    model_rngs = _module_rngs(model)
    if strict:
        lost = [n for n in model_rngs if n not in saved_rngs]
        spare = [n for n in saved_rngs if n not in model_rngs]
        if lost or spare:
            raise CheckpointMismatchError(
                f"checkpoint '{path}' does not match the model's random generators: modules "
                f"without a saved RNG state {_list(lost)}, saved states for unknown modules "
                f"{_list(spare)}")
    rng_updates = []
    for name, g in model_rngs.items():
        if name in saved_rngs:
            _check_rng_state(saved_rngs[name], g, f"module '{name}'", path)
            rng_updates.append((g, saved_rngs[name]))
    tstate = meta.get("trainer")
    if trainer is not None:
        if tstate is None:
            if strict:
                raise CheckpointMismatchError(f"checkpoint '{path}' holds no trainer state "
                                              "(saved without trainer=...); pass strict=False to skip it")
        else:
            if not isinstance(tstate, dict) or "rng" not in tstate or "split_seed" not in tstate:
                raise _damaged(path, "trainer state must hold 'rng' and 'split_seed'")
            _check_rng_state(tstate["rng"], trainer.rng, "trainer", path)

    # -- optimizer / schedule: presence -----------------------------------------------------------
    opt_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    sched_state = {k[len("sched/"):]: v for k, v in arrays.items() if k.startswith("sched/")}
    for obj, has, what in ((optimizer, meta.get("has_optimizer"), "optimizer"),
                           (schedule, meta.get("has_schedule"), "schedule")):
        if obj is not None and not has and strict:
            raise CheckpointMismatchError(f"checkpoint '{path}' holds no {what} state; pass "
                                          f"strict=False to load without it")
        saved_cls = meta.get(f"{what}_class")
        if obj is not None and has and saved_cls != type(obj).__name__:
            raise CheckpointMismatchError(f"checkpoint '{path}' holds {what} state of a "
                                          f"{saved_cls}, got a {type(obj).__name__}")

    # -- apply: optimizer and schedule validate themselves before writing; roll back on error ---
    old_opt = optimizer.state_dict() if optimizer is not None and meta.get("has_optimizer") else None
    old_sched = schedule.state_dict() if schedule is not None and meta.get("has_schedule") else None
    try:
        if old_opt is not None:
            optimizer.load_state_dict(opt_state)
        if old_sched is not None:
            schedule.load_state_dict(sched_state)
    except (ValueError, TypeError, KeyError) as e:
        try:
            if old_opt is not None:
                optimizer.load_state_dict(old_opt)
            if old_sched is not None:
                schedule.load_state_dict(old_sched)
        finally:
            raise CheckpointMismatchError(
                f"checkpoint '{path}' does not match the optimizer/schedule: {e}") from e

    model.load_state_dict({n: saved[n] for n in names if n in saved}, strict=False)
    for g, state in rng_updates:
        g.bit_generator.state = state
    hist = meta.get("history")
    if hist is not None and meta.get("history_kind") == "History":
        hist = History.from_dict(hist)
    if trainer is not None and tstate is not None:
        trainer.set_state(tstate)
        if isinstance(hist, History):
            trainer.history = History.from_dict(hist.to_dict())
    return {"epoch": meta.get("epoch"), "history": hist, "extra": meta.get("extra"),
            "version": meta.get("version"), "missing": missing if not strict else [],
            "unexpected": unexpected if not strict else []}
