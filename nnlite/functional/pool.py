"""Pooling (max, average, global average) and flatten. Inputs NCHW, no padding (Keras' 'valid').

The textbook kernels: the windows are a strided view (N, C, Ho, Wo, ph, pw) of the input, so
forward is one reduction over its last two axes; backward sends each window's gradient back
with one strided ``+=`` per window offset (ph*pw Python iterations, never a loop over pixels).

Max-pool tie rule: the whole gradient of a window goes to its FIRST maximum in row-major order
within the window (as ``argmax``); other tied positions get zero.
Output size: Ho = (H - ph) // sh + 1, Wo = (W - pw) // sw + 1.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import pair


def _windows(x, kernel, stride):
    """x (N, C, H, W) -> its windows (N, C, Ho, Wo, ph, pw) as a view, and (ph, pw, sh, sw)."""
    ph, pw = pair(kernel, "kernel")
    sh, sw = pair(kernel if stride is None else stride, "stride")
    if ph > x.shape[2] or pw > x.shape[3]:
        raise ValueError(f"pooling window {(ph, pw)} does not fit an input of shape {x.shape}")
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::sh, ::sw], (ph, pw, sh, sw)


def _add_back(dwin, x_shape, params):
    """dx (N, C, H, W) from window gradients dwin (N, C, Ho, Wo, ph, pw): one += per offset."""
    ph, pw, sh, sw = params
    ho, wo = dwin.shape[2:4]
    dx = np.zeros(x_shape, dtype=dwin.dtype)
    for i in range(ph):
        for j in range(pw):
            dx[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += dwin[..., i, j]
    return dx


def maxpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = max_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W); kernel, stride: int or pair (stride defaults to kernel)
    -> out (N, C, Ho, Wo), cache (the index of each window's first maximum).
    """
    win, params = _windows(x, kernel, stride)
    flat = win.reshape(win.shape[:4] + (-1,))                     # (N, C, Ho, Wo, ph*pw), a copy
    arg = flat.argmax(axis=-1)                                    # first maximum
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return out, (x.shape, arg, params)


def maxpool2d_backward(dout, cache):
    """dx gets dout at each window's first maximum, summed over (overlapping) windows."""
    x_shape, arg, params = cache
    ph, pw = params[:2]
    dwin = (np.arange(ph * pw) == arg[..., None]) * dout[..., None]     # (N, C, Ho, Wo, ph*pw)
    return _add_back(dwin.reshape(arg.shape + (ph, pw)).astype(dout.dtype, copy=False), x_shape, params)


def avgpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = mean_{i,j} x[n, c, y*sh + i, x*sw + j].  x: (N, C, H, W) -> (N, C, Ho, Wo)."""
    win, params = _windows(x, kernel, stride)
    return win.mean(axis=(-2, -1), dtype=x.dtype), (x.shape, params)


def avgpool2d_backward(dout, cache):
    """Every input position of a window gets dout / (ph*pw), summed over windows."""
    x_shape, params = cache
    ph, pw = params[:2]
    share = dout / np.asarray(ph * pw, dtype=dout.dtype)
    return _add_back(np.broadcast_to(share[..., None, None], share.shape + (ph, pw)), x_shape, params)


def global_avgpool_forward(x):
    """out[n, c] = mean_{y,x} x[n, c, y, x].  x: (N, C, H, W) -> (N, C)."""
    return x.mean(axis=(2, 3), dtype=x.dtype), x.shape


def global_avgpool_backward(dout, cache):
    """dx[n, c, y, x] = dout[n, c] / (H*W)."""
    n, c, h, w = cache
    return np.broadcast_to((dout / np.asarray(h * w, dtype=dout.dtype))[:, :, None, None], cache).copy()


def flatten_forward(x):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """The inverse reshape: (N, d1*d2*...) -> (N, d1, d2, ...)."""
    return dout.reshape(cache)
