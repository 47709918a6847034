"""Batched feature extraction from any named layer, saved as npz or HDF5."""
from __future__ import annotations

import os

import numpy as np

from .._checks import check_int
from ..grad_mode import no_grad
from .._io import atomic_open
from ..nn.module import Module
from .named import Blocks

__all__ = ["extract_features", "load_features", "save_features"]


def extract_features(model: Module, x: np.ndarray, layer: str = None, batch_size: int = 256,
                     pool: str = "auto") -> np.ndarray:
    """Outputs of ``layer`` (a dotted name such as ``"block5"`` or ``"block4.conv3"``; None = the
    whole model) for ``x`` (N, ...), in eval mode, ``batch_size`` samples at a time.

    ``layer`` is any name of ``model.named_modules()``, also inside a ``Residual``
    (``"block2.unit2.block.depthwise"``): the model runs forward until that module has produced
    its output (its first call, if it is used twice), which is returned.

    pool: ``"auto"`` (4-D outputs are globally average-pooled to (N, C), others kept),
    ``"avg"``, ``"flatten"`` ((N, C*H*W)) or ``"none"``. Every train/eval flag is restored.
    Returns float array (N, D) (or the raw output shape with ``pool="none"``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")
    if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty array (N, ...), got {getattr(x, 'shape', type(x).__name__)}")
    if pool not in ("auto", "avg", "flatten", "none"):
        raise ValueError(f"pool must be 'auto', 'avg', 'flatten' or 'none', got {pool!r}")
    if layer is not None and not isinstance(model, Blocks):
        raise TypeError(f"layer=... needs a named model (nnlite.models.Blocks), got {type(model).__name__}")
    bs = check_int(batch_size, "batch_size")
    saved = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    outs = []
    try:
        with no_grad():                      # forwards only (see nnlite.grad_mode)
            for s in range(0, x.shape[0], bs):
                xb = x[s:s + bs]
                out = model.forward(xb) if layer is None else model.forward_until(xb, layer)
                if out.ndim == 4 and pool in ("auto", "avg"):
                    out = out.mean(axis=(2, 3))
                elif pool == "flatten" or (pool == "avg" and out.ndim > 2):
                    out = out.reshape(out.shape[0], -1)
                outs.append(np.array(out, copy=True))
    finally:
        for m, flag in saved:
            object.__setattr__(m, "training", flag)
    return np.concatenate(outs, axis=0)


def save_features(path, features: np.ndarray, labels: np.ndarray = None, **extra) -> str:
    """Write ``features`` (N, D) [and ``labels`` (N,)] atomically to ``.npz`` or ``.h5``/``.hdf5``.

    extra: more plain arrays to store (e.g. ``val_features=...``). Returns the path.
    """
    path = os.fspath(path)
    arrays = {"features": np.asarray(features)}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape[0] != arrays["features"].shape[0]:
            raise ValueError(f"labels must have {arrays['features'].shape[0]} entries, got {labels.shape}")
        arrays["labels"] = labels
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    for k, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"'{k}' is an object array; only plain numeric arrays are saved")
    if path.lower().endswith((".h5", ".hdf5")):
        import h5py
        with atomic_open(path) as f, h5py.File(f, "w") as h:
            for k, a in arrays.items():
                h.create_dataset(k, data=a)
    else:
        with atomic_open(path) as f:
            np.savez(f, **arrays)
    return path


def load_features(path) -> dict:
    """Read every array written by `save_features` (``allow_pickle=False``) into a dict."""
    path = os.fspath(path)
    if path.lower().endswith((".h5", ".hdf5")):
        import h5py
        with h5py.File(path, "r") as h:
            return {k: np.asarray(h[k][()]) for k in h}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
