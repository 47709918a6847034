"""``python -m benchmarks [--quick] [--out DIR] [--only GROUP ...]``

Runs the suite (GEMM rate, conv table, other kernels, training steps, memory, scaling),
prints a table, writes ``results.json`` and the ratio figure ``ratios.png`` (+ ``scaling.png``)
into ``--out``. Every number in the table and figures is a ratio of contenders timed in the
same interleaved loop (see ``benchmarks.harness``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from . import cases
from nnlite import parallel

from .harness import OtherWork, blas_threads, load_torch, machine_info

GROUPS = ("gemm", "conv", "kernels", "training", "inference", "small", "memory", "scaling")

#: training and inference throughput, nnlite / PyTorch, at least (issue "Speed II")
TARGETS = {
    "fmnist_cnn throughput nnlite/torch": 0.9,
    "cifar_cnn throughput nnlite/torch": 0.8,
    "resnet_encoder throughput nnlite/torch": 1.1,
    "fmnist_cnn inference nnlite/torch": 1.2,
    "cifar_cnn inference nnlite/torch": 1.2,
}


def _fmt(v, nd=2):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}"


def _table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = " | ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    sep = "-|-".join("-" * w for w in widths)
    body = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, sep] + body)


def render(results) -> str:
    """The text report: one table per group, then the targets."""
    out = []
    by = {}
    for r in results["rows"]:
        by.setdefault(r["group"], []).append(r)
    if "gemm" in by:
        rows = [(r["case"], "x".join(map(str, r["shape_mkn"])), _fmt(r["gflops_min_time"], 1),
                 _fmt(r["ratios"]["fraction_of_peak"]["min"]), _fmt(r["ratios"]["fraction_of_peak"]["median"]))
                for r in by["gemm"]]
        out.append("float32 GEMM rate (numpy matmul), fraction of the square-2048 rate measured in the same loop")
        out.append(_table(["GEMM", "M x K x N", "GFLOP/s", "of peak (min)", "(median)"], rows))
    if "conv" in by:
        rows = []
        for r in by["conv"]:
            e, q = r["extra"], r["ratios"]
            rows.append((r["case"],
                         _fmt(e["fwd_per_image_ms"].get("loop")), _fmt(e["fwd_per_image_ms"].get("textbook"), 3),
                         _fmt(e["fwd_per_image_ms"]["nnlite"], 3),
                         _fmt(e["fwd_per_image_ms"].get("torch"), 3),
                         _fmt(q["loop/nnlite fwd (per image)"]["min"]), _fmt(q["loop/nnlite bwd (per image)"]["min"]),
                         _fmt(q.get("textbook/nnlite fwd", {}).get("min")),
                         _fmt(q.get("textbook/nnlite bwd", {}).get("min")),
                         _fmt(q.get("nnlite/torch fwd", {}).get("min")), _fmt(q.get("nnlite/torch bwd", {}).get("min")),
                         _fmt(q.get("nnlite/torch fwd+bwd", {}).get("min")),
                         _fmt(q.get("nnlite/torch fwd+bwd", {}).get("median")),
                         f"{e['gemm_share']['min']:.0%}"
                         + (f" ({e['gemm_share_first_layer_no_dx']['min']:.0%} no dx)"
                            if e.get("gemm_share_first_layer_no_dx") else ""),
                         f"{e['fraction_of_peak']['conv_fwd_bwd']:.0%}"))
        out.append("\nconv2d (batch 128, float32; loop reference on a small float64 batch, per image). "
                   "Ratios of mins; 'med' = ratio of medians")
        out.append(_table(["shape", "loop ms/img", "textbook ms/img", "nnlite ms/img", "torch ms/img",
                           "loop/nn fwd", "loop/nn bwd", "textbook/nn fwd", "textbook/nn bwd", "nn/torch fwd",
                           "nn/torch bwd", "nn/torch f+b", "(med)",
                           "GEMM share", "of peak"], rows))
        rows = []
        for r in by["conv"]:
            pr = r["extra"].get("profile_ms")
            if pr:
                tot = pr.get("threads_ms", pr["total_ms"])
                rows.append((r["case"], _fmt(pr["total_ms"], 1), r["extra"].get("threads", ""),
                             r["extra"].get("gemm_calls", ""),
                             *(f"{pr[k + '_ms'] / tot:.0%}" for k in ("GEMM", "patches", "dx scatter", "other")),
                             f"{r['extra']['gemm_share']['min']:.0%}"))
        if rows:
            out.append("\nconv2d fwd+bwd: where the time goes (timers around nnlite's conv helpers, one "
                       "uninterleaved run; shares of the thread time = workers' busy time + the caller's time "
                       "outside them; other = bias, db GEMV, dW accumulation, dx zero fill, allocation, Python)")
            out.append(_table(["shape", "fwd+bwd ms", "threads", "GEMM calls", "GEMM", "patches (pad+im2col)",
                               "dx scatter", "other", "GEMM share (interleaved)"], rows))
    if "kernels" in by:
        rows = []
        for r in by["kernels"]:
            c = r["contenders"]
            q = r["ratios"]
            rows.append((r["case"], _fmt(c.get("textbook", {}).get("min_ms"), 3), _fmt(c["nnlite"]["min_ms"], 3),
                         _fmt(c.get("torch", {}).get("min_ms"), 3),
                         _fmt(q.get("textbook/nnlite", {}).get("min")),
                         _fmt(q.get("nnlite/torch", {}).get("min")), _fmt(q.get("nnlite/torch", {}).get("median")),
                         _fmt(q.get("nnlite NCHW/nnlite", {}).get("min"))))
        out.append("\nother kernels (forward + backward): textbook storey, engine (nnlite), torch")
        out.append(_table(["kernel", "textbook ms", "nnlite ms", "torch ms", "textbook/nn", "nn/torch", "(med)",
                           "NCHW-input/channel-last"], rows))
    if "training" in by:
        rows = []
        for r in by["training"]:
            e, q = r["extra"], r["ratios"]
            rows.append((r["case"], _fmt(e["images_per_s"].get("textbook"), 0),
                         _fmt(e["images_per_s"]["nnlite"], 0), _fmt(e["images_per_s"].get("torch"), 0),
                         _fmt(q.get("throughput nnlite/textbook", {}).get("min")),
                         _fmt(q.get("throughput nnlite/torch", {}).get("min")),
                         _fmt(q.get("throughput nnlite/torch", {}).get("median")), e["sgd"]))
        out.append("\ntraining step (forward + backward + SGD), images/s from the min step time")
        out.append(_table(["model", "textbook img/s", "nnlite img/s", "torch img/s", "nnlite/textbook",
                           "nnlite/torch", "(med)", "nnlite update"], rows))
    if "inference" in by:
        rows = [(r["case"], _fmt(r["extra"]["images_per_s"]["nnlite"], 0),
                 _fmt(r["extra"]["images_per_s"].get("torch"), 0),
                 _fmt(r["ratios"].get("throughput nnlite/torch", {}).get("min")),
                 _fmt(r["ratios"].get("throughput nnlite/torch", {}).get("median"))) for r in by["inference"]]
        out.append("\ninference (eval mode, forward only), images/s from the min time")
        out.append(_table(["model", "nnlite img/s", "torch img/s", "nnlite/torch", "(med)"], rows))
    if "small batch" in by:
        rows = [(r["case"], _fmt(r["ratios"]["per-image time 16/128"]["min"]),
                 _fmt(r["ratios"]["per-image time 16/128"]["median"])) for r in by["small batch"]]
        out.append("\nsmall batches: nnlite's per-image step time at batch 16 / at batch 128")
        out.append(_table(["model", "ratio (min)", "(median)"], rows))
    if "memory" in by:
        rows = []
        for r in by["memory"]:
            v, q = r["values"], r["ratios"]
            rows.append((r["case"], _fmt(v["nnlite"]["rss_peak_delta_mib"], 1),
                         _fmt(v["nnlite"].get("tracemalloc_peak_mib"), 1),
                         _fmt(v.get("torch", {}).get("rss_peak_delta_mib"), 1),
                         _fmt(q.get("peak RSS nnlite/torch"))))
        out.append("\npeak memory of one training step (MiB above the pre-step baseline; fresh process each)")
        out.append(_table(["model", "nnlite RSS", "nnlite tracemalloc", "torch RSS", "RSS nnlite/torch"], rows))
    if "scaling" in by:
        rows = []
        for r in by["scaling"]:
            rows.append((r["case"], ", ".join(map(str, r["sizes"])),
                         ", ".join(_fmt(v) for v in r["per_item_relative_to_largest"]),
                         f"{r['linear_fit_r2']:.4f}"))
        out.append("\nscaling (per-item time relative to the largest size; 1.00 everywhere = perfectly linear)")
        out.append(_table(["case", "sizes", "per-item time / largest's", "linear fit R^2"], rows))
    m = results.get("machine", {})
    if m.get("load_average"):
        if m.get("other_work_cores") is not None:
            out.append(f"\nother processes' CPU use during the run: {m['other_work_cores']:.2f} cores "
                       f"(> {OTHER_WORK_AT} means the cores were shared and no target is called met)")
        out.append(f"\nload average before / after the run: {m['load_average'][0]:.2f} / "
                   f"{m.get('load_average_end', [float('nan')])[0]:.2f} "
                   f"({m.get('cores')} cores; before > 0.5 means other work competed; after includes the suite's own)")
    if results.get("targets"):
        loaded = _loaded(results)
        rows = [(k, _fmt(v["value"]), v["target"],
                 "unreliable (loaded machine)" if loaded else ("met" if v["met"] else "MISSED"))
                for k, v in results["targets"].items()]
        out.append("\ntargets" + (" (the machine was loaded during the run: figures unreliable, "
                                   "no target is called met; rerun on an idle machine)" if loaded else ""))
        out.append(_table(["target", "measured", "goal", ""], rows))
    return "\n".join(out)


def _loaded(results) -> bool:
    """True when other work shared the cores: a load average above ``LOADED_AT`` before the run,
    or other processes' CPU use during it above ``OTHER_WORK_AT`` cores (``OtherWork``). Runs
    without the meter fall back to the load average at the end (which includes the suite's own)."""
    m = results.get("machine", {})
    before = (m.get("load_average") or (0.0,))[0]
    other = m.get("other_work_cores")
    if other is None:
        return max(before, (m.get("load_average_end") or (0.0,))[0]) > LOADED_AT
    return before > LOADED_AT or other > OTHER_WORK_AT


#: load average before the run above which target verdicts are withheld (the cores were shared)
LOADED_AT = 0.5
#: mean CPU use of other processes during the run (in cores) above which verdicts are withheld; an
#: idle 2-core VM measured 0.15 (kernel threads, the hypervisor's steal time), a competing job >= 0.5
OTHER_WORK_AT = 0.25


def check_targets(rows):
    """Every target of the suite: {name: {"value", "target", "met"}}."""
    t = {}
    for r in rows:
        if r["group"] in ("training", "inference") and "throughput nnlite/torch" in r["ratios"]:
            what = "throughput" if r["group"] == "training" else "inference"
            key = f"{r['case'].split()[0]} {what} nnlite/torch"
            v = r["ratios"]["throughput nnlite/torch"]["min"]
            t[key] = {"value": v, "target": f">= {TARGETS[key]}", "met": v >= TARGETS[key]}
        if r["group"] == "small batch":
            v = r["ratios"]["per-image time 16/128"]["min"]
            t[r["case"]] = {"value": v, "target": "<= 1.3", "met": v <= 1.3}
        if r["group"] == "kernels" and "nnlite/torch" in r["ratios"] and r["case"].startswith(("batchnorm", "softmax")):
            v = r["ratios"]["nnlite/torch"]["min"]
            t[f"{r['case']}: time nnlite/torch"] = {"value": v, "target": "<= 1.2", "met": v <= 1.2}
    conv = [r for r in rows if r["group"] == "conv"]
    if conv:
        share = min(r["extra"]["gemm_share"]["min"] for r in conv)
        share_models = [r["extra"]["gemm_share"]["min"] for r in conv if r["case"].startswith(("mnist", "cifar"))]
        t["conv GEMM share (worst shape)"] = {"value": share, "target": ">= 0.75", "met": share >= 0.75}
        if share_models:
            v = min(share_models)
            t["conv GEMM share (worst model-layer shape)"] = {"value": v, "target": ">= 0.75", "met": v >= 0.75}
        # as the layers run in the two models: first layers without the input gradient
        in_model = [r["extra"]["gemm_share_first_layer_no_dx"]["min"]
                    if r["extra"].get("gemm_share_first_layer_no_dx") else r["extra"]["gemm_share"]["min"]
                    for r in conv if r["case"].startswith(("mnist", "cifar"))]
        if in_model:
            v = min(in_model)
            t["conv GEMM share (model layers as in the models: first without dx)"] = {
                "value": v, "target": ">= 0.75", "met": v >= 0.75}
        sp = min(min(r["ratios"]["loop/nnlite fwd (per image)"]["min"],
                     r["ratios"]["loop/nnlite bwd (per image)"]["min"])
                 for r in conv)
        t["conv loop/nnlite per image (worst)"] = {"value": sp, "target": ">= 100", "met": sp >= 100}
    mem = [r for r in rows if r["group"] == "memory" and "peak RSS nnlite/torch" in r["ratios"]]
    if mem:
        v = max(r["ratios"]["peak RSS nnlite/torch"] for r in mem)
        t["peak memory nnlite/torch (worst model)"] = {"value": v, "target": "<= 1.0", "met": v <= 1.0}
    return t


def figure(results, out_dir):
    """Bar charts of the ratios (log scale), matplotlib's object API (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    rows = results["rows"]
    conv = [r for r in rows if r["group"] == "conv"]
    kern = [r for r in rows if r["group"] == "kernels"]
    train = [r for r in rows if r["group"] == "training"]
    mem = [r for r in rows if r["group"] == "memory"]
    fig = Figure(figsize=(16, 15), constrained_layout=True)
    axes = fig.subplots(3, 2)

    def barh(ax, labels, series, title, xlabel, ref=1.0, targets=None, log=True):
        y = np.arange(len(labels))
        hgt = 0.8 / max(1, len(series))
        for i, (name, vals) in enumerate(series.items()):
            vals = np.array([np.nan if v is None else v for v in vals], dtype=float)
            bars = ax.barh(y + (i - (len(series) - 1) / 2) * hgt, vals, height=hgt, label=name)
            for rect, v in zip(bars, vals):
                if np.isfinite(v):
                    ax.text(rect.get_width(), rect.get_y() + rect.get_height() / 2, f" {_fmt(v)}",
                            va="center", fontsize=7)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if ref is not None:
            ax.axvline(ref, color="k", lw=0.8)
        for tv, tl in (targets or []):
            ax.axvline(tv, color="r", ls="--", lw=0.9)
            ax.annotate(tl, (tv, 1.0), xycoords=("data", "axes fraction"), color="r", fontsize=7,
                        ha="center", va="bottom")
        ax.set_title(title, fontsize=10, pad=14)
        ax.set_xlabel(xlabel, fontsize=9)
        if len(series) > 1:                  # below the axes: never over a bar or its value
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=len(series), frameon=False)
        ax.grid(axis="x", which="both", alpha=0.3)

    def off(ax, why):
        ax.set_axis_off()
        ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9)

    if conv:
        labels = [r["case"] for r in conv]
        barh(axes[0, 0], labels,
             {"forward": [r["ratios"]["loop/nnlite fwd (per image)"]["min"] for r in conv],
              "backward": [r["ratios"]["loop/nnlite bwd (per image)"]["min"] for r in conv]},
             "conv2d speed-up: loop reference time / nnlite time, per image", "x (log)",
             targets=[(100, "target 100x")])
        if any("nnlite/torch fwd+bwd" in r["ratios"] for r in conv):
            barh(axes[0, 1], labels,
                 {"forward": [r["ratios"].get("nnlite/torch fwd", {}).get("min") for r in conv],
                  "backward": [r["ratios"].get("nnlite/torch bwd", {}).get("min") for r in conv],
                  "fwd+bwd": [r["ratios"].get("nnlite/torch fwd+bwd", {}).get("min") for r in conv]},
                 "conv2d: nnlite time / PyTorch time (< 1: nnlite faster)", "ratio (log)")
        else:
            off(axes[0, 1], "PyTorch not installed")
        barh(axes[1, 0], labels,
             {"GEMM share": [r["extra"]["gemm_share"]["min"] for r in conv],
              "conv rate / square-GEMM rate": [r["extra"]["fraction_of_peak"]["conv_fwd_bwd"] for r in conv]},
             "conv2d fwd+bwd: time in its GEMMs / its total time, and its rate vs the 2048 GEMM",
             "fraction", ref=None, targets=[(0.75, "GEMM share target 75%")], log=False)
        shares = [r["extra"]["gemm_share"]["min"] for r in conv]
        axes[1, 0].set_xlim(0, max([1.05] + [1.1 * v for v in shares if np.isfinite(v)]))  # > 1: replay noise
    else:
        off(axes[0, 0], "no conv cases run")
        off(axes[0, 1], "")
        off(axes[1, 0], "")
    labels, vals = [], []
    for r in kern:
        if "nnlite/torch" in r["ratios"]:
            labels.append(r["case"])
            vals.append(r["ratios"]["nnlite/torch"]["min"])
    if labels:
        barh(axes[1, 1], labels, {"nnlite / torch time": vals},
             "other kernels (fwd+bwd): nnlite time / PyTorch time (< 1: nnlite faster)", "ratio (log)")
    else:
        off(axes[1, 1], "no kernel cases (or no PyTorch)")
    labels, series_t = [], []
    for r in train:
        if "throughput nnlite/torch" in r["ratios"]:
            labels.append(r["case"].split()[0])
            series_t.append(r["ratios"]["throughput nnlite/torch"]["min"])
    if labels:
        barh(axes[2, 0], labels, {"throughput nnlite / torch": series_t},
             "training step: nnlite images/s / PyTorch images/s", "ratio (log)",
             targets=[(0.9, "fmnist 0.9"), (0.8, "cifar 0.8"), (1.1, "resnet 1.1")])
    else:
        off(axes[2, 0], "no training cases (or no PyTorch)")
    labels, series_m = [], []
    for r in mem:
        if "peak RSS nnlite/torch" in r["ratios"]:
            labels.append(r["case"].split()[0])
            series_m.append(r["ratios"]["peak RSS nnlite/torch"])
    if labels:
        barh(axes[2, 1], labels, {"peak memory nnlite / torch": series_m},
             "training step peak memory (RSS above baseline): nnlite / PyTorch", "ratio (log)",
             targets=[(1.0, "target 1.0")])
    else:
        off(axes[2, 1], "no memory cases (or no PyTorch)")
    m = results["machine"]
    fig.suptitle(f"nnlite vs loop reference vs PyTorch {m.get('torch', '(not installed)')} -- {m['cpu']}, "
                 f"{m['numpy_blas_threads']} BLAS threads; ratios of min times measured interleaved in one run",
                 fontsize=10)
    path = os.path.join(out_dir, "ratios.png")
    FigureCanvasAgg(fig).print_png(path)
    paths = [path]

    sc = [r for r in rows if r["group"] == "scaling"]
    if sc:
        fig = Figure(figsize=(10, 4), constrained_layout=True)
        axes = fig.subplots(1, len(sc))
        axes = np.atleast_1d(axes)
        for ax, r in zip(axes, sc):
            ax.bar([str(s) for s in r["sizes"]], r["per_item_relative_to_largest"])
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_yscale("log")
            ax.set_title(f"{r['case']}\n(linear fit R^2 = {r['linear_fit_r2']:.4f})", fontsize=9)
            ax.set_ylabel(f"time per {r['unit'][:-1]} / that of the largest size", fontsize=8)
        path = os.path.join(out_dir, "scaling.png")
        FigureCanvasAgg(fig).print_png(path)
        paths.append(path)
    return paths


def default_out(quick: bool, only) -> str:
    """Where a run writes without ``--out``: only a full run replaces the committed results."""
    if quick:
        return os.path.join("runs", "benchmarks-quick")
    if only:
        return os.path.join("runs", "benchmarks-only")
    return os.path.join("benchmarks", "results")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short run (< 2 min): fewer shapes and repeats")
    p.add_argument("--out", default=None,
                   help="output folder (default: benchmarks/results for a full run, the git-ignored "
                        "runs/benchmarks-quick for --quick and runs/benchmarks-only for --only, so "
                        "a smoke or partial run never overwrites the committed full-run results)")
    p.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    a = p.parse_args(argv)
    if a.out is None:
        a.out = default_out(a.quick, a.only)
    os.makedirs(a.out, exist_ok=True)
    threads = blas_threads()
    torch = None if a.no_torch else load_torch(threads)
    cfg = cases.make_cfg(a.quick)
    groups = a.only or GROUPS
    t0 = time.time()
    other_work = OtherWork()
    results = {"command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
               "quick": a.quick, "machine": machine_info(torch), "rows": [],
               "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
          f"BLAS {results['machine']['blas']}, {threads} BLAS threads, "
          f"torch {results['machine'].get('torch', 'not installed')}", flush=True)
    load = results["machine"].get("load_average", (0.0,))[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the run: other processes compete for the "
              f"{results['machine']['cores']} cores. OpenBLAS's threads (NumPy) suffer far more from "
              "that than PyTorch's, so nnlite/torch ratios are unreliable; rerun on an idle machine.",
              flush=True)
    peak = None
    if "gemm" in groups or "conv" in groups:
        print("[gemm] ...", flush=True)
        gemm_rows, peak = cases.run_gemm(cfg)
        if "gemm" in groups:
            results["rows"] += gemm_rows
    # nnlite runs as inside Trainer.fit: in a parallel.threads() block (its kernels' chunks on
    # one thread per core, NumPy's BLAS single-threaded meanwhile; PyTorch keeps its threads).
    # The GEMM-rate group above ran outside it: the machine's multi-threaded GEMM rate.
    results["machine"]["nnlite_threads"] = parallel.default_num_threads()
    print(f"nnlite: {results['machine']['nnlite_threads']} worker threads (nnlite.parallel)", flush=True)
    for g, fn in (("conv", lambda: cases.run_conv(cfg, torch, peak)),
                  ("kernels", lambda: cases.run_kernels(cfg, torch)),
                  ("training", lambda: cases.run_training(cfg, torch)),
                  ("inference", lambda: cases.run_inference(cfg, torch)),
                  ("small", lambda: cases.run_small_batch(cfg)),
                  ("memory", lambda: cases.run_memory(cfg, torch)),
                  ("scaling", lambda: cases.run_scaling(cfg))):
        if g in groups:
            print(f"[{g}] ... ({time.time() - t0:.0f} s so far)", flush=True)
            with parallel.threads():
                results["rows"] += fn()
    results["targets"] = check_targets(results["rows"])
    results["seconds"] = time.time() - t0
    try:
        results["machine"]["load_average_end"] = os.getloadavg()
    except OSError:
        pass
    results["machine"]["other_work_cores"] = other_work.cores()
    text = render(results)
    print()
    print(text)
    with open(os.path.join(a.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    with open(os.path.join(a.out, "results.txt"), "w") as fh:
        fh.write(text + "\n")
    paths = figure(results, a.out)
    print(f"\nwrote {os.path.join(a.out, 'results.json')}, results.txt, "
          + ", ".join(os.path.basename(pth) for pth in paths) + f" in {results['seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
