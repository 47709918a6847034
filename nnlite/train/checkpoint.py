"""Checkpoints: save and restore a whole training run, safely and without pickle.

File format (``.npz``, version 2):
A NumPy ``.npz`` archive written with ``np.savez`` (uncompressed) holding plain arrays only:

* ``model/<name>``: every parameter and buffer of ``model.state_dict()`` (dotted names);
* ``optim/<key>``: the optimizer's flat ``state_dict()`` (if an optimizer was given);
* ``sched/<key>``: the schedule's flat ``state_dict()`` (if a schedule was given);
* ``cb/<callback>/<key>``: array entries of the callbacks' ``state_dict()`` (e.g.
  `EarlyStopping`'s best weights), ``<callback>`` being the class name, ``#k`` appended for
  the k-th repeat of a class among ``trainer.callbacks``;
* ``__meta__``: a 0-d unicode array holding JSON with ``format``, ``version``, ``epoch``,
  ``history``, ``extra``, the RNG states (``Generator.bit_generator.state`` of the trainer and
  of every module found by ``model.named_modules()`` with a Generator ``rng`` attribute, e.g.
  ``Dropout``), the trainer state, the callbacks' JSON state and the ordered list of array
  ``keys``;
* ``__sha256__``: a 0-d unicode array, the SHA-256 over the exact UTF-8 bytes of ``__meta__``
  and then, for each key in ``keys`` order, the key, its dtype, its shape and its bytes. Every
  byte that influences the restored state is covered: a changed epoch, history, RNG state or
  split seed is detected like a changed weight.

Paths ending in ``.h5`` / ``.hdf5`` are written with h5py instead: the same keys as datasets
(``model/...`` etc. become groups), the JSON in the root attribute ``__meta__`` and the
checksum in the root attribute ``__sha256__`` (same definition). The format is detected from
the file's first bytes when loading. Version-1 files (checksum over the arrays only, stored
in the metadata) are still read.

Safety:
* Writing is atomic: a temporary file in the target's directory is written, flushed,
  fsync'ed and moved over the target with ``os.replace``; if anything fails the temporary
  file is removed and a previous checkpoint at ``path`` is left untouched. Temporary files
  left by a killed earlier save of the same path are removed on the next save
  (``nnlite._io.atomic_open``).
* Loading is validate-then-apply. It reads and verifies the whole file (zip CRCs, the
  SHA-256, the JSON), checks every metadata field (a malformed one raises `CheckpointError`
  naming the field, e.g. ``field 'epoch'``), then checks the state against the model
  (``Module.check_state_dict``), the optimizer and schedule (their ``check_state_dict``), the
  trainer (``Trainer.check_state``) and the callbacks (``Callback.check_state_dict``), and
  only then writes, in an order in which nothing can fail. A damaged file raises
  `CheckpointError`; a checkpoint for another architecture raises `CheckpointMismatchError`
  listing missing/unexpected names or naming the first parameter whose shape/dtype differs.
  Either way nothing is modified. Arrays are loaded with ``allow_pickle=False``.

Resuming:
``save_checkpoint(path, model, optimizer, schedule, trainer, epoch=k)`` after k epochs, then
with freshly built objects (same constructors and arguments, same callbacks)
``info = load_checkpoint(path, model, optimizer, schedule, trainer)`` and
``trainer.fit(x, y, epochs=E, initial_epoch=info["epoch"])`` continues the run bit for bit,
callbacks included (`EarlyStopping`'s patience and best, `ModelCheckpoint`'s best).
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np

from ..nn.module import Module
from .history import History
from .._checks import check_bool, check_path
from .._io import atomic_open

FORMAT = "nnlite-checkpoint"
VERSION = 2
_META = "__meta__"
_SHA = "__sha256__"
_PREFIXES = ("model/", "optim/", "sched/", "cb/")
_H5_SUFFIXES = (".h5", ".hdf5")


class CheckpointError(ValueError):
    """The checkpoint file is damaged (truncated, corrupted) or is not an nnlite checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint is intact but does not fit the given model / optimizer / schedule / trainer."""


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------
def _fspath(path) -> str:
    check_path(path)
    return os.fspath(path)


def _is_h5_name(path: str) -> bool:
    return path.lower().endswith(_H5_SUFFIXES)


def _hash_arrays(h, arrays) -> None:
    for key, a in arrays.items():
        a = np.ascontiguousarray(a)
        h.update(key.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(repr(tuple(a.shape)).encode("ascii") + b"\0")
        h.update(a.tobytes())


def _digest(arrays: "OrderedDict[str, np.ndarray]") -> str:
    """Version 1: SHA-256 over key, dtype, shape and bytes of every array, in the given order."""
    h = hashlib.sha256()
    _hash_arrays(h, arrays)
    return h.hexdigest()


def _digest_v2(text: str, arrays: "OrderedDict[str, np.ndarray]") -> str:
    """Version 2: SHA-256 over the metadata's UTF-8 bytes, then every array as in version 1."""
    h = hashlib.sha256()
    data = text.encode("utf-8")
    h.update(b"nnlite-checkpoint\0" + str(len(data)).encode("ascii") + b"\0" + data)
    _hash_arrays(h, arrays)
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


