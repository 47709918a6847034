"""Batched, vectorized data augmentations for float NCHW image batches.

Calling convention: ``t = RandomCrop(28, padding=2); x_aug = t(x, rng)`` where

* ``x`` is a floating ``(N, C, H, W)`` batch, normally in ``[0, 1]``;
* ``rng`` is a :class:`numpy.random.Generator` (its state advances) or an int
  seed (a fresh generator per call);
* the result has ``x``'s dtype; ``x`` itself is never modified.

Every random parameter is drawn **per sample** with one vectorized call for the
whole batch (so the number of generator calls does not depend on ``N``), and
the image operations use array indexing/broadcasting over the batch - there is
no Python loop over samples. The same generator state gives the same output.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Iterable, List, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .preprocess import RngLike, _check_batch, as_generator

__all__ = [
    "Transform",
    "Compose",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomShift",
    "RandomRotation",
    "RandomResizedCrop",
    "ColorJitter",
    "RandomGrayscale",
    "GaussianNoise",
    "GaussianBlur",
]

# ITU-R BT.601 luma weights, the usual RGB -> gray conversion
_LUMA = (0.299, 0.587, 0.114)


def _prob(p, name: str = "p") -> float:
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not (0.0 <= p <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _pair(v, name: str) -> Tuple[int, int]:
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v), int(v))
    if not (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in v)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if v[0] <= 0 or v[1] <= 0:
        raise ValueError(f"{name} must be positive, got {v!r}")
    return int(v[0]), int(v[1])


def _range(v, name: str, centre: float = None, lower: float = None) -> Tuple[float, float]:
    """A number ``v`` -> ``(centre - v, centre + v)`` (clamped at ``lower``); a pair is kept."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
        lo, hi = (centre - v, centre + v) if centre is not None else (0.0, float(v))
        if lower is not None:
            lo = max(lower, lo)
        return float(lo), float(hi)
    if (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(t, numbers.Real) and not isinstance(t, bool) for t in v)):
        lo, hi = float(v[0]), float(v[1])
        if lo > hi or (lower is not None and lo < lower):
            low = lower if lower is not None else "-inf"
            raise ValueError(f"{name} range must satisfy {low} <= lo <= hi, got {v!r}")
        return lo, hi
    raise ValueError(f"{name} must be a number or a (lo, hi) pair, got {v!r}")


def _as_pair(v, name: str):
    """Require a ``(lo, hi)`` pair of numbers (tuple or list)."""
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise ValueError(f"{name} must be a (lo, hi) pair, got {v!r}")
    return tuple(v)


def _gather(x: np.ndarray, yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """``out[n, c, i, j] = x[n, c, yi[n, i, j], xi[n, i, j]]`` (indices must be in range).

    x: (N, C, H, W); yi, xi: (N, Ho, Wo) integer -> (N, C, Ho, Wo).
    """
    n, c, h, w = x.shape
    ho, wo = yi.shape[1:]
    # flat index into x.ravel(): ((n * C + c) * H + y) * W + x
    base = np.arange(n * c, dtype=np.intp).reshape(n, c, 1) * (h * w)
    idx = base + (yi * w + xi).reshape(n, 1, ho * wo)
    return np.take(np.ascontiguousarray(x).ravel(), idx).reshape(n, c, ho, wo)


def _sample(x: np.ndarray, sy: np.ndarray, sx: np.ndarray, interpolation: str,
            border: str, fill: float = 0.0) -> np.ndarray:
    """Sample ``x`` at real source coordinates (pixel centres at integers).

    x: (N, C, H, W); sy, sx: (N, Ho, Wo) float64 row/column coordinates.
    border ``"fill"``: points outside the image take ``fill``; ``"clamp"``:
    coordinates are clamped to the image (edge replication).
    Returns (N, C, Ho, Wo) in x.dtype.
    """
    n, c, h, w = x.shape
    dt = x.dtype
    if border == "clamp":
        sy = np.clip(sy, 0, h - 1)
        sx = np.clip(sx, 0, w - 1)
    if interpolation == "nearest":
        yi = np.floor(sy + 0.5).astype(np.intp)
        xi = np.floor(sx + 0.5).astype(np.intp)
        valid = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        v = _gather(x, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1))
        if border == "fill":
            v = np.where(valid[:, None], v, dt.type(fill))
        return v.astype(dt, copy=False)
    y0f, x0f = np.floor(sy), np.floor(sx)
    wy1 = (sy - y0f).astype(dt)
    wx1 = (sx - x0f).astype(dt)
    wy0, wx0 = 1 - wy1, 1 - wx1
    y0, x0 = y0f.astype(np.intp), x0f.astype(np.intp)
    out = np.zeros((n, c) + sy.shape[1:], dtype=dt)
    for yy, wy in ((y0, wy0), (y0 + 1, wy1)):
        for xx, wx in ((x0, wx0), (x0 + 1, wx1)):
            v = _gather(x, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1))
            if border == "fill":
                valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                v = np.where(valid[:, None], v, dt.type(fill))
            out += (wy * wx)[:, None] * v
    return out


