"""Learning-rate schedules whose values equal ``torch.optim.lr_scheduler``'s of the same name.

Conventions shared by every schedule here:
* A schedule is bound to an :class:`~nnlite.optim.Optimizer`. The constructor records each
  group's current lr as its base lr, sets ``last_epoch = 0`` and writes the epoch-0 lr into the
  groups (as PyTorch's schedulers do on construction).
* ``step()`` advances ``last_epoch`` by one -- one epoch, or one iteration if you call it per
  batch -- and writes the new lr into every group; call it *after* ``optimizer.step()``.
* Values come from closed forms ``lr(t) = f(base_lr, t)``; they equal PyTorch's chainable
  updates up to rounding (checked in the tests). Consequence: a schedule overwrites any manual
  change of ``group["lr"]`` on its next step (only :class:`ReduceLROnPlateau` is chainable).
* ``state_dict()`` is a flat dict of plain arrays holding the *progress* (epoch counter, base
  and last lrs, ...), not the constructor arguments: rebuild the schedule with the same
  arguments, then ``load_state_dict``, which also writes the restored lrs into the optimizer
  (so the order relative to ``optimizer.load_state_dict`` does not matter).
"""
from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Mapping

import numpy as np

from .._checks import check_choice, check_int, check_real
from .optimizers import Optimizer

__all__ = ["LRSchedule", "LambdaDecay", "MultiplicativeDecay", "StepLR", "MultiStepLR",
           "ExponentialLR", "CosineAnnealingLR", "WarmupCosine", "ReduceLROnPlateau"]


def _check_state_keys(state, keys, cls: str) -> None:
    """``state`` must be a Mapping with no key outside ``keys`` (TypeError / ValueError naming
    ``cls``); missing keys are reported by :func:`_take`."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{cls}.load_state_dict expects a dict of arrays, got {type(state).__name__}")
    extra = sorted(set(state) - set(keys))
    if extra:
        raise ValueError(f"{cls} state dict has unexpected key(s) {extra}")


def _take(state: Mapping, key: str, shape: tuple, kind: str, cls: str) -> np.ndarray:
    """Fetch ``state[key]`` as an array of the given shape and kind ('int' or 'float')."""
    if key not in state:
        raise ValueError(f"{cls} state dict is missing key '{key}'")
    arr = np.asarray(state[key])
    if arr.shape != shape:
        raise ValueError(f"{cls} state dict key '{key}': expected shape {shape}, got {arr.shape}")
    ok = np.issubdtype(arr.dtype, np.integer) if kind == "int" else \
        (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer))
    if not ok:
        raise TypeError(f"{cls} state dict key '{key}': expected {kind} values, got dtype {arr.dtype}")
    return arr


class _ScheduleBase:
    """Shared plumbing: optimizer check, ``get_last_lr``, writing lrs into the groups."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs an nnlite.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.last_epoch = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    def _n_groups(self) -> int:
        return len(self.optimizer.param_groups)

    def _check_groups(self, n: int) -> None:
        if self._n_groups() != n:
            raise ValueError(f"{type(self).__name__} was built for {n} parameter group(s) but the "
                             f"optimizer now has {self._n_groups()}; build a new schedule")

    def _write(self, lrs) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = [float(lr) for lr in lrs]

    def get_last_lr(self) -> list:
        """The lr of each parameter group after the latest ``step()`` (a new list of floats)."""
        return list(self._last_lr)

    #: True for a schedule built without its length: a `Trainer` calls ``set_total_steps``.
    needs_total_steps = False

    def set_total_steps(self, n: int) -> None:
        """Set the schedule's length (number of ``step()`` calls in the run); only for schedules
        built with their length left None (``needs_total_steps``)."""
        raise TypeError(f"{type(self).__name__} does not take its length from the trainer")

    def _parse_state(self, state: Mapping) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def check_state_dict(self, state: Mapping) -> None:
        """Check that ``state`` (:meth:`state_dict` output) fits this schedule, changing nothing.

        Raises ValueError/TypeError naming the key (missing / unexpected keys, shapes, dtypes,
        negative counters or lrs). `load_checkpoint` calls it before it writes anything.
        """
        self._parse_state(state)

    def load_state_dict(self, state: Mapping) -> None:
        """Restore :meth:`state_dict` output (validated first) and write ``last_lr`` into the groups."""
        parsed = self._parse_state(state)
        last = parsed.pop("last_lr")
        for name, value in parsed.items():
            setattr(self, name, value)
        self._write(last)


