"""Memory-layout helpers of the engine: NCHW-shaped arrays stored channel-last, their (M, C)
row views, and the (N*C, H*W) plane views of C-contiguous ones. One home for them (conv,
pooling and batch norm all use these).

The engine's conv returns its (N, C, H, W) output as a transposed view of a C-contiguous
(N, H, W, C) buffer ("channel-last"); ReLU, pooling and batch norm keep that layout, so the
next conv reads its input contiguously. Indexing is always NCHW.
"""
from __future__ import annotations

import numpy as np


def is_nhwc(x) -> bool:
    """True when the NCHW-shaped 4-D array ``x`` is stored channel-last (a transposed view of a
    C-contiguous (N, H, W, C) array)."""
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def channel_last_only(x) -> bool:
    """True when x is stored channel-last and is not also C-contiguous (C == 1 or H*W == 1
    arrays are both): the layout pooling keeps."""
    return is_nhwc(x) and not x.flags.c_contiguous


def new(make, shape, dtype, channel_last):
    """``make`` (np.empty or np.zeros) an (N, C, H, W) array of ``shape``, stored channel-last
    (an (N, H, W, C) buffer seen through a transpose) when ``channel_last``."""
    n, c, h, w = shape
    if channel_last:
        return make((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
    return make(shape, dtype=dtype)


def empty(shape, dtype, channel_last):
    """An uninitialised (N, C, H, W) array in the requested layout."""
    return new(np.empty, shape, dtype, channel_last)


def zeros(shape, dtype, channel_last):
    """A zero (N, C, H, W) array in the requested layout."""
    return new(np.zeros, shape, dtype, channel_last)


def as_layout(a, channel_last):
    """``a`` stored channel-last (or C-contiguous) to match a cached layout: element-wise passes
    over two differently laid-out arrays are strided gathers, a copy up front is not."""
    if channel_last and not is_nhwc(a):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if not channel_last and not a.flags.c_contiguous:
        return np.ascontiguousarray(a)
    return a


def rows(x):
    """A (M, C) view of x with one row per (sample, pixel) and one column per feature, or None.

    Possible without a copy for (N, D) C-contiguous input and for (N, C, H, W) arrays stored
    channel-last; per-feature statistics are then reductions over axis 0 of one 2-D array.
    """
    if x.ndim == 2:
        return x if x.flags.c_contiguous else None
    t = x.transpose(0, 2, 3, 1)
    return t.reshape(-1, x.shape[1]) if t.flags.c_contiguous else None


def planes(x):
    """A (N*C, H*W) view of a C-contiguous (N, C, H, W) array x, one row per (sample, channel)
    plane (row i holds channel i % C), or None. Per-channel statistics are then per-row
    reductions (long contiguous rows) folded over the N rows of each channel."""
    if x.ndim != 4 or not x.flags.c_contiguous:
        return None
    return x.reshape(x.shape[0] * x.shape[1], -1)


def like(r, x):
    """Undo ``rows``: the (M, C) array ``r`` as x's shape, in x's (channel-last) layout."""
    if x.ndim == 2:
        return r
    n, c, h, w = x.shape
    return r.reshape(n, h, w, c).transpose(0, 3, 1, 2)