def _crop_windows(xp: np.ndarray, oy: np.ndarray, ox: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per-sample windows ``xp[n, :, oy[n]:oy[n]+h, ox[n]:ox[n]+w]`` -> (N, C, h, w)."""
    win = sliding_window_view(xp, (h, w), axis=(2, 3))  # (N, C, Hp-h+1, Wp-w+1, h, w), a view
    return np.ascontiguousarray(win[np.arange(xp.shape[0]), :, oy, ox])


def _gray(x: np.ndarray) -> np.ndarray:
    """Luma of an RGB batch: (N, 3, H, W) -> (N, 1, H, W) in x.dtype."""
    wts = np.asarray(_LUMA, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x * wts).sum(axis=1, keepdims=True, dtype=x.dtype)


class Transform:
    """Base class: subclasses implement ``_apply(x, gen)``; ``__call__(x, rng)`` validates."""

    def __call__(self, x: np.ndarray, rng: RngLike) -> np.ndarray:
        """Apply to a float ``(N, C, H, W)`` batch with generator/seed ``rng``; returns same dtype."""
        x = _check_batch(x, type(self).__name__)
        gen = as_generator(rng)
        out = self._apply(x, gen)
        if out is x:  # always hand back a new array
            return x.copy()
        return out.astype(x.dtype, copy=False)

    def _apply(self, x: np.ndarray, gen: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, all drawing from one generator.

    ``Compose([RandomCrop(32, 4), RandomHorizontalFlip()])(x, rng)``; an int seed is
    turned into one generator shared by the whole chain.
    """

    def __init__(self, transforms: Iterable[Callable]):
        ts = list(transforms)
        for t in ts:
            if not callable(t):
                raise TypeError(f"Compose expects callables t(x, rng), got {type(t).__name__}")
        self.transforms: List[Callable] = ts

    def _apply(self, x, gen):
        for t in self.transforms:
            x = t(x, gen)
        return x

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


class RandomCrop(Transform):
    """Pad, then crop a random ``size`` window per sample.

    Args:
        size: output ``(h, w)`` (or one int for square); must fit in the padded image.
        padding: pixels added on every side before cropping.
        fill: value of constant padding.
        pad_mode: ``"constant"``, ``"reflect"`` or ``"edge"``.

    Shapes: ``(N, C, H, W)`` -> ``(N, C, h, w)``. The window's top-left corner in the
    padded image is uniform over all valid positions, independently per sample.
    """

    def __init__(self, size, padding: int = 0, fill: float = 0.0, pad_mode: str = "constant"):
        self.size = _pair(size, "size")
        if not isinstance(padding, numbers.Integral) or isinstance(padding, bool) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, got {padding!r}")
        if pad_mode not in ("constant", "reflect", "edge"):
            raise ValueError(f"pad_mode must be 'constant', 'reflect' or 'edge', got {pad_mode!r}")
        self.padding, self.fill, self.pad_mode = int(padding), float(fill), pad_mode

    def _apply(self, x, gen):
        p = self.padding
        if p:
            kw = {"constant_values": self.fill} if self.pad_mode == "constant" else {}
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.pad_mode, **kw)
        n, _, hp, wp = x.shape
        h, w = self.size
        if h > hp or w > wp:
            raise ValueError(f"crop size {self.size} larger than the padded image {(hp, wp)}")
        oy = gen.integers(0, hp - h + 1, size=n)
        ox = gen.integers(0, wp - w + 1, size=n)
        return _crop_windows(x, oy, ox, h, w)


