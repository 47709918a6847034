"""Engine batch normalization (same contract and math as ``nnlite.functional.batchnorm``).

Statistics are per feature: over axis 0 for (N, D), over axes (0, 2, 3) for (N, C, H, W).
Training mode normalizes with the batch mean and *biased* variance; eval mode with the
running statistics. Running statistics follow PyTorch's convention (momentum m = 0.1):
    running = (1 - m) * running + m * batch_stat,  using the UNBIASED batch variance.
Backward is provided for both modes (eval-mode backward is what attacks need).

Fast path: input whose memory is rows (see ``layout.rows``: (N, D) C-contiguous, or
channel-last (N, C, H, W)), seen as an (M, C) array. Few passes over memory, each a loop over
in-cache blocks of ``BLOCK_BYTES`` rows:
  forward   1 read of x for the statistics (per block: its sum as a BLAS GEMV ``ones @ block``
            and its centred sum of squares, combined exactly across blocks (Chan et al.));
            1 read of x + 1 write for out = x * scale + shift, scale = gamma * inv_std,
            shift = beta - mu * scale (per feature). No xhat array: the cache keeps x itself
            (the caller's input, as the engine's conv does), mu and inv_std.
  backward  1 read of (x, dout) for dbeta = sum(dout), dgamma = inv_std * sum(dout * (x - mu))
            (per block: sum(dout * x) - mu * sum(dout), GEMVs over a same-shape product;
            skipped in eval mode without weight gradients); 1 read of (x, dout) + 1 write
            for dx = A * dout + B * x + C with per-feature A, B, C (eval: dx = A * dout).
            Rounding: like the textbook's xhat = (x - mu) * inv_std, these lose about
            log10(|mu| / std) digits when the mean is far from zero against the spread.
(Measured, not used: a one-read variance sum(x^2) - n mean^2 per block, and (rows/k, k*C)
"wide" views of the per-feature vectors: no faster; blocks of 64 KiB or 1 MiB: slower.)
Inside an ``nnlite.parallel.threads()`` block a large input is cut into chunks of whole
samples (``chunks.batch_chunks``) run on the workers; per-block partial sums are combined in
worker order (static split: deterministic; they differ from the sequential sums in the last
bits only), and the element-wise passes write disjoint rows of fresh results.
Other layouts run the textbook kernel.
"""
from __future__ import annotations

import numpy as np

from ..functional.batchnorm import _axes_and_shape
from ..functional.batchnorm import batchnorm_backward as _textbook_backward
from ..functional.batchnorm import batchnorm_forward as _textbook_forward
from ..parallel import run_chunks
from .chunks import batch_chunks
from .layout import like as _like
from .layout import rows as _rows

#: Inside a threads() block: most bytes of input rows in one chunk (smaller, cache-sized
#: chunks were measured no faster; see ``pool.CHUNK_BYTES``).
CHUNK_BYTES = 8 << 20

#: Bytes of rows in one in-cache block of a pass (a block, its temporary and the matching
#: rows of a second array stay in a core's L2 cache).
BLOCK_BYTES = 256 << 10


