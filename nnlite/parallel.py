"""Multi-core kernels: chunks of a batch on Python threads, each with single-threaded BLAS.

Who uses it. The convolution (chunks of about a core's cache), max/avg pooling, ReLU and
batch norm (one chunk of samples per worker; small arrays stay sequential, see
``nnlite.fast.chunks``), and dense layers (one range of features, i.e. one part of W, per
worker: ``nnlite.fast.linear``).

Why. A convolution is a loop over chunks of images: build the chunk's patch matrix (NumPy
copies: one core), multiply it (a BLAS GEMM). With BLAS's own threads the GEMMs use every core
but the copies use one. Running whole chunks (copies + GEMM) on one thread per core instead,
with BLAS single-threaded, runs the copies in parallel too and keeps each chunk's data in one
core's cache (NumPy releases the GIL in copies, arithmetic and BLAS calls). Measured by
``python -m benchmarks`` (benchmarks/RESULTS.md): the conv's GEMM share and the training
steps' throughput both rise.

When. Only inside a ``with nnlite.parallel.threads():`` block (``Trainer.fit``, ``evaluate`` and
``predict`` open one). The block limits BLAS to one thread ONCE, for its whole duration,
and restores it at the end: switching BLAS's thread count per call was measured to cost more
than it gains (OpenBLAS's own worker threads wake up and compete for the cores). Outside a
block every kernel runs sequentially with BLAS's own threads, exactly as without this module.

How many. ``threads(n)``; ``n=None`` takes ``set_num_threads(n)``, else the environment
variable ``NNLITE_NUM_THREADS``, else the number of threads BLAS uses when the block starts
(so ``OPENBLAS_NUM_THREADS=1``, or a sweep's per-worker cap, keeps nnlite sequential too).
BLAS's thread count is read and limited through ``threadpoolctl`` (``pip install
nnlite[fast]``); without it the default is 1 (a block changes nothing) and an explicit
``n > 1`` runs ``n`` workers without limiting BLAS (then set ``OPENBLAS_NUM_THREADS=1``).

Determinism. ``run_chunks(work, chunks)`` splits statically: worker ``t`` of ``T`` gets
``chunks[t::T]`` in order, and partial results are combined in worker order, so results never
depend on timing; they are bit-identical for a given ``T`` (between different ``T`` only the
summation order of a few reductions, e.g. dW over chunks, changes: last-bit differences).
"""
from __future__ import annotations

import contextlib
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_local = threading.local()
_state = {"requested": None, "pool": None, "pool_size": 0, "pool_pid": None, "blas": None,
          "blocks": 0, "saved": None, "workers": 1, "regions": 0}


