"""Auto-PGD (Croce & Hein, 2020): PGD without a step-size parameter, on cross-entropy or DLR.

For each example (x0 the original input, P the projection onto the eps ball around x0
intersected with the valid box, s(g) = sign(g) for L-inf and g / ||g||_2 for L2):

    x1      = P(x0' + eta * s(grad f(x0')))                  x0' = x0 or a random start
    z_{k+1} = P(x_k + eta * s(grad f(x_k)))
    x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha) (x_k - x_{k-1}))    alpha = 0.75

with eta = 2 eps at the start. At the checkpoints w_j = ceil(p_j N_iter), p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), the step is halved and the iterate restarts
from the best point so far (highest f) when either
  (1) f increased in fewer than rho = 0.75 of the steps since the previous checkpoint, or
  (2) eta and the best f are both unchanged since the previous checkpoint.

f is the loss: "ce" (cross-entropy at y; targeted: minus CE at the target) or "dlr" (the
difference of logits ratio, ``nnlite.functional.dlr``; targeted: its targeted form). An example
stops as soon as it is misclassified (targeted: predicted as the target); the first such
iterate is returned. Otherwise the highest-loss point of all restarts is returned, so the
returned loss is never below the loss at the start of its run. Restarts (independent random
starts) run only on the examples no earlier restart broke.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import as_generator
from ..functional.activations import log_softmax
from ..functional.dlr import dlr_backward, dlr_forward
from .base import (TINY, AttackResult, check_attack_args, clean_batches, check_norm,
                   check_positive_int, clip_, empty_outputs, flat_norm, logits_gradient,
                   make_result, model_eval_state, project, random_start_delta)

__all__ = ["apgd", "apgd_checkpoints", "DLRLoss", "loss_and_dlogits"]

_LOSSES = ("ce", "dlr")


class DLRLoss:
    """The DLR loss as a loss object (mean over the batch), e.g. for ``input_gradient(loss=...)``.

    target: None (untargeted) or (N,) int target classes of the batch to come.
    ``forward(logits (N, C), y (N,)) -> float`` mean DLR; ``backward() -> (N, C)`` its gradient.
    """

    def __init__(self, target=None):
        self.target = None if target is None else np.asarray(target)
        self._cache = None

    def forward(self, logits, y) -> float:
        out, self._cache = dlr_forward(logits, y, self.target)
        return float(out.mean())

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("DLRLoss.backward called before forward")
        n = self._cache[0][0]
        return dlr_backward(np.full(n, 1.0 / n), self._cache)


def loss_and_dlogits(logits, y, loss: str, target=None):
    """Per-example loss (float64, (N,)) to MAXIMIZE and its gradient w.r.t. the logits (N, C).

    "ce": CE(z, y), or -CE(z, target) when targeted; "dlr": DLR(z, y), or the targeted DLR.
    """
    n = logits.shape[0]
    rows = np.arange(n)
    if loss == "ce":
        cls = y if target is None else target
        logp = log_softmax(logits.astype(np.float64), axis=1)
        d = np.exp(logp)
        d[rows, cls] -= 1                                   # d CE / dz
        value = -logp[rows, cls]
        if target is not None:
            return -value, -d
        return value, d
    out, cache = dlr_forward(logits.astype(np.float64), y, target)
    return out, dlr_backward(np.ones(n), cache)


def apgd_checkpoints(n_iter: int) -> list:
    """The iterations w_j = ceil(p_j * n_iter) (j >= 1) at which APGD may halve its step."""
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    ws = (int(math.ceil(round(q * n_iter, 6))) for q in p[1:])
    return sorted({w for w in ws if 0 < w <= n_iter})


def _step_dir(g, norm, dtype):
    if norm == "inf":
        return np.sign(g).astype(dtype, copy=False)
    gn = flat_norm(g)
    return np.where(gn > TINY, g / np.maximum(gn, TINY), 0.0).astype(dtype)


def _proj(x, x0, eps, norm, bounds):
    return clip_(x0 + project(x - x0, eps, norm), bounds)


def _run(model, x0, y, target, eps, norm, n_iter, loss, bounds, rng, random_start, rho, alpha):
    """One APGD run on a chunk (model in eval state). Returns a dict of per-example arrays."""
    n, dtype = x0.shape[0], x0.dtype
    targeted = target is not None

    def evaluate(xb, idx):
        tt = None if target is None else target[idx]
        g, logits, f = logits_gradient(model, xb, lambda z: loss_and_dlogits(z, y[idx], loss, tt))
        pred = logits.argmax(axis=1)
        ok = pred == tt if targeted else pred != y[idx]
        return g, f, ok

    all_idx = np.arange(n)
    x = _proj(x0 + random_start_delta(x0.shape, eps, norm, rng, dtype), x0, eps, norm, bounds) \
        if random_start else x0.copy()
    g, f, ok = evaluate(x, all_idx)
    f_start = f.copy()
    x_prev = x.copy()
    x_max, f_max, g_max = x.copy(), f.copy(), g.copy()
    x_adv = x.copy()
    done = ok.copy()
    steps = np.zeros(n, dtype=np.int64)
    eta = np.full(n, 2.0 * eps)
    f_cur = f.copy()
    n_up = np.zeros(n, dtype=np.int64)                 # steps with f increasing since the last checkpoint
    eta_cp, fmax_cp = eta.copy(), f_max.copy()
    cps, last_cp = apgd_checkpoints(n_iter), 0
    shape1 = (-1,) + (1,) * (x0.ndim - 1)
    for k in range(n_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        xa = x[act]
        a = eta[act].astype(dtype).reshape(shape1)
        z = _proj(xa + a * _step_dir(g[act], norm, dtype), x0[act], eps, norm, bounds)
        if k > 0:
            xn = xa + alpha * (z - xa) + (1 - alpha) * (xa - x_prev[act])
            xn = _proj(xn.astype(dtype, copy=False), x0[act], eps, norm, bounds)
        else:
            xn = z
        x_prev[act] = xa
        x[act] = xn
        ga, fa, oka = evaluate(xn, act)
        g[act] = ga
        steps[act] += 1
        hit = act[oka]
        x_adv[hit] = xn[oka]
        done[hit] = True
        n_up[act] += fa > f_cur[act]
        f_cur[act] = fa
        better = fa > f_max[act]
        bi = act[better]
        x_max[bi], f_max[bi], g_max[bi] = xn[better], fa[better], ga[better]
        if k + 1 in cps:
            w = k + 1
            cond1 = n_up < rho * (w - last_cp)
            cond2 = (eta_cp == eta) & (fmax_cp == f_max)
            red = np.flatnonzero((cond1 | cond2) & ~done)
            eta[red] /= 2.0
            x[red], g[red] = x_max[red], g_max[red]
            n_up[:] = 0
            eta_cp, fmax_cp, last_cp = eta.copy(), f_max.copy(), w
    x_adv[~done] = x_max[~done]
    return dict(x_adv=x_adv, success=done, f_start=f_start, f_max=f_max, steps=steps)


def apgd(model, x, y=None, *, eps, loss: str = "ce", norm="inf", steps: int = 100, restarts: int = 1,
         random_start: bool = True, targeted: bool = False, target=None, rho: float = 0.75,
         alpha: float = 0.75, clip=(0.0, 1.0), rng=None, batch_size: int = 512) -> AttackResult:
    """APGD-CE / APGD-DLR (Croce & Hein 2020) in the L-inf or L2 ball (see module docstring).

    model: nnlite Module mapping x (N, ...) to logits (N, C); x: float, finite, in ``clip``'s
    range. y: (N,) int true labels, or None to attack the clean predictions. eps: radius
    (input units); loss: "ce" or "dlr" (C >= 3; targeted DLR needs C >= 4); norm: "inf" or "2";
    steps: iterations per restart (N_iter); restarts: independent runs, later ones only on the
    examples not yet broken (the first starts at x itself when ``random_start=False``);
    targeted / target: maximize -CE / the targeted DLR toward ``target`` (int or (N,) ints),
    success = predicted as the target. rho, alpha: the checkpoint threshold and momentum of the
    paper (0.75, 0.75). clip: (low, high) or None. rng: Generator or seed for the random
    starts. batch_size: chunk size. Runs in eval mode, the model left untouched.
    Returns an ``AttackResult``; ``steps`` = gradient steps per example (all restarts);
    ``info`` = {"loss_start": f at the start of the kept run, "loss_best": f at x_adv for the
    examples not broken (the highest f reached), NaN for broken ones}.
    """
    eps, bounds, batch_size, y, target = check_attack_args(x, y, eps, targeted, target, clip,
                                                           batch_size)
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
    norm = check_norm(norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    for name, v in (("rho", rho), ("alpha", alpha)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 1:
            raise ValueError(f"{name} must be a number in (0, 1], got {v!r}")
    rng = as_generator(rng)
    n = x.shape[0]
    x_adv, pred_clean, pred_adv, labels = empty_outputs(x)
    n_steps = np.zeros(n, dtype=np.int64)
    loss_start = np.full(n, np.nan)
    loss_best = np.full(n, np.nan)
    with model_eval_state(model):
        for sl, x0, logits, tb in clean_batches(model, x, y, target, batch_size, pred_clean, labels):
            m, c = logits.shape
            s = sl.start
            xb = x0.copy()
            if eps == 0:
                x_adv[sl], pred_adv[sl] = xb, pred_clean[sl]
                continue
            done = np.zeros(m, dtype=bool)
            best_f = np.full(m, -np.inf)
            for r in range(restarts):
                act = np.flatnonzero(~done)
                if act.size == 0:
                    break
                out = _run(model, x0[act], labels[sl][act], None if tb is None else tb[act], eps,
                           norm, steps, loss, bounds, rng, random_start or r > 0, rho, alpha)
                n_steps[s + act] += out["steps"]
                keep = out["success"] | (out["f_max"] > best_f[act])
                ki = act[keep]
                xb[ki] = out["x_adv"][keep]
                loss_start[s + ki] = out["f_start"][keep]
                best_f[ki] = np.where(out["success"][keep], np.inf, out["f_max"][keep])
                done[act[out["success"]]] = True
            x_adv[sl] = xb
            lb = np.where(done, np.nan, best_f)
            loss_best[sl] = lb
            pred_adv[sl] = model.forward(xb).argmax(axis=1)
    name = f"apgd-{loss}" + ("-targeted" if targeted else "")
    return make_result(x, x_adv, pred_clean, pred_adv, labels, target, name, eps, norm,
                       steps=n_steps, info={"loss_start": loss_start, "loss_best": loss_best})
