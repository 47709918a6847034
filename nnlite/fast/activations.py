"""Engine ReLU (same contract as ``nnlite.functional.relu_forward``/``relu_backward``).

ReLU runs its passes on the workers of an enclosing ``nnlite.parallel.threads()`` block when the
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
    may be shared, e.g. by a residual branch)."""
    out = np.empty_like(dout, dtype=np.result_type(dout, cache))
    chunks = _chunks_for(dout) if dout.shape == cache.shape else None
    if chunks is None:
        return np.multiply(dout, cache > 0, out=out)

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            np.multiply(dout[n0:n1], cache[n0:n1] > 0, out=out[n0:n1])
    run_chunks(work, chunks)
    return out
