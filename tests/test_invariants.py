"""Invariants that catch the classic bugs of hand-written layers."""
import numpy as np
import pytest

import nnlite.functional as F
import nnlite.nn as nn


def test_cross_entropy_finite_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss, grad = F.softmax_cross_entropy(logits, np.array([0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # sample 0 is confidently right (loss ~0); sample 1 splits between classes 1 and 2 (loss log 2)
    assert loss == pytest.approx(np.log(2) / 2, rel=1e-5)


def test_cross_entropy_matches_definition():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    loss, grad = F.softmax_cross_entropy(z, y)
    assert loss == pytest.approx(-np.log(p[np.arange(5), y]).mean(), rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(grad, (p - onehot) / 5, rtol=1e-12)
    # label smoothing: targets (1 - s) onehot + s / C
    s = 0.3
    loss_s, _ = F.softmax_cross_entropy(z, y, label_smoothing=s)
    q = (1 - s) * onehot + s / 4
    assert loss_s == pytest.approx(-(q * np.log(p)).sum(1).mean(), rel=1e-12)
    # class weights: weighted mean over the batch
    w = np.array([1.0, 2.0, 3.0, 0.5])
    loss_w, _ = F.softmax_cross_entropy(z, y, class_weights=w)
    nll = -np.log(p[np.arange(5), y])
    assert loss_w == pytest.approx((w[y] * nll).sum() / w[y].sum(), rel=1e-12)


def test_cross_entropy_matches_pytorch_when_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z = rng.standard_normal((7, 5))
    y = rng.integers(0, 5, 7)
    w = rng.uniform(0.5, 2, 5)
    for s, weights in [(0.0, None), (0.1, None), (0.0, w), (0.2, w)]:
        zt = torch.tensor(z, requires_grad=True)
        ref = torch.nn.functional.cross_entropy(
            zt, torch.tensor(y), weight=None if weights is None else torch.tensor(weights), label_smoothing=s)
        ref.backward()
        loss, grad = F.softmax_cross_entropy(z, y, label_smoothing=s, class_weights=weights)
        assert loss == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_bce_with_logits_stable_and_correct():
    z = np.array([[-1e4, 0.0, 1e4, 2.0]])
    t = np.array([[0.0, 1.0, 1.0, 0.0]])
    loss, grad = F.bce_with_logits(z, t)
    expected = np.array([0.0, np.log(2), 0.0, np.log1p(np.exp(2.0))]).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isfinite(grad))


def test_hinge_matches_loop():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    expected = sum(max(0, s[i, j] - s[i, y[i]] + 1) for i in range(6) for j in range(4) if j != y[i]) / 6
    assert F.multiclass_hinge(s, y)[0] == pytest.approx(expected)


def test_maxpool_tie_rule_first_maximum():
    """With ties (common after ReLU) the whole gradient goes to the first max in row-major order."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[5.0, 5.0], [1.0, 5.0]]
    out, cache = F.maxpool2d_forward(x, 2, 2)
    dx = F.maxpool2d_backward(np.ones_like(out), cache)
    expected = np.zeros((4, 4))
    expected[0, 0] = 1      # all-zero window: first position
    expected[0, 2] = 1
    expected[2, 0] = 1
    expected[2, 2] = 1      # 5, 5 / 1, 5: the first 5
    np.testing.assert_array_equal(dx[0, 0], expected)
    assert dx.sum() == out.size


def test_dropout_expectation_and_eval_identity():
    x = np.ones((200, 500), dtype=np.float32)
    layer = nn.Dropout(0.3, rng=np.random.default_rng(0))
    y = layer.forward(x)
    assert y.dtype == np.float32
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01                       # p is the DROP probability
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)   # inverted scaling
    assert abs(y.mean() - 1.0) < 0.01                          # expectation preserved
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)  # same mask in backward
    layer.eval()
    assert layer.forward(x) is x or np.array_equal(layer.forward(x), x)


def test_dropout_is_reproducible_with_a_seed():
    x = np.ones((10, 10))
    a = nn.Dropout(0.5, rng=3).forward(x)
    b = nn.Dropout(0.5, rng=3).forward(x)
    np.testing.assert_array_equal(a, b)


def test_batchnorm_running_stats_follow_pytorch_momentum():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3, momentum=0.1, dtype=np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
        bn.forward(x)
        m = x.mean(axis=(0, 2, 3))
        v_unbiased = x.var(axis=(0, 2, 3), ddof=1)
        rm = 0.9 * rm + 0.1 * m
        rv = 0.9 * rv + 0.1 * v_unbiased
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12)
    # eval mode uses the running statistics and does not change them
    # (the engine sums by BLAS, so the statistics equal NumPy's mean/var to rounding, not bit for bit)
    bn.eval()
    before_mean, before_var = bn.running_mean.copy(), bn.running_var.copy()
    x = rng.standard_normal((2, 3, 5, 5))
    out = bn.forward(x)
    np.testing.assert_allclose(out, (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5))
    np.testing.assert_array_equal(bn.running_mean, before_mean)
    np.testing.assert_array_equal(bn.running_var, before_var)


def test_batchnorm_matches_pytorch_when_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 4, 4))
    dout = rng.standard_normal(x.shape)
    ours = nn.BatchNorm2d(3, dtype=np.float64)
    ref = torch.nn.BatchNorm2d(3).double()
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dout))
    y = ours.forward(x)
    dx = ours.backward(dout)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, ref.weight.grad.numpy(), rtol=1e-10)


def test_backward_twice_gives_same_input_gradient_and_does_not_mutate_dout():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64), nn.BatchNorm2d(3, dtype=np.float64),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 4, rng=rng, dtype=np.float64))
    x = rng.standard_normal((3, 2, 4, 4))
    out = model.forward(x)
    dout = rng.standard_normal(out.shape)
    keep = dout.copy()
    model.zero_grad()
    dx1 = model.backward(dout)
    g1 = {n: p.grad.copy() for n, p in model.named_parameters()}
    dx2 = model.backward(dout)
    np.testing.assert_array_equal(dout, keep)
    np.testing.assert_array_equal(dx1, dx2)
    for n, p in model.named_parameters():   # gradients accumulate (PyTorch's convention)
        np.testing.assert_allclose(p.grad, 2 * g1[n], rtol=1e-12)


def test_frozen_parameters_get_no_gradient():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 3, rng=rng), nn.ReLU(), nn.Linear(3, 2, rng=rng))
    model[0].freeze()
    before = model[0].weight.data.copy()
    out = model.forward(rng.standard_normal((5, 4)).astype(np.float32))
    model.backward(np.ones_like(out))
    assert not model[0].weight.trainable
    assert np.all(model[0].weight.grad == 0) and np.all(model[0].bias.grad == 0)
    assert np.any(model[2].weight.grad != 0)
    np.testing.assert_array_equal(model[0].weight.data, before)
    assert len(model.trainable_parameters()) == 2


def test_softmax_backward_is_jacobian_vector_product():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    s, cache = F.softmax_forward(x)
    v = rng.standard_normal((3, 5))
    dx = F.softmax_backward(v, cache)
    for i in range(3):
        jac = np.diag(s[i]) - np.outer(s[i], s[i])
        np.testing.assert_allclose(dx[i], jac.T @ v[i], rtol=1e-12)


def test_initializers_use_conv_fan_in():
    from nnlite import init
    assert init.fan_in_out((64, 32, 3, 3)) == (32 * 9, 64 * 9)
    assert init.fan_in_out((10, 128)) == (128, 10)
    w = init.he_normal((256, 64, 3, 3), rng=0)
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.02)
    g = init.glorot_uniform((300, 200), rng=0, dtype=np.float64)
    assert g.dtype == np.float64
    assert np.abs(g).max() <= np.sqrt(6 / 500)
    np.testing.assert_array_equal(init.he_normal((3, 4), rng=7), init.he_normal((3, 4), rng=7))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_fast_row_path_equals_the_generic_path(training, dtype):
    """In the engine, channel-last memory (what conv/ReLU/pool produce) takes the (M, C) row
    path; NCHW memory the generic (textbook) one. Both give the same numbers, keep the dtype,
    and the row path keeps the input's channel-last layout in its output."""
    from nnlite import fast as F
    from nnlite.fast.layout import rows
    rng = np.random.default_rng(0)
    x_cl = (rng.standard_normal((4, 5, 3, 6)) * 2 + 1).astype(dtype).transpose(0, 3, 1, 2)  # (N,C,H,W) view
    x_nchw = np.ascontiguousarray(x_cl)
    d_cl = rng.standard_normal((4, 5, 3, 6)).astype(dtype).transpose(0, 3, 1, 2)
    gamma, beta = rng.random(6).astype(dtype) + 0.5, rng.random(6).astype(dtype)
    rm, rv = rng.random(6).astype(dtype), rng.random(6).astype(dtype) + 0.5
    assert rows(x_cl) is not None and rows(x_nchw) is None
    o1, c1 = F.batchnorm_forward(x_cl, gamma, beta, training, rm, rv)
    o2, c2 = F.batchnorm_forward(x_nchw, gamma, beta, training, rm, rv)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(o1, o2, rtol=tol, atol=tol)
    assert o1.dtype == dtype and o1.transpose(0, 2, 3, 1).flags.c_contiguous
    for dout in (d_cl, np.ascontiguousarray(d_cl)):          # dout in either layout
        g1 = F.batchnorm_backward(dout, c1)
        g2 = F.batchnorm_backward(np.ascontiguousarray(dout), c2)
        for a, b in zip(g1, g2):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10)
    if training:
        for key in ("batch_mean", "batch_var_unbiased"):
            np.testing.assert_allclose(c1[key], c2[key], rtol=tol, atol=tol)
    # (the generic path is gradient-checked in float64 in test_gradcheck_table.py, so
    #  equality to 1e-12 carries that proof over to the row path)
