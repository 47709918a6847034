"""Minimal-perturbation attacks: Carlini-Wagner L2 and DeepFool.

They do not take a radius: they search, per example, for the SMALLEST L2 perturbation that
changes the prediction, and report it (``AttackResult.perturbation_l2``), so the distribution
of minimal norms can be shown.

Carlini & Wagner (2017), L2, with the box (low, high) enforced by the change of variables

    x(w) = clip(low + (high - low) (1.04 tanh(w) + 1) / 2, low, high),
    minimize_w  ||x(w) - x0||_2^2 + c * max(z_y(x(w)) - max_{j != y} z_j(x(w)), -kappa)

by Adam on w (lr ``lr``, ``steps`` steps), with a binary search over c per example
(``binary_steps`` rounds, starting at ``c_init``: c is lowered after a round that found an
adversarial point, raised (x10 until an upper bound exists, then bisected) otherwise). The
smallest successful perturbation over all steps and rounds is returned. Departure from the
paper: the tanh range overhangs the box by 2% on each side and x is then clipped to the box, so
pixels sitting exactly on the box (MNIST's black background) start where tanh is not flat
(with the paper's atanh(+-0.999999) they need hundreds of Adam steps to move at all).

DeepFool (Moosavi-Dezfooli et al., 2016), multi-class, linearizing the model at each step:

    f_k = z_k - z_y,  w_k = grad z_k - grad z_y,   l = argmin_{k != y} |f_k| / ||w_k||
    r  += (|f_l| + 1e-4) w_l / ||w_l||^2,          x_adv = clip(x0 + (1 + overshoot) r)

until the prediction changes (or ``max_iter``). On a linear model it reaches the boundary in
one step, so its perturbation is (1 + overshoot) times the minimal distance (plus 1e-4).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_labels
from .base import (TINY, check_attack_args, check_logits, clean_batches, check_positive_int, clip_, empty_outputs,
                   make_result, margin, model_eval_state, raw_gradient)

__all__ = ["carlini_wagner", "deepfool"]

_MARGIN = 0.02   # the tanh range overhangs the box by 2% each side, then x is clipped to the box


def _check_real(v, name, low=0.0, low_open=False):
    if not isinstance(v, (int, float, np.floating)) or isinstance(v, bool) or not np.isfinite(v) \
            or v < low or (low_open and v == low):
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low}, got {v!r}")
    return float(v)


def carlini_wagner(model, x, y=None, *, c_init: float = 0.1, binary_steps: int = 9, steps: int = 100,
                   lr: float = 0.01, kappa: float = 0.0, targeted: bool = False, target=None,
                   clip=(0.0, 1.0), batch_size: int = 512):
    """Carlini-Wagner L2 attack (see module docstring).

    x: (N, ...) float, finite, in ``clip``'s range (a box is required: clip may not be None);
    y: (N,) labels or None (clean predictions). Targeted: margin max_{j != t} z_j - z_t.
    Returns an ``AttackResult``: x_adv the smallest successful perturbation found (x itself
    where none was found: success False); ``steps`` = Adam steps per example;
    ``info["c"]``: the last c of each example's binary search.
    """
    eps0, bounds, batch_size, y, target = check_attack_args(x, y, 0.0, targeted, target, clip,
                                                            batch_size)
    if bounds is None:
        raise ValueError("carlini_wagner needs a box: clip must be (low, high), got None")
    c_init = _check_real(c_init, "c_init", low_open=True)
    lr = _check_real(lr, "lr", low_open=True)
    kappa = _check_real(kappa, "kappa")
    binary_steps = check_positive_int(binary_steps, "binary_steps")
    steps = check_positive_int(steps, "steps")
    lo, hi = bounds
    n = x.shape[0]
    dtype = x.dtype
    x_adv, pred_clean, pred_adv, labels = empty_outputs(x)
    c_last = np.zeros(n)
    b1, b2, adam_eps = 0.9, 0.999, 1e-8
    stretch = 1 + 2 * _MARGIN
    with model_eval_state(model):
        for s in range(0, n, batch_size):
            x0 = x[s:s + batch_size].astype(np.float64)
            m = x0.shape[0]
            sl = slice(s, s + m)
            logits = model.forward(x[sl])
            check_logits(logits, x[sl])
            cc = logits.shape[1]
            pred_clean[sl] = logits.argmax(axis=1)
            lab = pred_clean[sl] if y is None else check_labels(y[sl], m, cc)
            labels[sl] = lab
            tb = None if target is None else check_labels(target[sl], m, cc, "target")
            mg0, _ = margin(logits, lab, tb)
            best_l2 = np.where(mg0 < 0, 0.0, np.inf)
            best_x = x0.copy()
            w0 = np.arctanh(((x0 - lo) / (hi - lo) * 2 - 1) / stretch)
            c = np.full(m, c_init)
            lower, upper = np.zeros(m), np.full(m, np.inf)
            rows = np.arange(m)
            for _ in range(binary_steps):
                w = w0.copy()
                mom, vel = np.zeros_like(w), np.zeros_like(w)
                found = np.zeros(m, dtype=bool)
                for t in range(1, steps + 1):
                    th = np.tanh(w)
                    xu = lo + (hi - lo) * (stretch * th + 1) / 2
                    xa = np.clip(xu, lo, hi)
                    xa_t = xa.astype(dtype)
                    z = model.forward(xa_t)
                    mg, other = margin(z, lab, tb)
                    pred = z.argmax(axis=1)
                    ok = pred == tb if tb is not None else pred != lab
                    l2 = np.sqrt(((xa_t.astype(np.float64) - x0) ** 2).reshape(m, -1).sum(axis=1))
                    better = ok & (l2 < best_l2)
                    best_l2[better], best_x[better] = l2[better], xa_t[better]
                    found |= ok
                    active = mg > -kappa
                    dz = np.zeros(z.shape)
                    cls = lab if tb is None else tb
                    sign = 1.0 if tb is None else -1.0
                    dz[rows, cls] += sign * active * c
                    dz[rows, other] -= sign * active * c
                    gx = model.backward(dz.astype(dtype)).astype(np.float64) + 2 * (xa - x0)
                    gw = gx * (1 - th ** 2) * (hi - lo) * stretch / 2 * ((xu >= lo) & (xu <= hi))
                    mom = b1 * mom + (1 - b1) * gw
                    vel = b2 * vel + (1 - b2) * gw * gw
                    w -= lr * (mom / (1 - b1 ** t)) / (np.sqrt(vel / (1 - b2 ** t)) + adam_eps)
                upper = np.where(found, np.minimum(upper, c), upper)
                lower = np.where(found, lower, np.maximum(lower, c))
                c = np.where(np.isfinite(upper), (lower + upper) / 2, c * 10)
            c_last[sl] = c
            x_adv[sl] = best_x.astype(dtype)
            pred_adv[sl] = model.forward(x_adv[sl]).argmax(axis=1)
    res = make_result(x, x_adv, pred_clean, pred_adv, labels, target, "cw-l2", eps0, "2",
                      steps=np.full(n, steps * binary_steps, dtype=np.int64), info={"c": c_last})
    return res


def deepfool(model, x, y=None, *, overshoot: float = 0.02, max_iter: int = 50, clip=(0.0, 1.0),
             batch_size: int = 512):
    """DeepFool, multi-class, L2 (see module docstring).

    x: (N, ...) float, finite, in ``clip``'s range; y: (N,) labels or None (attack the clean
    prediction). Examples already misclassified are returned unchanged. Each iteration costs
    C forward/backward passes (one per class) for the examples still correctly classified.
    Returns an ``AttackResult`` (``steps`` = linearization steps per example).
    """
    _, bounds, batch_size, y, _ = check_attack_args(x, y, 0.0, False, None, clip, batch_size)
    overshoot = _check_real(overshoot, "overshoot")
    max_iter = check_positive_int(max_iter, "max_iter")
    n = x.shape[0]
    dtype = x.dtype
    x_adv, pred_clean, pred_adv, labels = empty_outputs(x)
    steps = np.zeros(n, dtype=np.int64)
    scale = np.asarray(1 + overshoot, dtype=dtype)
    with model_eval_state(model):
        for sl, x0, logits, _ in clean_batches(model, x, y, None, batch_size, pred_clean, labels):
            m, cc = logits.shape
            s, lab = sl.start, labels[sl]
            r_tot = np.zeros(x0.shape, dtype=np.float64)
            xb = x0.copy()
            act = np.flatnonzero(pred_clean[sl] == lab)
            for _ in range(max_iter):
                if act.size == 0:
                    break
                xa = xb[act]
                grads, z = [], None
                for k in range(cc):
                    g, z = raw_gradient(model, xa, target_class=k)
                    grads.append(g.astype(np.float64))
                pred = z.argmax(axis=1)
                still = pred == lab[act]
                act, xa, z = act[still], xa[still], z[still]
                if act.size == 0:
                    break
                g = np.stack([gk[still] for gk in grads], axis=1)            # (a, C, ...)
                ra = np.arange(act.size)
                wk = g - g[ra, lab[act]][:, None]
                fk = z.astype(np.float64) - z[ra, lab[act]][:, None]
                wn = np.sqrt((wk.reshape(act.size, cc, -1) ** 2).sum(axis=2))   # (a, C)
                ratio = np.abs(fk) / (wn + TINY)
                ratio[ra, lab[act]] = np.inf
                best = ratio.argmin(axis=1)
                wl = wk[ra, best]
                coef = (ratio[ra, best] + 1e-4) / (wn[ra, best] + TINY)
                r_tot[act] += coef.reshape((-1,) + (1,) * (x.ndim - 1)) * wl
                steps[s + act] += 1
                xb[act] = clip_((x0[act] + scale * r_tot[act]).astype(dtype), bounds)
            x_adv[sl] = xb
            pred_adv[sl] = model.forward(xb).argmax(axis=1)
    return make_result(x, x_adv, pred_clean, pred_adv, labels, None, "deepfool", 0.0, "2", steps=steps)
