"""Self-supervised pre-training: SimCLR, BYOL and Barlow Twins, and a small loop that drives them.

Why not ``nnlite.train.Trainer``: its step is ``loss(model(x_batch), y_batch)`` with one forward
per batch and labels, while these methods need two augmented views, a target network updated
by EMA after every step (BYOL) and no labels. :func:`pretrain` is the small loop for that; it
reuses the optimizers and schedules of ``nnlite.optim``, runs in a ``nnlite.parallel.threads()``
block, and calls ``on_epoch_end(epoch, logs)`` (e.g. a k-NN monitor) after every epoch.

Each method object has ``parameters()`` (the trainable ones), ``step(v1, v2) -> loss`` (forward,
loss, backward: gradients accumulated, the optimizer not called), ``after_step(k, total)`` and
the ``encoder`` whose output is the embedding.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np

from .. import losses, parallel
from .._checks import as_generator, check_int, check_real


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

    def _online(self, x):
        return self.projector.forward(self.encoder.forward(x))

    def _backward(self, dz):
        self.encoder.backward(self.projector.backward(dz))


class SimCLR(_Method):
    """SimCLR: z = g(f([v1; v2])) over the 2N stacked views, NT-Xent(z, temperature)."""

    def __init__(self, encoder, projector, temperature=0.1):
        super().__init__(encoder, projector)
        self.loss = losses.NTXent(temperature)

    def step(self, v1, v2):
        value = self.loss.forward(self._online(np.concatenate([v1, v2])), None)
        self._backward(self.loss.backward())
        return value


class BarlowTwins(_Method):
    """Barlow Twins: z = g(f([v1; v2])), BarlowTwinsLoss(z, lambd)."""

    def __init__(self, encoder, projector, lambd=5e-3):
        super().__init__(encoder, projector)
        self.loss = losses.BarlowTwinsLoss(lambd)

    def step(self, v1, v2):
        value = self.loss.forward(self._online(np.concatenate([v1, v2])), None)
        self._backward(self.loss.backward())
        return value


class BYOL(_Method):
    """BYOL: online q(g(f(v))), target g'(f'(v)) (an EMA copy, no gradient), BYOLLoss; after
    every step the target moves by :func:`ema_update` with tau from :func:`cosine_tau`."""

    def __init__(self, encoder, projector, predictor, base_tau=0.996):
        super().__init__(encoder, projector)
        self.predictor = predictor
        self.base_tau = check_real(base_tau, "base_tau", 0.0, 1.0)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(projector)
        for m in (self.target_encoder, self.target_projector):
            for p in m.parameters():
                p.trainable = False
        self.loss = losses.BYOLLoss()
        self.tau = self.base_tau

    def modules(self):
        return [self.encoder, self.projector, self.predictor]

    def step(self, v1, v2):
        v = np.concatenate([v1, v2])
        t = self.target_projector.forward(self.target_encoder.forward(v))
        p = self.predictor.forward(self._online(v))
        value = self.loss.forward(p, t)
        self._backward(self.predictor.backward(self.loss.backward()))
        return value

    def after_step(self, k, total):
        self.tau = cosine_tau(k, total, self.base_tau)
        ema_update(self.target_encoder, self.encoder, self.tau)
        ema_update(self.target_projector, self.projector, self.tau)


def pretrain(method, x, epochs, batch_size, optimizer, augment, rng, schedule=None,
             on_epoch_end=None, log=None, time_budget=None, threads=None, max_steps=None):
    """Self-supervised training of ``method`` on images x: (N, C, H, W) in [0, 1] (no labels).

    Per step: a batch (a fresh permutation per epoch, the last partial batch dropped so that
    batch norm and the number of negatives stay fixed), two views by ``augment.two_views``,
    ``method.step``, ``optimizer.step()``, ``schedule.step()`` (per step), ``method.after_step``.
    ``max_steps``: stop after that many optimizer steps (the last epoch may then be partial);
    ``time_budget`` (seconds): stop after the step during which it ran out (that epoch is then
    partial too; its ``on_epoch_end`` still runs). Returns a history dict: ``loss`` (mean per
    epoch), ``epoch_time``, ``steps`` (per epoch), ``step_loss`` (every step), ``wall_time``,
    ``stopped`` ("epochs", "max_steps" or "time_budget") and whatever ``on_epoch_end(epoch,
    logs)`` adds to ``logs``. NaN loss raises FloatingPointError (the NaN guard).
    """
    rng = as_generator(rng)
    epochs, batch_size = check_int(epochs, "epochs"), check_int(batch_size, "batch_size")
    steps = len(x) // batch_size
    if steps < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {len(x)} training images")
    total = epochs * steps if max_steps is None else min(epochs * steps, check_int(max_steps, "max_steps"))
    history = {"loss": [], "epoch_time": [], "step_loss": []}
    stopped = "epochs"
    k = 0
    start = time.perf_counter()
    with parallel.threads(threads):
        for epoch in range(epochs):
            t0 = time.perf_counter()
            method.train()
            perm = rng.permutation(len(x))
            running, done = 0.0, 0
            for s in range(steps):
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
            logs = {"epoch": epoch, "loss": running / done, "steps": done,
                    "epoch_time": time.perf_counter() - t0}
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
            for key, v in logs.items():
                history.setdefault(key, []).append(v)
            if log is not None:
                log(" ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in logs.items()))
            if stopped != "epochs" or k >= total:
                break
    history["wall_time"] = time.perf_counter() - start
    history["stopped"] = stopped
    history["total_steps"] = k
    return history
