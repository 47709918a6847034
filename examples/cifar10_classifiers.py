# %% [markdown]
# # CIFAR-10: a softmax classifier and a two-layer network on raw pixels, with ablations
#
# Mirrors parts 1-3 of the CIFAR-10 course report ("Optimization and Fitting", "Softmax
# Classifier", "Softmax Classifier with Hidden Layers"; part 4 is examples/fooling_images.py):
#
# 1. a toy 1-D regression fitted by plain gradient descent written out here
#    (forward, squared-error loss, backward, update);
# 2. a softmax classifier (one Linear layer on the 3,072 flattened pixels): lr 5e-3,
#    lr decay 0.9 per epoch, batch 256, reg 0, 60 epochs; train/validation curves and test
#    accuracy; ablations of reg, batch size, lr and lr decay (30 epochs each);
# 3. a two-layer network (hidden 100, ReLU): lr 0.1, decay 0.9, batch 128, 30 epochs;
#    curves, test accuracy and ablations of hidden size ({50, 100, 150, 200} like the report;
#    --extra-hidden adds values), batch size, lr and lr decay.
#
# The ablations are one-at-a-time studies run with nnlite.sweep: in parallel worker
# processes (--jobs N) or on a Dask cluster (--dask-scheduler ADDRESS), resumable
# (finished trials are kept in <out>/*/results.jsonl; rerun to continue).
#
#     python examples/cifar10_classifiers.py --jobs 2          # full run
#     python examples/cifar10_classifiers.py --quick           # smoke test: a small subset, 2 epochs (CI)
#
# Everything goes to runs/cifar10_classifiers/: metrics.json, report.md, the figures and
# one folder per ablation study (results.jsonl, tables.md, one figure per parameter).
# Data: nnlite.data.load_cifar10 (official batches if present, else
# $NNLITE_DATA/cifar10/images.zip decoded once and cached + test.npz); the report says which.
# In a notebook, set $NNLITE_EXAMPLE_ARGS (e.g. "--quick") before starting the kernel.

# %% Arguments, imports and the run folder
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(globals().get("__file__", "cifar10_classifiers.py")).resolve().parent
sys.path.insert(0, str(HERE))
# Worker processes started by joblib/loky (and Dask workers started from this shell) must
# import the trial module by name: put this folder on their PYTHONPATH too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

from _common import (Timer, add_download_arg, base_parser, command_line, compute_info, dask_client,  # noqa: E402
                     describe_compute, load_data, machine_info, parse_args, positive_int, prepare_out,
                     quick_note, script_description, write_json, write_text)

import cifar10_trials as trials  # noqa: E402
import nnlite.nn as nn  # noqa: E402
from nnlite.data.checks import WrongDataError, check_content  # noqa: E402
from nnlite.sweep import Study, ablation_tables, add_sweep_args, run_study, summarize, sweep_options  # noqa: E402
from nnlite.sweep import canonical_json, write_report  # noqa: E402

#: The report's ablation values (the baseline value is one of each list).
SOFTMAX_ABLATIONS = {"reg": [0.0, 1e-3, 1e-2, 1e-1], "batch_size": [128, 256, 512, 1024],
                     "lr": [1e-3, 5e-3, 1e-2, 5e-2], "lr_decay": [1.0, 0.99, 0.9, 0.8]}
TWO_LAYER_ABLATIONS = {"hidden": [50, 100, 150, 200], "batch_size": [128, 256, 512, 1024],
                       "lr": [0.01, 0.05, 0.1, 0.2], "lr_decay": [1.0, 0.99, 0.9, 0.8]}
#: --quick: two values per parameter (the baseline and one other).
SOFTMAX_ABLATIONS_QUICK = {"reg": [0.0, 1e-1], "batch_size": [128, 256], "lr": [5e-3, 5e-2],
                           "lr_decay": [1.0, 0.9]}
TWO_LAYER_ABLATIONS_QUICK = {"hidden": [50, 100], "batch_size": [128, 256], "lr": [0.05, 0.1],
                             "lr_decay": [1.0, 0.9]}
PARAM_TITLES = {"reg": "Regularization coefficient", "batch_size": "Batch size", "lr": "Learning rate",
                "lr_decay": "LR decay (factor per epoch)", "hidden": "Hidden size"}
