"""``nnlite.no_grad()``: forwards that no backward follows.

Proven here: the fused conv (+ ReLU) + max pool kernel (``conv2d_forward(..., maxpool=...)``)
equals the conv then the pool bit for bit, keeping dtype and memory layout, on every path
(with and without ReLU and bias, overlapping and non-tiling windows, strided, padded, 1x1 and
first-layer convs, one chunk or many, one and two workers); ``Sequential`` uses it under
``no_grad()`` only, only on the engine and only for plain classes; a backward after such a
forward raises before it changes anything, and the next ordinary forward trains as if nothing
happened; the block nests, is per thread and restores its state on errors; the attacks'
``model_eval_state`` restores every piece of forward state (a backward of an earlier forward
still runs after ``predict``)."""
import threading

import numpy as np
import pytest

import nnlite
import nnlite.fast as fast
import nnlite.fast.conv as conv_mod
import nnlite.nn as nn
from nnlite import parallel, use_kernels
from nnlite.attacks import predict
from nnlite.fast.pool import maxpool2d_forward


def channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


KERNEL_CASES = {   # conv weight shape, stride, pad, max pool (kernel, stride), input shape
    "3x3_pool2": ((6, 4, 3, 3), 1, 1, (2, 2), (5, 4, 8, 8)),
    "3x3_pool3s2_overlapping": ((5, 4, 3, 3), 1, 1, (3, 2), (4, 4, 9, 9)),
    "odd_size_pool2_not_tiling": ((6, 4, 3, 3), 1, 1, (2, 2), (3, 4, 9, 7)),
    "5x5_stride2": ((4, 3, 5, 5), 2, 2, (2, 2), (3, 3, 12, 12)),
    "first_layer_1ch": ((8, 1, 3, 3), 1, 1, (2, 2), (6, 1, 10, 10)),
    "first_layer_3ch": ((8, 3, 3, 3), 1, 0, (2, 2), (4, 3, 10, 10)),
    "pointwise": ((6, 4, 1, 1), 1, 0, (2, 2), (3, 4, 6, 6)),
}


@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", ["one", "many"])
@pytest.mark.parametrize("workers", [1, 2])
def test_fused_kernel_equals_conv_then_pool(case, relu, bias, dtype, chunks, workers, monkeypatch):
    if chunks == "many":
        monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)
        monkeypatch.setattr(conv_mod, "CHUNK_MIN_ROWS", 0)
    w_shape, stride, pad, pool, x_shape = KERNEL_CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    if case == "pointwise":
        x = channel_last(x)                          # the whole-batch GEMM path
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    with parallel.threads(workers):
        plain, _ = conv_mod.conv2d_forward(x, w, b, stride, pad, relu=relu)
        expected, _ = maxpool2d_forward(plain, *pool)
        fused, cache = conv_mod.conv2d_forward(x, w, b, stride, pad, relu=relu, maxpool=pool)
    assert cache is None
    assert fused.dtype == dtype and fused.shape == expected.shape
    assert fused.strides == expected.strides                 # channel-last, as the pool's output
    assert np.array_equal(fused, expected)


def cnn(rng, subclass_pool=False):
    pool = type("MyPool", (nn.MaxPool2d,), {"forward": lambda self, x: nn.MaxPool2d.forward(self, x)}) \
        if subclass_pool else nn.MaxPool2d
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),        # conv + ReLU + pool
        nn.Conv2d(6, 8, 3, padding=1, rng=rng), pool(3, 2),                        # conv + pool
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, rng=rng), nn.ReLU()),          # nested, no pool
        nn.Flatten(), nn.Linear(8 * 3 * 3, 5, rng=rng))


@pytest.fixture
def fused_calls(monkeypatch):
    calls = []
    original = nn.Conv2d.forward_maxpool

    def spy(self, x, pool, relu=False):
        calls.append(relu)
        return original(self, x, pool, relu)
    monkeypatch.setattr(nn.Conv2d, "forward_maxpool", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [False, True])
def test_sequential_fuses_under_no_grad_only_and_equals_the_plain_forward(dtype, training, fused_calls):
    rng = np.random.default_rng(1)
    model = cnn(rng).astype(dtype)
    model.train(training)
    x = rng.standard_normal((7, 3, 14, 14)).astype(dtype)
    plain = model.forward(x)
    assert fused_calls == []
    with parallel.threads(2), nnlite.no_grad():
        fused = model.forward(x)
    assert fused_calls == [True, False]                    # conv + ReLU + pool, then conv + pool
    assert fused.dtype == dtype and np.array_equal(fused, plain)


