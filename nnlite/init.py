"""Weight initializers. Every function takes an explicit ``rng`` (Generator or seed) and a dtype.

fan_in / fan_out: for a dense weight (D_out, D_in) they are D_in / D_out; for a conv weight
(C_out, C_in, kh, kw) they are C_in*kh*kw / C_out*kh*kw (the receptive field counts).
"""
from __future__ import annotations

import numpy as np

from ._checks import as_generator


def fan_in_out(shape) -> tuple:
    """(fan_in, fan_out) of a weight of shape (D_out, D_in) or (C_out, C_in, kh, kw)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fan_in/fan_out need a weight of rank >= 2, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def he_normal(shape, rng=None, dtype=np.float32, gain: float = np.sqrt(2.0)):
    """N(0, std^2) with std = gain / sqrt(fan_in) (He et al. 2015, for ReLU)."""
    fan_in, _ = fan_in_out(shape)
    return (as_generator(rng).standard_normal(shape) * (gain / np.sqrt(fan_in))).astype(dtype)


def he_uniform(shape, rng=None, dtype=np.float32, gain: float = np.sqrt(2.0)):
    """U(-a, a) with a = gain * sqrt(3 / fan_in)."""
    fan_in, _ = fan_in_out(shape)
    a = gain * np.sqrt(3.0 / fan_in)
    return as_generator(rng).uniform(-a, a, size=shape).astype(dtype)


def glorot_normal(shape, rng=None, dtype=np.float32):
    """N(0, std^2) with std = sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fan_in_out(shape)
    return (as_generator(rng).standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def glorot_uniform(shape, rng=None, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_out(shape)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return as_generator(rng).uniform(-a, a, size=shape).astype(dtype)


INITIALIZERS = {"he_normal": he_normal, "he_uniform": he_uniform,
                "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform}


def get_initializer(name_or_fn):
    """Look an initializer up by name, or pass a callable ``(shape, rng, dtype) -> array`` through."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return INITIALIZERS[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown initializer {name_or_fn!r}; choose one of {sorted(INITIALIZERS)}") from None
