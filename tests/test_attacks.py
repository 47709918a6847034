"""Tests of nnlite.attacks: FGSM, PGD, fooling images, input gradients, robustness tools.

Tests marked ``needs_data`` train small MLPs on an MNIST subset from ``$NNLITE_DATA``.
"""
import copy
import os
import types

import numpy as np
import pytest

from nnlite import nn
from nnlite.attacks import (AdversarialTraining, AttackResult, RobustValidation, accuracy_vs_eps,
                            adversarial_confusion_matrix, fgsm, fooling_image, fooling_images,
                            input_gradient, make_adversarial_batch, per_example_cross_entropy,
                            pgd, plot_accuracy_vs_eps, plot_adversarial_grid,
                            plot_adversarial_pairs, plot_perturbation, predict)
from nnlite.gradcheck import check_gradients
from nnlite.losses import SoftmaxCrossEntropy

DATA = os.environ.get("NNLITE_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="needs NNLITE_DATA (real MNIST)")
SLACK = 1e-6


# -- small random models -----------------------------------------------------------------------
def small_cnn(seed=0, dtype=np.float32, act=nn.ReLU):
    """Conv + BN + activation + pool + dropout + linear on (N, 1, 8, 8) inputs in [0, 1]."""
    r = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Normalize([0.5], [0.25], dtype=dtype),
        nn.Conv2d(1, 4, 3, padding=1, rng=r, dtype=dtype),
        nn.BatchNorm2d(4, dtype=dtype),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3, rng=r),
        nn.Linear(64, 5, rng=r, dtype=dtype),
    )


def warm_bn(model, x):
    """Give the batch norms non-trivial running statistics (a few training forwards)."""
    model.train()
    for _ in range(3):
        model.forward(x)
    model.eval()
    return model


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(1)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    x[0] = 0.0                      # examples sitting on the edges of the valid range
    x[1] = 1.0
    y = rng.integers(0, 5, 40)
    model = warm_bn(small_cnn(0), x)
    return model, x, y


def snapshot(model):
    """Everything an attack must not change: params, grads (+ identity), buffers, modes, RNGs."""
    return {
        "params": [p.data.copy() for p in model.parameters()],
        "grads": [p.grad.copy() for p in model.parameters()],
        "grad_ids": [id(p.grad) for p in model.parameters()],
        "trainable": [p.trainable for p in model.parameters()],
        "buffers": [np.array(b, copy=True) for _, b in model.named_buffers()],
        "modes": [m.training for _, m in model.named_modules()],
        "rngs": [copy.deepcopy(m.rng.bit_generator.state) for _, m in model.named_modules()
                 if isinstance(getattr(m, "rng", None), np.random.Generator)],
        "conv_flags": [m.needs_input_grad for _, m in model.named_modules()
                       if hasattr(m, "needs_input_grad")],
    }


def assert_same_snapshot(a, b):
    for key in a:
        assert len(a[key]) == len(b[key]), key
        for u, v in zip(a[key], b[key]):
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and u.shape == v.shape, key
                assert u.tobytes() == v.tobytes(), f"{key} changed"
            else:
                assert u == v, f"{key} changed"


