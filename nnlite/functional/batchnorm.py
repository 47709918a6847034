"""Batch normalization for (N, D) and (N, C, H, W) inputs.

Statistics are per feature: over axis 0 for (N, D), over axes (0, 2, 3) for (N, C, H, W).
Training mode normalizes with the batch mean and *biased* variance; eval mode with the
running statistics. Running statistics follow PyTorch's convention (momentum m = 0.1):
    running = (1 - m) * running + m * batch_stat,  using the UNBIASED batch variance.
Backward is provided for both modes (eval-mode backward is what attacks need).

Inside an ``nnlite.parallel.threads()`` block, a large input whose memory is rows (see
``_rows``: (N, D) C-contiguous, or channel-last (N, C, H, W)) is processed on the workers in
chunks of samples (``_chunks.batch_chunks``): the per-feature sums are per-worker partial sums
combined in worker order (static split: deterministic; they differ from the sequential sums
in the last bits only), and the element-wise passes write disjoint rows of fresh results.
Other layouts stay sequential.
"""
from __future__ import annotations

import numpy as np

from ..parallel import run_chunks
from ._chunks import batch_chunks

#: Inside a threads() block: most bytes of input rows in one chunk (smaller, cache-sized
#: chunks were measured no faster; see ``pool.CHUNK_BYTES``).
CHUNK_BYTES = 8 << 20


def _axes_and_shape(x):
    if x.ndim == 2:
        return (0,), (1, -1)
    if x.ndim == 4:
        return (0, 2, 3), (1, -1, 1, 1)
    raise ValueError(f"batch norm expects (N, D) or (N, C, H, W) input, got shape {x.shape}")


def _rows(x):
    """A (M, C) view of x with one row per (sample, pixel) and one column per feature, or None.

    Possible without a copy for (N, D) C-contiguous input and for (N, C, H, W) arrays whose
    memory is channel-last (what nnlite's conv, ReLU and pooling produce). Every statistic is
    then a reduction over axis 0 of one 2-D array, and the outputs keep the input's layout.
    """
    if x.ndim == 2:
        return x if x.flags.c_contiguous else None
    t = x.transpose(0, 2, 3, 1)
    return t.reshape(-1, x.shape[1]) if t.flags.c_contiguous else None


def _like(rows, x):
    """Undo `_rows`: the (M, C) array as x's shape, in x's (channel-last) layout."""
    if x.ndim == 2:
        return rows
    n, c, h, w = x.shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


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
    axes, bshape = _axes_and_shape(x)
    r = _rows(x)
    m = x.size // x.shape[1]
    dt = x.dtype
    chunks = _row_chunks(x, r) if r is not None else None
    if chunks is not None:      # fast path on the workers of a threads() block
        if not training and (running_mean is None or running_var is None):
            raise ValueError("eval-mode batch norm needs running_mean and running_var")
        xc, out, mu, var, inv_std = _forward_rows_parallel(
            r, chunks, gamma, beta, training, running_mean, running_var, eps, m)
        xhat, out = _like(xc, x), _like(out, x)
    elif r is not None:   # fast path: (M, C) rows, statistics as axis-0 reductions
        if training:
            mu = r.mean(axis=0, dtype=dt)
            xc = r - mu
            var = (_sum_of_products(xc, xc) / m).astype(dt, copy=False)
        else:
            if running_mean is None or running_var is None:
                raise ValueError("eval-mode batch norm needs running_mean and running_var")
            mu, var = running_mean, running_var
            xc = r - mu
        inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=dt))).astype(dt, copy=False)
        xc *= inv_std                       # xc is now xhat
        out = xc * gamma
        out += beta
        xhat, out = _like(xc, x), _like(out, x)
    else:
        if training:
            mu = x.mean(axis=axes, dtype=dt)
            xc = x - mu.reshape(bshape)
            var = (xc * xc).mean(axis=axes, dtype=dt)
        else:
            if running_mean is None or running_var is None:
                raise ValueError("eval-mode batch norm needs running_mean and running_var")
            mu, var = running_mean, running_var
            xc = x - mu.reshape(bshape)
        inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=dt))).astype(dt, copy=False)
        xhat = xc * inv_std.reshape(bshape)
        out = xhat * gamma.reshape(bshape) + beta.reshape(bshape)
    cache = {"xhat": xhat, "inv_std": inv_std, "gamma": gamma, "training": training,
             "axes": axes, "bshape": bshape, "m": m}
    if training:
        cache["batch_mean"] = mu
        cache["batch_var_unbiased"] = var * (m / max(m - 1, 1))
    return out, cache


def batchnorm_running_update(running_mean, running_var, cache, momentum: float = 0.1):
    """PyTorch convention: new = (1 - momentum) * old + momentum * batch (unbiased variance).

    Returns the new (running_mean, running_var); the inputs are not modified.
    """
    m = np.asarray(momentum, dtype=running_mean.dtype)
    new_mean = (1 - m) * running_mean + m * cache["batch_mean"]
    new_var = (1 - m) * running_var + m * cache["batch_var_unbiased"]
    return new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype)


def batchnorm_backward(dout, cache, need_weight_grad: bool = True):
    """Gradients of batchnorm_forward, in the mode the forward pass ran in.

    dgamma = sum(dout * xhat);  dbeta = sum(dout);  with g = dout * gamma:
    training: dx = inv_std / m * (m*g - sum(g) - xhat * sum(g * xhat))   (mu, var depend on x)
            = gamma * inv_std / m * (m*dout - dbeta - xhat * dgamma)       (as computed)
    eval:     dx = g * inv_std                                              (statistics fixed)
    """
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    axes, bshape, m = cache["axes"], cache["bshape"], cache["m"]
    dt = dout.dtype
    rx = _rows(xhat)
    chunks = _row_chunks(xhat, rx) if rx is not None and dout.shape == xhat.shape else None
    if chunks is not None:      # fast path on the workers of a threads() block
        dx, dgamma, dbeta = _backward_rows_parallel(dout, rx, chunks, gamma, inv_std,
                                                    cache["training"], need_weight_grad, m)
        dx = _like(dx, xhat)
        if not need_weight_grad:
            dgamma = dbeta = None
        return dx.astype(dt, copy=False), dgamma, dbeta
    if rx is not None and dout.shape == xhat.shape:
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
        dx = _like(dx, xhat)
        if not need_weight_grad:
            dgamma = dbeta = None
        return dx.astype(dt, copy=False), dgamma, dbeta
    if dout.shape != xhat.shape:
        raise ValueError(f"dout has shape {dout.shape}, the forward output had {xhat.shape}")
    dgamma = (dout * xhat).sum(axis=axes) if need_weight_grad else None
    dbeta = dout.sum(axis=axes) if need_weight_grad else None
    g = dout * gamma.reshape(bshape)
    if cache["training"]:
        sum_g = g.sum(axis=axes).reshape(bshape)
        sum_gx = (g * xhat).sum(axis=axes).reshape(bshape)
        dx = (inv_std / m).reshape(bshape) * (m * g - sum_g - xhat * sum_gx)
    else:
        dx = g * inv_std.reshape(bshape)
    return dx.astype(dout.dtype, copy=False), dgamma, dbeta

