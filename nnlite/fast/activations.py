"""Engine ReLU and ReLU6 (same contracts as ``nnlite.functional.relu_forward`` etc.).

ReLU and ReLU6 run their passes on the workers of an enclosing ``nnlite.parallel.threads()`` block when the
array is large (``_chunks.batch_chunks``): the fresh result is allocated once, in the input's
memory layout, and each worker writes the rows (axis-0 ranges) of its chunks. Element-wise,
so the result is bit-identical to the sequential one.
"""
from __future__ import annotations

import numpy as np

from ..parallel import run_chunks
from .chunks import batch_chunks


def _chunks_for(a):
    """Axis-0 chunks of a large float array inside a block, else None (sequential)."""
    if a.ndim == 0 or a.dtype.kind != "f":
        return None
    return batch_chunks(a.shape[0], a.size)


def relu_forward(x):
    """y = max(x, 0)."""
    chunks = _chunks_for(x)
    if chunks is None:
        out = np.maximum(x, 0)
        return out, out
    out = np.empty_like(x)                          # x's memory layout, as np.maximum gives

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            np.maximum(x[n0:n1], 0, out=out[n0:n1])
    run_chunks(work, chunks)
    return out, out


def relu_backward(dout, cache):
    """dy/dx = 1 where y > 0 else 0 (the sub-gradient at 0 is 0).

    Written into a fresh array in ``dout``'s memory layout (never into ``dout`` itself, which
    may be shared, e.g. by a residual branch): the mask (y > 0) as 1.0 / 0.0 straight into it,
    then multiplied by dout in place (no boolean temporary, no bool-float mixed product:
    measured 1.1-1.5x faster; the same values, IEEE products commute)."""
    out = np.empty_like(dout, dtype=np.result_type(dout, cache))
    chunks = _chunks_for(dout) if dout.shape == cache.shape else None
    if chunks is None:
        return _masked(dout, cache, out)

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            _masked(dout[n0:n1], cache[n0:n1], out[n0:n1])
    run_chunks(work, chunks)
    return out


def _masked(dout, y, out):
    """out = (y > 0) * dout, y broadcast to dout's shape."""
    np.greater(y, 0, out=out, casting="unsafe")
    out *= dout
    return out


def relu6_forward(x):
    """y = min(max(x, 0), 6). The cache is y itself (0 < y < 6 exactly where 0 < x < 6), not
    the textbook's boolean mask: one array fewer to write."""
    chunks = _chunks_for(x)
    out = np.empty_like(x)

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            np.clip(x[n0:n1], 0, 6, out=out[n0:n1])
    if chunks is None:
        np.clip(x, 0, 6, out=out)
    else:
        run_chunks(work, chunks)
    return out, out


def relu6_backward(dout, cache):
    """dy/dx = 1 where 0 < y < 6 else 0 (0 at both kinks, as PyTorch's ReLU6), y the forward's
    output (the cache). A fresh array in ``dout``'s memory layout; ``dout`` is never written."""
    out = np.empty_like(dout, dtype=np.result_type(dout, cache))
    chunks = _chunks_for(dout) if dout.shape == cache.shape else None
    if chunks is None:
        return _inside(dout, cache, out)

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            _inside(dout[n0:n1], cache[n0:n1], out[n0:n1])
    run_chunks(work, chunks)
    return out


def _inside(dout, y, out):
    """out = (0 < y < 6) * dout, y broadcast to dout's shape."""
    np.greater(y, 0, out=out, casting="unsafe")
    out *= y < 6
    out *= dout
    return out
