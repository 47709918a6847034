"""Fooling images: gradient ascent on a target class score until the model predicts it.

As in the CIFAR-10 course exercise: starting from a correctly classified image x0, repeat

    pred = argmax model(x);  stop if pred == target
    g    = d z_target(x) / dx                 (the UNNORMALIZED score / logit, not the loss)
    x   <- clip(x + step_size * g / ||g||_2)  (a zero gradient gives a zero step)

for at most ``max_steps`` steps. Each example stops as soon as it is predicted as the target,
so the perturbation is as small as this greedy ascent allows. ``steps`` counts the updates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_float_array, check_labels
from .base import (TINY, AttackResult, check_batch_size, check_classes, check_clip, check_eps,
                   check_logits, check_positive_int, clip_, flat_norm, make_result,
                   model_eval_state, raw_gradient)

__all__ = ["FoolingResult", "fooling_image", "fooling_images"]


@dataclass
class FoolingResult:
    """A single fooling image.

    image: the fooling image (the example's shape, no batch axis); perturbation = image - x;
    l2, linf: its norms; steps: updates taken; success: the model predicts ``target`` on
    ``image``; pred_clean, pred: predictions on x and on image; target: the target class.
    """
    image: np.ndarray
    perturbation: np.ndarray
    l2: float
    linf: float
    steps: int
    success: bool
    pred_clean: int
    pred: int
    target: int


def fooling_images(model, x, target_class, *, step_size: float, max_steps: int = 100,
                   clip=(0.0, 1.0), batch_size: int = 512) -> AttackResult:
    """Batched fooling images: normalized gradient ascent on each example's target score.

    x: (N, ...) float inputs in ``clip``'s range; target_class: int or (N,) ints.
    step_size: L2 length of each step (input units); max_steps: bound on the updates.
    Returns an ``AttackResult`` (targeted: success = pred_adv == target; ``steps`` = updates
    per example, 0 if x was already predicted as the target; ``eps`` = step_size).
    Runs in eval mode; the model is left untouched (see ``input_gradient``).
    """
    check_float_array(x, "x")
    step_size = check_eps(step_size, "step_size")
    max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
    bounds = check_clip(clip, x)
    batch_size = check_batch_size(batch_size)
    n = x.shape[0]
    x_adv = np.array(x, copy=True)
    pred_clean = np.empty(n, dtype=np.int64)
    pred_adv = np.empty(n, dtype=np.int64)
    targets = np.empty(n, dtype=np.int64)
    steps = np.zeros(n, dtype=np.int64)
    a = np.asarray(step_size, dtype=x.dtype)
    tvec = check_classes(target_class, n, "target_class", allow_int=True)
    with model_eval_state(model):
        for s in range(0, n, batch_size):
            xb = x_adv[s:s + batch_size]           # a view: updated in place
            m = xb.shape[0]
            sl = slice(s, s + m)
            logits = model.forward(xb)
            check_logits(logits, xb)
            targets[sl] = check_labels(tvec[sl], m, logits.shape[1], "target_class")
            pred_clean[sl] = logits.argmax(axis=1)
            active = np.arange(m)
            for it in range(max_steps + 1):
                if it == max_steps:                # out of budget: only check the prediction
                    logits, g = model.forward(xb[active]), None
                else:                              # the gradient's forward pass gives pred too
                    g, logits = raw_gradient(model, xb[active], target_class=targets[sl][active])
                pred = logits.argmax(axis=1)
                pred_adv[s + active] = pred
                hit = pred == targets[sl][active]
                keep = ~hit
                active = active[keep]
                if g is None or active.size == 0:
                    break
                g = g[keep]
                gn = flat_norm(g)
                unit = np.where(gn > TINY, g / np.maximum(gn, TINY), 0.0).astype(x.dtype)
                xb[active] = clip_(xb[active] + a * unit, bounds)
                steps[s + active] += 1
    return make_result(x, x_adv, pred_clean, pred_adv, pred_clean.copy(), targets, "fooling", step_size,
                       "2", steps=steps)


def fooling_image(model, x, target_class: int, step_size: float, max_steps: int = 100,
                  clip=(0.0, 1.0)) -> FoolingResult:
    """One fooling image: ``x`` is a single example (the model's input shape WITHOUT the batch
    axis, e.g. (3, 32, 32)); target_class: int. See :func:`fooling_images` for the method.
    Returns a ``FoolingResult`` (image, perturbation, its L2 and L-inf norms, steps, success).
    """
    check_float_array(x, "x")
    if np.ndim(target_class) != 0:
        raise ValueError(f"fooling_image attacks one example: target_class must be an int, "
                         f"got shape {np.shape(target_class)} (use fooling_images for a batch)")
    r = fooling_images(model, x[None], int(target_class), step_size=step_size,
                       max_steps=max_steps, clip=clip)
    linf, l2 = r.perturbation_linf, r.perturbation_l2
    return FoolingResult(image=r.x_adv[0], perturbation=r.x_adv[0] - x, l2=float(l2[0]),
                         linf=float(linf[0]), steps=int(r.steps[0]), success=bool(r.success[0]),
                         pred_clean=int(r.pred_clean[0]), pred=int(r.pred_adv[0]),
                         target=int(r.target[0]))
