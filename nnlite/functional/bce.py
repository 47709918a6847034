"""Binary cross-entropy on PROBABILITIES (after a Sigmoid layer), the reconstruction loss of
autoencoders on [0, 1] pixels. (On logits, prefer ``bce_with_logits``: stabler, same optimum.)"""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array


def bce(prob, target, eps: float = 1e-7):
    """L = -mean(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps].

    prob p: any shape, floating, in [0, 1]; target t: same shape, in [0, 1]
    -> (loss: float, dprob: p's shape and dtype).
    dL/dp = (p - t) / (p (1 - p)) / size inside the clip range, 0 where p was clipped
    (the derivative of the clipped loss; keeps the gradient finite at p = 0 or 1).
    """
    check_float_array(prob, "prob")
    t = np.asarray(target)
    if t.shape != prob.shape:
        raise ValueError(f"target must have the prediction's shape {prob.shape}, got {t.shape}")
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    if prob.size and (prob.min() < 0 or prob.max() > 1):
        raise ValueError("prob must lie in [0, 1] (the output of a Sigmoid); for logits use bce_with_logits")
    t = t.astype(prob.dtype, copy=False)
    if t.size and (t.min() < 0 or t.max() > 1):
        raise ValueError("targets of binary cross-entropy must lie in [0, 1]")
    p = np.clip(prob, eps, 1 - eps)
    size = max(p.size, 1)
    loss = -(t * np.log(p) + (1 - t) * np.log1p(-p)).sum() / size
    inside = (prob >= eps) & (prob <= 1 - eps)
    grad = np.where(inside, (p - t) / (p * (1 - p)), 0) / size
    return float(loss), grad.astype(prob.dtype, copy=False)
