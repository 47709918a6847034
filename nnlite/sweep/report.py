"""Summaries of a sweep: mean ± std over seeds, Markdown tables and figures.

Figures use matplotlib's object API (``matplotlib.figure.Figure`` drawn by
``FigureCanvasAgg``), never pyplot, and matplotlib is imported only when a
figure is made.
"""
from __future__ import annotations

import json
import math
import numbers
import re
from pathlib import Path

import numpy as np

from .._checks import check_path, check_str
from .._io import atomic_open
from .results import latest_rows
from .study import SEED_KEY, Study, canonical_json, _value_key

__all__ = ["summarize", "summary_table", "ablation_tables", "plot_ablation", "write_report",
           "choose_xscale"]

# Parameter names whose natural axis is logarithmic (matched on "_"-separated words).
_LOG_NAMES = re.compile(r"(^|_)(lr|learning_rate|reg|regularization|weight_decay|wd|l2|lambda)(_|$)")
# ... unless the name is about a schedule of it (lr_decay = 0.99 is a factor, not a rate)
_NOT_LOG_NAMES = re.compile(r"(^|_)(decay|gamma|factor|step|steps|warmup|epoch|epochs|patience)(_|$)")
_MAX_SERIES = 8  # grid plots: at most this many lines, else the marginal mean is drawn


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _check_rows(rows) -> list:
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__iter__"):
        raise TypeError(f"rows must be a list of result rows (dicts), got {type(rows).__name__}")
    rows = list(rows)
    for r in rows:
        if not isinstance(r, dict) or not {"trial_id", "config", "status"} <= set(r):
            raise TypeError(f"each row must be a dict with trial_id, config, status, metrics; got {r!r:.100}")
    return rows


def _check_study(study):
    if not isinstance(study, Study):
        raise TypeError(f"study must be a nnlite.sweep.Study, got {type(study).__name__}")


def _setting_of(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != SEED_KEY}


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _fmt_value(v) -> str:
    if isinstance(v, float):
        text = format(v, "g")
    elif isinstance(v, str):
        text = v
    elif isinstance(v, (list, dict)):
        text = json.dumps(v, separators=(",", ":"))
    else:
        text = str(v)
    return text.replace("|", "\\|")


def _fmt_stat(entry, fmt) -> str:
    if entry is None or entry["n"] == 0:
        return "—"
    if entry["n"] == 1:
        return format(entry["mean"], fmt)
    return f"{format(entry['mean'], fmt)} ± {format(entry['std'], fmt)}"


def _fmt_n(entry) -> str:
    if entry is None:
        return "0"
    failed = entry.get("n_failed", 0)
    return f"{entry['n']} ({failed} failed)" if failed else str(entry["n"])


def _md_table(header, body) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def _rows_in_study(rows, study) -> list:
    ids = {t.trial_id for t in study.trials()}
    return [r for r in rows if r["trial_id"] in ids]


def _stats(values, ddof) -> tuple:
    arr = np.asarray(values, dtype=np.float64)
    n = arr.size
    if n == 0:
        return math.nan, math.nan
    mean = float(arr.mean())
    std = float(arr.std(ddof=ddof)) if n > ddof else math.nan
    return mean, std


