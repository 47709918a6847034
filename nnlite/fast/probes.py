"""Profiling seams of the engine: declared hooks, not monkeypatched privates.

The engine's conv routes every matrix product, patch build, dx scatter and parallel region
through a *seam*: a function decorated with ``@seam(name)``. Without a probe a seam is a plain
call. Inside ``with installed(probe):`` every seam call becomes
``probe(name, fn, args, kwargs)``, which must call ``fn(*args, **kwargs)`` (possibly with
wrapped arguments) and return its result: that is how the benchmark records GEMM shapes and
times where a conv's time goes. Seams of ``nnlite.fast.conv``:

    "gemm"          _gemm(a, b, out): out = a @ b, the only matrix products of the conv kernels
    "patches"       _patches(...): a chunk's patch matrix (forward and dW)
    "dout_patches"  _dout_patches(...): the output gradient's patch matrix (dx as a convolution)
    "scatter_add"   _scatter_add(...): one kernel offset's product added into dx
    "region"        run_chunks(work, chunks, threads=None): one parallel region (see nnlite.parallel)

Probes are process-wide (a benchmark runs one at a time); seam calls made by worker threads
reach the same probe, so a probe that sums times must lock.
"""
from __future__ import annotations

import contextlib
import functools

SEAMS = ("gemm", "patches", "dout_patches", "scatter_add", "region")

_probe = None


def seam(name):
    """Decorator: make ``fn`` a seam called ``name`` (see the module docstring)."""
    if name not in SEAMS:
        raise ValueError(f"unknown seam {name!r}; declared seams: {', '.join(SEAMS)}")

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            probe = _probe
            if probe is None:
                return fn(*args, **kwargs)
            return probe(name, fn, args, kwargs)
        call.seam = name
        return call
    return wrap


@contextlib.contextmanager
def installed(probe):
    """Run the block with ``probe(name, fn, args, kwargs)`` called at every seam; one at a time."""
    global _probe
    if not callable(probe):
        raise TypeError(f"probe must be callable as probe(name, fn, args, kwargs), got {type(probe).__name__}")
    if _probe is not None:
        raise RuntimeError("a probe is already installed (probes do not nest)")
    _probe = probe
    try:
        yield probe
    finally:
        _probe = None
