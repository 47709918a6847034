"""Shape layers of decoders: ``Reshape`` / ``Unflatten`` (the inverse of ``Flatten``) and
``Upsample`` (nearest or bilinear, kernel ``nnlite.functional.upsample``)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._checks import check_backward_ready, check_dout, check_float_array
from ..functional.upsample import MODES, check_upsample_args, upsample2d_backward, upsample2d_forward
from .module import Module


def _shape_tuple(shape, name):
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
        raise ValueError(f"{name} must be a positive int or a tuple of them, got {shape}")
    return tuple(int(s) for s in shape)


class Reshape(Module):
    """(N, ...) -> (N, *shape): every sample's values in the same (C) order, a view when possible.

    shape: the per-sample shape, e.g. ``Reshape((64, 7, 7))`` after ``Linear(latent, 3136)``.
    Backward reshapes dout back to the input's shape.
    """

    def __init__(self, shape):
        super().__init__()
        self.shape = _shape_tuple(shape, "shape")
        self.size = math.prod(self.shape)

    def forward(self, x):
        check_float_array(x, "x")
        per_sample = math.prod(x.shape[1:])
        if x.ndim < 1 or per_sample != self.size:
            raise ValueError(f"{type(self).__name__} to {self.shape} needs {self.size} values per sample, "
                             f"got input of shape {x.shape}")
        self._cache = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, dout):
        check_backward_ready(self._cache, type(self).__name__)
        check_dout(dout, (self._cache[0],) + self.shape, type(self).__name__)
        return dout.reshape(self._cache)

    def output_shape(self, input_shape):
        return (input_shape[0],) + self.shape

    def extra_repr(self):
        return f"shape={self.shape}"


class Unflatten(Reshape):
    """PyTorch's ``nn.Unflatten(1, sizes)``: (N, D) -> (N, *sizes) with prod(sizes) == D.

    Only ``dim=1`` (the feature axis after ``Flatten``/``Linear``) is supported.
    """

    def __init__(self, dim: int, unflattened_size):
        if dim != 1:
            raise ValueError(f"Unflatten supports dim=1 only (the axis after the batch), got dim={dim}")
        super().__init__(unflattened_size)
        self.dim = 1

    def forward(self, x):
        check_float_array(x, "x", ndim=2)
        return super().forward(x)


class Upsample(Module):
    """Nearest or bilinear upsampling (N, C, H, W) -> (N, C, floor(H*s), floor(W*s)), or to ``size``.

    scale_factor: a positive number or a pair (integer or fractional); size: int or pair
    (give one of the two). mode: "nearest" | "bilinear"; bilinear uses PyTorch's
    ``align_corners=False`` convention (pixel centres aligned, edges repeated), see
    ``nnlite.functional.upsample``. No parameters; backward is A_h^T dout A_w.
    """

    def __init__(self, scale_factor=2, mode: str = "nearest", size=None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.scale_factor = None if size is not None else scale_factor
        self.size, self.mode = size, mode
        check_upsample_args(np.zeros((1, 1, 1, 1)), self.scale_factor, size, mode)       # validate early

    def forward(self, x):
        check_float_array(x, "x", ndim=4)
        out, self._cache = upsample2d_forward(x, self.scale_factor, self.mode, self.size)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        check_backward_ready(self._cache, "Upsample")
        check_dout(dout, self._out_shape, "Upsample")
        return upsample2d_backward(dout, self._cache)

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        out, _ = upsample2d_forward(np.zeros((1, 1, h, w)), self.scale_factor, self.mode, self.size)
        return (n, c) + out.shape[2:]

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
