"""Robustness reports, figures and adversarial-training support.

* :func:`accuracy_vs_eps`, :func:`adversarial_confusion_matrix`: numbers.
* :func:`plot_accuracy_vs_eps`, :func:`plot_adversarial_grid`, :func:`plot_adversarial_pairs`,
  :func:`plot_perturbation`, :func:`plot_attack_comparison`, :func:`plot_minimal_norms`: PNG
  figures (matplotlib's object API, no pyplot; written to a
  temporary file in the target folder then moved into place with ``os.replace``).
* :func:`make_adversarial_batch`, :class:`AdversarialTraining`: adversarial training.

Passing an existing result: :func:`adversarial_confusion_matrix`, :func:`plot_adversarial_pairs`
(``result=``) and :func:`plot_adversarial_grid` (``results=``) take the ``AttackResult`` a
caller already has instead of running the attack again; it is checked against ``x`` (same
shape, and its recorded perturbation norms equal those of ``x_adv - x``) and against ``eps``
/ ``attack`` when those are given.

Images for display: one example is reshaped to ``image_shape`` when given (e.g. (28, 28) for
an MLP taking flat vectors); a (C, H, W) example with C in {1, 3} is shown as (H, W, C);
one-channel images are shown in gray. Values are clipped to [0, 1] for display.
"""
from __future__ import annotations

import numbers
from typing import Dict, Optional, Sequence

import numpy as np

from .._checks import as_generator, check_float_array
from .base import AttackResult, check_classes, check_eps, perturbation_norms
from .fgsm import fgsm
from .gradients import predict
from .pgd import pgd

from ..train.callbacks import Callback

__all__ = ["run_attack", "accuracy_vs_eps", "adversarial_confusion_matrix",
           "plot_accuracy_vs_eps", "plot_adversarial_grid", "plot_adversarial_pairs",
           "plot_perturbation", "plot_attack_comparison", "plot_minimal_norms",
           "make_adversarial_batch", "AdversarialTraining",
           "RobustValidation"]

_ATTACKS = ("fgsm", "pgd")


def run_attack(model, x, y, eps, attack: str = "fgsm", rng=None, **kw) -> AttackResult:
    """Run ``attack`` ("fgsm" or "pgd") at radius ``eps`` with keyword options ``kw``.

    For PGD, ``steps`` defaults to 10 and ``step_size`` to 2.5 * eps / steps (Madry et al.'s
    rule, so the iterate can cross the ball); ``rng`` is passed to PGD's random start.
    x: (N, ...), y: (N,) ints or None. Returns the attack's ``AttackResult``.
    """
    if attack not in _ATTACKS:
        raise ValueError(f"attack must be one of {_ATTACKS}, got {attack!r}")
    eps = check_eps(eps)
    if attack == "fgsm":
        return fgsm(model, x, y, eps=eps, **kw)
    kw = dict(kw)
    steps = kw.pop("steps", 10)
    step_size = kw.pop("step_size", None)
    if step_size is None:
        step_size = 2.5 * eps / max(int(steps), 1)
    return pgd(model, x, y, eps=eps, step_size=step_size, steps=steps, rng=rng, **kw)


def _check_xy(x, y):
    """x: a float (N, ...) array; y: (N,) int true labels, returned as an array."""
    check_float_array(x, "x")
    return check_classes(y, x.shape[0], "y")