def in_ball(res, x, eps, norm):
    d = (res.x_adv.astype(np.float64) - x).reshape(len(x), -1)
    if norm == "inf":
        assert np.abs(d).max() <= eps + SLACK
    else:
        assert np.sqrt((d ** 2).sum(axis=1)).max() <= eps + SLACK
    np.testing.assert_allclose(res.perturbation_linf, np.abs(d).max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(res.perturbation_l2, np.sqrt((d ** 2).sum(axis=1)), rtol=1e-12)


# -- basic properties on random models ---------------------------------------------------------
def test_eps_zero_returns_input_unchanged(toy):
    model, x, y = toy
    results = [fgsm(model, x, y, eps=0.0),
               fgsm(model, x, eps=0.0, targeted=True, target=2),
               pgd(model, x, y, eps=0.0, step_size=0.1, steps=5, rng=0),
               pgd(model, x, y, eps=0.0, step_size=0.1, steps=5, norm="2", restarts=2, rng=0),
               pgd(model, x, y, eps=0.0, step_size=0.1, steps=5, random_start=False)]
    for r in results:
        assert isinstance(r, AttackResult)
        assert r.x_adv.dtype == x.dtype and r.x_adv.tobytes() == x.tobytes()
        assert r.x_adv is not x
        np.testing.assert_array_equal(r.pred_adv, r.pred_clean)
        assert r.perturbation_linf.max() == 0 and r.perturbation_l2.max() == 0


@pytest.mark.parametrize("norm,eps", [("inf", 0.05), ("inf", 0.3), ("2", 0.5), ("2", 3.0)])
def test_pgd_stays_in_ball_and_valid_range(toy, norm, eps):
    model, x, y = toy
    r = pgd(model, x, y, eps=eps, step_size=eps / 2, steps=6, norm=norm, restarts=2, rng=3,
            batch_size=16)
    in_ball(r, x, eps, norm)
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    assert r.perturbation_linf.max() > 0
    # targeted, and a wider custom valid range
    xs = 2 * x - 1
    r = pgd(model, xs, eps=eps, step_size=eps / 2, steps=4, norm=norm, targeted=True, target=1,
            clip=(-1, 1), rng=4)
    in_ball(r, xs, eps, norm)
    assert r.x_adv.min() >= -1 and r.x_adv.max() <= 1


def test_fgsm_in_ball_valid_range_and_chunk_invariant(toy):
    model, x, y = toy
    r = fgsm(model, x, y, eps=0.1)
    in_ball(r, x, 0.1, "inf")
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    d = r.x_adv - x
    interior = (x > 0.1) & (x < 0.9)
    np.testing.assert_allclose(np.abs(d[interior]), 0.1, atol=1e-6)   # a full sign step inside
    # per-example gradients: the chunking does not change anything
    r7 = fgsm(model, x, y, eps=0.1, batch_size=7)
    assert r7.x_adv.tobytes() == r.x_adv.tobytes()
    # without clipping the step is exactly eps * sign(grad) everywhere the gradient is non-zero
    g, _ = input_gradient(model, x, y)
    rn = fgsm(model, x, y, eps=0.1, clip=None)
    np.testing.assert_allclose(rn.x_adv - x, 0.1 * np.sign(g), atol=1e-6)


def test_pgd_reproducible_with_generator(toy):
    model, x, y = toy
    kw = dict(eps=0.1, step_size=0.03, steps=4, restarts=2)
    a = pgd(model, x, y, rng=np.random.default_rng(7), **kw)
    b = pgd(model, x, y, rng=np.random.default_rng(7), **kw)
    assert a.x_adv.tobytes() == b.x_adv.tobytes()
    np.testing.assert_array_equal(a.pred_adv, b.pred_adv)
    c = pgd(model, x, y, rng=np.random.default_rng(8), **kw)
    assert a.x_adv.tobytes() != c.x_adv.tobytes()
    a2 = pgd(model, x, y, norm="2", rng=7, eps=1.0, step_size=0.3, steps=3)
    b2 = pgd(model, x, y, norm="2", rng=7, eps=1.0, step_size=0.3, steps=3)
    assert a2.x_adv.tobytes() == b2.x_adv.tobytes()


def test_pgd_restarts_keep_the_strongest(toy):
    model, x, y = toy
    kw = dict(eps=0.03, step_size=0.01, steps=3)
    single = pgd(model, x, y, rng=5, **kw)             # = the first of the restarts below
    multi = pgd(model, x, y, rng=5, restarts=4, **kw)
    assert np.all(multi.success[single.success])
    model.eval()
    both_fail = ~single.success & ~multi.success
    loss_single = per_example_cross_entropy(model.forward(single.x_adv), y)
    loss_multi = per_example_cross_entropy(model.forward(multi.x_adv), y)
    assert np.all(loss_multi[both_fail] >= loss_single[both_fail])
    assert multi.success.sum() >= single.success.sum()


def test_random_start_l2_is_uniform_inside_the_ball():
    from nnlite.attacks import random_start_delta
    d = random_start_delta((4000, 2), 1.0, "2", np.random.default_rng(0), np.float64)
    r = np.sqrt((d ** 2).sum(axis=1))
    assert r.max() <= 1.0
    # uniform in a disk: P(r <= 0.5) = 0.25 (not 0.5 as for a uniform radius)
    assert abs((r <= 0.5).mean() - 0.25) < 0.03
    dinf = random_start_delta((1000, 3), 0.2, "inf", 0)
    assert dinf.dtype == np.float32 and np.abs(dinf).max() <= 0.2 and np.abs(dinf).max() > 0.19


# -- input gradients -----------------------------------------------------------------------------
def test_input_gradient_matches_numerical_gradient_bn_eval():
    rng = np.random.default_rng(2)
    x = rng.random((4, 1, 8, 8))
    y = np.array([0, 3, 1, 4])
    model = small_cnn(3, dtype=np.float64, act=nn.Tanh)
    model.train()
    model.forward(x)                   # non-trivial running statistics
    model[1].needs_input_grad = False  # a first conv set to skip col2im: must still work
    model.train()                      # the attack must switch to eval mode by itself
    grad, logits = input_gradient(model, x, y)
    assert grad.shape == x.shape and logits.shape == (4, 5)
    assert model.training and model[1].needs_input_grad is False

    ce = SoftmaxCrossEntropy()

    def f_loss():                      # SUM of per-example losses, eval mode
        model.eval()
        try:
            return ce.forward(model.forward(x), y) * len(x)
        finally:
            model.train()

    check_gradients(f_loss, {"x": x}, {"x": grad}, max_coords=120, rng=0,
                    title="input gradient of summed CE").assert_ok()

    t = np.array([2, 2, 0, 1])
    gs, _ = input_gradient(model, x, target_class=t)

    def f_score():
        model.eval()
        try:
            return float(model.forward(x)[np.arange(4), t].sum())
        finally:
            model.train()

    check_gradients(f_score, {"x": x}, {"x": gs}, max_coords=120, rng=1,
                    title="input gradient of class scores").assert_ok()

    # a custom loss object (batch mean) is rescaled to the sum convention
    smooth = SoftmaxCrossEntropy(label_smoothing=0.1)
    gl, _ = input_gradient(model, x, y, loss=smooth)

    def f_smooth():
        model.eval()
        try:
            return smooth.forward(model.forward(x), y) * len(x)
        finally:
            model.train()

    check_gradients(f_smooth, {"x": x}, {"x": gl}, max_coords=60, rng=2).assert_ok()


def mlp_skipping_dx(flag):
    """Flatten-Linear-Tanh-Linear (float64) whose first Linear has needs_input_grad=flag."""
    r = np.random.default_rng(5)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8, rng=r, dtype=np.float64), nn.Tanh(),
                      nn.Linear(8, 3, rng=r, dtype=np.float64))
    m[1].needs_input_grad = flag
    return m


