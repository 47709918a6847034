"""Pooling kernels: max, average (any window and stride, overlapping windows included),
global average pooling, and flatten. Inputs are NCHW; no padding (as Keras' 'valid').

Windows are strided views of the input; backward adds into the input gradient with one
strided slice per window offset (ph*pw Python iterations, never a loop over pixels).

Max-pool tie rule: the whole gradient of a window goes to its FIRST maximum in row-major
order within the window (as ``argmax``); other tied positions get zero.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv import conv_output_size


def _windows(x, ph, pw, sh, sw):
    """x: (N, C, H, W) -> read-only view (N, C, Ho, Wo, ph, pw) of every pooling window."""
    n, c, h, w = x.shape
    ho = conv_output_size(h, ph, sh, 0)
    wo = conv_output_size(w, pw, sw, 0)
    s_n, s_c, s_h, s_w = x.strides
    return as_strided(x, shape=(n, c, ho, wo, ph, pw),
                      strides=(s_n, s_c, s_h * sh, s_w * sw, s_h, s_w), writeable=False)


def _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, per_offset):
    """dx[n, c, y*sh + i, x*sw + j] += per_offset(i, j)[n, c, y, x] for every offset (i, j)."""
    dx = np.zeros(x_shape, dtype=dtype)
    for i in range(ph):
        for j in range(pw):
            contrib = per_offset(i, j)
            ho, wo = contrib.shape[2:]
            dx[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += contrib
    return dx


def _params(kernel, stride):
    ph, pw = (kernel, kernel) if np.isscalar(kernel) else tuple(kernel)
    if stride is None:
        stride = (ph, pw)
    sh, sw = (stride, stride) if np.isscalar(stride) else tuple(stride)
    return ph, pw, sh, sw


def maxpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = max_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W); kernel, stride: int or pair (stride defaults to kernel)
    -> out: (N, C, Ho, Wo), cache (holds the flat index of each window's first maximum).
    """
    ph, pw, sh, sw = _params(kernel, stride)
    win = _windows(x, ph, pw, sh, sw)
    flat = win.reshape(win.shape[:4] + (ph * pw,))
    arg = flat.argmax(axis=-1)
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return out, (x.shape, x.dtype, arg, (ph, pw, sh, sw))


def maxpool2d_backward(dout, cache):
    """dx gets dout at each window's first maximum (see the tie rule), summed over windows."""
    x_shape, dtype, arg, (ph, pw, sh, sw) = cache
    return _scatter_offsets(x_shape, dtype, ph, pw, sh, sw,
                            lambda i, j: dout * (arg == i * pw + j))


def avgpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = mean_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), cache.
    """
    ph, pw, sh, sw = _params(kernel, stride)
    out = _windows(x, ph, pw, sh, sw).mean(axis=(4, 5), dtype=x.dtype)
    return out, (x.shape, x.dtype, (ph, pw, sh, sw))


def avgpool2d_backward(dout, cache):
    """Every input position of a window gets dout / (ph*pw), summed over windows."""
    x_shape, dtype, (ph, pw, sh, sw) = cache
    share = dout / np.asarray(ph * pw, dtype=dout.dtype)
    return _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, lambda i, j: share)


def global_avgpool_forward(x):
    """out[n, c] = mean_{y,x} x[n, c, y, x].  x: (N, C, H, W) -> (N, C)."""
    return x.mean(axis=(2, 3), dtype=x.dtype), x.shape


def global_avgpool_backward(dout, cache):
    """dx[n, c, y, x] = dout[n, c] / (H*W)."""
    n, c, h, w = cache
    return np.broadcast_to((dout / np.asarray(h * w, dtype=dout.dtype))[:, :, None, None],
                           cache).copy()


def flatten_forward(x):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    return dout.reshape(cache)