def _row_chunks(x, r):
    """Row ranges [(r0, r1), ...] of the (M, C) rows ``r`` of x, whole samples each, for the
    workers of a threads() block; None (sequential) outside one or for small inputs."""
    chunks = batch_chunks(x.shape[0], x.size, chunk_size=max(1, CHUNK_BYTES // x.itemsize))
    if chunks is None:
        return None
    per_sample = r.shape[0] // x.shape[0]
    return [(n0 * per_sample, n1 * per_sample) for n0, n1 in chunks]


def _run(work, chunks, m):
    """work(worker, row ranges) on the workers (chunks) or in this thread (chunks None)."""
    if chunks is None:
        return [work(0, [(0, m)])]
    return run_chunks(work, chunks)


def _blocks(r0, r1, step):
    """The in-cache blocks [(b0, b1), ...] of rows r0:r1."""
    return [(b0, min(b0 + step, r1)) for b0 in range(r0, r1, step)]


def _block_rows(c, itemsize):
    return max(1, BLOCK_BYTES // (c * itemsize))


def _statistics(r, chunks, m):
    """Batch mean and biased variance of the (M, C) rows: one read of r. Per block b (n_b rows):
    its mean mb_b and centred sum of squares q_b = sum((x - mb_b)^2); then exactly
    sum((x - mu)^2) = sum_b q_b + sum_b n_b (mb_b - mu)^2."""
    dt, c = r.dtype, r.shape[1]
    step = _block_rows(c, r.itemsize)

    def work(worker, my_chunks):
        ones, tmp, parts = np.ones(step, dtype=dt), np.empty((step, c), dtype=dt), []
        for r0, r1 in my_chunks:
            for b0, b1 in _blocks(r0, r1, step):
                n, blk = b1 - b0, r[b0:b1]
                mb = ones[:n] @ blk
                mb /= n
                t = np.subtract(blk, mb, out=tmp[:n])
                t *= t
                parts.append((n, mb, ones[:n] @ t))
        return parts
    parts = [p for worker in _run(work, chunks, r.shape[0]) for p in worker]
    n = np.array([p[0] for p in parts], dtype=np.float64)[:, None]
    mb = np.array([p[1] for p in parts], dtype=np.float64)
    mu = (n * mb).sum(axis=0) / m
    var = (np.sum([p[2] for p in parts], axis=0, dtype=np.float64)
           + (n * (mb - mu) ** 2).sum(axis=0)) / m
    return mu.astype(dt), var.astype(dt)


def batchnorm_forward(x, gamma, beta, training: bool, running_mean=None, running_var=None,
                      eps: float = 1e-5):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta  (computed as x * scale + shift).

    x: (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var: (D,) or (C,).
    training: mu, var = batch mean and biased variance (centred per block, combined exactly);
    eval: the running statistics. The output has x's memory layout (channel-last stays
    channel-last). Returns (out, cache); ``cache['batch_mean']``/``['batch_var_unbiased']``
    feed ``batchnorm_running_update`` in training mode. On the row path the cache holds x
    itself (not xhat): x must not be changed in place before the backward pass.
    """
    _axes_and_shape(x)                                     # rank check
    r = _rows(x)
    if r is None:                # other layouts: the textbook kernel
        return _textbook_forward(x, gamma, beta, training, running_mean, running_var, eps)
    m = x.size // x.shape[1]
    dt = x.dtype
    if not training and (running_mean is None or running_var is None):
        raise ValueError("eval-mode batch norm needs running_mean and running_var")
    chunks = _row_chunks(x, r)
    if training:
        mu, var = _statistics(r, chunks, m)
        out_dt = np.result_type(r, gamma, beta)
    else:
        mu, var = running_mean, running_var
        out_dt = np.result_type(r, gamma, beta, mu)
    inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=dt))).astype(dt, copy=False)
    scale64 = np.asarray(gamma, dtype=np.float64) * inv_std
    scale = scale64.astype(out_dt)
    shift = (np.asarray(beta, dtype=np.float64) - np.asarray(mu, dtype=np.float64) * scale64
             ).astype(out_dt)
    out = np.empty(r.shape, dtype=out_dt)
    step = _block_rows(r.shape[1], max(r.itemsize, out.itemsize))

    def normalize(worker, my_chunks):
        for r0, r1 in my_chunks:
            for b0, b1 in _blocks(r0, r1, step):
                o = np.multiply(r[b0:b1], scale, out=out[b0:b1])
                o += shift
    _run(normalize, chunks, m)
    cache = {"x": x, "mu": mu, "inv_std": inv_std, "gamma": gamma, "training": training,
             "m": m}
    if training:
        cache["batch_mean"] = mu
        cache["batch_var_unbiased"] = var * (m / max(m - 1, 1))
    return _like(out, x), cache


def _dout_rows(dout, rx, chunks):
    """dout's (M, C) rows and, when dout is in another layout than x, a function copying the
    rows r0:r1 (whole samples) of it into the returned (then empty) rows buffer."""
    rd = _rows(dout)
    if rd is not None:
        return rd, None
    rd = np.empty(rx.shape, dtype=dout.dtype)
    src = dout if dout.ndim == 2 else dout.transpose(0, 2, 3, 1)
    per_sample = rx.shape[0] // dout.shape[0]

    def copy_rows(r0, r1):
        n0, n1 = r0 // per_sample, r1 // per_sample
        np.copyto(rd[r0:r1].reshape(src[n0:n1].shape), src[n0:n1])
    return rd, copy_rows


def batchnorm_backward(dout, cache, need_weight_grad: bool = True):
    """Gradients of batchnorm_forward, in the mode the forward pass ran in.

    dgamma = sum(dout * xhat) = inv_std * sum(dout * (x - mu));  dbeta = sum(dout);
    training: dx = gamma * inv_std / m * (m*dout - dbeta - xhat * dgamma)  (mu, var depend on x)
               = A * dout + B * x + C  with, per feature, A = gamma * inv_std,
                 B = -A * inv_std * dgamma / m,  C = -A * dbeta / m - B * mu
    eval:     dx = A * dout                                                 (statistics fixed)
    """
    if "xhat" in cache:                                  # the forward ran the textbook kernel
        return _textbook_backward(dout, cache, need_weight_grad)
    x, mu, inv_std, gamma, m = cache["x"], cache["mu"], cache["inv_std"], cache["gamma"], cache["m"]
    if dout.shape != x.shape:
        raise ValueError(f"dout has shape {dout.shape}, the forward output had {x.shape}")
    training = cache["training"]
    rx = _rows(x)
    chunks = _row_chunks(x, rx)
    rd, copy_rows = _dout_rows(dout, rx, chunks)
    dt = np.result_type(rd, rx)
    c = rx.shape[1]
    step = _block_rows(c, np.dtype(dt).itemsize)
    mu_c = np.asarray(mu).astype(dt, copy=False)
    dgamma = dbeta = None
    if training or need_weight_grad:
        def sums(worker, my_chunks):
            ones, tmp, parts = np.ones(step, dtype=dt), np.empty((step, c), dtype=dt), []
            for r0, r1 in my_chunks:
                if copy_rows is not None:
                    copy_rows(r0, r1)
                for b0, b1 in _blocks(r0, r1, step):
                    n, d = b1 - b0, rd[b0:b1]
                    t = np.multiply(rx[b0:b1], d, out=tmp[:n])
                    db = ones[:n] @ d
                    parts.append((db, ones[:n] @ t - mu_c * db))   # sum of dout * (x - mu)
            return parts
        parts = [p for worker in _run(sums, chunks, rx.shape[0]) for p in worker]
        dbeta64 = np.sum([p[0] for p in parts], axis=0, dtype=np.float64)
        dgamma64 = np.sum([p[1] for p in parts], axis=0, dtype=np.float64) * inv_std
        dgamma, dbeta = dgamma64.astype(dt), dbeta64.astype(dt)
        copy_rows = None             # rd is complete now
    a64 = np.asarray(gamma, dtype=np.float64) * inv_std
    a = a64.astype(dt)
    if training:
        b64 = -a64 * inv_std * dgamma64 / m
        b = b64.astype(dt)
        c0 = (-a64 * dbeta64 / m - b64 * np.asarray(mu, dtype=np.float64)).astype(dt)
    dx = np.empty(rx.shape, dtype=dt)

    def input_grad(worker, my_chunks):
        tmp = np.empty((step, c), dtype=dt) if training else None
        for r0, r1 in my_chunks:
            if copy_rows is not None:
                copy_rows(r0, r1)
            for b0, b1 in _blocks(r0, r1, step):
                o = np.multiply(rd[b0:b1], a, out=dx[b0:b1])
                if training:
                    t = np.multiply(rx[b0:b1], b, out=tmp[:b1 - b0])
                    t += c0
                    o += t
    _run(input_grad, chunks, rx.shape[0])
    if not need_weight_grad:
        dgamma = dbeta = None
    return _like(dx, x).astype(dout.dtype, copy=False), dgamma, dbeta
