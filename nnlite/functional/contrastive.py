"""Self-supervised loss kernels: NT-Xent (SimCLR), BYOL and Barlow Twins.

Each is a pure function returning ``(loss, grad)`` like the kernels in ``losses.py``: the loss
as a Python float and its gradient with respect to the first argument (same shape and dtype).

Convention shared by the three: the two augmented views of a batch of N images are STACKED
along the sample axis, ``z = [z1; z2]`` of shape (2N, D): row i and row i + N are the two views
of image i (the "positive pair"). This is also how an encoder sees them (one batch of 2N).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float_array

NORM_EPS = 1e-12  # as torch.nn.functional.normalize: u = z / max(||z||, eps)


def _check_two_views(z, name):
    check_float_array(z, name, ndim=2)
    if z.shape[0] < 2 or z.shape[0] % 2:
        raise ValueError(f"{name} must stack two views of N >= 1 samples as (2N, D) with an even "
                         f"number of rows, got shape {z.shape}")
    return z.shape[0] // 2


def l2_normalize_forward(z, eps: float = NORM_EPS):
    """Row-wise L2 normalisation u = z / r, r = max(||z||_2, eps).

    z: (M, D) -> u: (M, D), cache (u, r: (M, 1)).
    """
    r = np.maximum(np.sqrt((z * z).sum(axis=1, keepdims=True)), np.asarray(eps, dtype=z.dtype))
    u = z / r
    return u, (u, r)


def l2_normalize_backward(du, cache):
    """dz = (du - u (u . du)) / r  (the projection of du onto the tangent plane of the sphere).

    du: (M, D) -> dz: (M, D). (Rows clamped at r = eps are treated as z / eps, gradient du / eps.)
    """
    u, r = cache
    clamped = r <= NORM_EPS
    proj = np.where(clamped, 0, (u * du).sum(axis=1, keepdims=True))
    return (du - u * proj) / r


def nt_xent(z, tau: float = 0.1):
    """NT-Xent (normalised temperature-scaled cross-entropy), SimCLR's loss.

    z: (2N, D) = [z1; z2] stacked views; tau > 0 -> (loss: float, dz: (2N, D)).
        u = z / ||z||;  s_ij = u_i . u_j / tau;  p(i) = (i + N) mod 2N  (the positive of i)
        l_i = -s_{i,p(i)} + log sum_{j != i} exp(s_ij)     (2N - 1 terms: 1 positive, 2N - 2 negatives)
        loss = (1 / 2N) sum_i l_i                          (MEAN over all 2N anchors)
    Gradient: dl/ds_ij = (P_ij - [j = p(i)]) / 2N with P the softmax of row i over j != i
    (P_ii = 0); ds -> du = (G + G^T) u / tau; du -> dz through the normalisation.
    The self-similarity s_ii is excluded (set to -inf before the log-sum-exp, which subtracts
    the row maximum, so tau = 0.05 (|s| <= 20) is stable). Identical embeddings give
    s_ij = 1 / tau for every pair, hence loss = log(2N - 1).
    """
    n = _check_two_views(z, "z")
    if not (isinstance(tau, (int, float, np.floating)) and tau > 0):
        raise ValueError(f"tau must be a positive number, got {tau!r}")
    m = 2 * n
    u, ncache = l2_normalize_forward(z)
    s = (u @ u.T) / np.asarray(tau, dtype=z.dtype)
    idx = np.arange(m)
    pos = (idx + n) % m
    s[idx, idx] = -np.inf                                   # exclude self
    smax = s.max(axis=1, keepdims=True)
    e = np.exp(s - smax)                                    # exp(-inf) = 0 on the diagonal
    lse = np.log(e.sum(axis=1, keepdims=True)) + smax
    loss = float((lse[:, 0] - s[idx, pos]).mean())
    g = e / e.sum(axis=1, keepdims=True)                    # P, rows sum to 1 over j != i
    g[idx, pos] -= 1
    g /= m
    du = ((g + g.T) @ u) / np.asarray(tau, dtype=z.dtype)
    return loss, l2_normalize_backward(du, ncache).astype(z.dtype, copy=False)


def byol_loss(p, t):
    """BYOL's symmetric regression loss; no gradient flows into the target.

    p: (2N, D) = [p1; p2] online predictions of the two views; t: (2N, D) = [t1; t2] target
    projections of the SAME stacked views (the kernel pairs p1 with t2 and p2 with t1).
        loss = mean_i (2 - 2 cos(p1_i, t2_i)) + mean_i (2 - 2 cos(p2_i, t1_i))   in [0, 8]
    (BYOL paper Eq. 2: the two directions are SUMMED, each a mean over the N images.)
    Gradient: with u = p / ||p||, v = swapped(t) / ||t||: dl/du_i = -2 v_i / N, then through
    the normalisation: dp_i = (dl/du_i - u_i (u_i . dl/du_i)) / ||p_i||. Returns (loss, dp).
    """
    n = _check_two_views(p, "p")
    check_float_array(t, "t", ndim=2)
    if t.shape != p.shape:
        raise ValueError(f"t must have the shape of p {p.shape}, got {t.shape}")
    u, ncache = l2_normalize_forward(p)
    v, _ = l2_normalize_forward(np.concatenate([t[n:], t[:n]]).astype(p.dtype, copy=False))
    cos = (u * v).sum(axis=1)
    loss = float((2 - 2 * cos).sum() / n)
    du = v * np.asarray(-2.0 / n, dtype=p.dtype)
    return loss, l2_normalize_backward(du, ncache).astype(p.dtype, copy=False)


def barlow_twins(z, lambd: float = 5e-3, eps: float = 1e-5):
    """Barlow Twins' redundancy-reduction loss.

    z: (2N, D) = [z1; z2]; lambd >= 0; eps > 0 -> (loss: float, dz: (2N, D)).
        a = (z1 - mean(z1)) / sqrt(var(z1) + eps)   per feature over the N rows of the view,
            var BIASED (divide by N), as batch norm in training mode (BatchNorm1d(affine=False)
            in the paper's code); b likewise from z2
        c = a^T b / N                                 (D, D) cross-correlation
        loss = sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2      (a SUM, not a mean)
    Gradient: dc_ii = -2 (1 - c_ii), dc_ij = 2 lambd c_ij; da = b dc^T / N, db = a dc / N;
    standardisation backward per view: dz = (da - mean(da) - a mean(da * a)) / sqrt(var + eps).
    Default lambd = 5e-3 (the paper's value for D = 8192).
    """
    n = _check_two_views(z, "z")
    if not (isinstance(lambd, (int, float, np.floating)) and lambd >= 0):
        raise ValueError(f"lambd must be a number >= 0, got {lambd!r}")
    dt = z.dtype
    z1, z2 = z[:n], z[n:]
    s1 = np.sqrt(z1.var(axis=0) + np.asarray(eps, dtype=dt))
    s2 = np.sqrt(z2.var(axis=0) + np.asarray(eps, dtype=dt))
    a = (z1 - z1.mean(axis=0)) / s1
    b = (z2 - z2.mean(axis=0)) / s2
    c = (a.T @ b) / np.asarray(n, dtype=dt)
    diag = np.diagonal(c)
    off = c - np.diag(diag)
    loss = float(((1 - diag) ** 2).sum() + lambd * (off ** 2).sum())
    dc = np.asarray(2 * lambd, dtype=dt) * off
    dc[np.diag_indices_from(dc)] = -2 * (1 - diag)
    da = (b @ dc.T) / np.asarray(n, dtype=dt)
    db = (a @ dc) / np.asarray(n, dtype=dt)
    dz1 = (da - da.mean(axis=0) - a * (da * a).mean(axis=0)) / s1
    dz2 = (db - db.mean(axis=0) - b * (db * b).mean(axis=0)) / s2
    return loss, np.concatenate([dz1, dz2]).astype(dt, copy=False)