class LRSchedule(_ScheduleBase):
    """Base of the closed-form schedules: group i gets ``lr_i(t) = self._lr(base_lrs[i], t, i)``.

    Update formula: group_i["lr"] = lr_at(last_epoch)[i], where subclasses define lr_at.
    Convention: see the module docstring (constructor writes epoch 0; ``step()`` advances one).
    """

    def __init__(self, optimizer):
        super().__init__(optimizer)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self._write(self.lr_at(0))

    def _lr(self, base: float, epoch: int, i: int) -> float:
        raise NotImplementedError

    def lr_at(self, epoch: int) -> list:
        """The lrs (one per group) this schedule gives at ``epoch``, without changing anything."""
        epoch = check_int(epoch, f"{type(self).__name__}: epoch", minimum=0)
        return [self._lr(base, epoch, i) for i, base in enumerate(self.base_lrs)]

    def step(self) -> None:
        """Advance one epoch (or iteration) and write the new lr into every group."""
        self._check_groups(len(self.base_lrs))
        self.last_epoch += 1
        self._write(self.lr_at(self.last_epoch))

    def state_dict(self) -> dict:
        """Flat dict: ``last_epoch`` (0-d int64), ``base_lrs`` and ``last_lr`` (float64, one per group)."""
        return {"last_epoch": np.array(self.last_epoch, dtype=np.int64),
                "base_lrs": np.array(self.base_lrs, dtype=np.float64),
                "last_lr": np.array(self._last_lr, dtype=np.float64)}

    def _parse_state(self, state: Mapping) -> dict:
        cls = type(self).__name__
        _check_state_keys(state, ("last_epoch", "base_lrs", "last_lr"), cls)
        n = self._n_groups()
        epoch = _take(state, "last_epoch", (), "int", cls)
        base = _take(state, "base_lrs", (n,), "float", cls)
        last = _take(state, "last_lr", (n,), "float", cls)
        if int(epoch) < 0 or np.any(base < 0) or np.any(last < 0):
            raise ValueError(f"{cls} state dict holds a negative epoch or lr")
        if not (np.all(np.isfinite(base)) and np.all(np.isfinite(last))):
            raise ValueError(f"{cls} state dict holds a non-finite lr")
        return {"last_epoch": int(epoch), "base_lrs": [float(x) for x in base],
                "last_lr": [float(x) for x in last]}


class LambdaDecay(LRSchedule):
    """lr = base_lr * lr_lambda(epoch) -- PyTorch's ``LambdaLR``.

    Update formula: lr_t = base_lr * f(t) (f = lr_lambda, or f(t) = gamma**t for a number gamma).
    Convention: ``lr_lambda`` is a callable ``int -> factor``, a list of such callables (one per
    parameter group), or a number ``gamma`` as shorthand for the reports' per-epoch
    ``lr_decay`` (then it equals :class:`MultiplicativeDecay` / :class:`ExponentialLR`). The
    callables are not part of ``state_dict``.
    """

    def __init__(self, optimizer, lr_lambda):
        cls = type(self).__name__
        n = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        if isinstance(lr_lambda, numbers.Real) and not isinstance(lr_lambda, (bool, np.bool_)):
            gamma = check_real(lr_lambda, f"{cls}: gamma", lo=0.0, lo_open=True)
            fns = [lambda t, g=gamma: g ** t] * n
        elif callable(lr_lambda):
            fns = [lr_lambda] * n
        elif isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"{cls}: expected {n} lr_lambda functions (one per parameter "
                                 f"group), got {len(lr_lambda)}")
            for f in lr_lambda:
                if not callable(f):
                    raise TypeError(f"{cls}: lr_lambda entries must be callable, got {type(f).__name__}")
            fns = list(lr_lambda)
        else:
            raise TypeError(f"{cls}: lr_lambda must be a callable, a list of callables or a "
                            f"number, got {type(lr_lambda).__name__}")
        self.lr_lambdas = fns
        super().__init__(optimizer)

    def _lr(self, base, epoch, i):
        factor = check_real(self.lr_lambdas[i](epoch), f"{type(self).__name__}: lr_lambda({epoch})", lo=0.0)
        return base * factor