# ----------------------------------------------------------------------------------------
# summaries
# ----------------------------------------------------------------------------------------
def summarize(rows, metric: str, ddof: int = 1) -> list:
    """Mean and standard deviation of ``metric`` over seeds, per setting.

    Rows are grouped by their configuration without ``seed``; only ``"ok"`` rows
    contribute values (several rows of one trial count once, the latest ``"ok"``
    one).  ``std`` uses ``ddof`` (default 1, the sample standard deviation) and
    is ``nan`` when there are not more than ``ddof`` values.

    Returns a list, in order of first appearance, of dicts
    ``{"config", "mean", "std", "n", "n_failed", "seeds", "values"}``.

    Raises ``ValueError`` if an ``"ok"`` row lacks ``metric`` and ``TypeError``
    if its value is not a real number.
    """
    rows = _check_rows(rows)
    check_str(metric, "metric")
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise ValueError(f"ddof must be an int >= 0, got {ddof!r}")
    groups = {}
    for row in latest_rows(rows).values():
        setting = _setting_of(row["config"])
        key = canonical_json(setting)
        g = groups.setdefault(key, {"config": setting, "seeds": [], "values": [], "n_failed": 0})
        if row["status"] != "ok":
            g["n_failed"] += 1
            continue
        metrics = row.get("metrics") or {}
        if metric not in metrics:
            raise ValueError(f"metric {metric!r} is not in the results of trial {row['trial_id']}; "
                             f"it has {sorted(metrics)}")
        value = metrics[metric]
        if not _is_number(value) and value is not None:
            raise TypeError(f"metric {metric!r} must be a real number, trial {row['trial_id']} "
                            f"has {type(value).__name__} {value!r}")
        g["values"].append(math.nan if value is None else float(value))
        g["seeds"].append(row.get("seed", row["config"].get(SEED_KEY)))
    out = []
    for g in groups.values():
        mean, std = _stats(g["values"], int(ddof))
        out.append({"config": g["config"], "mean": mean, "std": std, "n": len(g["values"]),
                    "n_failed": g["n_failed"], "seeds": g["seeds"], "values": g["values"]})
    return out


def _summary_index(summary) -> dict:
    return {canonical_json(s["config"]): s for s in summary}


def summary_table(rows, metric: str, study=None, fmt: str = ".4g") -> str:
    """Markdown table of every setting: its varied parameters, ``metric`` mean ± std, n.

    With a ``study`` only its trials are shown, in study order, with a column per
    varied parameter; without one, a column per parameter that differs between
    the settings found in ``rows``.
    """
    rows = _check_rows(rows)
    check_str(metric, "metric")
    if study is not None:
        _check_study(study)
        rows = _rows_in_study(rows, study)
    summary = summarize(rows, metric)
    if study is not None:
        index = _summary_index(summary)
        entries = [(s, index.get(canonical_json(s))) for s in study.settings()]
        params = study.varied_params
    else:
        entries = [(s["config"], s) for s in summary]
        keys = sorted({k for cfg, _ in entries for k in cfg})
        params = [k for k in keys
                  if len({_value_key(cfg.get(k)) for cfg, _ in entries}) > 1]
    header = params + [f"{metric} (mean ± std)", "n"]
    body = [[_fmt_value(cfg.get(p)) for p in params] + [_fmt_stat(e, fmt), _fmt_n(e)]
            for cfg, e in entries]
    return _md_table(header, body)


def _pooled(entries, ddof=1) -> dict:
    """Pool the per-seed values of several summary entries into one entry."""
    values = [v for e in entries for v in e["values"]]
    mean, std = _stats(values, ddof)
    return {"mean": mean, "std": std, "n": len(values), "n_failed": sum(e["n_failed"] for e in entries)}


def _param_points(rows, study, param, metric):
    """Per value of ``param``: list of (value, entry or None, is_baseline)."""
    summary = summarize(_rows_in_study(rows, study), metric)
    index = _summary_index(summary)
    points = []
    for value in study.param_values(param):
        if study.kind == "ablation":
            entry = index.get(canonical_json(study.ablation_setting(param, value)))
            points.append((value, entry, study.is_baseline_value(param, value)))
        else:
            vkey = _value_key(value)
            matched = [s for s in summary if _value_key(s["config"].get(param)) == vkey]
            points.append((value, _pooled(matched) if matched else None, False))
    return points


def ablation_tables(rows, study, metric: str, fmt: str = ".4g") -> dict:
    """One Markdown table per varied parameter: ``{param: table}``.

    For an ablation study the table of ``param`` lists each of its values (the
    baseline value marked ``(baseline)``) with ``metric`` as mean ± std over
    seeds and the number of finished seeds ``n``::

        | reg | test_acc (mean ± std) | n |
        |---|---|---|
        | 0 (baseline) | 0.4098 ± 0.0012 | 3 |

    For a grid study the values are pooled over the other grid parameters and
    the seeds (the header says so).  A study that varies nothing gives ``{}``.
    """
    rows = _check_rows(rows)
    _check_study(study)
    check_str(metric, "metric")
    stat = "mean ± std" if study.kind == "ablation" else "mean ± std over other params and seeds"
    tables = {}
    for param in study.varied_params:
        body = []
        for value, entry, is_base in _param_points(rows, study, param, metric):
            label = _fmt_value(value) + (" (baseline)" if is_base else "")
            body.append([label, _fmt_stat(entry, fmt), _fmt_n(entry)])
        tables[param] = _md_table([param, f"{metric} ({stat})", "n"], body)
    return tables


