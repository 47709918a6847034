"""Gradients of a loss (or of one class score) with respect to a model's INPUT.

Every attack in ``nnlite.attacks`` is built on :func:`input_gradient`. It is side-effect
free on the model:

* it runs in eval mode (batch norm uses its running statistics, dropout is the identity) and
  restores every submodule's previous ``training`` flag afterwards, so batch-norm running
  statistics are never updated and dropout Generators are never drawn from;
* parameter gradients (``p.grad``) are left bitwise untouched: parameters are temporarily
  marked non-trainable (so layers skip the weight-gradient work) and each ``p.grad`` is saved
  and written back, which also covers third-party layers that ignore ``trainable``;
* each module's forward cache (``_cache``) and the ``needs_input_grad`` flag of the layers
  having one (``Conv2d``, ``Linear``: switched on temporarily, as the input gradient is what
  we want) are restored.

Convention: the scalar that is differentiated is the SUM over the batch of per-example
losses (or of per-example class scores). Examples therefore do not interact: row ``i`` of the
gradient is the gradient of example ``i``'s own loss, independent of the batch size and of
how a data set is cut into chunks.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array, check_labels
from ..grad_mode import no_grad
from ..functional.activations import log_softmax
from .base import check_batch_size, check_logits, model_eval_state, raw_gradient

__all__ = ["input_gradient", "per_example_cross_entropy", "predict", "model_eval_state"]


def per_example_cross_entropy(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Softmax cross-entropy of each row: l_i = -log softmax(logits_i)[y_i].

    logits: (N, C) float; y: (N,) int labels -> (N,) float64 losses.
    """
    check_float_array(logits, "logits", ndim=2)
    y = check_labels(y, logits.shape[0], logits.shape[1])
    logp = log_softmax(logits.astype(np.float64), axis=1)
    return -logp[np.arange(logits.shape[0]), y]


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted classes (argmax of the logits) of ``x`` in eval mode, in chunks.

    x: (N, ...) model input -> (N,) int64. The model's modes and caches are restored. Runs
    under ``nnlite.no_grad()`` (no backward follows).
    """
    check_float_array(x, "x")
    if x.size and not np.isfinite(x).all():
        raise ValueError("x must hold finite values, got NaN or inf")
    batch_size = check_batch_size(batch_size)
    out = np.empty(x.shape[0], dtype=np.int64)
    with model_eval_state(model), no_grad():
        for s in range(0, x.shape[0], batch_size):
            logits = model.forward(x[s:s + batch_size])
            check_logits(logits, x[s:s + batch_size])
            out[s:s + batch_size] = logits.argmax(axis=1)
    return out


def input_gradient(model, x, y=None, loss=None, target_class=None):
    """Gradient of the summed loss, or of a class score, with respect to the input batch.

    model: an nnlite ``Module`` mapping x: (N, ...) to logits (N, C).
    x: float input batch, in the model's dtype.
    y: (N,) int true labels, or None to use the model's own predictions (argmax of the
        logits of this same forward pass).
    loss: a loss object with ``forward(logits, y)`` / ``backward()`` returning the gradient of
        the batch MEAN (nnlite's convention, e.g. ``SoftmaxCrossEntropy(label_smoothing=0.1)``);
        it is multiplied by N. Default: plain softmax cross-entropy, differentiated directly.
    target_class: int or (N,) ints. When given, y and loss are ignored and the scalar is the
        sum over the batch of the chosen UNNORMALIZED class scores (logits), sum_i z_{i, t_i}.

    Returns ``(grad, logits)``: grad has x's shape and dtype, row i = d(loss_i)/d x_i (or
    d z_{i,t_i} / d x_i); logits: (N, C) at x. Convention: SUM over the batch (see module
    docstring). Runs in eval mode and leaves the model exactly as it found it (modes,
    parameter gradients, batch-norm running statistics, caches).
    """
    check_float_array(x, "x")
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x must hold finite values (no input gradient at NaN/inf), got NaN or inf")
    with model_eval_state(model):
        return raw_gradient(model, x, y, loss, target_class)
