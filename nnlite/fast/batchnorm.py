"""Engine batch normalization (same contract and math as ``nnlite.functional.batchnorm``).

Statistics are per feature: over axis 0 for (N, D), over axes (0, 2, 3) for (N, C, H, W).
Training mode normalizes with the batch mean and *biased* variance; eval mode with the
running statistics. Running statistics follow PyTorch's convention (momentum m = 0.1):
    running = (1 - m) * running + m * batch_stat,  using the UNBIASED batch variance.
Backward is provided for both modes (eval-mode backward is what attacks need).

Fast path: x seen without a copy as a 2-D matrix (``_Matrix``) of one of two kinds:
  rows    (M, C), one column per feature: (N, D) C-contiguous, or channel-last (N, C, H, W)
          (``layout.rows``); a block's per-feature sums are a BLAS GEMV ``ones @ block`` (C,).
  planes  (N*C, H*W), one row per (sample, channel) plane: C-contiguous NCHW
          (``layout.planes``); a block's per-row sums are a GEMV ``block @ ones`` (rows,),
          folded per channel (row i is channel i % C) at the end.
Per-feature vectors broadcast along the columns (rows) or as a column over each row (planes).
Element-wise passes over rows see a block as (rows/k, k*C) with the vectors tiled k times
(``WIDE_MIN``: NumPy's inner loops then run over long rows); planes run theirs with a small
ufunc buffer (``PLANE_BUFSIZE``: NumPy would otherwise expand the column operand into it).
Few passes over memory, each a loop over in-cache blocks of ``BLOCK_BYTES`` rows
(``PARALLEL_BLOCK_BYTES`` on several workers):
  forward   1 read of x for the statistics (per block, or per plane: its sum and its centred
            sum of squares, combined exactly per feature (Chan et al.); the sums of squares and
            of products below are one ``einsum`` each (``_dot``), which multiplies and adds
            in one loop: 0-10% off the kernel's time against a product array and a GEMV);
            1 read of x + 1 write for out = x * scale + shift, scale = gamma * inv_std,
            shift = beta - mu * scale (per feature). No xhat array: the cache keeps x itself
            (the caller's input, as the engine's conv does), mu and inv_std.
  backward  1 read of (x, dout) for dbeta = sum(dout), dgamma = inv_std * sum(dout * (x - mu))
            (per block: sum(dout * x) - mu * sum(dout), a GEMV and an ``einsum``;
            skipped in eval mode without weight gradients); 1 read of (x, dout) + 1 write
            for dx = A * dout + B * x + C with per-feature A, B, C (eval: dx = A * dout).
            Rounding: like the textbook's xhat = (x - mu) * inv_std, these lose about
            log10(|mu| / std) digits when the mean is far from zero against the spread.
  fused ReLU (``relu=True``: batch norm + ReLU as ``nn.Sequential`` runs them on this storey):
            forward takes max(out, 0) on each block right after it is written; backward's
            first pass writes dout * (y > 0) per block into a fresh array that the second pass
            reads instead of dout (eval without weight gradients: masked per block in its one
            pass). Two passes over memory fewer than batch norm and ReLU apart, same values.
  pending dx (``pending=True``, what ``nn.Sequential`` asks for when a ``Conv2d`` comes
            before the batch norm): backward skips its second pass and returns a
            ``PendingGrad``; the conv's backward computes the rows of dx it needs per chunk,
            into its own workspace, right before its GEMMs read them (``conv._dout_rows``). dx
            is never written nor read back; the same values, bit for bit.
(Measured, not used: a one-read variance sum(x^2) - n mean^2 per block: no faster; blocks
of 64 KiB or 1 MiB: slower.) Measured on (128, 32, 28, 28) float32, train fwd+bwd, one
thread, interleaved: C-contiguous NCHW 41 -> 12 ms (it ran the textbook kernel), channel-last
16.5 -> 15.6 ms; PyTorch 12.3 ms.
Inside an ``nnlite.parallel.threads()`` block a large input is cut into chunks of whole
samples (``chunks.batch_chunks``) run on the workers; partial sums are combined in worker
order (static split: deterministic; they differ from the sequential sums in the last bits
only), and the element-wise passes write disjoint rows of fresh results. Other layouts run
the textbook kernel.
"""
from __future__ import annotations

import contextlib
import functools
from typing import NamedTuple

import numpy as np

