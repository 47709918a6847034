"""Engine pooling kernels (same contracts as ``nnlite.functional.pool``): max and average
(any window and stride, overlapping windows included). Inputs are NCHW; no padding (as
Keras' 'valid'). Global average pooling keeps the layout too (its gradient of channel-last
input is channel-last: the ReLU and batch norm before it then read their gradients in their
own layout); flatten is the textbook kernel.

Every kernel works offset by offset: x[:, :, i::sh, j::sw] (cropped to the output grid) is a
strided (N, C, Ho, Wo) view holding offset (i, j) of every window, so forward is one pass per
offset (a running maximum or sum) and backward writes one strided slice of dx per offset
(ph*pw Python iterations, never a loop over pixels; no window tensor is ever copied). When
the windows do not overlap (stride >= window) those writes are plain assignments, and when
they also tile the input dx needs no zero fill. Arrays keep the memory layout of the input:
channel-last input (as conv2d_forward returns) gives channel-last output and gradient.

Max-pool tie rule: the whole gradient of a window goes to its FIRST maximum in row-major
order within the window (as ``argmax``); other tied positions get zero.

Inside an ``nnlite.parallel.threads()`` block the max and average pools run on the workers,
chunked along the batch axis (``chunks.batch_chunks``: one chunk per worker, more only for
inputs above ``CHUNK_BYTES`` per worker): the results are allocated once (same layout as
sequentially) and each chunk runs the sequential passes on its slices (samples n0..n1-1) of
every array, with its own temporaries. Every pass is element-wise per sample, so the results
are bit-identical to the sequential ones.
"""
from __future__ import annotations

import functools

import numpy as np

from ..functional.conv import conv_output_size
from ..parallel import run_chunks
from .chunks import batch_chunks
from .layout import as_layout as _as_layout
from .layout import channel_last_only as _channel_last
from .layout import empty as _empty
from .layout import is_nhwc as _is_nhwc
from .layout import zeros as _zeros
from .pending import PendingGrad

#: Inside a threads() block: most input bytes of one chunk. Cache-sized chunks (1 MiB, the
#: L2 being 2 MiB per core here) were measured slower, not faster: (128, 32, 28, 28) float32
#: max pool forward 2.5 ms with 1 MiB chunks vs 1.3 ms with one chunk per worker.
CHUNK_BYTES = 8 << 20

#: Inside a threads() block, inputs with fewer values stay sequential (measured, max pool 2x2,
#: channel-last float32, two workers against one, fwd / bwd: (16, 64, 14, 14) 182 / 449 us
#: against 77 / 260; (16, 32, 28, 28) 215 / 556 against 164 / 578; (32, 32, 28, 28) 321 / 869
#: against 352 / 1190).
MIN_PARALLEL_SIZE = 1 << 19


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


