"""Affine (dense) kernel.  Convention (as PyTorch): ``w`` is (D_out, D_in), so y = x W^T + b."""
from __future__ import annotations

import numpy as np


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None):
    """y = x W^T + b.  x: (N, D_in); w: (D_out, D_in); b: (D_out,) or None -> out (N, D_out), cache."""
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout: np.ndarray, cache, need_weight_grad: bool = True,
                    need_input_grad: bool = True):
    """Gradients of y = x W^T + b.  dout: (N, D_out).

    dx = dout W  (N, D_in);  dW = dout^T x  (D_out, D_in);  db = sum_n dout  (D_out,).
    ``dw``/``db`` are None when ``need_weight_grad`` is False (frozen layer) or there is no
    bias; ``dx`` is None when ``need_input_grad`` is False (a model's first layer).
    """
    x, w, has_bias = cache
    dx = dout @ w if need_input_grad else None
    dw = dout.T @ x if need_weight_grad else None
    db = dout.sum(axis=0) if need_weight_grad and has_bias else None
    return dx, dw, db
