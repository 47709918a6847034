"""Engine affine (dense) kernel (same contract as ``nnlite.functional.linear``).

Convention (as PyTorch): ``w`` has shape (D_out, D_in), so ``y = x @ w.T + b``.

Inside an ``nnlite.parallel.threads()`` block (where BLAS is single-threaded) a large layer
(at least ``MIN_PARALLEL_MACS`` multiply-adds) splits its products over the workers along the
*feature* axes, each worker writing a disjoint block of columns or rows of a fresh result:
forward, the columns (output features o0:o1) of ``out`` = x @ w[o0:o1].T; backward, the
columns (input features i0:i1) of ``dx`` = dout @ w[:, i0:i1] and the rows (output features)
of ``dW`` = dout[:, o0:o1].T @ x. Every worker then reads only its part of W, which is what
dominates a dense layer's memory traffic at the batch sizes of training; a split over the
samples made every worker read all of W (measured, two workers, interleaved, forward /
backward: (16, 3136) -> 128 383 / 389 us by samples against 246 / 304 us by features;
(128, 4096) -> 256 1563 / 2357 us against 1367 / 2274 us), and it needed two samples. Each
result element is one GEMM's full reduction, in no other order: no partial sums to combine,
and results never depend on timing. They equal the sequential ones up to BLAS's rounding for
other matrix shapes (last bits). ``db`` is a small reduction and stays sequential.
"""
from __future__ import annotations

import numpy as np

from ..parallel import num_threads, run_chunks
from .chunks import split

#: Layers with fewer multiply-adds (N * D_in * D_out) stay sequential inside a block.
MIN_PARALLEL_MACS = 1 << 21

#: Split forwards of at most this many samples compute out^T = W x^T (W untransposed, x^T
#: copied contiguous, rows of out^T per worker) instead of x W^T: OpenBLAS is slower with the
#: transposed W when the batch is small. Measured, one thread, (N, 3136) @ 64 output features
#: (a worker's half of the Fashion-MNIST CNN's dense layer), x W^T against W x^T: N = 8 128 /
#: 80 us, 16 157 / 102, 32 221 / 183, 64 345 / 344, 128 599 / 714.
SMALL_BATCH = 32


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None):
    """y = x W^T + b.

    x: (N, D_in); w: (D_out, D_in); b: (D_out,) or None  ->  out: (N, D_out), cache.
    """
    t = _workers(x, w) if x.ndim == 2 and w.ndim == 2 else 1
    if t <= 1 or w.shape[0] < 2:
        out = x @ w.T
        if b is not None:
            out += b
        return out, (x, w, b is not None)
    dt = np.result_type(x, w)
    if x.shape[0] <= SMALL_BATCH:
        # out^T = W x^T: worker k writes rows o0:o1 of out^T (measured below SMALL_BATCH)
        xt = np.ascontiguousarray(x.T)
        out_t = np.empty((w.shape[0], x.shape[0]), dtype=dt)

        def work(worker, my_chunks):
            for o0, o1 in my_chunks:
                rows = np.matmul(w[o0:o1], xt, out=out_t[o0:o1])
                if b is not None:
                    rows += b[o0:o1, None]
        run_chunks(work, split(w.shape[0], t))
        return out_t.T.copy(order="C"), (x, w, b is not None)
    out = np.empty((x.shape[0], w.shape[0]), dtype=dt)

    def work(worker, my_chunks):
        for o0, o1 in my_chunks:
            cols = np.matmul(x, w[o0:o1].T, out=out[:, o0:o1])
            if b is not None:
                cols += b[o0:o1]
    run_chunks(work, split(w.shape[0], t))
    return out, (x, w, b is not None)


def _workers(x, w) -> int:
    """How many workers split W: those of the enclosing threads() block for a layer of at
    least ``MIN_PARALLEL_MACS`` multiply-adds; 1 (sequential) otherwise or inside a worker."""
    return num_threads() if x.shape[0] * w.shape[0] * w.shape[1] >= MIN_PARALLEL_MACS else 1


def linear_backward(dout: np.ndarray, cache, need_weight_grad: bool = True,
                    need_input_grad: bool = True):
    """Gradients of y = x W^T + b.

    dx = dout W  (N, D_in);  dW = dout^T x  (D_out, D_in);  db = sum_n dout  (D_out,).
    ``dw``/``db`` are None when ``need_weight_grad`` is False (frozen layer) or there is no bias;
    ``dx`` is None when ``need_input_grad`` is False (a model's first layer: nothing upstream
    needs it, which saves the (N, D_out) x (D_out, D_in) product).
    """
    x, w, has_bias = cache
    t = 1
    if dout.ndim == 2 and x.ndim == 2 and (need_input_grad or need_weight_grad):
        t = min(_workers(x, w), max(w.shape))
    if t <= 1:
        dx = dout @ w if need_input_grad else None
        dw = dout.T @ x if need_weight_grad else None
        db = dout.sum(axis=0) if (need_weight_grad and has_bias) else None
        return dx, dw, db
    # One parallel region: worker k of t gets the k-th range of dx's columns and of dW's rows
    # (run_chunks hands worker k the items k, k + t, ...).
    items = []
    if need_input_grad:
        dx = np.empty((dout.shape[0], w.shape[1]), dtype=np.result_type(dout, w))
        items += [("dx", i0, i1) for i0, i1 in split(w.shape[1], t)]
    if need_weight_grad:
        dw = np.empty((w.shape[0], x.shape[1]), dtype=np.result_type(dout, x))
        items += [("dw", o0, o1) for o0, o1 in split(w.shape[0], t)]

    def work(worker, my_items):
        for what, r0, r1 in my_items:
            if what == "dx":
                np.matmul(dout, w[:, r0:r1], out=dx[:, r0:r1])
            else:
                np.matmul(dout[:, r0:r1].T, x, out=dw[r0:r1])
    run_chunks(work, items)
    db = dout.sum(axis=0) if (need_weight_grad and has_bias) else None
    return (dx if need_input_grad else None), (dw if need_weight_grad else None), db
