"""The fused layer pairs of the engine storey: ``Sequential`` runs ``Conv2d`` + ``ReLU`` and
``BatchNorm1d/2d`` + ``ReLU`` as one kernel (``relu=True``). Proven here: the same outputs,
input gradients, parameter gradients and running statistics as the unfused pairs, bit for bit,
on every path of both kernels; the switch ``nnlite.fast.FUSE_RELU``; the textbook storey never
fuses. (The gradient checks of the fused pairs are rows of the spec table: specs_fused.py.)"""

import numpy as np
import pytest

import nnlite.fast as fast
import nnlite.functional as F
import nnlite.nn as nn
from nnlite import use_kernels

from fusion_helpers import assert_same, one_step


def _run(model, x, fuse, training=True, threads=None, seed=3):
    """Output, input gradient, parameter gradients and buffers after one forward + backward."""
    return one_step(model, x, "FUSE_RELU", fuse, training, threads, seed)


def _twins(make):
    """Two identical models (same seed)."""
    return make(np.random.default_rng(0)), make(np.random.default_rng(0))


CONV_CASES = {
    "3x3_same": dict(cin=8, cout=16, k=3, stride=1, pad=1, shape=(6, 8, 12, 12)),
    "3x3_first_layer": dict(cin=3, cout=8, k=3, stride=1, pad=1, shape=(5, 3, 10, 10)),
    "3x3_stride2": dict(cin=8, cout=12, k=3, stride=2, pad=1, shape=(4, 8, 11, 9)),
    "5x5_wide": dict(cin=40, cout=48, k=5, stride=1, pad=2, shape=(3, 40, 8, 8)),
    "1x1_pointwise": dict(cin=16, cout=8, k=1, stride=1, pad=0, shape=(4, 16, 7, 7)),
    "3x3_valid_nobias": dict(cin=8, cout=8, k=3, stride=1, pad=0, shape=(4, 8, 9, 9), bias=False),
}


@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_relu_fused_equals_unfused(case, dtype, threads):
    c = CONV_CASES[case]

    def make(rng):
        return nn.Sequential(nn.Conv2d(c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["pad"],
                                       bias=c.get("bias", True), rng=rng, dtype=dtype),
                             nn.ReLU(), nn.Conv2d(c["cout"], 4, 3, padding=1, rng=rng, dtype=dtype), nn.ReLU())
    x = np.random.default_rng(1).standard_normal(c["shape"]).astype(dtype)
    x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)     # channel-last input
    for xin in (x, x_last):
        plain, fused = _twins(make)
        assert_same(_run(plain, xin, False, threads=threads), _run(fused, xin, True, threads=threads))


def test_conv_relu_fused_first_layer_without_input_gradient():
    def make(rng):
        m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 36, 3, rng=rng))
        m[0].needs_input_grad = False
        return m
    x = np.random.default_rng(1).standard_normal((4, 3, 6, 6)).astype(np.float32)
    plain, fused = _twins(make)
    a, b = _run(plain, x, False, threads=2), _run(fused, x, True, threads=2)
    assert a[1] is None and b[1] is None
    assert_same(a, b)


BN_CASES = {
    "bn2d_nchw": (lambda d: nn.BatchNorm2d(6, dtype=d), (8, 6, 10, 10), "nchw"),
    "bn2d_channel_last": (lambda d: nn.BatchNorm2d(6, dtype=d), (8, 6, 10, 10), "nhwc"),
    "bn2d_other_layout": (lambda d: nn.BatchNorm2d(6, dtype=d), (8, 6, 10, 10), "strided"),
    "bn2d_large": (lambda d: nn.BatchNorm2d(16, dtype=d), (64, 16, 16, 16), "nhwc"),
    "bn1d": (lambda d: nn.BatchNorm1d(12, dtype=d), (32, 12), "nchw"),
}


def _layout(x, kind):
    if kind == "nhwc":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if kind == "strided":                    # neither C- nor channel-last-contiguous
        return np.repeat(x, 2, axis=-1)[..., ::2]
    return x


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(BN_CASES))
def test_batchnorm_relu_fused_equals_unfused(case, dtype, threads, training, frozen):
    make_bn, shape, kind = BN_CASES[case]

    def make(rng):
        bn = make_bn(dtype)
        bn.running_mean[...] = rng.standard_normal(bn.num_features)
        bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
        bn.bias.data[...] = rng.standard_normal(bn.num_features) * 0.5
        if frozen:                               # no weight gradients: eval mode masks in its one pass
            bn.weight.trainable = bn.bias.trainable = False
        return nn.Sequential(bn, nn.ReLU())
    x = _layout((np.random.default_rng(1).standard_normal(shape) * 2 + 0.3).astype(dtype), kind)
    plain, fused = _twins(make)
    assert_same(_run(plain, x, False, training, threads), _run(fused, x, True, training, threads))


