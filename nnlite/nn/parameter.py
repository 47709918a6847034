"""`Parameter`: a trainable array with its gradient."""
from __future__ import annotations

import numpy as np


class Parameter:
    """A tensor a model learns: ``data`` plus an accumulated ``grad`` of the same shape and dtype.

    Convention (as PyTorch): layers *add* their gradient into ``grad`` during ``backward``;
    call ``Module.zero_grad()`` (or ``Parameter.zero_grad()``) before each step.

    ``trainable=False`` freezes the parameter: optimizers skip it, and the layer that owns it
    may skip computing its gradient (``grad`` then stays zero).
    """

    __slots__ = ("data", "grad", "trainable")

    def __init__(self, data, trainable: bool = True):
        data = np.asarray(data)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter data must be a floating array, got dtype {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        self.trainable = bool(trainable)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def accumulate(self, g: np.ndarray) -> None:
        """Add ``g`` into ``grad`` (in place; dtype kept)."""
        self.grad += g

    def __repr__(self) -> str:
        frozen = "" if self.trainable else ", frozen"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