#: The course report's own numbers (test accuracy), to draw and quote beside ours.
REPORT_TEST_ACC = {"softmax": 0.4107, "two_layer": 0.514}
REPORT_ABLATIONS = {
    "softmax_ablation": {"reg": {0.0: 0.4098, 1e-3: 0.4103, 1e-2: 0.4101, 1e-1: 0.4108},
                         "batch_size": {128: 0.4125, 256: 0.4111, 512: 0.4059, 1024: 0.3997},
                         "lr": {1e-3: 0.409, 5e-3: 0.4088, 1e-2: 0.4078, 5e-2: 0.3968},
                         "lr_decay": {1.0: 0.3988, 0.99: 0.4051, 0.9: 0.4092, 0.8: 0.4108}},
    "two_layer_ablation": {"hidden": {50: 0.503, 100: 0.514, 150: 0.518, 200: 0.5272},
                           "batch_size": {128: 0.514, 256: 0.5052, 512: 0.4946, 1024: 0.4696},
                           "lr": {0.2: 0.4944, 0.1: 0.514, 0.05: 0.4996, 0.01: 0.4621},
                           "lr_decay": {1.0: 0.4844, 0.99: 0.4941, 0.9: 0.514, 0.8: 0.5024}},
}
QUICK_EPOCHS = 2

p = base_parser(script_description(globals().get("__file__"),
                                   "CIFAR-10 softmax and two-layer classifiers with ablation sweeps"),
                "cifar10_classifiers")
p.add_argument("--data", default=None, help="folder with CIFAR-10 (default: $NNLITE_DATA/cifar10, the cache)")
add_download_arg(p)
p.add_argument("--softmax-epochs", type=positive_int, default=None,
               help=f"epochs of the softmax curve run; default 60 (the report's), or {QUICK_EPOCHS} with --quick")
p.add_argument("--two-layer-epochs", type=positive_int, default=None,
               help=f"epochs of the two-layer run; default 30 (the report's), or {QUICK_EPOCHS} with --quick")
p.add_argument("--ablation-epochs", type=positive_int, default=None,
               help=f"epochs of every ablation trial; default 30 (the report's), or {QUICK_EPOCHS} with --quick")
p.add_argument("--ablation-seeds", type=positive_int, default=1,
               help="seeds per ablation setting (error bars when > 1)")
p.add_argument("--headline-seeds", type=positive_int, default=1,
               help="seeds of the two headline runs (curves from the first)")
p.add_argument("--extra-hidden", type=positive_int, nargs="+", default=[], metavar="H",
               help="hidden sizes added to the report's grid {50, 100, 150, 200} (e.g. 400)")
p.add_argument("--val-size", type=positive_int, default=None,
               help="validation images, a stratified random draw from the training set; "
                    "default 1000, or 200 with --quick")
p.add_argument("--preprocess", default=trials.DATA_DEFAULTS["preprocess"],
               choices=sorted(trials.PREPROCESSING), help="input normalization (training statistics)")
p.add_argument("--no-ablations", action="store_true", help="skip the two ablation studies")
add_sweep_args(p)
args = parse_args(p)
out = prepare_out(args.out)
opts = sweep_options(args)
quick = args.quick
command = command_line("cifar10_classifiers.py")
data_cfg = {"data": args.data, "n_train": 2000 if quick else None, "n_test": 1000 if quick else None,
            "val_size": args.val_size or (200 if quick else 1000), "preprocess": args.preprocess}
if quick and data_cfg["val_size"] >= data_cfg["n_train"]:
    p.error(f"argument --val-size: with --quick at most {data_cfg['n_train'] - 1}, got {args.val_size}")
ab_epochs = args.ablation_epochs or (QUICK_EPOCHS if quick else 30)
soft_epochs = args.softmax_epochs or (QUICK_EPOCHS if quick else 60)
two_epochs = args.two_layer_epochs or (QUICK_EPOCHS if quick else 30)
two_layer_grid = dict(TWO_LAYER_ABLATIONS_QUICK if quick else TWO_LAYER_ABLATIONS)
two_layer_grid["hidden"] = sorted(set(two_layer_grid["hidden"]) | set(args.extra_hidden))
times = {}
t_start = time.perf_counter()
compute = compute_info()
print(f"compute: {describe_compute(compute)}" + (f"; sweeps: --jobs {args.jobs}" if not args.no_ablations else ""))


# %% Data: loaded (and the JPEG cache written) here, before any worker starts
with Timer() as t:
    try:
        d = load_data(trials.prepare_data, **data_cfg, download=args.download)
    except ValueError as e:   # e.g. --val-size larger than the training set
        raise SystemExit(f"error: {e}") from None
