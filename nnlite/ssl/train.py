"""Self-supervised pre-training: SimCLR, BYOL and Barlow Twins, and a small loop that drives them.

Why not ``nnlite.train.Trainer``: its step is ``loss(model(x_batch), y_batch)`` with one forward
per batch and labels, while these methods need two augmented views, a target network updated
by EMA after every step (BYOL) and no labels. :func:`pretrain` is the small loop for that; it
reuses the optimizers and schedules of ``nnlite.optim``, runs in a ``nnlite.parallel.threads()``
block, and calls ``on_epoch_end(epoch, logs)`` (e.g. a k-NN monitor) after every epoch.

Each method object has ``parameters()`` (the trainable ones), ``step(v1, v2) -> loss`` (forward,
loss, backward: gradients accumulated, the optimizer not called), ``after_step(k, total)``, the
``encoder`` whose output is the embedding, and for checkpoints (:mod:`.checkpoint`)
``state_modules()`` (its modules by name), ``config()`` (the hyper-parameters a resumed run must
share) and ``get_state`` / ``check_state`` / ``set_state`` (state outside the modules: BYOL's tau).
"""
from __future__ import annotations

import copy
import math
import os
import time

import numpy as np

from .. import losses, parallel
from .._checks import as_generator, check_int, check_path, check_real
from . import checkpoint as ckpt


def cosine_tau(step, total_steps, base=0.996):
    """BYOL's EMA coefficient: tau_k = 1 - (1 - base) (cos(pi k / K) + 1) / 2, from base to 1."""
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / max(total_steps, 1)) + 1) / 2


def ema_update(target, online, tau):
    """target <- tau * target + (1 - tau) * online, parameter by parameter (in place); batch-norm
    buffers (running statistics) are copied from the online network. Both modules must have the
    same structure."""
    tau = check_real(tau, "tau", 0.0, 1.0)
    tp, op = target.parameters(), online.parameters()
    if len(tp) != len(op):
        raise ValueError(f"target and online networks differ: {len(tp)} vs {len(op)} parameters")
    for t, o in zip(tp, op):
        t.data *= tau
        t.data += (1.0 - tau) * o.data
    for (_, tb), (_, ob) in zip(_buffers(target), _buffers(online)):
        tb[...] = ob


def _buffers(module):
    return [(n, b) for name, m in module.named_modules() for n, b in m.named_buffers(name)]


class _Method:
    def __init__(self, encoder, projector):
        self.encoder, self.projector = encoder, projector

    def modules(self):
        return [self.encoder, self.projector]

    def parameters(self):
        return [p for m in self.modules() for p in m.parameters() if p.trainable]

    def zero_grad(self):
        for m in self.modules():
            m.zero_grad()

    def train(self, mode=True):
        for m in self.modules():
            m.train(mode)

    def after_step(self, k, total):
        pass

    def state_modules(self):
        """The modules a checkpoint holds, by name."""
        return {"encoder": self.encoder, "projector": self.projector}

    def config(self):
        """JSON hyper-parameters a checkpoint must agree on: the class and the loss settings."""
        return {"method": type(self).__name__}

    def get_state(self):
        """JSON state outside the modules (none here; BYOL: tau)."""
        return {}

    def check_state(self, state):
        """ValueError unless ``state`` is what :meth:`get_state` gives for this class; changes nothing."""
        if state != {}:
            raise ValueError(f"{type(self).__name__} keeps no state outside its modules, got {state!r:.80}")

    def set_state(self, state):
        self.check_state(state)

    def _online(self, x):
        return self.projector.forward(self.encoder.forward(x))

    def _backward(self, dz):
        self.encoder.backward(self.projector.backward(dz))


class SimCLR(_Method):
    """SimCLR: z = g(f([v1; v2])) over the 2N stacked views, NT-Xent(z, temperature)."""

    def __init__(self, encoder, projector, temperature=0.1):
        super().__init__(encoder, projector)
        self.loss = losses.NTXent(temperature)

    def config(self):
        return {"method": "SimCLR", "temperature": self.loss.temperature}

    def step(self, v1, v2):
        value = self.loss.forward(self._online(np.concatenate([v1, v2])), None)
        self._backward(self.loss.backward())
        return value


class BarlowTwins(_Method):
    """Barlow Twins: z = g(f([v1; v2])), BarlowTwinsLoss(z, lambd)."""

    def __init__(self, encoder, projector, lambd=5e-3):
        super().__init__(encoder, projector)
        self.loss = losses.BarlowTwinsLoss(lambd)

    def config(self):
        return {"method": "BarlowTwins", "lambd": self.loss.lambd, "eps": self.loss.eps}

    def step(self, v1, v2):
        value = self.loss.forward(self._online(np.concatenate([v1, v2])), None)
        self._backward(self.loss.backward())
        return value


