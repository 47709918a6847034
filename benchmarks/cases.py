"""Benchmark cases. Each ``run_*`` function measures one group and returns a list of result
dicts (JSON-ready): the contenders' min/median times and the ratios between them, all taken
from ONE interleaved measurement loop (see ``harness.compare``).

Times are per call unless a row says per image. Contenders:
  loop      the loop reference of ``nnlite.functional.reference`` on a SMALL batch, per image
  textbook  the textbook storey ``nnlite.functional`` (vectorized, sequential: im2col + one GEMM)
  nnlite    the engine storey ``nnlite.fast`` that the layers run (batch 128 unless stated)
  torch   PyTorch on the same shapes (optional), CPU, same thread count as NumPy's BLAS
  gemm    only the GEMM calls nnlite makes for that conv (recorded from a real run: same
          shapes, layouts and order), replayed on preallocated arrays
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from nnlite import fast as F
from nnlite import functional as T
from nnlite import parallel, use_kernels
from nnlite.fast import probes
from nnlite.functional import reference as ref

from . import models
from .harness import compare


@dataclass
class Cfg:
    quick: bool
    repeats: int
    target_s: float
    loop_images: int


def make_cfg(quick: bool) -> Cfg:
    if quick:
        return Cfg(quick=True, repeats=5, target_s=0.03, loop_images=1)
    return Cfg(quick=False, repeats=9, target_s=0.12, loop_images=2)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _channel_last(a):
    """The same NCHW array stored channel-last, as nnlite's conv outputs are."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _row(group, case, cmp, ratios, extra=None, unit="ms"):
    return {"group": group, "case": case, "unit": unit,
            "contenders": {k: {"min_ms": t.min * 1e3, "median_ms": t.median * 1e3}
                           for k, t in cmp.timings.items()},
            "ratios": ratios, "extra": extra or {}, "raw": cmp.as_dict()}


def _ratio(cmp, a, b):
    return {"min": cmp.ratio(a, b, "min"), "median": cmp.ratio(a, b, "median")}


# ----------------------------------------------------------------------------- GEMM rate

def gemm_shapes():
    """The forward im2col GEMM shapes (M, K, N) of the two reference models' convolutions, batch 128."""
    return {
        "fmnist conv1 (1->32, 28x28)": (128 * 28 * 28, 9, 32),
        "fmnist conv2 (32->64, 14x14)": (128 * 14 * 14, 288, 64),
        "cifar conv1 (3->32, 32x32)": (128 * 32 * 32, 27, 32),
        "cifar conv2 (32->32, 32x32)": (128 * 32 * 32, 288, 32),
        "cifar conv3 (32->64, 16x16)": (128 * 16 * 16, 288, 64),
        "cifar conv4 (64->64, 16x16)": (128 * 16 * 16, 576, 64),
    }


def run_gemm(cfg):
    """float32 GEMM rate: a square 2048 GEMM (the machine's practical peak) interleaved with
    the models' im2col GEMM shapes; each shape as a fraction of the peak."""
    rng = _rng(1)
    fns, flops = {}, {}
    n = 2048
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    fns["square 2048"] = lambda: np.matmul(a, b, out=c)
    flops["square 2048"] = 2.0 * n ** 3
    shapes = gemm_shapes()
    if cfg.quick:
        shapes = {k: v for k, v in shapes.items() if "conv2" in k}
    for name, (m, k, nn_) in shapes.items():
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((k, nn_), dtype=np.float32)
        o = np.empty((m, nn_), dtype=np.float32)
        fns[name] = (lambda x=x, w=w, o=o: np.matmul(x, w, out=o))
        flops[name] = 2.0 * m * k * nn_
    cmp = compare("gemm", fns, repeats=cfg.repeats, target_s=cfg.target_s)
    peak = flops["square 2048"] / cmp.timings["square 2048"].min
    rows = []
    for name in fns:
        rate = flops[name] / cmp.timings[name].min
        rate_med = flops[name] / cmp.timings[name].median
        peak_med = flops["square 2048"] / cmp.timings["square 2048"].median
        rows.append({"group": "gemm", "case": name, "unit": "GFLOP/s",
                     "gflops_min_time": rate / 1e9, "gflops_median_time": rate_med / 1e9,
                     "shape_mkn": list(shapes.get(name, (n, n, n))),
                     "ratios": {"fraction_of_peak": {"min": rate / peak, "median": rate_med / peak_med}},
                     "raw": cmp.as_dict()})
    return rows, peak


# ----------------------------------------------------------------------------- convolutions