times["load"] = t.seconds
source = d["source"]
try:
    data_check = check_content("cifar10", SimpleNamespace(x_train=d["x_train"], y_train=d["y_train"],
                                                          y_test=d["y_test"], source=source))
except WrongDataError as e:
    raise SystemExit(f"wrong data: {e}") from None
subset_text = (f"a {d['x_train'].shape[0] + d['x_val'].shape[0]:,}-image training subset and "
               f"{d['x_test'].shape[0]:,} test images" if quick else "the full data")
print(f"CIFAR-10 classifiers on {subset_text}" + (" (--quick smoke test)" if quick else ""))
print(f"data: {source}")
print(f"      train {d['x_train'].shape[0]}, validation {d['x_val'].shape[0]} (stratified), "
      f"test {d['x_test'].shape[0]}; preprocessing: {trials.describe_preprocessing(args.preprocess)} "
      f"(loaded in {t.seconds:.1f} s); {data_check}")

# %% [markdown]
# ## 1. Optimization and fitting: gradient descent written out
# A 1-50-1 tanh network (nnlite layers) is fitted to noisy samples of
# ``sin(x) + 0.3 x`` by full-batch gradient descent on the summed squared error
# ``L = 1/2 sum_i (f(x_i) - y_i)^2`` with learning rate 1e-4 (as in the report).

# %%
def fit_toy_regression(rng, iterations=10000, lr=1e-4, n=100, hidden=50):
    """Fit the toy problem; returns data, predictions and the loss after every iteration."""
    x = np.sort(rng.uniform(-3.0, 3.0, n))[:, None]
    y = np.sin(x) + 0.3 * x + 0.1 * rng.standard_normal((n, 1))
    model = nn.Sequential(nn.Linear(1, hidden, rng=rng, dtype=np.float64), nn.Tanh(),
                          nn.Linear(hidden, 1, rng=rng, dtype=np.float64))
    losses = []
    for _ in range(iterations):
        pred = model.forward(x)                 # forward pass
        residual = pred - y
        loss = 0.5 * float(np.sum(residual ** 2))
        losses.append(loss)
        model.zero_grad()
        model.backward(residual)                # dL/dpred = pred - y, then the layers' backward
        for p in model.parameters():            # the gradient-descent update
            p.data -= lr * p.grad
    x_grid = np.linspace(-3.0, 3.0, 200)[:, None]
    return {"x": x[:, 0], "y": y[:, 0], "x_grid": x_grid[:, 0], "fit": model.forward(x_grid)[:, 0],
            "loss": np.asarray(losses), "lr": lr, "iterations": iterations, "n": n, "hidden": hidden}