# ----------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------
def choose_xscale(param: str, values) -> tuple:
    """Pick the x-axis scale for plotting a metric against ``param``.

    Returns ``("category", None)`` when a value is not a real number,
    ``("log", None)`` or ``("symlog", linthresh)`` for parameters named like a
    learning rate or regularization strength (``lr``, ``learning_rate``, ``reg``,
    ``reg_coeff``, ``weight_decay``, ``wd``, ``l2``, ...; but not ``lr_decay`` or
    ``lr_step``: symlog when ``0`` is among the values) or for positive values
    spanning at least two decades, else ``("linear", None)``.
    """
    check_str(param, "param")
    values = list(values)
    if not values or not all(_is_number(v) and math.isfinite(v) for v in values):
        return "category", None
    positive = [float(v) for v in values if v > 0]
    if any(v < 0 for v in values) or not positive:
        return "linear", None
    name = param.lower()
    by_name = (_LOG_NAMES.search(name) is not None
               and _NOT_LOG_NAMES.search(name.replace("weight_decay", "")) is None)
    if len(positive) == len(values):
        if by_name or (len(positive) > 1 and max(positive) / min(positive) >= 100.0):
            return "log", None
        return "linear", None
    # zeros present (e.g. reg = 0.0): symlog keeps 0 on the axis
    if by_name or (len(positive) > 1 and max(positive) / min(positive) >= 100.0):
        return "symlog", min(positive)
    return "linear", None


def _series(rows, study, param, metric):
    """Lines to draw: list of (label or None, [(value, entry, is_baseline), ...])."""
    if study.kind != "grid" or len(study.varied_params) == 1:
        return [(None, _param_points(rows, study, param, metric))]
    others = [p for p in study.varied_params if p != param]
    combos = 1
    for p in others:
        combos *= len(study.grid[p])
    if combos > _MAX_SERIES:
        return [("mean over " + ", ".join(others), _param_points(rows, study, param, metric))]
    index = _summary_index(summarize(_rows_in_study(rows, study), metric))
    lines = {}
    for setting in study.settings():
        label = ", ".join(f"{p}={_fmt_value(setting[p])}" for p in others)
        lines.setdefault(label, []).append((setting[param], index.get(canonical_json(setting)), False))
    return list(lines.items())


