"""nnlite.parallel: chunked kernels on worker threads inside ``threads()`` blocks.

Checked here: static, timing-independent assignment of chunks; errors propagate only after
every worker stopped; BLAS's thread count is limited inside a block and restored after it
(also on error, also when nested); outside a block everything is sequential; bad counts are
refused; and the convolution computed by two workers equals the loop reference, is
bit-identical between runs, keeps float32/float64, and never aliases its results."""
import threading

import numpy as np
import pytest

from nnlite import nn, parallel
from nnlite.fast import conv as conv_mod
from nnlite.functional import reference as ref
from nnlite.gradcheck import check_module


@pytest.fixture(autouse=True)
def _restore_default():
    yield
    parallel.set_num_threads(None)


def test_outside_a_block_everything_is_sequential():
    assert parallel.num_threads() == 1
    seen = parallel.run_chunks(lambda w, items: (w, list(items), threading.get_ident()), range(5))
    assert seen == [(0, [0, 1, 2, 3, 4], threading.get_ident())]


def test_static_interleaved_assignment_and_worker_order():
    with parallel.threads(3) as n:
        assert n == 3 and parallel.num_threads() == 3
        res = parallel.run_chunks(lambda w, items: (w, list(items)), range(8))
    assert res == [(0, [0, 3, 6]), (1, [1, 4, 7]), (2, [2, 5])]
    assert parallel.num_threads() == 1


def test_fewer_chunks_than_workers_and_worker_ids():
    with parallel.threads(4):
        res = parallel.run_chunks(lambda w, items: (w, parallel.current_worker()[1], list(items)), ["a", "b"])
    assert res == [(0, 0, ["a"]), (1, 1, ["b"])]
    assert parallel.current_worker() is None


def test_no_nested_parallelism_inside_workers():
    with parallel.threads(2):
        inner = parallel.run_chunks(lambda w, items: parallel.num_threads(), [0, 1])
    assert inner == [1, 1]


def test_errors_raised_after_all_workers_finished():
    done = []

    def work(worker, items):
        if worker == 1:
            raise KeyError("worker 1 failed")
        threading.Event().wait(0.05)
        done.append(worker)
        return worker
    with parallel.threads(2):
        with pytest.raises(KeyError, match="worker 1 failed"):
            parallel.run_chunks(work, [0, 1, 2, 3])
    assert done == [0]


@pytest.mark.skipif(not parallel.blas_controllable(), reason="needs threadpoolctl and a BLAS it can control")
def test_first_error_in_worker_order_not_in_time_order():
    def work(worker, items):
        if worker == 1:
            threading.Event().wait(0.05)           # fails last in time, first in worker order
            raise KeyError("worker 1 failed")
        if worker == 2:
            raise ValueError("worker 2 failed")
        return worker
    with parallel.threads(3):
        with pytest.raises(KeyError, match="worker 1 failed"):
            parallel.run_chunks(work, [0, 1, 2])
        assert parallel.run_chunks(lambda w, items: w, [0, 1, 2]) == [0, 1, 2]   # pool still fine


def test_concurrent_callers_each_get_their_own_results():
    """Two caller threads share the worker pool: every region's results go back to the
    region that submitted them (each region has its own reply queue)."""
    failures, barrier = [], threading.Barrier(2)

    def caller(tag):
        barrier.wait()
        for i in range(200):
            res = parallel.run_chunks(lambda w, items: (tag, i, w, list(items)), [0, 1, 2, 3])
            if res != [(tag, i, 0, [0, 2]), (tag, i, 1, [1, 3])]:
                failures.append((tag, i, res))
    with parallel.threads(2):
        callers = [threading.Thread(target=caller, args=(tag,)) for tag in "ab"]
        for t in callers:
            t.start()
        for t in callers:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in callers)
    assert failures == []


def test_pool_grows_when_a_block_asks_for_more_workers():
    with parallel.threads(2):
        assert parallel.run_chunks(lambda w, items: w, range(4)) == [0, 1]
    with parallel.threads(4):
        res = parallel.run_chunks(lambda w, items: (w, threading.get_ident()), range(4))
    assert [w for w, _ in res] == [0, 1, 2, 3] and len({ident for _, ident in res}) == 4