class MultiplicativeDecay(LRSchedule):
    """Constant per-epoch multiplicative decay (the reports' ``lr_decay``, e.g. 0.9).

    Update formula: lr_t = base_lr * gamma**t.
    Convention: equals PyTorch's ``MultiplicativeLR(lambda t: gamma)`` and ``ExponentialLR(gamma)``
    (closed form instead of repeated multiplication). gamma > 0.
    """

    def __init__(self, optimizer, gamma):
        self.gamma = check_real(gamma, f"{type(self).__name__}: gamma", lo=0.0, lo_open=True)
        super().__init__(optimizer)

    def _lr(self, base, epoch, i):
        return base * self.gamma ** epoch


class ExponentialLR(MultiplicativeDecay):
    """PyTorch's ``ExponentialLR``.

    Update formula: lr_t = base_lr * gamma**t.
    Convention: same as :class:`MultiplicativeDecay`; gamma > 0 (gamma > 1 grows the lr).
    """


class StepLR(LRSchedule):
    """PyTorch's ``StepLR``: decay by gamma every ``step_size`` epochs.

    Update formula: lr_t = base_lr * gamma**(t // step_size).
    Convention: step_size is a positive int; gamma > 0.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        cls = type(self).__name__
        self.step_size = check_int(step_size, f"{cls}: step_size", minimum=1)
        self.gamma = check_real(gamma, f"{cls}: gamma", lo=0.0, lo_open=True)
        super().__init__(optimizer)

    def _lr(self, base, epoch, i):
        return base * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRSchedule):
    """PyTorch's ``MultiStepLR``: decay by gamma at each milestone epoch.

    Update formula: lr_t = base_lr * gamma**(number of milestones <= t).
    Convention: milestones are positive ints in any order; as in PyTorch, a milestone listed
    twice applies gamma twice. gamma > 0.
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        cls = type(self).__name__
        try:
            ms = list(milestones)
        except TypeError:
            raise TypeError(f"{cls}: milestones must be a list of ints, got "
                            f"{type(milestones).__name__}") from None
        if not ms:
            raise ValueError(f"{cls}: milestones must be a non-empty list of epochs, got {ms}")
        self.milestones = sorted(check_int(m, f"{cls}: milestone", minimum=1) for m in ms)
        self.gamma = check_real(gamma, f"{cls}: gamma", lo=0.0, lo_open=True)
        super().__init__(optimizer)

    def _lr(self, base, epoch, i):
        return base * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRSchedule):
    """PyTorch's ``CosineAnnealingLR`` (no restarts).

    Update formula: lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2.
    Convention: as in PyTorch the formula is used for every t, so past T_max the lr rises
    again (period 2*T_max); ``T_max=None`` lets a `Trainer` set it to the run's length; for a
    linear warm-up followed by one cosine that then stays at
    eta_min use :class:`WarmupCosine`. T_max is a positive int, eta_min >= 0.
    """

    def __init__(self, optimizer, T_max=None, eta_min=0.0):
        cls = type(self).__name__
        self.T_max = None if T_max is None else check_int(T_max, f"{cls}: T_max", minimum=1)
        self._auto_length = T_max is None
        self.eta_min = check_real(eta_min, f"{cls}: eta_min", lo=0.0)
        super().__init__(optimizer)

    @property
    def needs_total_steps(self) -> bool:
        """True when built with ``T_max=None``: a `Trainer`'s ``fit`` sets it to the run's length."""
        return self._auto_length

    def set_total_steps(self, n: int) -> None:
        """Set ``T_max = n`` (called by ``Trainer.fit`` when built with ``T_max=None``)."""
        if not self._auto_length:
            raise TypeError(f"{type(self).__name__} was built with T_max={self.T_max}; "
                            "build it with T_max=None to let the trainer set it")
        self.T_max = check_int(n, f"{type(self).__name__}: total_steps", minimum=1)

    def _lr(self, base, epoch, i):
        if self.T_max is None:
            if epoch == 0:
                return base
            raise ValueError(f"{type(self).__name__}: T_max is not known yet (built with "
                             "T_max=None): train with a Trainer or call set_total_steps(n)")
        return self.eta_min + (base - self.eta_min) * (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0


class WarmupCosine(LRSchedule):
    """Linear warm-up, then one cosine decay to ``eta_min``, then constant ``eta_min``.

    Update formula: lr_t = base*(f + (1-f)*t/W) for t < W; eta_min + (base - eta_min)*(1 +
    cos(pi*(t-W)/(T-W)))/2 for W <= t <= T; eta_min for t > T  (W = warmup_steps, T = total_steps,
    f = warmup_start_factor).
    Convention: for t <= T equals PyTorch's ``SequentialLR([LinearLR(start_factor=f,
    total_iters=W), CosineAnnealingLR(T_max=T-W, eta_min)], milestones=[W])``; unlike it, the lr
    stays at eta_min after T instead of rising again. ``warmup_start_factor`` defaults to
    LinearLR's 1/3 and may be 0 (0 <= f <= 1); 0 <= W < T; usually stepped once per iteration
    (``Trainer(..., schedule_interval="step")``). ``total_steps=None`` lets the `Trainer` set
    T from the run (``epochs * steps_per_epoch``), so the caller need not size the split;
    with it, ``warmup_fraction`` (instead of ``warmup_steps``) sets W = max(1, floor(fraction
    * T)) once T is known.
    """

    def __init__(self, optimizer, warmup_steps=None, total_steps=None, warmup_start_factor=1.0 / 3,
                 eta_min=0.0, warmup_fraction=None):
        cls = type(self).__name__
        if (warmup_steps is None) == (warmup_fraction is None):
            raise TypeError(f"{cls}: pass exactly one of warmup_steps (an int) and warmup_fraction "
                            f"(a fraction of total_steps), got warmup_steps={warmup_steps!r}, "
                            f"warmup_fraction={warmup_fraction!r}")
        self.warmup_fraction = None
        if warmup_fraction is not None:
            self.warmup_fraction = check_real(warmup_fraction, f"{cls}: warmup_fraction", lo=0.0, hi=1.0, hi_open=True)
            self.warmup_steps = None
        else:
            self.warmup_steps = check_int(warmup_steps, f"{cls}: warmup_steps", minimum=0)
        self._auto_length = total_steps is None
        self.total_steps = None
        if total_steps is not None:
            self._set_total(total_steps)
        self.warmup_start_factor = check_real(warmup_start_factor, f"{cls}: warmup_start_factor", lo=0.0, hi=1.0)
        self.eta_min = check_real(eta_min, f"{cls}: eta_min", lo=0.0)
        super().__init__(optimizer)

    def _set_total(self, total_steps) -> None:
        cls = type(self).__name__
        total = check_int(total_steps, f"{cls}: total_steps", minimum=1)
        if self.warmup_fraction is not None:
            self.warmup_steps = max(1, int(math.floor(self.warmup_fraction * total + 1e-9)))
        if self.warmup_steps >= total:
            raise ValueError(f"{cls}: warmup_steps must be < total_steps, got warmup_steps="
                             f"{self.warmup_steps}, total_steps={total}")
        self.total_steps = total

    @property
    def needs_total_steps(self) -> bool:
        """True when built with ``total_steps=None``: a `Trainer`'s ``fit`` sets it."""
        return self._auto_length

    def set_total_steps(self, n: int) -> None:
        """Set ``total_steps = n`` (called by ``Trainer.fit`` when built with ``total_steps=None``:
        ``epochs * steps_per_epoch`` with ``schedule_interval="step"``, else ``epochs``)."""
        if not self._auto_length:
            raise TypeError(f"{type(self).__name__} was built with total_steps="
                            f"{self.total_steps}; build it with total_steps=None to let the "
                            "trainer set it")
        self._set_total(n)

    def _lr(self, base, epoch, i):
        w, total, f = self.warmup_steps, self.total_steps, self.warmup_start_factor
        if w is None:  # warmup_fraction before the length is known: t = 0 is inside the warm-up
            if epoch == 0:
                return base * f
            raise ValueError(f"{type(self).__name__}: total_steps is not known yet (built with "
                             "total_steps=None): train with a Trainer or call set_total_steps(n)")
        if epoch < w:
            return base * (f + (1.0 - f) * epoch / w)
        if total is None:
            if epoch == 0:  # no warm-up: the cosine starts at base
                return base
            raise ValueError(f"{type(self).__name__}: total_steps is not known yet (built with "
                             "total_steps=None): train with a Trainer or call set_total_steps(n)")
        if epoch >= total:
            return self.eta_min
        cos = math.cos(math.pi * (epoch - w) / (total - w))
        return self.eta_min + (base - self.eta_min) * (1.0 + cos) / 2.0


class ReduceLROnPlateau(_ScheduleBase):
    """PyTorch's ``ReduceLROnPlateau``: multiply the lr by ``factor`` when a metric stalls.

    Update formula: after more than ``patience`` consecutive non-improving ``step(metric)``
    calls, lr = max(lr*factor, min_lr) (skipped if the change is <= eps), then ``cooldown``
    calls during which bad epochs are not counted.
    Convention: identical to PyTorch, including improvement tests: mode='min' & 'rel':
    metric < best*(1-threshold); 'min' & 'abs': metric < best - threshold; 'max' & 'rel':
    metric > best*(1+threshold); 'max' & 'abs': metric > best + threshold. A NaN metric counts
    as not improving. Chainable: it reads and rescales the groups' current lr and does not change
    it on construction. ``min_lr`` is a number or one per group.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        super().__init__(optimizer)
        cls = type(self).__name__
        check_choice(mode, f"{cls}: mode", ("min", "max"))
        check_choice(threshold_mode, f"{cls}: threshold_mode", ("rel", "abs"))
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = check_real(factor, f"{cls}: factor", lo=0.0, lo_open=True, hi=1.0, hi_open=True)
        self.patience = check_int(patience, f"{cls}: patience", minimum=0)
        self.threshold = check_real(threshold, f"{cls}: threshold", lo=0.0)
        self.cooldown = check_int(cooldown, f"{cls}: cooldown", minimum=0)
        self.eps = check_real(eps, f"{cls}: eps", lo=0.0)
        n = self._n_groups()
        if isinstance(min_lr, (list, tuple, np.ndarray)):
            if len(min_lr) != n:
                raise ValueError(f"{cls}: expected {n} min_lr values (one per parameter group), "
                                 f"got {len(min_lr)}")
            self.min_lrs = [check_real(m, f"{cls}: min_lr", lo=0.0) for m in min_lr]
        else:
            self.min_lrs = [check_real(min_lr, f"{cls}: min_lr", lo=0.0)] * n
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, a: float, best: float) -> bool:
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if rel else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if rel else best + self.threshold)

    def step(self, metric) -> None:
        """Record one epoch's ``metric`` (e.g. validation loss) and reduce the lr if it stalled."""
        cls = type(self).__name__
        if isinstance(metric, np.ndarray):
            if metric.size != 1:
                raise ValueError(f"{cls}.step: metric must be a scalar, got an array of shape {metric.shape}")
            metric = metric.reshape(())[()]
        if isinstance(metric, (bool, np.bool_)) or not isinstance(metric, numbers.Real):
            raise TypeError(f"{cls}.step: metric must be a real number, got {type(metric).__name__}")
        self._check_groups(len(self.min_lrs))
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Flat dict: ``last_epoch``, ``num_bad_epochs``, ``cooldown_counter`` (0-d int64),
        ``best`` (0-d float64) and ``last_lr`` (float64, one per group)."""
        return {"last_epoch": np.array(self.last_epoch, dtype=np.int64),
                "best": np.array(self.best, dtype=np.float64),
                "num_bad_epochs": np.array(self.num_bad_epochs, dtype=np.int64),
                "cooldown_counter": np.array(self.cooldown_counter, dtype=np.int64),
                "last_lr": np.array(self._last_lr, dtype=np.float64)}

    def _parse_state(self, state: Mapping) -> dict:
        cls = type(self).__name__
        _check_state_keys(state, ("last_epoch", "best", "num_bad_epochs", "cooldown_counter", "last_lr"), cls)
        epoch = _take(state, "last_epoch", (), "int", cls)
        best = _take(state, "best", (), "float", cls)
        bad = _take(state, "num_bad_epochs", (), "int", cls)
        cool = _take(state, "cooldown_counter", (), "int", cls)
        last = _take(state, "last_lr", (self._n_groups(),), "float", cls)
        if min(int(epoch), int(bad), int(cool)) < 0 or np.any(last < 0):
            raise ValueError(f"{cls} state dict holds a negative counter or lr")
        if np.isnan(best) or not np.all(np.isfinite(last)):
            raise ValueError(f"{cls} state dict holds a NaN best or a non-finite lr")
        return {"last_epoch": int(epoch), "best": float(best), "num_bad_epochs": int(bad),
                "cooldown_counter": int(cool), "last_lr": [float(x) for x in last]}
