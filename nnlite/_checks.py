"""Input validation and RNG helpers shared by every public entry point.

Messages always name what was expected and what was given.
"""
from __future__ import annotations

import numbers

import numpy as np


def as_generator(rng, allow_none: bool = True) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a Generator or a non-negative int seed.

    A Generator is returned unchanged (its state advances as it is used). ``None`` gives a
    fresh Generator seeded from OS entropy (never NumPy's global RNG) when ``allow_none``;
    functions whose results must be reproducible pass ``allow_none=False`` and refuse it.
    Bools, floats and the legacy ``RandomState`` are refused.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None and allow_none:
        return np.random.default_rng()
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"rng must be a numpy.random.Generator or an int seed"
                        f"{' or None' if allow_none else ''}, got {type(rng).__name__}")
    if int(rng) < 0:
        raise ValueError(f"rng seed must be >= 0, got {int(rng)}")
    return np.random.default_rng(int(rng))


def check_float_array(x, name: str = "x", ndim=None) -> np.ndarray:
    """Check that ``x`` is a floating ndarray (of rank ``ndim`` if given, an int or a tuple)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a floating dtype (float32 or float64), got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have rank {want}, got shape {x.shape} (rank {x.ndim})")
    return x


def check_same_dtype(x: np.ndarray, ref: np.ndarray, name: str = "x", what: str = "the layer's parameters") -> None:
    """Refuse silent upcasting: the input dtype must equal the parameters' dtype."""
    if x.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but {what} are {ref.dtype}; cast the input "
            f"(x.astype(np.{ref.dtype})) or the model (model.astype(np.{x.dtype}))")


def check_labels(y, n: int, num_classes: int, name: str = "y") -> np.ndarray:
    """Integer class labels of shape (n,) with values in [0, num_classes)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the scores, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise ValueError(f"{name} holds label {bad}, outside the valid range [0, {num_classes - 1}]")
    return y


def check_int(v, name: str, minimum: int = 1) -> int:
    """An integer ``v >= minimum`` (bool refused) as a Python int: TypeError for a non-int,
    ValueError below ``minimum``; messages name ``name``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def pair(v, name: str) -> tuple:
    """Turn an int or a 2-tuple into a 2-tuple of non-negative ints."""
    if isinstance(v, numbers.Integral):
        v = (int(v), int(v))
    v = tuple(int(a) for a in v)
    if len(v) != 2 or min(v) < 0:
        raise ValueError(f"{name} must be a non-negative int or a pair of them, got {v}")
    return v
