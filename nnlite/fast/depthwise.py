"""Engine depthwise 2-D convolution (same contract as ``nnlite.functional.depthwise``).

out[n, c, y, x] = sum_{i,j} w[c, 0, i, j] * xpad[n, c, y*sh + i, x*sw + j] + b[c]   (m = 1)

The textbook kernel makes kh*kw passes over the whole batch (one multiply-add per kernel
offset). The engine makes the same sums in a different place and layout:

* **channel-last windows.** The images are copied, zero padded, into a reused
  (k, H+2ph, W+2pw, C) workspace, and all kh*kw offsets are ONE read-only strided view of it,
  ``_windows``: (k, Ho, Wo, kh, kw, C), element [n, y, x, i, j, c] = xpad[n, y*sh+i, x*sw+j, c].
  One ``einsum("nyxijc,ijc->nyxc")`` with the weights as (kh, kw, C) then sums the offsets per
  output element in a single pass, writing the chunk's output rows (measured 1.5-1.9x faster
  than the per-offset multiply-adds on a 96-channel 16x16 chunk). The output is returned as an
  (N, C, Ho, Wo) transposed view of an (N, Ho, Wo, C) buffer, the layout of the engine's conv,
  batch norm and ReLU (the next layer reads it contiguously).
* **in-cache chunks on the workers.** The batch is cut into chunks of about ``CHUNK_BYTES``
  of padded input (``nnlite.parallel.run_chunks``: inside a ``parallel.threads()`` block,
  worker t of T takes chunks t, t+T, ...).
* **backward**, per chunk of the same plan (the padded chunk rebuilt from the cached input,
  never cached: it is larger than the input):
  dw[c, 0, i, j] = sum_{n,y,x} dout[n, c, y, x] * xpad[n, c, y*sh+i, x*sw+j]: one
  ``einsum("nyxijc,nyxc->ijc")`` over the same windows; db[c] = sum dout[:, c];
  dx, stride 1 (pad <= kernel - 1): the convolution of dout, zero padded by kh-1-ph / kw-1-pw,
  with the flipped kernel, one einsum over its windows; other strides: the textbook's scatter
  dxpad[:, i::sh, j::sw] += dout * w[:, 0, i, j] per offset in a zeroed padded workspace.
  Each worker returns its partial dw, db; they are summed in worker order (deterministic for
  a given worker count). Sums run in another order than the textbook's: equal to rounding.

Channel multiplier m > 1 (``w`` of shape (C*m, 1, kh, kw)) runs the textbook kernel: MobileNet
uses m = 1. Cache: ``_Cache(x, w, has_bias, stride, pad)``, the input itself (no copy); a
textbook cache (m > 1) is recognised by its type and sent to the textbook backward.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..functional.conv import conv_output_size
from ..functional.depthwise import _check_args
from ..functional.depthwise import depthwise_conv2d_backward as _textbook_backward
from ..functional.depthwise import depthwise_conv2d_forward as _textbook_forward
from ..parallel import num_threads, run_chunks
from .conv import _workspace, _zero

#: Bytes of padded input in one chunk: with the chunk's output rows (about as large) it stays in
#: a core's L2 cache (2 MiB here).
CHUNK_BYTES = 512 << 10


class _Cache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    stride: tuple
    pad: tuple


def _plan(n, padded_image_bytes):
    """(images per chunk, [(n0, n1), ...]): about ``CHUNK_BYTES`` of padded input per chunk
    (at least one image), and at least one chunk per worker when the batch has the images."""
    m = max(1, CHUNK_BYTES // max(padded_image_bytes, 1))
    m = int(max(1, min(m, -(-n // num_threads()), n)))
    return m, [(n0, min(n0 + m, n)) for n0 in range(0, n, m)]


def _padded(xh, n0, n1, m, pad, role="dw-padded"):
    """Images n0..n1-1 of xh (N, H, W, C view), zero padded by pad = (ph, pw), in a workspace
    (k, H+2ph, W+2pw, C) whose border is zero since its creation (only the interior is ever
    written); the view itself when there is no padding."""
    ph, pw = pad
    if not (ph or pw):
        return xh[n0:n1]
    _, h, w, c = xh.shape
    xp = _workspace((role, ph, pw), (m, h + 2 * ph, w + 2 * pw, c), xh.dtype,
                    init=_zero)[:n1 - n0]
    xp[:, ph:ph + h, pw:pw + w] = xh[n0:n1]
    return xp


def _view(a, i, j, stride, ho, wo):
    """Offset (i, j)'s strided window of a padded (k, Hp, Wp, C) chunk -> (k, Ho, Wo, C)."""
    sh, sw = stride
    return a[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]


def _windows(a, kh, kw, stride, ho, wo):
    """All windows of a padded (k, Hp, Wp, C) chunk as one read-only strided view
    (k, Ho, Wo, kh, kw, C): element [n, y, x, i, j, c] = a[n, y*sh + i, x*sw + j, c]."""
    s_n, s_h, s_w, s_c = a.strides
    return as_strided(a, shape=(a.shape[0], ho, wo, kh, kw, a.shape[3]), writeable=False,
                      strides=(s_n, s_h * stride[0], s_w * stride[1], s_h, s_w, s_c))