def test_attacks_on_mlp_whose_first_linear_skips_dx():
    rng = np.random.default_rng(4)
    x, y = rng.random((12, 1, 4, 4)), rng.integers(0, 3, 12)
    on, off = mlp_skipping_dx(True), mlp_skipping_dx(False)
    g_off, _ = input_gradient(off, x, y)
    assert off[1].needs_input_grad is False                  # switched on meanwhile, restored
    assert g_off.tobytes() == input_gradient(on, x, y)[0].tobytes()
    ce = SoftmaxCrossEntropy()
    check_gradients(lambda: ce.forward(off.forward(x), y) * len(x), {"x": x}, {"x": g_off},
                    max_coords=80, rng=0, title="input gradient, first Linear skipping dx").assert_ok()
    for attack in (lambda m: fgsm(m, x, y, eps=0.1),
                   lambda m: pgd(m, x, y, eps=0.1, step_size=0.03, steps=3, rng=0)):
        assert attack(off).x_adv.tobytes() == attack(on).x_adv.tobytes()
        assert off[1].needs_input_grad is False
    off.forward(x)
    assert off.backward(np.ones((12, 3))) is None            # the flag really is off again


def test_input_gradient_is_per_example(toy):
    model, x, y = toy
    g, _ = input_gradient(model, x[:6], y[:6])
    rows = np.concatenate([input_gradient(model, x[i:i + 1], y[i:i + 1])[0] for i in range(6)])
    np.testing.assert_allclose(g, rows, rtol=1e-5, atol=1e-6)
    # y=None: the model's own predictions from the same forward pass
    gp, logits = input_gradient(model, x[:6])
    gq, _ = input_gradient(model, x[:6], logits.argmax(axis=1))
    assert gp.tobytes() == gq.tobytes()


