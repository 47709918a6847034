"""Kernels chunked inside ``parallel.threads()`` blocks: over the batch axis ReLU, max and
average pooling, batch norm; over the features (W's rows or columns) dense.

For each: inside ``threads(2)`` the parallel path really runs (several chunks reach
``run_chunks``), its forward and backward results equal the sequential ones (bit for bit for
the element-wise kernels: ReLU, pools; to the last bits for the dense GEMMs and the batch-norm
sums), keep float32/float64, keep the memory layout (strides) of the sequential results, share
memory with the inputs exactly where the sequential results do, and are bit-identical between
runs. Batch sizes 1, 2, 3, 7 (uneven splits; 1 stays sequential, except for dense); channel-last and C-contiguous
NCHW inputs. The size thresholds are lowered so that small test arrays take the parallel path.
The gradient-check table is also run inside a block."""
import numpy as np
import pytest

from nnlite import parallel
from nnlite.fast import chunks as _chunks
from nnlite.fast import activations as act_mod
from nnlite.fast import batchnorm as bn_mod
from nnlite.fast import conv as conv_mod
from nnlite.fast import linear as lin_mod
from nnlite.fast import pool as pool_mod
from nnlite.gradcheck import DEFAULT_TOL, check_module

from specs import LAYER_SPECS

BATCHES = [1, 2, 3, 7]
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _restore_default():
    yield
    parallel.set_num_threads(None)


