"""``python -m benchmarks.regions``: what handing work to the worker threads costs, per parallel
region of a training step.

A kernel inside a ``parallel.threads()`` block is a *region*: the caller (worker 0) queues the
other workers' chunks, runs its own, then waits for theirs. Per region kind (the kernel's work
function, in step order) this prints the median over the timed steps of:

* ``lag``: how long after worker 0 each other worker starts (its thread's wake-up),
* ``busy``: each worker's own time on its chunks (worker 0 / the slowest other worker),
* ``wait``: how long the slowest other worker ends after worker 0 (worker 0 then waits),
* ``overhead``: the region's wall time (first start to last end) minus the workers' mean busy
  time: what the region costs beyond a perfectly even split with instant handoffs (late
  starts and uneven finishes; the queueing before and the reply after are not included).

At batch 128 the regions are long and these costs are a few percent of a step; at batch 16
they are a large part of it: the reason a small batch costs more per image (the suite's
"small batches" rows). Timings come from ``nnlite.parallel.observe``.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from nnlite import parallel

from .models import INPUTS, nnlite_step_fn


def region_costs(name: str, n: int, steps: int, warmup: int = 5):
    """[(kind, {"lag", "busy0", "busy_other", "wait", "overhead", "wall"} in us)] in step
    order, medians over ``steps`` training steps of model ``name`` at batch ``n``, and the
    median step time (ms)."""
    step, _ = nnlite_step_fn(name, n)
    records = defaultdict(list)               # region -> [(worker, t0, t1, kind)]

    def seen(region, worker, t0, t1, work):
        records[region].append((worker, t0, t1, getattr(work, "__qualname__", "?").split(".")[0]))

    per_kind, step_ms = defaultdict(lambda: defaultdict(list)), []
    with parallel.threads():
        for _ in range(warmup):
            step()
        with parallel.observe(seen):
            for _ in range(steps):
                records.clear()
                t = time.perf_counter()
                step()
                step_ms.append((time.perf_counter() - t) * 1e3)
                for i, region in enumerate(sorted(records)):
                    ws = {w: (t0, t1, kind) for w, t0, t1, kind in records[region]}
                    if 0 not in ws or len(ws) < 2:
                        continue
                    s0, e0, kind = ws[0]
                    others = [v for w, v in ws.items() if w != 0]
                    start, end = min(v[0] for v in ws.values()), max(v[1] for v in ws.values())
                    d = per_kind[(i, kind)]
                    d["lag"].append(max(v[0] for v in others) - s0)
                    d["busy0"].append(e0 - s0)
                    d["busy_other"].append(max(v[1] - v[0] for v in others))
                    d["wait"].append(max(0.0, max(v[1] for v in others) - e0))
                    d["overhead"].append((end - start) - float(np.mean([v[1] - v[0] for v in ws.values()])))
                    d["wall"].append(end - start)
    rows = [(f"{i} {kind}", {k: float(np.median(v)) * 1e6 for k, v in d.items()})
            for (i, kind), d in sorted(per_kind.items())]
    return rows, float(np.median(step_ms))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fmnist_cnn"], choices=sorted(INPUTS))
    p.add_argument("--batches", nargs="+", type=int, default=[16, 128])
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args(argv)
    for name in args.models:
        for n in args.batches:
            rows, step_ms = region_costs(name, n, args.steps)
            total = sum(r["overhead"] for _, r in rows) / 1e3
            print(f"\n{name}, batch {n}: step {step_ms:.2f} ms (median), {len(rows)} parallel regions, "
                  f"their overhead {total:.2f} ms ({100 * total / step_ms:.0f}% of the step)")
            print(f"{'region':40s} | {'lag us':>7s} | {'busy 0 us':>9s} | {'busy 1 us':>9s} | "
                  f"{'wait us':>7s} | {'overhead us':>11s}")
            for kind, r in rows:
                print(f"{kind:40s} | {r['lag']:7.0f} | {r['busy0']:9.0f} | {r['busy_other']:9.0f} | "
                      f"{r['wait']:7.0f} | {r['overhead']:11.0f}")


if __name__ == "__main__":
    main()