def test_kernels_match_the_textbook_conv_then_relu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 9, 9))
    w, b = rng.standard_normal((6, 8, 3, 3)) * 0.3, rng.standard_normal(6)
    out, cache = fast.conv2d_forward(x, w, b, 1, 1, relu=True)
    ref, ref_cache = F.conv2d_forward(x, w, b, 1, 1)
    np.testing.assert_allclose(out, np.maximum(ref, 0), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = fast.conv2d_backward(dout, cache)
    rdx, rdw, rdb = F.conv2d_backward(dout * (ref > 0), ref_cache)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_batchnorm_kernel_matches_the_textbook_batchnorm_then_relu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 5, 5)) * 2 + 1
    g, b = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)
    out, cache = fast.batchnorm_forward(x, g, b, True, relu=True)
    ref, ref_cache = F.batchnorm_forward(x, g, b, True)
    np.testing.assert_allclose(out, np.maximum(ref, 0), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    got = fast.batchnorm_backward(dout, cache)
    want = F.batchnorm_backward(dout * (ref > 0), ref_cache)
    for u, v in zip(got, want):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def _spy_fusions(monkeypatch):
    calls = []
    for cls in (nn.Conv2d, nn.BatchNorm2d):
        original = cls.forward_relu

        def spy(self, x, original=original):
            calls.append(type(self).__name__)
            return original(self, x)
        monkeypatch.setattr(cls, "forward_relu", spy)
    return calls


def test_sequential_fuses_only_on_the_engine_storey_and_when_switched_on(monkeypatch):
    calls = _spy_fusions(monkeypatch)
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.LeakyReLU(),
                          nn.Conv2d(4, 2, 1, rng=rng), nn.Sigmoid())
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    model.forward(x)
    assert calls == ["BatchNorm2d", "Conv2d"]          # conv+BN and conv+sigmoid are not fused
    calls.clear()
    with use_kernels("textbook"):
        model.forward(x)
    assert calls == []
    monkeypatch.setattr(fast, "FUSE_RELU", False)
    model.forward(x)
    assert calls == []


def test_a_subclass_with_its_own_forward_or_backward_is_not_fused(monkeypatch):
    calls = _spy_fusions(monkeypatch)

    class Doubled(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    class Clipped(nn.Conv2d):
        def backward(self, dout):
            return super().backward(np.clip(dout, -1, 1))

    class Plain(nn.Conv2d):
        pass
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    for cls, fused in ((Doubled, False), (Clipped, False), (Plain, True)):
        calls.clear()
        model = nn.Sequential(cls(2, 3, 3, padding=1, rng=rng), nn.ReLU())
        out = model.forward(x)
        assert calls == (["Plain"] if fused else [])
        if cls is Doubled:
            conv_out = nn.Conv2d.forward(model[0], x) * 2
            np.testing.assert_array_equal(out, np.maximum(conv_out, 0))


def test_fused_relu_layer_passes_the_gradient_through_and_then_runs_alone_again():
    rng = np.random.default_rng(0)
    conv, relu = nn.Conv2d(2, 3, 3, padding=1, rng=rng), nn.ReLU()
    model = nn.Sequential(conv, relu)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    out = model.forward(x)
    assert (out >= 0).all()
    dout = rng.standard_normal(out.shape).astype(np.float32)
    assert relu.backward(dout) is dout                  # the conv's backward applies the mask
    with pytest.raises(ValueError, match="shape"):
        relu.backward(dout[:1])
    y = relu.forward(x)                                  # on its own it is an ordinary ReLU again
    np.testing.assert_array_equal(relu.backward(np.ones_like(y)), (x > 0).astype(np.float32))


def test_forward_relu_refuses_the_textbook_storey():
    conv = nn.Conv2d(2, 3, 3, rng=np.random.default_rng(0))
    with use_kernels("textbook"), pytest.raises(RuntimeError, match="engine"):
        conv.forward_relu(np.zeros((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("threads", [1, 2])
def test_training_with_and_without_fusion_ends_at_the_same_weights(monkeypatch, threads):
    """A whole ``Trainer.fit`` (conv + BN + ReLU blocks, a conv + ReLU, a dense head), fused and
    unfused: the same history and the same weights, bit for bit."""
    from nnlite.losses import SoftmaxCrossEntropy
    from nnlite.optim import SGD
    from nnlite.train import Trainer

    def run(fuse):
        monkeypatch.setattr(fast, "FUSE_RELU", fuse)
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten(),
                              nn.Linear(8 * 16, 12, rng=rng), nn.BatchNorm1d(12), nn.ReLU(),
                              nn.Linear(12, 3, rng=rng))
        x = rng.standard_normal((48, 3, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 48)
        tr = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=16,
                     rng=1, progress=False, threads=threads)
        hist = tr.fit(x, y, epochs=2, val_split=0.25)
        return hist, model.state_dict()
    (h0, s0), (h1, s1) = run(False), run(True)
    assert h0["loss"] == h1["loss"] and h0["val_loss"] == h1["val_loss"]
    assert s0.keys() == s1.keys() and all(np.array_equal(s0[k], s1[k]) for k in s0)
