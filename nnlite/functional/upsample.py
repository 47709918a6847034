"""Nearest and bilinear upsampling (any integer or float scale, or a target size) as two small
interpolation matrices: out = A_h @ x @ A_w^T per (n, c) image, so backward is the transpose.

x: (N, C, H, W) -> out: (N, C, Ho, Wo).  Ho = floor(H * scale_h) (or ``size``), Wo likewise.
A_h: (Ho, H), A_w: (Wo, W) hold each output row's (column's) weights on the input rows.
    forward   out = A_h x A_w^T          backward   dx = A_h^T dout A_w
Source coordinates follow PyTorch's ``F.interpolate`` (``recompute_scale_factor=None``), with
r = 1 / scale_factor when a scale is given, r = H / Ho when a size is given:
* ``nearest``:  src(y) = min(floor(y * r), H - 1)                        (one 1 per row of A_h);
* ``bilinear`` (``align_corners=False``, the only convention here): pixel CENTRES are aligned,
  src(y) = max((y + 0.5) * r - 0.5, 0); y0 = floor(src), y1 = min(y0 + 1, H - 1),
  weights (1 - t, t) with t = src - y0 (edge pixels are repeated, never zero padded).
No loop over pixels or samples: two batched matrix products per pass.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

MODES = ("nearest", "bilinear")


def _ratio_and_size(size_in: int, scale, size_out):
    if size_out is not None:
        return size_in / size_out, int(size_out)
    out = int(math.floor(size_in * scale))
    if out < 1:
        raise ValueError(f"scale_factor {scale} maps an input of size {size_in} to an empty output")
    return 1.0 / scale, out


def interpolation_matrix(size_in: int, size_out: int, ratio: float, mode: str, dtype=np.float64):
    """A: (size_out, size_in), out = A @ x along one axis (see the module docstring)."""
    dst = np.arange(size_out, dtype=np.float64)
    a = np.zeros((size_out, size_in), dtype=dtype)
    rows = np.arange(size_out)
    if mode == "nearest":
        src = np.minimum(np.floor(dst * ratio).astype(np.int64), size_in - 1)
        a[rows, src] = 1
        return a
    src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    y0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    y1 = np.minimum(y0 + 1, size_in - 1)
    t = src - y0
    np.add.at(a, (rows, y0), 1 - t)       # add (not set): y0 == y1 at the last row
    np.add.at(a, (rows, y1), t)
    return a


def check_upsample_args(x, scale_factor, size, mode):
    """Validate upsampling arguments -> ((sh, sw) or (None, None), (Ho, Wo) or (None, None)).
    Raises TypeError for a non-float or non-4-D x, ValueError for a bad mode, scale or size."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating) or x.ndim != 4:
        raise TypeError(f"x must be a floating ndarray of shape (N, C, H, W), got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if (scale_factor is None) == (size is None):
        raise ValueError("give exactly one of scale_factor and size")
    if size is not None:
        size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if len(size) != 2 or any(not isinstance(s, numbers.Integral) or s < 1 for s in size):
            raise ValueError(f"size must be a positive int or a pair of them, got {size}")
        return (None, None), size
    sf = (scale_factor, scale_factor) if isinstance(scale_factor, numbers.Real) else tuple(scale_factor)
    if len(sf) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Real) or not s > 0
                           or not math.isfinite(s) for s in sf):
        raise ValueError(f"scale_factor must be a positive number or a pair of them, got {scale_factor}")
    return tuple(float(s) for s in sf), (None, None)


def upsample2d_forward(x, scale_factor=2, mode="nearest", size=None):
    """out = A_h x A_w^T.  x: (N, C, H, W); scale_factor: number or pair, or size: int or pair
    (exactly one); mode "nearest" | "bilinear" -> out: (N, C, Ho, Wo), cache (A_h, A_w)."""
    (sh, sw), (oh, ow) = check_upsample_args(x, scale_factor, size, mode)
    rh, ho = _ratio_and_size(x.shape[2], sh, oh)
    rw, wo = _ratio_and_size(x.shape[3], sw, ow)
    a_h = interpolation_matrix(x.shape[2], ho, rh, mode, x.dtype)
    a_w = interpolation_matrix(x.shape[3], wo, rw, mode, x.dtype)
    return a_h @ x @ a_w.T, (a_h, a_w)


def upsample2d_backward(dout, cache):
    """dx = A_h^T dout A_w.  dout: (N, C, Ho, Wo) -> dx: (N, C, H, W)."""
    a_h, a_w = cache
    return a_h.T @ dout @ a_w
