"""Batch normalization for (N, D) and (N, C, H, W) inputs.

Statistics are per feature: over axis 0 for (N, D), over axes (0, 2, 3) for (N, C, H, W).
Training mode normalizes with the batch mean and *biased* variance; eval mode with the
running statistics. Running statistics follow PyTorch's convention (momentum m = 0.1):
    running = (1 - m) * running + m * batch_stat,  using the UNBIASED batch variance.
Backward is provided for both modes (eval-mode backward is what attacks need).
"""
from __future__ import annotations

import numpy as np


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
    if r is not None:   # fast path: (M, C) rows, statistics as axis-0 reductions
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