class RandomShift(Transform):
    """Translate each image by a random integer offset, filling uncovered pixels.

    Args:
        max_shift: offsets ``dy, dx`` are uniform integers in ``[-max_shift, max_shift]``.
        fill: value of uncovered pixels.

    ``out[n, :, i, j] = x[n, :, i - dy, j - dx]`` (or ``fill``). Shape is preserved.
    """

    def __init__(self, max_shift: int, fill: float = 0.0):
        if not isinstance(max_shift, numbers.Integral) or isinstance(max_shift, bool) or max_shift < 0:
            raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
        self.max_shift, self.fill = int(max_shift), float(fill)

    def _apply(self, x, gen):
        m = self.max_shift
        n, _, h, w = x.shape
        if m == 0:
            return x.copy()
        xp = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)), constant_values=self.fill)
        dy = gen.integers(-m, m + 1, size=n)
        dx = gen.integers(-m, m + 1, size=n)
        return _crop_windows(xp, m - dy, m - dx, h, w)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (independently per sample)."""

    def __init__(self, p: float = 0.5):
        self.p = _prob(p)

    def _apply(self, x, gen):
        flip = gen.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)


class RandomRotation(Transform):
    """Rotate each image about its centre by its own random angle.

    Args:
        degrees: angles uniform in ``[-degrees, degrees]``, or a ``(lo, hi)`` range.
            Positive angles rotate **counter-clockwise** as displayed (row 0 at the
            top), matching ``np.rot90`` for +90.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill: value for points that come from outside the image.

    One batched affine grid ``(N, H, W)`` is built from the per-sample angles and
    sampled with a gather; shape is preserved.
    """

    def __init__(self, degrees, interpolation: str = "bilinear", fill: float = 0.0):
        self.degrees = _range(degrees, "degrees", centre=0.0)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.interpolation, self.fill = interpolation, float(fill)

    def _apply(self, x, gen):
        n, _, h, w = x.shape
        ang = np.deg2rad(gen.uniform(self.degrees[0], self.degrees[1], size=n))
        cos, sin = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        dy = (np.arange(h, dtype=np.float64) - cy)[None, :, None]
        dx = (np.arange(w, dtype=np.float64) - cx)[None, None, :]
        # inverse map: output pixel -> source pixel (rotate by -angle)
        sx = cos * dx - sin * dy + cx
        sy = sin * dx + cos * dy + cy
        return _sample(x, sy, sx, self.interpolation, "fill", self.fill)


class RandomResizedCrop(Transform):
    """Crop a random box of random area and aspect ratio per sample, resize to ``size``.

    Args:
        size: output ``(h, w)`` or one int.
        scale: box area as a fraction of the image area, uniform in this range.
        ratio: box aspect ratio ``width / height``, log-uniform in this range.
        interpolation: ``"bilinear"`` or ``"nearest"``.

    For each sample 10 candidate boxes are drawn at once and the first that fits
    is used; if none fits, the central box with the closest allowed ratio is used.
    Boxes have real-valued position/size; resampling uses half-pixel centres
    (``src = top + (i + 0.5) * box_h / h - 0.5``) with edge clamping. There is no
    anti-aliasing when shrinking large boxes.
    Shapes: ``(N, C, H, W)`` -> ``(N, C, h, w)``.
    """

    _ATTEMPTS = 10

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation: str = "bilinear"):
        self.size = _pair(size, "size")
        self.scale = _range(_as_pair(scale, "scale"), "scale", lower=0.0)
        self.ratio = _range(_as_pair(ratio, "ratio"), "ratio", lower=1e-12)
        if self.scale[1] > 1.0 or self.scale[1] <= 0:
            raise ValueError(f"scale must be within (0, 1], got {scale!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.interpolation = interpolation

    def _boxes(self, n: int, h: int, w: int, gen) -> Tuple[np.ndarray, ...]:
        k = self._ATTEMPTS
        area = h * w * gen.uniform(self.scale[0], self.scale[1], size=(n, k))
        logr = gen.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(n, k))
        ar = np.exp(logr)
        bw, bh = np.sqrt(area * ar), np.sqrt(area / ar)
        ok = (bw <= w) & (bh <= h) & (bw > 0) & (bh > 0)
        first = ok.argmax(axis=1)
        has = ok.any(axis=1)
        rows = np.arange(n)
        bw, bh = bw[rows, first], bh[rows, first]
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = float(w), w / self.ratio[0]
        elif in_ratio > self.ratio[1]:
            fw, fh = h * self.ratio[1], float(h)
        else:
            fw, fh = float(w), float(h)
        bw, bh = np.where(has, bw, fw), np.where(has, bh, fh)
        u = gen.random((2, n))
        top = np.where(has, u[0] * (h - bh), (h - bh) / 2)
        left = np.where(has, u[1] * (w - bw), (w - bw) / 2)
        return top, left, bh, bw

    def _apply(self, x, gen):
        n, _, h, w = x.shape
        oh, ow = self.size
        top, left, bh, bw = self._boxes(n, h, w, gen)
        ii = np.arange(oh, dtype=np.float64)[None, :, None] + 0.5
        jj = np.arange(ow, dtype=np.float64)[None, None, :] + 0.5
        sy = top[:, None, None] + ii * (bh / oh)[:, None, None] - 0.5
        sx = left[:, None, None] + jj * (bw / ow)[:, None, None] - 0.5
        sy, sx = np.broadcast_to(sy, (n, oh, ow)), np.broadcast_to(sx, (n, oh, ow))
        return _sample(x, sy, sx, self.interpolation, "clamp")


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, one factor per sample and effect.

    Args:
        brightness, contrast, saturation: a number ``s`` draws factors uniformly in
            ``[max(0, 1 - s), 1 + s]``; a ``(lo, hi)`` pair gives the range; 0 disables.
        clip: clip to ``[0, 1]`` after each effect (inputs assumed in ``[0, 1]``).

    Effects are applied in the fixed order brightness, contrast, saturation:

    * brightness: ``x * f``;
    * contrast: ``(x - m) * f + m`` where ``m`` is the sample's mean gray level;
    * saturation (3 channels only; a no-op for 1 channel): ``(x - g) * f + g`` with
      ``g`` the per-pixel luma. Other channel counts raise ValueError.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, clip: bool = True):
        self.brightness = _range(brightness, "brightness", centre=1.0, lower=0.0)
        self.contrast = _range(contrast, "contrast", centre=1.0, lower=0.0)
        self.saturation = _range(saturation, "saturation", centre=1.0, lower=0.0)
        self.clip = bool(clip)

    @staticmethod
    def _active(r) -> bool:
        return r != (1.0, 1.0)

    def _apply(self, x, gen):
        n, c = x.shape[:2]
        dt = x.dtype
        if self._active(self.saturation) and c not in (1, 3):
            raise ValueError(f"ColorJitter saturation needs 1 or 3 channels, got {c}")
        out = x

        def factors(r):
            return gen.uniform(r[0], r[1], size=n).astype(dt).reshape(n, 1, 1, 1)

        def clip(a):
            return np.clip(a, 0, 1) if self.clip else a

        if self._active(self.brightness):
            out = clip(out * factors(self.brightness))
        if self._active(self.contrast):
            f = factors(self.contrast)
            g = _gray(out) if c == 3 else out.mean(axis=1, keepdims=True, dtype=dt)
            m = g.mean(axis=(1, 2, 3), keepdims=True, dtype=dt)
            out = clip((out - m) * f + m)
        if self._active(self.saturation) and c == 3:
            f = factors(self.saturation)
            g = _gray(out)
            out = clip((out - g) * f + g)
        return out


class RandomGrayscale(Transform):
    """Replace an RGB image by its luma (replicated to 3 channels) with probability ``p``.

    1-channel batches are returned unchanged; other channel counts raise ValueError.
    """

    def __init__(self, p: float = 0.1):
        self.p = _prob(p)

    def _apply(self, x, gen):
        c = x.shape[1]
        if c == 1:
            return x.copy()
        if c != 3:
            raise ValueError(f"RandomGrayscale needs 1 or 3 channels, got {c}")
        mask = gen.random(x.shape[0]) < self.p
        return np.where(mask[:, None, None, None], _gray(x), x)


class GaussianNoise(Transform):
    """Add i.i.d. Gaussian noise ``N(0, std^2)`` to every value.

    Args:
        std: noise standard deviation (>= 0; 0 returns a copy).
        clip: clip the result to ``[0, 1]``.
    """

    def __init__(self, std: float, clip: bool = True):
        if not isinstance(std, numbers.Real) or isinstance(std, bool) or std < 0:
            raise ValueError(f"std must be a non-negative number, got {std!r}")
        self.std, self.clip = float(std), bool(clip)

    def _apply(self, x, gen):
        if self.std == 0:
            return x.copy()
        ndt = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        noise = gen.standard_normal(x.shape, dtype=ndt).astype(x.dtype, copy=False)
        out = x + x.dtype.type(self.std) * noise
        return np.clip(out, 0, 1) if self.clip else out


class GaussianBlur(Transform):
    """Separable Gaussian blur with a random sigma **per sample**.

    Args:
        kernel_size: odd int ``k``; the kernel covers offsets ``-k//2 .. k//2``.
        sigma: a ``(lo, hi)`` range (each sample draws its sigma uniformly) or one
            positive number (fixed sigma).

    Borders are reflected. Each sample's normalized 1-D kernel is applied along
    rows then columns, vectorized over the batch (loop over the ``k`` taps only).
    ``kernel_size=1`` is the identity. Shape is preserved.
    """

    def __init__(self, kernel_size: int, sigma=(0.1, 2.0)):
        if (not isinstance(kernel_size, numbers.Integral) or isinstance(kernel_size, bool)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kernel_size = int(kernel_size)
        if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
            sigma = (sigma, sigma)
        self.sigma = _range(_as_pair(sigma, "sigma"), "sigma", lower=0.0)
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")

    def _kernels(self, n: int, dt, gen) -> np.ndarray:
        r = self.kernel_size // 2
        s = gen.uniform(self.sigma[0], self.sigma[1], size=n)
        t = np.arange(-r, r + 1, dtype=np.float64)
        k = np.exp(-(t[None, :] ** 2) / (2.0 * s[:, None] ** 2))
        return (k / k.sum(axis=1, keepdims=True)).astype(dt)  # (N, k)

    def _apply(self, x, gen):
        n, c, h, w = x.shape
        kern = self._kernels(n, x.dtype, gen)
        r = self.kernel_size // 2
        if r == 0:
            return x.copy()
        xp = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
        # along width
        tmp = np.zeros((n, c, h + 2 * r, w), dtype=x.dtype)
        for t in range(self.kernel_size):
            tmp += kern[:, t, None, None, None] * xp[:, :, :, t:t + w]
        # along height
        out = np.zeros((n, c, h, w), dtype=x.dtype)
        for t in range(self.kernel_size):
            out += kern[:, t, None, None, None] * tmp[:, :, t:t + h, :]
        return out