from ..functional.batchnorm import _axes_and_shape
from ..functional.batchnorm import batchnorm_backward as _textbook_backward
from ..functional.batchnorm import batchnorm_forward as _textbook_forward
from ..parallel import run_chunks
from .activations import relu_backward, relu_forward, relu_masked
from .chunks import batch_chunks
from .layout import like as _like
from .layout import planes as _planes
from .layout import rows as _rows
from .pending import PendingGrad

#: Inside a threads() block: most bytes of input rows in one chunk (smaller, cache-sized
#: chunks were measured no faster; see ``pool.CHUNK_BYTES``).
CHUNK_BYTES = 8 << 20

#: Bytes of rows in one in-cache block of a pass (a block, its temporary and the matching
#: rows of a second array stay in a core's L2 cache).
BLOCK_BYTES = 256 << 10

#: The same, when the passes run on several workers (inside a threads() block, a large
#: input): small blocks mean many short NumPy calls, and two threads issuing them serialize
#: on the interpreter (measured, 2 workers, train fwd+bwd, interleaved: (128, 32, 28, 28)
#: channel-last 15.4 -> 11.6 ms, (256, 64, 16, 16) 24.6 -> 18.8 ms, (256, 128, 8, 8) 11.3 ->
#: 8.6 ms with 1 MiB blocks; sequential, 256 KiB stays faster: 13.0 against 15.0 ms).
PARALLEL_BLOCK_BYTES = 1 << 20

#: Inside a threads() block, inputs with fewer values stay sequential (measured, train fwd+bwd,
#: channel-last float32, two workers against one: (16, 32, 28, 28) 1.61 against 1.19 ms;
#: (32, 32, 28, 28) 2.97 against 2.44 ms; (64, 32, 28, 28) 5.38 against 5.40 ms;
#: (128, 32, 28, 28) 8.6 against 11.0 ms).
MIN_PARALLEL_SIZE = 1 << 21


#: Planes at least this wide run their per-row broadcasts with NumPy's ufunc buffer at
#: ``PLANE_BUFSIZE`` elements: with the default (8192) a column operand of rows shorter
#: than the buffer is expanded into it (a (4096, 784) * (4096, 1) product measured 2.5-3x a
#: scalar product's time; with 64 as fast as the scalar one); narrower planes gain nothing.
PLANE_MIN_WIDTH = 128
PLANE_BUFSIZE = 64

#: Rows layout: the element-wise passes see a block of rows (r, C) as (r/k, k*C) with the
#: per-feature vectors tiled k times ("wide"), k the smallest divisor of the rows per sample
#: (H*W) with k*C >= WIDE_MIN (if none, the largest one; a wide row at most ``BLOCK_BYTES``):
#: (100352, 32) * (32,) took 1.9 ms, the same product at width 8192 1.3 ms (a scalar one 0.9).
WIDE_MIN = 8192


class _Matrix(NamedTuple):
    """x (N, ...) as the fast path's 2-D matrix ``a``: "rows" (M, C), features along the
    columns, or "planes" (N*C, H*W), row i = channel i % C (see the module docstring);
    ``k``: rows of ``a`` per wide row of the element-wise passes (``WIDE_MIN``; planes: 1)."""
    a: np.ndarray
    planes: bool
    n: int
    c: int
    k: int


