"""Shared machinery of every attack in ``nnlite.attacks`` (the one home of the attack helpers).

* ``AttackResult``: what every attack returns.
* argument checks: :func:`check_images` (float, finite, inside the valid range),
  :func:`check_eps`, :func:`check_clip`, :func:`check_classes`, :func:`check_targets`,
  :func:`check_attack_args`, :func:`check_batch_size`, :func:`check_norm`,
  :func:`check_positive_int`, :func:`check_logits`, :func:`class_vector`;
* the model's eval state (:func:`model_eval_state`) and the raw input gradient
  (:func:`raw_gradient`, :func:`logits_gradient`), assuming that state;
* geometry of the threat models: :func:`flat_norm`, :func:`norms`, :func:`perturbation_norms`,
  :func:`random_start_delta`, :func:`project`, :func:`clip_`;
* assembling results: :func:`empty_outputs`, :func:`make_result`.

Units: eps, step sizes and norms are in the model's INPUT units (pixels in [0, 1] by default).
Gradients are of the SUM over the batch of per-example losses (row i = d loss_i / d x_i).
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import parallel
from .._checks import as_generator, check_float_array, check_labels
from ..functional.activations import log_softmax

__all__ = ["AttackResult", "TINY", "check_images", "check_eps", "check_clip", "check_classes",
           "check_targets", "check_attack_args", "check_batch_size", "check_norm",
           "check_positive_int", "check_logits", "class_vector", "model_eval_state",
           "raw_gradient", "logits_gradient", "flat_norm", "norms", "perturbation_norms",
           "random_start_delta", "project", "clip_", "empty_outputs", "make_result"]

TINY = 1e-12


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
    steps: (N,) int64 gradient steps (or, for score-based attacks, queries) per example, or None.
    attack, eps, norm: a record of the attack that produced this result.
    info: attack-specific extras (e.g. APGD's per-example start and best losses).
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
    info: dict = field(default_factory=dict)

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


# -- argument checks ------------------------------------------------------------------------------
def check_eps(eps, name: str = "eps") -> float:
    """A finite, non-negative real number."""
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (in input units), got {eps!r}")
    return float(eps)


def check_positive_int(v, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum`` (bool refused)."""
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def check_batch_size(batch_size) -> int:
    """A positive int."""
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def check_norm(norm) -> str:
    """"inf" (aliases linf, l-inf) or "2" (alias l2)."""
    key = str(norm).lower()
    aliases = {"inf": "inf", "linf": "inf", "l-inf": "inf", "2": "2", "l2": "2"}
    if key not in aliases:
        raise ValueError(f"norm must be 'inf' or '2', got {norm!r}")
    return aliases[key]


def check_clip(clip, x: np.ndarray):
    """``None`` or ``(low, high)`` with low < high, and x finite and inside it."""
    if x.size and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"x must hold finite values (attacks refuse NaN/inf inputs), got {bad} "
                         f"non-finite value(s) among {x.size}")
    if clip is None:
        return None
    try:
        lo, hi = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip must be None or a pair (low, high), got {clip!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"clip must be finite and satisfy low < high, got {clip!r}")
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"x must lie in the valid range clip={clip!r} (attacks work in the model's "
                         f"input units, e.g. [0, 1] pixels), got values in [{x.min()}, {x.max()}]; "
                         f"pass clip=None or the right range")
    return lo, hi


def check_images(x, clip, name: str = "x", min_ndim: int = 2):
    """x: a float ndarray (N, ...) with N >= 1, finite, inside ``clip``. Returns the bounds."""
    check_float_array(x, name)
    if x.ndim < min_ndim or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch (N, ...) of rank >= {min_ndim} with N >= 1, "
                         f"got shape {x.shape}")
    return check_clip(clip, x)


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