def test_not_fused_on_the_textbook_storey_with_the_switch_off_or_for_a_subclass(fused_calls, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 3, 14, 14)).astype(np.float32)
    model = cnn(rng)
    with use_kernels("textbook"), nnlite.no_grad():
        model.forward(x)
    monkeypatch.setattr(fast, "FUSE_POOL_NO_GRAD", False)
    with nnlite.no_grad():
        model.forward(x)
    assert fused_calls == []
    monkeypatch.setattr(fast, "FUSE_POOL_NO_GRAD", True)
    with nnlite.no_grad():
        cnn(rng, subclass_pool=True).forward(x)
    assert fused_calls == [True]                             # only the first pair: its pool is plain


def test_backward_after_no_grad_forward_raises_and_changes_nothing():
    rng = np.random.default_rng(3)
    model = cnn(rng)
    x = rng.standard_normal((4, 3, 14, 14)).astype(np.float32)
    out = model.forward(x)
    model.backward(np.ones_like(out))                  # some gradient already accumulated
    grads = [p.grad.copy() for p in model.parameters()]
    with nnlite.no_grad():
        out = model.forward(x)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(out))
    assert all(np.array_equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    with pytest.raises(RuntimeError, match="no_grad"):
        model[0].backward(np.ones((4, 6, 14, 14), np.float32))   # the fused conv itself
    with pytest.raises(RuntimeError, match="no_grad"):
        model[2].backward(np.ones((4, 6, 7, 7), np.float32))     # and its pool


def test_an_ordinary_forward_after_no_grad_trains_as_if_nothing_happened():
    def step(model, x, interleave):
        if interleave:
            with nnlite.no_grad():
                model.forward(x[:2])
        model.zero_grad()
        out = model.forward(x)
        dx = model.backward(np.cos(out))
        return dx, [p.grad.copy() for p in model.parameters()]
    x = np.random.default_rng(4).standard_normal((5, 3, 14, 14)).astype(np.float32)
    dx_a, g_a = step(cnn(np.random.default_rng(5)), x, interleave=False)
    dx_b, g_b = step(cnn(np.random.default_rng(5)), x, interleave=True)
    assert np.array_equal(dx_a, dx_b) and all(np.array_equal(a, b) for a, b in zip(g_a, g_b))


def test_no_grad_nests_restores_on_error_and_is_per_thread():
    assert nnlite.is_grad_enabled()
    with nnlite.no_grad():
        with nnlite.no_grad():
            assert not nnlite.is_grad_enabled()
        assert not nnlite.is_grad_enabled()
        seen = []
        t = threading.Thread(target=lambda: seen.append(nnlite.is_grad_enabled()))
        t.start()
        t.join()
        assert seen == [True]
    assert nnlite.is_grad_enabled()
    with pytest.raises(KeyError):
        with nnlite.no_grad():
            raise KeyError("inside")
    assert nnlite.is_grad_enabled()


def test_predict_restores_the_forward_state_a_pending_backward_needs():
    """``predict`` (eval mode, no_grad, another batch size) between a forward and its backward:
    the backward runs and equals the one without ``predict`` in between."""
    def grads(interleave):
        rng = np.random.default_rng(6)
        model = cnn(rng)
        x = rng.standard_normal((6, 3, 14, 14)).astype(np.float32)
        out = model.forward(x)
        if interleave:
            predict(model, rng.standard_normal((9, 3, 14, 14)).astype(np.float32))
        dx = model.backward(np.sin(out))
        return [dx] + [p.grad for p in model.parameters()]
    assert all(np.array_equal(a, b) for a, b in zip(grads(False), grads(True)))


def test_trainer_evaluate_and_predict_run_fused_and_fit_still_trains(fused_calls):
    from nnlite.losses import SoftmaxCrossEntropy
    from nnlite.optim import SGD
    from nnlite.train import Trainer
    rng = np.random.default_rng(7)
    model = cnn(rng)
    x = rng.standard_normal((20, 3, 14, 14)).astype(np.float32)
    y = rng.integers(0, 5, 20)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.01), batch_size=10, rng=0,
                      progress=False)
    logits = trainer.predict_logits(x)
    assert fused_calls and np.array_equal(logits, model.eval().forward(x))
    trainer.evaluate(x, y)
    before = [p.data.copy() for p in model.parameters()]
    history = trainer.fit(x, y, epochs=1, validation_data=(x, y))
    assert np.isfinite(history["val_loss"][0])
    assert any(not np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_forward_maxpool_refuses_the_textbook_storey():
    conv, pool = nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.MaxPool2d(2)
    with use_kernels("textbook"), pytest.raises(RuntimeError, match="engine storey"):
        conv.forward_maxpool(np.zeros((1, 2, 4, 4), np.float32), pool)
