# %% [markdown]
# # Fashion-MNIST report, questions 1-9: grid search, dropout, autoencoders, explanations
#
# The rest of the Fashion-MNIST course report (issue 16), beside examples/fashion_mnist.py
# (which builds and trains the classifier): Q4 a grid search over batch size x learning rate,
# then over the number of filters (through nnlite.sweep: resumable, --jobs); Q3/Q5/Q6 the final
# classifier with and without dropout at the same budget and how the epochs were chosen;
# Q7/Q8 a latent-size study of convolutional autoencoders (transposed convolutions) with a
# one-sample figure, a test-MSE table and curve and a reconstruction grid; Q9 local examples and
# counterexamples of the mistakes (nnlite.explain), tagged "overlapping labels" / "noise" /
# "underfitting" and grouped by confusion pair.
#
#     python examples/fashion_mnist_report.py --quick     # smoke test (CI), about a minute
#     python examples/fashion_mnist_report.py             # the full report (hours on 2 cores)
#
# Everything goes to runs/fashion_mnist_report/: metrics.json, report.md, PNG figures and the
# sweeps' results files (*.jsonl: rerunning resumes finished trials).

# %%
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent) if "__file__" in globals() else "examples")
import _fashion_report_trials as T  # noqa: E402
from _common import (Timer, base_parser, command_line, machine_info, nonnegative_int, number_list,  # noqa: E402
                     parse_args, positive_float, positive_int, prepare_out, quick_note, script_description,
                     unit_interval, write_json, write_text)

from nnlite import metrics  # noqa: E402
from nnlite.weights import load_weights, save_weights  # noqa: E402
from nnlite.data import stratified_subset  # noqa: E402
from nnlite.explain import (TAGS, confusion_groups, embed, explain_mistakes, plot_explanations,  # noqa: E402
                            rank_mistakes)
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.optim import Adam  # noqa: E402
from nnlite.sweep import Study, add_sweep_args, run_study, sweep_options, trial_id  # noqa: E402
from nnlite.train import EarlyStopping, Trainer  # noqa: E402


