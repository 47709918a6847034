"""Figures of experiments a student reads at a glance: ablations and attack comparisons.

* :func:`plot_ablation`: one parameter varied, the metric per value (evenly spaced, labelled
  with the values tried, so log-spaced grids never overlap their tick labels), mean with
  ±std error bars when seeds repeat, the baseline ringed, an optional reference series (e.g.
  the course report's own numbers), values printed at the points, and a y range of at least
  ``min_span`` so a 0.1-point difference is not blown up to full height.
* :func:`plot_attack_curves`: accuracy against attack strength for several models and
  attacks: colour = model, line style and marker = attack, hollow markers for the later
  attacks so a curve lying on another stays visible, legends outside the axes.

Both return a ``matplotlib.figure.Figure`` and save it atomically when given ``path``.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Optional, Sequence

import numpy as np

from ._common import as_1d_numbers, check_figsize, finish, new_figure

__all__ = ["plot_ablation", "plot_attack_curves"]

_MAIN = "#1f77b4"
_REF = "#7f7f7f"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"))


def _fmt_value(v) -> str:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def _check_str(v, name, allow_none=True):
    if v is None and allow_none:
        return v
    if not isinstance(v, str):
        raise TypeError(f"{name} must be a str{' or None' if allow_none else ''}, got {type(v).__name__}")
    return v


def plot_ablation(values: Sequence, means, *, stds=None, n=None, baseline=None, reference=None,
                  reference_label: str = "course report", label: str = "nnlite",
                  param_label: str = "value", metric_label: str = "test accuracy",
                  percent: bool = True, min_span: float = 0.05, title: Optional[str] = None,
                  path=None, figsize=None, dpi: float = 100):
    """The metric for each value of one varied parameter.

    values: the k values tried (numbers or strings), shown evenly spaced in this order.
    means: (k,) the metric per value (NaN = missing). stds: (k,) std over seeds (NaN or 0 = none);
    n: (k,) seeds per value (error bars drawn where n > 1). baseline: index of the baseline value.
    reference: (k,) another series, e.g. the course report's numbers (NaN/None = not reported).
    percent: show fractions in [0, 1] as percentages. min_span: the smallest y range, in the
    metric's units (0.05 = 5 points of accuracy), centred on the data.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise TypeError(f"values must be a non-empty sequence of the values tried, got {values!r}")
    k = len(values)
    m = as_1d_numbers(means, "means")
    if m.size != k:
        raise ValueError(f"means must have one value per value tried ({k}), got {m.size}")
    s = np.zeros(k) if stds is None else np.nan_to_num(as_1d_numbers(stds, "stds"), nan=0.0)
    cnt = np.ones(k) if n is None else as_1d_numbers(n, "n")
    ref = None if reference is None else as_1d_numbers([np.nan if r is None else r for r in reference],
                                                       "reference")
    for arr, nm in ((s, "stds"), (cnt, "n")) + (((ref, "reference"),) if ref is not None else ()):
        if arr.size != k:
            raise ValueError(f"{nm} must have one value per value tried ({k}), got {arr.size}")
    if (s < 0).any():
        raise ValueError("stds must be >= 0")
    if baseline is not None and not (isinstance(baseline, (int, np.integer)) and 0 <= baseline < k):
        raise ValueError(f"baseline must be an index in [0, {k}), got {baseline!r}")
    if not min_span >= 0:
        raise ValueError(f"min_span must be >= 0, got {min_span!r}")
    for v, nm in ((reference_label, "reference_label"), (label, "label"), (param_label, "param_label"),
                  (metric_label, "metric_label")):
        _check_str(v, nm, allow_none=False)
    _check_str(title, "title")

    scale = 100.0 if percent else 1.0
    unit = " (%)" if percent else ""
    x = np.arange(k, dtype=float)
    y, e = m * scale, np.where(cnt > 1, s, 0.0) * scale
    fig = new_figure(check_figsize(figsize) or (5.6, 3.9), dpi)
    ax = fig.add_subplot()
    repeated = bool((cnt > 1).any())
    seeds = int(cnt.max()) if repeated else 1
    main_label = label + (f" (mean ± std over {seeds} seeds)" if repeated else "")
    handles = [ax.errorbar(x, y, yerr=e if repeated else None, color=_MAIN, marker="o", capsize=4,
                           linewidth=1.8, label=main_label, zorder=3)]
    digits = 2 if percent else 4
    for xi, yi, ei in zip(x, y, e):
        if np.isfinite(yi):
            ax.annotate(f"{yi:.{digits}f}", (xi, yi + ei), textcoords="offset points", xytext=(0, 11),
                        ha="center", fontsize=8, color=_MAIN)
    pts = [y - e, y + e]
    if ref is not None and np.isfinite(ref).any():
        r = ref * scale
        handles += ax.plot(x, r, color=_REF, linestyle="--", marker="x", markersize=7, label=reference_label,
                           zorder=2)
        pts.append(r)
    if baseline is not None and np.isfinite(y[baseline]):
        handles += ax.plot([x[baseline]], [y[baseline]], linestyle="none", marker="o", markersize=14,
                           markerfacecolor="none", markeredgecolor="black", label="baseline", zorder=4)
    allv = np.concatenate([p[np.isfinite(p)] for p in pts]) if pts else np.array([])
    if allv.size:
        lo, hi = float(allv.min()), float(allv.max())
        span = max(hi - lo, min_span * scale)
        mid = (lo + hi) / 2
        pad = 0.18 * span
        ax.set_ylim(mid - span / 2 - pad, mid + span / 2 + pad)
    ax.set_xticks(x, [_fmt_value(v) for v in values])
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_xlabel(f"{param_label} (the values tried, evenly spaced)")
    ax.set_ylabel(metric_label + unit)
    ax.grid(True, axis="y", alpha=0.3)
    text = title or f"{metric_label.capitalize()} vs {param_label.lower()}"
    ax.set_title("\n".join(textwrap.fill(line, 58) for line in text.split("\n")), fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return finish(fig, path)


def plot_attack_curves(curves, *, xlabel: str = "attack strength epsilon", ylabel: str = "accuracy",
                       percent: bool = True, title: Optional[str] = None, path=None, figsize=None,
                       dpi: float = 100):
    """Accuracy against attack strength: colour = model, line style + marker = attack.

    curves: sequence of mappings with keys ``model`` (str), ``attack`` (str), ``x`` and ``y``
    (equal-length sequences; x sorted or not). Models get colours and attacks line styles in
    order of first appearance; markers of the second and later attacks are hollow so a curve
    lying exactly on another stays visible. Two legends (models, attacks) sit right of the axes.
    """
    if isinstance(curves, Mapping) or not isinstance(curves, Sequence) or not curves:
        raise TypeError("curves must be a non-empty sequence of {'model', 'attack', 'x', 'y'} mappings")
    models, attacks, data = [], [], []
    for i, c in enumerate(curves):
        if not isinstance(c, Mapping) or not {"model", "attack", "x", "y"} <= set(c):
            raise ValueError(f"curves[{i}] must be a mapping with keys model, attack, x, y; got {c!r}")
        xv = as_1d_numbers(c["x"], f"curves[{i}]['x']", allow_nan=False)
        yv = as_1d_numbers(c["y"], f"curves[{i}]['y']")
        if xv.size != yv.size or xv.size == 0:
            raise ValueError(f"curves[{i}]: x and y must have the same non-zero length, got {xv.size} and {yv.size}")
        mdl, att = _check_str(c["model"], "model", False), _check_str(c["attack"], "attack", False)
        models += [mdl] if mdl not in models else []
        attacks += [att] if att not in attacks else []
        order = np.argsort(xv, kind="stable")
        data.append((mdl, att, xv[order], yv[order]))
    if len(models) > len(_COLORS) or len(attacks) > len(_STYLES):
        raise ValueError(f"at most {len(_COLORS)} models and {len(_STYLES)} attacks, got "
                         f"{len(models)} and {len(attacks)}")
    _check_str(title, "title")
    scale = 100.0 if percent else 1.0
    fig = new_figure(check_figsize(figsize) or (7.0, 4.0), dpi)
    ax = fig.add_subplot()
    for mdl, att, xv, yv in data:
        ci, ai = models.index(mdl), attacks.index(att)
        ls, mk = _STYLES[ai]
        color = _COLORS[ci]
        ax.plot(xv, yv * scale, color=color, linestyle=ls, marker=mk, markersize=6 + ai,
                markerfacecolor=color if ai == 0 else "white", markeredgecolor=color,
                linewidth=2.2 - 0.4 * ai, zorder=3 + ai)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    lo = min(float(np.nanmin(d[3])) for d in data) * scale
    hi = max(float(np.nanmax(d[3])) for d in data) * scale
    top = 100.0 if percent else 1.0
    ax.set_ylim(max(0.0, lo - 0.05 * top) if lo >= 0 else lo - 0.05 * top, min(top, hi + 0.05 * top) if hi <= top
                else hi + 0.05 * top)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=11)
    from matplotlib.lines import Line2D

    model_handles = [Line2D([], [], color=_COLORS[i], linewidth=2.2, label=m) for i, m in enumerate(models)]
    attack_handles = [Line2D([], [], color="black", linestyle=_STYLES[i][0], marker=_STYLES[i][1],
                             markerfacecolor="black" if i == 0 else "white", label=a)
                      for i, a in enumerate(attacks)]
    fig.legend(handles=model_handles, title="model (colour)", fontsize=8, title_fontsize=8,
               loc="outside right upper", frameon=False)
    fig.legend(handles=attack_handles, title="attack (line style)", fontsize=8, title_fontsize=8,
               loc="outside right lower", frameon=False)
    return finish(fig, path)