@pytest.fixture
def small_work(monkeypatch):
    """Parallel path for tiny arrays too: no size threshold, one sample per chunk."""
    monkeypatch.setattr(_chunks, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(pool_mod, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(bn_mod, "MIN_PARALLEL_SIZE", 0)
    monkeypatch.setattr(lin_mod, "MIN_PARALLEL_MACS", 0)
    monkeypatch.setattr(pool_mod, "CHUNK_BYTES", 1)
    monkeypatch.setattr(bn_mod, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_mod, "CHUNK_MIN_ROWS", 0)


@pytest.fixture
def regions(monkeypatch):
    """Records the number of chunks of every run_chunks call of the kernels under test."""
    seen = []
    for mod in (act_mod, pool_mod, lin_mod, bn_mod):
        real = mod.run_chunks

        def spy(work, chunks, *a, _real=real, **k):
            chunks = list(chunks)
            seen.append(len(chunks))
            return _real(work, chunks, *a, **k)
        monkeypatch.setattr(mod, "run_chunks", spy)
    return seen


def _channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _layout(a, layout):
    return _channel_last(a) if layout == "channel_last" else np.ascontiguousarray(a)


def _arrays(res):
    """The arrays in a kernel's result (tuples and caches flattened, dict values included)."""
    if isinstance(res, np.ndarray):
        return [res]
    if isinstance(res, dict):
        res = list(res.values())
    if isinstance(res, (tuple, list)):
        return [a for r in res for a in _arrays(r)]
    return []


def _compare(run, inputs, dtype, exact):
    """run() sequential vs inside threads(2), twice; returns the parallel results."""
    seq = run()
    with parallel.threads(2):
        par = run()
        par2 = run()
    seq_a, par_a, par2_a = _arrays(seq), _arrays(par), _arrays(par2)
    assert len(seq_a) == len(par_a)
    for s, p, p2 in zip(seq_a, par_a, par2_a):
        assert p.dtype == s.dtype and p.shape == s.shape and p.strides == s.strides
        assert np.array_equal(p, p2)                                   # deterministic
        if exact or not np.issubdtype(s.dtype, np.floating):
            assert np.array_equal(p, s)
        else:
            tol = 1e-5 if dtype == np.float32 else 1e-12
            assert np.allclose(p, s, rtol=tol, atol=tol)
        for x in inputs:                          # aliasing of the inputs as sequentially
            assert np.shares_memory(p, x) == np.shares_memory(s, x)
    float_results = [p for p in par_a if np.issubdtype(p.dtype, np.floating)]
    assert float_results and all(p.dtype == dtype for p in float_results)
    fresh = [p for p in par_a if not any(np.shares_memory(p, x) for x in inputs)]
    for a in fresh:                               # the two runs never share fresh results
        for b in par2_a:
            assert not np.shares_memory(a, b)
    return par


def _check_regions(regions, n, min_regions=1):
    """The parallel path ran (several chunks) for n >= 2, the sequential one for n == 1."""
    if n == 1:
        assert all(c <= 1 for c in regions)
    else:
        assert sum(c >= 2 for c in regions) >= min_regions


# ----------------------------------------------------------------------------- helpers

def test_split_is_near_equal_ordered_and_complete():
    assert _chunks.split(7, 2) == [(0, 4), (4, 7)]
    assert _chunks.split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert _chunks.split(3, 8) == [(0, 1), (1, 2), (2, 3)]
    assert _chunks.split(5, 0) == [(0, 5)]
    for n in range(1, 30):
        for k in range(1, 9):
            r = _chunks.split(n, k)
            assert r[0][0] == 0 and r[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(r, r[1:]))
            sizes = [b - a for a, b in r]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_batch_chunks_sequential_outside_a_block_and_for_small_work():
    assert _chunks.batch_chunks(128, 1 << 30) is None                # outside a block
    with parallel.threads(2):
        assert _chunks.batch_chunks(1, 1 << 30) is None              # one sample
        assert _chunks.batch_chunks(128, _chunks.MIN_PARALLEL_SIZE - 1) is None
        assert _chunks.batch_chunks(128, _chunks.MIN_PARALLEL_SIZE) == [(0, 64), (64, 128)]
        plan = _chunks.batch_chunks(128, 10_000_000, chunk_size=1_000_000)
        assert len(plan) == 10 and plan[0] == (0, 13)                # 2 workers x 5
        assert parallel.run_chunks(lambda w, c: _chunks.batch_chunks(8, 1 << 30), [0, 1]) == [None, None]
    with parallel.threads(1):
        assert _chunks.batch_chunks(128, 1 << 30) is None


# ----------------------------------------------------------------------------- ReLU

@pytest.mark.parametrize("layout", ["channel_last", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", BATCHES)
def test_relu_parallel_equals_sequential(small_work, regions, n, dtype, layout):
    rng = np.random.default_rng(n)
    x = _layout(rng.standard_normal((n, 3, 5, 4)).astype(dtype), layout)
    x.flat[::7] = 0                                        # exact zeros: sub-gradient 0
    d = _layout(rng.standard_normal(x.shape).astype(dtype), layout)

    def run():
        out, cache = act_mod.relu_forward(x)
        return out, act_mod.relu_backward(d, cache)
    out, dx = _compare(run, [x, d], dtype, exact=True)
    _check_regions(regions, n, min_regions=2 * 2)         # fwd + bwd, sequential and parallel runs
    assert np.array_equal(out, np.maximum(x, 0)) and np.array_equal(dx, d * (x > 0))


def test_relu_mixed_layouts_and_large_threshold(regions):
    rng = np.random.default_rng(0)
    x = _channel_last(rng.standard_normal((4, 8, 128, 64)).astype(np.float32))  # 2^18 elements
    d = rng.standard_normal(x.shape).astype(np.float32)                         # NCHW dout
    out_s, c_s = act_mod.relu_forward(x)
    dx_s = act_mod.relu_backward(d, c_s)
    small = rng.standard_normal((4, 100)).astype(np.float32)                    # below threshold
    with parallel.threads(2):
        out_p, c_p = act_mod.relu_forward(x)
        dx_p = act_mod.relu_backward(d, c_p)
        assert regions == [2, 2]
        act_mod.relu_forward(small)
        assert regions == [2, 2]                               # small: sequential
    assert np.array_equal(out_p, out_s) and out_p.strides == out_s.strides
    assert np.array_equal(dx_p, dx_s) and dx_p.strides == dx_s.strides


# ----------------------------------------------------------------------------- pooling

POOLS = [("max", 2, 2), ("max", 3, 1), ("max", 3, 2), ("max", (2, 3), (1, 2)),
         ("avg", 2, 2), ("avg", 3, 1), ("avg", (2, 3), (1, 2))]


@pytest.mark.parametrize("kind,k,s", POOLS)
@pytest.mark.parametrize("layout", ["channel_last", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", BATCHES)
def test_pool_parallel_equals_sequential(small_work, regions, n, dtype, layout, kind, k, s):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 3, 8, 7)).astype(dtype)
    x[:, :, 2:4] = np.round(x[:, :, 2:4])                 # ties (first-maximum rule)
    x = _layout(x, layout)
    fwd, bwd = ((pool_mod.maxpool2d_forward, pool_mod.maxpool2d_backward) if kind == "max"
                else (pool_mod.avgpool2d_forward, pool_mod.avgpool2d_backward))
    out0, _ = fwd(x, k, s)
    d_same = _layout(rng.standard_normal(out0.shape).astype(dtype), layout)
    d_other = _layout(rng.standard_normal(out0.shape).astype(dtype),
                      "nchw" if layout == "channel_last" else "channel_last")

    def run():
        out, cache = fwd(x, k, s)
        return out, cache, bwd(d_same, cache), bwd(d_other, cache)
    _compare(run, [x, d_same, d_other], dtype, exact=True)
    _check_regions(regions, n, min_regions=3 * 2)


def test_pool_chunks_follow_chunk_bytes(monkeypatch, regions):
    rng = np.random.default_rng(1)
    x = _channel_last(rng.standard_normal((16, 8, 64, 64)).astype(np.float32))   # 2 MiB
    monkeypatch.setattr(pool_mod, "CHUNK_BYTES", 256 << 10)
    seq = pool_mod.maxpool2d_forward(x)
    with parallel.threads(2):
        par = pool_mod.maxpool2d_forward(x)
        small = x[:, :, :32]                                # 1 MiB: under MIN_PARALLEL_SIZE
        assert pool_mod.MIN_PARALLEL_SIZE > small.size
        pool_mod.maxpool2d_forward(small)
    assert regions == [8]                                  # 2 workers x ceil(2048 / (256 * 2))
    assert np.array_equal(seq[0], par[0]) and np.array_equal(seq[1][2], par[1][2])


# ----------------------------------------------------------------------------- dense

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", BATCHES)
def test_linear_parallel_equals_sequential(small_work, regions, n, dtype, grads, bias):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 9)).astype(dtype)
    w = rng.standard_normal((5, 9)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype) if bias else None
    d = rng.standard_normal((n, 5)).astype(dtype)
    need_w, need_x = grads

    def run():
        out, cache = lin_mod.linear_forward(x, w, b)
        return out, lin_mod.linear_backward(d, cache, need_weight_grad=need_w, need_input_grad=need_x)
    out, (dx, dw, db) = _compare(run, [x, w, d] + ([b] if bias else []), dtype, exact=False)
    # split along the features, not the samples: parallel for every batch size, one sample too
    assert len(regions) == 2 * 2 and all(c >= 2 for c in regions)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.allclose(out, x @ w.T + (b if bias else 0), rtol=tol, atol=tol)
    assert (dx is None) == (not need_x) and (dw is None) == (not need_w)
    assert (db is None) == (not (need_w and bias))
    if need_x:
        assert np.allclose(dx, d @ w, rtol=tol, atol=tol)
    if need_w:
        assert np.allclose(dw, d.T @ x, rtol=tol, atol=tol)


def test_linear_threshold(regions):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 128)).astype(np.float32)
    w_small = rng.standard_normal((10, 128)).astype(np.float32)    # 164k MACs: sequential
    w_big = rng.standard_normal((256, 128)).astype(np.float32)     # 4.2M MACs: parallel
    with parallel.threads(2):
        lin_mod.linear_forward(x, w_small, None)
        assert regions == []
        _, cache = lin_mod.linear_forward(x, w_big, None)
        lin_mod.linear_backward(np.ones((128, 256), np.float32), cache)
    assert regions == [2, 4]            # forward: 2 column ranges; backward: 2 of dx + 2 of dW


