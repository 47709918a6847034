"""Pooling kernels: max, average (any window and stride, overlapping windows included),
global average pooling, and flatten. Inputs are NCHW; no padding (as Keras' 'valid').

Every kernel works offset by offset: x[:, :, i::sh, j::sw] (cropped to the output grid) is a
strided (N, C, Ho, Wo) view holding offset (i, j) of every window, so forward is one pass per
offset (a running maximum or sum) and backward writes one strided slice of dx per offset
(ph*pw Python iterations, never a loop over pixels; no window tensor is ever copied). When
the windows do not overlap (stride >= window) those writes are plain assignments, and when
they also tile the input dx needs no zero fill. Arrays keep the memory layout of the input:
channel-last input (as conv2d_forward returns) gives channel-last output and gradient.

Max-pool tie rule: the whole gradient of a window goes to its FIRST maximum in row-major
order within the window (as ``argmax``); other tied positions get zero.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .conv import conv_output_size, is_nhwc


def _params(kernel, stride):
    ph, pw = (kernel, kernel) if np.isscalar(kernel) else tuple(kernel)
    if stride is None:
        stride = (ph, pw)
    sh, sw = (stride, stride) if np.isscalar(stride) else tuple(stride)
    return ph, pw, sh, sw


def _offset_slices(ph, pw, sh, sw, ho, wo):
    """[(k, (rows, cols)), ...] for every window offset (i, j) in row-major order, k = i*pw + j:
    the (H, W) slices that pick offset (i, j) of every window, x[:, :, rows, cols] being
    (N, C, Ho, Wo)."""
    return [(i * pw + j, (slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)))
            for i in range(ph) for j in range(pw)]


def _index_dtype(k):
    return np.uint8 if k <= 256 else np.int32


def _new(make, shape, dtype, channel_last):
    """``make`` (np.empty or np.zeros) an (N, C, H, W) array of ``shape``, stored channel-last
    (an (N, H, W, C) buffer seen through a transpose) when ``channel_last``."""
    n, c, h, w = shape
    if channel_last:
        return make((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
    return make(shape, dtype=dtype)


_empty = partial(_new, np.empty)   # _empty(shape, dtype, channel_last)
_zeros = partial(_new, np.zeros)   # _zeros(shape, dtype, channel_last)


def _as_layout(a, channel_last):
    """``a`` stored channel-last (or C-contiguous) to match the cached layout: element-wise
    passes over two differently laid-out arrays are strided gathers, a copy up front is not."""
    if channel_last and not is_nhwc(a):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if not channel_last and not a.flags.c_contiguous:
        return np.ascontiguousarray(a)
    return a


def _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, ho, wo, channel_last, put):
    """dx[n, c, y*sh + i, x*sw + j] += contribution of offset (i, j), for every offset.

    ``put(k, dst, assign)`` writes (assign=True) or adds the contribution of offset index k into
    the strided view ``dst`` of dx. Windows that never overlap (stride >= window) are assigned;
    dx then needs no zero fill when the windows also tile the whole input."""
    n, c, h, w = x_shape
    non_overlapping = sh >= ph and sw >= pw
    tiles = non_overlapping and sh == ph and sw == pw and ho * ph == h and wo * pw == w
    dx = (_empty if tiles else _zeros)(x_shape, dtype, channel_last)
    for k, (rows, cols) in _offset_slices(ph, pw, sh, sw, ho, wo):
        put(k, dx[:, :, rows, cols], non_overlapping)
    return dx


def _first_offset(x, kernel, stride):
    """What both pooling forwards start with.

    x: (N, C, H, W); kernel, stride: int or pair (stride defaults to kernel). Returns
    ``(ph, pw, sh, sw)``, ``channel_last`` (x's layout, kept by the output), ``offs`` (see
    :func:`_offset_slices`) and ``out``: (N, C, Ho, Wo) holding offset (0, 0) of every window.
    """
    ph, pw, sh, sw = _params(kernel, stride)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, ph, sh, 0), conv_output_size(w, pw, sw, 0)
    channel_last = is_nhwc(x) and not x.flags.c_contiguous
    offs = _offset_slices(ph, pw, sh, sw, ho, wo)
    out = _empty((n, c, ho, wo), x.dtype, channel_last)
    out[...] = x[:, :, offs[0][1][0], offs[0][1][1]]
    return (ph, pw, sh, sw), channel_last, offs, out


def maxpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = max_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W); kernel, stride: int or pair (stride defaults to kernel)
    -> out: (N, C, Ho, Wo), cache (holds the window offset index of each window's first maximum).
    One pass per window offset over strided views (no window copy); channel-last input gives
    channel-last output.
    """
    params, channel_last, offs, out = _first_offset(x, kernel, stride)
    for _, (rows, cols) in offs[1:]:
        np.maximum(out, x[:, :, rows, cols], out=out)
    # Index of the FIRST maximum in row-major order, with cheap element-wise passes (no
    # masked writes, which are slow in NumPy): ``taken`` marks windows whose maximum was
    # already seen; offset k claims the rest where it equals the maximum; the last offset
    # gets whatever is left.
    k_all = len(offs)
    idx = _index_dtype(k_all)
    arg = _zeros(out.shape, idx, channel_last)
    if k_all > 1:
        taken = _empty(out.shape, np.bool_, channel_last)
        np.equal(x[:, :, offs[0][1][0], offs[0][1][1]], out, out=taken)
        hit = _empty(out.shape, np.bool_, channel_last)
        tmp = _empty(out.shape, idx, channel_last)
        for k, (rows, cols) in offs[1:-1]:
            np.equal(x[:, :, rows, cols], out, out=hit)
            np.greater(hit, taken, out=hit)                 # hit and not yet taken
            np.multiply(hit, idx(k), out=tmp)
            arg += tmp
            taken |= hit
        np.logical_not(taken, out=taken)
        np.multiply(taken, idx(k_all - 1), out=tmp)
        arg += tmp
    return out, (x.shape, x.dtype, arg, params, channel_last)


def maxpool2d_backward(dout, cache):
    """dx gets dout at each window's first maximum (see the tie rule), summed over windows."""
    x_shape, dtype, arg, (ph, pw, sh, sw), channel_last = cache
    ho, wo = arg.shape[2:]
    dout = _as_layout(dout, channel_last)
    hit = _empty(arg.shape, np.bool_, channel_last)
    part = None

    def put(k, dst, assign):
        nonlocal part
        np.equal(arg, k, out=hit)
        if assign:
            np.multiply(dout, hit, out=dst)
        else:
            if part is None:
                part = _empty(arg.shape, np.result_type(dout, dtype), channel_last)
            dst += np.multiply(dout, hit, out=part)

    return _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, ho, wo, channel_last, put)


def avgpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = mean_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), cache.
    """
    params, channel_last, offs, out = _first_offset(x, kernel, stride)
    for _, (rows, cols) in offs[1:]:
        out += x[:, :, rows, cols]
    out /= np.asarray(len(offs), dtype=x.dtype)           # ph * pw
    return out, (x.shape, x.dtype, params, channel_last, out.shape[2:])


def avgpool2d_backward(dout, cache):
    """Every input position of a window gets dout / (ph*pw), summed over windows."""
    x_shape, dtype, (ph, pw, sh, sw), channel_last, (ho, wo) = cache
    share = _as_layout(dout, channel_last) / np.asarray(ph * pw, dtype=dtype)

    def put(k, dst, assign):
        if assign:
            dst[...] = share
        else:
            dst += share

    return _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, ho, wo, channel_last, put)


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
