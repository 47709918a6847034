"""Numerical gradient checking, public: prove a hand-written backward pass right.

Method: centred differences in float64, g_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h), h = 1e-6.

Relative error (the number every report shows), over the checked coordinates i:

    rel_err = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, 1)

i.e. the worst absolute disagreement measured against the gradient's own scale, and plain
absolute error when that scale is below 1. Unlike the element-wise |a - n| / (|a| + |n|) it
does not blow up on coordinates (or whole tensors, e.g. a conv bias feeding batch norm) whose
true gradient is 0 and whose numeric value is rounding noise (~1e-9), yet any coordinate off
by more than ``tol`` times the gradient's scale fails. Default tolerance: 1e-6 (float64, smooth inputs away from kinks
of ReLU/max; centred differences are then accurate to ~1e-9 here).

Big tensors are checked sparsely: ``max_coords`` coordinates drawn without replacement from
an explicit Generator. For a module the scalar is L = sum(out * R) with a fixed random R
(or a loss you pass), so every output element contributes.

Typical use on a layer you wrote::

    from nnlite.gradcheck import check_module
    report = check_module(MyLayer(...), x, seed=0)   # x: float64 input batch
    print(report)            # a table: tensor, shape, checked, max rel error, status
    assert report.ok
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from ._checks import as_generator, check_choice

DEFAULT_H = 1e-6
DEFAULT_TOL = 1e-6
_SKIPPED = ("frozen", "not computed")   # row notes of tensors listed but not checked


def relative_error(analytic, numeric) -> float:
    """max|a - n| / max(max|a|, max|n|, 1) (see the module docstring)."""
    a = np.asarray(analytic, dtype=np.float64).ravel()
    n = np.asarray(numeric, dtype=np.float64).ravel()
    if a.shape != n.shape:
        raise ValueError(f"analytic and numeric gradients differ in size: {a.size} vs {n.size}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(n).max(), 1.0)
    return float(np.abs(a - n).max() / scale)


def sample_coords(shape, max_coords: Optional[int], rng) -> np.ndarray:
    """Flat indices to check: all of them, or ``max_coords`` drawn without replacement."""
    size = int(np.prod(shape))
    if max_coords is None or size <= max_coords:
        return np.arange(size)
    return np.sort(as_generator(rng).choice(size, size=max_coords, replace=False))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, coords=None, h: float = DEFAULT_H):
    """Centred-difference gradient of the scalar ``f()`` w.r.t. ``x`` at flat ``coords``.

    ``f`` takes no argument and must read ``x`` (which is perturbed in place and restored).
    x: float64 array. Returns the numeric gradient values at ``coords`` (shape (len(coords),)).
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical gradients need float64 to be meaningful, got {x.dtype}")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so it can be perturbed in place")
    coords = np.arange(flat.size) if coords is None else np.asarray(coords)
    out = np.empty(len(coords))
    for k, i in enumerate(coords):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        out[k] = (fp - fm) / (2 * h)
    return out


@dataclass
class GradcheckRow:
    name: str
    shape: tuple
    checked: int
    total: int
    max_rel_error: float
    tol: float
    note: str = ""

    @property
    def skipped(self) -> bool:
        """Listed but not checked: a frozen parameter, or an input gradient the module does
        not compute (``needs_input_grad=False``)."""
        return self.note in _SKIPPED

    @property
    def ok(self) -> bool:
        return self.skipped or self.max_rel_error <= self.tol