def test_linear_splits_the_weight_between_workers(monkeypatch):
    """Forward: worker k computes out[:, o0:o1] from its rows w[o0:o1] only (small batches:
    rows o0:o1 of out^T = w[o0:o1] @ x^T); backward: dx's columns i0:i1 from w[:, i0:i1] and
    dW's rows o0:o1 (each worker reads its part of W)."""
    seen = []
    real = lin_mod.np.matmul

    def spy(a, b, out=None):
        seen.append((a.shape, b.shape, out.shape))
        return real(a, b, out=out)
    monkeypatch.setattr(lin_mod.np, "matmul", spy)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2048)).astype(np.float32)           # 1 sample, 4.2M MACs
    w = rng.standard_normal((2050, 2048)).astype(np.float32)
    with parallel.threads(2):
        out, cache = lin_mod.linear_forward(x, w, None)
        dx, dw, _ = lin_mod.linear_backward(np.ones((1, 2050), np.float32), cache)
    monkeypatch.undo()
    assert sorted(seen) == sorted([((1025, 2048), (2048, 1), (1025, 1))] * 2
                                  + [((1, 2050), (2050, 1024), (1, 1024))] * 2
                                  + [((1025, 1), (1, 2048), (1025, 2048))] * 2)
    assert np.allclose(out, x @ w.T, rtol=1e-4, atol=1e-3)
    assert np.allclose(dx, np.ones((1, 2050), np.float32) @ w, rtol=1e-4, atol=1e-3)
    assert np.allclose(dw, np.ones((2050, 1), np.float32) @ x, rtol=1e-6)


