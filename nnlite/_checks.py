"""Input validation and RNG helpers shared by every public entry point.

Messages always name what was expected and what was given.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np

from .grad_mode import NO_GRAD_CACHE


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


def check_labels(y, n=None, num_classes=None, name: str = "y", nonnegative: bool = True) -> np.ndarray:
    """Integer class labels, y: (n,) (any (N,) when ``n`` is None), values in [0, num_classes).

    y: array-like of int; n: int or None; num_classes: int or None -> np.asarray(y).
    Without ``num_classes`` the labels need only be >= 0 (not even that with
    ``nonnegative=False``). An empty sequence (``[]`` is float64 to NumPy) is an empty label
    vector. ValueError for another rank or length, or a label out of range (naming the largest
    label above the range, else the smallest below it); TypeError for a non-integer dtype
    (bools refused).
    """
    y = np.asarray(y)
    if y.size == 0 and y.dtype == np.float64:
        y = y.astype(np.int64)
    if y.ndim != 1:
        if n is not None:
            raise ValueError(f"{name} must have shape ({n},) to match the scores, got {y.shape}")
        raise ValueError(f"{name} must be a 1-D array of class labels with shape (N,), "
                         f"got shape {y.shape} (rank {y.ndim})")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if n is not None and y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the scores, got {y.shape}")
    if y.size and num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        bad = y.max() if y.max() >= num_classes else y.min()
        raise ValueError(f"{name} holds label {bad}, outside the valid range [0, {num_classes - 1}] "
                         f"for {num_classes} classes")
    if y.size and nonnegative and y.min() < 0:
        raise ValueError(f"{name} holds label {int(y.min())}; labels must be integers >= 0")
    return y


def check_int(v, name: str, minimum: int = 1, allow=(), what=None, maximum=None) -> int:
    """An integer in ``[minimum, maximum]`` (``maximum`` None: no upper bound), or one of the
    values in ``allow`` (e.g. ``-1`` for "all"), as a Python int; bools refused.

    TypeError for a non-int, ValueError outside the range. Messages name ``name``, what was
    expected (``what``, e.g. "a positive int", when given; else "an int" and the range) and
    the value given.
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be {what or 'an int'}, got {type(v).__name__} ({v!r:.40})")
    v = int(v)
    if (v < minimum or (maximum is not None and v > maximum)) and v not in allow:
        extra = f" (or {', '.join(map(str, allow))})" if allow else ""
        want = what or (f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]")
        raise ValueError(f"{name} must be {want}{extra}, got {v}")
    return v


def pair(v, name: str) -> tuple:
    """Turn an int or a 2-tuple/list of ints into a 2-tuple of non-negative ints.

    TypeError for anything else (float, None, str, bool: never truncated), ValueError for
    negative values or a sequence of another length; messages name ``name``.
    """
    if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)):
        v = (int(v), int(v))
    elif isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be a non-negative int or a pair of them, got {tuple(v)} "
                             f"({len(v)} values)")
        for a in v:
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
                raise TypeError(f"{name} must be a non-negative int or a pair of ints, got "
                                f"{tuple(v)!r} (holding {type(a).__name__})")
        v = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{name} must be a non-negative int or a pair of ints, got "
                        f"{type(v).__name__} ({v!r:.40})")
    if min(v) < 0:
        raise ValueError(f"{name} must be a non-negative int or a pair of them, got {v}")
    return v


def check_real(v, name: str, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False,
               finite: bool = True) -> float:
    """A real number (bool, str, None refused) in the given range, as a Python float.

    TypeError for a non-number, ValueError for NaN/inf (when ``finite``) or outside
    ``[lo, hi]`` (``lo_open``/``hi_open`` exclude the bound); messages name ``name``, the
    range and the value.
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} ({v!r:.40})")
    v = float(v)
    if finite and not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    if np.isnan(v) or (lo is not None and (v <= lo if lo_open else v < lo)) or \
            (hi is not None and (v >= hi if hi_open else v > hi)):
        rng = (f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, "
               f"{'inf' if hi is None else hi}{')' if hi_open or hi is None else ']'}")
        raise ValueError(f"{name} must be in {rng}, got {v}")
    return v


def check_bool(v, name: str) -> bool:
    """A bool (numpy bools accepted); TypeError naming ``name`` otherwise (no truthiness)."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__} ({v!r:.40})")
    return bool(v)


