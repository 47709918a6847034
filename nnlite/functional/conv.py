"""2-D convolution (cross-correlation, as every framework) via im2col + one GEMM.

Layout: the public tensors are NCHW. Internally the padded input is laid out channel-first
as (C, N, Hp, Wp), so the patch matrix is (C*kh*kw, N*Ho*Wo) and its rows are ordered
(c, i, j) exactly like a weight reshaped from (C_out, C_in, kh, kw). The convolution is then
one matrix multiply ``W_mat @ cols``; col2im adds the patch gradients back with one strided
slice per kernel offset (kh*kw Python iterations, never a loop over pixels or samples).

Output size: Ho = (H + 2*ph - kh) // sh + 1, Wo likewise.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """floor((size + 2*pad - kernel) / stride) + 1, with integer arithmetic."""
    out = (size + 2 * pad - kernel) // stride + 1
    if out <= 0:
        raise ValueError(
            f"kernel {kernel} with padding {pad} does not fit an input of size {size}")
    return out


def _pad_channel_first(x, ph, pw):
    """x: (N, C, H, W) -> (C, N, H + 2ph, W + 2pw), zero padded, contiguous."""
    n, c, h, w = x.shape
    xp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    return xp


def im2col(x, kh, kw, stride=(1, 1), pad=(0, 0)):
    """Patch matrix of x.

    x: (N, C, H, W)  ->  cols: (C*kh*kw, N*Ho*Wo), rows ordered (c, i, j), columns (n, y, x).
    Built from a strided view of the padded input; one copy (the reshape).
    """
    sh, sw = stride
    ph, pw = pad
    n, c, h, w = x.shape
    ho = conv_output_size(h, kh, sh, ph)
    wo = conv_output_size(w, kw, sw, pw)
    xp = _pad_channel_first(x, ph, pw)
    s_c, s_n, s_h, s_w = xp.strides
    windows = as_strided(
        xp, shape=(c, kh, kw, n, ho, wo),
        strides=(s_c, s_h, s_w, s_n, s_h * sh, s_w * sw), writeable=False)
    return windows.reshape(c * kh * kw, n * ho * wo), (ho, wo)


def col2im(dcols, x_shape, kh, kw, stride=(1, 1), pad=(0, 0)):
    """Adjoint of ``im2col``: add every patch gradient back to its input position.

    dcols: (C*kh*kw, N*Ho*Wo)  ->  dx: (N, C, H, W). One strided ``+=`` per kernel offset.
    """
    sh, sw = stride
    ph, pw = pad
    n, c, h, w = x_shape
    ho = conv_output_size(h, kh, sh, ph)
    wo = conv_output_size(w, kw, sw, pw)
    d = dcols.reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += d[:, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)


def conv2d_forward(x, w, b=None, stride=1, pad=0):
    """out[n, o] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, y*s + i, x*s + j] + b[o].

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None;
    stride, pad: int or (h, w) pair (zero padding)  ->  out: (N, C_out, Ho, Wo), cache.
    """
    stride = (stride, stride) if np.isscalar(stride) else tuple(stride)
    pad = (pad, pad) if np.isscalar(pad) else tuple(pad)
    c_out, _, kh, kw = w.shape
    n = x.shape[0]
    cols, (ho, wo) = im2col(x, kh, kw, stride, pad)
    out = w.reshape(c_out, -1) @ cols                       # the one GEMM
    if b is not None:
        out += b[:, None]
    out = np.ascontiguousarray(out.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3))
    return out, (x.shape, cols, w, b is not None, stride, pad)


def conv2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of conv2d_forward.

    dout: (N, C_out, Ho, Wo) -> dx: (N, C_in, H, W), dw: (C_out, C_in, kh, kw), db: (C_out,).
    dW = dout_mat @ cols^T;  dcols = W_mat^T @ dout_mat;  dx = col2im(dcols);  db = sum dout.
    Pass ``need_input_grad=False`` (first layer) or ``need_weight_grad=False`` (frozen layer)
    to skip that GEMM; the skipped result is returned as None.
    """
    x_shape, cols, w, has_bias, stride, pad = cache
    c_out, _, kh, kw = w.shape
    dmat = dout.transpose(1, 0, 2, 3).reshape(c_out, -1)
    dw = db = dx = None
    if need_weight_grad:
        dw = (dmat @ cols.T).reshape(w.shape)
        if has_bias:
            db = dmat.sum(axis=1)
    if need_input_grad:
        dcols = w.reshape(c_out, -1).T @ dmat
        dx = col2im(dcols, x_shape, kh, kw, stride, pad)
    return dx, dw, db
