"""Engine batch norm (nnlite/fast/batchnorm.py) and engine softmax cross-entropy
(nnlite/fast/losses.py) equal the textbook kernels.

* batch norm: forward, backward (need_weight_grad True/False), the cache keys that
  ``batchnorm_running_update`` reads; float64 to 1e-10, float32 dtype kept; channel-last
  (rows, wide element-wise views) and C-contiguous NCHW (planes, with the small ufunc
  buffer), (N, D) C-contiguous, dout in the other layout; training and eval; outside and
  inside a two-worker ``parallel.threads(2)`` block with the chunk and block sizes lowered so
  that several chunks reach the workers and every chunk has several in-cache blocks;
  deterministic inside a block; NumPy's buffer size restored.
* softmax cross-entropy: loss and gradient, label smoothing and class weights, rows whose
  logits need the row-max shift (huge or very negative), the same argument errors; inside a
  block the results are the sequential ones bit for bit; a PyTorch twin.
"""
import numpy as np
import pytest

from nnlite import fast as E
from nnlite import functional as T
from nnlite import parallel
from nnlite.fast import batchnorm as bn_mod
from nnlite.fast import chunks as chunks_mod
from nnlite.fast import losses as ce_mod

TOL = 1e-10


@pytest.fixture(autouse=True)
def _restore_default():
    yield
    parallel.set_num_threads(None)


