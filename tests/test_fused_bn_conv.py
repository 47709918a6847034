"""A batch norm's input gradient handed to the ``Conv2d`` before it unwritten (``PendingGrad``):
on the engine storey ``Sequential.backward`` lets the conv's backward compute the rows of the
batch norm's dx chunk by chunk. Proven here: the same input gradients, parameter gradients and
running statistics as with ``nnlite.fast.FUSE_BN_INTO_CONV = False``, bit for bit, on every
path (training, eval, frozen batch norm, fused ReLUs, stride 2, 1x1, first layer, float32 and
float64, one and two workers); that the pending path really runs; the kernel-level contract of
``PendingGrad``; where it must not be used. (Gradient checks: rows ``pending_*`` of
specs_fused.py.)"""

import numpy as np
import pytest

import nnlite.fast as fast
import nnlite.nn as nn
from nnlite import use_kernels
from nnlite.fast.batchnorm import PendingGrad, batchnorm_backward, batchnorm_forward

from fusion_helpers import assert_same, one_step, record_pending_grads


def _run(model, x, defer, training=True, threads=None, seed=3):
    """One forward + backward with pending gradients on or off; dout channel-last, as a conv's
    or pool's dx reaches a batch norm in a model."""
    return one_step(model, x, "FUSE_BN_INTO_CONV", defer, training, threads, seed, channel_last_dout=True)


@pytest.fixture
def pending_seen(monkeypatch):
    """Counts the conv backward calls that received a PendingGrad."""
    return record_pending_grads(monkeypatch)


CASES = {   # Conv2d args (in, out, kernel, stride, padding), input shape, ReLU after the batch norm
    "3x3": ((8, 16, 3, 1, 1), (6, 8, 12, 12), False),
    "3x3_relu": ((8, 16, 3, 1, 1), (6, 8, 12, 12), True),
    "3x3_stride2_relu": ((8, 12, 3, 2, 1), (4, 8, 11, 9), True),
    "5x5_wide": ((40, 48, 5, 1, 2), (3, 40, 8, 8), False),
    "1x1_stride2": ((16, 8, 1, 2, 0), (4, 16, 7, 7), True),
    "first_layer_3ch": ((3, 8, 3, 1, 1), (5, 3, 10, 10), True),
}


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_pending_equals_written_gradient(pending_seen, case, dtype, threads, training, frozen):
    (cin, cout, k, s, p), shape, relu = CASES[case]

    def make():
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=False, rng=rng, dtype=dtype),
                              nn.BatchNorm2d(cout, dtype=dtype), *([nn.ReLU()] if relu else []))
        model[1].running_var[...] = 2.0
        if frozen:                   # eval without weight gradients: batch norm's one-pass backward
            model[1].weight.trainable = model[1].bias.trainable = False
        return model
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    plain = _run(make(), x, False, training, threads)
    assert not any(pending_seen)
    pending = _run(make(), x, True, training, threads)
    assert pending_seen[-1]                       # the conv really got the pending gradient
    assert_same(plain, pending)


@pytest.mark.parametrize("threads", [None, 2])
def test_basic_blocks_and_a_frozen_first_layer(pending_seen, threads):
    """ResNet basic blocks (the batch norms inside the residual branch and the projection
    shortcut) after a stem whose conv skips its input gradient."""
    def make():
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.basic_block(8, 8, rng=rng), nn.basic_block(8, 16, 2, rng=rng),
                              nn.GlobalAvgPool2d(), nn.Linear(16, 3, rng=rng))
        model[0].needs_input_grad = False
        return model
    x = np.random.default_rng(1).standard_normal((6, 3, 12, 12)).astype(np.float32)
    plain = _run(make(), x, False, threads=threads)
    pending_seen.clear()
    assert_same(plain, _run(make(), x, True, threads=threads))
    assert sum(pending_seen) == 6                 # stem, 2 + 2 in the branches, 1 shortcut


def test_no_pending_gradient_where_it_must_not_go(pending_seen):
    """Not after a conv + ReLU pair (a ReLU between them), not into a Conv2d subclass with its own backward, not from a
    batch-norm subclass with its own backward, not on the textbook storey, not when switched off."""
    class MyConv(nn.Conv2d):
        def backward(self, dout):
            assert isinstance(dout, np.ndarray)
            return super().backward(dout)

    class MyBN(nn.BatchNorm2d):
        def backward(self, dout):
            return super().backward(dout)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    for model in (nn.Sequential(MyConv(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4)),
                  nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), MyBN(4))):
        pending_seen.clear()
        _run(model, x, True)
        assert pending_seen == [False]
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4))
    pending_seen.clear()
    with use_kernels("textbook"):
        _run(model, x, True)
    assert pending_seen == []
    _run(model, x, False)
    assert pending_seen == [False]
    # a ReLU between the conv and the batch norm: not adjacent, so no pending gradient
    def make():
        r = np.random.default_rng(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=r), nn.ReLU(), nn.BatchNorm2d(4))
    pending_seen.clear()
    assert_same(_run(make(), x, False), _run(make(), x, True))
    assert pending_seen == [False, False]


