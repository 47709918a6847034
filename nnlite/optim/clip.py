"""In-place gradient utilities: global-norm clipping and the explicit L2 penalty (``reg``).

Both work on ``Parameter.grad`` directly, between ``backward`` and ``optimizer.step()``, and are
independent of the optimizer.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_real
from ..nn.parameter import Parameter

__all__ = ["clip_grad_norm", "l2_penalty", "is_weight"]


def _param_list(params, fn: str) -> list:
    if isinstance(params, Parameter):
        return [params]
    try:
        items = list(params)
    except TypeError:
        raise TypeError(f"{fn}: params must be a Parameter or an iterable of Parameter, "
                        f"got {type(params).__name__}") from None
    if not items:
        raise ValueError(f"{fn}: got an empty parameter list; pass at least one Parameter")
    for p in items:
        if not isinstance(p, Parameter):
            raise TypeError(f"{fn}: params must hold Parameter objects, got {type(p).__name__}")
    return items


def clip_grad_norm(params, max_norm, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Update formula: n = sqrt(sum_p ||p.grad||^2); if n > max_norm: p.grad *= max_norm/(n + 1e-6).
    Convention: PyTorch's ``clip_grad_norm_`` with norm_type=2 -- one norm over the gradients of
    all *trainable* parameters (frozen ones and ``grad is None`` are ignored and left untouched),
    scaled in place (dtype kept; the norm is accumulated in float64). Returns the norm *before*
    clipping as a Python float (0.0 when no parameter is trainable). A non-finite norm raises
    ValueError if ``error_if_nonfinite`` else propagates into the gradients, as in PyTorch.
    """
    plist = _param_list(params, "clip_grad_norm")
    max_norm = check_real(max_norm, "clip_grad_norm: max_norm", lo=0.0, lo_open=True)
    grads = [p.grad for p in plist if p.trainable and p.grad is not None]
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise ValueError(f"clip_grad_norm: the total gradient norm is {total}; "
                             "some gradient holds NaN or inf")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also true for a NaN norm, which then propagates as in PyTorch
        for g in grads:
            g *= coef
    return total


def is_weight(p: Parameter) -> bool:
    """Default ``select`` of :func:`l2_penalty`: True for parameters with ndim >= 2.

    Update formula: none (a predicate). Convention: weight matrices and conv kernels are
    penalized; biases and BatchNorm scales/shifts (1-D) are not, as in the course reports.
    """
    return p.data.ndim >= 2


def l2_penalty(params, reg, select=is_weight, add_to_grad: bool = True) -> float:
    """Explicit L2 regularization: return the loss term and add its gradient into ``.grad``.

    Update formula: loss += 0.5*reg*sum_{p selected} ||p||^2; p.grad += reg*p (selected, trainable).
    Convention: the course reports' ``reg``. ``select`` chooses the penalized parameters: a
    predicate ``Parameter -> bool`` (default :func:`is_weight`: ndim >= 2, i.e. weights but not
    biases), ``None`` for all given parameters, or pass exactly the wanted list as ``params``
    with ``select=None``. The loss term counts every selected parameter; the gradient is added
    only to trainable ones (frozen parameters are never touched) and only if ``add_to_grad``
    (set False to just report the term). Call it after ``zero_grad()`` and before ``step()``;
    since gradients accumulate, before or after ``backward`` both work. Returns a Python float
    (accumulated in float64).

    How it differs from the optimizers' ``weight_decay``: for SGD, ``weight_decay=reg`` adds
    the same ``reg*w`` to the gradient, but it applies to *every* parameter of the group
    (biases too, unless they sit in a group with weight_decay=0), does not appear in the
    reported loss, and for Adam/RMSprop the term is rescaled by the adaptive denominator just
    like ``l2_penalty``'s; ``AdamW``'s decoupled decay instead shrinks w by ``lr*wd*w``
    outside the adaptive step. Use one or the other, not both (that would double the decay).
    """
    plist = _param_list(params, "l2_penalty")
    reg = check_real(reg, "l2_penalty: reg", lo=0.0)
    if select is not None and not callable(select):
        raise TypeError(f"l2_penalty: select must be a callable Parameter -> bool or None, "
                        f"got {type(select).__name__}")
    chosen = plist if select is None else [p for p in plist if select(p)]
    if reg == 0.0:
        return 0.0
    total = 0.0
    for p in chosen:
        total += float(np.sum(np.square(p.data, dtype=np.float64)))
        if add_to_grad and p.trainable and p.grad is not None:
            p.grad += reg * p.data
    return 0.5 * reg * total
