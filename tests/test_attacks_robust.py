"""Tests of the trustworthy-evaluation attacks: APGD (CE, DLR), Square, Carlini-Wagner L2,
DeepFool, the worst-case ensemble ``robust_accuracy`` and the gradient-masking checks.

All models are small (synthetic 3-class blobs on 1x4x4 images, or linear models whose minimal
adversarial distance is known in closed form), so the file runs in a few seconds.
"""
import numpy as np
import pytest

from nnlite import nn
from nnlite.attacks import (DLRLoss, apgd, apgd_checkpoints, carlini_wagner, deepfool, fgsm,
                            gradient_masking_checks, per_example_cross_entropy, pgd, robust_accuracy,
                            square_attack)
from nnlite.attacks.square import square_p_schedule
from nnlite.functional.dlr import dlr_backward, dlr_forward
from nnlite.gradcheck import check_gradients
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.optim import Adam
from nnlite.train import Trainer


# -- models --------------------------------------------------------------------------------------------
def blobs(n, seed):
    """3 classes on (1, 4, 4) images in [0, 1]: class k brightens its own band of rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.uniform(0.25, 0.45, size=(n, 1, 4, 4))
    for k in range(3):
        rows = slice(k, k + 2)
        x[y == k, :, rows, :] += 0.3
    return np.clip(x, 0, 1).astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    """An MLP trained on the blobs (clean accuracy ~1), and 60 test points."""
    x, y = blobs(300, 0)
    r = np.random.default_rng(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32, rng=r), nn.ReLU(), nn.Linear(32, 3, rng=r))
    Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2), batch_size=50,
            rng=0, progress=False).fit(x, y, epochs=30)
    xt, yt = blobs(60, 1)
    return model, xt, yt


class ZeroGrad(nn.Module):
    """Identity forward, zero backward: a deliberately gradient-masked layer."""

    def forward(self, x):
        return x

    def backward(self, dout):
        return np.zeros_like(dout)


class NoBackward(nn.Module):
    """Identity forward whose backward raises: any gradient use fails loudly."""

    def forward(self, x):
        return x

    def backward(self, dout):
        raise RuntimeError("backward must not be called")


def masked(model, layer):
    return nn.Sequential(layer, *model.layers)


def ce(model, x, y):
    model.eval()
    return per_example_cross_entropy(model.forward(x), y)


# -- DLR ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("targeted", [False, True])
def test_dlr_gradient_check(targeted):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((7, 6)) * 2
    y = rng.integers(0, 6, 7)
    t = (y + 1 + rng.integers(0, 5, 7)) % 6 if targeted else None
    w = rng.standard_normal(7)
    out, cache = dlr_forward(z, y, t)
    dz = dlr_backward(w, cache)
    rep = check_gradients(lambda: float((dlr_forward(z, y, t)[0] * w).sum()), {"z": z}, {"z": dz},
                          max_coords=None, title="dlr")
    assert rep.ok, str(rep)


def test_dlr_matches_torch_and_sign():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z = rng.standard_normal((8, 5))
    y = rng.integers(0, 5, 8)
    out, cache = dlr_forward(z, y)
    zt = torch.tensor(z, requires_grad=True)
    srt, _ = zt.sort(dim=1, descending=True)
    zy = zt[torch.arange(8), torch.tensor(y)]
    other = zt.clone()
    other[torch.arange(8), torch.tensor(y)] = -float("inf")
    ref = -(zy - other.max(dim=1).values) / (srt[:, 0] - srt[:, 2] + 1e-12)
    ref.sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dlr_backward(np.ones(8), cache), zt.grad.numpy(), rtol=1e-10, atol=1e-12)
    # positive exactly when misclassified
    assert np.array_equal(out > 0, z.argmax(axis=1) != y)
    # float32 in, float32 out; too few classes refused
    o32, c32 = dlr_forward(z.astype(np.float32), y)
    assert o32.dtype == np.float32 and dlr_backward(np.ones(8), c32).dtype == np.float32
    with pytest.raises(ValueError, match="at least 3 classes"):
        dlr_forward(z[:, :2], np.zeros(8, dtype=int))
    with pytest.raises(ValueError, match="at least 4 classes"):
        dlr_forward(z[:, :3], np.zeros(8, dtype=int), np.ones(8, dtype=int))
    loss = DLRLoss()
    assert loss.forward(z, y) == pytest.approx(out.mean())


# -- APGD -----------------------------------------------------------------------------------------------
def test_apgd_checkpoints_follow_the_paper():
    # p: 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("norm,eps", [("inf", 0.08), ("2", 0.3)])
def test_apgd_never_worse_than_start_in_ball_and_range(trained, loss, norm, eps):
    model, x, y = trained
    x = x.copy()
    x[0] = 0.0                                   # on the edges of the valid range
    x[1] = 1.0
    res = apgd(model, x, y, eps=eps, loss=loss, norm=norm, steps=20, random_start=False, rng=0)
    d = (res.x_adv.astype(np.float64) - x).reshape(len(x), -1)
    if norm == "inf":
        assert np.abs(d).max() <= eps + 1e-6
    else:
        assert np.sqrt((d ** 2).sum(axis=1)).max() <= eps * (1 + 1e-5)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1 and res.x_adv.dtype == np.float32
    # not broken: the returned loss is at least the loss at the start (x itself here)
    model.eval()
    z0, z1 = model.forward(x), model.forward(res.x_adv)
    if loss == "ce":
        f0, f1 = per_example_cross_entropy(z0, y), per_example_cross_entropy(z1, y)
    else:
        f0, f1 = dlr_forward(z0.astype(np.float64), y)[0], dlr_forward(z1.astype(np.float64), y)[0]
    keep = ~res.success
    assert np.all(f1[keep] >= f0[keep] - 1e-5)
    np.testing.assert_allclose(res.info["loss_start"], f0, rtol=1e-4, atol=1e-5)
    assert np.all(res.success == (res.pred_adv != y))
    # with random starts and restarts too: the best loss is never below the start's
    r2 = apgd(model, x, y, eps=eps, loss=loss, norm=norm, steps=20, restarts=2, rng=1)
    k2 = ~r2.success
    assert np.all(r2.info["loss_best"][k2] >= r2.info["loss_start"][k2] - 1e-6)


def test_apgd_at_least_as_strong_as_fgsm_and_pgd_and_reproducible(trained):
    model, x, y = trained
    eps = 0.12
    a = apgd(model, x, y, eps=eps, steps=30, rng=0)
    assert a.accuracy(y) <= fgsm(model, x, y, eps=eps).accuracy(y)
    assert a.accuracy(y) <= pgd(model, x, y, eps=eps, step_size=eps / 4, steps=10, rng=0).accuracy(y) + 0.02
    b = apgd(model, x, y, eps=eps, steps=30, rng=0)
    assert np.array_equal(a.x_adv, b.x_adv)
    assert a.accuracy(y) < 0.9, "APGD should break some points at this eps"
    # targeted: success means predicted as the target
    t = (y + 1) % 3
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd(model, x, y, eps=eps, loss="dlr", targeted=True, target=t)
    rt = apgd(model, x, y, eps=0.3, loss="ce", targeted=True, target=t, steps=20, rng=0)
    assert np.array_equal(rt.success, rt.pred_adv == t) and rt.success.mean() > 0.3


# -- Square ---------------------------------------------------------------------------------------------
def test_square_p_schedule_follows_the_paper():
    # 10,000 queries: p_init until query 10, halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000
    p = [square_p_schedule(0.8, i, 10000) for i in (0, 10, 11, 50, 51, 500, 501, 8001, 9999)]
    assert p == [0.8, 0.8, 0.4, 0.4, 0.2, 0.8 / 8, 0.8 / 16, 0.8 / 512, 0.8 / 512]
    # rescaled to the budget: query 100 of 1,000 is query 1,000 of 10,000
    assert square_p_schedule(0.8, 100, 1000) == square_p_schedule(0.8, 1000, 10000) == 0.8 / 16


def test_square_uses_no_gradient(trained):
    model, x, y = trained
    blind = masked(model, NoBackward())
    with pytest.raises(RuntimeError, match="must not be called"):
        apgd(blind, x, y, eps=0.1, steps=2)          # the layer is really in the way of gradients
    res = square_attack(blind, x, y, eps=0.15, n_queries=300, rng=0)
    assert res.success.mean() > 0.2, "Square should break points at eps 0.15 without gradients"
    assert np.abs(res.x_adv.astype(np.float64) - x).max() <= 0.15 + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.steps.max() <= 300
    # per-sample early stop: broken points stop querying, and do so before the budget
    assert res.steps[res.success].mean() < 300
    # misclassified points cost no query
    wrong = res.pred_clean != y
    assert np.all(res.steps[wrong] == 0)
    # same Generator seed, same result
    assert np.array_equal(res.x_adv, square_attack(blind, x, y, eps=0.15, n_queries=300, rng=0).x_adv)


# -- minimal perturbations on a linear model ------------------------------------------------------------
@pytest.fixture(scope="module")
def linear():
    """Two-class linear model on (N, 1, 4, 4) and points whose minimal L2 distance to the
    decision boundary is d = |w.x + b| / ||w||, w = W1 - W0, with the closest boundary point
    well inside the box."""
    rng = np.random.default_rng(3)
    lin = nn.Linear(16, 2, rng=rng, dtype=np.float64)
    model = nn.Sequential(nn.Flatten(), lin)
    x = rng.uniform(0.35, 0.65, size=(40, 1, 4, 4))
    w = lin.weight.data[1] - lin.weight.data[0]
    f = x.reshape(40, -1) @ w + lin.bias.data[1] - lin.bias.data[0]
    lin.bias.data[1] -= np.median(f)                     # about half the points on each side
    f = x.reshape(40, -1) @ w + lin.bias.data[1] - lin.bias.data[0]
    d = np.abs(f) / np.linalg.norm(w)
    ok = d * np.abs(w).max() / np.linalg.norm(w) < 0.3
    return model, x[ok], d[ok]


def test_deepfool_finds_the_analytic_minimal_distance(linear):
    model, x, d = linear
    res = deepfool(model, x, overshoot=0.02)
    assert res.success.all()
    assert np.all(res.steps == 1)                        # linear: one step reaches the boundary
    assert np.all(res.perturbation_l2 >= d * (1 - 1e-9))
    assert np.all(res.perturbation_l2 <= 1.02 * d + 2e-4)


def test_carlini_wagner_finds_at_most_the_analytic_distance(linear):
    model, x, d = linear
    res = carlini_wagner(model, x)          # defaults: 9 binary-search rounds of 100 Adam steps
    assert res.success.all()
    assert np.all(res.perturbation_l2 >= d * (1 - 1e-6))
    assert np.all(res.perturbation_l2 <= 1.05 * d + 1e-3)


# -- ensemble and masking checks ------------------------------------------------------------------------
def test_ensemble_is_the_worst_case(trained):
    model, x, y = trained
    eps = 0.1
    rep = robust_accuracy(model, x, y, eps, steps=20, n_queries=200, rng=0, check_n=60, individual=True)
    assert rep.robust_accuracy <= rep.clean_accuracy
    for name in ("apgd-ce", "apgd-dlr", "square"):
        kw = dict(n_queries=200) if name == "square" else dict(steps=20, loss=name[5:])
        attack = square_attack if name == "square" else apgd
        alone = attack(model, x, y, eps=eps, rng=0, **kw).accuracy(y)
        assert rep.robust_accuracy <= alone + 1e-12, name
        assert rep.robust_accuracy <= rep.individual[name] + 1e-12, name
    # the log is consistent: accuracy after each attack non-increasing, counts add up
    after = [rep.accuracy_after[a] for a in rep.attacks]
    assert after == sorted(after, reverse=True) and after[-1] == rep.robust_accuracy
    n_clean_wrong = int(np.sum(rep.broken_by == "clean"))
    assert n_clean_wrong + sum(rep.broken.values()) + int(np.sum(rep.broken_by == "")) == len(y)
    assert rep.robust_accuracy == pytest.approx(np.mean(rep.broken_by == ""))
    broken = rep.broken_by != ""
    model.eval()
    assert np.all(model.forward(rep.x_adv).argmax(axis=1)[broken] != y[broken])
    assert np.abs(rep.x_adv.astype(np.float64) - x).max() <= eps + 1e-6
    # a smooth model: no masking flagged
    assert rep.masking is not None and not rep.masking["flagged"], rep.log()
    assert "robust accuracy" in rep.log()


def test_masking_checks_flag_a_gradient_masked_model(trained):
    model, x, y = trained
    bad = masked(model, ZeroGrad())
    rep = robust_accuracy(bad, x, y, 0.1, steps=20, n_queries=200, rng=0, check_n=60)
    assert rep.masking["flagged"]
    checks = rep.masking["checks"]
    assert not checks["zero_at_large_eps"]["passed"]
    assert not checks["gradient_free_not_better"]["passed"]
    alone = robust_accuracy(bad, x, y, 0.1, steps=10, n_queries=200, rng=0, check_n=30, individual=True)
    assert not alone.masking["checks"]["gradient_free_alone_not_better"]["passed"]
    assert rep.broken["apgd-ce"] == 0 and rep.broken["square"] > 0
    # and standalone, without a report, the large-eps check flags it
    assert gradient_masking_checks(bad, x, y, 0.1, steps=10, rng=0)["flagged"]


# -- bad inputs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["nan", "inf", "range"])
def test_every_attack_refuses_bad_images(trained, bad):
    model, x, y = trained
    x = x.copy()
    x[3, 0, 1, 1] = {"nan": np.nan, "inf": np.inf, "range": 1.5}[bad]
    msg = "finite" if bad != "range" else "valid range"
    calls = [lambda: fgsm(model, x, y, eps=0.1),
             lambda: pgd(model, x, y, eps=0.1, step_size=0.01, steps=2),
             lambda: apgd(model, x, y, eps=0.1, steps=2),
             lambda: square_attack(model, x, y, eps=0.1, n_queries=2),
             lambda: carlini_wagner(model, x, y, steps=1, binary_steps=1),
             lambda: deepfool(model, x, y, max_iter=1),
             lambda: robust_accuracy(model, x, y, 0.1, steps=2, n_queries=2)]
    for call in calls:
        with pytest.raises(ValueError, match=msg):
            call()


def test_bad_arguments_are_named(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="loss must be one of"):
        apgd(model, x, y, eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        apgd(model, x, y, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="norm must be"):
        apgd(model, x, y, eps=0.1, norm="1")
    with pytest.raises(ValueError, match="n_queries"):
        square_attack(model, x, y, eps=0.1, n_queries=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        square_attack(model, x.reshape(len(x), -1), y, eps=0.1)
    with pytest.raises(ValueError, match="needs a box"):
        carlini_wagner(model, x, y, clip=None)
    with pytest.raises(ValueError, match="overshoot"):
        deepfool(model, x, y, overshoot=-1)
    with pytest.raises(ValueError, match="attacks must be"):
        robust_accuracy(model, x, y, 0.1, attacks=("apgd-ce", "unknown"))
    with pytest.raises(ValueError, match="L-inf only"):
        robust_accuracy(model, x, y, 0.1, attacks=("square",), norm="2", checks=False)
    with pytest.raises(ValueError, match="y must have shape"):
        robust_accuracy(model, x, y[:-1], 0.1)