def class_vector(v, n: int, num_classes: int, name: str) -> np.ndarray:
    """An int (same class for every example) or an (n,) int array -> (n,) int64 in range."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = np.full(n, int(v), dtype=np.int64)
    return check_labels(v, n, num_classes, name).astype(np.int64, copy=False)


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
    """The checks shared by the label-driven attacks.

    x: (N, ...) float, finite, in ``clip``'s range; y: (N,) int labels or None; eps: a radius
    >= 0 (input units); targeted / target: see :func:`check_targets`; clip: None or
    (low, high); batch_size: int >= 1.
    Returns ``(eps, bounds, batch_size, y, target)``: eps a float, bounds None or (low, high),
    target None or an (N,) int64 array.
    """
    check_float_array(x, "x")
    eps = check_eps(eps)
    bounds = check_clip(clip, x)
    batch_size = check_batch_size(batch_size)
    y, target = check_targets(x, y, targeted, target)
    return eps, bounds, batch_size, y, None if target is None else target.astype(np.int64)


def check_logits(logits, x):
    """The model's output for the batch x must be an (N, C) array."""
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        shape = getattr(logits, "shape", type(logits).__name__)
        raise ValueError(f"the model must map a batch of {x.shape[0]} inputs to logits of shape "
                         f"({x.shape[0]}, num_classes), got {shape}")


def clean_batches(model, x, y, target, batch_size, pred_clean, labels):
    """The clean pass every batched attack starts with, one batch at a time.

    For each batch x0 = x[sl] (sl a slice of at most ``batch_size`` rows): runs the model,
    checks its logits, writes the clean predictions into ``pred_clean[sl]`` and the attacked
    labels (``y``, or the predictions when ``y`` is None) into ``labels[sl]``, and yields
    ``(sl, x0, logits, target_batch)`` (target_batch None for untargeted attacks). Call it
    inside ``model_eval_state(model)``.
    """
    for s in range(0, x.shape[0], batch_size):
        x0 = x[s:s + batch_size]
        m = x0.shape[0]
        sl = slice(s, s + m)
        logits = model.forward(x0)
        check_logits(logits, x0)
        c = logits.shape[1]
        pred_clean[sl] = logits.argmax(axis=1)
        labels[sl] = pred_clean[sl] if y is None else check_labels(y[sl], m, c)
        yield sl, x0, logits, (None if target is None else check_labels(target[sl], m, c, "target"))


# -- the model's state during an attack ----------------------------------------------------------
_ABSENT = object()


@contextmanager
def model_eval_state(model):
    """Context manager: put ``model`` in eval mode and freeze its parameters, restore on exit.

    Restores, per submodule, the ``training`` flag, the forward state (``Module._forward_state``:
    the cache, the output shape and a ``Sequential``'s ``no_grad`` mark, so a backward of a
    forward made before still runs) and (for layers having
    it, found by attribute: ``Conv2d``, ``Linear``, any custom layer) ``needs_input_grad``,
    which is switched on meanwhile; per parameter, ``trainable`` and the bitwise content of
    ``grad`` (written back into the same array object). Inside, the kernels run on nnlite's
    worker threads (a ``nnlite.parallel.threads()`` block, as in ``Trainer.fit``).
    """
    if not hasattr(model, "named_modules") or not hasattr(model, "parameters"):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
    modules = [m for _, m in model.named_modules()]
    modes = [(m, m.training) for m in modules]
    states = [(m, name, m.__dict__.get(name, _ABSENT)) for m in modules for name in m._forward_state]
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
        for m, name, value in states:
            if value is _ABSENT:
                m.__dict__.pop(name, None)
            else:
                object.__setattr__(m, name, value)
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def logits_gradient(model, x, dlogits_fn):
    """Input gradient of a scalar built from the logits, model already in eval state.

    x: (N, ...); dlogits_fn(logits (N, C)) -> (value, dlogits (N, C)). Returns
    ``(grad (x's shape and dtype), logits (N, C), value)``.
    """
    logits = model.forward(x)
    check_logits(logits, x)
    value, dlogits = dlogits_fn(logits)
    grad = model.backward(np.asarray(dlogits).astype(logits.dtype, copy=False))
    if grad is None or np.shape(grad) != x.shape:
        raise RuntimeError(f"the model's backward returned {None if grad is None else np.shape(grad)} "
                           f"for an input of shape {x.shape}; input gradients are needed")
    return grad, logits, value


def raw_gradient(model, x, y=None, loss=None, target_class=None):
    """The work of ``input_gradient`` (cross-entropy, a loss object or a class score),
    assuming the model is already in eval state. Returns ``(grad, logits)``."""
    def dlogits_fn(logits):
        n, c = logits.shape
        if target_class is not None:
            t = class_vector(target_class, n, c, "target_class")
            d = np.zeros_like(logits)
            d[np.arange(n), t] = 1
            return None, d
        yy = logits.argmax(axis=1) if y is None else class_vector(y, n, c, "y")
        if loss is None:
            # d(sum_i CE_i)/dlogits = softmax(logits) - onehot(y), computed directly.
            d = np.exp(log_softmax(logits, axis=1))
            d[np.arange(n), yy] -= 1
            return None, d
        loss.forward(logits, yy)
        # nnlite losses are batch MEANS: times N gives the sum of per-example losses.
        return None, np.asarray(loss.backward()) * np.asarray(n, dtype=logits.dtype)

    grad, logits, _ = logits_gradient(model, x, dlogits_fn)
    return grad, logits


