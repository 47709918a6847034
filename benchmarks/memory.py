"""Peak memory of ONE training step, measured in a fresh process per framework and model.

Run as ``python -m benchmarks.memory FRAMEWORK MODEL [--batch N] [--tracemalloc]``; prints one
JSON line. What is measured (imports, model, optimizer and the data batch all exist BEFORE
the baseline, so none of them counts):

* ``rss_peak_delta_mib``: peak resident set size during the step minus the resident set size
  just before it (Linux: /proc/self/status VmHWM, reset through /proc/self/clear_refs). The
  same measure for both frameworks: it sees every byte the process touches, whichever
  allocator holds it. A warm-up step on a 2-image batch runs first so lazy one-time
  initialisation (thread pools, kernel caches) is not counted.
* ``tracemalloc_peak_mib`` (nnlite only, ``--tracemalloc``): Python's tracemalloc peak during
  the step minus the traced size at its start (NumPy reports its array buffers to tracemalloc);
  PyTorch's allocator is invisible to tracemalloc, so it is not measured for PyTorch.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys


def _status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024.0     # kB -> MiB
    return out


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure(framework: str, model: str, batch: int = 128, use_tracemalloc: bool = False) -> dict:
    from .harness import blas_threads, load_torch
    from . import models

    threads = blas_threads()
    if framework == "torch":
        torch = load_torch(threads)
        if torch is None:
            return {"framework": framework, "model": model, "error": "torch not installed"}
        warm, _ = models.torch_step_fn(model, torch, n=2)
        step, _ = models.torch_step_fn(model, torch, n=batch)
    else:
        from nnlite import parallel
        # as during Trainer.fit: inside a threads() block (workers' workspaces count too)
        block = parallel.threads()
        result_threads = block.__enter__()
        warm, _ = models.nnlite_step_fn(model, n=2)
        step, _ = models.nnlite_step_fn(model, n=batch)
    warm()
    del warm
    gc.collect()
    result = {"framework": framework, "model": model, "batch": batch}
    if framework != "torch":
        result["nnlite_threads"] = result_threads
    before = _status()
    reset = _reset_peak()
    if use_tracemalloc:
        import tracemalloc
        tracemalloc.start()
        start, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["tracemalloc_peak_mib"] = (peak - start) / 2 ** 20
    else:
        step()
    after = _status()
    result.update({"rss_before_mib": before["VmRSS"], "rss_peak_mib": after["VmHWM"],
                   "rss_peak_delta_mib": after["VmHWM"] - before["VmRSS"],
                   "peak_reset_ok": reset})
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    p.add_argument("framework", choices=["nnlite", "torch"])
    p.add_argument("model", choices=["fmnist_cnn", "cifar_cnn"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--tracemalloc", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(measure(a.framework, a.model, a.batch, a.tracemalloc)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
