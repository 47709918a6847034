"""Checkpoints of :func:`nnlite.ssl.pretrain`, for a resume that continues the run bit for bit.

Written by ``nnlite.train.save_checkpoint`` (the library's format: ``.npz``, or ``.h5``; atomic
write; SHA-256 over metadata and arrays; no pickle), with

* ``model``: the method's modules under their names, as one `MethodModules` (``encoder.*``,
  ``projector.*``, and for BYOL ``predictor.*``, ``target_encoder.*``, ``target_projector.*``):
  parameters, batch-norm buffers and the Generators of modules such as ``Dropout``;
* the optimizer and the schedule (their ``state_dict``), ``epoch`` = completed epochs;
* ``extra["ssl_pretrain"]``: the loop's state as JSON (floats round-trip exactly): ``format``,
  the method's hyper-parameters (``method.config()``), ``num_images`` and ``batch_size`` (they
  fix the permutations), the position (``epoch``, ``step`` = steps done in that epoch,
  ``global_step``, ``running`` = that epoch's loss sum so far), the loop Generator's
  ``bit_generator.state`` now (``rng``) and at the start of the current epoch (``epoch_rng``,
  to redraw a partial epoch's permutation; None at an epoch boundary), ``elapsed`` /
  ``epoch_elapsed`` seconds, the ``history`` of the completed epochs (every step's loss
  included) and ``method_state`` (BYOL's current tau).

Loading is validate-then-apply: ``load_checkpoint`` checks the file and every module, optimizer
and schedule entry, and through its ``check_extra`` hook the loop state, before it writes
anything; the loop Generator and the method's state are set only after that. A damaged file
raises ``CheckpointError``, a checkpoint of another run (other method, hyper-parameters,
architecture, optimizer, data size or batch size) ``CheckpointMismatchError``.
"""
from __future__ import annotations

import copy

import numpy as np

from .._checks import check_int, check_real
from ..nn.module import Module
from ..train.checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint, save_checkpoint

KEY = "ssl_pretrain"
FORMAT = 1


class MethodModules(Module):
    """A method's modules under their names (``encoder``, ``projector``, ...) as one Module, for
    nnlite's checkpoint functions: names read ``encoder.0.weight``. No forward of its own."""

    def __init__(self, modules):
        super().__init__()
        for name, m in modules.items():
            setattr(self, name, m)


def method_modules(method) -> MethodModules:
    """``MethodModules`` of ``method.state_modules()`` (SimCLR, BYOL, BarlowTwins have it)."""
    named = getattr(method, "state_modules", None)
    if not callable(named) or not callable(getattr(method, "config", None)):
        raise TypeError(f"checkpoints need a method with state_modules() and config() (ssl.SimCLR, "
                        f"ssl.BYOL, ssl.BarlowTwins), got {type(method).__name__}")
    return MethodModules(named())


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def save_state(path, method, optimizer, schedule, state: dict) -> str:
    """Write the checkpoint of a pretrain run at ``state`` (the loop state described in the
    module docstring, without ``format``/``method``) atomically to ``path``; returns the path."""
    extra = {KEY: _jsonable({"format": FORMAT, "method": method.config(), **state,
                             "method_state": method.get_state()})}
    return save_checkpoint(path, method_modules(method), optimizer, schedule, epoch=state["epoch"],
                           extra=extra)


def _field(st, key):
    return st.get(key), f"'{KEY}.{key}'"


def _check_rng(state, rng, key, path):
    name = rng.bit_generator.state.get("bit_generator")
    got = state.get("bit_generator") if isinstance(state, dict) else None
    if got != name:
        raise CheckpointMismatchError(f"checkpoint '{path}': the loop's Generator was a {got}, the rng "
                                      f"given now is a {name}")
    try:
        type(rng.bit_generator)(0).state = state                 # on a scratch bit generator
    except Exception as e:  # noqa: BLE001 - numpy raises TypeError, ValueError, KeyError
        raise ValueError(f"'{KEY}.{key}' is not a valid {name} state ({e})") from None


def check_state(extra, path, method, rng, num_images, batch_size) -> dict:
    """Check the loop state in a checkpoint's ``extra`` against this run, changing nothing;
    returns it. CheckpointMismatchError for another run, ValueError for a malformed field."""
    if not isinstance(extra, dict) or KEY not in extra:
        raise CheckpointMismatchError(f"checkpoint '{path}' was not written by nnlite.ssl.pretrain (its "
                                      f"extra data has no '{KEY}' entry)")
    st = extra[KEY]
    if not isinstance(st, dict):
        raise ValueError(f"'{KEY}' must be an object, got {type(st).__name__}")
    if st.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint '{path}' holds ssl.pretrain state format {st.get('format')!r:.20}; "
                              f"this nnlite reads format {FORMAT}")
    if st.get("method") != method.config():
        raise CheckpointMismatchError(f"checkpoint '{path}' is of a {st.get('method')!r:.200} run, the method "
                                      f"given now is {method.config()!r}")
    for key, now in (("num_images", num_images), ("batch_size", batch_size)):
        if st.get(key) != now:
            raise CheckpointMismatchError(f"checkpoint '{path}' was trained with {key}={st.get(key)!r:.30}, "
                                          f"this run has {key}={now}")
    steps = num_images // batch_size
    epoch = check_int(*_field(st, "epoch"), minimum=0)
    step = check_int(*_field(st, "step"), minimum=0, maximum=steps - 1)
    k = check_int(*_field(st, "global_step"), minimum=0)
    if k != epoch * steps + step:
        raise ValueError(f"'{KEY}.global_step' = {k} does not match epoch {epoch} and step {step} "
                         f"at {steps} steps per epoch")
    check_real(*_field(st, "running"))
    check_real(*_field(st, "elapsed"), lo=0.0)
    check_real(*_field(st, "epoch_elapsed"), lo=0.0)
    _check_rng(st.get("rng"), rng, "rng", path)
    if step == 0 and st.get("epoch_rng") is not None:
        raise ValueError(f"'{KEY}.epoch_rng' must be null at an epoch boundary (step 0)")
    if step > 0:
        _check_rng(st.get("epoch_rng"), rng, "epoch_rng", path)
    hist = st.get("history")
    if not isinstance(hist, dict) or not all(isinstance(v, list) for v in hist.values()):
        raise ValueError(f"'{KEY}.history' must be an object of lists")
    for name, n in (("loss", epoch), ("step_loss", k)):
        if len(hist.get(name, ())) != n:
            raise ValueError(f"'{KEY}.history.{name}' must hold {n} values, got {len(hist.get(name, ()))}")
    method.check_state(st.get("method_state"))
    return st


def load_state(path, method, optimizer, schedule, rng, num_images, batch_size) -> dict:
    """Restore a :func:`save_state` checkpoint into the method's modules, the optimizer, the
    schedule, the loop Generator ``rng`` (in place) and the method's state; returns the loop
    state (``history`` a fresh copy). Everything is checked before anything is modified."""
    checked = {}

    def check(extra):
        checked["state"] = check_state(extra, path, method, rng, num_images, batch_size)

    load_checkpoint(path, method_modules(method), optimizer, schedule, check_extra=check)
    st = copy.deepcopy(checked["state"])
    rng.bit_generator.state = st["rng"]
    method.set_state(st["method_state"])
    return st
