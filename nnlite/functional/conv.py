"""2-D convolution (cross-correlation, as every framework) as im2col + one GEMM + col2im.

The textbook kernel: read this one. The tuned engine (``nnlite.fast.conv``) computes the same
thing in chunks, channel-last, on several cores; tests prove the two equal the loop reference.

Shapes: x (N, C, H, W); w (C_out, C, kh, kw); out (N, C_out, Ho, Wo) with
    Ho = (H + 2*ph - kh) // sh + 1,   Wo = (W + 2*pw - kw) // sw + 1.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import pair


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """(size + 2*pad - kernel) // stride + 1; ValueError when the kernel does not fit."""
    out = (size + 2 * pad - kernel) // stride + 1
    if out <= 0:
        raise ValueError(f"kernel {kernel} with padding {pad} does not fit an input of size {size}")
    return out


def im2col(x, kh, kw, stride=(1, 1), pad=(0, 0)):
    """Patch matrix: x (N, C, H, W) -> cols (C*kh*kw, N*Ho*Wo), rows (c, i, j), columns (n, y, x).

    cols[(c, i, j), (n, y, x)] = xpad[n, c, y*sh + i, x*sw + j]; returns (cols, (Ho, Wo)).
    """
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(pad, "pad")
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]   # (N, C, Ho, Wo, kh, kw)
    n, c, ho, wo = windows.shape[:4]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo), (ho, wo)


def col2im(dcols, x_shape, kh, kw, stride=(1, 1), pad=(0, 0)):
    """Adjoint of ``im2col``: dcols (C*kh*kw, N*Ho*Wo) -> dx (N, C, H, W).

    Every patch entry is added back to the input pixel it came from: one strided ``+=`` per
    kernel offset (i, j), never a loop over pixels.
    """
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(pad, "pad")
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    d = dcols.reshape(c, kh, kw, n, ho, wo).transpose(3, 0, 1, 2, 4, 5)   # (N, C, kh, kw, Ho, Wo)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += d[:, :, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + w]


def conv2d_forward(x, w, b=None, stride=1, pad=0):
    """out[n, o, y, x] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, y*sh + i, x*sw + j] + b[o].

    x: (N, C, H, W); w: (C_out, C, kh, kw); b: (C_out,) or None; stride, pad: int or pair
    -> out: (N, C_out, Ho, Wo), cache.  As matrices: out = W_mat @ cols + b, W_mat (C_out, C*kh*kw).
    """
    c_out, _, kh, kw = w.shape
    cols, (ho, wo) = im2col(x, kh, kw, stride, pad)
    out = w.reshape(c_out, -1) @ cols                                  # (C_out, N*Ho*Wo): one GEMM
    if b is not None:
        out += b[:, None]
    out = out.reshape(c_out, x.shape[0], ho, wo).transpose(1, 0, 2, 3)
    return out, (x.shape, w, b is not None, stride, pad, cols)


def conv2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of conv2d_forward.  dout: (N, C_out, Ho, Wo) -> dx (N, C, H, W), dw, db.

    With D = dout as (C_out, N*Ho*Wo):  dW_mat = D @ cols^T;  db = sum of D over its columns;
    dx = col2im(W_mat^T @ D).  A part not needed (first layer: dx; frozen layer: dw, db) is None.
    """
    x_shape, w, has_bias, stride, pad, cols = cache
    c_out, _, kh, kw = w.shape
    d = dout.transpose(1, 0, 2, 3).reshape(c_out, -1)                   # (C_out, N*Ho*Wo)
    dw = (d @ cols.T).reshape(w.shape) if need_weight_grad else None
    db = d.sum(axis=1) if need_weight_grad and has_bias else None
    dx = col2im(w.reshape(c_out, -1).T @ d, x_shape, kh, kw, stride, pad) if need_input_grad else None
    return dx, dw, db
