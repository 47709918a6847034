"""Preprocessing utilities: layout/dtype conversion, standardization, splits, one-hot.

Conventions used throughout :mod:`nnlite.data`:

* Readers return images as ``uint8`` arrays in **NHWC** layout ``(N, H, W, C)``
  and labels as ``int64`` arrays ``(N,)``.
* Models consume **NCHW** ``float32`` arrays with values in ``[0, 1]``;
  :func:`to_float_nchw` performs that conversion.
* Nothing here touches NumPy's global random state. Every function that samples
  takes ``rng``: a :class:`numpy.random.Generator` or an ``int`` seed, normalized
  by :func:`as_generator`.
"""
from __future__ import annotations

import numbers
from typing import Dict, Optional, Tuple, Union

import numpy as np

__all__ = [
    "as_generator",
    "to_float_nchw",
    "to_uint8_nhwc",
    "Standardizer",
    "stratified_split",
    "stratified_subset",
    "one_hot",
]

from .._checks import as_generator as _as_generator  # noqa: E402
from .._checks import check_int, check_labels  # noqa: E402

RngLike = Union[np.random.Generator, int, np.integer]


def as_generator(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator or an int seed; ``None`` is refused (data pipelines must
    be reproducible). See ``nnlite._checks.as_generator``."""
    return _as_generator(rng, allow_none=False)


def _check_batch(x, who: str) -> np.ndarray:
    """x must be a floating (N, C, H, W) numpy array; TypeError / ValueError naming ``who``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who} expects a numpy.ndarray batch, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{who} expects a floating (N, C, H, W) batch, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{who} expects shape (N, C, H, W), got shape {x.shape}")
    return x


def _check_uint8_images(x, name: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (N, H, W, C) or (N, H, W), got shape {x.shape}"
        )
    return x


def to_float_nchw(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Convert uint8 NHWC images to floating NCHW images in ``[0, 1]``.

    x: ``(N, H, W, C)`` or ``(N, H, W)`` uint8 (a missing channel axis is taken as ``C = 1``);
    dtype: floating output dtype (default ``float32``)
    -> ``(N, C, H, W)`` array of ``dtype`` equal to ``x / 255``, C-contiguous.
    Raises TypeError: if ``x`` is not a uint8 ndarray or ``dtype`` is not floating; ValueError:
    if ``x`` is not 3-D or 4-D.
    """
    x = _check_uint8_images(x)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    out = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=dtype)
    out /= dtype.type(255)
    return out


def to_uint8_nhwc(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_float_nchw`.

    x: ``(N, C, H, W)`` floating array with values in ``[0, 1]`` (values outside are clipped)
    -> ``(N, H, W, C)`` uint8 array, ``round(255 * x)``.
    """
    _check_batch(x, "to_uint8_nhwc")
    y = np.clip(np.rint(x.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1))


class Standardizer:
    """Per-channel (or per-feature) standardization ``(x - mean) / std``.

    The statistics are fitted on the **training split only** and then applied
    unchanged to validation/test data.

    * 4-D input ``(N, C, H, W)``: one mean/std per channel, shape ``(C,)``.
    * 2-D input ``(N, D)``: one mean/std per feature, shape ``(D,)``.

    Statistics are computed in float64; ``transform`` returns the input's
    floating dtype. A standard deviation below ``eps`` is replaced by ``1`` so
    constant channels map to zero instead of dividing by ~0.

    State is two plain arrays (``state_dict()`` -> ``{"mean", "std"}``) and can be
    saved with ``np.savez`` and restored with :meth:`load_state_dict`.
    """

    def __init__(self, eps: float = 1e-8):
        if not (isinstance(eps, numbers.Real) and eps >= 0):
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        self.eps = float(eps)
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None

    @staticmethod
    def _check(x, what: str) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{what} expects a numpy.ndarray, got {type(x).__name__}")
        if x.dtype.kind != "f":
            raise TypeError(
                f"{what} expects a floating array (use to_float_nchw first), got dtype {x.dtype}"
            )
        if x.ndim not in (2, 4):
            raise ValueError(f"{what} expects shape (N, C, H, W) or (N, D), got shape {x.shape}")
        return x

    def _shape(self, x: np.ndarray) -> Tuple[int, ...]:
        return (1, -1, 1, 1) if x.ndim == 4 else (1, -1)

    def fit(self, x: np.ndarray) -> "Standardizer":
        """Fit mean/std on ``x`` (``(N, C, H, W)`` or ``(N, D)`` float). Returns self."""
        x = self._check(x, "Standardizer.fit")
        if x.shape[0] == 0:
            raise ValueError("Standardizer.fit needs at least one sample, got N=0")
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        xd = x.astype(np.float64, copy=False)
        mean = xd.mean(axis=axes)
        std = xd.std(axis=axes)
        std = np.where(std < self.eps, 1.0, std)
        self.mean, self.std = mean, std
        return self

    def _require_fitted(self, x: np.ndarray, what: str) -> None:
        if self.mean is None or self.std is None:
            raise ValueError(f"Standardizer.{what} called before fit()")
        n = x.shape[1]
        if n != self.mean.shape[0]:
            raise ValueError(
                f"Standardizer was fitted on {self.mean.shape[0]} channels/features, "
                f"got input with {n} (shape {x.shape})"
            )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean) / std`` with the fitted statistics (same shape and dtype as ``x``)."""
        x = self._check(x, "Standardizer.transform")
        self._require_fitted(x, "transform")
        s = self._shape(x)
        m = self.mean.astype(x.dtype).reshape(s)
        d = self.std.astype(x.dtype).reshape(s)
        return (x - m) / d

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Return ``z * std + mean`` (undo :meth:`transform`); same shape and dtype as ``z``."""
        z = self._check(z, "Standardizer.inverse_transform")
        self._require_fitted(z, "inverse_transform")
        s = self._shape(z)
        return z * self.std.astype(z.dtype).reshape(s) + self.mean.astype(z.dtype).reshape(s)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Return ``{"mean": (C,), "std": (C,)}`` float64 copies."""
        if self.mean is None:
            raise ValueError("Standardizer.state_dict called before fit()")
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> "Standardizer":
        """Restore statistics saved by :meth:`state_dict`. Returns self."""
        try:
            mean = np.asarray(state["mean"], dtype=np.float64)
            std = np.asarray(state["std"], dtype=np.float64)
        except (KeyError, TypeError) as e:
            raise ValueError(f"state must have 'mean' and 'std' arrays, got {state!r}") from e
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(
                f"mean and std must be 1-D with equal shapes, got {mean.shape} and {std.shape}"
            )
        if np.any(std <= 0):
            raise ValueError("std values must be positive")
        self.mean, self.std = mean.copy(), std.copy()
        return self

    def __repr__(self) -> str:
        if self.mean is None:
            return "Standardizer(unfitted)"
        return f"Standardizer(mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"


def _proportional_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``counts`` (largest remainder).

    The quotas sum to ``total`` and never exceed ``counts``.
    """
    n = counts.sum()
    exact = counts * (total / n)
    q = np.floor(exact).astype(np.int64)
    rem = total - q.sum()
    if rem > 0:
        frac = exact - q
        # ties broken by class index (stable sort) -> deterministic
        order = np.argsort(-frac, kind="stable")
        order = order[q[order] < counts[order]]
        q[order[:rem]] += 1
    return q