def test_blas_limited_inside_block_and_restored_after_error_and_nesting():
    libs = parallel._blas_libraries()
    before = [lib.num_threads for lib in libs]
    with pytest.raises(RuntimeError):
        with parallel.threads(2):
            assert all(lib.num_threads == 1 for lib in libs)
            with parallel.threads(5) as inner:        # nested: the outer block decides
                assert inner == 2
            assert all(lib.num_threads == 1 for lib in libs)
            raise RuntimeError("boom")
    assert [lib.num_threads for lib in libs] == before
    with parallel.threads(1):                        # sequential block leaves BLAS alone
        assert [lib.num_threads for lib in libs] == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="positive integer"):
        parallel.set_num_threads(bad)
    with pytest.raises(ValueError, match="positive integer"):
        with parallel.threads(bad):
            pass


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("NNLITE_NUM_THREADS", "3")
    assert parallel.default_num_threads() == 3
    parallel.set_num_threads(2)                      # an explicit setting wins
    assert parallel.default_num_threads() == 2
    parallel.set_num_threads(None)
    monkeypatch.setenv("NNLITE_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="NNLITE_NUM_THREADS"):
        parallel.default_num_threads()


def _channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.fixture
def small_chunks(monkeypatch):
    """One image per chunk, so a small batch gives every worker several chunks."""
    monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_mod, "CHUNK_MIN_ROWS", 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,stride,pad,c_in", [(3, 1, 1, 1), (3, 1, 1, 3), (3, 1, 1, 8), (3, 2, 1, 6),
                                                (5, 1, 2, 4), (2, 1, 0, 5)])
def test_conv_on_two_workers_equals_loops_and_is_deterministic(small_chunks, dtype, k, stride, pad, c_in):
    rng = np.random.default_rng(7)
    x = _channel_last(rng.standard_normal((7, c_in, 9, 8)).astype(dtype))
    w = rng.standard_normal((4, c_in, k, k)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    seq_out, seq_cache = conv_mod.conv2d_forward(x, w, b, stride, pad)
    d = rng.standard_normal(seq_out.shape).astype(dtype)
    seq_grads = conv_mod.conv2d_backward(d, seq_cache)
    runs = []
    with parallel.threads(2):
        for _ in range(2):
            out, cache = conv_mod.conv2d_forward(x, w, b, stride, pad)
            runs.append((out, *conv_mod.conv2d_backward(d, cache)))
    for a, b_ in zip(runs[0], runs[1]):                     # bit-identical between runs
        assert np.array_equal(a, b_) and a.dtype == dtype
    r_out, rc = ref.conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64),
                                         b.astype(np.float64), stride, pad)
    r_grads = ref.conv2d_backward_naive(d.astype(np.float64), rc)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert np.allclose(runs[0][0], r_out, atol=tol)
    for got, want, seq in zip(runs[0][1:], r_grads, seq_grads):
        assert np.allclose(got, want, atol=tol) and np.allclose(got, seq, atol=tol)
    results = list(runs[0]) + list(runs[1])
    for i, a in enumerate(results):
        for other in results[i + 1:]:
            assert not np.shares_memory(a, other)


def test_gradcheck_of_a_conv_layer_inside_a_block(small_chunks):
    rng = np.random.default_rng(3)
    layer = nn.Conv2d(3, 4, 3, padding=1, rng=rng)
    x = rng.standard_normal((5, 3, 6, 6))
    with parallel.threads(2):
        report = check_module(layer, x)
    assert report.ok, report


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_workers_after_fork():
    """A forked child (multiprocessing's default on Linux) gets a fresh pool: its copy of the
    parent's pool has no threads, and submitting to it would wait forever."""
    import multiprocessing as mp
    with parallel.threads(2):                      # the parent's pool exists now
        parallel.run_chunks(lambda w, items: w, [0, 1])
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        res = pool.apply_async(_child_run_chunks)
        assert res.get(timeout=60) == [(0, [0, 2]), (1, [1, 3])]


def _child_run_chunks():
    with parallel.threads(2):
        return parallel.run_chunks(lambda w, items: (w, list(items)), range(4))


def test_observe_times_each_workers_share_and_allows_one_observer():
    seen = []
    with parallel.threads(2), parallel.observe(lambda *a: seen.append(a)):
        parallel.run_chunks(lambda w, items: None, [0, 1])
        with pytest.raises(RuntimeError, match="another"):
            with parallel.observe(print):
                pass
    parallel.run_chunks(lambda w, items: None, [0, 1])            # not observed any more
    assert sorted(w for _, w, _, _, _ in seen) == [0, 1]
    assert all(t1 >= t0 for _, _, t0, t1, _ in seen) and len({r for r, *_ in seen}) == 1
