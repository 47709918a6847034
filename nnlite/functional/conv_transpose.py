"""2-D transposed convolution ("deconvolution"): the adjoint of ``conv2d`` on the same weights.

No third convolution is written here: the two passes are the textbook convolution's own
passes run the other way round, through the stable API ``im2col`` / ``col2im`` of
``nnlite.functional.conv``:

* forward  = the convolution's INPUT GRADIENT  (W_mat^T @ x_mat, then ``col2im``),
* backward = the convolution's FORWARD         (``im2col`` of dout, then W_mat @ cols),
  and the weight gradient is x_mat @ cols^T with the same patch matrix.

Shapes: x (N, C_in, H, W); w (C_in, C_out, kh, kw) (PyTorch's ConvTranspose2d layout: the
weight of a conv mapping C_out -> C_in); out (N, C_out, Ho, Wo) with
    Ho = (H - 1)*sh - 2*ph + kh + oph,   Wo = (W - 1)*sw - 2*pw + kw + opw,
output padding op in [0, stride) (the rows/columns added at the bottom/right that the
convolution's floor division would have dropped, so that conv2d(out) has x's size again).
"""
from __future__ import annotations


from .._checks import pair
from .conv import col2im, im2col


def conv_transpose_output_size(size: int, kernel: int, stride: int, pad: int, output_pad: int = 0) -> int:
    """(size - 1)*stride - 2*pad + kernel + output_pad; ValueError when not >= 1 or op >= stride."""
    if not 0 <= output_pad < stride:
        raise ValueError(f"output_padding must be in [0, stride) = [0, {stride}), got {output_pad}")
    out = (size - 1) * stride - 2 * pad + kernel + output_pad
    if out <= 0:
        raise ValueError(f"transposed conv with kernel {kernel}, stride {stride}, padding {pad} gives an "
                         f"empty output for an input of size {size}")
    return out


def conv_transpose2d_forward(x, w, b=None, stride=1, pad=0, output_pad=0):
    """out[n, o, y*sh + i - ph, x*sw + j - pw] += sum_c x[n, c, y, x] * w[c, o, i, j]  (+ b[o]).

    x: (N, C_in, H, W); w: (C_in, C_out, kh, kw); b: (C_out,) or None; stride, pad,
    output_pad: int or pair -> out: (N, C_out, Ho, Wo), cache.
    As matrices (the conv's input gradient, with the conv's dout := x):
        out = col2im(W_mat^T @ X),  W_mat = w as (C_in, C_out*kh*kw),  X = x as (C_in, N*H*W).
    Derivative: dX = W_mat @ im2col(dout)  (the conv's forward), dW_mat = X @ im2col(dout)^T.
    """
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(pad, "pad")
    oph, opw = pair(output_pad, "output_pad")
    n, c_in, h, wd = x.shape
    if w.ndim != 4 or w.shape[0] != c_in:
        raise ValueError(f"w must have shape (C_in={c_in}, C_out, kh, kw), got {w.shape}")
    _, c_out, kh, kw = w.shape
    ho = conv_transpose_output_size(h, kh, sh, ph, oph)
    wo = conv_transpose_output_size(wd, kw, sw, pw, opw)
    xm = x.transpose(1, 0, 2, 3).reshape(c_in, -1)                        # (C_in, N*H*W)
    out = col2im(w.reshape(c_in, -1).T @ xm, (n, c_out, ho, wo), kh, kw, (sh, sw), (ph, pw))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out, (xm, x.shape, w, b is not None, (sh, sw), (ph, pw))


def conv_transpose2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of conv_transpose2d_forward. dout: (N, C_out, Ho, Wo) -> dx (N, C_in, H, W), dw, db.

    cols = im2col(dout) (C_out*kh*kw, N*H*W): dx = W_mat @ cols (= conv2d_forward(dout, w));
    dW_mat = X @ cols^T; db = sum of dout over (N, Ho, Wo). A part not needed is None.
    """
    xm, x_shape, w, has_bias, stride, pad = cache
    c_in, _, kh, kw = w.shape
    cols, (h, wd) = im2col(dout, kh, kw, stride, pad)                      # the conv's forward patches
    if (h, wd) != tuple(x_shape[2:]):
        raise ValueError(f"dout of shape {dout.shape} does not match the forward's output")
    dx = dw = db = None
    if need_input_grad:
        dx = (w.reshape(c_in, -1) @ cols).reshape(c_in, x_shape[0], h, wd).transpose(1, 0, 2, 3)
    if need_weight_grad:
        dw = (xm @ cols.T).reshape(w.shape)
        db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