def _check_result(result, x, eps=None, attack=None) -> AttackResult:
    """``result`` if it is an ``AttackResult`` of ``x`` (and of ``eps`` / ``attack`` when those
    are not None; a result with an empty ``attack`` name matches any), else TypeError /
    ValueError saying what does not match.

    Of x: x_adv has x's shape (N, ...), the per-example arrays have shape (N,), and the
    recorded L-inf / L2 norms equal those of x_adv - x (so it was not made from another x).
    """
    if not isinstance(result, AttackResult):
        raise TypeError(f"result must be an AttackResult, got {type(result).__name__}")
    n = x.shape[0]
    if np.shape(result.x_adv) != x.shape:
        raise ValueError(f"result does not match x: result.x_adv has shape {np.shape(result.x_adv)}, "
                         f"x has shape {x.shape}; pass the result of attacking this x")
    for name in ("pred_clean", "pred_adv", "perturbation_linf", "perturbation_l2"):
        if np.shape(getattr(result, name)) != (n,):
            raise ValueError(f"result does not match x: result.{name} has shape "
                             f"{np.shape(getattr(result, name))}, expected ({n},)")
    linf, l2 = perturbation_norms(x, result.x_adv)
    if not (np.allclose(linf, result.perturbation_linf, rtol=1e-6, atol=1e-9)
            and np.allclose(l2, result.perturbation_l2, rtol=1e-6, atol=1e-9)):
        raise ValueError("result does not match x: its recorded perturbation norms differ from "
                         "those of result.x_adv - x (was it made from another x?)")
    if eps is not None and not np.isclose(result.eps, check_eps(eps), rtol=1e-9, atol=0.0):
        raise ValueError(f"result was made with eps={result.eps:g}, not eps={eps:g}")
    if attack is not None and result.attack and result.attack != attack:
        raise ValueError(f"result was made by attack {result.attack!r}, not {attack!r}")
    return result


def _attack_or_result(model, x, y, eps, attack, rng, kw, result) -> AttackResult:
    """The ``AttackResult`` to report on: ``result`` checked against x (see
    :func:`_check_result`), or a fresh :func:`run_attack` ("fgsm" when ``attack`` is None)."""
    if result is None:
        if eps is None:
            raise ValueError("eps is needed to run the attack (or pass result=)")
        return run_attack(model, x, y, eps, attack or "fgsm", rng=rng, **kw)
    unused = sorted(list(kw) + (["rng"] if rng is not None else []))
    if unused:
        raise ValueError(f"result= was given, so no attack is run: the attack option(s) {unused} "
                         "would be ignored; drop them")
    return _check_result(result, x, eps, attack)


def accuracy_vs_eps(model, x, y, eps_list: Sequence[float], attack: str = "fgsm", rng=None,
                    **kw) -> Dict[float, float]:
    """Accuracy of ``model`` on adversarial versions of (x, y) for each eps.

    x: (N, ...) inputs, y: (N,) true labels; eps_list: radii in input units; attack: "fgsm"
    or "pgd" (options ``kw`` as in :func:`run_attack`; ``rng`` seeds PGD's random starts).
    Returns {eps: accuracy in [0, 1]}, in the order given; eps = 0 is the clean accuracy.
    """
    y = _check_xy(x, y)
    if attack not in _ATTACKS:
        raise ValueError(f"attack must be one of {_ATTACKS}, got {attack!r}")
    rng = as_generator(rng)
    out = {}
    clean = None
    for eps in eps_list:
        eps = check_eps(eps)
        if eps == 0:
            if clean is None:
                clean = float((predict(model, x, kw.get("batch_size", 512)) == y).mean())
            out[eps] = clean
        else:
            out[eps] = run_attack(model, x, y, eps, attack, rng=rng, **kw).accuracy(y)
    return out


def adversarial_confusion_matrix(model, x, y, eps: Optional[float], attack: Optional[str] = None,
                                 num_classes: Optional[int] = None, rng=None, *,
                                 result: Optional[AttackResult] = None, **kw) -> np.ndarray:
    """Confusion matrix under attack: M[i, j] = #examples of true class i predicted j on x_adv.

    x: (N, ...), y: (N,) true labels; eps, attack (default "fgsm"), kw as in :func:`run_attack`.
    num_classes: C (default: inferred from the labels and predictions). Returns (C, C) int64.
    result: an ``AttackResult`` of x already computed (e.g. by ``fgsm``): used instead of
    attacking again (eps and attack may then be None; when given they must match it).
    """
    y = _check_xy(x, y)
    res = _attack_or_result(model, x, y, eps, attack, rng, kw, result)
    c = int(max(y.max(initial=-1), res.pred_adv.max(initial=-1)) + 1) if num_classes is None \
        else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= c or res.pred_adv.max() >= c):
        raise ValueError(f"labels/predictions must lie in [0, {c - 1}] for num_classes={c}")
    return np.bincount(y * c + res.pred_adv, minlength=c * c).reshape(c, c).astype(np.int64)


