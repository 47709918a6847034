"""Loop reference of the transposed convolution: obviously correct, slow (tests only).

Same signature and conventions as ``nnlite.functional.conv_transpose``: every input pixel
scatters ``x[n, c, y, x] * w[c]`` into the output window it maps to, by loops. Self-contained
(imports no checked code), like ``reference.py``.
"""
from __future__ import annotations

import numpy as np



def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv_transpose2d_forward_naive(x, w, b=None, stride=1, pad=0, output_pad=0):
    """out[n, o, y*sh + i - ph, x*sw + j - pw] += x[n, c, y, x] * w[c, o, i, j], by loops."""
    (sh, sw), (ph, pw), (oph, opw) = _pair(stride), _pair(pad), _pair(output_pad)
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    ho, wo = (h - 1) * sh - 2 * ph + kh + oph, (wd - 1) * sw - 2 * pw + kw + opw
    # a full canvas with room for the padding on every side, cropped at the end
    full = np.zeros((n, c_out, ho + 2 * ph + kh, wo + 2 * pw + kw), dtype=x.dtype)
    for i in range(n):
        for c in range(c_in):
            for yy in range(h):
                for xx in range(wd):
                    full[i, :, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw] += x[i, c, yy, xx] * w[c]
    out = full[:, :, ph:ph + ho, pw:pw + wo].copy()
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out, (x, w, b is not None, (sh, sw), (ph, pw))


def conv_transpose2d_backward_naive(dout, cache):
    """Each input pixel gathers dout * w from its window; w gathers x * dout window, by loops."""
    x, w, has_bias, (sh, sw), (ph, pw) = cache
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    ho, wo = dout.shape[2:]
    full = np.zeros((n, c_out, ho + 2 * ph + kh, wo + 2 * pw + kw), dtype=dout.dtype)
    full[:, :, ph:ph + ho, pw:pw + wo] = dout
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i in range(n):
        for c in range(c_in):
            for yy in range(h):
                for xx in range(wd):
                    window = full[i, :, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw]
                    dx[i, c, yy, xx] = np.sum(window * w[c])
                    dw[c] += x[i, c, yy, xx] * window
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
