"""Loss objects: ``value = loss.forward(pred, target)`` then ``dpred = loss.backward()``.

Each wraps a kernel from ``nnlite.functional.losses`` (which returns value and gradient in
one call) and keeps the gradient for ``backward``. Every loss is the MEAN over the batch.
"""
from __future__ import annotations

import numpy as np

from .functional import losses as FL


class Loss:
    """Base class: subclasses implement ``_compute(pred, target) -> (value, grad)``."""

    def __init__(self):
        self._grad = None

    def forward(self, pred, target) -> float:
        value, self._grad = self._compute(pred, target)
        return value

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._grad

    def _compute(self, pred, target):
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    """Fused softmax + cross-entropy on logits (N, C) with integer labels (N,).

    label_smoothing s: targets (1 - s) * onehot + s / C; class_weights (C,): weighted mean,
    both as PyTorch's ``CrossEntropyLoss``.
    """

    def __init__(self, label_smoothing: float = 0.0, class_weights=None):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.class_weights = class_weights

    def _compute(self, logits, y):
        return FL.softmax_cross_entropy(logits, y, self.label_smoothing, self.class_weights)


class MulticlassHinge(Loss):
    """Multiclass SVM loss: mean_i sum_{j != y_i} max(0, s_j - s_{y_i} + margin)."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def _compute(self, scores, y):
        return FL.multiclass_hinge(scores, y, self.margin)


class MSE(Loss):
    """Mean squared error over all elements."""

    def _compute(self, pred, target):
        return FL.mse(pred, target)


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits, mean over all elements."""

    def _compute(self, logits, target):
        return FL.bce_with_logits(logits, target)