def _blas_libraries():
    """threadpoolctl controllers of the loaded BLAS libraries ([] without threadpoolctl)."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["blas"] = []
        else:
            _state["blas"] = [lib for lib in ThreadpoolController().lib_controllers
                              if lib.user_api == "blas"]
    return _state["blas"]


def blas_controllable() -> bool:
    """True when nnlite can read and limit BLAS's thread count (``threadpoolctl`` installed
    and a BLAS library found)."""
    return bool(_blas_libraries())


def _check_count(n, what):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def set_num_threads(n) -> None:
    """Default number of workers of ``threads()`` blocks (1 = sequential); ``None`` restores
    the automatic default (``NNLITE_NUM_THREADS``, else BLAS's thread count)."""
    _state["requested"] = None if n is None else _check_count(n, "number of threads")


def default_num_threads() -> int:
    """The number of workers a ``threads()`` block started now would use."""
    if _state["requested"] is not None:
        return _state["requested"]
    env = os.environ.get("NNLITE_NUM_THREADS", "").strip()
    if env:
        try:
            return _check_count(int(env), "NNLITE_NUM_THREADS")
        except ValueError:
            raise ValueError(f"NNLITE_NUM_THREADS must be a positive integer, got {env!r}") from None
    libs = _blas_libraries()
    if not libs:
        return 1
    with _lock:
        if _state["blocks"]:
            return _state["workers"]
    return max(1, max(lib.num_threads for lib in libs))


def num_threads() -> int:
    """Workers ``run_chunks`` uses right now: the enclosing ``threads()`` block's count, 1
    outside any block and inside a worker (no nested parallelism)."""
    if getattr(_local, "in_worker", False):
        return 1
    with _lock:
        return _state["workers"] if _state["blocks"] else 1


@contextlib.contextmanager
def threads(n=None):
    """Run nnlite's chunked kernels on ``n`` worker threads inside this block (see the module
    docstring); BLAS is limited to one thread for the block's duration and restored after,
    also on error. Blocks may nest (the outermost one decides); ``n=1`` is sequential."""
    n = default_num_threads() if n is None else _check_count(n, "number of threads")
    with _lock:
        outer = _state["blocks"] == 0
        if outer:
            _state["workers"] = n
            libs = _blas_libraries() if n > 1 else []
            _state["saved"] = [(lib, lib.num_threads) for lib in libs]
            for lib in libs:
                lib.set_num_threads(1)
        _state["blocks"] += 1
    try:
        yield _state["workers"]
    finally:
        with _lock:
            _state["blocks"] -= 1
            if _state["blocks"] == 0:
                for lib, count in _state["saved"] or ():
                    lib.set_num_threads(count)
                _state["saved"], _state["workers"] = None, 1


def _pool(size):
    """The persistent worker pool (at least ``size`` threads); a new one in a forked child,
    whose copy of the parent's pool has no threads."""
    with _lock:
        if _state["pool_size"] < size or _state["pool_pid"] != os.getpid():
            if _state["pool"] is not None and _state["pool_pid"] == os.getpid():
                _state["pool"].shutdown(wait=False)
            _state["pool"] = ThreadPoolExecutor(size, thread_name_prefix="nnlite-worker")
            _state["pool_size"], _state["pool_pid"] = size, os.getpid()
        return _state["pool"]


def current_worker():
    """(region, worker) while inside ``run_chunks``'s workers, else None: ``region`` counts the
    parallel regions run so far in this process (for profilers and the benchmark's replay)."""
    if getattr(_local, "in_worker", False):
        return _local.region, _local.worker
    return None


def _as_worker(work, worker, items, region):
    _local.in_worker, _local.worker, _local.region = True, worker, region
    try:
        return work(worker, items)
    finally:
        _local.in_worker = False


def run_chunks(work, chunks, threads: int | None = None):
    """Run ``work(worker, my_chunks)`` for each worker; return the results in worker order.

    chunks: a sequence of work items (e.g. (n0, n1) image ranges); worker ``t`` of ``T`` gets
    ``chunks[t::T]``, with ``T = min(threads or num_threads(), len(chunks))``. With ``T == 1``
    this is just ``[work(0, chunks)]`` in the caller's thread. The caller's thread is worker
    0. ``work`` must only write disjoint parts of shared outputs, or return partial results
    for the caller to combine in worker order. If workers raise, the first error (in worker
    order) is re-raised after all of them have stopped.
    """
    chunks = list(chunks)
    t = min(threads or num_threads(), len(chunks))
    if t <= 1:
        return [work(0, chunks)]
    pool = _pool(t - 1)
    with _lock:
        _state["regions"] += 1
        region = _state["regions"]
    futures = [pool.submit(_as_worker, work, i, chunks[i::t], region) for i in range(1, t)]
    errors, results = [], []
    try:
        results.append(_as_worker(work, 0, chunks[0::t], region))
    except BaseException as e:             # still wait for the others before raising
        errors.append(e)
    for f in futures:
        try:
            results.append(f.result())
        except BaseException as e:
            errors.append(e)
    if errors:
        raise errors[0]
    return results