class GreedyScale(nn.Module):
    """y = x * w with a backward that ignores ``trainable`` (as a third-party layer might)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.full((1, 1, 1), 1.1, dtype=np.float32))

    def forward(self, x):
        self._cache = x
        return x * self.w.data

    def backward(self, dout):
        self.w.grad += (dout * self._cache).sum(axis=(0, 2, 3)).reshape(1, 1, 1)
        return dout * self.w.data


def test_attacks_leave_model_untouched(toy):
    model, x, y = toy
    model = nn.Sequential(GreedyScale(), *copy.deepcopy(model).layers)
    model.train()
    model[3].eval()                    # per-module modes are restored, not just the root's
    model[2].needs_input_grad = False
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape)
    model.parameters()[0].trainable = False
    before = snapshot(model)
    input_gradient(model, x, y)
    input_gradient(model, x, target_class=3)
    fgsm(model, x, y, eps=0.1)
    pgd(model, x, y, eps=0.1, step_size=0.03, steps=3, restarts=2, rng=0)
    pgd(model, x, y, eps=1.0, step_size=0.3, steps=3, norm="2", targeted=True, target=0, rng=0)
    fooling_images(model, x[:5], 1, step_size=0.5, max_steps=5)
    make_adversarial_batch(model, x[:8], y[:8], attack="pgd", eps=0.1, rng=0, steps=2)
    predict(model, x)
    assert_same_snapshot(before, snapshot(model))
    # a training forward afterwards still updates the running statistics
    rm = [np.array(b, copy=True) for _, b in model.named_buffers()]
    model[3].train()
    model.forward(x)
    assert any(not np.array_equal(a, b) for a, (_, b) in zip(rm, model.named_buffers()))


def test_fgsm_without_labels_uses_predictions(toy):
    model, x, y = toy
    free = fgsm(model, x, eps=0.1)
    given = fgsm(model, x, free.pred_clean, eps=0.1)
    assert free.x_adv.tobytes() == given.x_adv.tobytes()
    np.testing.assert_array_equal(free.labels, free.pred_clean)
    np.testing.assert_array_equal(free.success, free.pred_adv != free.pred_clean)
    true = fgsm(model, x, y, eps=0.1)
    differ = free.pred_clean != y
    assert differ.any()
    assert not np.array_equal(true.x_adv[differ], free.x_adv[differ])
    same = ~differ
    np.testing.assert_array_equal(true.x_adv[same], free.x_adv[same])


def test_bad_inputs_raise(toy):
    model, x, y = toy
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="target"):
        fgsm(model, x, y, eps=0.1, targeted=True)
    with pytest.raises(ValueError, match="targeted=True"):
        pgd(model, x, y, eps=0.1, step_size=0.1, steps=1, target=2)
    with pytest.raises(ValueError, match="valid range"):
        fgsm(model, x * 3, y, eps=0.1)
    with pytest.raises(TypeError, match="floating"):
        fgsm(model, (x * 255).astype(np.uint8), y, eps=0.1)
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, eps=0.1, step_size=0.1, steps=1, norm="1")
    with pytest.raises(ValueError, match=r"shape \(40,\)"):
        pgd(model, x, y[:3], eps=0.1, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match="outside the valid range"):
        fgsm(model, x, y + 10, eps=0.1)
    with pytest.raises(ValueError, match="random_start"):
        pgd(model, x, y, eps=0.1, step_size=0.1, steps=1, restarts=3, random_start=False)
    with pytest.raises(ValueError, match="batch_size"):
        fgsm(model, x, y, eps=0.1, batch_size=0)
    with pytest.raises(ValueError, match="ratio"):
        make_adversarial_batch(model, x, y, eps=0.1, ratio=1.5)
    with pytest.raises(ValueError, match="attack"):
        accuracy_vs_eps(model, x, y, [0.1], attack="cw")
    with pytest.raises(ValueError, match="target_class"):
        fooling_image(model, x[0], [1, 2], step_size=0.1)


def test_make_adversarial_batch_ratio_and_modes(toy):
    model, x, y = toy
    model = copy.deepcopy(model).train()
    xb, yb = make_adversarial_batch(model, x, y, "fgsm", eps=0.1, ratio=0.25, rng=0)
    assert model.training and all(m.training for _, m in model.named_modules())
    assert yb is y or np.array_equal(yb, y)
    changed = np.any((xb != x).reshape(len(x), -1), axis=1)
    assert 0 < changed.sum() <= 10          # round(0.25 * 40) = 10 examples replaced
    assert np.abs(xb - x).max() <= 0.1 + SLACK
    full, _ = make_adversarial_batch(model, x, y, "fgsm", eps=0.1, ratio=1.0)
    assert full.tobytes() == fgsm(model, x, y, eps=0.1).x_adv.tobytes()
    same, _ = make_adversarial_batch(model, x, y, "fgsm", eps=0.1, ratio=0.0)
    assert same.tobytes() == x.tobytes() and same is not x
    # the callback hook returns the replaced batch
    cb = AdversarialTraining("pgd", eps=0.1, ratio=0.5, rng=0, steps=2)
    trainer = types.SimpleNamespace(model=model, rng=np.random.default_rng(0))
    cb.on_train_begin(trainer)
    cb.on_epoch_begin(trainer, 0)
    xa, ya = cb.on_train_batch_begin(trainer, 0, x, y)
    assert xa.shape == x.shape and np.array_equal(ya, y) and not np.array_equal(xa, x)
    cb.on_train_batch_end(trainer, 0, {})
    cb.on_epoch_end(trainer, 0, {})
    cb.on_train_end(trainer)


def test_reports_and_figures(toy, tmp_path):
    model, x, y = toy
    acc = accuracy_vs_eps(model, x, y, [0.0, 0.05, 0.2])
    assert list(acc) == [0.0, 0.05, 0.2]
    assert acc[0.0] == pytest.approx(float((predict(model, x) == y).mean()))
    assert acc[0.05] == pytest.approx(fgsm(model, x, y, eps=0.05).accuracy(y))
    acc_pgd = accuracy_vs_eps(model, x, y, [0.0, 0.05], attack="pgd", steps=3, rng=0)
    assert acc_pgd[0.0] == acc[0.0]
    cm = adversarial_confusion_matrix(model, x, y, 0.05, num_classes=5)
    r = fgsm(model, x, y, eps=0.05)
    assert cm.shape == (5, 5) and cm.sum() == len(x)
    assert np.trace(cm) == int((r.pred_adv == y).sum())
    for i in range(5):
        assert cm[i].sum() == int((y == i).sum())
    paths = [
        plot_accuracy_vs_eps({"FGSM": acc, "PGD": acc_pgd}, tmp_path / "curve.png"),
        plot_adversarial_grid(model, x[:4], y[:4], [0.0, 0.1, 0.3], tmp_path / "grid.png"),
        plot_adversarial_pairs(model, x, y, 0.3, tmp_path / "sub" / "pairs.png", max_pairs=3),
        plot_perturbation(x[:3], r.x_adv[:3], tmp_path / "pert.png", labels=["a", "b", "c"]),
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert not leftovers


def png_pixels(path):
    from matplotlib.image import imread
    return imread(path)


def test_figures_and_matrix_from_a_passed_result_equal_rerunning(toy, tmp_path, monkeypatch):
    from nnlite.attacks import robustness
    model, x, y = toy
    opts = dict(steps=3, step_size=0.1)
    res = pgd(model, x, y, eps=0.3, rng=0, **opts)
    rerun_pairs = plot_adversarial_pairs(model, x, y, 0.3, tmp_path / "p1.png", "pgd", max_pairs=3,
                                         rng=0, **opts)
    rerun_cm = adversarial_confusion_matrix(model, x, y, 0.3, "pgd", num_classes=5, rng=0, **opts)
    xs, ys = x[:4], y[:4]
    grid_res = {e: fgsm(model, xs, ys, eps=e) for e in (0.05, 0.2)}
    rerun_grid = plot_adversarial_grid(model, xs, ys, [0.0, 0.05, 0.2], tmp_path / "g1.png")

    def no_attack(*a, **k):
        raise AssertionError("the attack was run again")

    monkeypatch.setattr(robustness, "run_attack", no_attack)
    pairs = plot_adversarial_pairs(model, x, y, None, tmp_path / "p2.png", max_pairs=3, result=res)
    assert np.array_equal(png_pixels(pairs), png_pixels(rerun_pairs))
    same_eps = plot_adversarial_pairs(model, x, y, 0.3, tmp_path / "p3.png", "pgd", max_pairs=3,
                                      result=res)
    assert np.array_equal(png_pixels(same_eps), png_pixels(rerun_pairs))
    cm = adversarial_confusion_matrix(model, x, y, None, num_classes=5, result=res)
    assert cm.dtype == np.int64 and np.array_equal(cm, rerun_cm)
    for results in (grid_res, [None, grid_res[0.05], grid_res[0.2]]):
        grid = plot_adversarial_grid(model, xs, ys, [0.0, 0.05, 0.2], tmp_path / "g2.png",
                                     results=results)
        assert np.array_equal(png_pixels(grid), png_pixels(rerun_grid))


def test_mismatched_result_is_refused(toy, tmp_path):
    model, x, y = toy
    res = pgd(model, x, y, eps=0.3, step_size=0.1, steps=3, rng=0)
    path = tmp_path / "f.png"
    with pytest.raises(ValueError, match=r"does not match x.*shape \(40, 1, 8, 8\)"):
        plot_adversarial_pairs(model, x[:10], y[:10], None, path, result=res)
    other = np.random.default_rng(9).random(x.shape).astype(np.float32)
    with pytest.raises(ValueError, match="another x"):
        adversarial_confusion_matrix(model, other, y, None, result=res)
    with pytest.raises(ValueError, match="eps=0.3, not eps=0.1"):
        plot_adversarial_pairs(model, x, y, 0.1, path, result=res)
    with pytest.raises(ValueError, match="attack 'pgd', not 'fgsm'"):
        adversarial_confusion_matrix(model, x, y, 0.3, "fgsm", result=res)
    with pytest.raises(ValueError, match=r"\['rng', 'steps'\] would be ignored"):
        plot_adversarial_pairs(model, x, y, None, path, result=res, rng=0, steps=3)
    with pytest.raises(TypeError, match="AttackResult"):
        adversarial_confusion_matrix(model, x, y, None, result=res.x_adv)
    with pytest.raises(ValueError, match="eps is needed"):
        adversarial_confusion_matrix(model, x, y, None)
    with pytest.raises(ValueError, match="one entry .* per eps"):
        plot_adversarial_grid(model, x, y, [0.0, 0.3], path, results=[res])
    with pytest.raises(ValueError, match="eps=0.3, not eps=0.1"):
        plot_adversarial_grid(model, x, y, [0.1], path, results=[res])
    with pytest.raises(ValueError, match=r"eps \[0.2\] not in eps_list"):
        plot_adversarial_grid(model, x, y, [0.3], path, results={0.2: res})


# -- trained models on real MNIST ------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    tr = np.load(os.path.join(DATA, "mnist", "train.npz"))
    te = np.load(os.path.join(DATA, "mnist", "test.npz"))

    def prep(a):   # (N, 28, 28, 1) uint8 -> (N, 1, 28, 28) float32 in [0, 1]
        return (a.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)

    return prep(tr["x"][:3000]), tr["y"][:3000], prep(te["x"][:1000]), te["y"][:1000]


def mlp(seed):
    r = np.random.default_rng(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128, rng=r), nn.ReLU(),
                         nn.Linear(128, 10, rng=r))


def fit(model, x, y, epochs, callbacks=()):
    from nnlite.optim import Adam
    from nnlite.train import Trainer
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-3),
                      callbacks=callbacks, batch_size=64, rng=0, progress=False)
    trainer.fit(x, y, epochs=epochs)
    return model.eval()


@pytest.fixture(scope="module")
def trained(mnist):
    x, y, _, _ = mnist
    return fit(mlp(0), x, y, epochs=4)


@needs_data
def test_pgd_at_least_as_strong_as_fgsm(trained, mnist):
    _, _, xt, yt = mnist
    clean = float((predict(trained, xt) == yt).mean())
    assert clean > 0.85
    for eps in (0.05, 0.1):
        acc_f = fgsm(trained, xt, yt, eps=eps).accuracy()
        acc_p = pgd(trained, xt, yt, eps=eps, step_size=2.5 * eps / 10, steps=10, rng=0).accuracy()
        print(f"eps={eps}: clean {clean:.3f} FGSM {acc_f:.3f} PGD {acc_p:.3f}")
        assert acc_p <= acc_f < clean


@needs_data
def test_targeted_attacks_reach_target(trained, mnist):
    _, _, xt, yt = mnist
    target = (yt + 1) % 10
    r = pgd(trained, xt, eps=0.2, step_size=0.02, steps=20, targeted=True, target=target, rng=0)
    print(f"targeted PGD eps=0.2: {r.success_rate:.3f}")
    np.testing.assert_array_equal(r.success, r.pred_adv == target)
    np.testing.assert_array_equal(r.target, target)
    assert r.success_rate >= 0.8               # measured 0.92
    f = fgsm(trained, xt, eps=0.3, targeted=True, target=target)
    print(f"targeted FGSM eps=0.3: {f.success_rate:.3f}")
    assert f.success_rate >= 0.7               # measured 0.90
    l2 = pgd(trained, xt[:300], eps=3.0, step_size=0.3, steps=20, norm="2", targeted=True,
             target=target[:300], rng=0)
    print(f"targeted PGD-L2 eps=3: {l2.success_rate:.3f}")
    in_ball(l2, xt[:300], 3.0, "2")
    assert l2.success_rate >= 0.8


@needs_data
def test_fooling_image_reaches_target(trained, mnist):
    _, _, xt, yt = mnist
    keep = np.flatnonzero(yt != 3)[:30]
    r = fooling_images(trained, xt[keep], 3, step_size=0.1, max_steps=200)
    print(f"fooling: success {r.success_rate:.3f}, mean steps {r.steps.mean():.1f}, "
          f"mean L2 {r.perturbation_l2.mean():.2f}")
    assert r.success_rate >= 0.95
    assert np.all(r.pred_adv[r.success] == 3) and r.steps.max() <= 200
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    i = keep[0]
    one = fooling_image(trained, xt[i], 3, step_size=0.1, max_steps=200)
    assert one.success and one.pred == 3 and one.target == 3 and 0 < one.steps <= 200
    assert one.image.shape == xt[i].shape
    np.testing.assert_allclose(one.perturbation, one.image - xt[i])
    assert one.l2 == pytest.approx(float(np.linalg.norm(one.perturbation.astype(np.float64))))
    assert one.linf == pytest.approx(float(np.abs(one.perturbation).max()))
    assert one.l2 <= 0.1 * one.steps + 1e-5    # each step has L2 length step_size (before clip)
    # a too-small budget stops at max_steps without success
    none = fooling_image(trained, xt[i], 3, step_size=1e-4, max_steps=3)
    assert not none.success and none.steps == 3


@needs_data
def test_adversarial_training_raises_robust_accuracy(trained, mnist):
    x, y, xt, yt = mnist
    adv = fit(mlp(0), x, y, epochs=4,
              callbacks=[AdversarialTraining("fgsm", eps=0.1, ratio=1.0, rng=1)])
    plain_rob = fgsm(trained, xt, yt, eps=0.1).accuracy()
    adv_rob = fgsm(adv, xt, yt, eps=0.1).accuracy()
    adv_clean = float((predict(adv, xt) == yt).mean())
    print(f"FGSM eps=0.1 robust accuracy: normal {plain_rob:.3f}, adversarially trained "
          f"{adv_rob:.3f} (clean {adv_clean:.3f})")
    assert adv_rob >= plain_rob + 0.2
    assert adv_clean > 0.6


def test_robust_validation_logs_attack_accuracy_and_leaves_the_model_alone(toy):
    model, x, y = toy
    model = copy.deepcopy(model)
    cb = RobustValidation(x, y, "pgd", eps=0.1, key="val_pgd_acc", seed=3, steps=3, step_size=0.04)
    trainer = types.SimpleNamespace(model=model)
    before = snapshot(model)
    logs = {}
    cb.on_validation_end(trainer, 0, logs)
    assert_same_snapshot(before, snapshot(model))
    ref = pgd(model, x, y, eps=0.1, steps=3, step_size=0.04, rng=np.random.default_rng(3))
    assert logs["val_pgd_acc"] == ref.accuracy(y)
    again = {}
    cb.on_validation_end(trainer, 1, again)      # same random starts every epoch
    assert again["val_pgd_acc"] == logs["val_pgd_acc"]
    every2 = RobustValidation(x, y, "fgsm", eps=0.1, every=2)
    odd, even = {}, {}
    every2.on_validation_end(trainer, 0, odd)
    every2.on_validation_end(trainer, 1, even)
    assert np.isnan(odd["val_robust_acc"]) and even["val_robust_acc"] == fgsm(model, x, y, eps=0.1).accuracy(y)
    for bad in (dict(attack="cw"), dict(every=0), dict(key=""), dict(eps=-1)):
        with pytest.raises(ValueError):
            RobustValidation(x, y, **bad)
    with pytest.raises((TypeError, ValueError)):
        RobustValidation(x, y.astype(np.float32))


def test_fgsm_rs_is_pgd_with_one_step_from_a_random_start(toy):
    """FGSM-RS (Wong et al. 2020) through AdversarialTraining: inside the eps box, not plain FGSM."""
    model, x, y = toy
    xb, _ = make_adversarial_batch(model, x, y, "pgd", eps=0.1, ratio=1.0, rng=0, steps=1,
                                   step_size=0.125, random_start=True)
    d = xb - x
    assert np.abs(d).max() <= 0.1 + SLACK and xb.min() >= 0 and xb.max() <= 1
    plain = fgsm(model, x, y, eps=0.1).x_adv
    assert not np.array_equal(xb, plain)
    # a step of 1.25 eps from a start inside the box ends on the box's faces for most pixels
    inner = (x > 0.1) & (x < 0.9)
    assert np.mean(np.isclose(np.abs(d[inner]), 0.1, atol=1e-6)) > 0.5


def test_adversarial_training_eps_ramp(toy):
    """ramp_epochs: eps (and the step) grow linearly from 0 to eps, batch by batch."""
    model, x, y = toy
    model = copy.deepcopy(model).train()
    cb = AdversarialTraining("pgd", eps=0.2, ramp_epochs=2, rng=0, steps=2, step_size=0.1, start_epoch=1)
    trainer = types.SimpleNamespace(model=model, rng=np.random.default_rng(0), steps_per_epoch=4)
    seen = []
    for epoch in range(4):
        cb.on_epoch_begin(trainer, epoch)
        for b in range(4):
            xa, _ = cb.on_train_batch_begin(trainer, b, x, y)
            seen.append(cb.current_eps)
            assert np.abs(xa - x).max() <= cb.current_eps + SLACK
    expected = [0.0] * 4 + [0.2 * k / 8 for k in range(8)] + [0.2] * 4   # epoch 0 clean (start_epoch=1)
    np.testing.assert_allclose(seen, expected, atol=1e-12)
    assert cb.ramp_factor(5, 0, 4) == 1.0
    # halfway through the ramp, the batch equals the attack at half eps with half the step
    cb.on_epoch_begin(trainer, 2)
    xa, _ = cb.on_train_batch_begin(trainer, 0, x, y)
    cb2 = AdversarialTraining("pgd", eps=0.1, rng=0, steps=2, step_size=0.05)
    cb.rng, cb2.rng = np.random.default_rng(5), np.random.default_rng(5)
    xa, _ = cb.on_train_batch_begin(trainer, 0, x, y)
    xb, _ = cb2.on_train_batch_begin(trainer, 0, x, y)
    assert cb.current_eps == pytest.approx(0.1) and np.array_equal(xa, xb)
    for bad in (-1, "2", True):
        with pytest.raises(ValueError):
            AdversarialTraining("fgsm", eps=0.1, ramp_epochs=bad)