def check_str(v, name: str, allow_none: bool = False):
    """A str (or None when ``allow_none``); TypeError naming ``name`` and the type given."""
    if v is None and allow_none:
        return v
    if not isinstance(v, str):
        raise TypeError(f"{name} must be a str{' or None' if allow_none else ''}, got {type(v).__name__}")
    return v


def check_path(v, name: str = "path") -> Path:
    """A str or ``os.PathLike`` as a ``pathlib.Path``; TypeError naming ``name`` otherwise."""
    if not isinstance(v, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(v).__name__}")
    return Path(v)


def check_choice(v, name: str, choices):
    """``v`` must equal one of ``choices`` (a tuple or list); ValueError naming ``name``, the
    choices ("'a', 'b' or 'c'", or "one of [...]" for more than three) and the value given."""
    if not any(isinstance(v, type(c)) and v == c for c in choices):
        if len(choices) <= 3:
            want = " or ".join(filter(None, [", ".join(repr(c) for c in choices[:-1]), repr(choices[-1])]))
        else:
            want = f"one of {list(choices)}"
        raise ValueError(f"{name} must be {want}, got {v!r:.60}")
    return v


def check_finite_vector(v, name: str, positive: bool = False, dtype=np.float64) -> np.ndarray:
    """A 1-D array of finite numbers (a scalar becomes length 1), cast to ``dtype``.

    TypeError for non-numeric input (strings, None, objects), ValueError for NaN/inf, an
    empty vector, or (``positive``) entries <= 0, naming the first bad index and value.
    """
    try:
        a = np.asarray(v)
    except Exception as e:  # ragged nested sequences
        raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__}: {e}") from None
    if a.dtype.kind not in "biuf" or a.dtype.kind == "b":
        raise TypeError(f"{name} must hold real numbers, got {type(v).__name__} of dtype {a.dtype}")
    a = a.astype(dtype).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    bad = ~np.isfinite(a) | ((a <= 0) if positive else False)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        want = "finite and > 0" if positive else "finite"
        raise ValueError(f"{name} must be {want}, got {a[i]} at index {i}")
    return a


def check_backward_ready(cache, who: str) -> None:
    """RuntimeError when ``backward`` runs before ``forward`` (the layer's cache is None) or
    after a forward that ran fused under ``nnlite.no_grad()`` (which kept nothing for it)."""
    if cache is None:
        raise RuntimeError(f"{who}.backward called before forward: call forward first")
    if cache is NO_GRAD_CACHE:
        raise RuntimeError(f"{who}.backward after a forward under nnlite.no_grad(), which kept nothing "
                           "for a backward: run the forward again outside no_grad()")


def check_dout(dout, shape, who: str) -> np.ndarray:
    """``dout`` must be a floating ndarray of the forward output's ``shape``.

    TypeError for a list or a non-float array, ValueError for another shape; messages name
    the layer ``who`` and both shapes.
    """
    if not isinstance(dout, np.ndarray):
        raise TypeError(f"{who}.backward: dout must be a numpy.ndarray (the gradient of the "
                        f"loss w.r.t. the forward output), got {type(dout).__name__}")
    if not np.issubdtype(dout.dtype, np.floating):
        raise TypeError(f"{who}.backward: dout must have a floating dtype, got {dout.dtype}")
    if shape is not None and dout.shape != tuple(shape):
        raise ValueError(f"{who}.backward: dout must have the forward output's shape "
                         f"{tuple(shape)}, got {dout.shape}")
    return dout
