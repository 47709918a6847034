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

import numbers
from contextlib import contextmanager

import numpy as np

from .. import parallel
from .._checks import check_float_array, check_labels
from ..functional.activations import log_softmax

__all__ = ["input_gradient", "per_example_cross_entropy", "predict", "model_eval_state"]


@contextmanager
def model_eval_state(model):
    """Context manager: put ``model`` in eval mode and freeze its parameters, restore on exit.

    Restores, per submodule, the ``training`` flag, the forward cache and (for layers having
    it, found by attribute: ``Conv2d``, ``Linear``, any custom layer) ``needs_input_grad``,
    which is switched on meanwhile; per parameter, ``trainable`` and the bitwise content of
    ``grad`` (written back into the same array object). Inside, the kernels run on nnlite's
    worker threads (a ``nnlite.parallel.threads()`` block, as in ``Trainer.fit``).
    """
    if not hasattr(model, "named_modules") or not hasattr(model, "parameters"):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
    modules = [m for _, m in model.named_modules()]
    modes = [(m, m.training) for m in modules]
    caches = [(m, m.__dict__.get("_cache")) for m in modules]
    input_flags = [(m, m.needs_input_grad) for m in modules if hasattr(m, "needs_input_grad")]
    params = model.parameters()
    saved = [(p, p.trainable, p.grad, np.array(p.grad, copy=True)) for p in params]
    try:
        model.eval()
        for m, _ in input_flags:
            m.needs_input_grad = True
        for p in params:
            p.trainable = False
        with parallel.threads():           # attacks run on nnlite's workers, as training does
            yield model
    finally:
        for p, trainable, grad_obj, grad_copy in saved:
            p.trainable = trainable
            if p.grad is not grad_obj:
                p.grad = grad_obj
            np.copyto(grad_obj, grad_copy)
        for m, flag in input_flags:
            m.needs_input_grad = flag
        for m, cache in caches:
            object.__setattr__(m, "_cache", cache)
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def per_example_cross_entropy(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Softmax cross-entropy of each row: l_i = -log softmax(logits_i)[y_i].

    logits: (N, C) float; y: (N,) int labels -> (N,) float64 losses.
    """
    check_float_array(logits, "logits", ndim=2)
    y = check_labels(y, logits.shape[0], logits.shape[1])
    logp = log_softmax(logits.astype(np.float64), axis=1)
    return -logp[np.arange(logits.shape[0]), y]


def _check_logits(logits, x):
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        shape = getattr(logits, "shape", type(logits).__name__)
        raise ValueError(f"the model must map a batch of {x.shape[0]} inputs to logits of shape "
                         f"({x.shape[0]}, num_classes), got {shape}")


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted classes (argmax of the logits) of ``x`` in eval mode, in chunks.

    x: (N, ...) model input -> (N,) int64. The model's modes and caches are restored.
    """
    check_float_array(x, "x")
    batch_size = _check_batch_size(batch_size)
    out = np.empty(x.shape[0], dtype=np.int64)
    with model_eval_state(model):
        for s in range(0, x.shape[0], batch_size):
            logits = model.forward(x[s:s + batch_size])
            _check_logits(logits, x[s:s + batch_size])
            out[s:s + batch_size] = logits.argmax(axis=1)
    return out


def _check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _class_vector(v, n: int, num_classes: int, name: str) -> np.ndarray:
    """An int (same class for every example) or an (n,) int array -> (n,) int64 in range."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = np.full(n, int(v), dtype=np.int64)
    return check_labels(v, n, num_classes, name).astype(np.int64, copy=False)


def _raw_gradient(model, x, y=None, loss=None, target_class=None):
    """The work of :func:`input_gradient`, assuming the model is already in eval state."""
    logits = model.forward(x)
    _check_logits(logits, x)
    n, c = logits.shape
    if target_class is not None:
        t = _class_vector(target_class, n, c, "target_class")
        dlogits = np.zeros_like(logits)
        dlogits[np.arange(n), t] = 1
    else:
        y = logits.argmax(axis=1) if y is None else _class_vector(y, n, c, "y")
        if loss is None:
            # d(sum_i CE_i)/dlogits = softmax(logits) - onehot(y), computed directly.
            dlogits = np.exp(log_softmax(logits, axis=1))
            dlogits[np.arange(n), y] -= 1
        else:
            loss.forward(logits, y)
            # nnlite losses are batch MEANS: times N gives the sum of per-example losses.
            dlogits = np.asarray(loss.backward()) * np.asarray(n, dtype=logits.dtype)
    dlogits = dlogits.astype(logits.dtype, copy=False)
    grad = model.backward(dlogits)
    if grad is None or np.shape(grad) != x.shape:
        raise RuntimeError(f"the model's backward returned {None if grad is None else np.shape(grad)} "
                           f"for an input of shape {x.shape}; input gradients are needed")
    return grad, logits


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
    with model_eval_state(model):
        return _raw_gradient(model, x, y, loss, target_class)