#: (name, batch, C_in, H, W, C_out, kernel, stride, pad)
CONV_SHAPES = [
    ("mnist 1->32 28x28 k3 p1", 128, 1, 28, 28, 32, 3, 1, 1),
    ("mnist 32->64 14x14 k3 p1", 128, 32, 14, 14, 64, 3, 1, 1),
    ("cifar 3->32 32x32 k3 p1", 128, 3, 32, 32, 32, 3, 1, 1),
    ("cifar 32->32 32x32 k3 p1", 128, 32, 32, 32, 32, 3, 1, 1),
    ("cifar 32->64 16x16 k3 p1", 128, 32, 16, 16, 64, 3, 1, 1),
    ("cifar 64->64 16x16 k3 p1", 128, 64, 16, 16, 64, 3, 1, 1),
    ("stride 2: 32->64 32x32 k3 s2 p1", 128, 32, 32, 32, 64, 3, 2, 1),
    ("no pad: 32->64 16x16 k3 p0", 128, 32, 16, 16, 64, 3, 1, 0),
    ("1x1: 64->32 16x16", 128, 64, 16, 16, 32, 1, 1, 0),
    ("5x5: 1->32 28x28 k5 p2", 128, 1, 28, 28, 32, 5, 1, 2),
    ("5x5: 32->64 14x14 k5 p2", 128, 32, 14, 14, 64, 5, 1, 2),
]
QUICK_CONV = {"mnist 32->64 14x14 k3 p1", "cifar 32->64 16x16 k3 p1", "stride 2: 32->64 32x32 k3 s2 p1",
              "1x1: 64->32 16x16", "5x5: 32->64 14x14 k5 p2"}


def _layout(a):
    """(shape, strides, dtype, data address): the replay gives operands that were the same
    memory in the real call the same array (workspaces reused chunk after chunk stay in cache
    there as here), and distinct memory distinct arrays (output rows, dout rows
    stream from memory there as here)."""
    return a.shape, a.strides, a.dtype.str, a.__array_interface__["data"][0]


def _record_gemms(conv_fn):
    """The GEMM calls ``conv_fn()`` makes through the engine's "gemm" seam (the only place its
    conv kernels multiply matrices; see ``nnlite.fast.probes``), as [(where, a layout, b
    layout, out layout)], layout = (shape, strides, dtype), where = (parallel region, worker)
    for calls made by the workers of ``nnlite.parallel.run_chunks`` (single-threaded BLAS),
    None for calls made outside."""
    calls = []

    def probe(name, fn, args, kwargs):
        if name == "gemm":
            a, b, out = args
            calls.append((parallel.current_worker(), _layout(a), _layout(b), _layout(out)))
        return fn(*args, **kwargs)
    with probes.installed(probe):
        conv_fn()
    return calls


def _strided_like(layout, rng):
    """A preallocated random array with exactly that shape, strides (incl. negative-free
    transposed / sliced views) and dtype."""
    shape, strides, dt = layout[:3]
    itemsize = np.dtype(dt).itemsize
    span = sum((n - 1) * st for n, st in zip(shape, strides)) // itemsize + 1
    base = rng.standard_normal(span).astype(dt)
    return np.lib.stride_tricks.as_strided(base, shape=shape, strides=strides)


def _conv_gemm_calls(conv_fn):
    """A zero-argument function making exactly the GEMM calls of ``conv_fn`` (nnlite's conv
    forward + backward), recorded from a real run: same shapes, same operand layouts
    (transposed, sliced), in the same order, on preallocated arrays (one per distinct memory
    block of the real call: workspaces reused chunk after chunk are one array here too, fresh
    memory is fresh here too), and its FLOP count. Calls the conv made inside a parallel region are replayed the same
    way: each worker's calls, in its order, on as many threads through
    ``nnlite.parallel.run_chunks`` (so with single-threaded BLAS); calls made outside are
    replayed outside (BLAS's own threads)."""
    calls = _record_gemms(conv_fn)
    rng = _rng(2)
    arrays = {}

    def get(layout, role, worker):
        key = layout                              # same memory -> same array (see _layout)
        if key not in arrays:
            arrays[key] = _strided_like(layout, rng)
        return arrays[key]
    steps = []                     # [(None, [calls]) | (region, {worker: [calls]})], in order
    for where, a, b, o in calls:
        worker = None if where is None else where[1]
        call = (get(a, "a", worker), get(b, "b", worker), get(o, "out", worker))
        region = None if where is None else where[0]
        if not steps or steps[-1][0] != region:
            steps.append((region, {}))
        steps[-1][1].setdefault(worker, []).append(call)
    plan = []
    for region, by_worker in steps:
        if region is None:
            plan.append((None, by_worker[None]))
        else:
            plan.append((region, [by_worker[w] for w in sorted(by_worker)]))

    def replay(worker, lists):
        for lst in lists:
            for a, b, o in lst:
                np.matmul(a, b, out=o)

    def gemms():
        for region, work in plan:
            if region is None:
                for a, b, o in work:
                    np.matmul(a, b, out=o)
            else:
                parallel.run_chunks(replay, work, threads=len(work))
    flops = sum(2.0 * a[0][0] * a[0][1] * b[0][1] for _, a, b, _ in calls)
    return gemms, flops


