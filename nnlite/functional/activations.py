"""Element-wise activations and softmax. Each ``*_forward`` returns ``(out, cache)``;
each ``*_backward(dout, cache)`` returns ``dx``. Any shape; dtype preserved.
"""
from __future__ import annotations

import numpy as np


def relu_forward(x):
    """y = max(x, 0)."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    """dy/dx = 1 where y > 0 else 0 (the sub-gradient at 0 is 0). A fresh array: ``dout`` may be
    shared (e.g. by a residual branch) and is never written."""
    return dout * (cache > 0)


def relu6_forward(x):
    """y = min(max(x, 0), 6) (MobileNet's bounded ReLU)."""
    return np.minimum(np.maximum(x, 0), 6).astype(x.dtype, copy=False), (x > 0) & (x < 6)


def relu6_backward(dout, cache):
    """dy/dx = 1 where 0 < x < 6 else 0 (0 at both kinks, as PyTorch's ReLU6). A fresh array."""
    return dout * cache


def leaky_relu_forward(x, negative_slope: float = 0.01):
    """y = x if x > 0 else a*x."""
    a = np.asarray(negative_slope, dtype=x.dtype)
    return np.where(x > 0, x, a * x), (x > 0, a)


def leaky_relu_backward(dout, cache):
    """dy/dx = 1 if x > 0 else a."""
    positive, a = cache
    return np.where(positive, dout, a * dout)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), computed stably for large |x|."""
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    """dy/dx = y (1 - y)."""
    y = cache
    return dout * y * (1 - y)


def tanh_forward(x):
    """y = tanh(x)."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dy/dx = 1 - y^2."""
    y = cache
    return dout * (1 - y * y)


def softmax_forward(x, axis: int = -1):
    """s_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis`` (stable)."""
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    s = e / e.sum(axis=axis, keepdims=True)
    return s, (s, axis)


def softmax_backward(dout, cache):
    """Jacobian-vector product: dx = s * (dout - sum_j dout_j s_j)."""
    s, axis = cache
    return s * (dout - (dout * s).sum(axis=axis, keepdims=True))


def log_softmax(x, axis: int = -1):
    """log s_i = x_i - logsumexp(x) along ``axis`` (stable)."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
