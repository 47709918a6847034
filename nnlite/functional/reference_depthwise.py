"""Loop reference of the depthwise convolution: obviously correct, slow (tests only).

Same signature and conventions as ``nnlite.functional.depthwise``: weight (C*m, 1, kh, kw),
output channel o reads input channel o // m (PyTorch's ``groups=C``), by loops over samples,
output channels and output pixels. Self-contained (imports no checked code), like ``reference.py``.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def depthwise_conv2d_forward_naive(x, w, b=None, stride=1, pad=0):
    """out[n, o, y, x] = sum_{i,j} w[o, 0, i, j] * xpad[n, o // m, y*sh + i, x*sw + j] + b[o], by loops."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(pad)
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    m = c_out // c
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, c_out, ho, wo), dtype=x.dtype)
    for s in range(n):
        for o in range(c_out):
            for yy in range(ho):
                for xx in range(wo):
                    patch = xp[s, o // m, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw]
                    out[s, o, yy, xx] = np.sum(patch * w[o, 0]) + (b[o] if b is not None else 0)
    return out, (x, w, b is not None, (sh, sw), (ph, pw))


def depthwise_conv2d_backward_naive(dout, cache):
    """Each output element sends dout * w[o] to its patch of channel o // m and dout * patch to w[o], by loops."""
    x, w, has_bias, (sh, sw), (ph, pw) = cache
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    m = c_out // c
    ho, wo = dout.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(c_out, dtype=dout.dtype)
    for s in range(n):
        for o in range(c_out):
            for yy in range(ho):
                for xx in range(wo):
                    g = dout[s, o, yy, xx]
                    ys, xs = yy * sh, xx * sw
                    dxp[s, o // m, ys:ys + kh, xs:xs + kw] += g * w[o, 0]
                    dw[o, 0] += g * xp[s, o // m, ys:ys + kh, xs:xs + kw]
                    db[o] += g
    return dxp[:, :, ph:ph + h, pw:pw + wd], dw, (db if has_bias else None)
