"""Inverted dropout.

Convention: ``p`` is the probability of DROPPING a unit (as PyTorch). In training each unit is
kept with probability 1 - p and scaled by 1 / (1 - p), so E[out] = x; in eval it is the identity.
"""
from __future__ import annotations

import numpy as np

from .._checks import as_generator


def dropout_forward(x, p: float, rng, training: bool = True):
    """out = x * mask, mask = [u >= p] / (1 - p), u ~ U[0, 1) from ``rng``.

    x: any shape; p in [0, 1); rng: numpy Generator or seed -> out (x's shape and dtype), cache.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout p (drop probability) must be in [0, 1), got {p}")
    if not training or p == 0:
        return x, None
    rng = as_generator(rng)
    keep = rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32) >= p
    mask = keep.astype(x.dtype) * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    return x * mask, mask


def dropout_backward(dout, cache):
    """dx = dout * mask (identity when the forward pass was the identity)."""
    return dout if cache is None else dout * cache
