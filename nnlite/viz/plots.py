"""Figures for training runs, evaluation and experiments (matplotlib, Agg canvas, no pyplot).

Every function returns a ``matplotlib.figure.Figure`` and, when ``path`` is given, also
writes it there atomically (PNG for ``.png``; see :func:`nnlite.viz.save_figure`). Figures
are never registered with pyplot, so no window opens and nothing needs closing; display
one in Jupyter by leaving it as the last expression of a cell, or save it.

``dpi`` (default 100) sets the resolution of both the figure and the saved file, so a
saved PNG is ``figsize * dpi`` pixels.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Optional, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from nnlite.metrics import _as_confusion, _names

from .._checks import check_int
from ._common import (as_1d_numbers, check_figsize, finish, new_figure, show_image,
                      to_display_images)

__all__ = ["plot_history", "plot_confusion_matrix", "plot_image_grid", "plot_curve",
           "plot_bar", "plot_image_rows"]

_TRAIN_COLOR = "#1f77b4"
_VAL_COLOR = "#d62728"
_WRONG_COLOR = "#d62728"


def _check_str_or_none(v, name):
    if v is not None and not isinstance(v, str):
        raise TypeError(f"{name} must be a str or None, got {type(v).__name__}")
    return v


# ----------------------------------------------------------------------------- history

#: How metric names read on axes and titles ("acc" -> "accuracy").
METRIC_LABELS = {"loss": "loss", "acc": "accuracy", "lr": "learning rate", "top5_acc": "top-5 accuracy",
                 "train_acc": "training accuracy"}


def metric_label(name: str) -> str:
    """A metric key as a reader says it: "acc" -> "accuracy", "val_acc" -> "validation accuracy"."""
    if name.startswith("val_"):
        return "validation " + metric_label(name[4:])
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    words = name.split("_")
    return " ".join("accuracy" if w == "acc" else w for w in words)


def plot_history(history, metrics=("loss", "acc"), path=None, *, title: Optional[str] = None,
                 figsize=None, dpi: float = 100, mark_epoch: Optional[int] = None,
                 mark_label: str = "restored"):
    """Training and validation curves per epoch, one subplot per metric.

    Parameters
    ----------
    history : Mapping[str, sequence of float]
        Per-epoch values, e.g. ``{"loss": [...], "val_loss": [...], "acc": [...],
        "val_acc": [...], "lr": [...]}``. An object with a mapping attribute ``.history``
        is accepted too. Curves may have different lengths; NaN values leave gaps.
    metrics : str or sequence of str
        Names to plot. For each name ``m`` the subplot shows ``history[m]`` ("train") and
        ``history["val_" + m]`` ("validation"), whichever exist; at least one must.
        A subplot named ``"lr"`` uses a log y axis when all values are positive.
    path : str or os.PathLike, optional
        Where to save the figure (parent directories are created).
    title : str, optional
        Figure title.
    figsize : (float, float), optional
        Inches; default ``(4 * len(metrics), 3.2)``.
    dpi : float
        Resolution.
    mark_epoch : int, optional
        An epoch (1-based) to mark with a dashed vertical line and a ring on the validation
        curve, e.g. the epoch whose weights ``EarlyStopping(restore_best_weights=True)`` restored.
    mark_label : str
        Legend text of the mark, followed by "epoch k".

    Returns
    -------
    matplotlib.figure.Figure
        Epochs run along x starting at 1, integer ticks; axes and titles name the metrics in
        words ("accuracy", not "acc").
    """
    if not isinstance(history, Mapping) and isinstance(getattr(history, "history", None), Mapping):
        history = history.history
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a mapping of metric name -> per-epoch values, "
                        f"got {type(history).__name__}")
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one metric, got an empty sequence")
    for m in metrics:
        if not isinstance(m, str):
            raise TypeError(f"metrics must be strings, got {m!r}")
    _check_str_or_none(title, "title")
    _check_str_or_none(mark_label, "mark_label")
    if mark_epoch is not None:
        mark_epoch = check_int(mark_epoch, "mark_epoch", 1)
    curves = []
    for m in metrics:
        pair = []
        for key, label, color in ((m, "train", _TRAIN_COLOR), ("val_" + m, "validation", _VAL_COLOR)):
            if key in history:
                vals = as_1d_numbers(history[key], f"history[{key!r}]")
                if vals.size == 0:
                    raise ValueError(f"history[{key!r}] is empty; expected one value per epoch")
                pair.append((vals, label, color))
        if not pair:
            raise ValueError(f"metric {m!r} not found: expected key {m!r} or {'val_' + m!r} in history, "
                             f"got keys {sorted(map(str, history))}")
        curves.append((m, pair))

    figsize = check_figsize(figsize) or (4.0 * len(metrics), 3.2)
    fig = new_figure(figsize, dpi)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (m, pair) in zip(axes, curves):
        for vals, label, color in pair:
            epochs = np.arange(1, vals.size + 1)
            ax.plot(epochs, vals, color=color, label=label,
                    marker="o" if vals.size <= 30 else None, markersize=3, linewidth=1.5)
        if m == "lr" and all((v[np.isfinite(v)] > 0).all() for v, _, _ in pair):
            ax.set_yscale("log")
        if mark_epoch is not None:
            ax.axvline(mark_epoch, color="0.35", linestyle="--", linewidth=1,
                       label=f"{mark_label}: epoch {mark_epoch}")
            vals, _, color = pair[-1]       # ring the validation value (else the train value)
            if mark_epoch <= vals.size and np.isfinite(vals[mark_epoch - 1]):
                ax.plot([mark_epoch], [vals[mark_epoch - 1]], linestyle="none", marker="o", markersize=9,
                        markerfacecolor="none", markeredgecolor=color, markeredgewidth=1.5)
        n_epochs = max(v.size for v, _, _ in pair)
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric_label(m))
        ax.set_title(metric_label(m))
        if n_epochs <= 12:
            ax.set_xticks(np.arange(1, n_epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    # one legend for all panels, below them: never on top of a curve
    entries = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=len(entries),
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


# ----------------------------------------------------------------------------- confusion matrix

def plot_confusion_matrix(cm, class_names: Optional[Sequence[str]] = None, normalize: bool = False,
                          path=None, *, title: Optional[str] = None, cmap: str = "Blues",
                          annotate: Optional[bool] = None, figsize=None, dpi: float = 100):
    """Heat map of a confusion matrix (rows = true class, columns = predicted class).

    Parameters
    ----------
    cm : array-like, shape (C, C)
        Non-negative counts, e.g. from :func:`nnlite.metrics.confusion_matrix`.
    class_names : sequence of str, optional
        C distinct names for the tick labels (default "0", "1", ...). Column labels are
        rotated 45 degrees.
    normalize : bool
        If True, each row is divided by its sum (the per-class recall is on the diagonal);
        rows with no samples stay 0. Cells then show fractions with 2 decimals, else counts.
    path : str or os.PathLike, optional
        Where to save the figure.
    title : str, optional
        Axes title (default "Confusion matrix", plus "(row-normalized)" when normalizing).
    cmap : str
        Matplotlib colormap name.
    annotate : bool, optional
        Write values in the cells; default True for C <= 30. Text is white on dark cells
        and black on light ones (chosen from the cell colour's luminance).
    figsize, dpi
        Figure size in inches (default grows with C) and resolution.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cm = _as_confusion(cm)
    c = cm.shape[0]
    names = _names(class_names, c)
    _check_str_or_none(title, "title")
    if annotate is None:
        annotate = c <= 30
    if normalize:
        row = cm.sum(axis=1, keepdims=True).astype(np.float64)
        vals = np.zeros(cm.shape, dtype=np.float64)
        np.divide(cm, row, out=vals, where=row != 0)
        vmax = 1.0
    else:
        vals = cm
        vmax = max(float(cm.max()), 1.0)
    if title is None:
        title = "Confusion matrix" + (" (row-normalized)" if normalize else "")

    longest = max(len(n) for n in names)
    side = min(max(3.5, 0.42 * c + 1.5), 24.0)
    label_room = min(0.07 * longest, 2.5)
    figsize = check_figsize(figsize) or (side + label_room + 0.8, side + label_room)
    fig = new_figure(figsize, dpi)
    ax = fig.subplots()
    im = ax.imshow(vals, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if not normalize:
        cbar.locator = MaxNLocator(integer=True)
        cbar.update_ticks()
    tick_fs = 9 if c <= 12 else max(5.0, 9 - 0.15 * (c - 12))
    ax.set_xticks(np.arange(c), labels=names, fontsize=tick_fs, rotation=45, ha="right",
                  rotation_mode="anchor")
    ax.set_yticks(np.arange(c), labels=names, fontsize=tick_fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if annotate:
        cell_fs = 9 if c <= 10 else max(4.0, 9 - 0.25 * (c - 10))
        rgba = im.cmap(im.norm(vals))
        lum = 0.2126 * rgba[..., 0] + 0.7152 * rgba[..., 1] + 0.0722 * rgba[..., 2]
        integer_counts = not normalize and (np.issubdtype(cm.dtype, np.integer)
                                            or np.all(cm == np.round(cm)))
        for i in range(c):
            for j in range(c):
                v = vals[i, j]
                text = f"{v:.2f}" if normalize else (f"{int(round(v))}" if integer_counts else f"{v:.3g}")
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_fs,
                        color="white" if lum[i, j] < 0.45 else "black")
    return finish(fig, path)


# ----------------------------------------------------------------------------- image grids

def _labels_or_none(y, n, name):
    if y is None:
        return None
    arr = np.asarray(y)
    if arr.ndim == 2:   # scores -> predicted labels
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} as scores must be numeric, got dtype {arr.dtype}")
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be labels of shape (N,) (or scores (N, C)), got shape {arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one label per image ({n}), got {arr.shape[0]}")
    if n and arr.min() < 0:
        raise ValueError(f"{name} holds label {int(arr.min())}; labels must be >= 0")
    return arr.astype(np.int64)


def plot_image_grid(images, true_labels=None, pred_labels=None, class_names=None,
                    only_misclassified: bool = True, max_images: int = 25, ncols: int = 5, path=None,
                    title: Optional[str] = None, *, channels_last: Optional[bool] = None, rng=None,
                    dpi: float = 100):
    """A grid of images titled with their true / predicted labels.

    Parameters
    ----------
    images : ndarray
        Float NCHW in [0, 1] (C = 1 grayscale or C = 3 RGB; values outside are clipped for
        display), or integer NHWC in [0, 255] (e.g. uint8 as loaded), or (N, H, W) grayscale.
        ``channels_last`` overrides the layout rule.
    true_labels, pred_labels : array-like of int, shape (N,), optional
        ``pred_labels`` may also be scores (N, C) (argmax is taken).
    class_names : sequence of str, optional
        Names for the labels (labels must then be < len(class_names)); default the numbers.
    only_misclassified : bool
        When both label arrays are given (default True), show only images with
        ``pred != true``; if there are none, the figure says so.
    max_images : int
        At most this many images (the first ones, or a random subset when ``rng`` is given).
    ncols : int
        Columns of the grid.
    path : str or os.PathLike, optional
        Where to save the figure.
    title : str, optional
        Figure title (default: "misclassified: shown of total" when filtering).
    rng : numpy.random.Generator or int, optional
        If given, the shown images are a random subset instead of the first ones.
    dpi : float
        Resolution (each cell is about 1.5 x 1.75 inches).

    Returns
    -------
    matplotlib.figure.Figure
        Each image is titled "true: X / pred: Y" (two lines when long); wrong
        predictions are titled in red, correct ones in black.
    """
    imgs = to_display_images(images, channels_last=channels_last)
    n = imgs.shape[0]
    yt = _labels_or_none(true_labels, n, "true_labels")
    yp = _labels_or_none(pred_labels, n, "pred_labels")
    max_images = check_int(max_images, "max_images")
    ncols = check_int(ncols, "ncols")
    _check_str_or_none(title, "title")
    names = None
    if class_names is not None:
        if isinstance(class_names, (str, bytes)):
            raise TypeError("class_names must be a sequence of names, got a single string")
        names = [str(s) for s in class_names]
        for y, nm in ((yt, "true_labels"), (yp, "pred_labels")):
            if y is not None and y.size and y.max() >= len(names):
                raise ValueError(f"{nm} holds label {int(y.max())}, outside the range "
                                 f"[0, {len(names) - 1}] of class_names")

    candidates = np.arange(n)
    filtering = only_misclassified and yt is not None and yp is not None
    if filtering:
        candidates = np.flatnonzero(yt != yp)
    if rng is not None and candidates.size > max_images:
        from nnlite._checks import as_generator
        chosen = np.sort(as_generator(rng).choice(candidates, size=max_images, replace=False))
    else:
        chosen = candidates[:max_images]
    if title is None and filtering:
        title = f"misclassified: {chosen.size} shown of {candidates.size} (of {n} images)"

    def name(label):
        return names[label] if names is not None else str(label)

    k = chosen.size
    cols = min(ncols, max(k, 1))
    rows = max(1, -(-k // cols))
    has_titles = yt is not None or yp is not None
    cell_h = 1.75 if has_titles else 1.5
    fig = new_figure((max(1.5 * cols, 2.5), cell_h * rows + (0.35 if title else 0.0)), dpi)
    if k == 0:
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images" if filtering else "no images",
                ha="center", va="center", fontsize=10)
    else:
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, idx in zip(axes, chosen):
            show_image(ax, imgs[idx])
            parts = []
            if yt is not None:
                parts.append(f"true: {name(yt[idx])}")
            if yp is not None:
                parts.append(f"pred: {name(yp[idx])}")
            if parts:
                text = " / ".join(parts)
                if len(text) > 20:
                    text = "\n".join(parts)
                wrong = yt is not None and yp is not None and yt[idx] != yp[idx]
                ax.set_title(text, fontsize=7, color=_WRONG_COLOR if wrong else "black")
        for ax in axes[k:]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return finish(fig, path)


_RESCALE_MODES = (None, "minmax", "symmetric")


def _rescale(x: np.ndarray, mode, name: str) -> np.ndarray:
    """Map a whole row of images into [0, 1] with one shared scale."""
    if mode is None:
        return np.clip(x, 0.0, 1.0)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite to be rescaled")
    if mode == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return np.full_like(x, 0.5) if hi == lo else (x - lo) / (hi - lo)
    m = float(np.abs(x).max())
    return np.full_like(x, 0.5) if m == 0 else 0.5 + x / (2.0 * m)


def plot_image_rows(rows, row_titles: Optional[Sequence[str]] = None,
                    col_titles: Optional[Sequence[str]] = None, path=None, *,
                    title: Optional[str] = None, cell_titles=None, rescale=None,
                    channels_last: Optional[bool] = None, dpi: float = 100):
    """A grid where row ``r`` shows the images of batch ``rows[r]`` side by side.

    Typical uses: original / adversarial at eps / magnified perturbation, or originals
    above reconstructions at several latent sizes.

    Parameters
    ----------
    rows : sequence of image batches
        Each batch in a layout accepted by :func:`plot_image_grid` (float NCHW in [0, 1],
        integer NHWC in [0, 255], or (N, H, W)); batches may differ in N, channels and size.
        The grid has ``len(rows)`` rows and ``max(N)`` columns.
    row_titles : sequence of str, optional
        One label per row, written left of the row.
    col_titles : sequence of str, optional
        Up to ``max(N)`` labels written above the columns.
    path : str or os.PathLike, optional
        Where to save the figure.
    title : str, optional
        Figure title.
    cell_titles : sequence of sequences of str, optional
        ``cell_titles[r][i]`` is written above image ``i`` of row ``r`` (``None`` or ``""``
        for none), e.g. the predicted class of each perturbed image.
    rescale : None, str, or sequence of (None | str), optional
        Per-row display scaling, for rows that are not images in [0, 1]: ``"minmax"`` maps
        the row's range onto [0, 1]; ``"symmetric"`` maps 0 to mid-gray, ``0.5 + x / (2 max|x|)``
        (for perturbations and difference maps). One scale is shared by the whole row so
        magnitudes stay comparable. A single value applies to every row; None clips to [0, 1].
    channels_last : bool, optional
        Layout override for every batch (see :func:`plot_image_grid`).
    dpi : float
        Resolution (each cell is about 1.4 inches square).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(rows, np.ndarray) or not isinstance(rows, Sequence) or isinstance(rows, str):
        raise TypeError(f"rows must be a list of image batches, got {type(rows).__name__}")
    if len(rows) == 0:
        raise ValueError("rows must contain at least one image batch, got an empty list")
    nrows = len(rows)
    if rescale is None or isinstance(rescale, str):
        rescale = [rescale] * nrows
    rescale = list(rescale)
    if len(rescale) != nrows:
        raise ValueError(f"rescale must be one mode or one per row ({nrows}), got {len(rescale)}")
    for mode in rescale:
        if mode not in _RESCALE_MODES:
            raise ValueError(f"rescale modes must be one of {_RESCALE_MODES}, got {mode!r}")
    batches = []
    for r, (batch, mode) in enumerate(zip(rows, rescale)):
        raw = to_display_images(batch, channels_last=channels_last, name=f"rows[{r}]", clip=False)
        if raw.shape[0] == 0:
            raise ValueError(f"rows[{r}] holds no images")
        batches.append(_rescale(raw, mode, f"rows[{r}]"))
    ncols = max(b.shape[0] for b in batches)

    def check_titles(t, length, name):
        if t is None:
            return None
        if isinstance(t, (str, bytes)):
            raise TypeError(f"{name} must be a sequence of str, got a single string")
        t = [None if s is None else str(s) for s in t]
        if len(t) > length or (name == "row_titles" and len(t) != length):
            want = f"{length}" if name == "row_titles" else f"at most {length}"
            raise ValueError(f"{name} must have {want} entries, got {len(t)}")
        return t

    row_titles = check_titles(row_titles, nrows, "row_titles")
    col_titles = check_titles(col_titles, ncols, "col_titles")
    _check_str_or_none(title, "title")
    if cell_titles is not None:
        if len(cell_titles) != nrows:
            raise ValueError(f"cell_titles must have one list per row ({nrows}), got {len(cell_titles)}")
        cell_titles = [check_titles(ct, b.shape[0], f"cell_titles[{r}]") or []
                       for r, (ct, b) in enumerate(zip(cell_titles, batches))]

    cell = 1.4
    width = cell * ncols + (0.4 if row_titles else 0.0)
    height = cell * nrows + (0.3 if col_titles else 0.0) + (0.35 if title else 0.0) \
        + (0.25 * nrows if cell_titles else 0.0)
    fig = new_figure((max(width, 2.0), height), dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, batch in enumerate(batches):
        for i in range(ncols):
            ax = axes[r, i]
            if i >= batch.shape[0]:
                ax.axis("off")
                continue
            show_image(ax, batch[i])
            lines = []
            if r == 0 and col_titles and i < len(col_titles) and col_titles[i]:
                lines.append(col_titles[i])
            if cell_titles and i < len(cell_titles[r]) and cell_titles[r][i]:
                lines.append(cell_titles[r][i])
            if lines:
                ax.set_title("\n".join(lines), fontsize=8)
            if i == 0 and row_titles and row_titles[r]:
                ax.set_ylabel(row_titles[r], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig, path)


# ----------------------------------------------------------------------------- curves and bars

def plot_curve(x, ys, xlabel: str = "", ylabel: str = "", logx=False, errors=None, path=None, *,
               title: Optional[str] = None, logy: bool = False, markers: bool = True,
               figsize=None, dpi: float = 100):
    """One or more metric-vs-value curves sharing an x axis (e.g. accuracy vs epsilon).

    Parameters
    ----------
    x : array-like of float, shape (n,)
        The shared x values (n >= 1).
    ys : Mapping[str, array-like of float, shape (n,)]
        Curve label -> y values; the legend shows the labels.
    xlabel, ylabel : str
        Axis labels.
    logx : bool or "symlog"
        Log x axis (needs every x > 0), or "symlog" (linear around 0, so x = 0 is allowed).
    errors : Mapping[str, array-like], optional
        Error bars for some of the curves: label -> half-widths of shape (n,), or
        (2, n) for (below, above); non-negative.
    path : str or os.PathLike, optional
        Where to save the figure.
    title : str, optional
        Axes title.
    logy : bool
        Log y axis (needs every y > 0).
    markers : bool
        Mark the data points.
    figsize, dpi
        Inches (default (5, 3.5)) and resolution.

    Returns
    -------
    matplotlib.figure.Figure
    """
    xv = as_1d_numbers(x, "x", allow_nan=False)
    if xv.size == 0:
        raise ValueError("x must hold at least one value, got 0")
    if not isinstance(ys, Mapping):
        raise TypeError(f"ys must be a mapping of label -> values, got {type(ys).__name__}")
    if len(ys) == 0:
        raise ValueError("ys must hold at least one curve, got an empty mapping")
    if logx not in (False, True, "symlog"):
        raise ValueError(f"logx must be False, True or 'symlog', got {logx!r}")
    if logx is True and (xv <= 0).any():
        raise ValueError(f"logx=True needs every x > 0, got min x = {xv.min():g}; "
                         "use logx='symlog' or drop the non-positive values")
    curves = {}
    for label, vals in ys.items():
        yv = as_1d_numbers(vals, f"ys[{label!r}]")
        if yv.shape != xv.shape:
            raise ValueError(f"ys[{label!r}] must have {xv.size} values like x, got {yv.size}")
        if logy and (yv[~np.isnan(yv)] <= 0).any():
            raise ValueError(f"logy=True needs every y > 0, ys[{label!r}] has min {np.nanmin(yv):g}")
        curves[str(label)] = yv
    errs = {}
    if errors is not None:
        if not isinstance(errors, Mapping):
            raise TypeError(f"errors must be a mapping of label -> error values, got {type(errors).__name__}")
        for label, e in errors.items():
            if label not in ys:
                raise ValueError(f"errors has label {label!r} that is not in ys (labels {list(map(str, ys))})")
            ev = np.asarray(e, dtype=np.float64)
            if ev.shape not in ((xv.size,), (2, xv.size)):
                raise ValueError(f"errors[{label!r}] must have shape ({xv.size},) or (2, {xv.size}), got {ev.shape}")
            if (ev[~np.isnan(ev)] < 0).any():
                raise ValueError(f"errors[{label!r}] must be non-negative half-widths")
            errs[str(label)] = ev
    for s, nm in ((xlabel, "xlabel"), (ylabel, "ylabel")):
        if not isinstance(s, str):
            raise TypeError(f"{nm} must be a str, got {type(s).__name__}")
    _check_str_or_none(title, "title")

    fig = new_figure(check_figsize(figsize) or (5.0, 3.5), dpi)
    ax = fig.subplots()
    marker = "o" if markers else None
    for label, yv in curves.items():
        if label in errs:
            ax.errorbar(xv, yv, yerr=errs[label], label=label, marker=marker, markersize=4, capsize=3,
                        linewidth=1.5)
        else:
            ax.plot(xv, yv, label=label, marker=marker, markersize=4, linewidth=1.5)
    if logx is True:
        ax.set_xscale("log")
    elif logx == "symlog":
        pos = np.abs(xv[xv != 0])
        ax.set_xscale("symlog", linthresh=float(pos.min()) if pos.size else 1.0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(curves) > 1 or any(curves):
        ax.legend(fontsize=8)
    return finish(fig, path)


def plot_bar(labels, values, log: bool = False, path=None, *, errors=None, xlabel: str = "",
             ylabel: str = "", title: Optional[str] = None, horizontal: bool = False,
             annotate: bool = True, fmt: str = "{:.3g}", figsize=None, dpi: float = 100):
    """Bar chart, single or grouped (e.g. benchmark timings).

    Parameters
    ----------
    labels : sequence of str, length n
        One label per bar (or per group).
    values : array-like of float, shape (n,), or Mapping[str, array-like (n,)]
        Bar heights; a mapping draws one bar per series inside each group, with a legend.
    log : bool
        Log value axis (needs every value > 0).
    path : str or os.PathLike, optional
        Where to save the figure.
    errors : array-like (n,), or Mapping[str, array-like (n,)] matching ``values``, optional
        Non-negative error-bar half-widths.
    xlabel, ylabel : str
        Axis labels (as seen: with ``horizontal=True`` the values run along x).
    title : str, optional
        Axes title.
    horizontal : bool
        Horizontal bars (readable with many or long labels).
    annotate : bool
        Write each value at the end of its bar, formatted with ``fmt``.
    figsize, dpi
        Inches (default grows with n) and resolution.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(labels, (str, bytes)):
        raise TypeError("labels must be a sequence of str, got a single string")
    labels = [str(s) for s in labels]
    n = len(labels)
    if n == 0:
        raise ValueError("labels must name at least one bar, got 0")
    if isinstance(values, Mapping):
        if len(values) == 0:
            raise ValueError("values must hold at least one series, got an empty mapping")
        series = {str(k): as_1d_numbers(v, f"values[{k!r}]") for k, v in values.items()}
        grouped = True
    else:
        series = {"": as_1d_numbers(values, "values")}
        grouped = False
    for k, v in series.items():
        if v.size != n:
            nm = f"values[{k!r}]" if grouped else "values"
            raise ValueError(f"{nm} must have one value per label ({n}), got {v.size}")
        if log and (v[~np.isnan(v)] <= 0).any():
            raise ValueError("log=True needs every value > 0, got min "
                             f"{np.nanmin(v):g}" + (f" in values[{k!r}]" if grouped else ""))
    errs = {}
    if errors is not None:
        if grouped != isinstance(errors, Mapping):
            raise TypeError("errors must be a mapping when values is a mapping, and an array otherwise")
        items = errors.items() if grouped else [("", errors)]
        for k, e in items:
            k = str(k)
            if k not in series:
                raise ValueError(f"errors has series {k!r} that is not in values")
            ev = as_1d_numbers(e, "errors")
            if ev.size != n:
                raise ValueError(f"errors must have one value per label ({n}), got {ev.size}")
            if (ev[~np.isnan(ev)] < 0).any():
                raise ValueError("errors must be non-negative half-widths")
            errs[k] = ev
    for s, nm in ((xlabel, "xlabel"), (ylabel, "ylabel"), (fmt, "fmt")):
        if not isinstance(s, str):
            raise TypeError(f"{nm} must be a str, got {type(s).__name__}")
    _check_str_or_none(title, "title")

    m = len(series)
    longest = max(len(s) for s in labels)
    if horizontal:
        default = (5.0 + min(0.07 * longest, 3.0), max(2.5, 0.3 * n * max(1, m * 0.6) + 1.0))
    else:
        default = (max(4.0, 0.45 * n * max(1, m * 0.6) + 1.5), 3.5 + min(0.05 * longest, 2.0))
    fig = new_figure(check_figsize(figsize) or default, dpi)
    ax = fig.subplots()
    pos = np.arange(n, dtype=np.float64)
    width = 0.8 / m
    for s_i, (k, v) in enumerate(series.items()):
        offset = (s_i - (m - 1) / 2.0) * width
        kw = dict(label=k if grouped else None)
        if horizontal:
            bars = ax.barh(pos + offset, v, height=width, xerr=errs.get(k), capsize=3 if k in errs else 0, **kw)
        else:
            bars = ax.bar(pos + offset, v, width=width, yerr=errs.get(k), capsize=3 if k in errs else 0, **kw)
        if annotate:
            ax.bar_label(bars, labels=["" if np.isnan(a) else fmt.format(a) for a in v],
                         padding=2, fontsize=7)
    rotate = not horizontal and (longest > 6 or n > 8)
    if horizontal:
        ax.set_yticks(pos, labels=labels)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
    else:
        ax.set_xticks(pos, labels=labels, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                      rotation_mode="anchor")
        if log:
            ax.set_yscale("log")
    # leave headroom so annotations are not cut off
    ax.margins(**({"x": 0.12} if horizontal else {"y": 0.12}))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, axis="x" if horizontal else "y", alpha=0.3)
    ax.set_axisbelow(True)
    if grouped:
        ax.legend(fontsize=8)
    return finish(fig, path)