def _filters(text):
    """'32,64' -> (32, 64); a grid: '16x32,32x64' -> [(16, 32), (32, 64)]."""
    try:
        if "x" in text:
            vals = [tuple(int(a) for a in item.split("x")) for item in text.split(",")]
        else:
            vals = [tuple(int(a) for a in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected filters like 32,64 (or a grid 16x32,32x64), got {text!r}") from None
    if any(len(v) != 2 or min(v) < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"each filter setting needs two positive counts, got {text!r}")
    return vals


p = base_parser(script_description(globals().get("__file__"), "Fashion-MNIST report Q1-Q9"), "fashion_mnist_report")
p.add_argument("--epochs", type=positive_int, default=10, help="maximum epochs of the final classifiers")
p.add_argument("--dropout", type=unit_interval, default=0.5, help="dropout rate of the final classifier (0 disables)")
p.add_argument("--filters", type=_filters, default=None,
               help="filters of the two convs, e.g. 32,64 (default: the best of the filter grid)")
p.add_argument("--batch-size", type=positive_int, default=None, help="final batch size (default: the grid's best)")
p.add_argument("--lr", type=positive_float, default=None, help="final Adam learning rate (default: the grid's best)")
p.add_argument("--no-batch-norm", dest="batch_norm", action="store_false", help="plain CNN, no batch norm")
p.add_argument("--schedule", choices=("constant", "cosine"), default="cosine",
               help="learning-rate schedule: constant, or warm-up + cosine decay per step")
p.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=True,
               help="stop on validation accuracy (patience 3) and restore the best weights (default: on)")
p.add_argument("--search-size", type=positive_int, default=12000,
               help="images of the class-stratified training subset used by the grid searches")
p.add_argument("--search-epochs", type=positive_int, default=6, help="maximum epochs of a grid-search trial")
p.add_argument("--grid-batch", type=number_list(int, "integers"), default=[32, 64, 128, 256],
               help="batch sizes of grid 1")
p.add_argument("--grid-lr", type=number_list(float, "numbers"), default=[1e-4, 3e-4, 1e-3, 3e-3],
               help="learning rates of grid 1")
p.add_argument("--grid-filters", type=_filters, default=[(16, 32), (32, 64), (64, 128)], help="filter pairs of grid 2")
p.add_argument("--latents", type=number_list(int, "integers"), default=list(T.LATENT_SIZES),
               help="latent sizes of the autoencoder study")
p.add_argument("--ae-epochs", type=positive_int, default=10, help="epochs per autoencoder")
p.add_argument("--ae-filters", type=_filters, default=[(32, 64)], help="filters of the autoencoders' two convs")
p.add_argument("--neighbours", type=positive_int, default=1, help="k local (counter)examples per mistake")
p.add_argument("--skip", default="", help="comma-separated sections to skip: grid, final, latent, explain")
p.add_argument("--n-test", type=nonnegative_int, default=0, help="test images used (0 = all)")
add_sweep_args(p)
args = parse_args(p)
skip = {s.strip() for s in args.skip.split(",") if s.strip()}
if skip - {"grid", "final", "latent", "explain"}:
    p.error(f"--skip: unknown sections {sorted(skip - {'grid', 'final', 'latent', 'explain'})}")
if "final" in skip:
    skip.add("explain")                  # the explanations need the final classifier
out = prepare_out(args.out)
rng = np.random.default_rng(args.seed)
sweep_kw = sweep_options(args)
if args.quick:                           # a smoke test: tiny subsets and budgets everywhere
    args.search_size, args.search_epochs, args.epochs, args.ae_epochs = 600, 1, 1, 1
    args.grid_batch, args.grid_lr, args.grid_filters = [64, 128], [1e-3, 3e-3], [(8, 16), (16, 32)]
    args.latents, args.ae_filters, args.n_test = [16, 8], [(8, 16)], 500
results = {"command": command_line("fashion_mnist_report.py"), "seed": args.seed, "quick": args.quick}
timers = {}

# %% Data (Q1, Q2): full Fashion-MNIST if installed, else the bundled subset (said so)
ds = T.data()
x_train, y_train = ds.x_train, ds.y_train
n_quick = 2000 if args.quick else 0
if n_quick:
    keep = stratified_subset(y_train, n_quick, args.seed)
    x_train, y_train = x_train[keep], y_train[keep]
test_keep = stratified_subset(ds.y_test, args.n_test, args.seed) if args.n_test else np.arange(ds.y_test.size)
x_test, y_test = ds.x_test[test_keep], ds.y_test[test_keep]
counts = np.bincount(ds.y_train, minlength=10)
print(f"data: {ds.source}\n      train {x_train.shape}, test {x_test.shape}")
results.update(data=ds.source, n_train=int(y_train.size), n_test=int(y_test.size), class_counts=counts)

# %% Q4 grid search 1: batch size x learning rate on a stratified subset (nnlite.sweep)
base = {"batch_size": 128, "lr": 1e-3, "filters": [32, 64], "dropout": 0.5, "batch_norm": args.batch_norm,
        "epochs": args.search_epochs, "n_train": args.search_size, "early_stopping": True, "patience": 2,
        "schedule": "constant", "val_fraction": 0.2}
if args.quick:
    base["n_test"] = 500
best = dict(base)
if "grid" not in skip:
    grid1 = Study(base, grid={"batch_size": args.grid_batch, "lr": args.grid_lr}, seeds=[args.seed], name="bs_lr")
    with Timer() as t:
        rows1 = run_study(grid1, T.classifier_trial, out / "grid_bs_lr.jsonl", **sweep_kw)
    timers["grid_bs_lr"] = t.seconds                  # this invocation (0 when resumed)
    ok1 = [r for r in rows1 if r["status"] == "ok"]
    heat = np.full((len(args.grid_batch), len(args.grid_lr)), np.nan)
    for r in ok1:
        heat[args.grid_batch.index(r["config"]["batch_size"]), args.grid_lr.index(r["config"]["lr"])] = \
            r["metrics"]["best_val_acc"]
    top = max(ok1, key=lambda r: r["metrics"]["best_val_acc"])
    best.update(batch_size=top["config"]["batch_size"], lr=top["config"]["lr"])

    # %% Q4 grid search 2: filters at the chosen batch size and learning rate
    base2 = dict(base, batch_size=best["batch_size"], lr=best["lr"])
    grid2 = Study(base2, grid={"filters": [list(f) for f in args.grid_filters]}, seeds=[args.seed], name="filters")
    with Timer() as t:
        rows2 = run_study(grid2, T.classifier_trial, out / "grid_filters.jsonl", **sweep_kw)
    timers["grid_filters"] = t.seconds
    ok2 = [r for r in rows2 if r["status"] == "ok"]
    trial_s = (sum(r["metrics"]["wall_s"] for r in ok1), sum(r["metrics"]["wall_s"] for r in ok2))
    top2 = max(ok2, key=lambda r: r["metrics"]["best_val_acc"])
    best["filters"] = top2["config"]["filters"]

    from matplotlib.figure import Figure

    from nnlite.viz import save_figure
    fig = Figure(figsize=(1.3 * len(args.grid_lr) + 2.0, 0.8 * len(args.grid_batch) + 1.6), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(heat, cmap="viridis")
    ax.set_xticks(range(len(args.grid_lr)), [f"{v:g}" for v in args.grid_lr])
    ax.set_yticks(range(len(args.grid_batch)), [str(v) for v in args.grid_batch])
    ax.set_xlabel("learning rate (Adam)")
    ax.set_ylabel("batch size")
    for (i, j), v in np.ndenumerate(heat):
        ax.text(j, i, "-" if np.isnan(v) else f"{100 * v:.1f}", ha="center", va="center",
                color="white" if np.isnan(v) or v < np.nanmean(heat) else "black", fontsize=9)
    fig.colorbar(im, ax=ax, label="best validation accuracy")
    ax.set_title(f"Grid 1 on {args.search_size:,} stratified training images", fontsize=9)
    save_figure(fig, out / "q4_grid_bs_lr.png")
    grid_table1 = ("| batch \\ lr | " + " | ".join(f"{v:g}" for v in args.grid_lr) + " |\n|"
                   + "---|" * (len(args.grid_lr) + 1) + "\n")
    grid_table1 += "\n".join(f"| {b} | " + " | ".join("-" if np.isnan(v) else f"{100 * v:.2f}" for v in heat[i]) + " |"
                              for i, b in enumerate(args.grid_batch))
    grid_table2 = "| filters | best val acc (%) | best epoch | gap train-val at best (pts) | wall (s) |\n" \
        + "|---|---|---|---|---|\n" \
        + "\n".join(f"| {tuple(r['config']['filters'])} | {100 * r['metrics']['best_val_acc']:.2f} | "
                    f"{r['metrics']['best_epoch']} | {100 * r['metrics']['gap_at_best']:.2f} | "
                    f"{r['metrics']['wall_s']:.0f} |"
                    for r in ok2)
    results["grid_bs_lr"] = [{"batch_size": r["config"]["batch_size"], "lr": r["config"]["lr"], **{
        k: r["metrics"][k] for k in ("best_val_acc", "best_epoch", "epochs_run", "wall_s")}} for r in ok1]
    results["grid_filters"] = [{"filters": r["config"]["filters"], **{
        k: r["metrics"][k] for k in ("best_val_acc", "best_epoch", "epochs_run", "gap_at_best", "wall_s")}}
        for r in ok2]
    spread = float(np.nanmax(heat.max(axis=0) - heat.min(axis=0)))
    results["grid_choice"] = {k: best[k] for k in ("batch_size", "lr", "filters")}
for flag, key in ((args.batch_size, "batch_size"), (args.lr, "lr")):
    if flag is not None:
        best[key] = flag
if args.filters is not None:
    best["filters"] = list(args.filters[0])
print("chosen:", {k: best[k] for k in ("batch_size", "lr", "filters")})

# %% Q3/Q5/Q6 final classifier on all training images: dropout on vs off, same budget
if "final" not in skip:
    tr_idx, va_idx = T.stratified_split(y_train, 0.1, T.SPLIT_SEED)
    finals = {}
    for name, p_drop in (("dropout", args.dropout), ("no dropout", 0.0)):
        frng = np.random.default_rng(args.seed)
        model = T.build_classifier(float(x_train[tr_idx].mean()), float(x_train[tr_idx].std()), frng,
                                   tuple(best["filters"]), p_drop, args.batch_norm)
        opt = Adam(model.parameters(), lr=best["lr"])
        steps = -(-tr_idx.size // best["batch_size"])
        stopper = EarlyStopping("val_acc", patience=3, restore_best_weights=True) if args.early_stopping else None
        sched = T._schedule(args.schedule, opt, args.epochs, steps)
        trainer = Trainer(model, SoftmaxCrossEntropy(), opt, schedule=sched,
                          schedule_interval="step", callbacks=[stopper] if stopper else [],
                          batch_size=best["batch_size"], rng=frng, progress=False)
        # a finished final model is reused by a later run with the same settings (file named by them)
        fcfg = {"dropout": p_drop, "filters": list(best["filters"]), "lr": best["lr"], "epochs": args.epochs,
                "batch_size": best["batch_size"], "schedule": args.schedule, "early_stopping": args.early_stopping,
                "batch_norm": args.batch_norm, "seed": args.seed, "n_train": int(y_train.size)}
        saved = out / f"final_{trial_id(fcfg)}"
        if saved.with_suffix(".json").exists():
            info = json.loads(saved.with_suffix(".json").read_text())
            load_weights(saved.with_suffix(".npz"), model)         # checksummed; WeightsError if damaged
            hist, train_s = info["history"], info["train_s"]
            print(f"{name}: loaded {saved}.npz (trained in {train_s:.0f} s by an earlier run)")
        else:
            with Timer() as t:
                hist = trainer.fit(x_train[tr_idx], y_train[tr_idx], epochs=args.epochs,
                                   val_data=(x_train[va_idx], y_train[va_idx])).to_dict()
            train_s = t.seconds
            save_weights(saved.with_suffix(".npz"), model)         # atomic: whole or absent
            write_json(saved.with_suffix(".json"), {"config": fcfg, "history": hist, "train_s": train_s})
        test = trainer.evaluate(x_test, y_test)
        finals[name] = {"model": model, "trainer": trainer, "history": hist, "test_acc": test["acc"],
                        "train_s": train_s, "best_epoch": int(np.argmax(hist["val_acc"])) + 1}
        print(f"{name}: test acc {test['acc']:.4f}, {len(hist['loss'])} epochs, trained in {train_s:.0f} s")
    from nnlite import viz
    ep = np.arange(1, max(len(f["history"]["acc"]) for f in finals.values()) + 1)
    curves = {}
    for name, f in finals.items():
        for m, label in (("acc", "train"), ("val_acc", "validation")):
            h = np.asarray(f["history"][m], float)
            curves[f"{label}, {name}"] = np.pad(h, (0, ep.size - h.size), constant_values=np.nan)
    viz.plot_curve(ep, curves, xlabel="epoch", ylabel="accuracy", path=out / "q5_dropout_histories.png",
                   title=f"Dropout {args.dropout:g} vs none\nsame budget, at most {args.epochs} epochs")
    final = finals["dropout"]
    pred = final["trainer"].predict(x_test)
    report_cls = metrics.classification_report(y_test, pred, class_names=ds.classes)
    cm = metrics.confusion_matrix(y_test, pred, num_classes=10)
    results["final"] = {name: {"test_acc": f["test_acc"], "epochs_run": len(f["history"]["loss"]),
                               "best_epoch": f["best_epoch"], "train_s": f["train_s"], "history": f["history"],
                               "gap_at_best": (f["history"]["acc"][f["best_epoch"] - 1]
                                               - f["history"]["val_acc"][f["best_epoch"] - 1])}
                        for name, f in finals.items()}
    results["final_choice"] = {"batch_size": best["batch_size"], "lr": best["lr"], "filters": best["filters"],
                               "dropout": args.dropout, "schedule": args.schedule, "batch_norm": args.batch_norm}

# %% Q7/Q8 autoencoder latent study (nnlite.sweep; the weights are saved to reuse below)
if "latent" not in skip:
    ae_out = out if not args.quick else out / "quick"
    study = T.latent_study(ae_out, epochs=args.ae_epochs, latents=args.latents, filters=args.ae_filters[0],
                           n_train=n_quick, n_test=500 if args.quick else 0, seeds=[args.seed])
    with Timer() as t:
        lrows = run_study(study, T.autoencoder_trial, ae_out / "latent.jsonl", **sweep_kw)
    timers["latent_study"] = t.seconds
    lok = sorted([r for r in lrows if r["status"] == "ok"], key=lambda r: -r["config"]["latent"])
    lat = [r["config"]["latent"] for r in lok]
    mse = [r["metrics"]["test_mse"] for r in lok]
    from nnlite import viz
    viz.plot_curve(lat, {"test MSE": mse}, xlabel="latent size", ylabel="test MSE (pixels in [0, 1])",
                   path=out / "q7_mse_vs_latent.png", title="Conv autoencoder: test MSE per latent size")
    aes = {r["config"]["latent"]: T.load_autoencoder(r["config"]) for r in lok}
    _, ae_val = T.ae_split(ds.x_train.shape[0] if not n_quick else n_quick)
    x_ae_pool = ds.x_train if not n_quick else ds.x_train[stratified_subset(ds.y_train, n_quick, T.SPLIT_SEED)]
    sample = x_ae_pool[ae_val[:1]]                               # one validation sample (Q7)
    recs = [sample] + [aes[L].reconstruct(sample) for L in lat]
    viz.plot_image_rows([np.concatenate(recs)], row_titles=["val sample"],
                        col_titles=["input"] + [f"latent {L}" for L in lat],
                        cell_titles=[[""] + [f"MSE {np.mean((r - sample) ** 2):.4f}" for r in recs[1:]]],
                        path=out / "q7_one_sample_all_latents.png",
                        title="One validation image reconstructed at every latent size")
    final_latent = lat[0]
    shown = x_test[np.concatenate([np.flatnonzero(y_test == c)[:1] for c in range(10)])]
    rec_final = aes[final_latent].reconstruct(shown)
    viz.plot_image_rows([shown, rec_final, aes[lat[-1]].reconstruct(shown)],
                        row_titles=["test input", f"latent {final_latent}", f"latent {lat[-1]}"],
                        col_titles=list(ds.classes), path=out / "q8_reconstructions.png",
                        title="Test inputs and their reconstructions")
    results["latent_study"] = [{"latent": r["config"]["latent"], "test_mse": r["metrics"]["test_mse"],
                                "val_mse_per_epoch": r["metrics"]["val_mse"], "epochs": r["metrics"]["epochs"],
                                "train_s": r["metrics"]["train_s"]} for r in lok]
    targets = {32: 0.009, 8: 0.016}
    results["latent_targets"] = {str(L): {"target": tgt, "measured": m, "met": m <= tgt}
                                 for L, tgt in targets.items() for r in lok
                                 if r["config"]["latent"] == L for m in [r["metrics"]["test_mse"]]}

# %% Q9 explanations: local examples and counterexamples of the final classifier's mistakes
if "explain" not in skip:
    model = finals["dropout"]["model"]
    spaces = {"pixels": (embed(x_test), embed(x_train))}
    spaces["features"] = (embed(x_test, "features", model=model), embed(x_train, "features", model=model))
    if "latent" not in skip:
        ae = aes[final_latent]
        spaces[f"latent{final_latent}"] = (ae.encode(x_test), ae.encode(x_train))
    explained, tag_counts = {}, {}
    with Timer() as t:
        for space, (fq, ft) in spaces.items():
            ex = explain_mistakes(fq, y_test, pred, ft, y_train, k=args.neighbours, space=space)
            explained[space] = ex
            tag_counts[space] = {tag: int(np.count_nonzero(ex.tags == tag)) for tag in TAGS}
    timers["explain"] = t.seconds
    ex = explained["pixels"]
    groups = confusion_groups(y_test, pred, ds.classes, tags=ex.tags)
    # four chosen mistakes: the most surprising of each tag, then the next by margin
    order = rank_mistakes(ex, "margin")
    chosen = []
    for tag in TAGS:
        hits = [i for i in order if ex.tags[i] == tag and i not in chosen]
        chosen += hits[:1]
    chosen += [i for i in order if i not in chosen][:4 - len(chosen)]
    plot_explanations(x_test, x_train, ex, chosen, ds.classes, path=out / "q9_four_mistakes.png",
                      title="Q9: four mistakes (pixel space)")
    top_pair = groups[0]
    in_pair = [i for i in order if ex.true[i] == top_pair["true"] and ex.pred[i] == top_pair["pred"]][:4]
    plot_explanations(x_test, x_train, ex, in_pair, ds.classes, path=out / "q9_top_confusion_pair.png",
                      title=f"{top_pair['true_name']} -> {top_pair['pred_name']} (most frequent)")
    fex = explained["features"]
    plot_explanations(x_test, x_train, fex, rank_mistakes(fex, "margin")[:4], ds.classes,
                      path=out / "q9_feature_space.png", title="Penultimate-feature space")
    results["explanations"] = {"tag_counts": tag_counts, "rule": ex.rule, "n_mistakes": int(len(ex)),
                               "groups": [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                           for k, v in g.items() if k != "indices"} for g in groups],
                               "chosen_test_indices": [int(ex.query[i]) for i in chosen]}

# %% report.md in the course report's order (Q1-Q9)
results["wall_time_s"] = timers
results["machine"] = machine_info()
write_json(out / "metrics.json", results)


def _section_missing(name):
    return f"_Not run in this invocation (`--skip {name}`)._\n"


md = [f"# Fashion-MNIST report (nnlite), questions 1-9\n\nCommand: `{results['command']}`\n\nData: {ds.source}; "
      f"{y_train.size:,} training and {y_test.size:,} test images.\n"]
if args.quick:
    md.append(quick_note("tiny subsets, one epoch per model, small grids and latent sizes 16 and 8"))
md.append("## Q1 Challenging aspects\nLow resolution (28x28 grayscale) and visually overlapping classes "
          "(shirt / T-shirt / pullover / coat); Q9 measures how often each pair is confused.\n")
md.append("## Q2 Metric\nAccuracy: the training classes are balanced "
          f"(per-class counts {counts.min():,}-{counts.max():,}), so accuracy is not dominated by one class.\n")
if "final" not in skip:
    fd, fn = results["final"]["dropout"], results["final"]["no dropout"]
    md.append(f"## Q3 Training and validation curves\n![histories](q5_dropout_histories.png)\n\n"
              f"With dropout {args.dropout:g}: best validation accuracy at epoch {fd['best_epoch']} of "
              f"{fd['epochs_run']}, train-validation gap there {100 * fd['gap_at_best']:.2f} points; without dropout: "
              f"epoch {fn['best_epoch']}, "
              f"gap {100 * fn['gap_at_best']:.2f} points (training accuracy is the running accuracy of each epoch in "
              f"training mode, dropout active; validation accuracy is measured in eval mode after the epoch).\n")
if "grid" not in skip:
    md.append(f"## Q4 Hyper-parameters: two grids instead of one big one\nGrid 1 (batch size x learning rate) then "
              f"grid 2 (filters at the chosen batch size and learning rate), each trial on a class-stratified subset "
              f"of "
              f"**{args.search_size:,}** training images (20% of it held out for validation), at most "
              f"{args.search_epochs} epochs with early stopping on validation accuracy (patience 2); metric: best "
              f"validation accuracy (%).\n\n![grid 1](q4_grid_bs_lr.png)\n\n{grid_table1}\n\nLargest spread across "
              f"batch sizes at a fixed learning rate: {100 * spread:.2f} points. Grid choice: batch "
              f"{results['grid_choice']['batch_size']}, lr {results['grid_choice']['lr']:g}."
              f"\n\n{grid_table2}\n\nGrid choice of filters: {tuple(results['grid_choice']['filters'])}. "
              f"Summed trial wall times "
              f"(as measured when each trial ran): grid 1 {trial_s[0]:.0f} s, grid 2 {trial_s[1]:.0f} s.\n"
              + ("\nThe final models below use command-line overrides: "
                 + ", ".join(f"{k} {v}" for k, v in (("batch size", args.batch_size), ("lr", args.lr),
                                                     ("filters", args.filters and args.filters[0])) if v is not None)
                 + ".\n" if (args.batch_size, args.lr, args.filters) != (None, None, None) else ""))
else:
    md.append("## Q4 Hyper-parameters\n" + _section_missing("grid"))
if "final" not in skip:
    md.append(f"## Q5 Did dropout help?\nSame budget (at most {args.epochs} epochs, early stopping "
              f"{'on' if args.early_stopping else 'off'}, {args.schedule} schedule, batch {best['batch_size']}, lr "
              f"{best['lr']:g}, filters {tuple(best['filters'])}): test accuracy **{100 * fd['test_acc']:.2f}%** with "
              f"dropout {args.dropout:g} vs **{100 * fn['test_acc']:.2f}%** without "
              f"({100 * (fd['test_acc'] - fn['test_acc']):+.2f} points); train-validation gap at the best epoch "
              f"{100 * fd['gap_at_best']:.2f} vs {100 * fn['gap_at_best']:.2f} points.\n")
    md.append(f"## Q6 Epochs and stopping criterion\nAt most {args.epochs} epochs; "
              + ("early stopping on the validation accuracy (10% stratified split, patience 3) restored the weights "
                 f"of epoch {fd['best_epoch']} ({fd['epochs_run']} run)." if args.early_stopping else
                 f"no early stopping: all {fd['epochs_run']} epochs; the validation curve above shows where it peaked "
                 f"(epoch {fd['best_epoch']}).")
              + f" The seed report trained 8 epochs without validation monitoring.\n\n```\n{report_cls.table()}\n```\n")
else:
    md.append("## Q3, Q5, Q6\n" + _section_missing("final"))
if "latent" not in skip:
    table = "| latent | test MSE | epochs | train time (s) |\n|---|---|---|---|\n" + "\n".join(
        f"| {r['latent']} | {r['test_mse']:.4f} | {r['epochs']} | {r['train_s']:.0f} |"
        for r in results["latent_study"])
    monotone = all(a <= b for a, b in zip(mse, mse[1:]))
    tg = "; ".join(f"latent {L}: {v['measured']:.4f} (target <= {v['target']}, {'met' if v['met'] else 'NOT met'})"
                   for L, v in results["latent_targets"].items())
    md.append(f"## Q7 Reconstruction vs latent size\nConv autoencoder (filters {tuple(args.ae_filters[0])}, strided "
              f"convs down, transposed convs up, Sigmoid output, MSE loss, Adam lr 2e-3 with cosine decay, "
              f"{args.ae_epochs} epoch(s) each), trained on the "
              f"training images minus {T.AE_VAL_SIZE if not n_quick else n_quick // 10:,} validation images."
              f"\n\n{table}\n\n"
              f"Targets: {tg or 'sizes 32/8 not in this run'}.\n\n![mse](q7_mse_vs_latent.png)\n\n"
              f"![one sample](q7_one_sample_all_latents.png)\n\nMeasured: the test MSE "
              f"{'grows at every step' if monotone else 'does not grow monotonically'} "
              f"as the code shrinks ({' -> '.join(f'{m:.4f}' for m in mse)} for latent {' -> '.join(map(str, lat))}); "
              f"the per-image MSE above each reconstruction of the one-sample figure quantifies the blur seen by "
              f"eye.\n")
    md.append(f"## Q8 Test inputs and reconstructions\n![reconstructions](q8_reconstructions.png)\n\nTop: one test "
              f"image per class; middle: the final autoencoder (latent {final_latent}); bottom: latent {lat[-1]}.\n")
else:
    md.append("## Q7, Q8\n" + _section_missing("latent"))
if "explain" not in skip:
    counts_table = "| space | " + " | ".join(TAGS) + " |\n|---|---|---|---|\n" + "\n".join(
        f"| {s} | " + " | ".join(str(c[t]) for t in TAGS) + " |" for s, c in tag_counts.items())
    grp = "| true -> predicted | mistakes | " + " | ".join(TAGS) + " |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {g['true_name']} -> {g['pred_name']} | {g['count']} | " + " | ".join(str(g["tags"][t]) for t in TAGS) + " |"
        for g in groups[:10])
    r = ex.rule
    md.append(f"## Q9 Explaining the mistakes\n{len(ex)} misclassified test images. For each: its nearest training "
              f"image of the true class (local example, distance d_e) and of the predicted class (local "
              f"counterexample, d_c), searched batched with a chunked distance matrix. Rule "
              f"(`nnlite.explain.tag_mistakes`), with the distances of correctly classified test images to their own "
              f"class as the scale: **noise** if min(d_e, d_c) > their {r['far_quantile']:.0%} quantile "
              f"({r['far_threshold']:.2f} in pixels); **underfitting** if d_e <= their {r['close_quantile']:.0%} "
              f"quantile ({r['close_threshold']:.2f}) and d_e < {r['margin']} d_c; **overlapping labels** otherwise."
              f"\n\n{counts_table}\n\nTop confusion pairs (pixel space):\n\n{grp}\n\n"
              f"![four mistakes](q9_four_mistakes.png)\n\n![top pair](q9_top_confusion_pair.png)\n\n"
              f"![feature space](q9_feature_space.png)\n\nSearch time over all spaces: {timers['explain']:.1f} s.\n")
else:
    md.append("## Q9\n" + _section_missing("explain"))
md.append(f"\nWall times (s): {json.dumps({k: round(v, 1) for k, v in timers.items()})}. Seed {args.seed}.\n")
write_text(out / "report.md", "\n".join(md))
print(f"wrote {out}/report.md, metrics.json and figures")
