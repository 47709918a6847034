"""A max pool's input gradient handed to the ``Conv2d`` before it unwritten (``PendingGrad``,
``nnlite.fast.pool.MaxPoolPendingGrad``): on the engine storey ``Sequential.backward`` lets the
conv's backward compute the pool's dx chunk by chunk, through the ReLU fused into the conv.
Proven here: the same input and parameter gradients as with ``nnlite.fast.FUSE_POOL_INTO_CONV =
False``, bit for bit, on every path (with and without the ReLU, overlapping and non-tiling
windows, stride 2, 1x1 and first-layer convs, one chunk or many, float32 and float64, one and
two workers, training and eval); that the pending path really runs; the kernel contract; where
it must not be used; and that it takes an activation-sized array off the backward's peak.
(Gradient checks: rows ``pending_*maxpool*`` of specs_fused.py.)"""
import tracemalloc

import numpy as np
import pytest

import nnlite.fast as fast
import nnlite.fast.conv as conv_mod
import nnlite.nn as nn
from nnlite import parallel, use_kernels
from nnlite.fast.pool import MaxPoolPendingGrad, maxpool2d_backward, maxpool2d_forward

from fusion_helpers import assert_same, one_step, record_pending_grads


def _run(model, x, defer, training=True, threads=None):
    return one_step(model, x, "FUSE_POOL_INTO_CONV", defer, training, threads)


@pytest.fixture
def pending_seen(monkeypatch):
    """Records, per conv backward call, whether it received a PendingGrad."""
    return record_pending_grads(monkeypatch)


def channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


CASES = {   # Conv2d (in, out, kernel, stride, padding), ReLU, MaxPool2d (kernel, stride), input shape
    "3x3_relu_pool2": ((4, 6, 3, 1, 1), True, (2, 2), (5, 4, 8, 8)),
    "3x3_pool2": ((4, 6, 3, 1, 1), False, (2, 2), (5, 4, 8, 8)),
    "odd_size_relu_pool2": ((4, 6, 3, 1, 1), True, (2, 2), (3, 4, 9, 7)),       # windows do not tile
    "overlapping_relu_pool3s2": ((4, 5, 3, 1, 1), True, (3, 2), (4, 4, 9, 9)),
    "stride2_relu_pool2": ((4, 6, 3, 2, 1), True, (2, 2), (4, 4, 10, 10)),
    "1x1_relu_pool2": ((6, 5, 1, 1, 0), True, (2, 2), (4, 6, 6, 6)),              # materialized
    "first_layer_relu_pool2": ((3, 8, 3, 1, 1), True, (2, 2), (5, 3, 10, 10)),
}


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_pending_equals_written_gradient(pending_seen, monkeypatch, case, dtype, threads, training, chunked):
    (cin, cout, k, s, p), relu, (pk, ps), shape = CASES[case]
    if chunked:                                  # one image per chunk: many rows_into calls
        monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)
        monkeypatch.setattr(conv_mod, "CHUNK_MIN_ROWS", 0)

    def make():
        rng = np.random.default_rng(0)
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride=s, padding=p, rng=rng, dtype=dtype),
                             *([nn.ReLU()] if relu else []), nn.MaxPool2d(pk, ps))
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    plain = _run(make(), x, False, training, threads)
    assert pending_seen == [False]
    pending = _run(make(), x, True, training, threads)
    assert pending_seen[-1]                      # the conv really got the pending gradient
    assert_same(plain, pending)


@pytest.mark.parametrize("threads", [None, 2])
def test_a_cnn_with_two_blocks(pending_seen, threads):
    """The reference CNNs' shape: [conv-ReLU-conv-ReLU-pool] x 2, dense; the first conv skips dx."""
    def make():
        rng = np.random.default_rng(0)
        first = nn.Conv2d(3, 8, 3, padding=1, rng=rng)
        first.needs_input_grad = False
        return nn.Sequential(first, nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 12, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(12 * 16, 5, rng=rng))
    x = np.random.default_rng(1).standard_normal((6, 3, 16, 16)).astype(np.float32)
    plain = _run(make(), x, False, threads=threads)
    pending = _run(make(), x, True, threads=threads)
    assert pending_seen == [False] * 3 + [True, True, False]     # backward order
    assert_same(plain, pending)