class BYOL(_Method):
    """BYOL: online q(g(f(v))), target g'(f'(v)) (an EMA copy, no gradient), BYOLLoss; after
    every step k the target moves by :func:`ema_update` with tau = cosine_tau(k, K, base_tau).
    K = ``total_steps``, or when None the planned steps of the :func:`pretrain` call (its
    ``min(epochs * steps per epoch, max_steps)``); fix it to split one run into several calls."""

    def __init__(self, encoder, projector, predictor, base_tau=0.996, total_steps=None):
        super().__init__(encoder, projector)
        self.predictor = predictor
        self.base_tau = check_real(base_tau, "base_tau", 0.0, 1.0)
        self.total_steps = None if total_steps is None else check_int(total_steps, "total_steps")
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(projector)
        for m in (self.target_encoder, self.target_projector):
            for p in m.parameters():
                p.trainable = False
        self.loss = losses.BYOLLoss()
        self.tau = self.base_tau

    def modules(self):
        return [self.encoder, self.projector, self.predictor]

    def state_modules(self):
        return {"encoder": self.encoder, "projector": self.projector, "predictor": self.predictor,
                "target_encoder": self.target_encoder, "target_projector": self.target_projector}

    def config(self):
        return {"method": "BYOL", "base_tau": self.base_tau, "total_steps": self.total_steps}

    def get_state(self):
        return {"tau": self.tau}

    def check_state(self, state):
        if not isinstance(state, dict) or set(state) != {"tau"}:
            raise ValueError(f"BYOL state must be an object with 'tau', got {state!r:.80}")
        check_real(state["tau"], "BYOL state 'tau'", 0.0, 1.0)

    def set_state(self, state):
        self.check_state(state)
        self.tau = float(state["tau"])

    def step(self, v1, v2):
        v = np.concatenate([v1, v2])
        t = self.target_projector.forward(self.target_encoder.forward(v))
        p = self.predictor.forward(self._online(v))
        value = self.loss.forward(p, t)
        self._backward(self.predictor.backward(self.loss.backward()))
        return value

    def after_step(self, k, total):
        self.tau = cosine_tau(k, total if self.total_steps is None else self.total_steps, self.base_tau)
        ema_update(self.target_encoder, self.encoder, self.tau)
        ema_update(self.target_projector, self.projector, self.tau)


def _resume_source(checkpoint, resume):
    """The file to resume from, or None (start afresh)."""
    if isinstance(resume, (bool, np.bool_)):
        if not resume:
            return None
        if checkpoint is None:
            raise ValueError("resume=True continues from the file given as checkpoint=..., got checkpoint=None")
        return checkpoint if os.path.exists(checkpoint) else None
    path = check_path(resume, "resume (False, True or a checkpoint path)")
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint file {str(path)!r}")
    return path