@pytest.fixture
def small_work(monkeypatch):
    """Inside a block: the parallel path for tiny arrays, one sample per chunk, a few rows
    per in-cache block (so blocks split chunks, and chunks end mid-block)."""
    monkeypatch.setattr(chunks_mod, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(bn_mod, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(ce_mod, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(bn_mod, "CHUNK_BYTES", 1)
    monkeypatch.setattr(bn_mod, "BLOCK_BYTES", 7 * 8 * 8)       # 7 rows of 8 float64 features
    monkeypatch.setattr(bn_mod, "PARALLEL_BLOCK_BYTES", 7 * 8 * 8)
    monkeypatch.setattr(bn_mod, "PLANE_MIN_WIDTH", 0)           # planes: the small ufunc buffer
    monkeypatch.setattr(ce_mod, "BLOCK_BYTES", 3 * 8 * 10)      # 3 rows of 10 float64 logits
    regions = []
    for mod in (bn_mod, ce_mod):
        real = mod.run_chunks

        def spy(work, chunks, *a, _real=real, **k):
            chunks = list(chunks)
            regions.append(len(chunks))
            return _real(work, chunks, *a, **k)
        monkeypatch.setattr(mod, "run_chunks", spy)
    return regions


def _null():
    import contextlib
    return contextlib.nullcontext()


def channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _in_layout(a, layout):
    if layout == "channel_last":
        return channel_last(a)
    if layout == "2d_fortran":
        return np.asfortranarray(a)
    return np.ascontiguousarray(a)


def _close(a, b, tol):
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- batch norm

def _bn_case(layout, dtype, seed=0, mean=1.0):
    rng = np.random.default_rng(seed)
    shape = (6, 8) if layout.startswith("2d") else (5, 8, 3, 4)
    if layout.startswith("2d"):
        shape = (23, 8)
    x = (rng.standard_normal(shape) * 2 + mean).astype(dtype)
    c = shape[1]
    g = (rng.random(c) + 0.5).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm = (rng.standard_normal(c) + mean).astype(dtype)
    rv = (rng.random(c) + 0.5).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    return x, g, b, rm, rv, d


def _bn_run(x, g, b, rm, rv, d, training, need_w):
    out, cache = E.batchnorm_forward(x, g, b, training, rm, rv)
    return out, cache, E.batchnorm_backward(d, cache, need_weight_grad=need_w)


@pytest.mark.parametrize("need_w", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("dout_layout", ["same", "other"])
@pytest.mark.parametrize("layout", ["channel_last", "nchw", "2d"])
def test_batchnorm_engine_equals_textbook_float64(small_work, layout, dout_layout, threads,
                                                  training, need_w):
    x, g, b, rm, rv, d = _bn_case(layout, np.float64)
    xin = _in_layout(x, layout)
    other = {"channel_last": "nchw", "nchw": "channel_last", "2d": "2d_fortran"}[layout]
    din = _in_layout(d, layout if dout_layout == "same" else other)
    with parallel.threads(threads) if threads else _null():
        o1, c1, r1 = _bn_run(xin, g, b, rm, rv, din, training, need_w)
    o2, c2 = T.batchnorm_forward(x, g, b, training, rm, rv)
    r2 = T.batchnorm_backward(d, c2, need_weight_grad=need_w)
    assert _close(o1, o2, TOL)
    assert all(_close(p, q, TOL) for p, q in zip(r1, r2))
    assert (r1[1] is None) == (not need_w) and (r1[2] is None) == (not need_w)
    if layout == "channel_last":                  # the layout is kept
        assert o1.transpose(0, 2, 3, 1).flags.c_contiguous
        assert r1[0].transpose(0, 2, 3, 1).flags.c_contiguous
    if training:
        for key in ("batch_mean", "batch_var_unbiased"):
            assert _close(np.asarray(c1[key]), np.asarray(c2[key]), TOL)
        new1 = T.batchnorm_running_update(rm, rv, c1)
        new2 = T.batchnorm_running_update(rm, rv, c2)
        assert all(_close(p, q, TOL) for p, q in zip(new1, new2))
    if threads:                                   # the workers really ran, in several chunks
        assert sum(k >= 2 for k in small_work) >= 2
    if layout != "2d":                            # 4-D: the fast path ran (rows or planes)
        assert "xhat" not in c1


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("layout", ["channel_last", "nchw", "2d"])
def test_batchnorm_engine_keeps_float32(small_work, layout, threads, training):
    x, g, b, rm, rv, d = _bn_case(layout, np.float32)
    xin, din = _in_layout(x, layout), _in_layout(d, layout)
    with parallel.threads(threads) if threads else _null():
        o1, c1, r1 = _bn_run(xin, g, b, rm, rv, din, training, True)
    o2, c2 = T.batchnorm_forward(x, g, b, training, rm, rv)
    r2 = T.batchnorm_backward(d, c2)
    for p, q in zip((o1, *r1), (o2, *r2)):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-4)
    if training:
        assert c1["batch_mean"].dtype == c1["batch_var_unbiased"].dtype == np.float32


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["channel_last", "nchw", "2d"])
def test_batchnorm_engine_far_from_zero_mean(layout, training):
    """Per-block centred statistics and dx = A*dout + B*x + C keep float64 accuracy when the
    mean is large against the spread."""
    x, g, b, rm, rv, d = _bn_case(layout, np.float64, seed=3, mean=300.0)
    o1, c1, r1 = _bn_run(_in_layout(x, layout), g, b, rm, rv, _in_layout(d, layout), training, True)
    o2, c2 = T.batchnorm_forward(x, g, b, training, rm, rv)
    r2 = T.batchnorm_backward(d, c2)
    assert _close(o1, o2, 1e-9) and all(_close(p, q, 1e-9) for p, q in zip(r1, r2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["channel_last", "nchw"])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_engine_inside_a_block_is_deterministic(small_work, training, layout, dtype):
    """Chunked (two workers) twice: bit-identical; against the sequential kernel: the same up
    to the summation order of the per-feature sums."""
    x, g, b, rm, rv, d = _bn_case(layout, dtype, seed=5)
    xin, din = _in_layout(x, layout), _in_layout(d, layout)
    with parallel.threads(2):
        first = _bn_run(xin, g, b, rm, rv, din, training, True)
        second = _bn_run(xin, g, b, rm, rv, din, training, True)
    assert sum(k >= 2 for k in small_work) >= 4
    sequential = _bn_run(xin, g, b, rm, rv, din, training, True)
    assert np.array_equal(first[0], second[0])
    assert all(np.array_equal(p, q) for p, q in zip(first[2], second[2]))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for p, q in zip((first[0], *first[2]), (sequential[0], *sequential[2])):
        assert p.dtype == q.dtype == dtype and p.strides == q.strides
        np.testing.assert_allclose(p, q, rtol=tol, atol=tol)


def test_batchnorm_engine_views_and_numpy_buffer(monkeypatch):
    """Which fast-path matrix each layout gets (rows with wide element-wise views, planes),
    and NumPy's ufunc buffer size restored after the planes passes."""
    monkeypatch.setattr(bn_mod, "PLANE_MIN_WIDTH", 0)
    x = np.zeros((2, 32, 28, 28), np.float32)
    rows = bn_mod._matrix(channel_last(x))
    assert not rows.planes and rows.a.shape == (2 * 784, 32)
    assert rows.k == 392 and rows.k * 32 >= bn_mod.WIDE_MIN and 784 % rows.k == 0
    assert bn_mod._block_rows(rows, 4, None) % rows.k == 0 and bn_mod._block_rows(rows, 4, [(0, 1)]) % rows.k == 0
    planes = bn_mod._matrix(x)
    assert planes.planes and planes.a.shape == (64, 784) and planes.k == 1
    assert bn_mod._matrix(np.zeros((5, 3), np.float32)).k == 1          # (N, D): one row per sample
    assert bn_mod._matrix(np.asfortranarray(np.zeros((5, 3)))) is None   # other layouts: textbook
    before = np.getbufsize()
    xin, g, b, rm, rv, d = _bn_case("nchw", np.float32)
    seen = []
    real = bn_mod._blocks
    monkeypatch.setattr(bn_mod, "_blocks", lambda r0, r1, step: seen.append((r0, r1)) or real(r0, r1, step))
    _bn_run(xin, g, b, rm, rv, d, True, True)
    assert np.getbufsize() == before
    assert seen == [(0, 5 * 8)] * 4           # every pass over the (N*C) plane rows, no further


def test_batchnorm_engine_refuses_a_dout_of_another_shape():
    x, g, b, rm, rv, d = _bn_case("channel_last", np.float64)
    _, cache = E.batchnorm_forward(channel_last(x), g, b, True, rm, rv)
    with pytest.raises(ValueError, match="dout has shape"):
        E.batchnorm_backward(np.ones((5, 8, 3, 5)), cache)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        E.batchnorm_forward(channel_last(x), g, b, False)


# ----------------------------------------------------------------------------- cross-entropy

def _ce_case(n, c, dtype, seed=0, scale=3.0, extreme=False):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    if extreme and n >= 3:       # rows that overflow / underflow without the row-max shift
        z[0] += 2000
        z[1] -= 2000
        z[2, 0] = 1e4
    y = rng.integers(0, c, n)
    w = rng.uniform(0.2, 2.0, c).astype(dtype)
    return z, y, w


@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("threads", [None, 2])
def test_softmax_ce_engine_equals_textbook_float64(small_work, threads, smoothing, weighted, extreme):
    z, y, w = _ce_case(17, 10, np.float64, extreme=extreme)
    w = w if weighted else None
    with parallel.threads(threads) if threads else _null():
        l1, g1 = E.softmax_cross_entropy(z, y, smoothing, w)
    l2, g2 = T.softmax_cross_entropy(z, y, smoothing, w)
    assert isinstance(l1, float) and abs(l1 - l2) <= TOL * max(1.0, abs(l2))
    assert g1.dtype == np.float64 and _close(g1, g2, TOL)
    if threads:
        assert sum(k >= 2 for k in small_work) >= 1
        l3, g3 = E.softmax_cross_entropy(z, y, smoothing, w)     # sequential: bit for bit
        assert l3 == l1 and np.array_equal(g3, g1)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_ce_engine_keeps_float32(smoothing, weighted):
    z, y, w = _ce_case(64, 100, np.float32, seed=1, scale=5.0, extreme=True)
    w = w if weighted else None
    l1, g1 = E.softmax_cross_entropy(z, y, smoothing, w)
    l2, g2 = T.softmax_cross_entropy(z, y, smoothing, w)
    assert g1.dtype == np.float32 and g1.shape == z.shape
    assert abs(l1 - l2) <= 1e-5 * max(1.0, abs(l2))
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)


def test_softmax_ce_engine_small_and_empty_batches():
    for n in (0, 1, 2):
        z, y, _ = _ce_case(n, 4, np.float64)
        l1, g1 = E.softmax_cross_entropy(z, y, 0.1)
        l2, g2 = T.softmax_cross_entropy(z, y, 0.1)
        assert abs(l1 - l2) <= TOL and _close(g1, g2, TOL)


def test_softmax_ce_engine_refuses_what_the_textbook_refuses():
    z, y, w = _ce_case(5, 4, np.float64)
    bad_calls = [((z, y, 1.0, None), ValueError), ((z, y, -0.1, None), ValueError),
                 ((z, y, 0.0, w[:3]), ValueError), ((z, y, 0.0, np.zeros(4)), ValueError),
                 ((z, np.array([0, 1, 2, 3, 4]), 0.0, None), ValueError),
                 ((z[0], y, 0.0, None), ValueError)]
    for args, err in bad_calls:
        with pytest.raises(err):
            T.softmax_cross_entropy(*args)
        with pytest.raises(err):
            E.softmax_cross_entropy(*args)


def test_softmax_ce_is_an_engine_kernel():
    assert "softmax_cross_entropy" in E.ENGINE_KERNELS
    assert E.softmax_cross_entropy is ce_mod.softmax_cross_entropy
    assert T.softmax_cross_entropy is not ce_mod.softmax_cross_entropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_ce_engine_matches_pytorch(smoothing, weighted):
    torch = pytest.importorskip("torch")
    z, y, w = _ce_case(12, 7, np.float64, seed=2)
    w = w if weighted else None
    loss, grad = E.softmax_cross_entropy(z, y, smoothing, w)
    zt = torch.from_numpy(z).requires_grad_(True)
    lt = torch.nn.functional.cross_entropy(
        zt, torch.from_numpy(y), weight=None if w is None else torch.from_numpy(w),
        label_smoothing=smoothing)
    lt.backward()
    assert abs(loss - lt.item()) <= 1e-10
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=0, atol=1e-10)
