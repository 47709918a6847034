"""Progressive unfreezing as a training callback, with a learning rate per block.

Build the optimizer with one parameter group per top-level block (`make_optimizer`), freeze
the base, and let `ProgressiveUnfreezing` unfreeze blocks at given epochs, each phase with its
own learning rate::

    freeze(model, up_to="block5")                     # only the head trains at first
    opt = make_optimizer(Adam, model, lr=1e-3)        # groups: block1..block5, head
    cb = ProgressiveUnfreezing(model, opt, [(0, ["head"], 1e-3),
                                            (5, ["block5"], 1e-4),
                                            (10, ["block4", "block5"], 1e-5)])
    Trainer(model, loss, opt, schedule=StepLR(opt, 5, 0.5), callbacks=[cb, EarlyStopping(...)])

Semantics: at the start of epoch e (``on_epoch_begin``) every phase with ``epoch <= e`` not yet
applied is applied in order (so a resumed run at a later epoch gets all earlier phases): its
blocks become trainable and the parameter groups holding their parameters get ``lr``. With a
closed-form schedule (``StepLR``, ``MultiStepLR``, ``LambdaDecay``, ... anything with
``base_lrs`` and ``lr_at``) bound to the optimizer, the group's ``base_lrs`` entry is rescaled so
the group's lr is exactly ``lr`` now and the schedule keeps decaying it from there;
``ReduceLROnPlateau`` works on the current lrs and needs nothing. EarlyStopping and
ModelCheckpoint are independent callbacks; note that checkpoints do not store ``trainable``
flags: when resuming, rebuild the freezing with the same callback (it re-applies past phases).
"""
from __future__ import annotations

import numbers

from ..train.callbacks import Callback
from .freeze import block_names, param_counts

__all__ = ["ProgressiveUnfreezing", "make_optimizer"]


def make_optimizer(cls, model, lr: float, lrs: dict = None, **kwargs):
    """``cls`` (an nnlite optimizer class) over one parameter group per top-level block.

    lrs: ``{block: lr}`` overrides of ``lr``; other keyword arguments go to ``cls``. The block
    names of the groups are in ``optimizer.group_names`` (same order as ``param_groups``).
    """
    lrs = dict(lrs or {})
    unknown = set(lrs) - set(block_names(model))
    if unknown:
        raise KeyError(f"lrs names unknown blocks {sorted(unknown)}; blocks are {block_names(model)}")
    groups, names = [], []
    for name, child in model.children():
        params = child.parameters()
        if params:
            groups.append({"params": params, "lr": float(lrs.get(name, lr))})
            names.append(name)
    opt = cls(groups, lr=float(lr), **kwargs)
    opt.group_names = names
    return opt


class ProgressiveUnfreezing(Callback):
    """Unfreeze named blocks at given epochs, each phase with its own learning rate.

    phases: list of ``(epoch, blocks, lr)`` (``blocks`` a name or list of names, ``lr`` a float
    or None to keep the groups' lr), epochs 0-based as the trainer's. ``events`` records what
    was applied: ``{"epoch", "blocks", "lr", "trainable"}`` (trainable parameter count after it).
    """

    def __init__(self, model, optimizer, phases):
        names = block_names(model)
        self.model, self.optimizer = model, optimizer
        self.phases = []
        for i, ph in enumerate(phases):
            if not (isinstance(ph, (tuple, list)) and len(ph) == 3):
                raise TypeError(f"phases[{i}] must be (epoch, blocks, lr), got {ph!r}")
            epoch, blocks, lr = ph
            if not isinstance(epoch, numbers.Integral) or isinstance(epoch, bool) or epoch < 0:
                raise ValueError(f"phases[{i}]: epoch must be a non-negative int, got {epoch!r}")
            blocks = [blocks] if isinstance(blocks, str) else list(blocks)
            bad = [b for b in blocks if b not in names]
            if bad:
                raise KeyError(f"phases[{i}] names unknown blocks {bad}; blocks are {names}")
            if lr is not None and (not isinstance(lr, numbers.Real) or lr < 0):
                raise ValueError(f"phases[{i}]: lr must be a non-negative number or None, got {lr!r}")
            self.phases.append((int(epoch), blocks, None if lr is None else float(lr)))
        self.phases.sort(key=lambda p: p[0])
        self._groups = {}
        for name, child in model.children():
            ids = {id(p) for p in child.parameters()}
            self._groups[name] = [g for g, grp in enumerate(optimizer.param_groups)
                                  if any(id(p) in ids for p in grp["params"])]
        missing = [b for _, bl, lr in self.phases for b in bl if lr is not None and not self._groups.get(b)]
        if missing:
            raise ValueError(f"blocks {missing} have no parameters in the optimizer; build it over "
                             "all blocks (make_optimizer) and freeze instead of leaving them out")
        self.applied = 0
        self.events = []

    def on_train_begin(self, trainer):
        self.applied = 0

    def _set_lr(self, trainer, gi: int, lr: float):
        self.optimizer.param_groups[gi]["lr"] = lr
        sched = getattr(trainer, "schedule", None)
        if sched is not None and hasattr(sched, "base_lrs") and hasattr(sched, "lr_at"):
            cur = sched.lr_at(sched.last_epoch)[gi]
            base = sched.base_lrs[gi]
            factor = cur / base if base > 0 else 1.0
            sched.base_lrs[gi] = lr / factor if factor > 0 else lr

    def on_epoch_begin(self, trainer, epoch):
        while self.applied < len(self.phases) and self.phases[self.applied][0] <= epoch:
            e, blocks, lr = self.phases[self.applied]
            mods = dict(self.model.children())
            for b in blocks:
                for p in mods[b].parameters():
                    p.trainable = True
                if lr is not None:
                    for gi in self._groups[b]:
                        self._set_lr(trainer, gi, lr)
            self.applied += 1
            self.events.append({"epoch": int(epoch), "phase_epoch": e, "blocks": list(blocks),
                                "lr": lr, "trainable": param_counts(self.model)["trainable"]})
