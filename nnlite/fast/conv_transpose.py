"""Engine transposed convolution: the engine convolution's passes run the other way round.

Same contract as the textbook ``nnlite.functional.conv_transpose`` (shapes, layouts, output
padding), no new kernel code: every GEMM, patch build, scatter and worker split is the engine
conv's (``nnlite.fast.conv``: chunked, channel-last, on the workers of a ``parallel.threads``
block), so its tuning and probes apply unchanged.

* forward  = the engine conv's INPUT-GRADIENT path, ``conv2d_backward(x, cache,
  need_weight_grad=False)`` with x as the conv's dout and a conv cache whose "input" is a
  zero-stride placeholder of the output's shape (that path reads only its shape);
* backward = the engine conv's FORWARD, ``conv2d_forward(dout, w)`` (the input gradient),
  then its WEIGHT-GRADIENT path ``conv2d_backward(x, that cache, need_input_grad=False)``
  (dw of the transposed conv is dW of the conv with input dout and output gradient x).

x: (N, C_in, H, W); w: (C_in, C_out, kh, kw) -> out: (N, C_out, Ho, Wo),
Ho = (H - 1)*sh - 2*ph + kh + oph.  The engine conv cache layout (x, w, has_bias, stride, pad,
kept) is relied on here: this file belongs with ``nnlite/fast/conv.py``.
"""
from __future__ import annotations

import numpy as np

from .._checks import pair
from ..functional.conv_transpose import conv_transpose_output_size
from .conv import ConvCache, conv2d_backward, conv2d_forward


def conv_transpose2d_forward(x, w, b=None, stride=1, pad=0, output_pad=0):
    """out = the engine conv's input gradient for dout = x (+ b[o]).  -> out, cache."""
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(pad, "pad")
    oph, opw = pair(output_pad, "output_pad")
    n, c_in, h, wd = x.shape
    if w.ndim != 4 or w.shape[0] != c_in:
        raise ValueError(f"w must have shape (C_in={c_in}, C_out, kh, kw), got {w.shape}")
    _, c_out, kh, kw = w.shape
    shape = (n, c_out, conv_transpose_output_size(h, kh, sh, ph, oph),
             conv_transpose_output_size(wd, kw, sw, pw, opw))
    placeholder = np.broadcast_to(np.zeros((), dtype=x.dtype), shape)   # only its shape is read
    out, _, _ = conv2d_backward(x, ConvCache(placeholder, w, False, (sh, sw), (ph, pw)), need_weight_grad=False)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out, (x, w, b is not None, (sh, sw), (ph, pw))


def conv_transpose2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """dx = engine conv2d_forward(dout, w); dw = the engine conv's weight gradient with input
    dout and output gradient x; db = sum of dout over (N, Ho, Wo). A part not needed is None."""
    x, w, has_bias, stride, pad = cache
    if not need_input_grad and not need_weight_grad:
        return None, None, None
    dx, conv_cache = conv2d_forward(dout, w, None, stride, pad)
    if dx.shape != x.shape:
        raise ValueError(f"dout of shape {dout.shape} does not match the forward's output")
    dw = db = None
    if need_weight_grad:
        _, dw, _ = conv2d_backward(x, conv_cache, need_input_grad=False)
        db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return (dx if need_input_grad else None), dw, db