def _pool_chunks(x_shape, itemsize):
    """``batch_chunks`` for a pool over an input of ``x_shape`` (None: sequential)."""
    n = x_shape[0]
    size = int(np.prod(x_shape))
    return batch_chunks(n, size, min_size=MIN_PARALLEL_SIZE, chunk_size=max(1, CHUNK_BYTES // itemsize))


def _scatter_chunk(dxc, put, offs, non_overlapping, tiles):
    """One chunk's dx (some samples, any strided (k, C, H, W) view): zero filled unless the
    windows tile it, then ``put(k, dst, assign)`` for every offset (see ``_scatter_offsets``)."""
    if not tiles:
        dxc[...] = 0
    for k, (rows, cols) in offs:
        put(k, dxc[:, :, rows, cols], non_overlapping)


def _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, ho, wo, channel_last, make_put):
    """dx[n, c, y*sh + i, x*sw + j] += contribution of offset (i, j), for every offset.

    ``make_put(n0, n1)`` returns ``put(k, dst, assign)`` for samples n0..n1-1, which writes
    (assign=True) or adds the contribution of offset index k into the strided view ``dst`` of
    those samples of dx. Windows that never overlap (stride >= window) are assigned; dx then
    needs no zero fill when the windows also tile the whole input. Inside a threads() block
    each chunk of samples is zero filled (if needed) and written by its worker."""
    n = x_shape[0]
    non_overlapping, tiles = _overlap(x_shape, ph, pw, sh, sw, ho, wo)
    offs = _offset_slices(ph, pw, sh, sw, ho, wo)
    chunks = _pool_chunks(x_shape, np.dtype(dtype).itemsize)
    if chunks is None:
        dx = (_empty if tiles else _zeros)(x_shape, dtype, channel_last)     # zero when it must be
        _scatter_chunk(dx, make_put(0, n), offs, non_overlapping, tiles=True)
        return dx
    dx = _empty(x_shape, dtype, channel_last)

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            _scatter_chunk(dx[n0:n1], make_put(n0, n1), offs, non_overlapping, tiles)
    run_chunks(work, chunks)
    return dx


def _overlap(x_shape, ph, pw, sh, sw, ho, wo):
    """(non_overlapping, tiles): windows never overlap (stride >= window); they also tile the
    whole (H, W) input (dx then needs no zero fill)."""
    h, w = x_shape[2:]
    non_overlapping = sh >= ph and sw >= pw
    return non_overlapping, non_overlapping and sh == ph and sw == pw and ho * ph == h and wo * pw == w


def _pool_forward(x, kernel, stride, outputs, passes):
    """What both pooling forwards do.

    x: (N, C, H, W); kernel, stride: int or pair (stride defaults to kernel). ``outputs``
    names the (N, C, Ho, Wo) results as ``(dtype, zero filled)`` pairs, the first being
    ``out``; they are allocated in x's layout and ``out`` is filled with offset (0, 0) of
    every window. Then ``passes(x, offs, *results)`` does the rest, on the whole arrays or,
    inside a threads() block, on each chunk's samples n0..n1-1 of x and of every result.
    Returns ``(ph, pw, sh, sw)``, ``channel_last`` (x's layout, kept by the results) and the
    results.
    """
    ph, pw, sh, sw = _params(kernel, stride)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, ph, sh, 0), conv_output_size(w, pw, sw, 0)
    channel_last = _channel_last(x)
    offs = _offset_slices(ph, pw, sh, sw, ho, wo)
    rows0, cols0 = offs[0][1]
    chunks = _pool_chunks(x.shape, x.itemsize)
    if chunks is None:
        results = [(_zeros if zero else _empty)((n, c, ho, wo), dt, channel_last)
                   for dt, zero in outputs]
        results[0][...] = x[:, :, rows0, cols0]
        passes(x, offs, *results)
        return (ph, pw, sh, sw), channel_last, results
    results = [_empty((n, c, ho, wo), dt, channel_last) for dt, _ in outputs]

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            mine = [r[n0:n1] for r in results]
            for r, (_, zero) in zip(mine[1:], outputs[1:]):
                if zero:
                    r[...] = 0
            xc = x[n0:n1]
            mine[0][...] = xc[:, :, rows0, cols0]
            passes(xc, offs, *mine)
    run_chunks(work, chunks)
    return (ph, pw, sh, sw), channel_last, results


def maxpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = max_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W); kernel, stride: int or pair (stride defaults to kernel)
    -> out: (N, C, Ho, Wo), cache (x and out themselves: no copy).
    One pass per window offset over strided views (no window copy); channel-last input gives
    channel-last output. Which offset holds each window's first maximum is worked out by the
    backward pass, from x and out (inference, eval mode without backward, skips it: measured
    2x faster forwards; a training step does the same passes as when the forward computed it).
    x must not be changed in place before the backward pass.
    """
    params, channel_last, (out,) = _pool_forward(x, kernel, stride, [(x.dtype, False)], _max_passes)
    return out, (x, out, params, channel_last)


def _max_passes(x, offs, out):
    """Max pool forward of x (some samples) into out (holding offset (0, 0))."""
    for _, (rows, cols) in offs[1:]:
        np.maximum(out, x[:, :, rows, cols], out=out)


def _first_max(x, offs, out, channel_last):
    """Offset index (row-major k = i*pw + j) of each window's FIRST maximum, (N, C, Ho, Wo),
    for x and its max pool out (some samples). Cheap element-wise passes (no masked writes,
    which are slow in NumPy): ``taken`` marks windows whose maximum was already seen; offset k
    claims the rest where it equals the maximum; the last offset gets whatever is left."""
    idx = _index_dtype(len(offs))
    arg = _zeros(out.shape, idx, channel_last)
    k_all = len(offs)
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
    return arg


def maxpool2d_backward(dout, cache, pending: bool = False):
    """dx gets dout at each window's first maximum (see the tie rule), summed over windows.

    pending: return dx as a ``MaxPoolPendingGrad`` (its rows computed where they are consumed,
    by the ``Conv2d`` before this layer) when x is channel-last; otherwise, and by default, dx."""
    x, out, (ph, pw, sh, sw), channel_last = cache
    if pending and channel_last:
        return MaxPoolPendingGrad(dout, cache)
    ho, wo = out.shape[2:]
    offs = _offset_slices(ph, pw, sh, sw, ho, wo)
    return _scatter_offsets(x.shape, x.dtype, ph, pw, sh, sw, ho, wo, channel_last,
                            functools.partial(_max_put, x, out, dout, offs, channel_last))


def _max_put(x, out, dout, offs, channel_last, n0, n1):
    """``put(k, dst, assign)`` of max pool backward for samples n0..n1-1 (``_scatter_offsets``):
    dst (+)= dout * (offset k holds the window's first maximum)."""
    a = _first_max(x[n0:n1], offs, out[n0:n1], channel_last)
    d = _as_layout(dout[n0:n1], channel_last)
    hit = _empty(a.shape, np.bool_, channel_last)
    part = None

    def put(k, dst, assign):
        nonlocal part
        np.equal(a, k, out=hit)
        if assign:
            np.multiply(d, hit, out=dst)
        else:
            if part is None:
                part = _empty(a.shape, np.result_type(d, x.dtype), channel_last)
            dst += np.multiply(d, hit, out=part)
    return put


class MaxPoolPendingGrad(PendingGrad):
    """Max pool's input gradient before it is written (``maxpool2d_backward(..., pending=True)``,
    channel-last x): ``rows_into`` runs the backward's passes for the samples of rows r0:r1 only,
    into the caller's (in-cache) rows; ``materialize()`` is ``maxpool2d_backward`` itself. The
    same element-wise passes either way: bit-identical. See ``nnlite.fast.pending``."""

    def __init__(self, dout, cache):
        self._dout, self._cache = dout, cache
        x, out, (ph, pw, sh, sw), _ = cache
        self.shape, self.dtype = x.shape, x.dtype
        ho, wo = out.shape[2:]
        self._offs = _offset_slices(ph, pw, sh, sw, ho, wo)
        self._non_overlapping, self._tiles = _overlap(x.shape, ph, pw, sh, sw, ho, wo)

    def rows_into(self, r0, r1, out, scratch=None):
        n, c, h, w = self.shape
        n0, n1 = r0 // (h * w), r1 // (h * w)
        if n0 * h * w != r0 or n1 * h * w != r1:
            raise ValueError(f"rows {r0}:{r1} are not whole samples of {h * w} rows")
        x, pooled, _, channel_last = self._cache
        dxc = out.reshape(n1 - n0, h, w, c).transpose(0, 3, 1, 2)          # channel-last view
        put = _max_put(x, pooled, self._dout, self._offs, channel_last, n0, n1)
        _scatter_chunk(dxc, put, self._offs, self._non_overlapping, self._tiles)
        return out

    def materialize(self):
        return maxpool2d_backward(self._dout, self._cache)


def avgpool2d_forward(x, kernel=2, stride=None):
    """out[n, c, y, x] = mean_{i,j} x[n, c, y*sh + i, x*sw + j].

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), cache.
    """
    params, channel_last, (out,) = _pool_forward(x, kernel, stride, [(x.dtype, False)],
                                                 _avgpool_passes)
    return out, (x.shape, x.dtype, params, channel_last, out.shape[2:])


def _avgpool_passes(x, offs, out):
    """Average pool forward of x (some samples) into out (holding offset (0, 0))."""
    for _, (rows, cols) in offs[1:]:
        out += x[:, :, rows, cols]
    out /= np.asarray(len(offs), dtype=x.dtype)           # ph * pw


def avgpool2d_backward(dout, cache):
    """Every input position of a window gets dout / (ph*pw), summed over windows."""
    x_shape, dtype, (ph, pw, sh, sw), channel_last, (ho, wo) = cache

    def make_put(n0, n1):
        share = _as_layout(dout[n0:n1], channel_last) / np.asarray(ph * pw, dtype=dtype)

        def put(k, dst, assign):
            if assign:
                dst[...] = share
            else:
                dst += share
        return put

    return _scatter_offsets(x_shape, dtype, ph, pw, sh, sw, ho, wo, channel_last, make_put)


def global_avgpool_forward(x):
    """out[n, c] = mean_{y,x} x[n, c, y, x].  x: (N, C, H, W) -> (N, C), cache.

    Channel-last x is reduced as its (N, H*W, C) rows (contiguous)."""
    channel_last = _is_nhwc(x) and not x.flags.c_contiguous
    if channel_last:
        n, c = x.shape[:2]
        out = x.transpose(0, 2, 3, 1).reshape(n, -1, c).mean(axis=1, dtype=x.dtype)
    else:
        out = x.mean(axis=(2, 3), dtype=x.dtype)
    return out, (x.shape, channel_last)


def global_avgpool_backward(dout, cache):
    """dx[n, c, y, x] = dout[n, c] / (H*W), in the layout of the forward's input."""
    shape, channel_last = cache
    dx = _empty(shape, dout.dtype, channel_last)
    dx[...] = (dout / np.asarray(shape[2] * shape[3], dtype=dout.dtype))[:, :, None, None]
    return dx
