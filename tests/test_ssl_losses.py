"""NT-Xent, BYOL and Barlow Twins: PyTorch twins written from the formulas, invariants, dtypes."""
import math

import numpy as np
import pytest

from nnlite import losses
from nnlite.functional.contrastive import barlow_twins, byol_loss, nt_xent


def _torch():
    return pytest.importorskip("torch")


def torch_nt_xent(z, tau):
    torch = _torch()
    m = z.shape[0]
    n = m // 2
    u = torch.nn.functional.normalize(z, dim=1)
    s = u @ u.T / tau
    s = s.masked_fill(torch.eye(m, dtype=torch.bool), float("-inf"))
    target = (torch.arange(m) + n) % m
    return torch.nn.functional.cross_entropy(s, target)     # mean over the 2N anchors


def torch_byol(p, t):
    torch = _torch()
    n = p.shape[0] // 2
    t = t.detach()
    f = torch.nn.functional

    def one(a, b):
        return (2 - 2 * f.cosine_similarity(a, b, dim=1)).mean()
    return one(p[:n], t[n:]) + one(p[n:], t[:n])


def torch_barlow(z, lambd, eps=1e-5):
    torch = _torch()
    n = z.shape[0] // 2
    bn = torch.nn.functional.batch_norm
    a = bn(z[:n], None, None, training=True, eps=eps)           # biased variance, as BatchNorm1d
    b = bn(z[n:], None, None, training=True, eps=eps)
    c = a.T @ b / n
    on = ((1 - torch.diagonal(c)) ** 2).sum()
    off = (c ** 2).sum() - (torch.diagonal(c) ** 2).sum()
    return on + lambd * off


@pytest.mark.parametrize("n,d,tau", [(1, 3, 0.5), (4, 8, 0.1), (16, 32, 0.05), (7, 5, 1.0)])
def test_nt_xent_twin(n, d, tau):
    torch = _torch()
    z = np.random.default_rng(n).standard_normal((2 * n, d)) * 3
    loss, dz = nt_xent(z, tau)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch_nt_xent(zt, tau)
    lt.backward()
    assert abs(loss - lt.item()) <= 1e-10 * max(1, abs(loss))
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("n,d", [(1, 2), (5, 7), (32, 16)])
def test_byol_twin_and_no_target_gradient(n, d):
    torch = _torch()
    rng = np.random.default_rng(d)
    p, t = rng.standard_normal((2 * n, d)), rng.standard_normal((2 * n, d))
    loss, dp = byol_loss(p, t)
    pt, tt = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
    lt = torch_byol(pt, tt)
    lt.backward()
    assert tt.grad is None                                   # the target gets no gradient
    assert abs(loss - lt.item()) <= 1e-10 * max(1, abs(loss))
    np.testing.assert_allclose(dp, pt.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("n,d,lambd", [(2, 3, 5e-3), (8, 6, 0.1), (40, 20, 1.0), (5, 9, 0.0)])
def test_barlow_twin(n, d, lambd):
    torch = _torch()
    z = np.random.default_rng(n + d).standard_normal((2 * n, d)) * 2 + 1
    loss, dz = barlow_twins(z, lambd)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch_barlow(zt, lambd)
    lt.backward()
    assert abs(loss - lt.item()) <= 1e-9 * max(1, abs(loss))
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("n", [1, 2, 8, 64])
@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5])
def test_nt_xent_identical_embeddings_give_log_2n_minus_1(n, tau):
    z = np.tile(np.random.default_rng(0).standard_normal((1, 6)), (2 * n, 1)) * 5
    loss, dz = nt_xent(z, tau)
    assert loss == pytest.approx(math.log(2 * n - 1), abs=1e-9)
    np.testing.assert_allclose(dz, 0, atol=1e-9)            # all rows equal: every pull and push cancels


def test_nt_xent_falls_as_positives_align():
    rng = np.random.default_rng(1)
    n, d = 16, 32
    base = rng.standard_normal((n, d))
    noise = rng.standard_normal((n, d))
    values = [nt_xent(np.concatenate([base, base + s * noise]), 0.1)[0] for s in (4.0, 2.0, 1.0, 0.5, 0.1, 0.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_nt_xent_stable_at_small_tau_float32():
    z = (np.random.default_rng(2).standard_normal((512, 128)) * 100).astype(np.float32)
    loss, dz = nt_xent(z, 0.05)
    assert np.isfinite(loss) and dz.dtype == np.float32 and np.all(np.isfinite(dz))


def test_nt_xent_invariant_to_scale_of_embeddings():
    z = np.random.default_rng(3).standard_normal((10, 4))
    assert nt_xent(z, 0.1)[0] == pytest.approx(nt_xent(z * 7.5, 0.1)[0], rel=1e-12)


def test_byol_zero_when_aligned_and_gradient_descent_reduces_it():
    rng = np.random.default_rng(4)
    t = rng.standard_normal((8, 5))
    p = np.concatenate([t[4:], t[:4]]) * 3.0              # p1 = 3 t2, p2 = 3 t1: cosine 1
    assert byol_loss(p, t)[0] == pytest.approx(0.0, abs=1e-12)
    p = rng.standard_normal((8, 5))
    before, g = byol_loss(p, t)
    assert byol_loss(p - 0.1 * g, t)[0] < before


def test_barlow_perfect_twins_with_decorrelated_features_give_zero():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((64, 4)))      # orthonormal columns: decorrelated
    z1 = q - q.mean(axis=0)
    loss, _ = barlow_twins(np.concatenate([z1, z1 * 2 + 3]), 1.0, eps=1e-12)
    assert loss < 0.05                                     # small: centring breaks exact orthogonality slightly
    z = rng.standard_normal((64, 4))
    assert barlow_twins(z, 1.0)[0] > loss


@pytest.mark.parametrize("cls,target", [(losses.NTXent, None), (losses.BarlowTwinsLoss, None),
                                        (losses.BYOLLoss, "array")])
def test_loss_classes_keep_dtype(cls, target):
    for dtype in (np.float32, np.float64):
        z = np.random.default_rng(0).standard_normal((6, 4)).astype(dtype)
        t = z[::-1].copy() if target else None
        loss = cls()
        value = loss.forward(z, t)
        assert isinstance(value, float) and loss.backward().dtype == dtype


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="z must stack two views"):
        nt_xent(np.zeros((3, 2)), 0.1)
    with pytest.raises(ValueError, match="tau"):
        nt_xent(np.ones((2, 2)), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        losses.NTXent(-1)
    with pytest.raises(ValueError, match="lambd"):
        losses.BarlowTwinsLoss(-0.1)
    with pytest.raises(ValueError, match="t must have the shape"):
        byol_loss(np.ones((4, 2)), np.ones((4, 3)))
