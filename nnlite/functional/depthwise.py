"""Depthwise 2-D convolution (cross-correlation): every input channel filtered on its own.

The textbook kernel: a loop over the kh*kw kernel offsets, each a strided view of the padded
input times one weight per channel, never a loop over pixels, samples or channels.

Layout (PyTorch's ``conv2d(..., groups=C)`` with channel multiplier m): x (N, C, H, W);
w (C*m, 1, kh, kw); output channel o = c*m + k (k < m) reads input channel c = o // m only;
out (N, C*m, Ho, Wo) with Ho = (H + 2*ph - kh) // sh + 1, Wo = (W + 2*pw - kw) // sw + 1.
A depthwise conv followed by a 1x1 ``conv2d`` is the depthwise-separable convolution of MobileNet.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array, check_same_dtype, pair
from .conv import conv_output_size


def _check_args(x, w, b, stride, pad):
    """Validated ``(sh, sw), (ph, pw), m`` of a depthwise call (TypeError/ValueError otherwise)."""
    check_float_array(x, "x", ndim=4)
    check_float_array(w, "w", ndim=4)
    c = x.shape[1]
    if w.shape[1] != 1 or w.shape[0] == 0 or w.shape[0] % c:
        raise ValueError(f"w must have shape (C*m, 1, kh, kw) with C = {c} (x's channels; PyTorch's "
                         f"groups=C layout, m >= 1 filters per channel), got {w.shape}")
    check_same_dtype(x, w, "x", what="the weights w")
    if b is not None:
        check_float_array(b, "b", ndim=1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b must have shape ({w.shape[0]},) (one bias per output channel), got {b.shape}")
        check_same_dtype(b, w, "b", what="the weights w")
    stride, pad = pair(stride, "stride"), pair(pad, "pad")
    if min(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return stride, pad, w.shape[0] // c


def depthwise_conv2d_forward(x, w, b=None, stride=1, pad=0):
    """out[n, c*m + k, y, x] = sum_{i,j} w[c*m + k, 0, i, j] * xpad[n, c, y*sh + i, x*sw + j] + b[c*m + k].

    x: (N, C, H, W); w: (C*m, 1, kh, kw); b: (C*m,) or None; stride, pad: int or pair (zero padding)
    -> out: (N, C*m, Ho, Wo), cache.  Equals PyTorch's conv2d(x, w, b, stride, pad, groups=C). As
    arrays, with wk = w as (C, m, kh, kw) and v_ij = xpad[:, :, i::sh, j::sw] (N, C, Ho, Wo), the
    view of offset (i, j): out as (N, C, m, Ho, Wo) = sum_{i,j} v_ij[:, :, None] * wk[:, :, i, j]
    (broadcast over N, Ho, Wo). dtype kept; TypeError/ValueError for bad shapes or mixed dtypes.
    """
    (sh, sw), (ph, pw), m = _check_args(x, w, b, stride, pad)
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    wk = w.reshape(c, m, kh, kw)                                          # wk[c, k] = w[c*m + k, 0]
    out = np.zeros((n, c, m, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)
            v = xp[:, :, rows, cols]                                              # (N, C, Ho, Wo)
            out += v[:, :, None] * wk[None, :, :, i, j, None, None]
    out = out.reshape(n, c * m, ho, wo)
    if b is not None:
        out += b[:, None, None]
    return out, (x.shape, w, b is not None, (sh, sw), (ph, pw), xp)


def depthwise_conv2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of depthwise_conv2d_forward.  dout: (N, C*m, Ho, Wo) -> dx (N, C, H, W), dw (C*m, 1, kh, kw), db.

    With d = dout as (N, C, m, Ho, Wo) and v_ij the forward's view of offset (i, j):
    dw[c*m + k, 0, i, j] = sum_{n,y,x} d[n, c, k] * v_ij[n, c];  db[o] = sum_{n,y,x} dout[n, o];
    dxpad[:, :, i::sh, j::sw] += sum_k d[:, :, k] * w[c*m + k, 0, i, j], then the padding is cut.
    A part not needed (first layer: dx; frozen layer: dw, db) is None. ``dout`` is never written.
    """
    x_shape, w, has_bias, (sh, sw), (ph, pw), xp = cache
    n, c, h, wd = x_shape
    kh, kw = w.shape[2:]
    m = w.shape[0] // c
    ho, wo = dout.shape[2:]
    d = dout.reshape(n, c, m, ho, wo)
    wk = w.reshape(c, m, kh, kw)
    dwk = np.zeros((c, m, kh, kw), dtype=w.dtype) if need_weight_grad else None
    dxp = np.zeros(xp.shape, dtype=xp.dtype) if need_input_grad else None
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)
            if need_weight_grad:
                dwk[:, :, i, j] = np.einsum("nckyx,ncyx->ck", d, xp[:, :, rows, cols])
            if need_input_grad:
                dxp[:, :, rows, cols] += np.einsum("nckyx,ck->ncyx", d, wk[:, :, i, j])
    dw = dwk.reshape(w.shape) if need_weight_grad else None
    db = dout.sum(axis=(0, 2, 3)) if need_weight_grad and has_bias else None
    dx = dxp[:, :, ph:ph + h, pw:pw + wd] if need_input_grad else None
    return dx, dw, db
