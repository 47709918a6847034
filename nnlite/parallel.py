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
import queue
import threading
import time

_lock = threading.Lock()
_local = threading.local()
_state = {"requested": None, "pool": None, "pool_size": 0, "pool_pid": None, "blas": None,
          "blocks": 0, "saved": None, "workers": 1, "regions": 0, "observer": None}


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


class _WorkerPool:
    """Persistent daemon threads, each fed through its own queue: ``submit(i, fn, args,
    reply)`` hands worker ``i`` a call, whose (i, ok, result or exception) lands in ``reply``.

    Why not ``concurrent.futures.ThreadPoolExecutor``: a region's handoff is on every parallel
    kernel's critical path, and an executor's futures, condition variables and thread-count
    bookkeeping add to it. Measured on the AMD VM of benchmarks/RESULTS.md, an empty two-worker
    region in a loop: 71 us median with the executor, 20 us with a queue per worker. Inside
    training steps the worker's wake-up dominates (it starts 40-75 us after the region, either
    way), so whole steps gained ~1%, within that VM's noise. The caller makes a fresh ``reply``
    queue per region, so concurrent callers, or a region abandoned by an interrupt, never
    receive each other's results.
    """

    def __init__(self, size: int):
        self._inboxes = [queue.SimpleQueue() for _ in range(size)]
        for i, inbox in enumerate(self._inboxes):
            threading.Thread(target=self._serve, args=(i, inbox), name=f"nnlite-worker-{i + 1}",
                             daemon=True).start()

    @staticmethod
    def _serve(i, inbox):
        while True:
            job = inbox.get()
            if job is None:
                return
            fn, args, reply = job
            try:
                reply.put((i, True, fn(*args)))
            except BaseException as e:             # handed to the caller, re-raised there
                reply.put((i, False, e))

    def submit(self, i: int, fn, args, reply) -> None:
        self._inboxes[i].put((fn, args, reply))

    def shutdown(self) -> None:
        """Let every thread finish its queued calls, then end (does not wait)."""
        for inbox in self._inboxes:
            inbox.put(None)


def _pool(size):
    """The persistent worker pool (at least ``size`` threads); a new one in a forked child,
    whose copy of the parent's pool has no threads."""
    with _lock:
        if _state["pool_size"] < size or _state["pool_pid"] != os.getpid():
            if _state["pool"] is not None and _state["pool_pid"] == os.getpid():
                _state["pool"].shutdown()
            _state["pool"] = _WorkerPool(size)
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
    observer = _state["observer"]
    t0 = time.perf_counter() if observer is not None else 0.0
    try:
        return work(worker, items)
    finally:
        _local.in_worker = False
        if observer is not None:
            observer(region, worker, t0, time.perf_counter(), work)


@contextlib.contextmanager
def observe(callback):
    """Inside the block, ``callback(region, worker, t_start, t_end, work)`` is called after each
    worker's share of every parallel region (``time.perf_counter`` seconds; ``work`` is the
    region's function): how ``python -m benchmarks.regions`` measures the handoff costs.
    Process-wide, one observer at a time; outside a block nothing is timed."""
    with _lock:
        if _state["observer"] is not None:
            raise RuntimeError("another parallel.observe() block is active")
        _state["observer"] = callback
    try:
        yield
    finally:
        with _lock:
            _state["observer"] = None


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
    reply = queue.SimpleQueue()
    for i in range(1, t):
        pool.submit(i - 1, _as_worker, (work, i, chunks[i::t], region), reply)
    errors, results = {}, {}
    try:
        results[0] = _as_worker(work, 0, chunks[0::t], region)
    except BaseException as e:             # still wait for the others before raising
        errors[0] = e
    for _ in range(1, t):
        i, ok, value = reply.get()
        (results if ok else errors)[i + 1] = value
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(t)]
