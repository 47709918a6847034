"""Static batch-axis chunk plans for the kernels that run through ``nnlite.parallel.run_chunks``.

A kernel asks ``batch_chunks(n, size)`` how to cut its batch (axis 0, ``n`` samples) into
contiguous sample ranges. The answer is ``None`` when it must run its sequential code path
unchanged: outside a ``parallel.threads()`` block or inside a worker (``num_threads() == 1``),
a batch of one sample, or too little work for a thread handoff (~30-100 us) to pay. Otherwise
it is a list of near-equal ``(n0, n1)`` ranges, a multiple of the worker count long (one per
worker, or more when ``chunk_size`` asks for cache-sized chunks), fixed by the shapes alone:
results never depend on timing.
"""
from __future__ import annotations

from ..parallel import num_threads

#: Kernels with less work than this (elements) stay sequential inside a block, unless they
#: pass their own ``min_size``. Below it the handoff to a worker, and two threads issuing short
#: NumPy calls that serialize on the interpreter, cost more than the second core gains
#: (measured, two workers against one, channel-last float32, fwd / bwd: ReLU (16, 64, 14, 14)
#: (200,704 values) 110 / 134 us against 52 / 91; (16, 32, 28, 28) 148 / 207 against 116 / 284;
#: tanh at the same sizes 402 against 285 and 589 against 701 us fwd+bwd). Others: pooling
#: ``pool.MIN_PARALLEL_SIZE``, batch norm ``batchnorm.MIN_PARALLEL_SIZE``, cross-entropy
#: ``losses.MIN_PARALLEL_SIZE``.
MIN_PARALLEL_SIZE = 1 << 18


def split(n: int, k: int):
    """``k`` contiguous near-equal ranges ``[(n0, n1), ...]`` covering ``range(n)`` in order
    (sizes differ by at most one, the larger ones first); ``k`` is clipped to ``[1, n]``."""
    k = max(1, min(int(k), int(n)))
    q, r = divmod(int(n), k)
    bounds = [i * q + min(i, r) for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def batch_chunks(n: int, size: int, min_size: int | None = None, chunk_size: int | None = None):
    """How to cut a batch of ``n`` samples whose kernel handles ``size`` elements (or any
    other work measure) for ``run_chunks``: ``None`` = stay sequential (see the module
    docstring; ``min_size`` defaults to ``MIN_PARALLEL_SIZE``); else ``split(n, k)`` with
    ``k`` the worker count times ``ceil(size / (chunk_size * workers))`` (1 without
    ``chunk_size``), at most ``n``."""
    t = num_threads()
    if t <= 1 or n < 2 or size < (MIN_PARALLEL_SIZE if min_size is None else min_size):
        return None
    per_worker = 1
    if chunk_size:
        per_worker = max(1, -(-int(size) // (int(chunk_size) * t)))
    return split(n, t * per_worker)
