"""2-D convolution (cross-correlation, as every framework) via im2col + GEMM.

Public tensors are NCHW (shapes and indexing). Internally the kernels work channel-LAST:

* forward pads the input into a contiguous (N, Hp, Wp, C) array ``xp`` and builds the patch
  matrix ``cols`` (N*Ho*Wo, kh*kw*C) from a strided view of it (one contiguous copy; columns
  ordered (i, j, c)). The convolution is the GEMM ``cols @ W_k`` with W_k (kh*kw*C, C_out),
  whose result (N*Ho*Wo, C_out) IS the output in NHWC memory order. It is returned as an
  (N, C_out, Ho, Wo) array: a transposed, non-copied view of that memory ("channel-last").
  NumPy handles any strides, and the next conv, pool or ReLU reads that memory contiguously.
  A big patch matrix is built and multiplied in slabs of whole kernel rows
  (``PATCH_SLAB_BYTES``), the partial products added up, so no layer ever holds all of it.
* backward: dW^T = cols^T @ dout_mat (patches rebuilt from the cached input); dx is built
  with one small GEMM per kernel offset, ``dout_mat @ W[:, :, i, j]`` (N*Ho*Wo, C_in), added
  into the matching strided slice of dx (kh*kw Python iterations, never a loop over pixels
  or samples). Those slices are long contiguous runs in NHWC, which is why this beats
  scattering one big (N*Ho*Wo, kh*kw*C) patch-gradient matrix (col2im), whose per-offset
  slices are only C elements long.

Cache: ``(x_shape, ("x", x) or ("cols", cols), w, has_bias, stride, pad)``: the input itself
(no copy; usually alive anyway as the previous layer's output), or for a 1x1 stride-1 conv
the patch matrix, which is then a view of the input. Patches that are not cached are built
in a reused per-thread scratch buffer when big (see ``_scratch_array``). The channel-first
``im2col``/``col2im`` of the previous version are kept as public utilities.

Output size: Ho = (H + 2*ph - kh) // sh + 1, Wo likewise.
"""
from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

#: The patch matrix is built and multiplied in slabs of whole kernel rows of at most this many
#: bytes each (at least one kernel row), so a big layer never holds its whole patch matrix.
#: It is not cached: backward rebuilds it from the cached input (a copy is cheaper than the
#: memory: caching even the first CIFAR layer's 14 MiB patch matrix raises the training
#: step's peak by as much).
PATCH_SLAB_BYTES = 16 << 20

#: slabs bigger than this go to the scratch buffer (and smaller ones too once it exists and is
#: big enough): glibc serves allocations up to 32 MiB from its heap (reused memory, no page
#: faults) and maps bigger ones fresh every time.
SCRATCH_MIN_BYTES = 32 << 20

#: dx: one GEMM per kernel row (True) or per kernel offset (False); see _conv_input_grad.
DX_GEMM_PER_ROW = False
#: dx: a single GEMM for all offsets when kh*kw*C_in is at most this (one input channel;
#: measured: 10-20% faster for C_in = 1, slower for C_in = 3, whose adds run 3 floats long).
DX_ONE_GEMM_MAX_COLS = 25

_scratch = threading.local()


def _scratch_array(shape, dtype):
    """A reused per-thread scratch array (contents undefined). Big fresh arrays cost page
    faults (the kernel zeroes every new page: ~2/3 of the time of an im2col copy here), so the
    patch slabs that are not cached live in one buffer that only grows."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        _scratch.buf = None                     # drop the old one before allocating
        buf = _scratch.buf = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def release_scratch():
    """Free this thread's scratch buffer (it is re-created on the next big convolution)."""
    _scratch.buf = None


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """floor((size + 2*pad - kernel) / stride) + 1, with integer arithmetic."""
    out = (size + 2 * pad - kernel) // stride + 1
    if out <= 0:
        raise ValueError(
            f"kernel {kernel} with padding {pad} does not fit an input of size {size}")
    return out


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


# ----------------------------------------------------------------------------- layout helpers

