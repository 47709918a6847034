"""Shared helpers of :mod:`nnlite.viz`: figure creation, atomic saving, image conversion.

Figures are built as ``matplotlib.figure.Figure`` objects with an Agg canvas attached,
never through ``pyplot``: nothing is registered with a GUI, no window ever opens, and the
global backend and rcParams are left alone.
"""
from __future__ import annotations

import numbers
import os
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from .._io import atomic_open

_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def new_figure(figsize, dpi) -> Figure:
    """A Figure with constrained layout and an Agg canvas (not registered with pyplot)."""
    dpi = check_dpi(dpi)
    w, h = (float(v) for v in figsize)
    if not (w > 0 and h > 0):
        raise ValueError(f"figsize must be two positive numbers (inches), got {figsize}")
    fig = Figure(figsize=(w, h), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_dpi(dpi) -> float:
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    return float(dpi)


def check_figsize(figsize):
    if figsize is None:
        return None
    try:
        w, h = (float(v) for v in figsize)
    except (TypeError, ValueError):
        raise TypeError(f"figsize must be a pair (width, height) in inches, got {figsize!r}") from None
    if not (w > 0 and h > 0):
        raise ValueError(f"figsize must be two positive numbers (inches), got {figsize}")
    return (w, h)


def save_figure(fig: Figure, path, dpi: Optional[float] = None) -> str:
    """Save ``fig`` to ``path`` atomically and return the path written.

    The format follows the suffix: ``.png`` (the default use), ``.pdf`` or ``.svg``.
    Parent directories are created. The figure is first written to a uniquely named
    temporary file in the destination directory, then moved over ``path`` with
    ``os.replace``, so a reader never sees a half-written file. ``dpi`` defaults to the
    figure's own dpi, so a PNG is ``figsize * dpi`` pixels.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib.figure.Figure, got {type(fig).__name__}")
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise ValueError(f"path must end in one of {sorted(_FORMATS)}, got {path!r}")
    dpi = fig.dpi if dpi is None else check_dpi(dpi)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_open(path) as fh:
        fig.savefig(fh, format=_FORMATS[ext], dpi=dpi)
    return path


def finish(fig: Figure, path) -> Figure:
    """Save ``fig`` when ``path`` is given; return ``fig``."""
    if path is not None:
        save_figure(fig, path)
    return fig


def to_display_images(images, channels_last: Optional[bool] = None, name: str = "images",
                      clip: bool = True) -> np.ndarray:
    """Convert an image batch to float64 NHWC in [0, 1] for ``imshow``.

    Accepted layouts:

    - floating dtype: NCHW with C in {1, 3}, values in [0, 1] (clipped to it for display);
    - integer dtype (e.g. uint8): NHWC with C in {1, 3}, values in [0, 255];
    - either dtype with rank 3: (N, H, W) grayscale.

    ``channels_last`` overrides the dtype rule (True = NHWC, False = NCHW).
    Returns shape (N, H, W, C) with C in {1, 3}. With ``clip=False`` float values are
    returned unclipped (for callers that rescale first).
    """
    arr = np.asarray(images)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be float (in [0, 1]) or integer (in [0, 255]) images, "
                        f"got dtype {arr.dtype}")
    if channels_last is not None and not isinstance(channels_last, (bool, np.bool_)):
        raise TypeError(f"channels_last must be None, True or False, got {channels_last!r}")
    is_float = np.issubdtype(arr.dtype, np.floating)
    if arr.ndim == 3:
        arr = arr[..., None]
        nhwc = arr
    elif arr.ndim == 4:
        last = (not is_float) if channels_last is None else bool(channels_last)
        if last:
            if arr.shape[3] not in (1, 3):
                hint = "" if is_float else "; integer images are read as NHWC, pass channels_last=False for NCHW"
                raise ValueError(f"{name} as NHWC must have 1 or 3 channels in the last axis, got shape "
                                 f"{arr.shape}{hint}")
            nhwc = arr
        else:
            if arr.shape[1] not in (1, 3):
                hint = ("; float images are read as NCHW, pass channels_last=True for NHWC"
                        if is_float and arr.shape[3] in (1, 3) else "")
                raise ValueError(f"{name} as NCHW must have 1 or 3 channels in axis 1, got shape {arr.shape}{hint}")
            nhwc = arr.transpose(0, 2, 3, 1)
    else:
        raise ValueError(f"{name} must have rank 4 (NCHW float / NHWC uint8) or rank 3 (N, H, W), "
                         f"got shape {arr.shape} (rank {arr.ndim})")
    if nhwc.shape[1] == 0 or nhwc.shape[2] == 0:
        raise ValueError(f"{name} must have non-empty height and width, got shape {arr.shape}")
    if is_float:
        if np.isnan(nhwc).any():
            raise ValueError(f"{name} contains NaN")
        out = nhwc.astype(np.float64)
        if clip:
            out = np.clip(out, 0.0, 1.0)
    else:
        if nhwc.size and (nhwc.min() < 0 or nhwc.max() > 255):
            raise ValueError(f"integer {name} must be in [0, 255], got range "
                             f"[{int(nhwc.min())}, {int(nhwc.max())}]")
        out = nhwc.astype(np.float64) / 255.0
    return out


def show_image(ax, img: np.ndarray) -> None:
    """Draw one (H, W, C) image in [0, 1] on ``ax`` (grayscale when C == 1), axes hidden."""
    if img.shape[2] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(img, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def as_1d_numbers(values, name: str, allow_nan: bool = True) -> np.ndarray:
    """A 1-D float64 array from a sequence of real numbers (None becomes NaN), or raise."""
    try:
        arr = np.asarray(values)
        if arr.dtype == object and arr.ndim == 1:   # e.g. None for an epoch without validation
            arr = np.array([np.nan if v is None else v for v in arr.tolist()])
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name} must be a 1-D sequence of numbers: {exc}") from None
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape} (rank {arr.ndim})")
    arr = arr.astype(np.float64)
    if not allow_nan and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr
