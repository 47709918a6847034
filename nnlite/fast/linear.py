"""Engine affine (dense) kernel (same contract as ``nnlite.functional.linear``).

Convention (as PyTorch): ``w`` has shape (D_out, D_in), so ``y = x @ w.T + b``.

Inside an ``nnlite.parallel.threads()`` block (where BLAS is single-threaded) a large layer
(at least ``MIN_PARALLEL_MACS`` multiply-adds) splits its products over the workers, each
worker writing a disjoint block of a fresh result: forward, the rows (samples) of ``out``;
backward, the rows (samples) of ``dx`` and the rows (output features) of ``dW`` (split so, dW
needs no reduction: measured faster than per-worker partial sums over the samples plus their
sum, and as deterministic). ``db`` is a small reduction and stays sequential. Results equal
the sequential ones up to BLAS's rounding for other matrix shapes (last bits), and never
depend on timing.
"""
from __future__ import annotations

import numpy as np

from ..parallel import num_threads, run_chunks
from .chunks import batch_chunks, split

#: Layers with fewer multiply-adds (N * D_in * D_out) stay sequential inside a block.
MIN_PARALLEL_MACS = 1 << 21


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None):
    """y = x W^T + b.

    x: (N, D_in); w: (D_out, D_in); b: (D_out,) or None  ->  out: (N, D_out), cache.
    """
    chunks = None
    if x.ndim == 2 and w.ndim == 2:
        chunks = batch_chunks(x.shape[0], x.shape[0] * x.shape[1] * w.shape[0], MIN_PARALLEL_MACS)
    if chunks is None:
        out = x @ w.T
        if b is not None:
            out += b
        return out, (x, w, b is not None)
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.result_type(x, w))

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            rows = np.matmul(x[n0:n1], w.T, out=out[n0:n1])
            if b is not None:
                rows += b
    run_chunks(work, chunks)
    return out, (x, w, b is not None)


def linear_backward(dout: np.ndarray, cache, need_weight_grad: bool = True,
                    need_input_grad: bool = True):
    """Gradients of y = x W^T + b.

    dx = dout W  (N, D_in);  dW = dout^T x  (D_out, D_in);  db = sum_n dout  (D_out,).
    ``dw``/``db`` are None when ``need_weight_grad`` is False (frozen layer) or there is no bias;
    ``dx`` is None when ``need_input_grad`` is False (a model's first layer: nothing upstream
    needs it, which saves the (N, D_out) x (D_out, D_in) product).
    """
    x, w, has_bias = cache
    n = dout.shape[0] if dout.ndim == 2 else 0
    chunks = None
    if dout.ndim == 2 and x.ndim == 2 and (need_input_grad or need_weight_grad):
        chunks = batch_chunks(n, n * x.shape[1] * w.shape[0], MIN_PARALLEL_MACS)
    if chunks is None:
        dx = dout @ w if need_input_grad else None
        dw = dout.T @ x if need_weight_grad else None
        db = dout.sum(axis=0) if (need_weight_grad and has_bias) else None
        return dx, dw, db
    # One parallel region: worker t gets the t-th range of dx's rows and of dW's rows.
    items = []
    if need_input_grad:
        dx = np.empty((n, w.shape[1]), dtype=np.result_type(dout, w))
        items += [("dx", n0, n1) for n0, n1 in chunks]
    if need_weight_grad:
        dw = np.empty((dout.shape[1], x.shape[1]), dtype=np.result_type(dout, x))
        items += [("dw", o0, o1) for o0, o1 in split(dout.shape[1], num_threads())]

    def work(worker, my_items):
        for what, r0, r1 in my_items:
            if what == "dx":
                np.matmul(dout[r0:r1], w, out=dx[r0:r1])
            else:
                np.matmul(dout[:, r0:r1].T, x, out=dw[r0:r1])
    run_chunks(work, items)
    db = dout.sum(axis=0) if (need_weight_grad and has_bias) else None
    return (dx if need_input_grad else None), (dw if need_weight_grad else None), db
