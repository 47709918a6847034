"""Engine softmax cross-entropy (same contract and results as
``nnlite.functional.losses.softmax_cross_entropy``).

One read of the logits and one write of the gradient: the rows are processed in in-cache
blocks of ``BLOCK_BYTES``: exp(z) written straight into the gradient array, row sums, one
in-place scaling to the gradient, the one-hot (and smoothing) corrections; the loss needs only
per-row values (log of the row sum, the logit at the label). The row-max shift of the
log-sum-exp is skipped where it cannot matter: a row is redone with the shift (as the
textbook does) when its sum of exp(z) overflows or falls below exp(-log(max float) / 2)
(logits beyond about +-44 in float32, +-354 in float64). Without the shift a row's loss has an
absolute rounding error of about eps * max|z| instead of eps * loss; the gradient (p - e_y)
is as accurate. The textbook kernel makes about ten passes over (N, C) arrays (log-softmax,
exp, gathers, means, and the gradient's temporaries).
The loss is a sum of per-row terms reduced once at the end, so inside an
``nnlite.parallel.threads()`` block the row ranges run on the workers and the results are
the sequential ones, bit for bit.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array, check_labels
from ..functional.losses import softmax_cross_entropy as _textbook_softmax_cross_entropy
from ..parallel import run_chunks
from .chunks import batch_chunks

#: Bytes of logits in one block of rows (about 15 NumPy calls per block: smaller blocks were
#: measured slower, 64 KiB 1.9x and 256 KiB 1.3x the time of 1 MiB on (512, 1000) float32).
BLOCK_BYTES = 1 << 20

#: Inside a threads() block, fewer logits than this stay sequential (a row costs an exp and a
#: log per logit: the second worker pays from far fewer values than for the cheap element-wise
#: kernels; (64, 1000) ran equally fast on one and two workers, (512, 1000) 614 against 492 us).
MIN_PARALLEL_SIZE = 1 << 16


def _row_sums(a):
    """sum_j a[i, j] per row of a C-contiguous (n, c) array. einsum's loop, not ``sum(axis=1)``
    (pairwise, 2.6x slower on (256, 1000) float32: 43.5 against 16.6 us) nor a BLAS GEMV (a
    row's result would depend on the rows around it): each row's result depends only on the
    row, so blocks and workers give the sequential results bit for bit."""
    return np.einsum("ij->i", a)


def softmax_cross_entropy(logits, y, label_smoothing: float = 0.0, class_weights=None):
    """Fused, numerically stable softmax + cross-entropy (log-sum-exp), PyTorch's conventions.

    logits: (N, C) float; y: (N,) int labels in [0, C); label_smoothing s in [0, 1);
    class_weights w: (C,) or None.  With zs = z - shift_i (0, or max_c z for rows that need it),
    lse = log sum_c exp(zs),
    -log p_ic = lse_i - zs_ic:
        l_i = (1 - s) w_{y_i} (lse_i - zs_{i,y_i}) + (s / C) (W lse_i - zs_i . w),  W = sum(w)
        loss = sum_i l_i / sum_i w_{y_i}                   (w = 1: the plain mean)
        dz_i = [((1 - s) w_{y_i} + (s / C) W) p_i - (1 - s) w_{y_i} e_{y_i} - (s / C) w] / sum_i w_{y_i}
    Returns (loss: float, dlogits: (N, C), logits' dtype), as the textbook kernel (shift:
    see the module docstring).
    """
    check_float_array(logits, "logits", ndim=2)
    n, c = logits.shape
    y = check_labels(y, n, c)
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if n == 0:                   # nothing to speed up; the textbook's conventions for it
        return _textbook_softmax_cross_entropy(logits, y, label_smoothing, class_weights)
    dtype = logits.dtype
    s = float(label_smoothing)
    if class_weights is None:
        w = None
        wy = np.ones(n)
        denom = float(n)
    else:
        w = np.asarray(class_weights, dtype=dtype)
        if w.shape != (c,):
            raise ValueError(f"class_weights must have shape ({c},), got {w.shape}")
        wy = w[y].astype(np.float64)
        denom = float(wy.sum(dtype=dtype))
        if denom <= 0:
            raise ValueError("class_weights give the batch a total weight of 0")
    big_w = float(w.sum(dtype=np.float64)) if w is not None else float(c)
    # per row: p scale k_i, one-hot correction at y_i (both / denom)
    k_row = ((1 - s) * wy + (s / c) * big_w) / denom
    hot = ((1 - s) * wy / denom).astype(dtype)
    smooth = (np.asarray(s / c / denom, dtype=dtype) * (w if w is not None else 1)) if s else None
    grad = np.empty((n, c), dtype=dtype)
    terms = np.empty((3, n))     # per row: lse, zs at y, zs . w (or sum of zs), zs = z - shift
    step = max(1, BLOCK_BYTES // max(1, c * logits.itemsize))

    # exp(z) without the row-max shift where it cannot overflow or underflow: row sums in
    # [lo, inf); other rows (rare: logits beyond about +-44 in float32) are redone shifted
    lo = np.exp(-0.5 * np.log(np.finfo(dtype).max))
    big = big_w if s else 0.0

    def work(worker, my_chunks):
        for n0, n1 in my_chunks:
            for b0 in range(n0, n1, step):
                b1 = min(b0 + step, n1)
                rows, yb = np.arange(b1 - b0), y[b0:b1]
                z, g = logits[b0:b1], grad[b0:b1]
                with np.errstate(over="ignore", under="ignore"):
                    np.exp(z, out=g)
                    se = _row_sums(g)
                shift = np.zeros(b1 - b0, dtype=dtype)
                bad = np.flatnonzero(~(se >= lo) | ~np.isfinite(se))
                if bad.size:                         # the textbook's shifted exp for them
                    zb = z[bad]
                    shift[bad] = zb.max(axis=1)
                    zb -= shift[bad][:, None]
                    g[bad] = np.exp(zb, out=zb)
                    se[bad] = _row_sums(zb)
                terms[0, b0:b1] = np.log(se)                             # lse - shift
                terms[1, b0:b1] = z[rows, yb] - shift                    # zs at y
                if s:   # (einsum, not a BLAS GEMV: a row's result must not depend on its block)
                    terms[2, b0:b1] = ((np.einsum("ij,j->i", z, w) if w is not None
                                        else z.sum(axis=1)) - big * shift)
                g *= (k_row[b0:b1] / se)[:, None].astype(dtype)          # scaled p
                g[rows, yb] -= hot[b0:b1]
                if s:
                    g -= smooth
    chunks = batch_chunks(n, n * c, min_size=MIN_PARALLEL_SIZE)
    if chunks is None:
        work(0, [(0, n)])
    else:
        run_chunks(work, chunks)
    lse, zy, zw = terms
    loss = (1 - s) * (wy * (lse - zy)).sum()
    if s:
        loss += (s / c) * (big_w * lse - zw).sum()
    return float(loss / denom), grad