def is_nhwc(x) -> bool:
    """True when the NCHW-shaped 4-D array ``x`` is stored channel-last (a transposed view of a
    C-contiguous (N, H, W, C) array), as the outputs of ``conv2d_forward`` are."""
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def _pad_nhwc(x, ph, pw):
    """x: (N, C, H, W) (any memory layout) -> contiguous (N, H + 2ph, W + 2pw, C), zero padded.

    Without padding and with channel-last input this is a view (no copy)."""
    xh = x.transpose(0, 2, 3, 1)
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(xh)
    n, h, w, c = xh.shape
    xp = np.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    xp[:, :ph] = 0                          # zero only the border, then copy the interior once
    xp[:, ph + h:] = 0
    xp[:, ph:ph + h, :pw] = 0
    xp[:, ph:ph + h, pw + w:] = 0
    xp[:, ph:ph + h, pw:pw + w] = xh
    return xp


def _row_slabs(kh, row_bytes):
    """Split the kernel rows 0..kh-1 into slabs [(i0, i1), ...] whose patch matrices hold at
    most ``PATCH_SLAB_BYTES`` each (at least one kernel row per slab)."""
    rows = int(max(1, min(kh, PATCH_SLAB_BYTES // max(row_bytes, 1))))
    return [(i0, min(i0 + rows, kh)) for i0 in range(0, kh, rows)]


def _patch_slab(xp, i0, i1, kw, sh, sw, ho, wo, scratch=False):
    """Patch matrix of kernel rows i0..i1-1: padded (N, Hp, Wp, C) -> (N*Ho*Wo, (i1-i0)*kw*C),
    columns ordered (i, j, c).

    One copy of a strided window view into a contiguous array (a fresh one, or with
    ``scratch`` and a big slab the scratch buffer); a 1x1 stride-1 conv needs none (a view of
    ``xp``)."""
    n, _, _, c = xp.shape
    rows = i1 - i0
    if rows == 1 and kw == 1 and sh == sw == 1:
        return xp[:, i0:i0 + ho, :wo].reshape(n * ho * wo, c)
    s_n, s_h, s_w, s_c = xp.strides
    win = as_strided(xp[:, i0:], shape=(n, ho, wo, rows, kw, c),
                     strides=(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c), writeable=False)
    shape = (n, ho, wo, rows, kw, c)
    nbytes = n * ho * wo * rows * kw * c * xp.itemsize
    held = getattr(_scratch, "buf", None)
    if scratch and (nbytes > SCRATCH_MIN_BYTES or (held is not None and held.nbytes >= nbytes)):
        cols = _scratch_array(shape, xp.dtype)
    else:
        cols = np.empty(shape, dtype=xp.dtype)
    np.copyto(cols, win)
    return cols.reshape(n * ho * wo, rows * kw * c)


def _offset_range(i, pad, stride, size, out_size):
    """Output positions y whose input row y*stride + i - pad lies in [0, size), as
    (y0, y1, first input row); y1 <= y0 when none does."""
    y0 = max(0, -((i - pad) // stride))                     # ceil((pad - i) / stride)
    y1 = min(out_size, (size - 1 + pad - i) // stride + 1)
    return y0, y1, y0 * stride + i - pad


# ----------------------------------------------------------------------------- kernels

def conv2d_forward(x, w, b=None, stride=1, pad=0):
    """out[n, o] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, y*s + i, x*s + j] + b[o].

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None;
    stride, pad: int or (h, w) pair (zero padding)  ->  out: (N, C_out, Ho, Wo), cache.
    ``out`` is stored channel-last (see the module docstring); index it as NCHW.
    """
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
    n, c, h, wd = x.shape
    c_out, c_in, kh, kw = w.shape
    if c_in != c:
        raise ValueError(f"input has {c} channels, weight expects {c_in}")
    ho = conv_output_size(h, kh, sh, ph)
    wo = conv_output_size(wd, kw, sw, pw)
    p = n * ho * wo
    xp = _pad_nhwc(x, ph, pw)
    w_k = w.transpose(2, 3, 1, 0).reshape(kh * kw * c, c_out)      # rows (i, j, c)
    slabs = _row_slabs(kh, p * kw * c * x.itemsize)
    out = tmp = cols = None
    for i0, i1 in slabs:                                             # usually one slab
        cols = _patch_slab(xp, i0, i1, kw, sh, sw, ho, wo, scratch=True)
        w_slab = w_k[i0 * kw * c:i1 * kw * c]
        if out is None:
            out = cols @ w_slab                                      # the GEMM
        else:
            if tmp is None:
                tmp = np.empty_like(out)
            out += np.matmul(cols, w_slab, out=tmp)
    del tmp
    if b is not None:
        out += b
    out = out.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2)
    # Keep only the input (usually alive anyway as the previous layer's output) and rebuild
    # the patches in backward: the patch matrix is kh*kw times bigger than the input, and
    # rebuilding it is one cheap copy. A 1x1 stride-1 conv's patch matrix is a view: keep it.
    saved = ("cols", cols) if len(slabs) == 1 and np.shares_memory(cols, xp) else ("x", x)
    return out, (x.shape, saved, w, b is not None, (sh, sw), (ph, pw))


def conv2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of conv2d_forward.

    dout: (N, C_out, Ho, Wo) -> dx: (N, C_in, H, W), dw: (C_out, C_in, kh, kw), db: (C_out,).
    dW^T = cols^T @ dout_mat;  dx[.., y*s+i-p, x*s+j-p] += (dout_mat @ W[:, :, i, j]) per offset;
    db = sum dout. Pass ``need_input_grad=False`` (first layer) or ``need_weight_grad=False``
    (frozen layer) to skip that part; the skipped result is returned as None.
    ``dx`` is stored channel-last, like the forward output.
    """
    x_shape, (kind, saved), w, has_bias, (sh, sw), (ph, pw) = cache
    n, c_in, h, wd = x_shape
    c_out, _, kh, kw = w.shape
    ho, wo = dout.shape[2:]
    p = n * ho * wo
    dmat = np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).reshape(p, c_out)
    dw = db = dx = None
    if need_weight_grad:
        # dW^T = cols^T @ dout_mat, (kh*kw*C_in, C_out). Not dout_mat^T @ cols: OpenBLAS
        # threads that (small M, small N, huge K) product badly, seconds when the machine is busy.
        if kind == "cols":
            dw_t = saved.T @ dmat
        else:
            xp = _pad_nhwc(saved, ph, pw)
            dw_t = np.empty((kh * kw * c_in, c_out), dtype=dmat.dtype)
            for i0, i1 in _row_slabs(kh, p * kw * c_in * dmat.itemsize):
                cols = _patch_slab(xp, i0, i1, kw, sh, sw, ho, wo, scratch=True)
                np.matmul(cols.T, dmat, out=dw_t[i0 * kw * c_in:i1 * kw * c_in])
                cols = None
            xp = None
        dw = np.ascontiguousarray(dw_t.reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1))
        if has_bias:
            db = dmat.sum(axis=0)
    if need_input_grad:
        dx = _conv_input_grad(dmat, w, n, h, wd, ho, wo, sh, sw, ph, pw)
    return dx, dw, db


def _conv_input_grad(dmat, w, n, h, wd, ho, wo, sh, sw, ph, pw):
    """dx (N, C_in, H, W), channel-last, from dmat (N*Ho*Wo, C_out).

    One GEMM per kernel offset (i, j), ``dmat @ W[:, :, i, j]`` (N*Ho*Wo, C_in), added into
    the strided slice of dx that offset reaches; with ``DX_GEMM_PER_ROW`` one GEMM per kernel
    row i for all its offsets at once (fewer, bigger BLAS calls; shorter add runs); with few
    input channels (kh*kw*C_in <= ``DX_ONE_GEMM_MAX_COLS``) one GEMM for all offsets."""
    c_out, c_in, kh, kw = w.shape
    p = n * ho * wo
    w_t = np.ascontiguousarray(w.transpose(2, 0, 3, 1))            # (kh, C_out, kw, C_in)
    if kh == kw == 1 and sh == sw == 1 and ph == pw == 0 and ho == h and wo == wd:
        return (dmat @ w_t[0, :, 0]).reshape(n, h, wd, c_in).transpose(0, 3, 1, 2)
    rows = [_offset_range(i, ph, sh, h, ho) for i in range(kh)]
    cols = [_offset_range(j, pw, sw, wd, wo) for j in range(kw)]
    rows_ok = [i for i in range(kh) if rows[i][1] > rows[i][0]]
    cols_ok = [j for j in range(kw) if cols[j][1] > cols[j][0]]
    # An offset that maps the output grid onto the whole input (stride 1, "same" size) is
    # assigned instead of added, so dx needs no zero fill; windows that never overlap
    # (stride >= kernel) are assigned into zeros.
    full = None
    if sh == sw == 1:
        for i in rows_ok:
            for j in cols_ok:
                if rows[i][2] == 0 and cols[j][2] == 0 and rows[i][1] - rows[i][0] == h \
                        and cols[j][1] - cols[j][0] == wd:
                    full = full or (i, j)
    if kh * kw * c_in <= DX_ONE_GEMM_MAX_COLS:
        # few input channels (a first layer): one GEMM for every offset, (N*Ho*Wo, kh*kw*C_in);
        # kh*kw tiny GEMMs (N = C_in = 1 or 3) would be mostly BLAS call overhead
        tmp = dmat @ w.transpose(0, 2, 3, 1).reshape(c_out, kh * kw * c_in)
        t6 = tmp.reshape(n, ho, wo, kh, kw, c_in)
        dx = (np.empty if full is not None else np.zeros)((n, h, wd, c_in), dtype=dmat.dtype)
        order = ([full] if full is not None else []) + [(i, j) for i in rows_ok for j in cols_ok
                                                         if (i, j) != full]
        for i, j in order:
            _put(dx, t6[:, :, :, i, j], rows[i], cols[j], sh, sw, (i, j) == full or sh >= kh and sw >= kw)
        return dx.transpose(0, 3, 1, 2)
    per_row = DX_GEMM_PER_ROW and len(cols_ok) > 1
    group = len(cols_ok) if per_row else 1
    held = getattr(_scratch, "buf", None)          # idle now: reuse it for the GEMM results
    if held is not None and held.nbytes >= p * group * c_in * dmat.itemsize:
        tmp = _scratch_array((p, group * c_in), dmat.dtype)
    else:
        tmp = np.empty((p, group * c_in), dtype=dmat.dtype)
    t5 = tmp.reshape(n, ho, wo, group, c_in)
    dx = (np.empty if full is not None else np.zeros)((n, h, wd, c_in), dtype=dmat.dtype)
    assign = sh >= kh and sw >= kw
    # the full offset first (it initializes dx), then every other one
    order = ([full] if full is not None else []) + [(i, j) for i in rows_ok for j in cols_ok
                                                     if (i, j) != full]
    if per_row:
        order = sorted(order, key=lambda ij: (ij != full, ij[0] != (full or ij)[0], ij))
        done_row = None
        for i, j in order:
            if i != done_row:
                j0, j1 = cols_ok[0], cols_ok[-1] + 1
                np.matmul(dmat, w_t[i, :, j0:j1].reshape(c_out, (j1 - j0) * c_in), out=tmp)
                done_row = i
            _put(dx, t5[:, :, :, j - cols_ok[0]], rows[i], cols[j], sh, sw, (i, j) == full or assign)
        return dx.transpose(0, 3, 1, 2)
    for i, j in order:
        if (i, j) == full and (rows[i][0], rows[i][1], cols[j][0], cols[j][1]) == (0, ho, 0, wo):
            np.matmul(dmat, w_t[i, :, j], out=dx.reshape(n * h * wd, c_in))   # grids coincide
            continue
        np.matmul(dmat, w_t[i, :, j], out=tmp)
        _put(dx, t5[:, :, :, 0], rows[i], cols[j], sh, sw, (i, j) == full or assign)
    return dx.transpose(0, 3, 1, 2)


def _put(dx, t4, row_range, col_range, sh, sw, assign):
    """dx[:, r0::sh, c0::sw] (+)= t4[:, y0:y1, x0:x1] for one kernel offset."""
    (y0, y1, r0), (x0, x1, c0) = row_range, col_range
    dst = dx[:, r0:r0 + sh * (y1 - y0 - 1) + 1:sh, c0:c0 + sw * (x1 - x0 - 1) + 1:sw]
    if assign:
        dst[...] = t4[:, y0:y1, x0:x1]
    else:
        dst += t4[:, y0:y1, x0:x1]


# ----------------------------------------------------------------------------- utilities

def _pad_channel_first(x, ph, pw):
    """x: (N, C, H, W) -> (C, N, H + 2ph, W + 2pw), zero padded, contiguous."""
    n, c, h, w = x.shape
    xp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    return xp


def im2col(x, kh, kw, stride=(1, 1), pad=(0, 0)):
    """Patch matrix of x (channel-first utility; the conv kernels use a channel-last one).

    x: (N, C, H, W)  ->  cols: (C*kh*kw, N*Ho*Wo), rows ordered (c, i, j), columns (n, y, x).
    Built from a strided view of the padded input; one copy (the reshape).
    """
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
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
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
    n, c, h, w = x_shape
    ho = conv_output_size(h, kh, sh, ph)
    wo = conv_output_size(w, kw, sw, pw)
    d = dcols.reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += d[:, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)
