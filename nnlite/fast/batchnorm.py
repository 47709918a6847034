"""Engine batch normalization (same contract and math as ``nnlite.functional.batchnorm``).

Statistics are per feature: over axis 0 for (N, D), over axes (0, 2, 3) for (N, C, H, W).
Training mode normalizes with the batch mean and *biased* variance; eval mode with the
running statistics. Running statistics follow PyTorch's convention (momentum m = 0.1):
    running = (1 - m) * running + m * batch_stat,  using the UNBIASED batch variance.
Backward is provided for both modes (eval-mode backward is what attacks need).

Inside an ``nnlite.parallel.threads()`` block, a large input whose memory is rows (see
``_rows``: (N, D) C-contiguous, or channel-last (N, C, H, W)) is processed on the workers in
chunks of samples (``chunks.batch_chunks``): the per-feature sums are per-worker partial sums
combined in worker order (static split: deterministic; they differ from the sequential sums
in the last bits only), and the element-wise passes write disjoint rows of fresh results.
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


def _sum_of_products(a, b):
    """Per-column sum of a * b for (M, C) arrays, without an (M, C) temporary."""
    return np.einsum("mc,mc->c", a, b)


def _row_chunks(x, r):
    """Row ranges [(r0, r1), ...] of the (M, C) rows ``r`` of x, whole samples each, for the
    workers of a threads() block; None (sequential) outside one or for small inputs."""
    chunks = batch_chunks(x.shape[0], x.size, chunk_size=max(1, CHUNK_BYTES // x.itemsize))
    if chunks is None:
        return None
    per_sample = r.shape[0] // x.shape[0]
    return [(n0 * per_sample, n1 * per_sample) for n0, n1 in chunks]


def _combine(parts):
    """Per-worker partial results (tuples of arrays) summed in worker order."""
    total = [None if p is None else p.copy() for p in parts[0]]
    for part in parts[1:]:
        for t, p in zip(total, part):
            if t is not None:
                t += p
    return total


def _forward_rows_parallel(r, chunks, gamma, beta, training, mu, var, eps, m):
    """The fast path's statistics and output on the workers: (xhat, out, mu, var, inv_std),
    xhat and out as (M, C) rows."""
    dt = r.dtype
    xc = np.empty(r.shape, dtype=dt if training else np.result_type(r, mu))   # as r - mu
    if training:
        def sums(worker, my_chunks):
            part = None
            for r0, r1 in my_chunks:
                s = r[r0:r1].sum(axis=0, dtype=dt)
                part = s if part is None else part + s
            return (part,)
        mu = (_combine(run_chunks(sums, chunks))[0] / m).astype(dt, copy=False)

        def centred(worker, my_chunks):
            part = None
            for r0, r1 in my_chunks:
                c = np.subtract(r[r0:r1], mu, out=xc[r0:r1])
                s = _sum_of_products(c, c)
                part = s if part is None else part + s
            return (part,)
        var = (_combine(run_chunks(centred, chunks))[0] / m).astype(dt, copy=False)
    inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=dt))).astype(dt, copy=False)
    out = np.empty(r.shape, dtype=np.result_type(xc, gamma))

    def normalize(worker, my_chunks):
        for r0, r1 in my_chunks:
            c = xc[r0:r1]
            if not training:
                np.subtract(r[r0:r1], mu, out=c)
            c *= inv_std                    # c is now xhat
            o = np.multiply(c, gamma, out=out[r0:r1])
            o += beta
    run_chunks(normalize, chunks)
    return xc, out, mu, var, inv_std


def _backward_rows_parallel(dout, rx, chunks, gamma, inv_std, training, need_weight_grad, m):
    """The fast path's backward on the workers: (dx rows, dgamma, dbeta), dgamma/dbeta None
    when not computed. ``dout`` is copied chunk by chunk into xhat's row layout if needed."""
    dt = dout.dtype
    rd = _rows(dout)
    if rd is None:                   # dout in another layout: copied into rows per chunk
        rd = np.empty(rx.shape, dtype=dt)
        src = dout if dout.ndim == 2 else dout.transpose(0, 2, 3, 1)
        per_sample = rx.shape[0] // dout.shape[0]
        copy_rows = lambda r0, r1: np.copyto(   # noqa: E731
            rd[r0:r1].reshape(src[r0 // per_sample:r1 // per_sample].shape),
            src[r0 // per_sample:r1 // per_sample])
    else:
        copy_rows = None
    dgamma = dbeta = None
    if training or need_weight_grad:
        def sums(worker, my_chunks):
            pg = pb = None
            for r0, r1 in my_chunks:
                if copy_rows is not None:
                    copy_rows(r0, r1)
                d = rd[r0:r1]
                g, b = _sum_of_products(d, rx[r0:r1]), d.sum(axis=0)
                pg, pb = (g, b) if pg is None else (pg + g, pb + b)
            return pg, pb
        dgamma, dbeta = _combine(run_chunks(sums, chunks))
        copy_rows = None             # rd is complete now
    if training:
        coef = (gamma * inv_std * np.asarray(-1.0 / m, dtype=dt)).astype(dt, copy=False)
        dx = np.empty(rx.shape, dtype=np.result_type(rx, dgamma))
    else:
        scale = (gamma * inv_std).astype(dt, copy=False)
        dx = np.empty(rx.shape, dtype=np.result_type(rd, scale))

    def input_grad(worker, my_chunks):
        for r0, r1 in my_chunks:
            if copy_rows is not None:
                copy_rows(r0, r1)
            d, o = rd[r0:r1], dx[r0:r1]
            if training:
                np.multiply(rx[r0:r1], dgamma, out=o)        # xhat * dgamma
                o += dbeta
                o -= d * np.asarray(m, dtype=dt)
                o *= coef
            else:
                np.multiply(d, scale, out=o)
    run_chunks(input_grad, chunks)
    return dx, dgamma, dbeta


def batchnorm_forward(x, gamma, beta, training: bool, running_mean=None, running_var=None,
                      eps: float = 1e-5):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta.

    x: (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var: (D,) or (C,).
    training: mu, var = batch mean and biased variance (two passes: var = mean((x - mu)^2));
    eval: the running statistics. The output has x's memory layout (channel-last stays
    channel-last). Returns (out, cache); ``cache['batch_mean']``/``['batch_var_unbiased']``
    feed ``batchnorm_running_update`` in training mode.
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
    if chunks is not None:      # on the workers of a threads() block
        xc, out, mu, var, inv_std = _forward_rows_parallel(
            r, chunks, gamma, beta, training, running_mean, running_var, eps, m)
    else:                       # (M, C) rows, statistics as axis-0 reductions
        if training:
            mu = r.mean(axis=0, dtype=dt)
            xc = r - mu
            var = (_sum_of_products(xc, xc) / m).astype(dt, copy=False)
        else:
            mu, var = running_mean, running_var
            xc = r - mu
        inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=dt))).astype(dt, copy=False)
        xc *= inv_std                       # xc is now xhat
        out = xc * gamma
        out += beta
    xhat, out = _like(xc, x), _like(out, x)
    cache = {"xhat": xhat, "inv_std": inv_std, "gamma": gamma, "training": training, "m": m}
    if training:
        cache["batch_mean"] = mu
        cache["batch_var_unbiased"] = var * (m / max(m - 1, 1))
    return out, cache


def batchnorm_backward(dout, cache, need_weight_grad: bool = True):
    """Gradients of batchnorm_forward, in the mode the forward pass ran in.

    dgamma = sum(dout * xhat);  dbeta = sum(dout);  with g = dout * gamma:
    training: dx = inv_std / m * (m*g - sum(g) - xhat * sum(g * xhat))   (mu, var depend on x)
            = gamma * inv_std / m * (m*dout - dbeta - xhat * dgamma)       (as computed)
    eval:     dx = g * inv_std                                              (statistics fixed)
    """
    xhat, inv_std, gamma, m = cache["xhat"], cache["inv_std"], cache["gamma"], cache["m"]
    rx = _rows(xhat)
    if rx is None or dout.shape != xhat.shape:           # other layouts: the textbook kernel
        return _textbook_backward(dout, cache, need_weight_grad)
    dt = dout.dtype
    chunks = _row_chunks(xhat, rx)
    if chunks is not None:      # on the workers of a threads() block
        dx, dgamma, dbeta = _backward_rows_parallel(dout, rx, chunks, gamma, inv_std,
                                                    cache["training"], need_weight_grad, m)
    else:
        rd = _rows(dout)
        if rd is None:   # dout in another layout: one copy into xhat's
            rd = np.ascontiguousarray(dout if dout.ndim == 2 else dout.transpose(0, 2, 3, 1))
            rd = rd.reshape(-1, dout.shape[1])
        dbeta = rd.sum(axis=0)
        if cache["training"]:
            dgamma = _sum_of_products(rd, rx)
            dx = rx * dgamma                     # xhat * dgamma
            dx += dbeta
            dx -= rd * np.asarray(m, dtype=dt)
            dx *= (gamma * inv_std * np.asarray(-1.0 / m, dtype=dt)).astype(dt, copy=False)
        else:
            dgamma = _sum_of_products(rd, rx) if need_weight_grad else None
            dx = rd * (gamma * inv_std).astype(dt, copy=False)
    if not need_weight_grad:
        dgamma = dbeta = None
    return _like(dx, xhat).astype(dt, copy=False), dgamma, dbeta