@functools.lru_cache(maxsize=256)
def _wide_rows(c, per_sample, itemsize, block_bytes, wide_min):
    """k of ``WIDE_MIN`` for C = c features and ``per_sample`` rows per sample."""
    best = 1
    for k in range(1, min(per_sample, block_bytes // (c * itemsize)) + 1):
        if per_sample % k == 0:
            best = k
            if k * c >= wide_min:
                break
    return best


def _matrix(x):
    """x's ``_Matrix`` without a copy (rows preferred when both fit), or None."""
    n, c = x.shape[:2]
    a = _rows(x)
    if a is not None:
        k = _wide_rows(c, a.shape[0] // max(n, 1), x.itemsize, BLOCK_BYTES, WIDE_MIN) if n else 1
        return _Matrix(a, False, n, c, k)
    a = _planes(x)
    return None if a is None else _Matrix(a, True, n, c, 1)


@contextlib.contextmanager
def _broadcasts(mat):
    """A pass's element-wise broadcasts in this thread at their fastest (``PLANE_BUFSIZE``);
    NumPy's buffer size is per thread (context), restored at the end."""
    if not mat.planes or mat.a.shape[1] < PLANE_MIN_WIDTH:
        yield
        return
    old = np.setbufsize(PLANE_BUFSIZE)
    try:
        yield
    finally:
        np.setbufsize(old)


def _as_matrix(mat, x):
    """Undo ``_matrix``: mat-shaped ``a`` as x's shape, in x's layout."""
    return mat.a.reshape(x.shape) if mat.planes else _like(mat.a, x)


def _feature(mat, v, dt):
    """Per-feature (C,) vector ``v`` lined up with ``_sum``'s results: itself (rows kind) or
    repeated per sample, (N*C,) (planes); ``_at`` slices it per block."""
    v = np.asarray(v).astype(dt, copy=False)
    return np.tile(v, mat.n) if mat.planes else v


def _operand(mat, v, dt):
    """Per-feature (C,) vector ``v`` as the operand of the element-wise passes over ``_wide``
    blocks: tiled k times, (k*C,) (rows kind), or repeated per sample, (N*C,) (planes)."""
    v = np.asarray(v).astype(dt, copy=False)
    return np.tile(v, mat.n if mat.planes else mat.k)


def _at(mat, fv, b0, b1, broadcast=False):
    """The part of ``_feature`` or ``_operand`` vector fv for block rows b0:b1: as ``_sum``'s
    result lines up (default), or broadcastable against the block (``broadcast``: a column
    for planes)."""
    if not mat.planes:
        return fv
    return fv[b0:b1, None] if broadcast else fv[b0:b1]


def _wide(mat, blk):
    """Block rows of the matrix (or of a same-shape array) as the element-wise passes see them."""
    return blk if mat.planes else blk.reshape(-1, mat.k * mat.c)


def _block_rows(mat, itemsize, chunks):
    """Rows of ``mat`` per in-cache block (rows kind: a multiple of k); ``chunks`` None
    (sequential): ``BLOCK_BYTES``, else ``PARALLEL_BLOCK_BYTES``."""
    block_bytes = BLOCK_BYTES if chunks is None else PARALLEL_BLOCK_BYTES
    step = max(1, block_bytes // (mat.a.shape[1] * itemsize))
    return step if mat.planes else max(mat.k, step // mat.k * mat.k)


def _sum(mat, blk, ones):
    """A block's partial sums per feature: ones @ blk (C,) for rows, blk @ ones (rows,) for planes."""
    return blk @ ones if mat.planes else ones[:blk.shape[0]] @ blk


def _dot(mat, a, b):
    """A block's per-feature sums of products sum(a * b): (C,) for rows, (rows,) for planes, as
    one ``einsum`` (NumPy's fused multiply-and-sum loop: no product array is written)."""
    return np.einsum("ij,ij->i" if mat.planes else "ij,ij->j", a, b)


def _ones(mat, step, dt):
    return np.ones(mat.a.shape[1] if mat.planes else step, dtype=dt)


def _fold(mat, parts):
    """Partial sums (list of ``_sum`` results, in order) as a (K, C) float64 array."""
    if mat.planes:
        return np.concatenate(parts).astype(np.float64).reshape(-1, mat.c)
    return np.array(parts, dtype=np.float64)


def _row_chunks(x, r):
    """Row ranges [(r0, r1), ...] of the 2-D matrix ``r`` of x, whole samples each, for the
    workers of a threads() block; None (sequential) outside one or for small inputs."""
    chunks = batch_chunks(x.shape[0], x.size, min_size=MIN_PARALLEL_SIZE,
                          chunk_size=max(1, CHUNK_BYTES // x.itemsize))
    if chunks is None:
        return None
    per_sample = r.shape[0] // x.shape[0]
    return [(n0 * per_sample, n1 * per_sample) for n0, n1 in chunks]


def _run(work, chunks, rows):
    """work(worker, row ranges) on the workers (chunks) or, chunks None, in this thread over
    all ``rows`` rows of the matrix (not m, the values per feature: planes have N*C rows)."""
    if chunks is None:
        return [work(0, [(0, rows)])]
    return run_chunks(work, chunks)


def _blocks(r0, r1, step):
    """The in-cache blocks [(b0, b1), ...] of rows r0:r1."""
    return [(b0, min(b0 + step, r1)) for b0 in range(r0, r1, step)]


def _statistics(mat, chunks, m):
    """Batch mean and biased variance per feature: one read of the matrix. Per block (rows)
    or per plane (planes) b of n_b values per feature: its mean mb_b and centred sum of
    squares q_b = sum((x - mb_b)^2); then exactly sum((x - mu)^2) = sum_b q_b + sum_b n_b (mb_b - mu)^2."""
    r = mat.a
    dt, width = r.dtype, r.shape[1]
    step = _block_rows(mat, r.itemsize, chunks)

    def work(worker, my_chunks):
        ones, tmp, parts = _ones(mat, step, dt), np.empty((step, width), dtype=dt), []
        with _broadcasts(mat):
            for r0, r1 in my_chunks:
                for b0, b1 in _blocks(r0, r1, step):
                    n, blk = b1 - b0, r[b0:b1]
                    count = width if mat.planes else n
                    mb = _sum(mat, blk, ones)
                    mb /= count
                    t = tmp[:n]
                    np.subtract(_wide(mat, blk), mb[:, None] if mat.planes else np.tile(mb, mat.k),
                                out=_wide(mat, t))
                    parts.append((count, mb, _dot(mat, t, t)))
        return parts
    parts = [p for worker in _run(work, chunks, r.shape[0]) for p in worker]
    mb = _fold(mat, [p[1] for p in parts])
    n = width if mat.planes else np.array([p[0] for p in parts], dtype=np.float64)[:, None]
    mu = (n * mb).sum(axis=0) / m
    var = (_fold(mat, [p[2] for p in parts]).sum(axis=0) + (n * (mb - mu) ** 2).sum(axis=0)) / m
    return mu.astype(dt), var.astype(dt)


def batchnorm_forward(x, gamma, beta, training: bool, running_mean=None, running_var=None,
                      eps: float = 1e-5, relu: bool = False):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta  (computed as x * scale + shift).

    x: (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var: (D,) or (C,).
    training: mu, var = batch mean and biased variance (centred per block, combined exactly);
    eval: the running statistics. The output has x's memory layout (channel-last stays
    channel-last). Returns (out, cache); ``cache['batch_mean']``/``['batch_var_unbiased']``
    feed ``batchnorm_running_update`` in training mode. On the fast path the cache holds x
    itself (not xhat): x must not be changed in place before the backward pass.
    relu: y = max(y, 0), fused (batch norm + ReLU, as ``nn.Sequential`` runs them on this
    storey): applied to each block while it is in cache; the cache then keeps y, and backward
    includes the ReLU's derivative (dout * (y > 0), per block). Bit-identical to the two layers.
    """
    _axes_and_shape(x)                                     # rank check
    mat = _matrix(x)
    if mat is None:              # other layouts: the textbook kernel
        out, cache = _textbook_forward(x, gamma, beta, training, running_mean, running_var, eps)
        if relu:
            out = relu_forward(out)[0]
            cache = dict(cache, relu_y=out)
        return out, cache
    r = mat.a
    m = x.size // x.shape[1]
    dt = x.dtype
    if not training and (running_mean is None or running_var is None):
        raise ValueError("eval-mode batch norm needs running_mean and running_var")
    chunks = _row_chunks(x, r)
    if training:
        mu, var = _statistics(mat, chunks, m)
        out_dt = np.result_type(r, gamma, beta)
    else:
        mu, var = running_mean, running_var
        out_dt = np.result_type(r, gamma, beta, mu)
    inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=dt))).astype(dt, copy=False)
    scale64 = np.asarray(gamma, dtype=np.float64) * inv_std
    scale = _operand(mat, scale64, out_dt)
    shift = _operand(mat, np.asarray(beta, dtype=np.float64) - np.asarray(mu, dtype=np.float64) * scale64,
                     out_dt)
    out = np.empty(r.shape, dtype=out_dt)
    step = _block_rows(mat, max(r.itemsize, out.itemsize), chunks)

    def normalize(worker, my_chunks):
        with _broadcasts(mat):
            for r0, r1 in my_chunks:
                for b0, b1 in _blocks(r0, r1, step):
                    o = np.multiply(_wide(mat, r[b0:b1]), _at(mat, scale, b0, b1, True),
                                    out=_wide(mat, out[b0:b1]))
                    o += _at(mat, shift, b0, b1, True)
                    if relu:
                        np.maximum(o, 0, out=o)
    _run(normalize, chunks, r.shape[0])
    cache = {"x": x, "mu": mu, "inv_std": inv_std, "gamma": gamma, "training": training,
             "m": m, "relu_y": out if relu else None}
    if training:
        cache["batch_mean"] = mu
        cache["batch_var_unbiased"] = var * (m / max(m - 1, 1))
    return _as_matrix(mat._replace(a=out), x), cache


def _dout_matrix(dout, mat):
    """dout as x's matrix ``mat`` (same kind and shape) and, when dout is in another layout
    than x, a function copying the rows r0:r1 (whole samples) of it into the returned (then
    empty) buffer."""
    rd = _planes(dout) if mat.planes else _rows(dout)
    if rd is not None:
        return rd, None
    rd = np.empty(mat.a.shape, dtype=dout.dtype)
    src = dout if dout.ndim == 2 or mat.planes else dout.transpose(0, 2, 3, 1)
    per_sample = mat.a.shape[0] // dout.shape[0]

    def copy_rows(r0, r1):
        n0, n1 = r0 // per_sample, r1 // per_sample
        np.copyto(rd[r0:r1].reshape(src[n0:n1].shape), src[n0:n1])
    return rd, copy_rows


def batchnorm_backward(dout, cache, need_weight_grad: bool = True, pending: bool = False):
    """Gradients of batchnorm_forward, in the mode the forward pass ran in.

    dgamma = sum(dout * xhat) = inv_std * sum(dout * (x - mu));  dbeta = sum(dout);
    training: dx = gamma * inv_std / m * (m*dout - dbeta - xhat * dgamma)  (mu, var depend on x)
               = A * dout + B * x + C  with, per feature, A = gamma * inv_std,
                 B = -A * inv_std * dgamma / m,  C = -A * dbeta / m - B * mu
    eval:     dx = A * dout                                                 (statistics fixed)
    pending: return dx as a ``PendingGrad`` (its rows computed where they are consumed) when
    the input had the rows layout; otherwise, and by default, dx itself.
    """
    if "xhat" in cache:                                  # the forward ran the textbook kernel
        if cache.get("relu_y") is not None:
            dout = relu_backward(dout, cache["relu_y"])
        return _textbook_backward(dout, cache, need_weight_grad)
    x, mu, inv_std, gamma, m = cache["x"], cache["mu"], cache["inv_std"], cache["gamma"], cache["m"]
    if dout.shape != x.shape:
        raise ValueError(f"dout has shape {dout.shape}, the forward output had {x.shape}")
    training = cache["training"]
    mat = _matrix(x)
    rx = mat.a
    chunks = _row_chunks(x, rx)
    rd, copy_rows = _dout_matrix(dout, mat)
    dt = np.result_type(rd, rx)
    step = _block_rows(mat, np.dtype(dt).itemsize, chunks)
    mu_f = _feature(mat, mu, dt)
    ry = cache["relu_y"]                           # the fused ReLU's output (x's matrix shape)
    # with the fused ReLU the passes read dout * (y > 0): computed per block, in cache, by the
    # first pass into the rows of ``rg`` (which the second pass then reads instead of dout)
    rg = np.empty(rx.shape, dtype=dt) if ry is not None and (training or need_weight_grad) else None
    mask_last = ry is not None and rg is None      # eval without weight gradients: one pass, masked there
    dgamma = dbeta = None
    if training or need_weight_grad:
        def sums(worker, my_chunks):
            ones, parts = _ones(mat, step, dt), []
            for r0, r1 in my_chunks:
                if copy_rows is not None:
                    copy_rows(r0, r1)
                for b0, b1 in _blocks(r0, r1, step):
                    d = rd[b0:b1]
                    if rg is not None:
                        d = relu_masked(d, ry[b0:b1], rg[b0:b1])
                    db = _sum(mat, d, ones)
                    parts.append((db, _dot(mat, rx[b0:b1], d) - _at(mat, mu_f, b0, b1) * db))  # dout * (x - mu)
            return parts
        parts = [p for worker in _run(sums, chunks, rx.shape[0]) for p in worker]
        dbeta64 = _fold(mat, [p[0] for p in parts]).sum(axis=0)
        dgamma64 = _fold(mat, [p[1] for p in parts]).sum(axis=0) * inv_std
        dgamma, dbeta = dgamma64.astype(dt), dbeta64.astype(dt)
        copy_rows = None             # rd is complete now
        if rg is not None:
            rd = rg                  # the masked dout, complete too
    a64 = np.asarray(gamma, dtype=np.float64) * inv_std
    b = c0 = None
    if training:
        b64 = -a64 * inv_std * dgamma64 / m
        b = _operand(mat, b64, dt)
        c0 = _operand(mat, -a64 * dbeta64 / m - b64 * np.asarray(mu, dtype=np.float64), dt)
    grad = BatchNormPendingGrad(mat, x, rd, rx, ry if mask_last else None, _operand(mat, a64, dt), b, c0)
    if not need_weight_grad:
        dgamma = dbeta = None
    if pending and copy_rows is None and not mat.planes and dt == dout.dtype:
        return grad, dgamma, dbeta
    return grad.materialize(chunks, step, copy_rows).astype(dout.dtype, copy=False), dgamma, dbeta


class BatchNormPendingGrad(PendingGrad):
    """Batch norm's input gradient before it is written: dx = A * d + B * x + C per feature
    (training), dx = A * d (eval), d being dout, masked by a fused ReLU's derivative.

    ``batchnorm_backward(..., pending=True)`` returns one instead of dx when the input was in
    the rows layout (channel-last (N, C, H, W) or (N, D)), so that the layer consuming dx can
    compute the rows it needs, chunk by chunk, while they are in its cache: the engine conv's
    backward does (``nn.Sequential`` hands it the gradient of the batch norm after a
    ``Conv2d``). dx is then never written to memory nor read back, one pass over the
    activations fewer each way. ``materialize()`` writes dx whole, as ``batchnorm_backward``
    returns it. Every value is the same element-wise expression either way: bit-identical.

    shape, dtype: those of dx (x's). ``rows_into(r0, r1, out)``: rows r0:r1 of dx's (M, C)
    matrix (M = N*H*W, C features; r0, r1 whole samples) into ``out`` ((r1 - r0, C), C-contiguous).
    """

    uses_scratch = True

    def __init__(self, mat, x, rd, rx, ry, a, b, c0):
        self._mat, self._x, self._rd, self._rx = mat, x, rd, rx
        self._ry = ry                  # the fused ReLU's output, when dout is masked here (eval)
        self._a, self._b, self._c0 = a, b, c0
        self.shape, self.dtype = x.shape, rd.dtype

    def rows_into(self, r0, r1, out, scratch=None):
        """dx's rows r0:r1 into ``out``; ``scratch``: an array of out's shape for the one
        temporary (B * x + C in training, the masked dout in eval; fresh when None)."""
        mat = self._mat
        if scratch is None and (self._ry is not None or self._b is not None):
            scratch = np.empty_like(out)
        d = self._rd[r0:r1]
        if self._ry is not None:                     # eval: never together with B, C
            d = relu_masked(d, self._ry[r0:r1], scratch)
        o = np.multiply(_wide(mat, d), _at(mat, self._a, r0, r1, True), out=_wide(mat, out))
        if self._b is not None:
            t = np.multiply(_wide(mat, self._rx[r0:r1]), _at(mat, self._b, r0, r1, True),
                            out=_wide(mat, scratch))
            t += _at(mat, self._c0, r0, r1, True)
            o += t
        return out

    def materialize(self, chunks=None, step=None, copy_rows=None):
        """dx, the whole array (x's shape and memory layout), written block by block on the
        workers of an enclosing threads() block (``chunks``, ``step``: the backward's plan;
        ``copy_rows``: how to fill dout's rows still missing, see ``_dout_matrix``)."""
        mat, rx = self._mat, self._rx
        if step is None:
            chunks = _row_chunks(self._x, rx)
            step = _block_rows(mat, np.dtype(self.dtype).itemsize, chunks)
        dx = np.empty(rx.shape, dtype=self.dtype)
        width = rx.shape[1]

        def input_grad(worker, my_chunks):
            scratch = np.empty((step, width), dtype=self.dtype)
            with _broadcasts(mat):
                for r0, r1 in my_chunks:
                    if copy_rows is not None:
                        copy_rows(r0, r1)
                    for b0, b1 in _blocks(r0, r1, step):
                        self.rows_into(b0, b1, dx[b0:b1], scratch[:b1 - b0])
        _run(input_grad, chunks, rx.shape[0])
        return _as_matrix(mat._replace(a=dx), self._x)