def plot_toy(res, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nnlite.viz import save_figure

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(np.arange(1, res["iterations"] + 1), res["loss"])
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("loss  1/2 sum (f(x) - y)^2")
    ax1.set_title(f"Gradient descent, lr {res['lr']:g}")
    ax1.grid(True, alpha=0.3)
    ax2.scatter(res["x"], res["y"], s=10, color="tab:gray", label="data")
    ax2.plot(res["x_grid"], np.sin(res["x_grid"]) + 0.3 * res["x_grid"], "--", color="tab:green",
             label="sin(x) + 0.3x")
    ax2.plot(res["x_grid"], res["fit"], color="tab:red", label="fitted network")
    ax2.set_xlabel("x")
    ax2.set_ylabel("y")
    ax2.set_title(f"Fit after {res['iterations']} iterations")
    ax2.legend(fontsize="small")
    save_figure(fig, path, dpi=110)



# %%
with Timer() as t:
    toy = fit_toy_regression(np.random.default_rng([args.seed, 0]), iterations=2000 if quick else 10000)
    plot_toy(toy, out / "optimization.png")
times["optimization"] = t.seconds
print(f"[1] toy regression: loss {toy['loss'][0]:.3f} -> {toy['loss'][-1]:.4f} after "
      f"{toy['iterations']} iterations (lr {toy['lr']:g}) in {t.seconds:.1f} s")

# %% [markdown]
# ## 2-3. Classifiers and ablations (the trial function is in cifar10_trials.py)

# %% Helpers of the headline runs and the ablation studies
def run_single(name, config, out, opts, args):
    """The headline training run (one per seed), as a baseline-only study (resumable like the sweeps).

    Returns the first seed's row plus the test accuracies and trial times of all seeds.
    """
    study = Study(config, seeds=list(range(args.seed, args.seed + args.headline_seeds)), name=name)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    # in this process (the prepared data are already in memory), with every core for BLAS
    rows = run_study(study, trials.run_trial, folder / "results.jsonl", n_jobs=1,
                     resume=opts["resume"])
    for row in rows:
        if row["status"] != "ok":
            raise RuntimeError(f"{name} failed: {row['error']}\n{row['traceback']}")
    accs = [r["metrics"]["test_acc"] for r in rows]
    row = dict(rows[0])
    row["seeds"] = {"seeds": [r["seed"] for r in rows], "test_acc": accs,
                    "test_acc_mean": float(np.mean(accs)),
                    "test_acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                    "trial_wall_time_s": [r["wall_time"] for r in rows]}
    return row


def plot_curves(metrics, path, title):
    from nnlite.viz import plot_history

    h = metrics["history"]
    # "train" accuracy = accuracy on a fixed 1,000-image subset of the training split after each epoch
    plot_history({"loss": h["loss"], "val_loss": h["val_loss"], "acc": h["train_acc"],
                  "val_acc": h["val_acc"]}, metrics=("loss", "acc"), path=path, title=title,
                 figsize=(9, 3.6))


def plot_study(name, param, entries, path, tag=""):
    """The readable ablation figure (replaces the sweep's generic one at the same path)."""
    from nnlite.viz import plot_ablation

    ref = REPORT_ABLATIONS.get(name, {}).get(param, {})
    base = [i for i, e in enumerate(entries) if e["baseline"]]
    model = "Softmax classifier" if name.startswith("softmax") else "Two-layer network"
    plot_ablation([e["value"] for e in entries],
                  [np.nan if e["test_acc_mean"] is None else e["test_acc_mean"] for e in entries],
                  stds=[np.nan if e["test_acc_std"] is None else e["test_acc_std"] for e in entries],
                  n=[e["n"] for e in entries], baseline=base[0] if base else None,
                  reference=[ref.get(e["value"]) for e in entries] if ref else None,
                  reference_label="course report", label="nnlite", param_label=PARAM_TITLES.get(param, param),
                  title=f"{model}: test accuracy vs {PARAM_TITLES.get(param, param).lower()}{tag}", path=path)


def run_ablation(name, baseline, ablations, seeds, out, opts, client):
    study = Study(baseline, ablations=ablations, seeds=seeds, name=name)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    with Timer() as t:
        rows = run_study(study, trials.run_trial, folder / "results.jsonl",
                         n_jobs=opts["n_jobs"], scheduler=client,
                         threads_per_worker=opts["threads_per_worker"], resume=opts["resume"])
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        print(f"warning: {len(failed)} {name} trial(s) failed, e.g. {failed[0]['error']}")
    paths = write_report(rows, study, "test_acc", folder)
    tables = ablation_tables(rows, study, "test_acc")
    data = {}
    summary = {canonical_json(s["config"]): s for s in summarize(rows, "test_acc")}
    for param in study.varied_params:
        entries = []
        for value in study.param_values(param):
            s = summary.get(canonical_json(study.ablation_setting(param, value)))
            entries.append({"value": value, "baseline": study.is_baseline_value(param, value),
                            "test_acc_mean": None if s is None or s["n"] == 0 else s["mean"],
                            "test_acc_std": None if s is None or s["n"] < 2 else s["std"],
                            "test_acc_values": [] if s is None else s["values"],
                            "n": 0 if s is None else s["n"]})
        data[param] = entries
    for png in paths:
        if png.suffix == ".png" and png.stem in data:
            plot_study(name, png.stem, data[png.stem], png, "\n[--quick smoke test]" if quick else "")
    trial_time = sum(r["wall_time"] for r in rows)
    return {"study": study.to_dict(), "tables_md": tables, "tables": data,
            "figures": {p.stem: str(p.relative_to(out)) for p in paths if p.suffix == ".png"},
            "tables_file": str(paths[0].relative_to(out)), "n_trials": len(study),
            "n_failed": len(failed), "wall_time_s": t.seconds, "trial_time_s": trial_time}



# %% [markdown]
# ## 2-3. Headline runs with the report's settings

# %%
trials.VERBOSE = True
soft_cfg = {**trials.SOFTMAX_DEFAULTS, **data_cfg, "epochs": soft_epochs}
two_cfg = {**trials.TWO_LAYER_DEFAULTS, **data_cfg, "epochs": two_epochs}
with Timer() as t:
    soft_row = run_single("softmax", soft_cfg, out, opts, args)
times["softmax"] = t.seconds
soft = soft_row["metrics"]
print(f"[2] softmax classifier: test accuracy {soft['test_acc']:.4f} (weights of the last epoch, {soft['epochs']})")
with Timer() as t:
    two_row = run_single("two_layer", two_cfg, out, opts, args)
times["two_layer"] = t.seconds
two = two_row["metrics"]
print(f"[3] two-layer network: test accuracy {two['test_acc']:.4f} (weights of the last epoch, {two['epochs']})")
trials.VERBOSE = False
tag = " [--quick smoke test]" if quick else ""
plot_curves(soft, out / "softmax_curves.png",
            f"Softmax classifier: train vs validation ({soft['epochs']} epochs){tag}")
plot_curves(two, out / "two_layer_curves.png",
            f"Two-layer network (hidden {two_cfg['hidden']}): train vs validation ({two['epochs']} epochs){tag}")

# %% [markdown]
# ## 2.4 and 3.4. Ablation studies: one parameter at a time around the baseline

# %%
studies = {}
if not args.no_ablations:
    client = dask_client(args.dask_scheduler, HERE / "cifar10_trials.py") if args.dask_scheduler else None
    try:
        seeds = list(range(args.seed, args.seed + args.ablation_seeds))
        for name, defaults, abl in (
                ("softmax_ablation", trials.SOFTMAX_DEFAULTS,
                 SOFTMAX_ABLATIONS_QUICK if quick else SOFTMAX_ABLATIONS),
                ("two_layer_ablation", trials.TWO_LAYER_DEFAULTS, two_layer_grid)):
            base = {**defaults, **data_cfg, "epochs": ab_epochs}
            studies[name] = run_ablation(name, base, abl, seeds, out, opts, client)
            times[name] = studies[name]["wall_time_s"]
            print(f"[{name}] {studies[name]['n_trials']} trials in {times[name]:.0f} s")
    finally:
        if client is not None:
            client.close()

# %% The Markdown report, in the course report's order and numbering
def _ablation_section(res, study_name, number, label):
    st = res["ablations"].get(study_name)
    if st is None:
        return f"### {number} Ablation studies\n\nSkipped (--no-ablations).\n"
    ep = res["ablation_epochs"]
    base = st["study"]["baseline"]
    shown = {k: base[k] for k in ("lr", "lr_decay", "batch_size", "reg", "hidden") if k in base}
    parts = [f"### {number} Ablation studies\n",
             f"Baseline: {label} with {', '.join(f'{k} = {v:g}' for k, v in shown.items())}, "
             f"{ep} epochs; each parameter varied on its own. {st['n_trials']} trials, seeds "
             f"{st['study']['seeds']}, sweep wall time {st['wall_time_s'] / 60:.1f} min "
             f"(sum of trial times {st['trial_time_s'] / 60:.1f} min). Results: "
             f"`{study_name}/results.jsonl`, tables: `{st['tables_file']}`. The figures draw the "
             f"course report's numbers (grey, dashed) beside nnlite's.\n"]
    if ep != 30:
        why = ("--quick" if res["quick"] else "--ablation-epochs")
        parts.append(f"**Note:** the ablation trials ran {ep} epochs instead of the report's 30 "
                     f"({why}); the numbers are not comparable with the report's.\n")
    ref = REPORT_ABLATIONS.get(study_name, {})
    for k, (param, table) in enumerate(st["tables_md"].items()):
        letter = "abcdefgh"[k]
        fig = st["figures"].get(param)
        rep = ref.get(param)
        rep_text = ("\nCourse report: " + ", ".join(f"{v:g}: {a:.4f}" for v, a in sorted(rep.items())) + "\n"
                    if rep else "")
        parts.append(f"({letter}) {PARAM_TITLES.get(param, param)}: test accuracy\n\n{table}{rep_text}")
        if fig:
            parts.append(f"![{param}]({fig})\n")
    return "\n".join(parts)


def _seeds_text(o):
    if len(o["seeds"]) < 2:
        return ""
    each = ", ".join(f"{a * 100:.2f}%" for a in o["test_acc"])
    return (f"\nSeed {o['seeds'][0]} above (its curves are shown). Over seeds {o['seeds']} (initialization and "
            f"batch order): {each}; mean {o['test_acc_mean'] * 100:.2f}% "
            f"± {o['test_acc_std'] * 100:.2f}% (sample std).\n")


def _init_text(cfg):
    s = cfg.get("init_std", 0.0)
    return f"weights drawn from `N(0, {s:g}^2)`, biases zero" if s > 0 else "He-normal weights, biases zero"


def _compare(ours, report, quick, source):
    if quick:
        return f"(course report: {report * 100:.2f}%; a smoke test is not comparable)"
    loose = "; JPEG-decoded training images, so expect about a point less" if "JPEG" in source else ""
    return f"(course report: {report * 100:.2f}%; difference {100 * (ours - report):+.2f} points{loose})"


def make_report(res, soft_cfg, two_cfg, d, args):
    soft, two = res["softmax"]["metrics"], res["two_layer"]["metrics"]
    toy = res["optimization"]
    quick_text = (quick_note(f"a {res['n_train'] + res['n_val']:,}-image training subset, "
                             f"{res['n_test']:,} test images, "
                             f"{soft['epochs']}/{two['epochs']}/{res['ablation_epochs']} "
                             "epochs (softmax/two-layer/ablations)") if res["quick"] else "")
    t = res["wall_time_s"]
    sweeps = ("softmax_ablation", "two_layer_ablation")
    sweep_wall = "".join(f", {k.replace('_', ' ')} {t[k] / 60:.1f} min" for k in sweeps if k in t)
    sweep_train = "".join(f", {k.replace('_', ' ')} {res['ablations'][k]['trial_time_s'] / 60:.1f} min"
                          for k in sweeps if k in res["ablations"])
    cmp_soft = _compare(soft["test_acc"], REPORT_TEST_ACC["softmax"], res["quick"], res["data"])
    cmp_two = _compare(two["test_acc"], REPORT_TEST_ACC["two_layer"], res["quick"], res["data"])
    return f"""# CIFAR-10: softmax classifier and two-layer network (nnlite){' - smoke test' if res['quick'] else ''}

Command: `{res['command']}`
{quick_text}
Data: {res['data']} ({res['data_check']})

Compute: {describe_compute(compute)}.

Split: {res['n_train']} training images, {res['n_val']} validation images (a class-stratified random
draw from the training set, fixed seed {trials.SPLIT_SEED}, the same for every run), {res['n_test']} test images.
Preprocessing: {res['preprocessing_description']}; computed on the training split only and applied as the
model's first layers (Flatten + Normalize), so the models take images in [0, 1].
Training: plain mini-batch SGD (no momentum), the learning rate multiplied by `lr_decay` after every
epoch, softmax cross-entropy loss, optional L2 term `reg/2 * ||W||^2` on the weights (not the biases).
No early stopping: every test accuracy below belongs to the weights of the last epoch.
In the curves, "train" accuracy is measured after each epoch on a fixed 1,000-image subset of the
training split (like validation: weights of the end of the epoch); "train" loss is the epoch's running
mean over its mini-batches. Seed {res['seed']}.

## 1. Optimization and fitting

A 1-{toy['hidden']}-1 tanh network fitted to {toy['n_points']} noisy samples of `sin(x) + 0.3x` by
full-batch gradient descent written out in the script (forward, `L = 1/2 sum (f(x) - y)^2`, backward,
`w -= lr * dL/dw`) with learning rate {toy['lr']:g}: loss {toy['initial_loss']:.3f} -> {toy['final_loss']:.4f}
after {toy['iterations']} iterations.

![optimization](optimization.png)

## 2. Softmax classifier

One Linear layer (3,072 -> 10) on the normalized pixels, {_init_text(soft_cfg)}.

### 2.2 Hyper-parameters and train vs validation accuracy
The report's defaults: learning rate {soft_cfg['lr']:g}, lr decay {soft_cfg['lr_decay']:g},
{soft['epochs']} epochs, batch size {soft_cfg['batch_size']}, reg {soft_cfg['reg']:g}.

![softmax curves](softmax_curves.png)

Last epoch ({soft['epochs']}): train (subset) accuracy {soft['train_acc']:.4f},
validation accuracy {soft['val_acc']:.4f}
(best {soft['best_val_acc']:.4f}).

### 2.3 Test accuracy: {soft['test_acc'] * 100:.2f}%
{_seeds_text(res['softmax']['over_seeds'])}
Weights of epoch {soft['epochs']} (the last) {cmp_soft}.

{_ablation_section(res, 'softmax_ablation', '2.4', 'the softmax classifier')}

## 3. Softmax classifier with a hidden layer (two-layer network)

Linear(3,072 -> {two_cfg['hidden']}) - ReLU - Linear({two_cfg['hidden']} -> 10), {_init_text(two_cfg)}.

### 3.2 Hyper-parameters and train vs validation accuracy
The report's: learning rate {two_cfg['lr']:g}, lr decay {two_cfg['lr_decay']:g},
{two['epochs']} epochs, batch size {two_cfg['batch_size']}, reg {two_cfg['reg']:g}, hidden {two_cfg['hidden']}.

![two-layer curves](two_layer_curves.png)

Last epoch ({two['epochs']}): train (subset) accuracy {two['train_acc']:.4f},
validation accuracy {two['val_acc']:.4f}
(best {two['best_val_acc']:.4f}).

### 3.3 Test accuracy: {two['test_acc'] * 100:.2f}%
{_seeds_text(res['two_layer']['over_seeds'])}
Weights of epoch {two['epochs']} (the last) {cmp_two};
the report reached 52.72% with hidden 200.

{_ablation_section(res, 'two_layer_ablation', '3.4', 'the two-layer network')}

Part 4 of the report (fooling images for this network): `python examples/fooling_images.py`.

## Wall time

This invocation: {t['total'] / 60:.1f} min: data {t['load']:.0f} s, section 1 {t['optimization']:.0f} s, softmax run
{t['softmax']:.0f} s, two-layer run {t['two_layer']:.0f} s{sweep_wall}
(sweeps: --jobs {args.jobs}{f', Dask scheduler {args.dask_scheduler}' if args.dask_scheduler else ''}).
Machine: {res['machine']['cpus']} CPUs, Python {res['machine']['python']}, NumPy {res['machine']['numpy']}.
Runs found finished in the results files are reused, not retrained, so a resumed invocation is short.
Training time recorded in the results files (sum of the trials' wall times, whenever they ran):
softmax {sum(res['softmax']['over_seeds']['trial_wall_time_s']):.0f} s, two-layer
{sum(res['two_layer']['over_seeds']['trial_wall_time_s']):.0f} s{sweep_train}.
"""


# %% metrics.json and report.md
times["total"] = time.perf_counter() - t_start
results = {
    "test_accuracy": {"softmax": soft["test_acc"], "two_layer": two["test_acc"]},
    "report_test_accuracy": REPORT_TEST_ACC,
    "optimization": {"lr": toy["lr"], "iterations": toy["iterations"], "n_points": toy["n"],
                     "hidden": toy["hidden"], "initial_loss": float(toy["loss"][0]),
                     "final_loss": float(toy["loss"][-1]),
                     "loss_curve": toy["loss"][np.unique(np.geomspace(1, toy["iterations"], 200).astype(int)) - 1]},
    "softmax": {"config": soft_row["config"], "metrics": soft, "trial_wall_time_s": soft_row["wall_time"],
                "over_seeds": soft_row["seeds"]},
    "two_layer": {"config": two_row["config"], "metrics": two, "trial_wall_time_s": two_row["wall_time"],
                  "over_seeds": two_row["seeds"]},
    "ablations": studies,
    "ablation_epochs": ab_epochs,
    "wall_time_s": times,
    "seed": args.seed, "quick": quick, "data": source, "data_check": data_check,
    "preprocessing": args.preprocess,
    "preprocessing_description": trials.describe_preprocessing(args.preprocess),
    "n_train": d["y_train"].shape[0], "n_val": d["y_val"].shape[0], "n_test": d["y_test"].shape[0],
    "sweep": {"jobs": args.jobs, "dask_scheduler": args.dask_scheduler,
              "threads_per_worker": args.threads_per_worker},
    "workers": compute["workers"], "blas": compute["blas"],
    "command": command, "machine": machine_info(),
}
write_json(out / "metrics.json", results)
write_text(out / "report.md", make_report(results, soft_cfg, two_cfg, d, args))
print(f"softmax test accuracy {soft['test_acc']:.4f}, two-layer test accuracy {two['test_acc']:.4f}")
print(f"wrote {out}/metrics.json, report.md and figures; total {times['total']:.0f} s")