@dataclass
class GradcheckReport:
    """Result of a gradient check: one row per tensor; ``ok`` when every row passes."""
    title: str
    rows: List[GradcheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def max_error(self) -> float:
        return max((r.max_rel_error for r in self.rows if not r.skipped), default=0.0)

    def __str__(self) -> str:
        head = ("tensor", "shape", "checked", "max rel err", "status")
        body = [(r.name, str(r.shape), f"{r.checked}/{r.total}",
                 "-" if r.skipped else f"{r.max_rel_error:.2e}",
                 r.note or ("ok" if r.ok else f"FAIL (tol {r.tol:.0e})")) for r in self.rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        lines = [self.title, fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*b) for b in body]
        return "\n".join(lines)

    def assert_ok(self):
        if not self.ok:
            raise AssertionError("gradient check failed:\n" + str(self))
        return self


def check_gradients(f: Callable[[], float], tensors: Dict[str, np.ndarray],
                    analytic: Dict[str, np.ndarray], max_coords: Optional[int] = 200, rng=0,
                    h: float = DEFAULT_H, tol: float = DEFAULT_TOL, title: str = "gradient check"):
    """Compare analytic gradients with centred differences for several tensors at once.

    f: () -> float, recomputes the scalar from the CURRENT contents of ``tensors`` (float64,
    perturbed in place); analytic[name]: dL/d tensors[name], same shape.
    """
    rng = as_generator(rng)
    report = GradcheckReport(title)
    for name, x in tensors.items():
        a = np.asarray(analytic[name])
        if a.shape != x.shape:
            raise ValueError(f"analytic gradient for '{name}' has shape {a.shape}, tensor has {x.shape}")
        coords = sample_coords(x.shape, max_coords, rng)
        num = numerical_gradient(f, x, coords, h)
        err = relative_error(a.reshape(-1)[coords], num)
        report.rows.append(GradcheckRow(name, x.shape, len(coords), x.size, err, tol))
    return report


def _rng_modules(module):
    """Every submodule owning a Generator ``rng`` (Dropout...), so draws can be replayed."""
    return [m for _, m in module.named_modules() if isinstance(getattr(m, "rng", None), np.random.Generator)]


def check_module(module, x, mode: str = "train", loss=None, target=None, max_coords: Optional[int] = 200,
                 seed=0, h: float = DEFAULT_H, tol: float = DEFAULT_TOL, copy_module: bool = True,
                 verbose: bool = False) -> GradcheckReport:
    """One-call check of a layer or model: the input gradient and every parameter gradient.

    module: a ``Module``; x: input batch (cast to float64). mode: "train" or "eval" (batch norm,
    dropout). The module is deep-copied and cast to float64 (``copy_module=False`` checks it in
    place; it must then already be float64). Random layers (those with a Generator ``rng``)
    are replayed so every forward pass sees the same draws. The scalar is
    ``loss.forward(out, target)`` if a loss object is given, else sum(out * R), R ~ N(0, 1).
    Frozen parameters are listed as "frozen" and not checked; so is the input, as "not
    computed", when ``backward`` returns None (a first layer with ``needs_input_grad=False``).
    Returns a ``GradcheckReport``.
    """
    check_choice(mode, "mode", ("train", "eval"))
    rng = as_generator(seed)
    m = copy.deepcopy(module) if copy_module else module
    m.astype(np.float64)
    m.train(mode == "train")
    x = np.array(x, dtype=np.float64, copy=True)
    replay = [(mod, copy.deepcopy(mod.rng.bit_generator.state)) for mod in _rng_modules(m)]

    def run():
        for mod, state in replay:
            mod.rng.bit_generator.state = copy.deepcopy(state)
        return m.forward(x)

    out = run()
    if loss is None:
        proj = rng.standard_normal(out.shape)

        def scalar_and_grad(o):
            return float(np.sum(o * proj)), proj
    else:
        def scalar_and_grad(o):
            return loss.forward(o, target), loss.backward()

    m.zero_grad()
    _, dout = scalar_and_grad(out)
    dx = m.backward(dout.copy())
    params = list(m.named_parameters())
    analytic = {} if dx is None else {"input": dx.copy()}
    tensors = {} if dx is None else {"input": x}
    for name, p in params:
        if p.trainable:
            analytic[name] = p.grad.copy()
            tensors[name] = p.data

    def f():
        return scalar_and_grad(run())[0]

    report = check_gradients(f, tensors, analytic, max_coords, rng, h, tol,
                             title=f"gradient check: {type(module).__name__} ({mode} mode)")
    if dx is None:
        report.rows.insert(0, GradcheckRow("input", x.shape, 0, x.size, 0.0, tol, note="not computed"))
    for name, p in params:
        if not p.trainable:
            report.rows.append(GradcheckRow(name, p.shape, 0, p.size, 0.0, tol, note="frozen"))
    if verbose:
        print(report)
    return report