# -- geometry ---------------------------------------------------------------------------------------
def flat_norm(v: np.ndarray) -> np.ndarray:
    """Per-example L2 norm (float64), shaped to broadcast against v: (N, 1, 1, ...)."""
    n = np.sqrt((v.reshape(v.shape[0], -1).astype(np.float64) ** 2).sum(axis=1))
    return n.reshape((-1,) + (1,) * (v.ndim - 1))


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


def random_start_delta(shape, eps: float, norm: str, rng, dtype=np.float32) -> np.ndarray:
    """A random initial perturbation, uniform in the eps ball of ``norm`` ("inf" or "2").

    shape: (N, ...) -> array of that shape and ``dtype``. L-inf: U[-eps, eps] per coordinate.
    L2: uniform in the ball: normalized Gaussian direction times eps * U^(1/d), d = prod(shape[1:]).
    """
    rng = as_generator(rng)
    if norm == "inf":
        return rng.uniform(-eps, eps, size=shape).astype(dtype)
    n = shape[0]
    d = int(np.prod(shape[1:]))
    u = rng.standard_normal(shape)
    u /= np.maximum(flat_norm(u), TINY)
    radius = eps * rng.random(n) ** (1.0 / max(d, 1))
    return (u * radius.reshape((-1,) + (1,) * (len(shape) - 1))).astype(dtype)


def project(delta: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """Project each example of delta (N, ...) onto the ``norm`` ball of radius eps (in place).

    L-inf: clip to [-eps, eps]. L2: scale by min(1, eps / ||delta||_2) per example.
    """
    if norm == "inf":
        return np.clip(delta, -eps, eps, out=delta)
    factor = np.minimum(1.0, eps / np.maximum(flat_norm(delta), TINY))
    delta *= factor.astype(delta.dtype)
    return delta


def clip_(x, bounds):
    """Clip x to the valid range ``bounds`` = (low, high) in place (None: unchanged)."""
    return x if bounds is None else np.clip(x, bounds[0], bounds[1], out=x)


# -- results ----------------------------------------------------------------------------------------
def empty_outputs(x: np.ndarray):
    """The arrays an attack fills chunk by chunk: ``x_adv`` (x's shape and dtype) and
    ``pred_clean``, ``pred_adv``, ``labels`` ((N,) int64), uninitialized."""
    n = x.shape[0]
    return (np.empty_like(x), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
            np.empty(n, dtype=np.int64))


def make_result(x, x_adv, pred_clean, pred_adv, labels, target, attack, eps, norm, steps=None,
                info=None):
    """Assemble an ``AttackResult`` (success from the targeted / untargeted rule)."""
    success = pred_adv == target if target is not None else pred_adv != labels
    linf, l2 = perturbation_norms(x, x_adv)
    return AttackResult(x_adv=x_adv, success=success, pred_clean=pred_clean, pred_adv=pred_adv,
                        perturbation_linf=linf, perturbation_l2=l2, labels=labels,
                        target=target, steps=steps, attack=attack, eps=eps, norm=norm,
                        info={} if info is None else info)


# -- per-example objectives on the logits ------------------------------------------------------------
def margin(logits: np.ndarray, y: np.ndarray, target=None):
    """Per-example logit margin and the competing class.

    logits: (N, C); y: (N,) labels; target: None or (N,) targets.
    Untargeted: margin_i = z_{i,y} - max_{j != y} z_{i,j} (< 0 exactly when misclassified),
    other_i = that argmax. Targeted: margin_i = max_{j != t} z_{i,j} - z_{i,t} (< 0 exactly
    when predicted as t), other_i = that argmax. Returns (margin (N,) float64, other (N,) int).
    """
    z = logits.astype(np.float64)
    rows = np.arange(z.shape[0])
    cls = y if target is None else target
    rest = z.copy()
    rest[rows, cls] = -np.inf
    other = rest.argmax(axis=1)
    m = z[rows, cls] - z[rows, other]
    return (m if target is None else -m), other
