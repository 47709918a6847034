"""LARS against its paper's formula (written independently in PyTorch), and BYOL's EMA target."""
import math

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite import optim
from nnlite.ssl import cosine_tau, ema_update


def _params(rng, dtype=np.float64):
    w = nn.Parameter(rng.standard_normal((4, 3)).astype(dtype))
    b = nn.Parameter(rng.standard_normal(4).astype(dtype))
    z = nn.Parameter(np.zeros((2, 2), dtype=dtype))          # ||w|| = 0: trust ratio 1
    return [w, b, z]


@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("momentum,wd,eta", [(0.9, 1e-4, 1e-3), (0.0, 0.0, 0.02), (0.5, 0.1, 1.0)])
def test_lars_matches_paper_formula_torch_twin(exclude, momentum, wd, eta):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = _params(rng)
    ref = [torch.tensor(p.data.copy()) for p in params]
    bufs = [torch.zeros_like(r) for r in ref]
    opt = optim.LARS(params, lr=0.3, momentum=momentum, weight_decay=wd, eta=eta,
                     exclude_bias_and_norm=exclude)
    for _ in range(5):
        grads = [rng.standard_normal(p.data.shape) for p in params]
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        for i, (r, g) in enumerate(zip(ref, grads)):       # You et al. 2017, Algorithm 1 (+ momentum)
            g = torch.tensor(g)
            if not (exclude and r.ndim <= 1):
                g = g + wd * r
                wn, gn = torch.linalg.norm(r), torch.linalg.norm(g)
                trust = eta * wn / gn if (wn > 0 and gn > 0) else torch.tensor(1.0, dtype=r.dtype)
                g = trust * g
            bufs[i] = momentum * bufs[i] + g
            r -= 0.3 * bufs[i]
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r.numpy(), rtol=1e-12, atol=1e-14)


def test_lars_keeps_float32_and_state_dict_round_trip():
    rng = np.random.default_rng(1)
    params = _params(rng, np.float32)
    opt = optim.LARS(params, lr=0.1)
    for p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(np.float32)
    opt.step()
    assert all(p.data.dtype == np.float32 for p in params)
    state = opt.state_dict()
    other = optim.LARS(params, lr=0.5)
    other.load_state_dict(state)
    assert other.lr == 0.1
    np.testing.assert_array_equal(other.state[0]["momentum_buffer"], opt.state[0]["momentum_buffer"])


def test_lars_bad_arguments():
    p = [nn.Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="eta"):
        optim.LARS(p, lr=0.1, eta=0.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.LARS(p, lr=0.1, momentum=1.5)


def test_cosine_tau_schedule():
    assert cosine_tau(0, 100) == pytest.approx(0.996)
    assert cosine_tau(100, 100) == pytest.approx(1.0)
    assert cosine_tau(50, 100) == pytest.approx(1 - 0.004 * 0.5)
    k = np.arange(101)
    taus = [cosine_tau(i, 100) for i in k]
    assert all(a <= b for a, b in zip(taus, taus[1:]))
    assert cosine_tau(30, 100, base=0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi * 0.3) + 1) / 2)


def test_ema_update_is_exact():
    rng = np.random.default_rng(2)
    online = nn.Sequential(nn.Linear(3, 4, rng=rng), nn.BatchNorm1d(4), nn.Linear(4, 2, rng=rng))
    target = nn.Sequential(nn.Linear(3, 4, rng=rng), nn.BatchNorm1d(4), nn.Linear(4, 2, rng=rng))
    online[1].running_mean[...] = rng.standard_normal(4)
    before = [p.data.copy() for p in target.parameters()]
    tau = 0.9
    ema_update(target, online, tau)
    for b, t, o in zip(before, target.parameters(), online.parameters()):
        np.testing.assert_allclose(t.data, tau * b + (1 - tau) * o.data, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(target[1].running_mean, online[1].running_mean)
    ema_update(target, online, 0.0)                          # tau = 0 copies the online weights
    for t, o in zip(target.parameters(), online.parameters()):
        np.testing.assert_array_equal(t.data, o.data)
    with pytest.raises(ValueError, match="tau"):
        ema_update(target, online, 1.5)