def test_no_pending_gradient_where_it_must_not_go(pending_seen, monkeypatch):
    """Not through a ReLU that is not fused (it needs dout itself), not after another
    activation, not into a Conv2d subclass with its own backward, not from a MaxPool2d subclass
    with its own backward, not on the textbook storey, not when switched off."""
    class MyConv(nn.Conv2d):
        def backward(self, dout):
            assert isinstance(dout, np.ndarray)
            return super().backward(dout)

    class MyPool(nn.MaxPool2d):
        def backward(self, dout):
            return super().backward(dout)

    x = np.random.default_rng(0).standard_normal((4, 3, 6, 6)).astype(np.float32)

    def models():
        rng = np.random.default_rng(0)
        yield nn.Sequential(MyConv(3, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2))
        yield nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.ReLU(), MyPool(2))
        yield nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.Tanh(), nn.MaxPool2d(2))
    for model in models():
        pending_seen.clear()
        _run(model, x, True)
        assert pending_seen == [False]
    monkeypatch.setattr(fast, "FUSE_RELU", False)          # the ReLU runs its own backward
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    pending_seen.clear()
    _run(model, x, True)
    assert pending_seen == [False]
    pending_seen.clear()
    with use_kernels("textbook"):
        _run(model, x, True)
    assert pending_seen == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,stride,size", [(2, 2, (6, 8)), (2, 2, (7, 5)), (3, 2, (7, 7)), (2, 1, (4, 5))])
def test_kernel_contract(dtype, kernel, stride, size):
    """maxpool2d_backward(pending=True) of channel-last x: a PendingGrad whose rows, in any
    whole-sample ranges, and whose ``materialize()`` equal the written dx bit for bit (ties go
    to the first maximum either way); dx itself for NCHW x; rows that cut a sample are refused."""
    rng = np.random.default_rng(2)
    n, c, (h, w) = 5, 3, size
    x = channel_last(rng.integers(-2, 3, (n, c, h, w)).astype(dtype))          # many ties
    out, cache = maxpool2d_forward(x, kernel, stride)
    d = rng.standard_normal(out.shape).astype(dtype)
    dx = maxpool2d_backward(d, cache)
    pg = maxpool2d_backward(d, cache, pending=True)
    assert isinstance(pg, MaxPoolPendingGrad) and pg.shape == x.shape and pg.dtype == dtype
    whole = pg.materialize()
    assert whole.strides == dx.strides and np.array_equal(whole, dx)
    rows = np.full((n * h * w, c), np.nan, dtype)
    for n0, n1 in ((0, 2), (2, 3), (3, 5)):
        got = pg.rows_into(n0 * h * w, n1 * h * w, rows[n0 * h * w:n1 * h * w])
        assert np.shares_memory(got, rows)                # written into the caller's rows
    assert np.array_equal(rows, dx.transpose(0, 2, 3, 1).reshape(-1, c))
    with pytest.raises(ValueError, match="whole samples"):
        pg.rows_into(1, h * w, rows[1:h * w])
    _, nchw_cache = maxpool2d_forward(np.ascontiguousarray(x), kernel, stride)
    assert isinstance(maxpool2d_backward(d, nchw_cache, pending=True), np.ndarray)


def test_pending_gradient_lowers_the_peak_memory():
    """conv (fused ReLU) + max pool, backward: without the pending gradient the pool's dx (the
    conv's dout, as large as the conv's output) and the conv's dx are alive together; with it,
    the traced peak drops by about the size of the conv's output."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16, 32, 32)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2))
    out_bytes = x.nbytes                                  # the conv's output: 1 MiB

    def peak(defer):
        old = fast.FUSE_POOL_INTO_CONV
        fast.FUSE_POOL_INTO_CONV = defer
        try:
            with parallel.threads(1):
                out = model.forward(x)
                dout = np.ones(out.shape, np.float32)
                model.backward(dout)                      # workspaces created
                out = model.forward(x)
                tracemalloc.start()
                model.backward(dout)
                _, top = tracemalloc.get_traced_memory()
                tracemalloc.stop()
        finally:
            fast.FUSE_POOL_INTO_CONV = old
        return top
    assert peak(False) - peak(True) > 0.75 * out_bytes     # measured: 0.9
