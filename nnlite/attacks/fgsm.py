"""Fast gradient sign method (Goodfellow et al., 2015).

Units: ``eps`` is in the model's INPUT units (pixels in [0, 1] by default: keep the
normalization inside the model with ``nnlite.nn.Normalize``), and adversarial examples are
clipped to ``clip = (low, high)`` (default (0, 1); ``None`` disables clipping).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_labels
from .base import (AttackResult, check_attack_args, check_logits, clip_, empty_outputs,
                   make_result, model_eval_state, raw_gradient)

__all__ = ["AttackResult", "fgsm"]


# -- FGSM ---------------------------------------------------------------------------------------
def fgsm(model, x, y=None, *, eps, targeted: bool = False, target=None, clip=(0.0, 1.0),
         batch_size: int = 512) -> AttackResult:
    """Fast gradient sign method, one step of size ``eps`` in the L-inf ball.

    model: nnlite Module mapping x (N, ...) to logits (N, C); x: float, in ``clip``'s range.
    y: (N,) int true labels, or None to use the model's clean predictions (avoids "label
       leaking": the true label is never needed at attack time).
    Untargeted: x_adv = clip(x + eps * sign(d CE(x, y) / dx)).
    Targeted (``targeted=True, target`` an int or (N,) ints):
       x_adv = clip(x - eps * sign(d CE(x, target) / dx))   (descend the target's loss).
    Gradients are per example (sum over the batch, eval mode; see ``input_gradient``);
    x is processed in chunks of ``batch_size``. eps = 0 returns x unchanged (a copy).
    Returns an ``AttackResult``.
    """
    eps, bounds, batch_size, y, target = check_attack_args(x, y, eps, targeted, target, clip,
                                                           batch_size)
    n = x.shape[0]
    x_adv, pred_clean, pred_adv, labels = empty_outputs(x)
    with model_eval_state(model):
        for s in range(0, n, batch_size):
            xb = x[s:s + batch_size]
            sl = slice(s, s + xb.shape[0])
            if targeted:
                g, logits = raw_gradient(model, xb, y=target[sl])
                step = -np.sign(g)
            else:
                g, logits = raw_gradient(model, xb, y=None if y is None else y[sl])
                step = np.sign(g)
            c = logits.shape[1]
            pred_clean[sl] = logits.argmax(axis=1)
            labels[sl] = pred_clean[sl] if y is None else check_labels(y[sl], xb.shape[0], c)
            if targeted:
                check_labels(target[sl], xb.shape[0], c, "target")
            if eps == 0:
                x_adv[sl] = xb
                pred_adv[sl] = pred_clean[sl]
                continue
            xa = xb + np.asarray(eps, dtype=x.dtype) * step.astype(x.dtype, copy=False)
            x_adv[sl] = clip_(xa, bounds)
            out = model.forward(x_adv[sl])
            check_logits(out, xb)
            pred_adv[sl] = out.argmax(axis=1)
    return make_result(x, x_adv, pred_clean, pred_adv, labels, target, "fgsm", eps, "inf")