@pytest.mark.parametrize("case", ["fused_relu", "pointwise"])
def test_conv_consumes_the_pending_gradient_with_its_relu_or_whole(case):
    """The conv kernel given a PendingGrad masks each chunk's rows with its own fused ReLU's
    derivative, and materializes it where it needs dout whole (a 1x1 conv's whole-batch GEMMs):
    the same results as given dx itself."""
    rng = np.random.default_rng(4)
    cin, k, relu = (3, 3, True) if case == "fused_relu" else (6, 1, False)
    x = np.ascontiguousarray(rng.standard_normal((4, 5, 5, cin)).astype(np.float32)).transpose(0, 3, 1, 2)
    w = rng.standard_normal((6, cin, k, k)).astype(np.float32)
    y, conv_cache = fast.conv2d_forward(x, w, None, 1, k // 2, relu=relu)
    d = np.ascontiguousarray(rng.standard_normal((4, 5, 5, 6)).astype(np.float32)).transpose(0, 3, 1, 2)
    g, b = np.ones(6, np.float32), np.zeros(6, np.float32)
    _, bn_cache = batchnorm_forward(y, g, b, True, np.zeros(6, np.float32), np.ones(6, np.float32))
    pg = batchnorm_backward(d, bn_cache, pending=True)[0]
    dx = batchnorm_backward(d, bn_cache)[0]
    assert isinstance(pg, PendingGrad)
    for got, want in zip(fast.conv2d_backward(pg, conv_cache), fast.conv2d_backward(dx, conv_cache)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training,need_w", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_contract(dtype, training, need_w, relu):
    """batchnorm_backward(pending=True): a PendingGrad whose ``materialize()`` and whose rows,
    in any whole-sample ranges, equal the written dx bit for bit; the same dgamma, dbeta; dx
    itself when the input is not in the rows layout, or when the one-pass backward (eval,
    no weight gradients) gets dout in another layout; the conv refuses a wrong shape."""
    rng = np.random.default_rng(2)
    n, c, h, w = 5, 6, 4, 3
    x = np.ascontiguousarray(rng.standard_normal((n, h, w, c)).astype(dtype)).transpose(0, 3, 1, 2)
    d = np.ascontiguousarray(rng.standard_normal((n, h, w, c)).astype(dtype)).transpose(0, 3, 1, 2)
    g, b = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    _, cache = batchnorm_forward(x, g, b, training, rm, rv, relu=relu)
    dx, dg, db = batchnorm_backward(d, cache, need_w)
    pg, dg2, db2 = batchnorm_backward(d, cache, need_w, pending=True)
    assert isinstance(pg, PendingGrad) and pg.shape == x.shape and pg.dtype == dtype
    assert (dg is None) == (dg2 is None) and (dg is None or (np.array_equal(dg, dg2) and np.array_equal(db, db2)))
    whole = pg.materialize()
    assert whole.strides == dx.strides and np.array_equal(whole, dx)
    rows = np.full((n * h * w, c), np.nan, dtype)
    for n0, n1 in ((0, 2), (2, 3), (3, 5)):
        pg.rows_into(n0 * h * w, n1 * h * w, rows[n0 * h * w:n1 * h * w])
    assert np.array_equal(rows, dx.transpose(0, 2, 3, 1).reshape(-1, c))
    if not training and not need_w:                 # one pass and dout in another layout: written
        other = batchnorm_backward(np.ascontiguousarray(d), cache, need_w, pending=True)[0]
        assert isinstance(other, np.ndarray) and np.array_equal(other, dx)
    nchw = np.ascontiguousarray(x)                  # planes layout: written, not pending
    _, cache = batchnorm_forward(nchw, g, b, training, rm, rv, relu=relu)
    assert isinstance(batchnorm_backward(np.ascontiguousarray(d), cache, need_w, pending=True)[0], np.ndarray)
    wgt = rng.standard_normal((c, 2, 3, 3)).astype(dtype)
    _, conv_cache = fast.conv2d_forward(rng.standard_normal((n, 2, h + 1, w)).astype(dtype), wgt, None, 1, 1)
    with pytest.raises(ValueError, match="shape"):
        fast.conv2d_backward(pg, conv_cache)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_with_and_without_pending_gradients_ends_at_the_same_weights(monkeypatch, threads):
    """A whole ``Trainer.fit`` of a small ResNet (stem, two basic blocks, SGD with momentum),
    with and without pending gradients: the same history and weights, bit for bit."""
    from nnlite.losses import SoftmaxCrossEntropy
    from nnlite.optim import SGD
    from nnlite.train import Trainer

    def run(defer):
        monkeypatch.setattr(fast, "FUSE_BN_INTO_CONV", defer)
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.basic_block(8, 8, rng=rng), nn.basic_block(8, 12, 2, rng=rng),
                              nn.GlobalAvgPool2d(), nn.Linear(12, 3, rng=rng))
        x = rng.standard_normal((48, 3, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 48)
        tr = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=16,
                     rng=1, progress=False, threads=threads)
        return tr.fit(x, y, epochs=2, val_split=0.25), model.state_dict()
    (h0, s0), (h1, s1) = run(False), run(True)
    assert h0["loss"] == h1["loss"] and h0["val_loss"] == h1["val_loss"]
    assert s0.keys() == s1.keys() and all(np.array_equal(s0[k], s1[k]) for k in s0)
