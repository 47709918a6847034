"""Projected gradient descent (Madry et al., 2018) in the L-inf or L2 ball.

One PGD step, for every example of a chunk (x0 = original input, x = current iterate):

    g      = d CE(x, y) / dx                  (per-example; CE at the TARGET when targeted)
    L-inf: x <- x + a * sign(g)               (targeted: x - a * sign(g))
    L2:    x <- x + a * g / ||g||_2           (per example; a zero gradient gives a zero step)
    then   delta = x - x0 is PROJECTED onto the eps ball around the ORIGINAL input
           (L-inf: clip delta to [-eps, eps]; L2: delta *= min(1, eps / ||delta||_2)),
    then   x = clip(x0 + delta, low, high)    (the valid range, ``clip``).

Order: step, projection, clip. Clipping after projection keeps the iterate inside the ball:
x0 lies in [low, high], so clipping only moves coordinates toward x0 and |delta_i| never
grows; the result is in the intersection of the ball and the valid box.

Random start: L-inf: delta ~ U[-eps, eps]^d; L2: uniform INSIDE the ball, direction
u / ||u|| with u ~ N(0, I), radius eps * r^(1/d) with r ~ U[0, 1) (d = input size per
example); then clipped to the valid range. All draws come from the ``rng`` Generator, so a
fixed Generator (or seed) makes the attack reproducible.

Restarts: the attack is run ``restarts`` times from independent random starts; per example
the kept result is a successful one if any restart succeeded, else the one with the highest
objective (untargeted: CE at the label; targeted: minus CE at the target); ties keep the
earlier restart. The final iterate of each run is used (no best-iterate tracking).
"""
from __future__ import annotations

import numpy as np

from .._checks import as_generator
from .base import (TINY, AttackResult, check_attack_args, check_eps, clean_batches, check_norm,
                   check_positive_int, clip_, empty_outputs, flat_norm, make_result,
                   model_eval_state, project, random_start_delta, raw_gradient)
from .gradients import per_example_cross_entropy

__all__ = ["pgd", "random_start_delta", "project"]

def _run(model, x0, labels, target, eps, step_size, steps, norm, random_start, bounds, rng):
    """One PGD run on a chunk; returns the final iterate (model already in eval state)."""
    dtype = x0.dtype
    if random_start:
        delta = random_start_delta(x0.shape, eps, norm, rng, dtype)
        x = clip_(x0 + delta, bounds)
    else:
        x = x0.copy()
    a = np.asarray(step_size, dtype=dtype)
    sign = -1 if target is not None else 1
    for _ in range(steps):
        g, _ = raw_gradient(model, x, y=target if target is not None else labels)
        if norm == "inf":
            x = x + (sign * a) * np.sign(g)
        else:
            gn = flat_norm(g)
            unit = np.where(gn > TINY, g / np.maximum(gn, TINY), 0.0).astype(dtype)
            x = x + (sign * a) * unit
        delta = project(x - x0, eps, norm)
        x = clip_(x0 + delta, bounds)
    return x


def pgd(model, x, y=None, *, eps, step_size, steps, norm="inf", random_start: bool = True,
        restarts: int = 1, targeted: bool = False, target=None, clip=(0.0, 1.0), rng=None,
        batch_size: int = 512) -> AttackResult:
    """Projected gradient descent attack (Madry et al.) on cross-entropy, L-inf or L2.

    model: nnlite Module mapping x (N, ...) to logits (N, C); x: float input in ``clip``'s range.
    y: (N,) int true labels, or None to attack the model's clean predictions.
    eps: radius of the ball (input units); step_size: the step a (L-inf: per coordinate;
       L2: Euclidean length); steps: number of steps per run; norm: "inf" or "2".
    random_start: start uniformly in the ball (see module docstring); restarts: number of
       independent runs, the strongest kept per example (needs random_start when > 1).
    targeted / target: descend CE at ``target`` (int or (N,) ints) instead of ascending CE at y.
    clip: (low, high) valid input range or None. rng: Generator or seed for the random
       starts (None: fresh OS entropy; pass one for reproducibility).
    batch_size: chunk size, bounding memory. Runs in eval mode; the model is left untouched.
    eps = 0 returns x unchanged (a copy). Projection/clip order: step, project onto the
    ball around the original input, clip to the valid range (see module docstring).
    Returns an ``AttackResult`` (``steps`` = total gradient steps per example).
    """
    eps, bounds, batch_size, y, target = check_attack_args(x, y, eps, targeted, target, clip,
                                                           batch_size)
    step_size = check_eps(step_size, "step_size")
    steps = check_positive_int(steps, "steps", minimum=0)
    restarts = check_positive_int(restarts, "restarts")
    norm = check_norm(norm)
    if restarts > 1 and not random_start:
        raise ValueError(f"restarts={restarts} needs random_start=True (without a random start "
                         "every restart is identical)")
    rng = as_generator(rng)
    n = x.shape[0]
    x_adv, pred_clean, pred_adv, labels = empty_outputs(x)
    with model_eval_state(model):
        for sl, x0, logits, tb in clean_batches(model, x, y, target, batch_size, pred_clean, labels):
            m, c = logits.shape
            if eps == 0 or steps == 0 and not random_start:
                x_adv[sl] = x0
                pred_adv[sl] = pred_clean[sl]
                continue
            best_x = best_pred = best_succ = best_obj = None
            for _ in range(restarts):
                xr = _run(model, x0, labels[sl], tb, eps, step_size, steps, norm, random_start,
                          bounds, rng)
                out = model.forward(xr)
                pred = out.argmax(axis=1)
                if tb is None:
                    succ = pred != labels[sl]
                    obj = per_example_cross_entropy(out, labels[sl])
                else:
                    succ = pred == tb
                    obj = -per_example_cross_entropy(out, tb)
                if best_x is None:
                    best_x, best_pred, best_succ, best_obj = xr, pred, succ, obj
                    continue
                better = (succ & ~best_succ) | ((succ == best_succ) & (obj > best_obj))
                best_x[better] = xr[better]
                best_pred[better] = pred[better]
                best_succ = best_succ | succ
                best_obj = np.where(better, obj, best_obj)
            x_adv[sl] = best_x
            pred_adv[sl] = best_pred
    return make_result(x, x_adv, pred_clean, pred_adv, labels, target, "pgd", eps, norm,
                       steps=np.full(n, steps * restarts, dtype=np.int64))
