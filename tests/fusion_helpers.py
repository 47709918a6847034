"""What the fusion tests share: one forward + backward with an engine fusion switch set, and a
bit-for-bit comparison of its results."""
import contextlib

import numpy as np

import nnlite.fast as fast
import nnlite.fast.conv as conv_mod
from nnlite import parallel
from nnlite.fast.pending import PendingGrad


def one_step(model, x, switch, on, training=True, threads=None, seed=3, channel_last_dout=False):
    """(out, dx, parameter gradients, buffers) after one forward + backward with
    ``nnlite.fast.<switch>`` set to ``on`` (restored after), in a ``threads`` block when given;
    dout is seeded, and stored channel-last when asked (as a conv's or pool's dx reaches a layer
    in a model)."""
    old = getattr(fast, switch)
    setattr(fast, switch, on)
    try:
        model.train(training)
        model.zero_grad()
        with parallel.threads(threads) if threads else contextlib.nullcontext():
            out = model.forward(x)
            dout = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
            if channel_last_dout and dout.ndim == 4:
                dout = np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            dx = model.backward(dout)
    finally:
        setattr(fast, switch, old)
    grads = [p.grad.copy() for p in model.parameters() if p.grad is not None]
    buffers = [b.copy() for _, b in model.named_buffers()]
    return out.copy(), None if dx is None else dx.copy(), grads, buffers


def assert_same(a, b):
    """Two ``one_step`` results equal bit for bit, dtypes and dx's memory layout included."""
    out_a, dx_a, g_a, b_a = a
    out_b, dx_b, g_b, b_b = b
    assert out_a.dtype == out_b.dtype and np.array_equal(out_a, out_b)
    assert (dx_a is None) == (dx_b is None)
    if dx_a is not None:
        assert dx_a.dtype == dx_b.dtype and dx_a.strides == dx_b.strides and np.array_equal(dx_a, dx_b)
    assert len(g_a) == len(g_b) and all(u.dtype == v.dtype and np.array_equal(u, v) for u, v in zip(g_a, g_b))
    assert len(b_a) == len(b_b) and all(np.array_equal(u, v) for u, v in zip(b_a, b_b))


def record_pending_grads(monkeypatch):
    """A list that gets, per engine conv backward call from now on (``monkeypatch`` undoes the
    spy), whether it received a ``PendingGrad``."""
    seen = []
    real = conv_mod.conv2d_backward

    def spy(dout, *a, **k):
        seen.append(isinstance(dout, PendingGrad))
        return real(dout, *a, **k)
    monkeypatch.setattr(fast, "conv2d_backward", spy)
    return seen