# -- figures ------------------------------------------------------------------------------------
def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_atomic(fig, path) -> str:
    """Write ``fig`` as PNG to ``path`` atomically (``nnlite.viz.save_figure``)."""
    from ..viz import save_figure
    return save_figure(fig, path)


def _display(img, image_shape=None):
    """One example -> (H, W) or (H, W, 3) float array in [0, 1] for imshow."""
    a = np.asarray(img, dtype=np.float64)
    if image_shape is not None:
        a = a.reshape(image_shape)
    if a.ndim == 1:
        side = int(round(np.sqrt(a.size)))
        if side * side != a.size:
            raise ValueError(f"cannot display a flat example of size {a.size}; pass image_shape")
        a = a.reshape(side, side)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"cannot display an example of shape {np.shape(img)}; pass image_shape")
    return np.clip(a, 0.0, 1.0)


def _show(ax, img, image_shape, title=None, color="black"):
    a = _display(img, image_shape)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8, color=color)


def _name(c, class_names):
    return str(class_names[c]) if class_names is not None else str(int(c))


def plot_accuracy_vs_eps(results, path, title: str = "Accuracy under attack",
                         xlabel: str = "eps (input units)") -> str:
    """Accuracy-vs-eps curve(s) saved as a PNG at ``path``.

    results: {eps: accuracy} (one curve) or {label: {eps: accuracy}} (several, e.g.
    "FGSM", "PGD", "adv. trained"). Returns the path.
    """
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict {eps: acc} or {label: {eps: acc}}")
    curves = results if all(isinstance(v, dict) for v in results.values()) else {"": results}
    fig = _figure(5, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        eps = sorted(curve)
        ax.plot(eps, [curve[e] for e in eps], marker="o", label=label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if len(curves) > 1 or "" not in curves:
        ax.legend()
    fig.tight_layout()
    return _save_atomic(fig, path)


_MODEL_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:gray")
_ATTACK_STYLES = (("-", "o", 7), ("--", "s", 5), (":", "^", 4), ("-.", "D", 3))


def plot_attack_comparison(curves, path, title: str = "Accuracy under attack",
                           xlabel: str = "eps (input units)") -> str:
    """Accuracy vs eps of several models under several attacks, saved as a PNG at ``path``.

    curves: {model: {attack: {eps: accuracy}}}. Colour = model, line style and marker =
    attack (markers of decreasing size, hollow, so coinciding curves stay visible), legend
    outside the axes (off the data). Returns the path.
    """
    if not isinstance(curves, dict) or not curves or not all(isinstance(v, dict) and v for v in curves.values()):
        raise ValueError("curves must be a non-empty dict {model: {attack: {eps: accuracy}}}")
    attacks = list(dict.fromkeys(a for per in curves.values() for a in per))
    if len(curves) > len(_MODEL_COLOURS) or len(attacks) > len(_ATTACK_STYLES):
        raise ValueError(f"at most {len(_MODEL_COLOURS)} models and {len(_ATTACK_STYLES)} attacks per figure")
    fig = _figure(7, 3.8)
    ax = fig.add_axes([0.1, 0.14, 0.56, 0.76])
    for i, (model_name, per) in enumerate(curves.items()):
        for attack, curve in per.items():
            ls, marker, size = _ATTACK_STYLES[attacks.index(attack)]
            eps = sorted(curve)
            ax.plot(eps, [curve[e] for e in eps], color=_MODEL_COLOURS[i], linestyle=ls, marker=marker,
                    markersize=size, markerfacecolor="none", linewidth=1.6, label=f"{model_name}, {attack}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title="colour: model\nline: attack", title_fontsize=8)
    return _save_atomic(fig, path)


def plot_minimal_norms(norms_by_attack, path, title: str = "Minimal adversarial perturbations",
                       xlabel: str = "L2 norm of the perturbation (input units)") -> str:
    """Histograms (step outlines) of per-example minimal perturbation norms, e.g. from
    ``carlini_wagner`` and ``deepfool`` (``AttackResult.perturbation_l2`` of the successes).

    norms_by_attack: {attack: (K,) norms}. Returns the path.
    """
    if not isinstance(norms_by_attack, dict) or not norms_by_attack:
        raise ValueError("norms_by_attack must be a non-empty dict {attack: norms}")
    fig = _figure(7.5, 3.6)
    ax = fig.add_axes([0.08, 0.15, 0.55, 0.75])
    allv = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in norms_by_attack.values()])
    bins = np.linspace(0, max(float(allv.max()) if allv.size else 1.0, 1e-6), 30)
    for (name, v), colour in zip(norms_by_attack.items(), _MODEL_COLOURS):
        v = np.asarray(v, dtype=np.float64).ravel()
        ax.hist(v, bins=bins, histtype="step", linewidth=1.8, color=colour,
                label=f"{name}\nmedian {np.median(v):.3g}, {v.size} images" if v.size else f"{name}\n(none found)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _save_atomic(fig, path)


def _row_results(results, eps_list) -> list:
    """``results`` (None, a sequence aligned with eps_list, or a dict {eps: AttackResult})
    -> a list aligned with eps_list, None where no result is given."""
    if results is None:
        return [None] * len(eps_list)
    if isinstance(results, dict):
        given = {check_eps(e): r for e, r in results.items()}
        unknown = sorted(set(given) - set(eps_list))
        if unknown:
            raise ValueError(f"results has eps {unknown} not in eps_list {eps_list}")
        return [given.get(e) for e in eps_list]
    results = list(results)
    if len(results) != len(eps_list):
        raise ValueError(f"results must hold one entry (an AttackResult or None) per eps: "
                         f"{len(eps_list)} eps, {len(results)} results")
    return results


def plot_adversarial_grid(model, x, y, eps_list: Sequence[float], path, attack: Optional[str] = None,
                          class_names=None, image_shape=None, rng=None, *, results=None, **kw) -> str:
    """Grid of adversarial images: rows = eps (first eps may be 0: clean), cols = examples.

    x: (K, ...) the examples to show, y: (K,) true labels. Each cell is titled with the true
    label and the prediction on the perturbed image (red when wrong). Options as :func:`run_attack`
    (attack default "fgsm").
    results: AttackResults of x already computed, used instead of attacking again: a dict
    {eps: result} or a sequence aligned with eps_list (None entries are attacked as usual).
    Each is checked against x, its row's eps and ``attack`` (default: the first result's).
    """
    y = _check_xy(x, y)
    eps_list = [check_eps(e) for e in eps_list]
    if not eps_list or x.shape[0] == 0:
        raise ValueError("need at least one eps and one example")
    given = _row_results(results, eps_list)
    attack = attack or next((r.attack for r in given if r is not None and r.attack), "fgsm")
    rng = as_generator(rng)
    rows, cols = len(eps_list), x.shape[0]
    fig = _figure(1.3 * cols + 0.8, 1.9 * rows)
    for r, eps in enumerate(eps_list):
        if given[r] is not None:
            res = _check_result(given[r], x, eps, attack)
            xa, pred = res.x_adv, res.pred_adv
        elif eps == 0:
            xa, pred = x, predict(model, x)
        else:
            res = run_attack(model, x, y, eps, attack, rng=rng, **kw)
            xa, pred = res.x_adv, res.pred_adv
        for c in range(cols):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            ok = pred[c] == y[c]
            _show(ax, xa[c], image_shape,
                  f"true {_name(y[c], class_names)}\npred {_name(pred[c], class_names)}",
                  "black" if ok else "red")
            if c == 0:
                ax.set_ylabel(f"eps={eps:g}", fontsize=8)
    fig.suptitle(f"{attack.upper()} examples (rows: eps; titles: true label / prediction, red when wrong)",
                 fontsize=9)
    fig.tight_layout()
    return _save_atomic(fig, path)


def plot_adversarial_pairs(model, x, y, eps: Optional[float], path, attack: Optional[str] = None,
                           max_pairs: int = 8, class_names=None, image_shape=None, rng=None, *,
                           result: Optional[AttackResult] = None, **kw) -> str:
    """Pairs "correct before / wrong after": clean image (true label) above its adversarial
    version (adversarial prediction), for the first ``max_pairs`` such examples of (x, y).

    x: (N, ...), y: (N,) true labels; eps, attack (default "fgsm"), kw as in :func:`run_attack`.
    result: an ``AttackResult`` of x already computed (e.g. by ``pgd``): used instead of
    attacking again (eps and attack may then be None, read from it; when given they must
    match it). Returns the path; raises ValueError when no example flips at this eps.
    """
    y = _check_xy(x, y)
    res = _attack_or_result(model, x, y, eps, attack, rng, kw, result)
    eps, attack = res.eps, attack or res.attack or "attack"
    idx = np.flatnonzero((res.pred_clean == y) & (res.pred_adv != y))[:int(max_pairs)]
    if idx.size == 0:
        raise ValueError(f"no example is correct before and wrong after the attack at eps={eps}")
    fig = _figure(1.4 * idx.size + 0.4, 3.7)
    for k, i in enumerate(idx):
        _show(fig.add_subplot(2, idx.size, k + 1), x[i], image_shape,
              f"true {_name(y[i], class_names)}")
        _show(fig.add_subplot(2, idx.size, idx.size + k + 1), res.x_adv[i], image_shape,
              f"adv {_name(res.pred_adv[i], class_names)}", "red")
    fig.suptitle(f"correct before / wrong after {attack.upper()} (eps={eps:g})", fontsize=9)
    fig.tight_layout()
    return _save_atomic(fig, path)


def magnify(delta: np.ndarray) -> np.ndarray:
    """Rescale one perturbation to [0, 1] for display: (d - min) / (max - min) (0.5 if flat)."""
    d = np.asarray(delta, dtype=np.float64)
    lo, hi = d.min(), d.max()
    return np.full_like(d, 0.5) if hi - lo <= 0 else (d - lo) / (hi - lo)


def plot_perturbation(x, x_adv, path, labels=None, image_shape=None, max_examples: int = 8) -> str:
    """Rows: clean image, the perturbation x_adv - x magnified (rescaled to [0, 1] per
    example) and the adversarial image, for up to ``max_examples`` examples.

    x, x_adv: (K, ...) same shape. labels: optional (K,) strings/ints used as column titles.
    """
    check_float_array(x, "x")
    if np.shape(x_adv) != x.shape:
        raise ValueError(f"x_adv must have x's shape {x.shape}, got {np.shape(x_adv)}")
    k = min(int(max_examples), x.shape[0])
    if k == 0:
        raise ValueError("need at least one example")
    fig = _figure(1.4 * k + 0.6, 4.4)
    for i in range(k):
        delta = np.asarray(x_adv[i], dtype=np.float64) - x[i]
        title = None if labels is None else str(labels[i])
        _show(fig.add_subplot(3, k, i + 1), x[i], image_shape, title)
        _show(fig.add_subplot(3, k, k + i + 1), magnify(delta), image_shape,
              f"|d|inf={np.abs(delta).max():.3f}")
        _show(fig.add_subplot(3, k, 2 * k + i + 1), x_adv[i], image_shape)
    fig.suptitle("clean / perturbation (magnified) / adversarial", fontsize=9)
    fig.tight_layout()
    return _save_atomic(fig, path)


# -- adversarial training -------------------------------------------------------------------------
def make_adversarial_batch(model, xb, yb, attack: str = "fgsm", eps: float = 0.1,
                           ratio: float = 1.0, rng=None, **attack_kw):
    """Replace a fraction of a training batch by adversarial examples.

    xb: (B, ...) inputs in the valid range; yb: (B,) true labels; attack: "fgsm" or "pgd"
    (options ``attack_kw`` as in :func:`run_attack`); ratio in [0, 1]: fraction of the batch
    replaced, round(ratio * B) examples chosen at random with ``rng`` (all when ratio = 1).
    The adversarial examples are generated in EVAL mode (batch norm uses its running
    statistics, which are not updated; dropout off) with the TRUE labels; the model's
    previous per-module training modes, parameter gradients and caches are then restored
    (the attack leaves the model as it found it), so the training step that follows runs in
    training mode as before.
    Returns (xb_new, yb): a new array (xb is not modified) and the unchanged labels.
    """
    yb = _check_xy(xb, yb)
    eps = check_eps(eps)
    if not isinstance(ratio, numbers.Real) or not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be a number in [0, 1], got {ratio!r}")
    rng = as_generator(rng)
    b = xb.shape[0]
    k = int(round(ratio * b))
    xb_new = np.array(xb, copy=True)
    if k == 0 or eps == 0:
        return xb_new, yb
    idx = np.arange(b) if k == b else np.sort(rng.choice(b, size=k, replace=False))
    res = run_attack(model, xb[idx], yb[idx], eps, attack, rng=rng, **attack_kw)
    xb_new[idx] = res.x_adv
    return xb_new, yb


class AdversarialTraining(Callback):
    """Trainer callback: train on adversarial batches (Goodfellow et al.; Madry et al.).

    attack: "fgsm" or "pgd"; eps: radius (input units); ratio: fraction of each batch replaced
    (1.0 = pure adversarial training, 0.5 = half clean / half adversarial); start_epoch:
    epochs of clean training before the attack kicks in; rng: Generator or seed for the
    subset choice and PGD starts (None: use ``trainer.rng`` if the trainer has one);
    attack_kw: options of the attack (e.g. steps=7, step_size=0.01, clip=(0, 1)).
    FGSM with a random start ("FGSM-RS", Wong et al. 2020) is ``attack="pgd", steps=1,
    step_size=1.25 * eps, random_start=True``: a uniform start in the eps box, one signed
    step of 1.25 eps, projection back onto the box.
    ramp_epochs: eps grows linearly, batch by batch, from 0 to ``eps`` over the first
    ``ramp_epochs`` adversarial epochs (a curriculum; 0 = full eps at once): at eps 0.3 on
    MNIST, training from scratch against the full radius can get stuck at chance level. The
    attack's ``step_size`` is scaled by the same factor, so steps stay proportional to eps.
    ``current_eps`` holds the radius of the last batch.
    ``on_train_batch_begin`` returns the batch from :func:`make_adversarial_batch`
    (generated in eval mode, training mode restored afterwards). Other hooks do nothing.
    """

    def __init__(self, attack: str = "fgsm", eps: float = 0.1, ratio: float = 1.0,
                 start_epoch: int = 0, rng=None, ramp_epochs: float = 0, **attack_kw):
        if attack not in _ATTACKS:
            raise ValueError(f"attack must be one of {_ATTACKS}, got {attack!r}")
        self.attack = attack
        self.eps = check_eps(eps)
        if not isinstance(ratio, numbers.Real) or not 0 <= ratio <= 1:
            raise ValueError(f"ratio must be a number in [0, 1], got {ratio!r}")
        self.ratio = float(ratio)
        self.start_epoch = int(start_epoch)
        if not isinstance(ramp_epochs, numbers.Real) or isinstance(ramp_epochs, bool) or ramp_epochs < 0:
            raise ValueError(f"ramp_epochs must be a number >= 0, got {ramp_epochs!r}")
        self.ramp_epochs = float(ramp_epochs)
        self.rng = None if rng is None else as_generator(rng)
        self.attack_kw = attack_kw
        self.epoch = 0
        self.current_eps = 0.0

    def _generator(self, trainer):
        if self.rng is None:
            trng = getattr(trainer, "rng", None)
            self.rng = trng if isinstance(trng, np.random.Generator) else as_generator(None)
        return self.rng

    def ramp_factor(self, epoch: int, batch: int, steps_per_epoch: int) -> float:
        """min(1, adversarial epochs done / ramp_epochs), counting finished batches of this epoch."""
        if self.ramp_epochs == 0:
            return 1.0
        done = (epoch - self.start_epoch) + batch / max(int(steps_per_epoch), 1)
        return float(min(1.0, max(done, 0.0) / self.ramp_epochs))

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Remember the epoch (for ``start_epoch`` and the ramp)."""
        self.epoch = int(epoch)

    def on_train_batch_begin(self, trainer, batch: int, xb: np.ndarray, yb: np.ndarray):
        """Return ``(xb_adv, yb)`` (or the batch unchanged before ``start_epoch``)."""
        if self.epoch < self.start_epoch:
            return xb, yb
        f = self.ramp_factor(self.epoch, batch, getattr(trainer, "steps_per_epoch", 1) or 1)
        self.current_eps = self.eps * f
        kw = dict(self.attack_kw)
        if f < 1.0 and "step_size" in kw:
            kw["step_size"] = kw["step_size"] * f
        return make_adversarial_batch(trainer.model, xb, yb, self.attack, self.current_eps, self.ratio,
                                      rng=self._generator(trainer), **kw)


class RobustValidation(Callback):
    """Trainer callback: accuracy under attack on a held-out set, added to every epoch's logs.

    x: (N, ...) held-out inputs in the valid range (not the training data); y: (N,) int labels;
    attack ("fgsm" or "pgd"), eps and attack_kw (e.g. steps=10, step_size=0.01) as in
    :func:`run_attack`; key: the name of the logs entry (default ``"val_robust_acc"``), recorded
    in the trainer's History; every: evaluate every ``every`` epochs (NaN in between).
    The attack's random starts come from a Generator made from ``seed`` afresh at every
    evaluation, so all epochs face the same starts and their values are comparable.
    Runs in ``on_validation_end`` (eval mode; parameters, gradients and batch-norm statistics
    untouched), so ``EarlyStopping(key, mode="max", restore_best_weights=True)`` placed after it
    stops adversarial training at its most robust epoch: the guard against "catastrophic
    overfitting" of FGSM training (Wong et al. 2020), where robust accuracy collapses within an
    epoch while clean accuracy rises.
    """

    def __init__(self, x, y, attack: str = "pgd", eps: float = 0.1, key: str = "val_robust_acc",
                 every: int = 1, seed: int = 0, **attack_kw):
        if attack not in _ATTACKS:
            raise ValueError(f"attack must be one of {_ATTACKS}, got {attack!r}")
        self.y = _check_xy(x, y)
        self.x = x
        self.attack, self.eps, self.attack_kw = attack, check_eps(eps), attack_kw
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if not isinstance(every, numbers.Integral) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.key, self.every, self.seed = key, int(every), int(seed)
        self.last = None   # the last AttackResult

    def on_validation_end(self, trainer, epoch: int, logs) -> None:
        """Attack the held-out set with the current weights; ``logs[key]`` = accuracy under attack."""
        if (epoch + 1) % self.every:
            logs[self.key] = float("nan")
            return
        self.last = run_attack(trainer.model, self.x, self.y, self.eps, self.attack,
                               rng=np.random.default_rng(self.seed), **self.attack_kw)
        logs[self.key] = self.last.accuracy(self.y)
