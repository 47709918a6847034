"""Difference-of-logits-ratio (DLR) loss of Croce & Hein (2020), per example, and its gradient.

Untargeted, with z sorted descending z_pi1 >= z_pi2 >= z_pi3 >= ... and m = argmax_{j != y} z_j:

    DLR(z, y)    = -(z_y - z_m) / (z_pi1 - z_pi3 + delta)
    dDLR/dz      = -(e_y - e_m) / D  +  (z_y - z_m) / D^2 * (e_pi1 - e_pi3),   D = z_pi1 - z_pi3 + delta

Targeted at class t (Croce & Hein's APGD-T loss):

    DLR_t(z, y)  = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + delta)
    dDLR_t/dz    = -(e_y - e_t) / D  +  (z_y - z_t) / D^2 * (e_pi1 - (e_pi3 + e_pi4) / 2)

The ratio is invariant to shifting and scaling the logits, so an attack maximizing it cannot be
fooled by logits that are merely large (the weakness of cross-entropy under gradient masking).
DLR > 0 exactly when the example is misclassified (z_m > z_y). Needs C >= 3 (untargeted) or
C >= 4 (targeted) classes.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array, check_labels

__all__ = ["dlr_forward", "dlr_backward"]


def dlr_forward(z, y, target=None, delta: float = 1e-12):
    """DLR loss per example (targeted when ``target`` is given).

    z: (N, C) logits; y: (N,) int true labels; target: None or (N,) int target classes
    -> out: (N,) losses in z's dtype, cache.
    """
    check_float_array(z, "z", ndim=2)
    n, c = z.shape
    y = check_labels(y, n, c, "y")
    need = 3 if target is None else 4
    if c < need:
        raise ValueError(f"the {'targeted ' if target is not None else ''}DLR loss needs at least "
                         f"{need} classes, got z of shape {z.shape}")
    rows = np.arange(n)
    order = np.argsort(-z, axis=1, kind="stable")               # pi1, pi2, ... per row
    if target is None:
        other = z.copy()
        other[rows, y] = -np.inf
        m = other.argmax(axis=1)                                # best wrong class
        den = z[rows, order[:, 0]] - z[rows, order[:, 2]] + delta
    else:
        m = check_labels(target, n, c, "target")
        den = z[rows, order[:, 0]] - 0.5 * (z[rows, order[:, 2]] + z[rows, order[:, 3]]) + delta
    num = z[rows, y] - z[rows, m]
    out = -num / den
    return out.astype(z.dtype, copy=False), (z.shape, z.dtype, y, m, order, num, den, target is not None)


def dlr_backward(dout, cache):
    """Gradient of sum_i dout_i * DLR_i with respect to the logits.

    dout: (N,) upstream gradient (ones for the plain sum) -> dz: (N, C) in z's dtype.
    """
    shape, dtype, y, m, order, num, den, targeted = cache
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape != (shape[0],):
        raise ValueError(f"dout must have shape ({shape[0]},), got {dout.shape}")
    rows = np.arange(shape[0])
    dz = np.zeros(shape, dtype=np.float64)
    a = -dout / den                       # coefficient of d num
    b = dout * num / den ** 2             # coefficient of d den
    # each statement adds to one entry per row, so repeated indices across statements accumulate
    dz[rows, y] += a
    dz[rows, m] -= a
    dz[rows, order[:, 0]] += b
    if targeted:
        dz[rows, order[:, 2]] -= 0.5 * b
        dz[rows, order[:, 3]] -= 0.5 * b
    else:
        dz[rows, order[:, 2]] -= b
    return dz.astype(dtype, copy=False)
