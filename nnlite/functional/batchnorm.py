"""Batch normalization for (N, D) and (N, C, H, W) inputs, both modes, one implementation.

Statistics are per feature: over axis 0 for (N, D), over axes (0, 2, 3) for (N, C, H, W).
Training normalizes with the batch mean and *biased* variance; eval with the running
statistics. Running statistics follow PyTorch (momentum m = 0.1):
    running = (1 - m) * running + m * batch_stat,  with the UNBIASED batch variance.
Backward exists in both modes (eval-mode backward is what attacks need).
"""
from __future__ import annotations

import numpy as np


def _axes_and_shape(x):
    """Reduction axes and the broadcast shape of a per-feature vector, for x's rank."""
    if x.ndim == 2:
        return (0,), (1, -1)
    if x.ndim == 4:
        return (0, 2, 3), (1, -1, 1, 1)
    raise ValueError(f"batch norm expects (N, D) or (N, C, H, W) input, got shape {x.shape}")


def batchnorm_forward(x, gamma, beta, training: bool, running_mean=None, running_var=None,
                      eps: float = 1e-5):
    """y = gamma * xhat + beta,  xhat = (x - mu) / sqrt(var + eps).

    x: (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var: (D,) or (C,)
    -> out (x's shape), cache. Training: mu, var = batch mean and biased variance (m values per
    feature); eval: the running statistics. ``cache['batch_mean']`` and
    ``cache['batch_var_unbiased']`` (training only) feed ``batchnorm_running_update``.
    """
    axes, bshape = _axes_and_shape(x)
    m = x.size // x.shape[1]
    if training:
        mu = x.mean(axis=axes, dtype=x.dtype)
        var = ((x - mu.reshape(bshape)) ** 2).mean(axis=axes, dtype=x.dtype)
    elif running_mean is None or running_var is None:
        raise ValueError("eval-mode batch norm needs running_mean and running_var")
    else:
        mu, var = running_mean, running_var
    inv_std = (1.0 / np.sqrt(var + np.asarray(eps, dtype=x.dtype))).astype(x.dtype, copy=False)
    xhat = (x - mu.reshape(bshape)) * inv_std.reshape(bshape)
    out = xhat * gamma.reshape(bshape) + beta.reshape(bshape)
    cache = {"xhat": xhat, "inv_std": inv_std, "gamma": gamma, "training": training, "m": m}
    if training:
        cache["batch_mean"], cache["batch_var_unbiased"] = mu, var * (m / max(m - 1, 1))
    return out, cache


def batchnorm_running_update(running_mean, running_var, cache, momentum: float = 0.1):
    """new = (1 - momentum) * old + momentum * batch (unbiased variance), PyTorch's convention.

    Returns the new (running_mean, running_var); the inputs are not modified.
    """
    m = np.asarray(momentum, dtype=running_mean.dtype)
    new_mean = (1 - m) * running_mean + m * cache["batch_mean"]
    new_var = (1 - m) * running_var + m * cache["batch_var_unbiased"]
    return new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype)


def batchnorm_backward(dout, cache, need_weight_grad: bool = True):
    """Gradients of batchnorm_forward in the mode its forward ran in.  dout: x's shape.

    dgamma = sum(dout * xhat);  dbeta = sum(dout);  with g = dout * gamma:
    training: dx = inv_std / m * (m*g - sum(g) - xhat * sum(g * xhat))   (mu, var depend on x)
    eval:     dx = g * inv_std                                              (statistics fixed)
    """
    xhat, inv_std, gamma, m = cache["xhat"], cache["inv_std"], cache["gamma"], cache["m"]
    if dout.shape != xhat.shape:
        raise ValueError(f"dout has shape {dout.shape}, the forward output had {xhat.shape}")
    axes, bshape = _axes_and_shape(xhat)
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
