"""Worst-case robust accuracy (an AutoAttack-style ensemble) and gradient-masking checks.

:func:`robust_accuracy` runs the attacks in order, each only on the points every earlier attack
failed to break (a point counts as robust only if the model classifies it correctly and every
attack fails), and records which attack broke each point and the accuracy after each attack,
like AutoAttack's log. Default: APGD-CE, APGD-DLR (100 steps each) and the Square attack
(5000 queries), L-inf.

:func:`gradient_masking_checks` (run by default with every evaluation) tests the symptoms of
gradient masking (Athalye et al. 2018; Carlini et al. 2019, "On evaluating adversarial
robustness"), on up to ``check_n`` of the points:

1. accuracy does not rise with eps (APGD-CE at 1/4, 1/2, 1 and 2 times eps);
2. at a very large eps (the whole valid range) the accuracy reaches 0;
3. more steps and restarts never raise the accuracy (APGD-CE with 2x steps, 2 restarts);
4. the gradient-free attack does not break more than ``tol_free`` of the points that all
   gradient attacks before it missed (if it does, the gradients are masked).

Each check passes within a tolerance ``tol`` (sampling noise of random starts).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .._checks import as_generator
from .apgd import apgd
from .base import check_batch_size, check_classes, check_eps, check_images, check_norm, check_positive_int
from .fgsm import fgsm
from .gradients import predict
from .pgd import pgd
from .square import square_attack

__all__ = ["ENSEMBLE_ATTACKS", "RobustReport", "robust_accuracy", "gradient_masking_checks"]

ENSEMBLE_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-ce-l2", "square", "fgsm", "pgd")
_GRADIENT_FREE = ("square",)


@dataclass
class RobustReport:
    """The log of a worst-case evaluation (arrays over the N evaluated points).

    clean_accuracy, robust_accuracy: fractions of the N points. broken_by: (N,) str, "clean"
    for points misclassified without attack, the name of the first attack that broke the point,
    or "" for robust points. accuracy_after: {attack: accuracy after it and all earlier ones}.
    broken: {attack: points it broke}. seconds: {attack: wall time}. x_adv: (N, ...) the
    adversarial points (x where no attack succeeded). masking: the gradient-masking checks
    (see :func:`gradient_masking_checks`) or None. individual: {attack: accuracy of that attack
    run alone on all N points} when asked for (``individual=True``), else None.
    """
    n: int
    eps: float
    norm: str
    attacks: tuple
    clean_accuracy: float
    robust_accuracy: float
    broken_by: np.ndarray
    accuracy_after: dict
    broken: dict
    seconds: dict
    x_adv: np.ndarray
    settings: dict = field(default_factory=dict)
    masking: dict = None
    individual: dict = None

    def to_dict(self) -> dict:
        """JSON-friendly summary (no arrays but the counts)."""
        d = {k: getattr(self, k) for k in ("n", "eps", "norm", "clean_accuracy", "robust_accuracy",
                                           "accuracy_after", "broken", "seconds", "settings",
                                           "individual")}
        d["attacks"] = list(self.attacks)
        d["masking"] = self.masking
        return d

    def log(self) -> str:
        """The AutoAttack-style log as text."""
        lines = [f"clean accuracy: {100 * self.clean_accuracy:.2f}% ({self.n} points)"]
        for a in self.attacks:
            lines.append(f"after {a:>10}: {100 * self.accuracy_after[a]:.2f}% robust "
                         f"({self.broken[a]} broken, {self.seconds[a]:.1f} s)")
        lines.append(f"robust accuracy (worst case over {', '.join(self.attacks)}): "
                     f"{100 * self.robust_accuracy:.2f}%")
        if self.masking is not None:
            for name, c in self.masking["checks"].items():
                lines.append(f"masking check {name}: {'pass' if c['passed'] else 'FLAGGED'} ({c['detail']})")
        return "\n".join(lines)


def _run_one(model, name, x, y, eps, norm, steps, restarts, n_queries, clip, rng, batch_size):
    if name in ("apgd-ce", "apgd-dlr"):
        return apgd(model, x, y, eps=eps, loss=name[5:], norm=norm, steps=steps, restarts=restarts,
                    clip=clip, rng=rng, batch_size=batch_size)
    if name == "apgd-ce-l2":
        return apgd(model, x, y, eps=eps, loss="ce", norm="2", steps=steps, restarts=restarts,
                    clip=clip, rng=rng, batch_size=batch_size)
    if name == "square":
        if norm != "inf":
            raise ValueError("the Square attack here is L-inf only; drop it from attacks for norm='2'")
        return square_attack(model, x, y, eps=eps, n_queries=n_queries, clip=clip, rng=rng,
                             batch_size=batch_size)
    if name == "fgsm":
        return fgsm(model, x, y, eps=eps, clip=clip, batch_size=batch_size)
    return pgd(model, x, y, eps=eps, step_size=2.5 * eps / steps, steps=steps, norm=norm,
               restarts=restarts, clip=clip, rng=rng, batch_size=batch_size)


def robust_accuracy(model, x, y, eps, attacks=("apgd-ce", "apgd-dlr", "square"), *, norm="inf",
                    steps: int = 100, restarts: int = 1, n_queries: int = 5000, clip=(0.0, 1.0),
                    rng=None, batch_size: int = 512, checks: bool = True, check_n: int = 200,
                    tol: float = 0.02, tol_free: float = 0.03, individual: bool = False,
                    verbose: bool = False) -> RobustReport:
    """Worst-case accuracy of ``model`` on (x, y) over ``attacks`` at radius ``eps``.

    x: (N, ...) float, finite, in ``clip``'s range; y: (N,) int true labels; eps: radius in
    input units; attacks: names from ``ENSEMBLE_ATTACKS``, run in order, each only on the
    points still robust; norm: "inf" or "2"; steps / restarts: of APGD (and PGD); n_queries:
    Square's budget; rng: Generator or seed (one stream for every attack); checks: also run
    :func:`gradient_masking_checks` (on up to ``check_n`` points) and attach them to the report;
    individual: also run every attack alone on all points (its own accuracy; costs more).
    Returns a :class:`RobustReport`.
    """
    bounds = check_images(x, clip)
    y = check_classes(y, x.shape[0], "y")
    eps = check_eps(eps)
    norm = check_norm(norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    n_queries = check_positive_int(n_queries, "n_queries")
    batch_size = check_batch_size(batch_size)
    check_n = check_positive_int(check_n, "check_n")
    if isinstance(attacks, str) or not attacks:
        raise ValueError(f"attacks must be a non-empty sequence of names from {ENSEMBLE_ATTACKS}, got {attacks!r}")
    attacks = tuple(attacks)
    bad = [a for a in attacks if a not in ENSEMBLE_ATTACKS]
    if bad or len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks must be distinct names from {ENSEMBLE_ATTACKS}, got {attacks!r}")
    rng = as_generator(rng)
    n = x.shape[0]
    pred = predict(model, x, batch_size)
    robust = pred == y
    broken_by = np.where(robust, "", "clean").astype(object)
    x_adv = np.array(x, copy=True)
    after, broken, seconds = {}, {}, {}
    for name in attacks:
        idx = np.flatnonzero(robust)
        t0 = time.perf_counter()
        if idx.size:
            res = _run_one(model, name, x[idx], y[idx], eps, norm, steps, restarts, n_queries, clip,
                           rng, batch_size)
            hit = idx[res.success]
            x_adv[hit] = res.x_adv[res.success]
            robust[hit] = False
            broken_by[hit] = name
            broken[name] = int(hit.size)
        else:
            broken[name] = 0
        seconds[name] = time.perf_counter() - t0
        after[name] = float(robust.mean())
        if verbose:
            print(f"  after {name}: {100 * after[name]:.2f}% robust ({broken[name]} broken, "
                  f"{seconds[name]:.1f} s)", flush=True)
    rep = RobustReport(n=n, eps=eps, norm=norm, attacks=attacks, clean_accuracy=float((pred == y).mean()),
                       robust_accuracy=float(robust.mean()), broken_by=broken_by, accuracy_after=after,
                       broken=broken, seconds=seconds, x_adv=x_adv,
                       settings={"steps": steps, "restarts": restarts, "n_queries": n_queries,
                                 "clip": None if bounds is None else list(bounds)})
    if individual:
        rep.individual = {}
        for name in attacks:
            res = _run_one(model, name, x, y, eps, norm, steps, restarts, n_queries, clip, rng, batch_size)
            rep.individual[name] = res.accuracy(y)
    if checks:
        rep.masking = gradient_masking_checks(model, x, y, eps, report=rep, norm=norm, steps=steps,
                                              clip=clip, rng=rng, batch_size=batch_size, n=check_n,
                                              tol=tol, tol_free=tol_free)
    return rep


def gradient_masking_checks(model, x, y, eps, *, report: RobustReport = None, norm="inf",
                            steps: int = 100, clip=(0.0, 1.0), rng=None, batch_size: int = 512,
                            n: int = 200, tol: float = 0.02, tol_free: float = 0.03) -> dict:
    """The four gradient-masking checks of the module docstring.

    x, y, eps, norm, clip as in :func:`robust_accuracy`; report: its result (needed for check
    4; without it check 4 is skipped); steps: APGD-CE steps of checks 1-3 (check 3 doubles
    them and uses 2 restarts); n: the first n points are used for checks 1-3 (a stratified or
    shuffled x is the caller's business); tol: tolerance of checks 1-3; tol_free: of check 4.
    Returns {"n": points used, "flagged": bool, "checks": {name: {"passed", "detail", values}}}.
    """
    bounds = check_images(x, clip)
    y = check_classes(y, x.shape[0], "y")
    eps = check_eps(eps)
    norm = check_norm(norm)
    n = min(check_positive_int(n, "n"), x.shape[0])
    rng = as_generator(rng)
    xs, ys = x[:n], y[:n]
    checks = {}

    def acc(e, st=steps, rs=1):
        if e == 0:
            return float((predict(model, xs, batch_size) == ys).mean())
        return apgd(model, xs, ys, eps=e, loss="ce", norm=norm, steps=st, restarts=rs, clip=clip,
                    rng=rng, batch_size=batch_size).accuracy(ys)

    grid = [0.0, eps / 4, eps / 2, eps, 2 * eps]
    curve = [acc(e) for e in grid]
    rises = [(grid[i], grid[i + 1]) for i in range(len(grid) - 1) if curve[i + 1] > curve[i] + tol]
    checks["monotone_in_eps"] = {
        "passed": not rises, "eps": grid, "accuracy": curve,
        "detail": "APGD-CE accuracy " + ", ".join(f"{a:.3f}@{e:g}" for e, a in zip(grid, curve))
                  + ("" if not rises else f"; rises between {rises}")}
    if bounds is not None:
        span = bounds[1] - bounds[0]
        big = span if norm == "inf" else span * float(np.sqrt(np.prod(x.shape[1:])))
    else:
        big = 1e3 * max(eps, 1.0)
    a_big = acc(big)
    checks["zero_at_large_eps"] = {"passed": a_big <= tol, "eps": big, "accuracy": a_big,
                                   "detail": f"APGD-CE accuracy {a_big:.3f} at eps {big:g} (expected ~0)"}
    a_base = curve[3]
    a_strong = acc(eps, 2 * steps, 2)
    checks["more_steps_restarts"] = {
        "passed": a_strong <= a_base + tol, "accuracy": a_base, "accuracy_stronger": a_strong,
        "detail": f"APGD-CE {steps} steps x1: {a_base:.3f}, {2 * steps} steps x2 restarts: {a_strong:.3f}"}
    if report is not None:
        free = [a for a in report.attacks if a in _GRADIENT_FREE]
        if report.individual is not None and free and len(free) < len(report.attacks):
            a_free = min(report.individual[a] for a in free)
            a_grad = min(v for a, v in report.individual.items() if a not in free)
            checks["gradient_free_alone_not_better"] = {
                "passed": a_free >= a_grad - tol_free, "accuracy_gradient_free": a_free,
                "accuracy_best_gradient": a_grad,
                "detail": f"alone: gradient-free {a_free:.3f}, best gradient attack {a_grad:.3f}"}
        if free:
            grad_before = [a for a in report.attacks[:report.attacks.index(free[0])]]
            by_free = sum(report.broken[a] for a in free) / report.n
            checks["gradient_free_not_better"] = {
                "passed": by_free <= tol_free, "fraction_broken_only_by_gradient_free": by_free,
                "detail": (f"{', '.join(free)} broke {100 * by_free:.2f}% of the points that "
                           f"{', '.join(grad_before) or 'no gradient attack'} missed"
                           + ("" if by_free <= tol_free else ": the gradients are likely masked"))}
    return {"n": n, "flagged": not all(c["passed"] for c in checks.values()), "checks": checks}