def plot_ablation(rows, study, param: str, metric: str, path):
    """Plot ``metric`` against the values of ``param`` and save the figure to ``path``.

    Points are the mean over seeds, with ±std error bars where a setting has more
    than one finished seed; the baseline point of an ablation is ringed.  The
    x-axis is chosen by :func:`choose_xscale` (log for ``lr``/``reg``/... or wide
    positive ranges, categorical for non-numeric values).  For a grid study, one
    line is drawn per combination of the other grid parameters (the pooled mean if
    there are more than 8).  Returns the ``matplotlib.figure.Figure``.

    Raises ``ValueError`` if no finished trial has a value for the plot.
    """
    rows = _check_rows(rows)
    _check_study(study)
    check_str(metric, "metric")
    check_path(path)
    check_str(param, "param")
    if param not in study.varied_params:
        raise ValueError(f"the study does not vary {param!r}; it varies {study.varied_params}")

    series = _series(rows, study, param, metric)
    if not any(e is not None and e["n"] > 0 for _, pts in series for _, e, _ in pts):
        raise ValueError(f"no finished ('ok') trials with metric {metric!r} to plot against {param!r}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    all_values = study.param_values(param)
    scale, linthresh = choose_xscale(param, all_values)
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    categories = {_value_key(v): i for i, v in enumerate(all_values)}
    repeated = False
    for label, points in series:
        pts = [(v, e, b) for v, e, b in points if e is not None and e["n"] > 0]
        if scale != "category":
            pts.sort(key=lambda p: float(p[0]))
        xs = [categories[_value_key(v)] if scale == "category" else float(v) for v, _, _ in pts]
        ys = [e["mean"] for _, e, _ in pts]
        errs = [e["std"] if e["n"] > 1 and math.isfinite(e["std"]) else 0.0 for _, e, _ in pts]
        repeated = repeated or any(e["n"] > 1 for _, e, _ in pts)
        ax.errorbar(xs, ys, yerr=errs if any(errs) else None, marker="o", capsize=3, label=label)
        for x, y, (_, _, is_base) in zip(xs, ys, pts):
            if is_base:
                ax.plot([x], [y], marker="o", markersize=13, markerfacecolor="none",
                        markeredgecolor="black", linestyle="none", label="baseline")
    if scale == "category":
        ax.set_xticks(range(len(all_values)), [_fmt_value(v) for v in all_values])
    elif scale == "symlog":
        ax.set_xscale("symlog", linthresh=linthresh)
    else:
        ax.set_xscale(scale)
    ax.set_xlabel(param)
    ax.set_ylabel(f"{metric} (mean ± std over seeds)" if repeated else metric)
    ax.set_title(f"{study.name}: {metric} vs {param}")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if any(labels):
        ax.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------
def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "param"


def write_report(rows, study, metric: str, out_dir, fmt: str = ".4g") -> list:
    """Write ``tables.md`` and one ``<param>.png`` per varied parameter into ``out_dir``.

    ``tables.md`` holds the study description, one table per varied parameter
    (:func:`ablation_tables`), for a grid (or a baseline-only study) the table of
    all settings, and the failed trials if any.  Returns the list of written paths,
    ``tables.md`` first.  A parameter with no finished trial gets no figure.
    """
    rows = _check_rows(rows)
    _check_study(study)
    check_str(metric, "metric")
    out_dir = check_path(out_dir, "out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows_in_study(rows, study)
    latest = latest_rows(rows)
    n_ok = sum(r["status"] == "ok" for r in latest.values())
    failed = [r for r in latest.values() if r["status"] != "ok"]

    kind = {"ablation": "one-at-a-time ablations around the baseline",
            "grid": "full grid (cartesian product)", "baseline": "baseline only"}[study.kind]
    parts = [f"# {study.name}: {metric}\n",
             f"Study: {kind}; seeds {study.seeds}; {n_ok} of {len(study)} trials finished ok"
             + (f", {len(failed)} failed" if failed else "") + ".\n",
             f"Baseline: `{canonical_json(study.baseline)}`\n",
             "Values are the mean ± sample std over seeds; n = finished seeds.\n"]
    for param, table in ablation_tables(rows, study, metric, fmt=fmt).items():
        parts.append(f"## {param}\n\n{table}")
    if study.kind != "ablation":
        parts.append(f"## All settings\n\n{summary_table(rows, metric, study=study, fmt=fmt)}")
    if failed:
        lines = [f"- `{r['trial_id']}` seed={r.get('seed')}: {str(r.get('error')).splitlines()[0]}"
                 for r in failed[:20]]
        if len(failed) > 20:
            lines.append(f"- ... and {len(failed) - 20} more")
        parts.append("## Failed trials\n\n" + "\n".join(lines) + "\n")
    tables_path = out_dir / "tables.md"
    with atomic_open(tables_path, "w") as fh:                       # whole or absent, like every output
        fh.write("\n".join(parts))

    paths = [tables_path]
    for param in study.varied_params:
        series = _series(rows, study, param, metric)
        if not any(e is not None and e["n"] > 0 for _, pts in series for _, e, _ in pts):
            continue  # nothing finished for this parameter
        png = out_dir / f"{_safe_filename(param)}.png"
        fig = plot_ablation(rows, study, param, metric, png)
        fig.clear()
        paths.append(png)
    return paths