def _callback_keys(callbacks) -> list:
    """``[(key, callback)]``: class name, ``#k`` appended for the k-th repeat of a class."""
    seen: Dict[str, int] = {}
    out = []
    for cb in callbacks:
        name = type(cb).__name__
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append((name if k == 0 else f"{name}#{k}", cb))
    return out


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
def _write_raw(path: str, meta: dict, arrays: "OrderedDict[str, np.ndarray]") -> None:
    """Fill in ``keys``, serialize ``meta``, sign metadata and arrays, write atomically."""
    meta = dict(meta)
    meta["keys"] = list(arrays)
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint metadata is not JSON-serializable (check `extra`): {e}") from None
    sha = _digest_v2(text, arrays)

    if _is_h5_name(path):
        h5py = _h5py()

        def write(f):
            with h5py.File(f, "w") as h:
                h.attrs[_META] = text
                h.attrs[_SHA] = sha
                for key, a in arrays.items():
                    h.create_dataset(key, data=a)
    else:
        def write(f):
            np.savez(f, allow_pickle=False, **arrays, **{_META: np.array(text), _SHA: np.array(sha)})

    with atomic_open(path) as f:
        write(f)


def save_checkpoint(path, model: Module, optimizer=None, schedule=None, trainer=None,
                    epoch: Optional[int] = None, history=None, extra: Optional[dict] = None) -> str:
    """Write a checkpoint of a training run to ``path`` atomically; returns the path.

    path: file name; ``.h5``/``.hdf5`` writes HDF5 (needs h5py), anything else ``.npz``
        (written as given: no suffix is appended).
    model: the ``Module`` (parameters, buffers and module Generators are saved).
    optimizer, schedule: objects with a flat ``state_dict() -> {str: ndarray}`` (optional).
    trainer: a `Trainer` (optional): its Generator state, split seed, the state of its
        callbacks and, when ``history`` is None, its ``history``.
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

    cb_meta = None
    if trainer is not None:
        cb_meta = {}
        for key, cb in _callback_keys(getattr(trainer, "callbacks", ())):
            state = cb.state_dict() if callable(getattr(cb, "state_dict", None)) else {}
            if not state:
                continue
            if not isinstance(state, dict):
                raise TypeError(f"{key}.state_dict() must return a dict, got {type(state).__name__}")
            entries = {}
            for name, value in state.items():
                if isinstance(value, np.ndarray):
                    arrays[f"cb/{key}/{name}"] = _plain(f"callback {key} entry {name!r}", value)
                else:
                    entries[str(name)] = value
            cb_meta[key] = entries

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
        "callbacks": cb_meta,
        "module_rngs": {name: g.bit_generator.state for name, g in _module_rngs(model).items()},
    }
    _write_raw(path, meta, arrays)
    return path


# -------------------------------------------------------------------------------------------------
# loading
# -------------------------------------------------------------------------------------------------
def _damaged(path, why) -> CheckpointError:
    return CheckpointError(f"checkpoint file '{path}' is damaged or not an nnlite checkpoint: {why}")


def _bad_field(path, field, why) -> CheckpointError:
    return CheckpointError(f"checkpoint file '{path}' is damaged: field '{field}' {why}")


def _scalar_text(a, name, path) -> str:
    if not isinstance(a, np.ndarray) or a.shape != () or a.dtype.kind != "U":
        got = (f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else
               f"{type(a).__name__} (not npy data)")
        raise _damaged(path, f"'{name}' must be a 0-d unicode array, got {got}")
    return str(a[()])


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
    for k, v in arrays.items():  # a member not in .npy format comes back as bytes
        if not isinstance(v, np.ndarray):
            raise _damaged(path, f"member '{k}' is not npy data ({type(v).__name__})")
    if _META not in arrays:
        raise _damaged(path, f"no '{_META}' entry")
    text = _scalar_text(arrays.pop(_META), _META, path)
    sha = _scalar_text(arrays.pop(_SHA), _SHA, path) if _SHA in arrays else None
    return text, sha, arrays


def _read_h5(path):
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as h:
            if _META not in h.attrs:
                raise ValueError(f"no '{_META}' attribute")
            found = {}
            for name in (_META, _SHA):
                if name in h.attrs:
                    v = h.attrs[name]
                    if isinstance(v, bytes):
                        v = v.decode("utf-8")
                    if not isinstance(v, str):
                        raise ValueError(f"attribute '{name}' must be a string, got {type(v).__name__}")
                    found[name] = v
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
    return found[_META], found.get(_SHA), arrays


def read_checkpoint(path):
    """Read and verify a checkpoint without applying it.

    Returns ``(meta, arrays)``: the metadata dict and an ordered dict of every array keyed as
    in the file (``model/...``, ``optim/...``, ``sched/...``, ``cb/...``). Raises
    `CheckpointError` if the file is damaged (unreadable, truncated, checksum mismatch over
    the metadata or the arrays, bad metadata) and ``FileNotFoundError`` if it does not exist.
    """
    path = _fspath(path)
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"PK"):
        text, sha, arrays = _read_npz(path)
    elif magic.startswith(b"\x89HDF"):
        text, sha, arrays = _read_h5(path)
    else:
        raise _damaged(path, "unrecognized file header (expected an .npz zip archive or HDF5)"
                       if magic else "the file is empty")
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise _damaged(path, f"metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise _damaged(path, "metadata is not a JSON object")
    keys = meta.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
            or sorted(keys) != sorted(arrays):
        keys = keys if isinstance(keys, list) else []
        missing = sorted(set(map(str, keys)) - set(arrays))
        extra = sorted(set(arrays) - set(map(str, keys)))
        raise _damaged(path, f"array entries do not match the metadata (missing {missing[:5]}, "
                             f"unexpected {extra[:5]})")
    ordered = OrderedDict((k, arrays[k]) for k in keys)
    if sha is not None:  # version 2: the checksum covers the metadata text too
        if _digest_v2(text, ordered) != sha:
            raise _damaged(path, "SHA-256 checksum mismatch (the metadata or the array bytes "
                                 "were changed)")
    if meta.get("format") != FORMAT:
        raise _damaged(path, f"metadata does not declare format '{FORMAT}'")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
        raise CheckpointError(f"checkpoint file '{path}' has format version {version!r}; this "
                              f"nnlite reads versions 1 to {VERSION}")
    if sha is None:
        if version != 1:
            raise _damaged(path, f"no '{_SHA}' checksum entry (required from version 2 on)")
        if _digest(ordered) != meta.get("sha256"):
            raise _damaged(path, "SHA-256 checksum mismatch (the array bytes were changed)")
    elif version < 2:
        raise _damaged(path, f"version {version} with a '{_SHA}' entry")
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


def _check_meta(meta: dict, path: str) -> None:
    """Type-check every metadata field that influences the restored state (CheckpointError
    naming the field)."""
    epoch = meta.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise _bad_field(path, "epoch", f"must be a non-negative int or null, got {epoch!r}")
    for field in ("has_optimizer", "has_schedule"):
        if not isinstance(meta.get(field, False), bool):
            raise _bad_field(path, field, f"must be true or false, got {meta.get(field)!r}")
    for field in ("optimizer_class", "schedule_class", "history_kind"):
        v = meta.get(field)
        if v is not None and not isinstance(v, str):
            raise _bad_field(path, field, f"must be a string or null, got {v!r}")
    if meta.get("history_kind") not in (None, "History", "dict"):
        raise _bad_field(path, "history_kind", f"must be 'History', 'dict' or null, got "
                                               f"{meta.get('history_kind')!r}")
    hist = meta.get("history")
    if hist is not None:
        if not isinstance(hist, dict):
            raise _bad_field(path, "history", f"must be an object of lists, got {type(hist).__name__}")
        for k, vals in hist.items():
            if not isinstance(vals, list):
                raise _bad_field(path, f"history.{k}", f"must be a list, got {type(vals).__name__}")
            for i, v in enumerate(vals):
                if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
                    raise _bad_field(path, f"history.{k}[{i}]", f"must be a number, got {v!r:.40}")
    extra = meta.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise _bad_field(path, "extra", f"must be an object or null, got {type(extra).__name__}")
    rngs = meta.get("module_rngs")
    if rngs is not None and not isinstance(rngs, dict):
        raise _bad_field(path, "module_rngs", f"must be an object, got {type(rngs).__name__}")
    cbs = meta.get("callbacks")
    if cbs is not None:
        if not isinstance(cbs, dict) or not all(isinstance(v, dict) for v in cbs.values()):
            raise _bad_field(path, "callbacks", "must be an object of objects")
    tstate = meta.get("trainer")
    if tstate is not None:
        if not isinstance(tstate, dict):
            raise _bad_field(path, "trainer", f"must be an object, got {type(tstate).__name__}")
        seed = tstate.get("split_seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise _bad_field(path, "trainer.split_seed", f"must be an int in [0, 2**63), got {seed!r}")
        if not isinstance(tstate.get("rng"), dict):
            raise _bad_field(path, "trainer.rng", f"must be a bit-generator state object, got "
                                                  f"{tstate.get('rng')!r:.60}")


def load_checkpoint(path, model: Module, optimizer=None, schedule=None, trainer=None,
                    strict: bool = True, check_extra=None) -> dict:
    """Restore a checkpoint written by `save_checkpoint` into the given (freshly built) objects.

    Everything is read and validated before anything is modified (see the module docstring):
    a damaged file or a malformed field raises `CheckpointError` (naming the field), an
    incompatible one `CheckpointMismatchError` (both ``ValueError``), leaving model,
    optimizer, schedule, trainer and callbacks untouched.

    strict=True: the model's parameter/buffer names must equal the checkpoint's, and every
    object passed (optimizer, schedule, trainer) must have its state in the file; module RNGs
    must match by name. strict=False: missing names keep their current values, unexpected
    ones are ignored, absent optimizer/schedule/trainer state is skipped. Shapes and dtypes
    must match in both modes. Callbacks of ``trainer`` whose state is in the file (matched
    by class name and position) get it back; others keep theirs.

    check_extra: optional callable ``check_extra(extra)`` run on the saved ``extra`` dict (or
    None) after every other check and before anything is modified, for callers that keep
    their own state in ``extra`` (e.g. ``nnlite.ssl.pretrain``): it raises to refuse the
    file; a `CheckpointError` it raises passes through, any other ValueError/TypeError/
    KeyError becomes a `CheckpointError` naming field ``extra``.

    Restores: model parameters and buffers, every module Generator (e.g. ``Dropout.rng``),
    optimizer and schedule state, the trainer's Generator, split seed, ``history`` and its
    callbacks' state. Returns ``{"epoch", "history", "extra", "version", "missing",
    "unexpected", "callbacks"}``: ``epoch`` is the saved count of completed epochs (pass it
    as ``initial_epoch``), ``history`` a `History` (or the saved dict), ``missing`` /
    ``unexpected`` the model names skipped, ``callbacks`` the keys of the callbacks restored.
    """
    path = _fspath(path)
    if not isinstance(model, Module):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
    strict = check_bool(strict, "strict")
    for obj, what in ((optimizer, "optimizer"), (schedule, "schedule")):
        if obj is not None and not callable(getattr(obj, "load_state_dict", None)):
            raise TypeError(f"{what} must have a load_state_dict() method, got {type(obj).__name__}")
    if trainer is not None and not callable(getattr(trainer, "set_state", None)):
        raise TypeError(f"trainer must be an nnlite Trainer, got {type(trainer).__name__}")
    if check_extra is not None and not callable(check_extra):
        raise TypeError(f"check_extra must be callable or None, got {type(check_extra).__name__}")
    meta, arrays = read_checkpoint(path)
    _check_meta(meta, path)

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

    # -- trainer, history, callbacks ------------------------------------------------------------
    tstate = meta.get("trainer")
    cb_updates = []
    if trainer is not None:
        if tstate is None:
            if strict:
                raise CheckpointMismatchError(f"checkpoint '{path}' holds no trainer state "
                                              "(saved without trainer=...); pass strict=False to skip it")
        else:
            _check_rng_state(tstate["rng"], trainer.rng, "trainer", path)
            check = getattr(trainer, "check_state", None)
            if callable(check):
                try:
                    check(tstate)
                except (TypeError, ValueError) as e:
                    raise _bad_field(path, "trainer", f"is invalid: {e}") from None
        saved_cbs = meta.get("callbacks") or {}
        for key, cb in _callback_keys(getattr(trainer, "callbacks", ())):
            if key not in saved_cbs:
                continue
            state = dict(saved_cbs[key])
            prefix = f"cb/{key}/"
            state.update((k[len(prefix):], v) for k, v in arrays.items() if k.startswith(prefix))
            try:
                cb.check_state_dict(state, trainer)
            except (KeyError, TypeError, ValueError) as e:
                reason = e.args[0] if e.args else str(e)
                raise CheckpointMismatchError(f"checkpoint '{path}': the state of callback "
                                              f"{key} does not fit: {reason}") from None
            cb_updates.append((key, cb, state))
    hist = meta.get("history")
    if hist is not None and meta.get("history_kind") == "History":
        try:
            hist = History.from_dict(hist)
        except (TypeError, ValueError) as e:
            raise _bad_field(path, "history", f"is invalid: {e}") from None

    # -- optimizer / schedule: presence, class and state, checked before anything is written ----
    opt_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    sched_state = {k[len("sched/"):]: v for k, v in arrays.items() if k.startswith("sched/")}
    load_opt = load_sched = False
    for obj, has, what, state in ((optimizer, meta.get("has_optimizer"), "optimizer", opt_state),
                                  (schedule, meta.get("has_schedule"), "schedule", sched_state)):
        if obj is None:
            continue
        if not has:
            if strict:
                raise CheckpointMismatchError(f"checkpoint '{path}' holds no {what} state; pass "
                                              f"strict=False to load without it")
            continue
        saved_cls = meta.get(f"{what}_class")
        if saved_cls != type(obj).__name__:
            raise CheckpointMismatchError(f"checkpoint '{path}' holds {what} state of a "
                                          f"{saved_cls}, got a {type(obj).__name__}")
        check = getattr(obj, "check_state_dict", None)
        if callable(check):
            try:
                check(state)
            except (ValueError, TypeError, KeyError) as e:
                raise CheckpointMismatchError(
                    f"checkpoint '{path}' does not match the {what}: {e}") from None
        if what == "optimizer":
            load_opt = True
        else:
            load_sched = True

    # -- the caller's own state in `extra` ---------------------------------------------------------
    if check_extra is not None:
        try:
            check_extra(meta.get("extra"))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise _bad_field(path, "extra", f"is invalid: {e.args[0] if e.args else e}") from None

    # -- apply: everything above has been checked ------------------------------------------------
    # objects without check_state_dict (duck-typed) may still fail: load them first, roll back
    old_opt = optimizer.state_dict() if load_opt else None
    old_sched = schedule.state_dict() if load_sched else None
    try:
        if load_opt:
            optimizer.load_state_dict(opt_state)
        if load_sched:
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
    if trainer is not None and tstate is not None:
        trainer.set_state(tstate)
        if isinstance(hist, History):
            trainer.history = History.from_dict(hist.to_dict())
    for _, cb, state in cb_updates:
        cb.load_state_dict(state, trainer)
    return {"epoch": meta.get("epoch"), "history": hist, "extra": meta.get("extra"),
            "version": meta.get("version"), "missing": missing if not strict else [],
            "unexpected": unexpected if not strict else [],
            "callbacks": [key for key, _, _ in cb_updates]}
