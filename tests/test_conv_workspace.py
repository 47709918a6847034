"""The conv kernels reuse workspace buffers between calls (nnlite.fast.conv._workspace):
that must never alias results. Two consecutive forwards (and backwards) of the same shape
keep their outputs intact; dtypes are preserved (float32 -> float32, float64 -> float64); a
model with two convolutions of the same shape (sharing every workspace) passes a numerical
gradient check; and results never share memory with a workspace or with each other."""
import numpy as np
import pytest

from nnlite import fast as F
from nnlite import nn
from nnlite.fast import conv as conv_mod
from nnlite.functional import reference as ref
from nnlite.gradcheck import check_module


def channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.fixture(params=[1, 1 << 30], ids=["chunked", "one-chunk"])
def chunk_bytes(request, monkeypatch):
    """Small chunks (one image each: every workspace is reused within a call too) or one."""
    monkeypatch.setattr(conv_mod, "CHUNK_BYTES", request.param)
    monkeypatch.setattr(conv_mod, "CHUNK_MIN_ROWS", 0)
    return request.param


def _workspace_arrays():
    return list(getattr(conv_mod._ws, "arrays", {}).values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,stride,pad,c_in", [(3, 1, 1, 3), (3, 2, 1, 4), (1, 1, 0, 4), (2, 1, 0, 1)])
def test_consecutive_calls_keep_results(chunk_bytes, dtype, k, stride, pad, c_in):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, c_in, k, k)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    x1, x2 = (channel_last(rng.standard_normal((3, c_in, 7, 6)).astype(dtype)) for _ in range(2))
    out1, cache1 = F.conv2d_forward(x1, w, b, stride, pad)
    kept1 = out1.copy()
    out2, cache2 = F.conv2d_forward(x2, w, b, stride, pad)        # same shapes: same workspaces
    assert np.array_equal(out1, kept1) and not np.array_equal(out1, out2)
    assert out1.dtype == out2.dtype == dtype
    d1, d2 = (rng.standard_normal(out1.shape).astype(dtype) for _ in range(2))
    g1 = F.conv2d_backward(d1, cache1)
    kept_g1 = [g.copy() for g in g1]
    g2 = F.conv2d_backward(d2, cache2)
    for a, kept in zip(g1, kept_g1):
        assert np.array_equal(a, kept) and a.dtype == dtype
    # and both are right (the later calls did not disturb the earlier caches either)
    for x, d, out, grads in ((x1, d1, out1, g1), (x2, d2, out2, g2)):
        x64 = np.ascontiguousarray(x).astype(np.float64)
        r_out, rc = ref.conv2d_forward_naive(x64, w.astype(np.float64), b.astype(np.float64), stride, pad)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        assert np.allclose(out, r_out, atol=tol)
        for a, r in zip(grads, ref.conv2d_backward_naive(d.astype(np.float64), rc)):
            assert np.allclose(a, r, atol=tol)
    # results never share memory with each other or with any workspace
    results = [out1, out2, *g1, *g2]
    for i, a in enumerate(results):
        for ws in _workspace_arrays():
            assert not np.shares_memory(a, ws)
        for other in results[i + 1:]:
            assert not np.shares_memory(a, other)


def test_interleaved_forwards_before_backwards(chunk_bytes):
    """Two same-shape layers: forward A, forward B, then backward B, backward A (as in a model)."""
    rng = np.random.default_rng(1)
    wa, wb = rng.standard_normal((2, 4, 4, 3, 3))
    xa = rng.standard_normal((2, 4, 5, 5))
    out_a, ca = F.conv2d_forward(xa, wa, None, 1, 1)
    out_b, cb = F.conv2d_forward(out_a, wb, None, 1, 1)
    d = rng.standard_normal(out_b.shape)
    dxb, dwb, _ = F.conv2d_backward(d, cb)
    dxa, dwa, _ = F.conv2d_backward(dxb, ca)
    r_a, rca = ref.conv2d_forward_naive(xa, wa, None, 1, 1)
    r_b, rcb = ref.conv2d_forward_naive(r_a, wb, None, 1, 1)
    rdxb, rdwb, _ = ref.conv2d_backward_naive(d, rcb)
    rdxa, rdwa, _ = ref.conv2d_backward_naive(rdxb, rca)
    for a, r in ((out_b, r_b), (dxb, rdxb), (dwb, rdwb), (dxa, rdxa), (dwa, rdwa)):
        assert np.allclose(a, r, atol=1e-10)