def stratified_split(y, val_fraction: float, rng: RngLike) -> Tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train/validation with class proportions preserved.

    y: ``(N,)`` integer labels;
    val_fraction: fraction of samples in the validation part, ``0 < f < 1``;
    rng: Generator or int seed, which samples of each class go to validation is drawn at random
    -> ``(train_idx, val_idx)``: disjoint sorted ``int64`` index arrays whose union is
    ``arange(N)``. ``len(val_idx) == round(N * val_fraction)`` and class ``k`` contributes
    ``round``-ed ``count_k * val_fraction`` samples (largest-remainder rounding so the total is
    exact).
    """
    y = check_labels(y, nonnegative=False)
    if not isinstance(val_fraction, numbers.Real) or not (0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    gen = as_generator(rng)
    n = y.shape[0]
    if n == 0:
        raise ValueError("cannot split an empty label array")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quotas = _proportional_quotas(counts, int(round(n * val_fraction)))
    # one random key per sample, sort by (class, key): a random order within each class
    keys = gen.random(n)
    order = np.lexsort((keys, inverse))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    is_val = rank < quotas[inverse]
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def stratified_subset(y, n: int, rng: Optional[RngLike] = None) -> np.ndarray:
    """Pick ``n`` sample indices with class proportions preserved.

    y: ``(N,)`` integer labels;
    n: subset size, ``0 <= n <= N``;
    rng: ``None`` (default) takes the **first** samples of each class in file order
        (deterministic, no randomness), a Generator or int seed takes a random sample within
        each class
    -> sorted ``int64`` indices, ``(n,)``; class ``k`` contributes its proportional share
    (largest-remainder rounding).
    """
    y = check_labels(y, nonnegative=False)
    n = check_int(n, "n", minimum=0, maximum=y.shape[0])
    if n == y.shape[0]:
        return np.arange(n, dtype=np.int64)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quotas = _proportional_quotas(counts, int(n))
    keys = np.arange(y.shape[0], dtype=np.float64) if rng is None else as_generator(rng).random(y.shape[0])
    order = np.lexsort((keys, inverse))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(y.shape[0], dtype=np.int64)
    rank[order] = np.arange(y.shape[0]) - np.repeat(starts, counts)
    return np.flatnonzero(rank < quotas[inverse]).astype(np.int64)


def one_hot(y, num_classes: int, dtype=np.float32) -> np.ndarray:
    """One-hot encode integer labels.

    y: integer labels of any shape ``S`` with values in ``[0, num_classes)``; num_classes:
    number of classes ``K >= 1``; dtype: output dtype (default float32) -> array of shape
    ``S + (K,)`` with a single 1 per label. Raises TypeError: non-integer labels; ValueError:
    labels outside ``[0, num_classes)`` (the offending range is named).
    """
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"one_hot expects integer labels, got dtype {y.dtype}")
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes - 1}], got values in [{y.min()}, {y.max()}]"
        )
    out = np.zeros(y.shape + (int(num_classes),), dtype=dtype)
    np.put_along_axis(out, y[..., None].astype(np.intp), 1, axis=-1)
    return out
