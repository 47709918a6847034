"""Fast gradient sign method (Goodfellow et al., 2015) and the shared ``AttackResult``.

Units: ``eps`` is in the model's INPUT units (pixels in [0, 1] by default: keep the
normalization inside the model with ``nnlite.nn.Normalize``), and adversarial examples are
clipped to ``clip = (low, high)`` (default (0, 1); ``None`` disables clipping).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._checks import check_float_array, check_labels
from .gradients import _check_batch_size, _check_logits, _raw_gradient, model_eval_state

__all__ = ["AttackResult", "fgsm"]


@dataclass
class AttackResult:
    """What every attack returns (arrays over the N attacked examples).

    x_adv: (N, ...) adversarial inputs, x's shape and dtype.
    success: (N,) bool. Untargeted: pred_adv != labels; targeted: pred_adv == target.
        (An untargeted example the model already got wrong counts as a success.)
    pred_clean, pred_adv: (N,) int64 predictions on x and on x_adv.
    perturbation_linf, perturbation_l2: (N,) float64 norms of x_adv - x per example.
    labels: (N,) int64 labels the attack used (the true labels, or the clean predictions when
        none were given). target: (N,) int64 target classes (targeted attacks) or None.
    steps: (N,) int64 gradient steps taken per example (iterative attacks) or None.
    attack, eps, norm: a record of the attack that produced this result.
    """
    x_adv: np.ndarray
    success: np.ndarray
    pred_clean: np.ndarray
    pred_adv: np.ndarray
    perturbation_linf: np.ndarray
    perturbation_l2: np.ndarray
    labels: Optional[np.ndarray] = None
    target: Optional[np.ndarray] = None
    steps: Optional[np.ndarray] = None
    attack: str = ""
    eps: float = 0.0
    norm: str = "inf"

    @property
    def success_rate(self) -> float:
        """Fraction of examples on which the attack succeeded."""
        return float(self.success.mean()) if self.success.size else 0.0

    def accuracy(self, y=None) -> float:
        """Accuracy of the model on x_adv against ``y`` (default: ``labels``)."""
        y = self.labels if y is None else np.asarray(y)
        return float((self.pred_adv == y).mean()) if self.pred_adv.size else 0.0

    def __len__(self) -> int:
        return int(self.success.shape[0])


# -- shared argument checks ---------------------------------------------------------------------
def check_eps(eps, name: str = "eps") -> float:
    """A finite, non-negative real number."""
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (in input units), got {eps!r}")
    return float(eps)


def check_clip(clip, x: np.ndarray):
    """``None`` or ``(low, high)`` with low < high, and x inside it."""
    if clip is None:
        return None
    try:
        lo, hi = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip must be None or a pair (low, high), got {clip!r}") from None
    if not lo < hi:
        raise ValueError(f"clip must satisfy low < high, got {clip!r}")
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"x must lie in the valid range clip={clip!r} (attacks work in the model's "
                         f"input units, e.g. [0, 1] pixels), got values in [{x.min()}, {x.max()}]; "
                         f"pass clip=None or the right range")
    return lo, hi


def check_classes(v, n: int, name: str = "y", allow_int: bool = False) -> np.ndarray:
    """Class indices for n examples: an (n,) integer array, or (``allow_int``) one int for
    every example, broadcast to (n,) int64. Type and shape only: the class range is checked
    against the logits later. TypeError / ValueError name ``name``."""
    if allow_int and isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return np.full(n, int(v), dtype=np.int64)
    v = np.asarray(v)
    if not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {v.dtype}")
    if v.shape != (n,):
        want = f"be an int or have shape ({n},)" if allow_int else f"have shape ({n},) to match x"
        raise ValueError(f"{name} must {want}, got {v.shape}")
    return v


def check_targets(x, y, targeted, target):
    """Validate labels/targets shape and type (class range is checked on the first batch).

    x: (N, ...); y: None or (N,) ints; target: an int or (N,) ints when ``targeted``, else
    None. Returns (y, target) as arrays (or None).
    """
    n = x.shape[0]
    if y is not None:
        y = check_classes(y, n, "y")
    if targeted:
        if target is None:
            raise ValueError("a targeted attack needs target= (an int or an (N,) int array), got None")
        target = check_classes(target, n, "target", allow_int=True)
    elif target is not None:
        raise ValueError("target= was given but targeted=False; pass targeted=True")
    return y, target


def check_attack_args(x, y, eps, targeted, target, clip, batch_size):
    """The checks shared by the label-driven attacks (``fgsm``, ``pgd``).

    x: (N, ...) float input in ``clip``'s range; y: (N,) int labels or None; eps: a radius
    >= 0 (input units); targeted / target: see :func:`check_targets`; clip: None or
    (low, high); batch_size: int >= 1.
    Returns ``(eps, bounds, batch_size, y, target)``: eps a float, bounds None or (low, high),
    target None or an (N,) int64 array.
    """
    check_float_array(x, "x")
    eps = check_eps(eps)
    bounds = check_clip(clip, x)
    batch_size = _check_batch_size(batch_size)
    y, target = check_targets(x, y, targeted, target)
    return eps, bounds, batch_size, y, None if target is None else target.astype(np.int64)


def empty_outputs(x: np.ndarray):
    """The arrays an attack fills chunk by chunk: ``x_adv`` (x's shape and dtype) and
    ``pred_clean``, ``pred_adv``, ``labels`` ((N,) int64), uninitialized."""
    n = x.shape[0]
    return (np.empty_like(x), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
            np.empty(n, dtype=np.int64))


def norms(delta: np.ndarray):
    """Per-example L-inf and L2 norms (float64) of delta: (N, ...) -> ((N,), (N,))."""
    d = delta.reshape(delta.shape[0], -1).astype(np.float64, copy=False)
    if d.shape[1] == 0:
        z = np.zeros(d.shape[0])
        return z, z.copy()
    return np.abs(d).max(axis=1), np.sqrt((d * d).sum(axis=1))


def perturbation_norms(x: np.ndarray, x_adv: np.ndarray, chunk: int = 1024):
    """Per-example L-inf and L2 norms of x_adv - x, differences taken in float64, in chunks."""
    n = x.shape[0]
    linf, l2 = np.zeros(n), np.zeros(n)
    for s in range(0, n, chunk):
        linf[s:s + chunk], l2[s:s + chunk] = norms(
            x_adv[s:s + chunk].astype(np.float64) - x[s:s + chunk].astype(np.float64))
    return linf, l2


def make_result(x, x_adv, pred_clean, pred_adv, labels, target, attack, eps, norm, steps=None):
    """Assemble an ``AttackResult`` (success from the targeted / untargeted rule)."""
    success = pred_adv == target if target is not None else pred_adv != labels
    linf, l2 = perturbation_norms(x, x_adv)
    return AttackResult(x_adv=x_adv, success=success, pred_clean=pred_clean, pred_adv=pred_adv,
                        perturbation_linf=linf, perturbation_l2=l2, labels=labels,
                        target=target, steps=steps, attack=attack, eps=eps, norm=norm)


def _clip(x, bounds):
    return x if bounds is None else np.clip(x, bounds[0], bounds[1], out=x)


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
                g, logits = _raw_gradient(model, xb, y=target[sl])
                step = -np.sign(g)
            else:
                g, logits = _raw_gradient(model, xb, y=None if y is None else y[sl])
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
            x_adv[sl] = _clip(xa, bounds)
            out = model.forward(x_adv[sl])
            _check_logits(out, xb)
            pred_adv[sl] = out.argmax(axis=1)
    return make_result(x, x_adv, pred_clean, pred_adv, labels, target, "fgsm", eps, "inf")