@pytest.mark.parametrize("n", [lin_mod.SMALL_BATCH, lin_mod.SMALL_BATCH + 1])
def test_linear_forward_orientation_by_batch_size(monkeypatch, n):
    """Up to SMALL_BATCH samples the split forward computes out^T = W x^T (W untransposed),
    above it x W^T; the same values either way, a C-contiguous result with the bias added."""
    seen = []
    real = lin_mod.np.matmul

    def spy(a, b, out=None):
        seen.append(a.shape)
        return real(a, b, out=out)
    monkeypatch.setattr(lin_mod.np, "matmul", spy)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 2048)).astype(np.float32)
    w = rng.standard_normal((64, 2048)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    with parallel.threads(2):
        out, _ = lin_mod.linear_forward(x, w, b)
    monkeypatch.undo()
    assert sorted(seen) == ([(32, 2048)] * 2 if n <= lin_mod.SMALL_BATCH else [(n, 2048)] * 2)
    assert out.flags.c_contiguous and out.dtype == np.float32
    assert np.allclose(out, x @ w.T + b, rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------------------------- batch norm

@pytest.mark.parametrize("need_w", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["channel_last", "nchw", "2d"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", BATCHES)
def test_batchnorm_parallel_equals_sequential(small_work, regions, n, dtype, layout, training, need_w):
    rng = np.random.default_rng(n)
    shape = (n, 6) if layout == "2d" else (n, 3, 4, 5)
    x = rng.standard_normal(shape).astype(dtype) * 2 + 1
    if layout == "2d":
        if n == 1 and training:      # one value per feature: the layer refuses it, block or not
            from nnlite import nn
            with parallel.threads(2), pytest.raises(ValueError, match="more than one value"):
                nn.BatchNorm1d(6, dtype=dtype).forward(x)
            return
    else:
        x = _layout(x, layout)
    c = shape[1]
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    d_same = rng.standard_normal(shape).astype(dtype)
    d_other = d_same.copy()
    if layout == "channel_last":
        d_same = _channel_last(d_same)
    elif layout == "2d":
        d_other = np.asfortranarray(d_other)              # another layout: copied into rows

    def run():
        out, cache = bn_mod.batchnorm_forward(x, gamma, beta, training, rm, rv)
        return (out, cache, bn_mod.batchnorm_backward(d_same, cache, need_weight_grad=need_w),
                bn_mod.batchnorm_backward(d_other, cache, need_weight_grad=need_w))
    _compare(run, [x, gamma, beta, rm, rv, d_same, d_other], dtype, exact=False)
    _check_regions(regions, n, min_regions=3)             # rows and planes (NCHW) alike


# ----------------------------------------------------------------------------- gradient checks

LAYER_CASES = [(s, mode) for s in LAYER_SPECS for mode in s.modes]


@pytest.mark.parametrize("spec,mode", LAYER_CASES, ids=[f"{s.name}-{m}" for s, m in LAYER_CASES])
def test_layer_gradients_inside_a_block(small_work, spec, mode):
    """The gradient-check table (tests/test_gradcheck_table.py) with every kernel chunked."""
    rng = np.random.default_rng(0)
    module = spec.make(rng, np.float64)
    x = spec.make_input(rng, np.float64)
    with parallel.threads(2):
        report = check_module(module, x, mode=mode, seed=1, max_coords=150)
    assert report.ok, str(report)
    assert report.max_error <= DEFAULT_TOL


def test_training_step_inside_a_block_matches_sequential(regions):
    """A step of a Fashion-MNIST-sized CNN (conv, ReLU, max pool, batch norm, dense, dropout) at
    the real size thresholds: the same loss and gradients inside a block as outside."""
    from nnlite import nn
    from nnlite.losses import SoftmaxCrossEntropy

    def grads():
        rng = np.random.default_rng(0)
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128, rng=rng), nn.ReLU(), nn.Dropout(0.5, rng=rng),
            nn.Linear(128, 10, rng=rng))
        x = rng.random((96, 1, 28, 28), dtype=np.float32)     # batch norm: 2.4M values
        y = rng.integers(0, 10, 96)
        loss = SoftmaxCrossEntropy()
        value = loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        return value, [p.grad.copy() for p in model.parameters()]
    v_seq, g_seq = grads()
    assert regions == []
    with parallel.threads(2):
        v_par, g_par = grads()
    # (batch norm's dx has no region of its own: the conv before it computes it in its chunks)
    assert len(regions) >= 9 and all(c >= 2 for c in regions)
    assert abs(v_seq - v_par) <= 1e-6 * abs(v_seq)
    for a, b in zip(g_seq, g_par):
        assert a.dtype == b.dtype == np.float32
        # float32 sums in another order, amplified by batch norm's backward: relative to scale
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
