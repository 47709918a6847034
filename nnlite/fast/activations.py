"""Engine element-wise activations: ReLU, ReLU6, leaky ReLU, sigmoid, tanh (same contracts and
caches as ``nnlite.functional.relu_forward`` etc., except ReLU6, whose cache is its output).

Each runs its passes on the workers of an enclosing ``nnlite.parallel.threads()`` block when the
array is large (``_chunks.batch_chunks``): the fresh result is allocated once, in the input's
memory layout, and each worker writes the rows (axis-0 ranges) of its chunks (``_map``). Every
chunk runs the textbook's own expression, element-wise, so the result is bit-identical to the
sequential one and to the textbook kernel's.
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


def _map(kernel, out, *arrays):
    """``kernel(*[a[rows] for a in arrays], out[rows])`` over the axis-0 chunks of the first
    array (on the workers of a block), or once over the whole arrays; returns ``out``. The
    arrays share their shape when chunked (else the call is sequential: broadcasting)."""
    chunks = _chunks_for(arrays[0]) if all(a.shape == out.shape for a in arrays) else None
    if chunks is None:
        kernel(*arrays, out)
        return out

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            kernel(*(a[n0:n1] for a in arrays), out[n0:n1])
    run_chunks(work, chunks)
    return out


def _fresh(like, *others):
    """An uninitialised result in ``like``'s memory layout, of the arrays' common dtype."""
    return np.empty_like(like, dtype=np.result_type(like, *others))


def relu_forward(x):
    """y = max(x, 0)."""
    out = _map(lambda xc, o: np.maximum(xc, 0, out=o), np.empty_like(x), x)
    return out, out


def relu_backward(dout, cache):
    """dy/dx = 1 where y > 0 else 0 (the sub-gradient at 0 is 0).

    Written into a fresh array in ``dout``'s memory layout (never into ``dout`` itself, which
    may be shared, e.g. by a residual branch): the mask (y > 0) as 1.0 / 0.0 straight into it,
    then multiplied by dout in place (no boolean temporary, no bool-float mixed product:
    measured 1.1-1.5x faster; the same values, IEEE products commute)."""
    return _map(relu_masked, _fresh(dout, cache), dout, cache)


def relu_masked(dout, y, out):
    """out = (y > 0) * dout, y broadcast to dout's shape (also the engine conv's fused ReLU)."""
    np.greater(y, 0, out=out, casting="unsafe")
    out *= dout
    return out


def relu6_forward(x):
    """y = min(max(x, 0), 6). The cache is y itself (0 < y < 6 exactly where 0 < x < 6), not
    the textbook's boolean mask: one array fewer to write."""
    out = _map(lambda xc, o: np.clip(xc, 0, 6, out=o), np.empty_like(x), x)
    return out, out


def relu6_backward(dout, cache):
    """dy/dx = 1 where 0 < y < 6 else 0 (0 at both kinks, as PyTorch's ReLU6), y the forward's
    output (the cache). A fresh array in ``dout``'s memory layout; ``dout`` is never written."""
    return _map(_inside, _fresh(dout, cache), dout, cache)


def _inside(dout, y, out):
    """out = (0 < y < 6) * dout, y broadcast to dout's shape."""
    np.greater(y, 0, out=out, casting="unsafe")
    out *= y < 6
    out *= dout
    return out


def leaky_relu_forward(x, negative_slope: float = 0.01):
    """y = x if x > 0 else a*x.  Cache (x > 0, a), as the textbook's."""
    a = np.asarray(negative_slope, dtype=x.dtype)
    positive = _map(lambda xc, o: np.greater(xc, 0, out=o), np.empty_like(x, dtype=bool), x)
    out = _map(lambda xc, p, o: np.copyto(o, np.where(p, xc, a * xc)), np.empty_like(x), x, positive)
    return out, (positive, a)


def leaky_relu_backward(dout, cache):
    """dy/dx = 1 if x > 0 else a."""
    positive, a = cache
    return _map(lambda d, p, o: np.copyto(o, np.where(p, d, a * d)), _fresh(dout, a), dout, positive)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), computed stably for large |x| (the textbook's expression per chunk)."""
    def kernel(xc, o):
        e = np.exp(-np.abs(xc))
        np.copyto(o, np.where(xc >= 0, 1 / (1 + e), e / (1 + e)), casting="unsafe")
    out = _map(kernel, np.empty_like(x), x)
    return out, out


def sigmoid_backward(dout, cache):
    """dy/dx = y (1 - y)."""
    return _map(lambda d, y, o: np.copyto(o, d * y * (1 - y)), _fresh(dout, cache), dout, cache)


def tanh_forward(x):
    """y = tanh(x)."""
    out = _map(lambda xc, o: np.tanh(xc, out=o), np.empty_like(x), x)
    return out, out


def tanh_backward(dout, cache):
    """dy/dx = 1 - y^2."""
    return _map(lambda d, y, o: np.copyto(o, d * (1 - y * y)), _fresh(dout, cache), dout, cache)
