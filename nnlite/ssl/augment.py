"""Two-view augmentation for self-supervised learning, vectorised over the batch.

Every random draw comes from an explicit ``numpy.random.Generator`` (or int seed); no loop over
samples or pixels (loops only over the blur kernel's taps). Input and output: x (N, C, H, W)
float in [0, 1], dtype and shape kept, values clipped to [0, 1].

Pipeline of :class:`Augment` (SimCLR's, in this fixed order):
1. random resized crop + horizontal flip + small rotation, as ONE affine resampling (bilinear,
   edge pixels replicated outside the image): crop area fraction s ~ U(crop_scale), aspect
   ratio r ~ logU(ratio) (default (3/4, 4/3)), crop side fractions (sqrt(s r), sqrt(s / r)) clipped to 1 (where
   torchvision retries 10 times, this clips), centre uniform inside the image, output size = input size;
2. colour jitter with probability ``jitter_p``: brightness, contrast, saturation, hue (hue as a
   rotation in YIQ space), each factor drawn per sample, applied in this fixed order;
3. random grayscale (ITU-R 601 luma) with probability ``gray_p``;
4. Gaussian blur with probability ``blur_p`` (sigma ~ U(blur_sigma), separable, odd kernel of
   about 10% of the image side, reflect padding);
5. additive Gaussian noise with probability ``noise_p`` (std ``noise_std``).
SimCLR defaults (:func:`simclr_cifar`): crop (0.08, 1), flip 0.5, jitter (0.4, 0.4, 0.4, 0.1)
with p = 0.8, grayscale 0.2, no blur for 32x32 (the paper drops it on CIFAR); :func:`simclr_imagenet`
adds blur p = 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .._checks import as_generator, check_float_array

_LUMA = np.array([0.299, 0.587, 0.114])


def affine_resample(x, theta):
    """Bilinear resampling of each image through its own affine map (align_corners=False).

    x: (N, C, H, W); theta: (N, 2, 3) mapping output coords (u, v, 1) in [-1, 1] to source
    coords in [-1, 1] -> (N, C, H, W); source points outside the image take the edge value.
    """
    n, c, h, w = x.shape
    u = (2 * np.arange(w) + 1) / w - 1
    v = (2 * np.arange(h) + 1) / h - 1
    vv, uu = np.meshgrid(v, u, indexing="ij")                          # (H, W)
    grid = np.stack([uu.ravel(), vv.ravel(), np.ones(h * w)])           # (3, HW)
    src = theta @ grid                                                  # (N, 2, HW)
    px = np.clip(((src[:, 0] + 1) * w - 1) / 2, 0, w - 1)
    py = np.clip(((src[:, 1] + 1) * h - 1) / 2, 0, h - 1)
    x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (px - x0).astype(x.dtype)[:, None], (py - y0).astype(x.dtype)[:, None]
    flat = x.reshape(n, c, h * w)
    take = lambda yy, xx: np.take_along_axis(flat, (yy * w + xx)[:, None, :].repeat(c, 1), axis=2)  # noqa: E731
    out = (take(y0, x0) * (1 - fx) + take(y0, x1) * fx) * (1 - fy) + \
          (take(y1, x0) * (1 - fx) + take(y1, x1) * fx) * fy
    return out.reshape(n, c, h, w)


def _gray(x):
    if x.shape[1] != 3:
        return x.mean(axis=1, keepdims=True)
    return np.einsum("nchw,c->nhw", x, _LUMA.astype(x.dtype))[:, None]


@dataclass
class Augment:
    """A random augmentation ``aug(x, rng) -> x'`` and ``aug.two_views(x, rng) -> (v1, v2)``
    (see the module docstring for the pipeline and its order). Probabilities in [0, 1]."""
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    rotation: float = 0.0                      # max |angle| in degrees
    jitter: Tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    noise_p: float = 0.0
    noise_std: float = 0.03

    def __post_init__(self):
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {self.ratio}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "noise_p"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if self.rotation < 0 or self.noise_std < 0 or min(self.jitter) < 0:
            raise ValueError("rotation, noise_std and the jitter strengths must be >= 0, got "
                             f"{self.rotation}, {self.noise_std}, {self.jitter}")

    def __call__(self, x, rng):
        check_float_array(x, "x", ndim=4)
        rng = as_generator(rng)
        n, c, h, w = x.shape
        dt = x.dtype
        # 1. crop + flip + rotation as one affine map
        s = rng.uniform(*self.crop_scale, size=n)
        r = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), size=n))
        cw, ch = np.minimum(np.sqrt(s * r), 1), np.minimum(np.sqrt(s / r), 1)
        cx, cy = rng.uniform(-1, 1, size=n) * (1 - cw), rng.uniform(-1, 1, size=n) * (1 - ch)
        flip = np.where(rng.random(n) < self.flip_p, -1.0, 1.0)
        a = np.deg2rad(rng.uniform(-self.rotation, self.rotation, size=n))
        cos, sin = np.cos(a), np.sin(a)
        theta = np.empty((n, 2, 3))
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * cw * flip, -sin * ch, cx
        theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * cw * flip, cos * ch, cy
        x = affine_resample(x, theta)
        # 2. colour jitter
        on = (rng.random(n) < self.jitter_p)[:, None, None, None]
        b, ct, sat, hue = self.jitter
        f = lambda k: rng.uniform(max(0, 1 - k), 1 + k, size=n).astype(dt)[:, None, None, None]  # noqa: E731
        fb, fc, fs = f(b), f(ct), f(sat)
        hue_angle = rng.uniform(-hue, hue, size=n) * 2 * np.pi
        y = np.clip(x * fb, 0, 1)
        m = _gray(y).mean(axis=(2, 3), keepdims=True)
        y = np.clip((y - m) * fc + m, 0, 1)
        if c == 3:
            g = _gray(y)
            y = np.clip((y - g) * fs + g, 0, 1)
            if hue > 0:
                y = _hue_rotate(y, hue_angle)
        x = np.where(on, y, x)
        # 3. grayscale
        if c == 3 and self.gray_p > 0:
            on = (rng.random(n) < self.gray_p)[:, None, None, None]
            x = np.where(on, np.broadcast_to(_gray(x), x.shape), x)
        # 4. blur
        if self.blur_p > 0:
            on = (rng.random(n) < self.blur_p)[:, None, None, None]
            sigma = rng.uniform(*self.blur_sigma, size=n)
            x = np.where(on, gaussian_blur(x, sigma), x)
        # 5. noise
        if self.noise_p > 0 and self.noise_std > 0:
            on = (rng.random(n) < self.noise_p)[:, None, None, None]
            noise = rng.standard_normal(x.shape).astype(dt) * np.asarray(self.noise_std, dtype=dt)
            x = np.where(on, x + noise, x)
        return np.clip(x, 0, 1).astype(dt, copy=False)

    def two_views(self, x, rng):
        """Two independent augmentations of the same batch: (v1, v2), each like x."""
        rng = as_generator(rng)
        return self(x, rng), self(x, rng)


def _hue_rotate(x, angle):
    """Rotate the chroma (I, Q) of YIQ by a per-sample angle: x (N, 3, H, W), angle (N,)."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = np.linalg.inv(to_yiq)
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.zeros((len(angle), 3, 3))
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mat = (from_yiq @ rot @ to_yiq).astype(x.dtype)                    # (N, 3, 3)
    return np.clip(np.einsum("nij,njhw->nihw", mat, x), 0, 1)


def gaussian_blur(x, sigma, size=None):
    """Separable Gaussian blur with a per-sample sigma: x (N, C, H, W), sigma (N,) -> like x.
    Kernel size: odd, about 10% of the smaller side (at least 3), reflect padding."""
    n, c, h, w = x.shape
    if size is None:
        size = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
    r = size // 2
    t = np.arange(-r, r + 1)
    k = np.exp(-t[None, :] ** 2 / (2 * np.asarray(sigma)[:, None] ** 2))
    k = (k / k.sum(axis=1, keepdims=True)).astype(x.dtype)[:, :, None, None, None]   # (N, size, 1, 1, 1)
    p = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    tmp = sum(k[:, i] * p[:, :, :, i:i + w] for i in range(size))                    # (N, C, H+2r, W)
    return sum(k[:, i] * tmp[:, :, i:i + h, :] for i in range(size))


def simclr_cifar(**overrides):
    """SimCLR's CIFAR augmentation (no blur); keyword overrides of :class:`Augment` fields."""
    return Augment(**overrides)


def simclr_imagenet(**overrides):
    """SimCLR's ImageNet augmentation (blur p = 0.5); keyword overrides of :class:`Augment`."""
    return Augment(**{"blur_p": 0.5, **overrides})