def pretrain(method, x, epochs, batch_size, optimizer, augment, rng, schedule=None,
             on_epoch_end=None, log=None, time_budget=None, threads=None, max_steps=None,
             checkpoint=None, resume=False):
    """Self-supervised training of ``method`` on images x: (N, C, H, W) in [0, 1] (no labels).

    Per step: a batch (a fresh permutation per epoch, the last partial batch dropped so that
    batch norm and the number of negatives stay fixed), two views by ``augment.two_views``,
    ``method.step``, ``optimizer.step()``, ``schedule.step()`` (per step), ``method.after_step``.
    A schedule built without its length (e.g. ``WarmupCosine(opt, warmup_fraction=0.05)``) is
    given the run's planned steps (``epochs * (N // batch_size)``, or ``max_steps`` if smaller).
    ``max_steps``: stop after that many optimizer steps (the last epoch may then be partial);
    ``time_budget`` (seconds): stop after the step during which it ran out (that epoch is then
    partial too; its ``on_epoch_end`` still runs). Returns a history dict: ``loss`` (mean per
    epoch), ``epoch_time``, ``steps`` (per epoch), ``step_loss`` (every step), ``wall_time``,
    ``stopped`` ("epochs", "max_steps" or "time_budget") and whatever ``on_epoch_end(epoch,
    logs)`` adds to ``logs``. NaN loss raises FloatingPointError (the NaN guard).

    ``checkpoint``: a path (``.npz``, or ``.h5`` with h5py) written atomically at the end of
    every epoch and when the run stops by ``max_steps`` or ``time_budget`` inside an epoch
    (format: :mod:`nnlite.ssl.checkpoint`). ``resume``: False (start afresh; an existing
    ``checkpoint`` file is overwritten at the first save), True (continue from ``checkpoint``
    if that file exists, else start afresh: rerunning the same call continues the run), or a
    path to continue from (it must exist). A resumed call with the same arguments and freshly
    built objects (same constructors, seeds and ``rng`` type) continues bit for bit: method
    modules (BYOL's target networks and tau included), optimizer and schedule state, the
    Generator, the position inside a partial epoch and the history; the returned history is
    that of the whole run. ``epochs``, ``max_steps`` and ``time_budget`` count the whole run
    (steps and seconds before the checkpoint included), so a larger value extends a finished
    run; BYOL's tau horizon (default: the run's planned steps) and the schedule's length must
    then be fixed for an exact split (``BYOL(total_steps=...)``). A damaged checkpoint raises
    ``CheckpointError``, one of another run (method or its settings, architecture, optimizer,
    schedule, ``len(x)``, ``batch_size``, Generator type) ``CheckpointMismatchError``; either
    way nothing has been changed.
    """
    rng = as_generator(rng)
    epochs, batch_size = check_int(epochs, "epochs"), check_int(batch_size, "batch_size")
    steps = len(x) // batch_size
    if steps < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {len(x)} training images")
    total = epochs * steps if max_steps is None else min(epochs * steps, check_int(max_steps, "max_steps"))
    if checkpoint is not None:
        checkpoint = os.fspath(check_path(checkpoint, "checkpoint"))
        ckpt.method_modules(method)                       # TypeError now, not after an epoch
    source = _resume_source(checkpoint, resume)
    history = {"loss": [], "epoch_time": [], "step_loss": []}
    k, first_epoch, first_step, running, elapsed, epoch_elapsed, epoch_rng = 0, 0, 0, 0.0, 0.0, 0.0, None
    if source is not None:
        st = ckpt.load_state(source, method, optimizer, schedule, rng, len(x), batch_size)
        history, k, first_epoch, first_step = st["history"], st["global_step"], st["epoch"], st["step"]
        running, elapsed, epoch_elapsed, epoch_rng = st["running"], st["elapsed"], st["epoch_elapsed"], st["epoch_rng"]
        if log is not None:
            log(f"resumed from {os.fspath(source)}: epoch {first_epoch}, step {first_step}, {k} steps done")
    if schedule is not None and getattr(schedule, "needs_total_steps", False):
        schedule.set_total_steps(total)           # built without its length: it spans the run, as in Trainer.fit

    def save(epoch, step, running, epoch_rng, t_epoch):
        if checkpoint is None:
            return
        hist = {key: list(v) for key, v in history.items()}
        ckpt.save_state(checkpoint, method, optimizer, schedule, {
            "num_images": len(x), "batch_size": batch_size, "epoch": epoch, "step": step,
            "global_step": k, "running": running, "rng": rng.bit_generator.state,
            "epoch_rng": epoch_rng, "elapsed": time.perf_counter() - start, "epoch_elapsed": t_epoch,
            "history": hist})

    stopped = "epochs"
    start = time.perf_counter() - elapsed             # time_budget and wall_time count the whole run
    with parallel.threads(threads):
        for epoch in range(first_epoch, epochs):
            if k >= total:
                stopped = "max_steps" if k < epochs * steps else stopped
                break
            method.train()
            if epoch == first_epoch and first_step > 0:   # a resumed partial epoch: same permutation
                t0 = time.perf_counter() - epoch_elapsed
                scratch = np.random.Generator(type(rng.bit_generator)(0))
                scratch.bit_generator.state = epoch_rng
                perm = scratch.permutation(len(x))
                s0, done = first_step, first_step
            else:
                t0 = time.perf_counter()
                epoch_rng = rng.bit_generator.state if checkpoint is not None else None
                perm = rng.permutation(len(x))
                s0, running, done = 0, 0.0, 0
            for s in range(s0, steps):
                xb = np.asarray(x[perm[s * batch_size:(s + 1) * batch_size]])
                if xb.dtype == np.uint8:
                    xb = xb.astype(np.float32) / 255
                v1, v2 = augment.two_views(xb, rng)
                method.zero_grad()
                value = method.step(v1, v2)
                if not np.isfinite(value):
                    raise FloatingPointError(f"loss became {value} at epoch {epoch}, step {s}")
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                k += 1
                method.after_step(k, total)
                running += value
                done += 1
                history["step_loss"].append(value)
                if k >= total:
                    stopped = "max_steps" if k < epochs * steps else stopped
                    break
                if time_budget is not None and time.perf_counter() - start > time_budget:
                    stopped = "time_budget"
                    break
            if done < steps:                                # stopped inside the epoch
                save(epoch, done, running, epoch_rng, time.perf_counter() - t0)
            logs = {"epoch": epoch, "loss": running / done, "steps": done,
                    "epoch_time": time.perf_counter() - t0}
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
            for key, v in logs.items():
                history.setdefault(key, []).append(v)
            if log is not None:
                log(" ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in logs.items()))
            if done == steps:
                save(epoch + 1, 0, 0.0, None, 0.0)
            if stopped != "epochs" or k >= total:
                break
    history["wall_time"] = time.perf_counter() - start
    history["stopped"] = stopped
    history["total_steps"] = k
    return history