def test_gradcheck_model_with_two_same_shape_convs(chunk_bytes):
    rng = np.random.default_rng(2)
    model = nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1, rng=rng, dtype=np.float64), nn.Tanh(),
        nn.Conv2d(3, 3, 3, padding=1, rng=rng, dtype=np.float64), nn.Tanh(),
        nn.Conv2d(3, 3, 3, padding=1, rng=rng, dtype=np.float64),
        nn.Flatten(), nn.Linear(3 * 5 * 4, 2, rng=rng, dtype=np.float64))
    x = rng.standard_normal((3, 3, 5, 4))
    report = check_module(model, x, seed=3, max_coords=60)
    assert report.ok, str(report)


def test_workspaces_stay_bounded(monkeypatch):
    monkeypatch.setattr(conv_mod, "WORKSPACE_MAX_BYTES", 1 << 16)
    conv_mod.release_workspaces()
    rng = np.random.default_rng(3)
    for size in (8, 9, 10, 11, 12, 13):
        x = rng.standard_normal((2, 3, size, size))
        out, cache = F.conv2d_forward(x, rng.standard_normal((4, 3, 3, 3)), None, 1, 1)
        F.conv2d_backward(np.ones(out.shape), cache)
        total = sum(a.nbytes for a in _workspace_arrays())
        biggest = max(a.nbytes for a in _workspace_arrays())
        assert total <= max(1 << 16, biggest)
    conv_mod.release_workspaces()
    assert _workspace_arrays() == []


def test_layers_of_different_shapes_share_and_reinitialize(chunk_bytes):
    """Layers of different shapes share one buffer per role (the largest layer's size, not the
    sum); each shape change re-runs the role's init (a zero border, a column of ones), so
    alternating layers stay exact."""
    conv_mod.release_workspaces()
    rng = np.random.default_rng(4)
    wa = rng.standard_normal((6, 4, 3, 3))
    wb = rng.standard_normal((5, 6, 3, 3))
    ba, bb = rng.standard_normal(6), rng.standard_normal(5)
    xa = channel_last(rng.standard_normal((3, 4, 7, 6)))
    for _ in range(2):                 # the second round starts from the other layer's shapes
        out_a, ca = F.conv2d_forward(xa, wa, ba, 1, 1)
        out_b, cb = F.conv2d_forward(out_a, wb, bb, 2, 1)
        d = rng.standard_normal(out_b.shape)
        dxb, dwb, dbb = F.conv2d_backward(d, cb)
        dxa, dwa, dba = F.conv2d_backward(dxb, ca)
        r_a, rca = ref.conv2d_forward_naive(np.ascontiguousarray(xa), wa, ba, 1, 1)
        r_b, rcb = ref.conv2d_forward_naive(r_a, wb, bb, 2, 1)
        rdxb, rdwb, rdbb = ref.conv2d_backward_naive(d, rcb)
        rdxa, rdwa, rdba = ref.conv2d_backward_naive(rdxb, rca)
        for a, r in ((out_a, r_a), (out_b, r_b), (dxb, rdxb), (dwb, rdwb), (dbb, rdbb),
                     (dxa, rdxa), (dwa, rdwa), (dba, rdba)):
            assert np.allclose(a, r, atol=1e-10)
    roles = [key[0] for key in conv_mod._ws.arrays]
    assert len(roles) == len(set(roles)), roles            # one buffer per role, not per shape