def depthwise_conv2d_forward(x, w, b=None, stride=1, pad=0):
    """out[n, c, y, x] = sum_{i,j} w[c, 0, i, j] * xpad[n, c, y*sh + i, x*sw + j] + b[c].

    x: (N, C, H, W), any memory layout; w: (C*m, 1, kh, kw); b: (C*m,) or None; stride, pad:
    int or pair -> out: (N, C*m, Ho, Wo) (a fresh array stored channel-last when m = 1), cache.
    The textbook kernel's values, to rounding."""
    stride, pad, mult = _check_args(x, w, b, stride, pad)
    if mult != 1:
        return _textbook_forward(x, w, b, stride, pad)
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    ho, wo = conv_output_size(h, kh, stride[0], pad[0]), conv_output_size(wd, kw, stride[1], pad[1])
    xh = x.transpose(0, 2, 3, 1)
    wk = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))                 # (kh, kw, C)
    out = np.empty((n, ho, wo, c), dtype=x.dtype)
    m, chunks = _plan(n, (h + 2 * pad[0]) * (wd + 2 * pad[1]) * c * x.itemsize)

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            o = out[n0:n1]
            np.einsum("nyxijc,ijc->nyxc", _windows(_padded(xh, n0, n1, m, pad), kh, kw, stride, ho, wo),
                      wk, out=o)
            if b is not None:
                o += b
    run_chunks(work, chunks)
    return out.transpose(0, 3, 1, 2), _Cache(x, w, b is not None, stride, pad)


def depthwise_conv2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of depthwise_conv2d_forward.  dout: (N, C, Ho, Wo) -> dx (N, C, H, W) (stored
    channel-last), dw (C, 1, kh, kw), db (C,) or None; a part not needed is None.

    With v_ij the forward's view of offset (i, j): dw[c, 0, i, j] = sum dout[:, c] * v_ij[:, c],
    db[c] = sum dout[:, c], dxpad[:, :, i::sh, j::sw] += dout * w[:, 0, i, j]. ``dout`` is never
    written."""
    if not isinstance(cache, _Cache):
        return _textbook_backward(dout, cache, need_input_grad, need_weight_grad)
    x, w, has_bias, stride, pad = cache
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    ho, wo = dout.shape[2:]
    (ph, pw), dt = pad, dout.dtype
    xh, dh = x.transpose(0, 2, 3, 1), dout.transpose(0, 2, 3, 1)
    wk = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))                 # (kh, kw, C)
    dx = np.empty((n, h, wd, c), dtype=dt) if need_input_grad else None
    want_db = need_weight_grad and has_bias
    m, chunks = _plan(n, (h + 2 * ph) * (wd + 2 * pw) * c * x.itemsize)

    def work(worker, my_chunks):
        dwk = np.zeros((kh, kw, c), dtype=dt) if need_weight_grad else None
        db = np.zeros(c, dtype=dt) if want_db else None
        for n0, n1 in my_chunks:
            k = n1 - n0
            d = dh[n0:n1]
            if not d.flags.c_contiguous:                  # an NCHW dout: one copy per chunk
                buf = _workspace("dw-dout", (m, ho, wo, c), dt)[:k]
                np.copyto(buf, d)
                d = buf
            if need_weight_grad:
                xw = _windows(_padded(xh, n0, n1, m, pad), kh, kw, stride, ho, wo)
                dwk += np.einsum("nyxijc,nyxc->ijc", xw, d)
                if db is not None:
                    db += d.reshape(-1, c).sum(axis=0)
            if need_input_grad:
                _input_grad_chunk(d, wk, dx[n0:n1], stride, pad, m)
        return dwk, db

    parts = run_chunks(work, chunks)
    dw = db = None
    if need_weight_grad:                                  # combined in worker order: deterministic
        dwk = parts[0][0]
        for part, _ in parts[1:]:
            dwk += part
        dw = np.ascontiguousarray(dwk.transpose(2, 0, 1))[:, None]       # (C, 1, kh, kw)
        if want_db:
            db = parts[0][1]
            for _, part in parts[1:]:
                db += part
    return (dx.transpose(0, 3, 1, 2) if dx is not None else None), dw, db


def _input_grad_chunk(d, wk, dx, stride, pad, m):
    """dx (k, H, W, C) of one chunk from its output gradient d (k, Ho, Wo, C, C-contiguous).

    Stride 1 with pad <= kernel - 1: the convolution of d, zero padded by (kh-1-ph, kw-1-pw),
    with the flipped kernel, one einsum over its windows writing dx. Otherwise the scatter of
    the textbook: dxpad[:, i::sh, j::sw] += d * w[:, 0, i, j] per offset in a zeroed padded
    workspace, whose interior is then copied to dx."""
    kh, kw, c = wk.shape
    k, h, w = dx.shape[:3]
    ho, wo = d.shape[1:3]
    (ph, pw), qh, qw = pad, kh - 1 - pad[0], kw - 1 - pad[1]
    if stride == (1, 1) and qh >= 0 and qw >= 0:
        dp = _padded(d, 0, k, m, (qh, qw), role="dw-dout-padded")
        np.einsum("nyxijc,ijc->nyxc", _windows(dp, kh, kw, (1, 1), h, w), wk[::-1, ::-1], out=dx)
        return
    dxp = _workspace(("dw-dxpad", ph, pw), (m, h + 2 * ph, w + 2 * pw, c), d.dtype)[:k]
    dxp.fill(0)
    prod = _workspace("dw-product", (m, ho, wo, c), d.dtype)[:k]
    for i in range(kh):
        for j in range(kw):
            np.multiply(d, wk[i, j], out=prod)
            _view(dxp, i, j, stride, ho, wo)[...] += prod
    dx[...] = dxp[:, ph:ph + h, pw:pw + w]
