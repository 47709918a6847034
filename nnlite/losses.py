"""Loss objects: ``value = loss.forward(pred, target)`` then ``dpred = loss.backward()``.

Each wraps a kernel from ``nnlite.functional.losses`` (which returns value and gradient in
one call) and keeps the gradient for ``backward``. Every loss is the MEAN over the batch.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_finite_vector, check_real
from . import kernels
from .functional import contrastive as FC
from .functional import losses as FL


class Loss:
    """Base class: subclasses implement ``_compute(pred, target) -> (value, grad)``.

    ``value = loss.forward(pred, target)`` (or ``loss(pred, target)``) then
    ``dpred = loss.backward()``; ``forward`` refuses floating targets holding NaN or inf.
    """

    def __init__(self):
        self._grad = None

    def forward(self, pred, target) -> float:
        """The mean loss over the batch (a float); keeps d(loss)/d(pred) for `backward`.

        pred: the model's output, e.g. logits (N, C); target: labels (N,) or an array like
        ``pred`` (MSE, BCE), as each loss documents. Floating targets must be finite.
        """
        if isinstance(target, np.ndarray) and target.dtype.kind == "f" and not np.all(np.isfinite(target)):
            bad = target[~np.isfinite(target)].flat[0]
            raise ValueError(f"{type(self).__name__}: target must be finite, got {bad} "
                             f"(in a target of shape {target.shape})")
        value, self._grad = self._compute(pred, target)
        return value

    __call__ = forward

    def backward(self) -> np.ndarray:
        """d(mean loss)/d(pred) of the last `forward`, shaped like ``pred``; RuntimeError before
        any forward."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: call forward first")
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
        self.label_smoothing = check_real(label_smoothing, "label_smoothing", lo=0.0, hi=1.0)
        if class_weights is not None:
            w = check_finite_vector(class_weights, "class_weights")
            if np.any(w < 0):
                i = int(np.flatnonzero(w < 0)[0])
                raise ValueError(f"class_weights must be >= 0, got {w[i]} at index {i}")
            if not np.any(w > 0):
                raise ValueError("class_weights must have at least one positive entry, got all zeros")
            class_weights = w
        self.class_weights = class_weights

    def _compute(self, logits, y):
        return kernels.active().softmax_cross_entropy(logits, y, self.label_smoothing, self.class_weights)


class MulticlassHinge(Loss):
    """Multiclass SVM loss: mean_i sum_{j != y_i} max(0, s_j - s_{y_i} + margin)."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = check_real(margin, "margin", lo=0.0)

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


class BCE(Loss):
    """Binary cross-entropy on probabilities (after ``nn.Sigmoid``), mean over all elements:
    the reconstruction loss of an autoencoder on [0, 1] pixels (kernel ``functional.bce.bce``)."""

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = eps

    def _compute(self, prob, target):
        from .functional.bce import bce
        return bce(prob, target, self.eps)


# ---------------------------------------------------------------------------------------------
# self-supervised losses (kernels in ``functional.contrastive``). Convention: the two views of
# N images are stacked as pred = [view1; view2] of shape (2N, D); row i and row i + N pair up.
# ---------------------------------------------------------------------------------------------
class NTXent(Loss):
    """SimCLR's NT-Xent on stacked views z: (2N, D) (``target`` is unused: pass None).

    Mean over the 2N anchors of -log softmax of the positive among the 2N - 1 other views
    (cosine similarities / temperature; kernel ``functional.contrastive.nt_xent``).
    Identical embeddings give log(2N - 1).
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = check_real(temperature, "temperature", lo=0.0, lo_open=True)

    def _compute(self, z, target=None):
        return FC.nt_xent(z, self.temperature)


class BYOLLoss(Loss):
    """BYOL's symmetric 2 - 2 cos loss: pred = online predictions [p1; p2] (2N, D), target =
    target-network projections [t1; t2] (2N, D), treated as constants (no gradient; p1 is
    paired with t2, p2 with t1). Sum of the two directions' means, in [0, 8]."""

    def _compute(self, p, t):
        return FC.byol_loss(p, t)


class BarlowTwinsLoss(Loss):
    """Barlow Twins on stacked views z: (2N, D) (``target`` unused): sum (1 - c_ii)^2 +
    lambd sum_{i != j} c_ij^2 of the cross-correlation of the per-view batch-standardised
    embeddings (biased variance plus eps, as batch norm). Default lambd = 5e-3."""

    def __init__(self, lambd: float = 5e-3, eps: float = 1e-5):
        super().__init__()
        self.lambd = check_real(lambd, "lambd", lo=0.0)
        self.eps = check_real(eps, "eps", lo=0.0, lo_open=True)

    def _compute(self, z, target=None):
        return FC.barlow_twins(z, self.lambd, self.eps)
