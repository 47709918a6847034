"""Loss kernels. Each returns ``(loss, grad)``: the MEAN loss as a Python float and its
gradient with respect to the first argument (same shape and dtype)."""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array, check_labels
from .activations import log_softmax


def softmax_cross_entropy(logits, y, label_smoothing: float = 0.0, class_weights=None):
    """Fused, numerically stable softmax + cross-entropy (log-sum-exp), PyTorch's conventions.

    logits: (N, C) float; y: (N,) int labels in [0, C); label_smoothing s in [0, 1);
    class_weights w: (C,) or None.
        q_i = (1 - s) * onehot(y_i) + s / C                 (label smoothing, as PyTorch)
        l_i = (1 - s) w_{y_i} (-log p_{i,y_i}) + (s / C) sum_c w_c (-log p_ic)
        loss = sum_i l_i / sum_i w_{y_i}                    (weighted mean; plain mean if w is None)
    Gradient: dl_i/dz_i = (1 - s) w_{y_i} (p_i - e_{y_i}) + (s / C) (sum(w) p_i - w), / sum_i w_{y_i}.
    Returns (loss: float, dlogits: (N, C)).
    """
    check_float_array(logits, "logits", ndim=2)
    n, c = logits.shape
    y = check_labels(y, n, c)
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    dtype = logits.dtype
    logp = log_softmax(logits, axis=1)
    p = np.exp(logp)
    rows = np.arange(n)
    s = label_smoothing
    if class_weights is None:
        nll = -logp[rows, y]
        smooth = -logp.mean(axis=1)
        loss = ((1 - s) * nll + s * smooth).mean() if n else 0.0
        grad = p
        grad[rows, y] -= (1 - s)
        if s:
            grad -= np.asarray(s / c, dtype=dtype)
        grad /= max(n, 1)
        return float(loss), grad
    w = np.asarray(class_weights, dtype=dtype)
    if w.shape != (c,):
        raise ValueError(f"class_weights must have shape ({c},), got {w.shape}")
    wy = w[y]
    denom = wy.sum()
    if denom <= 0:
        raise ValueError("class_weights give the batch a total weight of 0")
    loss = ((1 - s) * (wy * -logp[rows, y]).sum() + (s / c) * (-(logp * w).sum())) / denom
    grad = (1 - s) * wy[:, None] * p
    grad[rows, y] -= (1 - s) * wy
    if s:
        grad += np.asarray(s / c, dtype=dtype) * (w.sum() * p - w)
    grad /= denom
    return float(loss), grad.astype(dtype, copy=False)


def multiclass_hinge(scores, y, margin: float = 1.0):
    """Multiclass SVM (Weston-Watkins / CS231n) hinge loss.

    scores: (N, C); y: (N,) ints.  L = mean_i sum_{j != y_i} max(0, s_ij - s_{i,y_i} + margin).
    Gradient: d s_ij = [margin_ij > 0] for j != y_i; d s_{i,y_i} = -sum_j [margin_ij > 0]; / N.
    """
    check_float_array(scores, "scores", ndim=2)
    n, c = scores.shape
    y = check_labels(y, n, c)
    rows = np.arange(n)
    margins = scores - scores[rows, y][:, None] + np.asarray(margin, dtype=scores.dtype)
    margins[rows, y] = 0
    active = margins > 0
    loss = float(np.maximum(margins, 0).sum() / max(n, 1))
    grad = active.astype(scores.dtype)
    grad[rows, y] = -active.sum(axis=1)
    grad /= max(n, 1)
    return loss, grad


def mse(pred, target):
    """Mean squared error over all elements: L = mean((pred - target)^2); dL/dpred = 2 (pred - target) / size."""
    check_float_array(pred, "pred")
    target = np.asarray(target)
    if target.shape != pred.shape:
        raise ValueError(f"target must have the prediction's shape {pred.shape}, got {target.shape}")
    diff = pred - target.astype(pred.dtype, copy=False)
    size = max(diff.size, 1)
    return float((diff * diff).sum() / size), diff * np.asarray(2.0 / size, dtype=pred.dtype)


def bce_with_logits(logits, targets):
    """Binary cross-entropy on logits, mean over all elements, computed stably.

    logits z, targets t in [0, 1], same shape.  l = max(z, 0) - z t + log(1 + exp(-|z|));
    dl/dz = sigmoid(z) - t, / size.
    """
    check_float_array(logits, "logits")
    t = np.asarray(targets)
    if t.shape != logits.shape:
        raise ValueError(f"targets must have the logits' shape {logits.shape}, got {t.shape}")
    t = t.astype(logits.dtype, copy=False)
    if t.size and (t.min() < 0 or t.max() > 1):
        raise ValueError("targets of binary cross-entropy must lie in [0, 1]")
    z = logits
    loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    e = np.exp(-np.abs(z))
    sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    size = max(z.size, 1)
    return float(loss.sum() / size), ((sig - t) / size).astype(z.dtype, copy=False)