#: the engine's seams the profile times, by the share they are reported under (else "other")
PROFILED = {"GEMM": ("gemm",), "patches": ("patches", "dout_patches"), "dx scatter": ("scatter_add",)}


def conv_profile(conv_fn, target_s=0.3):
    """Where the time of ``conv_fn()`` (a conv forward + backward) goes: calls it repeatedly
    for about ``target_s`` with a probe (``nnlite.fast.probes``) timing the engine's GEMM,
    patch-building and dx-scatter seams, and each worker of its parallel regions. Times are
    summed over threads ("thread time": the workers' busy time plus the caller's time outside
    the regions), so the shares add up whatever the thread count. -> per call:
    {"total_ms" (wall), "threads_ms" (thread time), "GEMM_ms", "patches_ms", "dx scatter_ms",
    "other_ms"}; other = bias, db GEMV, dW accumulation, zero fill of dx chunks, result
    allocation, Python overhead (and the timers' own ~1 us per seam call)."""
    import threading
    import time
    lock = threading.Lock()
    spent = {k: 0.0 for k in PROFILED}
    spent_regions = {"busy": 0.0, "wall": 0.0}
    share_of = {seam: k for k, seams in PROFILED.items() for seam in seams}

    def timed_work(work):
        def run(worker, items):
            t0 = time.perf_counter()
            try:
                return work(worker, items)
            finally:
                dt = time.perf_counter() - t0
                with lock:
                    spent_regions["busy"] += dt
        return run

    def probe(name, fn, args, kwargs):
        t0 = time.perf_counter()
        if name == "region":
            args = (timed_work(args[0]),) + tuple(args[1:])
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            with lock:
                if name == "region":
                    spent_regions["wall"] += dt
                else:
                    spent[share_of[name]] += dt
    conv_fn()
    with probes.installed(probe):
        calls, t0 = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - t0 < target_s:
            conv_fn()
            calls += 1
        total = time.perf_counter() - t0
    thread_time = total - spent_regions["wall"] + spent_regions["busy"]
    out = {"total_ms": total / calls * 1e3, "threads_ms": thread_time / calls * 1e3}
    out.update({f"{k}_ms": v / calls * 1e3 for k, v in spent.items()})
    out["other_ms"] = out["threads_ms"] - sum(v / calls * 1e3 for v in spent.values())
    return out


