"""Square attack, L-inf (Andriushchenko et al., 2020): score-based, no gradients.

The model is only queried for its logits (``forward``); ``backward`` is never called.
Per example (x0 the original image (C, H, W), margin(x) = z_y - max_{j != y} z_j, minimized;
targeted: max_{j != t} z_j - z_t):

    start:  x = clip(x0 + eps * s) with vertical stripes s in {-1, +1}^(C, 1, W)
    query i: a square of side h_i = max(1, round(sqrt(p_i * H * W))) at a uniformly random
             position gets, in every channel, a random value of +-eps (x0 + that, clipped);
             the candidate is kept when its margin is lower than the best so far.
    stop:   when the margin is < 0 (success) or after ``n_queries`` queries (per example).

p_i follows the paper's schedule, rescaled to the query budget (i' = 10000 i / n_queries):
p_init halved at i' = 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000.
"""
from __future__ import annotations

import numpy as np

from .._checks import as_generator
from ..grad_mode import no_grad
from .base import (check_attack_args, clean_batches, check_positive_int, clip_, empty_outputs,
                   make_result, margin, model_eval_state)

__all__ = ["square_attack", "square_p_schedule"]

_BREAKS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_p_schedule(p_init: float, it: int, n_queries: int) -> float:
    """Fraction of pixels changed at query ``it`` of ``n_queries`` (paper's schedule)."""
    i = int(it / n_queries * 10000)
    halvings = sum(i > b for b in _BREAKS)
    return p_init / 2 ** halvings


def square_attack(model, x, y=None, *, eps, n_queries: int = 5000, p_init: float = 0.8,
                  targeted: bool = False, target=None, clip=(0.0, 1.0), rng=None,
                  batch_size: int = 512):
    """Square attack in the L-inf ball of radius eps (score-based; see module docstring).

    x: (N, C, H, W) float images, finite, in ``clip``'s range; y: (N,) int labels or None
    (clean predictions). n_queries: query budget per example (the starting point counts as
    one); p_init: initial fraction of pixels per square (0.8 as in AutoAttack); rng: Generator
    or seed. Examples already misclassified (targeted: predicted as the target) cost no query.
    Returns an ``AttackResult`` (``steps`` = queries used per example).
    """
    eps, bounds, batch_size, y, target = check_attack_args(x, y, eps, targeted, target, clip,
                                                           batch_size)
    if x.ndim != 4:
        raise ValueError(f"the Square attack needs images x of shape (N, C, H, W), got {x.shape}")
    n_queries = check_positive_int(n_queries, "n_queries")
    if not isinstance(p_init, (int, float)) or isinstance(p_init, bool) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be a number in (0, 1], got {p_init!r}")
    rng = as_generator(rng)
    n, c, h, w = x.shape
    x_adv, pred_clean, pred_adv, labels = empty_outputs(x)
    queries = np.zeros(n, dtype=np.int64)
    e = np.asarray(eps, dtype=x.dtype)
    with model_eval_state(model), no_grad():          # forwards only: no backward follows
        for sl, x0, logits, tb in clean_batches(model, x, y, target, batch_size, pred_clean, labels):
            m, cc = logits.shape
            s, lab = sl.start, labels[sl]
            best = x0.copy()
            mg, _ = margin(logits, lab, tb)
            if eps > 0:
                act = np.flatnonzero(mg >= 0)
                if act.size:
                    stripes = e * rng.choice(np.array([-1, 1], dtype=x.dtype), size=(act.size, c, 1, w))
                    cand = clip_(x0[act] + stripes, bounds)
                    mc, _ = margin(model.forward(cand), lab[act], None if tb is None else tb[act])
                    queries[s + act] += 1
                    better = mc < mg[act]
                    best[act[better]], mg[act[better]] = cand[better], mc[better]
                for it in range(1, n_queries):
                    act = np.flatnonzero(mg >= 0)
                    if act.size == 0:
                        break
                    p = square_p_schedule(p_init, it, n_queries)
                    side = int(min(max(round(np.sqrt(p * h * w)), 1), min(h, w) - 1 if min(h, w) > 1 else 1))
                    vh = rng.integers(0, h - side + 1, size=act.size)
                    vw = rng.integers(0, w - side + 1, size=act.size)
                    rows = (np.arange(h)[None] >= vh[:, None]) & (np.arange(h)[None] < vh[:, None] + side)
                    cols = (np.arange(w)[None] >= vw[:, None]) & (np.arange(w)[None] < vw[:, None] + side)
                    mask = rows[:, None, :, None] & cols[:, None, None, :]          # (a, 1, H, W)
                    delta = best[act] - x0[act]
                    cand = delta.copy()
                    todo = np.ones(act.size, dtype=bool)
                    for _ in range(10):    # redraw windows that would not change the image
                        vals = e * rng.choice(np.array([-1, 1], dtype=x.dtype), size=(todo.sum(), c, 1, 1))
                        cand[todo] = np.where(mask[todo], vals, delta[todo])
                        xc = clip_(x0[act] + cand, bounds)
                        same = np.all(np.abs(xc - best[act]) < 1e-7, axis=(1, 2, 3))
                        todo = same
                        if not todo.any():
                            break
                    mc, _ = margin(model.forward(xc), lab[act], None if tb is None else tb[act])
                    queries[s + act] += 1
                    better = mc < mg[act]
                    best[act[better]], mg[act[better]] = xc[better], mc[better]
            x_adv[sl] = best
            pred_adv[sl] = model.forward(best).argmax(axis=1)
    return make_result(x, x_adv, pred_clean, pred_adv, labels, target, "square", eps, "inf",
                       steps=queries)
