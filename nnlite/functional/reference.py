"""Loop references of convolution and pooling: obviously correct, slow.

Kept for teaching (read these first), for tests (the textbook kernels of ``conv.py`` and
``pool.py`` and the engine's of ``nnlite.fast`` must equal them) and for benchmarks (to show
what vectorization buys). Same signatures and conventions as those kernels; caches are plain
tuples of the inputs. They import nothing from the code they check.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv_output_size(size, kernel, stride, pad):
    """(size + 2*pad - kernel) // stride + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def _params(kernel, stride):
    """Pooling window and stride as (ph, pw, sh, sw); the stride defaults to the window."""
    ph, pw = _pair(kernel)
    sh, sw = _pair((ph, pw) if stride is None else stride)
    return ph, pw, sh, sw


def conv2d_forward_naive(x, w, b=None, stride=1, pad=0):
    """out[n, o, y, x] = sum_{c,i,j} w[o,c,i,j] * xpad[n, c, y*sh+i, x*sw+j] + b[o], by loops."""
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, c_out, ho, wo), dtype=x.dtype)
    for i in range(n):
        for o in range(c_out):
            for yy in range(ho):
                for xx in range(wo):
                    patch = xp[i, :, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw]
                    out[i, o, yy, xx] = np.sum(patch * w[o]) + (b[o] if b is not None else 0)
    return out, (x, w, b is not None, (sh, sw), (ph, pw))


def conv2d_backward_naive(dout, cache):
    """Each output element sends dout * w to its patch and dout * patch to w, by loops."""
    x, w, has_bias, (sh, sw), (ph, pw) = cache
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    ho, wo = dout.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(n):
        for o in range(c_out):
            for yy in range(ho):
                for xx in range(wo):
                    g = dout[i, o, yy, xx]
                    dxp[i, :, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw] += g * w[o]
                    dw[o] += g * xp[i, :, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dxp[:, :, ph:ph + h, pw:pw + wd], dw, db


def maxpool2d_forward_naive(x, kernel=2, stride=None):
    """out[n, c, y, x] = max of each window, by loops."""
    ph, pw, sh, sw = _params(kernel, stride)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, ph, sh, 0), conv_output_size(w, pw, sw, 0)
    out = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(n):
        for ch in range(c):
            for yy in range(ho):
                for xx in range(wo):
                    out[i, ch, yy, xx] = x[i, ch, yy * sh:yy * sh + ph, xx * sw:xx * sw + pw].max()
    return out, (x, (ph, pw, sh, sw))


def maxpool2d_backward_naive(dout, cache):
    """The window's gradient goes to its first maximum (row-major order), by loops."""
    x, (ph, pw, sh, sw) = cache
    n, c, _, _ = x.shape
    ho, wo = dout.shape[2:]
    dx = np.zeros_like(x)
    for i in range(n):
        for ch in range(c):
            for yy in range(ho):
                for xx in range(wo):
                    window = x[i, ch, yy * sh:yy * sh + ph, xx * sw:xx * sw + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[i, ch, yy * sh + a, xx * sw + b] += dout[i, ch, yy, xx]
    return dx


def avgpool2d_forward_naive(x, kernel=2, stride=None):
    """out[n, c, y, x] = mean of each window, by loops."""
    ph, pw, sh, sw = _params(kernel, stride)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, ph, sh, 0), conv_output_size(w, pw, sw, 0)
    out = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(n):
        for ch in range(c):
            for yy in range(ho):
                for xx in range(wo):
                    out[i, ch, yy, xx] = x[i, ch, yy * sh:yy * sh + ph, xx * sw:xx * sw + pw].mean()
    return out, (x, (ph, pw, sh, sw))


def avgpool2d_backward_naive(dout, cache):
    """Each window spreads dout / (ph*pw) over its positions, by loops."""
    x, (ph, pw, sh, sw) = cache
    n, c, _, _ = x.shape
    ho, wo = dout.shape[2:]
    dx = np.zeros_like(x)
    for i in range(n):
        for ch in range(c):
            for yy in range(ho):
                for xx in range(wo):
                    dx[i, ch, yy * sh:yy * sh + ph, xx * sw:xx * sw + pw] += dout[i, ch, yy, xx] / (ph * pw)
    return dx