def run_conv(cfg, torch, peak_flops):
    rows = []
    shapes = [s for s in CONV_SHAPES if not cfg.quick or s[0] in QUICK_CONV]
    for name, n, c_in, h, w_, c_out, k, s, p in shapes:
        rng = _rng(3)
        x = rng.standard_normal((n, c_in, h, w_), dtype=np.float32)
        wt = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)
        b = rng.standard_normal(c_out, dtype=np.float32)
        # nnlite gets its input as inside a model: images (1 or 3 channels) as plain NCHW
        # arrays, deeper layers' inputs channel-last (what conv/ReLU/pool return); torch
        # gets its native C-contiguous NCHW.
        x_nn = _channel_last(x) if c_in > 3 else x
        out, cache = F.conv2d_forward(x_nn, wt, b, s, p)
        dout = _channel_last(rng.standard_normal(out.shape, dtype=np.float32))
        nl = cfg.loop_images
        x64 = x[:nl].astype(np.float64)
        w64, b64 = wt.astype(np.float64), b.astype(np.float64)
        _, rcache = ref.conv2d_forward_naive(x64, w64, b64, s, p)
        rd = np.ascontiguousarray(dout[:nl]).astype(np.float64)
        # agreement check on the small batch (float64): the fast kernel equals the loops
        fo, fc = F.conv2d_forward(x64, w64, b64, s, p)
        ro, _ = ref.conv2d_forward_naive(x64, w64, b64, s, p)
        fdx, fdw, _ = F.conv2d_backward(rd, fc)
        rdx, rdw, _ = ref.conv2d_backward_naive(rd, rcache)
        agree = max(float(np.abs(fo - ro).max()), float(np.abs(fdx - rdx).max()),
                    float(np.abs(fdw - rdw).max()))

        _, tcache = T.conv2d_forward(x, wt, b, s, p)
        dout_nchw = np.ascontiguousarray(dout)
        fwd = {"loop": lambda: ref.conv2d_forward_naive(x64, w64, b64, s, p),
               "textbook": lambda: T.conv2d_forward(x, wt, b, s, p),
               "nnlite": lambda: F.conv2d_forward(x_nn, wt, b, s, p)}
        bwd = {"loop": lambda: ref.conv2d_backward_naive(rd, rcache),
               "textbook": lambda: T.conv2d_backward(dout_nchw, tcache),
               "nnlite": lambda: F.conv2d_backward(dout, cache)}

        def nn_both():
            o, c = F.conv2d_forward(x_nn, wt, b, s, p)
            return F.conv2d_backward(dout, c)
        gemms, gemm_flops = _conv_gemm_calls(nn_both)
        both = {"nnlite": nn_both, "gemm": gemms}
        first_layer = c_in <= 3
        if first_layer:
            # as a model's first layer: no gradient for the input images (needs_input_grad=False)
            def nn_first():
                o, c = F.conv2d_forward(x_nn, wt, b, s, p)
                return F.conv2d_backward(dout, c, need_input_grad=False)
            both["nnlite no dx"] = nn_first
            both["gemm no dx"], _ = _conv_gemm_calls(nn_first)
        scale_fb = {"loop": nl, "textbook": n, "nnlite": n, "torch": n}
        if torch is not None:
            xt = torch.from_numpy(x).requires_grad_(True)
            wt_t = torch.from_numpy(wt).requires_grad_(True)
            bt = torch.from_numpy(b).requires_grad_(True)
            dt = torch.from_numpy(np.ascontiguousarray(dout))
            f = torch.nn.functional

            def t_fwd():
                with torch.no_grad():
                    return f.conv2d(xt, wt_t, bt, stride=s, padding=p)
            yt = f.conv2d(xt, wt_t, bt, stride=s, padding=p)

            def t_bwd():
                return torch.autograd.grad(yt, (xt, wt_t, bt), dt, retain_graph=True)

            def t_both():
                y = f.conv2d(xt, wt_t, bt, stride=s, padding=p)
                return torch.autograd.grad(y, (xt, wt_t, bt), dt)
            fwd["torch"], bwd["torch"], both["torch"] = t_fwd, t_bwd, t_both
        loop_n = {"loop": 1}
        cf = compare(f"conv fwd {name}", fwd, repeats=max(3, cfg.repeats // 2), target_s=cfg.target_s,
                     scale=scale_fb, numbers=loop_n)
        cb = compare(f"conv bwd {name}", bwd, repeats=max(3, cfg.repeats // 2), target_s=cfg.target_s,
                     scale=scale_fb, numbers=loop_n)
        cfb = compare(f"conv fwd+bwd {name}", both, repeats=cfg.repeats, target_s=cfg.target_s)
        conv_flops = gemm_flops
        t_conv = cfb.timings["nnlite"]
        extra = {
            "shape": {"batch": n, "c_in": c_in, "h": h, "w": w_, "c_out": c_out, "k": k, "stride": s, "pad": p},
            "loop_images": nl, "max_abs_diff_vs_loop_float64": agree,
            "fwd_per_image_ms": {k_: t.min * 1e3 for k_, t in cf.timings.items()},
            "bwd_per_image_ms": {k_: t.min * 1e3 for k_, t in cb.timings.items()},
            "fwd_bwd_ms": {k_: t.min * 1e3 for k_, t in cfb.timings.items()},
            "gemm_share": {"min": cfb.ratio("gemm", "nnlite", "min"),
                           "median": cfb.ratio("gemm", "nnlite", "median")},
            "gemm_share_first_layer_no_dx": ({"min": cfb.ratio("gemm no dx", "nnlite no dx", "min"),
                                              "median": cfb.ratio("gemm no dx", "nnlite no dx", "median")}
                                             if first_layer else None),
            "gemm_calls": len(_record_gemms(nn_both)),
            "threads": parallel.num_threads(),
            "profile_ms": conv_profile(nn_both, target_s=max(0.1, 3 * cfg.target_s)),
            "fraction_of_peak": {"conv_fwd_bwd": conv_flops / t_conv.min / peak_flops,
                                 "its_gemms": conv_flops / cfb.timings["gemm"].min / peak_flops},
        }
        ratios = {"loop/nnlite fwd (per image)": _ratio(cf, "loop", "nnlite"),
                  "loop/nnlite bwd (per image)": _ratio(cb, "loop", "nnlite"),
                  "loop/textbook fwd (per image)": _ratio(cf, "loop", "textbook"),
                  "loop/textbook bwd (per image)": _ratio(cb, "loop", "textbook"),
                  "textbook/nnlite fwd": _ratio(cf, "textbook", "nnlite"),
                  "textbook/nnlite bwd": _ratio(cb, "textbook", "nnlite")}
        if torch is not None:
            ratios["nnlite/torch fwd"] = _ratio(cf, "nnlite", "torch")
            ratios["nnlite/torch bwd"] = _ratio(cb, "nnlite", "torch")
            ratios["nnlite/torch fwd+bwd"] = _ratio(cfb, "nnlite", "torch")
        row = _row("conv", name, cfb, ratios, extra)
        row["raw_fwd"], row["raw_bwd"] = cf.as_dict(), cb.as_dict()
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- other kernels

def run_kernels(cfg, torch):
    """Max/avg pooling, batch norm, softmax cross-entropy, dense: forward + backward, nnlite vs
    PyTorch. nnlite pools get channel-last input, as in the models (conv -> ReLU -> pool); an
    extra contender shows the same pool on plain C-contiguous NCHW input."""
    rows = []
    rng = _rng(4)
    f = torch.nn.functional if torch is not None else None

    def torch_pair(fwd_fn, inputs, dout):
        ts = [torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(True) for a in inputs]
        dt = torch.from_numpy(np.ascontiguousarray(dout))

        def run():
            y = fwd_fn(*ts)
            return torch.autograd.grad(y, ts, dt)
        return run

    pools = [("maxpool 2x2 s2 (128,32,28,28)", "max", (128, 32, 28, 28), 2, 2),
             ("maxpool 2x2 s2 (128,64,14,14)", "max", (128, 64, 14, 14), 2, 2),
             ("maxpool 3x3 s2 overlapping (128,32,28,28)", "max", (128, 32, 28, 28), 3, 2),
             ("avgpool 2x2 s2 (128,32,28,28)", "avg", (128, 32, 28, 28), 2, 2)]
    if cfg.quick:
        pools = [pools[0], pools[2], pools[3]]
    for name, kind, shape, k, s in pools:
        x = rng.standard_normal(shape, dtype=np.float32)
        xl = _channel_last(x)
        fwd_k, bwd_k = ((F.maxpool2d_forward, F.maxpool2d_backward) if kind == "max"
                        else (F.avgpool2d_forward, F.avgpool2d_backward))
        tf_k, tb_k = ((T.maxpool2d_forward, T.maxpool2d_backward) if kind == "max"
                      else (T.avgpool2d_forward, T.avgpool2d_backward))
        o, _ = fwd_k(x, k, s)
        d = rng.standard_normal(o.shape, dtype=np.float32)
        dl = _channel_last(d)

        def nn_run(xx=xl, dd=dl):
            out, c = fwd_k(xx, k, s)
            return bwd_k(dd, c)

        def nn_nchw(xx=x, dd=d):
            out, c = fwd_k(xx, k, s)
            return bwd_k(dd, c)
        def textbook(xx=x, dd=d):
            out, c = tf_k(xx, k, s)
            return tb_k(dd, c)
        cont = {"nnlite": nn_run, "nnlite NCHW input": nn_nchw, "textbook": textbook}
        if torch is not None:
            tf = f.max_pool2d if kind == "max" else f.avg_pool2d
            cont["torch"] = torch_pair(lambda t: tf(t, k, s), [x], d)
        cmp = compare(f"pool {name}", cont, repeats=cfg.repeats, target_s=cfg.target_s)
        ratios = {"nnlite NCHW/nnlite": _ratio(cmp, "nnlite NCHW input", "nnlite"),
                  "textbook/nnlite": _ratio(cmp, "textbook", "nnlite")}
        if torch is not None:
            ratios["nnlite/torch"] = _ratio(cmp, "nnlite", "torch")
        rows.append(_row("kernels", name + " fwd+bwd", cmp, ratios))

    # batch norm (training mode)
    shape = (128, 32, 28, 28)
    x = rng.standard_normal(shape, dtype=np.float32)
    gamma = np.ones(32, np.float32)
    beta = np.zeros(32, np.float32)
    rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)
    d = rng.standard_normal(shape, dtype=np.float32)

    # in a model, batch norm follows a conv: its input (and dout) are channel-last in memory
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    d_cl = np.ascontiguousarray(d.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    def bn_nn(xx, dd):
        out, c = F.batchnorm_forward(xx, gamma, beta, True, rm, rv, 1e-5)
        return F.batchnorm_backward(dd, c)
    def bn_textbook():
        out, c = T.batchnorm_forward(x, gamma, beta, True, rm, rv, 1e-5)
        return T.batchnorm_backward(d, c)
    cont = {"nnlite": lambda: bn_nn(x_cl, d_cl), "nnlite NCHW input": lambda: bn_nn(x, d),
            "textbook": bn_textbook}
    if torch is not None:
        rmt, rvt = torch.zeros(32), torch.ones(32)
        cont["torch"] = torch_pair(lambda t, g, bb: f.batch_norm(t, rmt, rvt, g, bb, training=True),
                                   [x, gamma, beta], d)
    cmp = compare("batchnorm2d", cont, repeats=cfg.repeats, target_s=cfg.target_s)
    ratios = {"nnlite NCHW/nnlite": _ratio(cmp, "nnlite NCHW input", "nnlite"),
              "textbook/nnlite": _ratio(cmp, "textbook", "nnlite")}
    if torch is not None:
        ratios["nnlite/torch"] = _ratio(cmp, "nnlite", "torch")
    rows.append(_row("kernels", "batchnorm2d train (128,32,28,28) fwd+bwd", cmp, ratios))

    # softmax cross-entropy
    for n, c in ([(128, 10), (512, 1000)] if not cfg.quick else [(512, 1000)]):
        logits = rng.standard_normal((n, c), dtype=np.float32)
        y = rng.integers(0, c, n)
        cont = {"nnlite": lambda logits=logits, y=y: F.softmax_cross_entropy(logits, y)}
        if torch is not None:
            lt = torch.from_numpy(logits).requires_grad_(True)
            yt = torch.from_numpy(y)

            def t_ce(lt=lt, yt=yt):
                loss = f.cross_entropy(lt, yt)
                return torch.autograd.grad(loss, lt)
            cont["torch"] = t_ce
        cmp = compare(f"softmax ce {n}x{c}", cont, repeats=cfg.repeats, target_s=cfg.target_s)
        rows.append(_row("kernels", f"softmax cross-entropy ({n},{c}) loss+grad", cmp,
                         {"nnlite/torch": _ratio(cmp, "nnlite", "torch")} if torch is not None else {}))

    # NT-Xent (SimCLR's contrastive loss) on 2N = 512 projections of width 128, loss + gradient
    from nnlite.functional.contrastive import nt_xent
    z = rng.standard_normal((512, 128), dtype=np.float32)
    cont = {"nnlite": lambda: nt_xent(z, 0.1)}
    if torch is not None:
        zt = torch.from_numpy(z).requires_grad_(True)

        def t_ntxent():
            u = f.normalize(zt, dim=1)
            s = u @ u.T / 0.1
            s = s.masked_fill(torch.eye(512, dtype=torch.bool), float("-inf"))
            loss = f.cross_entropy(s, (torch.arange(512) + 256) % 512)
            return torch.autograd.grad(loss, zt)
        cont["torch"] = t_ntxent
    cmp = compare("nt-xent 512x128", cont, repeats=cfg.repeats, target_s=cfg.target_s)
    rows.append(_row("kernels", "NT-Xent (2N=512, D=128) loss+grad", cmp,
                     {"nnlite/torch": _ratio(cmp, "nnlite", "torch")} if torch is not None else {}))

    # dense
    for n, din, dout_ in ([(128, 3136, 128), (128, 4096, 256)] if not cfg.quick else [(128, 3136, 128)]):
        x = rng.standard_normal((n, din), dtype=np.float32)
        w = rng.standard_normal((dout_, din), dtype=np.float32) / np.float32(np.sqrt(din))
        b = np.zeros(dout_, np.float32)
        d = rng.standard_normal((n, dout_), dtype=np.float32)

        def lin_nn(x=x, w=w, b=b, d=d):
            out, c = F.linear_forward(x, w, b)
            return F.linear_backward(d, c)
        def lin_textbook(x=x, w=w, b=b, d=d):
            out, c = T.linear_forward(x, w, b)
            return T.linear_backward(d, c)
        cont = {"nnlite": lin_nn, "textbook": lin_textbook}
        if torch is not None:
            cont["torch"] = torch_pair(lambda t, ww, bb: f.linear(t, ww, bb), [x, w, b], d)
        cmp = compare(f"dense {din}->{dout_}", cont, repeats=cfg.repeats, target_s=cfg.target_s)
        ratios = {"textbook/nnlite": _ratio(cmp, "textbook", "nnlite")}
        if torch is not None:
            ratios["nnlite/torch"] = _ratio(cmp, "nnlite", "torch")
        rows.append(_row("kernels", f"dense ({n},{din})->{dout_} fwd+bwd", cmp, ratios))

    # depthwise 3x3 conv (MobileNetV2's expanded layers), channel-last input as in the model
    shape = (128, 96, 16, 16)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal((96, 1, 3, 3), dtype=np.float32) / np.float32(3)
    d = rng.standard_normal(shape, dtype=np.float32)
    x_cl, d_cl = _channel_last(x), _channel_last(d)

    def dw_nn():
        out, c = F.depthwise_conv2d_forward(x_cl, w, None, 1, 1)
        return F.depthwise_conv2d_backward(d_cl, c)
    def dw_textbook():
        out, c = T.depthwise_conv2d_forward(x, w, None, 1, 1)
        return T.depthwise_conv2d_backward(d, c)
    cont = {"nnlite": dw_nn, "textbook": dw_textbook}
    if torch is not None:
        cont["torch"] = torch_pair(lambda t, ww: f.conv2d(t, ww, None, 1, 1, 1, 96), [x, w], d)
    cmp = compare("depthwise 3x3", cont, repeats=cfg.repeats, target_s=cfg.target_s)
    ratios = {"textbook/nnlite": _ratio(cmp, "textbook", "nnlite")}
    if torch is not None:
        ratios["nnlite/torch"] = _ratio(cmp, "nnlite", "torch")
    rows.append(_row("kernels", "depthwise 3x3 s1 p1 (128,96,16,16) fwd+bwd", cmp, ratios))
    return rows


# ----------------------------------------------------------------------------- training steps

#: training-step cases: (model, batch size)
TRAINING = (("fmnist_cnn", 128), ("cifar_cnn", 128), ("resnet_encoder", 256))


def run_training(cfg, torch):
    """Whole training steps (forward + backward + SGD, float32), images/s: the two reference
    CNNs at batch 128 and a ResNet encoder (stem + three basic blocks with batch norm, 32x32
    images) at batch 256; the textbook storey as a contender beside the engine."""
    rows = []
    for name, n in TRAINING:
        step_n, info = models.nnlite_step_fn(name, n)
        step_tb, _ = models.nnlite_step_fn(name, n)

        def textbook_step(step=step_tb):
            with use_kernels("textbook"):
                return step()
        cont = {"nnlite": step_n, "textbook": textbook_step}
        agree = None
        if torch is not None:
            step_t, tinfo = models.torch_step_fn(name, torch, n, nnlite_twin=info["model"])
            # same weights, eval mode (no dropout): the two models compute the same logits
            info["model"].eval()
            tinfo["model"].eval()
            with torch.no_grad():
                lt = tinfo["model"](tinfo["x"][:8]).numpy()
            ln = info["model"].forward(info["x"][:8])
            agree = float(np.abs(lt - ln).max())
            info["model"].train()
            tinfo["model"].train()
            cont["torch"] = step_t
        reps = cfg.repeats if not cfg.quick else 4
        cmp = compare(f"train step {name}", cont, repeats=reps, target_s=max(cfg.target_s, 0.25),
                      scale={"nnlite": n, "textbook": n, "torch": n}, warmup=2)
        extra = {"images_per_s": {k: 1.0 / t.min for k, t in cmp.timings.items()},
                 "images_per_s_median": {k: 1.0 / t.median for k, t in cmp.timings.items()},
                 "sgd": info["sgd"], "logits_max_abs_diff_vs_torch": agree, "batch": n}
        ratios = {"throughput nnlite/textbook": {"min": cmp.ratio("textbook", "nnlite", "min"),
                                                  "median": cmp.ratio("textbook", "nnlite", "median")}}
        if torch is not None:
            ratios["throughput nnlite/torch"] = {"min": cmp.ratio("torch", "nnlite", "min"),
                                                 "median": cmp.ratio("torch", "nnlite", "median")}
        rows.append(_row("training", f"{name} train step (batch {n}, float32)", cmp, ratios, extra,
                         unit="ms/image"))
    return rows


def run_inference(cfg, torch):
    """Eval-mode forward passes (batch 256, float32) of the two reference CNNs, images/s."""
    rows = []
    for name in ("fmnist_cnn", "cifar_cnn"):
        run_n, info = models.nnlite_infer_fn(name)
        cont = {"nnlite": run_n}
        if torch is not None:
            run_t, _ = models.torch_infer_fn(name, torch, nnlite_twin=info["model"])
            cont["torch"] = run_t
        cmp = compare(f"inference {name}", cont, repeats=cfg.repeats if not cfg.quick else 4,
                      target_s=max(cfg.target_s, 0.25), scale={"nnlite": 256, "torch": 256}, warmup=2)
        extra = {"images_per_s": {k: 1.0 / t.min for k, t in cmp.timings.items()}}
        ratios = {}
        if torch is not None:
            ratios["throughput nnlite/torch"] = {"min": cmp.ratio("torch", "nnlite", "min"),
                                                 "median": cmp.ratio("torch", "nnlite", "median")}
        rows.append(_row("inference", f"{name} eval forward (batch 256, float32)", cmp, ratios, extra,
                         unit="ms/image"))
    return rows


def run_small_batch(cfg):
    """nnlite's per-image training-step time at batch 16 relative to batch 128 (interleaved)."""
    rows = []
    for name in ("fmnist_cnn", "cifar_cnn"):
        cont = {str(n): models.nnlite_step_fn(name, n)[0] for n in (16, 128)}
        cmp = compare(f"small batch {name}", cont, repeats=cfg.repeats if not cfg.quick else 4,
                      target_s=max(cfg.target_s, 0.25), scale={"16": 16, "128": 128}, warmup=2)
        rows.append(_row("small batch", f"{name} train step per image, batch 16 / batch 128", cmp,
                         {"per-image time 16/128": _ratio(cmp, "16", "128")}, unit="ms/image"))
    return rows


# ----------------------------------------------------------------------------- memory

def run_memory(cfg, torch):
    """Peak memory of one training step, each framework in fresh processes (median of runs)."""
    rows = []
    runs = 1 if cfg.quick else 3
    for name in ("fmnist_cnn", "cifar_cnn"):
        res = {}
        for fw in (["nnlite", "torch"] if torch is not None else ["nnlite"]):
            vals, traced = [], []
            for r in range(runs):
                args = [sys.executable, "-m", "benchmarks.memory", fw, name]
                if fw == "nnlite" and r == 0:
                    args.append("--tracemalloc")
                out = subprocess.run(args, capture_output=True, text=True, check=True)
                d = json.loads(out.stdout.strip().splitlines()[-1])
                vals.append(d["rss_peak_delta_mib"])
                if "tracemalloc_peak_mib" in d:
                    traced.append(d["tracemalloc_peak_mib"])
            res[fw] = {"rss_peak_delta_mib_runs": vals, "rss_peak_delta_mib": float(np.median(vals))}
            if traced:
                res[fw]["tracemalloc_peak_mib"] = traced[0]
        ratios = {}
        if "torch" in res:
            ratios["peak RSS nnlite/torch"] = res["nnlite"]["rss_peak_delta_mib"] / res["torch"]["rss_peak_delta_mib"]
            ratios["nnlite tracemalloc / torch RSS"] = (res["nnlite"].get("tracemalloc_peak_mib", np.nan)
                                                        / res["torch"]["rss_peak_delta_mib"])
        rows.append({"group": "memory", "case": f"{name} train step peak memory (batch 128)",
                     "unit": "MiB", "values": res, "ratios": ratios})
    return rows


# ----------------------------------------------------------------------------- scaling

def run_scaling(cfg):
    """Conv layer (32->64, 3x3, pad 1) forward + backward vs batch size and vs image size; the
    sizes are interleaved contenders, so the per-item times compare within one run."""
    rows = []
    rng = _rng(5)
    wt = (rng.standard_normal((64, 32, 3, 3)) / np.sqrt(288)).astype(np.float32)
    b = np.zeros(64, np.float32)

    def conv_fn(n, hw):
        x = _channel_last(rng.standard_normal((n, 32, hw, hw), dtype=np.float32))
        o, _ = F.conv2d_forward(x, wt, b, 1, 1)
        d = _channel_last(rng.standard_normal(o.shape, dtype=np.float32))

        def run():
            out, c = F.conv2d_forward(x, wt, b, 1, 1)
            return F.conv2d_backward(d, c)
        return run

    batches = [16, 64, 256] if cfg.quick else [8, 16, 32, 64, 128, 256]
    sizes = [8, 16, 32] if cfg.quick else [7, 14, 28, 56]
    for label, items, mk, unit, count in (
            ("batch size (14x14 images)", batches, lambda v: conv_fn(v, 14), "images", lambda v: v),
            ("image size (batch 32, HxH)", sizes, lambda v: conv_fn(32, v), "pixels", lambda v: 32 * v * v)):
        cont = {str(v): mk(v) for v in items}
        cmp = compare(f"scaling {label}", cont, repeats=cfg.repeats, target_s=cfg.target_s)
        xs = np.array([count(v) for v in items], dtype=float)
        ts = np.array([cmp.timings[str(v)].min for v in items])
        slope, icpt = np.polyfit(xs, ts, 1)
        pred = slope * xs + icpt
        r2 = 1 - ((ts - pred) ** 2).sum() / ((ts - ts.mean()) ** 2).sum()
        per_item = ts / xs
        rel = per_item / per_item[-1]
        rows.append({"group": "scaling", "case": f"conv 32->64 3x3 fwd+bwd vs {label}", "unit": unit,
                     "sizes": items, "items": xs.tolist(), "min_s": ts.tolist(),
                     "per_item_relative_to_largest": rel.tolist(), "linear_fit_r2": float(r2),
                     "ratios": {"time(largest)/time(smallest) over size ratio":
                                float((ts[-1] / ts[0]) / (xs[-1] / xs[0]))},
                     "raw": cmp.as_dict()})
    return rows
