# %% [markdown]
# # Land-cover transfer learning: frozen features + classical heads, fine-tuning, ensembles
#
# Mirrors the land-cover report (9 classes of 64x64x3 tiles in an HDF5 file, earth_data.h5):
# Q1 features of a pretrained VGG-style base fed to logistic regression, random forest, SVM and
# XGBoost (classification report and confusion heat map per model, comparison table);
# Q2 fine-tuning with the report's head (GAP, batch norm, dense 256 ReLU, dropout 0.5),
# augmentation (rotation, shifts, flip), last block vs last two blocks, progressive unfreezing
# with a step decay, EarlyStopping + ModelCheckpoint, a Keras-style summary, training from
# scratch; Q3 an ensemble of the fine-tuned models by majority, soft and weighted vote and
# stacking, with pairwise disagreement.
#
#     python examples/land_cover_transfer.py --data earth_data.h5   # the report's own file
#     python examples/land_cover_transfer.py                        # offline stand-in (below)
#     python examples/land_cover_transfer.py --quick                # smoke test (CI)
#
# Neither the land-cover file nor ImageNet weights are available offline. The stand-in: 9
# scene classes of Tiny ImageNet (alp, cliff, coral reef, lakeside, seashore, dam, lighthouse,
# suspension bridge, barn; 60 images each at 64x64, 80/20 stratified split) written to an HDF5
# file in the report's layout and read back through nnlite.data.load_hdf5; the source model is
# pretrained by nnlite on CIFAR-10 (a different data set) and cached as a checkpoint.

# %% Arguments, imports and the run folder
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(globals().get("__file__", "land_cover_transfer.py")).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (Timer, base_parser, command_line, machine_info, parse_args, positive_float,  # noqa: E402
                     positive_int, prepare_out, quick_note, script_description, write_json, write_text)

from nnlite import ensemble, metrics  # noqa: E402
from nnlite.classic import classic_heads  # noqa: E402
from nnlite.data import load_hdf5  # noqa: E402
from nnlite.data.transforms import Compose, RandomHorizontalFlip, RandomRotation, RandomShift  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.models import (ProgressiveUnfreezing, extract_features, freeze, make_optimizer,  # noqa: E402
                           param_counts, save_features, summary, unfreeze, vgg)
from nnlite.optim import Adam, StepLR  # noqa: E402
from nnlite.train import Callback, EarlyStopping, ModelCheckpoint, Trainer  # noqa: E402
from nnlite.weights import load_weights, save_weights  # noqa: E402

STANDIN_WNIDS = ["n09193705", "n09246464", "n09256479", "n09332890", "n09428293", "n03160309",
                 "n02814860", "n04366367", "n02793495"]
STANDIN_NAMES = ["alp", "cliff", "coral reef", "lakeside", "seashore", "dam", "lighthouse",
                 "suspension bridge", "barn"]

p = base_parser(script_description(globals().get("__file__"), "land-cover transfer learning"),
                "land_cover_transfer")
p.add_argument("--data", default=None, help="the report's HDF5 file (earth_data.h5); default: build the "
               "offline Tiny ImageNet stand-in")
p.add_argument("--x-train-key", default="X_train", help="HDF5 dataset of the training images (N, 64, 64, 3)")
p.add_argument("--y-train-key", default="y_train", help="HDF5 dataset of the training labels (N,) or one-hot")
p.add_argument("--x-val-key", default="X_val", help="HDF5 dataset of the validation images")
p.add_argument("--y-val-key", default="y_val", help="HDF5 dataset of the validation labels")
p.add_argument("--size", type=int, choices=(16, 32, 64), default=32,
               help="input resolution the networks see (64x64 tiles are average-pooled down; "
                    "32 keeps the pure-NumPy run within minutes)")
p.add_argument("--seeds", type=positive_int, default=3, help="seeds per fine-tuning variant (mean and spread)")
p.add_argument("--epochs", type=positive_int, default=None,
               help="epochs per fine-tuning run (default 15; 2 with --quick)")
p.add_argument("--pretrain-epochs", type=positive_int, default=None,
               help="source pretraining epochs on CIFAR-10 (default 6; 1 with --quick)")
p.add_argument("--pretrain-n", type=positive_int, default=None,
               help="CIFAR-10 images for pretraining (default all 17,044 available; 1,000 with --quick)")
p.add_argument("--lr", type=positive_float, default=1e-3,
               help="Adam learning rate of the head (and of scratch training)")
p.add_argument("--ft-lr", type=positive_float, default=3e-4, help="Adam learning rate of unfrozen base blocks")
p.add_argument("--patience", type=positive_int, default=5, help="EarlyStopping patience (val_loss)")
p.add_argument("--source-cache", default=None,
               help="checkpoint of the pretrained source model (default: <out>/source_vgg_<size>px_n<N>_<E>ep.npz); "
                    "reused when present")
args = parse_args(p)
QUICK = args.quick
EPOCHS = args.epochs or (2 if QUICK else 15)
PRE_EPOCHS = args.pretrain_epochs or (1 if QUICK else 6)
PRE_N = args.pretrain_n or (1000 if QUICK else None)
SEEDS = list(range(args.seed, args.seed + (1 if QUICK else args.seeds)))
WIDTHS, CONVS = (16, 32, 64, 128, 128), (1, 1, 1, 1, 1)
out = prepare_out(args.out)
t_start = time.perf_counter()
walls = {}

# %% [markdown]
# ## 1. Data: an HDF5 file in the report's layout
# X_train (N, 64, 64, 3) uint8, y_train (N,), X_val, y_val; read with nnlite.data.load_hdf5
# (dataset names configurable). Offline the stand-in file is written first, then read back
# through the same loader.

# %%
def build_standin(path):
    """9 Tiny ImageNet scene classes (all 50 validation + 10 training images per class) ->
    an 80/20 stratified split written as X_train / y_train / X_val / y_val."""
    import h5py
    from nnlite.data import find_dataset, read_image_folder, stratified_split
    root = find_dataset("tiny_imagenet").path
    xv, yv, _ = read_image_folder(root / "val.zip", split="val", classes=STANDIN_WNIDS, mode="RGB")
    with np.load(root / "train.npz", allow_pickle=False) as z:
        xt, yt = z["x"], z["y"]
    all_wnids = [line.split("\t")[0] for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
    keep = np.isin(yt, [all_wnids.index(w) for w in STANDIN_WNIDS])
    remap = {all_wnids.index(w): i for i, w in enumerate(STANDIN_WNIDS)}
    x = np.concatenate([xv, xt[keep]])
    y = np.concatenate([yv, np.array([remap[int(v)] for v in yt[keep]], dtype=np.int64)])
    tr, va = stratified_split(y, 0.2, 0)
    with h5py.File(path, "w") as f:
        f.create_dataset("X_train", data=x[tr])
        f.create_dataset("y_train", data=y[tr])
        f.create_dataset("X_val", data=x[va])
        f.create_dataset("y_val", data=y[va])
        f.attrs["classes"] = ",".join(STANDIN_NAMES)
    return path


with Timer() as t_data:
    if args.data:
        data_path, class_names, data_note = Path(args.data), None, f"the report's file `{args.data}`"
    else:
        data_path = out / "target_standin.h5"
        if not data_path.exists():
            build_standin(data_path)
        class_names, data_note = STANDIN_NAMES, ("offline stand-in: 9 Tiny ImageNet scene classes (60 images "
                                                 "each, 64x64), 80/20 stratified split, written to "
                                                 f"`{data_path.name}` in the report's layout")
    ds = load_hdf5(data_path, args.x_train_key, args.y_train_key, args.x_val_key, args.y_val_key,
                   classes=class_names)
walls["data"] = t_data.seconds
class_names = list(ds.classes)
C = len(class_names)


def resize(x, size):
    f = x.shape[2] // size
    if f == 1:
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c, h // f, f, w // f, f).mean(axis=(3, 5)))


xtr, ytr = resize(ds.x_train, args.size), ds.y_train
xva, yva = resize(ds.x_test, args.size), ds.y_test
if QUICK:
    idx = np.concatenate([np.flatnonzero(ytr == c)[:6] for c in range(C)])
    xtr, ytr = xtr[idx], ytr[idx]
print(f"target: {xtr.shape[0]} train / {xva.shape[0]} val images, {C} classes, at {args.size}x{args.size}")

# %% [markdown]
# ## 2. The source model: a VGG-style base pretrained by nnlite on CIFAR-10 (cached)

# %%
def build(seed, num_classes):
    return vgg(widths=WIDTHS, convs=CONVS, num_classes=num_classes, batch_norm=True, head_hidden=256,
               head_dropout=0.5, rng=seed)


augment = Compose([RandomRotation(10), RandomShift(max(1, args.size // 10)), RandomHorizontalFlip()])
source_path = (Path(args.source_cache) if args.source_cache else
               out / f"source_vgg_{args.size}px_n{PRE_N or 'all'}_{PRE_EPOCHS}ep.npz")   # the config names the cache
source = build(1000, 10)
with Timer() as t_pre:
    if source_path.exists():
        load_weights(source_path, source)
        pre_note = f"loaded from the cache `{source_path}` (pretrained earlier by this script)"
        print(pre_note)
    else:
        from nnlite.data import find_dataset, read_npz
        croot = find_dataset("cifar10").path
        parts = [read_npz(croot / f) for f in ("train_exact.npz", "test.npz")]
        cx = np.concatenate([a for a, _ in parts])
        cy = np.concatenate([b for _, b in parts])
        if PRE_N:
            pick = np.random.default_rng(0).permutation(cx.shape[0])[:PRE_N]
            cx, cy = cx[pick], cy[pick]
        cx = cx.transpose(0, 3, 1, 2).astype(np.float32) / 255
        cx = resize(cx, args.size) if args.size <= 32 else np.repeat(np.repeat(cx, 2, 2), 2, 3)
        opt = Adam(source.parameters(), lr=2e-3)
        hist = Trainer(source, SoftmaxCrossEntropy(), opt, schedule=StepLR(opt, 3, 0.5), batch_size=64, rng=0,
                       transform=augment, progress="auto").fit(cx, cy.astype(np.int64), epochs=PRE_EPOCHS,
                                                              val_split=0.05)
        pre_acc = float(hist["val_acc"][-1])
        save_weights(source_path, source, extra={"pretrained_on": "CIFAR-10", "n": int(cx.shape[0]),
                                                 "epochs": PRE_EPOCHS, "size": args.size, "val_acc": pre_acc})
        pre_note = (f"pretrained now on {cx.shape[0]:,} CIFAR-10 images for {PRE_EPOCHS} epochs "
                    f"(CIFAR-10 held-out 5% accuracy {pre_acc:.3f}, {time.perf_counter() - t_pre.start:.0f} s) "
                    f"and cached in `{source_path}`")
        print(pre_note)
walls["pretraining"] = t_pre.seconds
base_state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}


def pretrained(seed):
    """The source base (block1..block5) with a fresh head for the 9 target classes."""
    m = build(seed, C)
    state = m.state_dict()
    state.update(base_state)
    m.load_state_dict(state)
    return m


# %% [markdown]
# ## 3. Q1: frozen features + classical heads

# %%
with Timer() as t_q1:
    feat_model = pretrained(0)
    ftr = extract_features(feat_model, xtr, "block5", batch_size=128)
    fva = extract_features(feat_model, xva, "block5", batch_size=128)
    save_features(out / "features_block5.h5", ftr, ytr, val_features=fva, val_labels=yva)
    heads, heads_missing = classic_heads(seed=args.seed)
    if heads_missing:
        print(heads_missing)
    q1 = {}
    for name, head in heads.items():
        with Timer() as th:
            head.fit(ftr, ytr)
            pred = np.asarray(head.predict(fva)).astype(np.int64)
        rep = metrics.classification_report(yva, pred, class_names=class_names)
        d = rep.to_dict()
        q1[name] = {"report": rep, "pred": pred, "seconds": th.seconds, "accuracy": d["accuracy"],
                    "precision": d["weighted avg"]["precision"], "recall": d["weighted avg"]["recall"],
                    "f1": d["weighted avg"]["f1"]}
        print(f"  {name:28s} val acc {d['accuracy']:.3f}  ({th.seconds:.1f} s)")
walls["q1_heads"] = t_q1.seconds

# %% [markdown]
# ## 4. Q2: fine-tuning variants, each over several seeds
# frozen base (head only); last block (block5); last two (block4 + block5); progressive
# (head, then block5 at the fine-tuning lr, then blocks 4+5 at a third of it, with a step decay);
# the same network from scratch. Adam, augmentation, EarlyStopping on val_loss (weights of the
# last epoch kept: no selection on the validation set), ModelCheckpoint of the best val_acc.

# %%
class GroupLRs(Callback):
    """Records every parameter group's lr at the start of each epoch (the trainer logs group 0 only)."""

    def __init__(self, opt):
        self.opt, self.lrs = opt, {n: [] for n in opt.group_names}

    def on_epoch_begin(self, trainer, epoch):
        for n, g in zip(self.opt.group_names, self.opt.param_groups):
            self.lrs[n].append(g["lr"] if all(p.trainable for p in g["params"]) else float("nan"))


def run_variant(variant, seed):
    m = build(seed, C) if variant == "scratch" else pretrained(seed)
    blocks = ["block1", "block2", "block3", "block4", "block5"]
    lrs = {}
    phases = None
    if variant == "frozen":
        freeze(m, *blocks)
    elif variant == "block5":
        freeze(m, *blocks[:4])
        lrs = {"block5": args.ft_lr}
    elif variant == "block4+5":
        freeze(m, *blocks[:3])
        lrs = {"block4": args.ft_lr, "block5": args.ft_lr}
    elif variant == "progressive":
        freeze(m, *blocks)
        e1, e2 = max(1, EPOCHS // 5), max(2, (2 * EPOCHS) // 5)
        phases = [(e1, "block5", args.ft_lr), (e2, ["block4", "block5"], args.ft_lr / 3)]
    opt = make_optimizer(Adam, m, lr=args.lr, lrs=lrs)
    sched = StepLR(opt, step_size=5, gamma=0.5)
    cbs = [EarlyStopping(monitor="val_loss", patience=args.patience),
           ModelCheckpoint(str(out / "checkpoints" / f"{variant}-seed{seed}.npz"), monitor="val_acc",
                           save_best_only=True)]
    lr_log = GroupLRs(opt)
    cbs.append(lr_log)
    prog = None
    if phases:
        prog = ProgressiveUnfreezing(m, opt, phases)
        cbs.insert(0, prog)
    tr = Trainer(m, SoftmaxCrossEntropy(), opt, schedule=sched, callbacks=cbs, batch_size=32, rng=seed,
                 transform=augment, progress=False)
    t0 = time.perf_counter()
    h = tr.fit(xtr, ytr, epochs=EPOCHS, val_data=(xva, yva))
    secs = time.perf_counter() - t0
    proba = tr.predict_proba(xva)
    va = h["val_acc"]
    return {"model": m, "proba": proba, "history": h.to_dict(), "seconds": secs,
            "train_acc": h["acc"][-1], "val_acc": float((proba.argmax(1) == yva).mean()),
            "best_val_acc": float(np.max(va)), "best_epoch": int(np.argmax(va)) + 1, "epochs_run": len(va),
            "unfreezing_events": None if prog is None else prog.events, "group_lrs": lr_log.lrs,
            "counts": param_counts(m)}


VARIANTS = ["frozen", "block5", "block4+5", "progressive", "scratch"]
q2 = {v: [] for v in VARIANTS}
with Timer() as t_q2:
    for seed in SEEDS:
        for v in VARIANTS:
            r = run_variant(v, seed)
            q2[v].append(r)
            print(f"  seed {seed} {v:12s} val acc {r['val_acc']:.3f} (best {r['best_val_acc']:.3f} "
                  f"@ {r['best_epoch']}) train {r['train_acc']:.3f}  {r['seconds']:.0f} s", flush=True)
walls["q2_finetuning"] = t_q2.seconds


def stats(vals):
    a = np.asarray(vals, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


# Keras-style summary of the blocks 4+5 variant (counts before and after unfreezing)
summ_model = pretrained(0)
freeze(summ_model, "block1", "block2", "block3", "block4", "block5")
summary_frozen = param_counts(summ_model)
unfreeze(summ_model, "block4", "block5")
summary_text = summary(summ_model, (3, args.size, args.size), print_fn=None)

# %% [markdown]
# ## 5. Q3: ensembles of the three fine-tuned models (block5, block4+5, progressive)
# Majority vote (ties -> smallest class index), soft vote, weighted soft vote and stacking; the
# weights and the stacking meta-learner are fitted by 5-fold cross-fitting on the validation
# predictions (every sample is scored by an ensembler that did not see it).

# %%
MEMBERS = ["block5", "block4+5", "progressive"]
q3 = {k: [] for k in ["best single", "majority vote", "soft vote", "weighted soft vote", "stacking"]}
disagree = []
with Timer() as t_q3:
    for i, seed in enumerate(SEEDS):
        probas = np.stack([q2[v][i]["proba"] for v in MEMBERS])
        preds = probas.argmax(2)
        q3["best single"].append(max(float((pp == yva).mean()) for pp in preds))
        q3["majority vote"].append(float((ensemble.hard_vote(preds, C) == yva).mean()))
        q3["soft vote"].append(float((ensemble.soft_vote(probas).argmax(1) == yva).mean()))
        nf = min(5, int(np.bincount(yva).min()))
        q3["weighted soft vote"].append(float((ensemble.cross_fitted(probas, yva, "weighted", nf, seed)
                                               .argmax(1) == yva).mean()))
        q3["stacking"].append(float((ensemble.cross_fitted(probas, yva, "stacking", nf, seed)
                                     .argmax(1) == yva).mean()))
        disagree.append(ensemble.disagreement(preds))
    ens_reports = ensemble.classification_reports(
        yva, {"majority vote": ensemble.hard_vote(preds, C), **{v: preds[j] for j, v in enumerate(MEMBERS)}},
        class_names)
walls["q3_ensembles"] = t_q3.seconds
walls["total"] = time.perf_counter() - t_start

# %% [markdown]
# ## 6. Figures, metrics.json and report.md (in the report's order)

# %%
from nnlite.viz import plot_bar, plot_confusion_matrix, plot_curve, plot_history  # noqa: E402

figs = []
for name, r in q1.items():
    fn = "cm_" + "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower() + ".png"
    plot_confusion_matrix(metrics.confusion_matrix(yva, r["pred"], C), class_names, path=out / fn,
                          title=f"{name}: val acc {r['accuracy']:.3f}")
    figs.append(fn)
plot_history(q2["progressive"][0]["history"], metrics=("loss", "acc"), path=out / "history_progressive.png",
             title=f"progressive unfreezing (seed {SEEDS[0]})")
glr = q2["progressive"][0]["group_lrs"]
plot_curve(np.arange(1, len(glr["head"]) + 1), {k: glr[k] for k in ("head", "block5", "block4")}, "epoch",
           "learning rate (blank: frozen)", logy=True, path=out / "lr_progressive.png",
           title=f"progressive unfreezing: lr per block (seed {SEEDS[0]})")
means = [stats([r["val_acc"] for r in q2[v]]) for v in VARIANTS]
plot_bar(VARIANTS, [m for m, _ in means], errors=[s for _, s in means], path=out / "variants.png",
         ylabel="validation accuracy", title=f"mean ± sd over {len(SEEDS)} seed(s)")

table_q2 = ["| variant | train acc | val acc (mean ± sd) | best val acc | best epoch | epochs run "
            "| trainable params | s/run |",
            "|---|---|---|---|---|---|---|---|"]
for v in VARIANTS:
    rs = q2[v]
    m, s = stats([r["val_acc"] for r in rs])
    table_q2.append(f"| {v} | {np.mean([r['train_acc'] for r in rs]):.3f} | {m:.3f} ± {s:.3f} | "
                    f"{np.mean([r['best_val_acc'] for r in rs]):.3f} | "
                    f"{'/'.join(str(r['best_epoch']) for r in rs)} | {'/'.join(str(r['epochs_run']) for r in rs)} | "
                    f"{rs[0]['counts']['trainable']:,} | {np.mean([r['seconds'] for r in rs]):.0f} |")
table_q1 = ["| model | accuracy | precision | recall | F1 | fit+predict s |", "|---|---|---|---|---|---|"]
for name, r in q1.items():
    table_q1.append(f"| {name} | {r['accuracy']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | "
                    f"{r['f1']:.4f} | {r['seconds']:.1f} |")
table_q3 = ["| method | val acc (mean ± sd) |", "|---|---|"]
for k, vals in q3.items():
    m, s = stats(vals)
    table_q3.append(f"| {k} | {m:.3f} ± {s:.3f} |")
dmean = np.mean(disagree, axis=0)
table_dis = ["| | " + " | ".join(MEMBERS) + " |", "|---" * (len(MEMBERS) + 1) + "|"]
for i, v in enumerate(MEMBERS):
    table_dis.append(f"| {v} | " + " | ".join(f"{dmean[i, j]:.3f}" for j in range(len(MEMBERS))) + " |")

fm, fs = stats([r["val_acc"] for r in q2["frozen"]])
ft = {v: stats([r["val_acc"] for r in q2[v]]) for v in ["block5", "block4+5", "progressive"]}
best_ft = max(ft, key=lambda v: ft[v][0])
sm, ss = stats([r["val_acc"] for r in q2["scratch"]])
order_ok = ft[best_ft][0] > fm > sm
cmd = command_line("land_cover_transfer.py")
lines = [f"# Land-cover transfer learning ({'smoke test' if QUICK else 'measured run'})", ""]
if QUICK:
    lines.append(quick_note("one seed, 2 epochs, 6 training images per class, a 1,000-image pretraining"))
lines += [f"Command: `{cmd}`; total wall time {walls['total']:.0f} s on {machine_info()['cpus']} shared CPUs.", "",
          "## 1. Data", f"Data: {data_note}. {xtr.shape[0]} training / {xva.shape[0]} validation images, "
          f"{C} classes, seen by the networks at {args.size}x{args.size}. Source model: VGG-style base "
          f"(widths {WIDTHS}, one conv + batch norm per block, 5 blocks) {pre_note}. "
          "No ImageNet VGG16 and no land-cover data are used offline, so the numbers are NOT comparable "
          "to the report's (87.7-90.2% for the heads, 93.8% fine-tuned, 91.2% majority-vote ensemble); "
          "only the orderings are.", "",
          "## 2. Q1: frozen features (block5, global average pooled) + classical heads", ""]
if heads_missing:
    lines += [f"> {heads_missing}", ""]
lines += table_q1 + [""]
for name, r in q1.items():
    lines += [f"### {name}", "", r["report"].to_markdown(), ""]
lines += ["Confusion heat maps: " + ", ".join(f"`{f}`" for f in figs), "",
          "## 3. Q2: fine-tuning (the report's head; augmentation: rotation 10°, shifts, flips)", "",
          f"{EPOCHS} epochs max, Adam (head lr {args.lr:g}, unfrozen blocks {args.ft_lr:g}), step decay x0.5 "
          f"every 5 epochs, EarlyStopping(val_loss, patience {args.patience}), ModelCheckpoint(best val_acc). "
          f"val acc = the final weights (no selection on the validation set); 'best val acc' is the "
          f"report's optimistic checkpoint-selected number. Seeds {SEEDS}.", ""] + table_q2 + [
          "", f"Target ordering fine-tune > frozen > scratch: best fine-tuned ({best_ft}) "
          f"{ft[best_ft][0]:.3f} ± {ft[best_ft][1]:.3f}, frozen {fm:.3f} ± {fs:.3f}, scratch {sm:.3f} ± {ss:.3f}: "
          f"**{'holds' if order_ok else 'does NOT hold'}** in this run.", "",
          "Progressive unfreezing events (seed %d): %s" % (SEEDS[0], q2["progressive"][0]["unfreezing_events"]), "",
          "Model summary (blocks 4+5 unfrozen; all base blocks frozen: "
          f"{summary_frozen['trainable']:,} trainable / {summary_frozen['non_trainable']:,} non-trainable):", "",
          "```", summary_text, "```", "",
          "Figures: `variants.png`, `history_progressive.png`, `lr_progressive.png`.", "",
          "## 4. Q3: ensemble of the three fine-tuned models", ""] + table_q3 + [
          "", "Pairwise disagreement (fraction of validation images, mean over seeds):", ""] + table_dis + [
          "", "### Majority-vote ensemble (last seed)", "", ens_reports["majority vote"].to_markdown(), "",
          "## 5. Wall times (s)", "", "| step | seconds |", "|---|---|"] + [
          f"| {k} | {v:.0f} |" for k, v in walls.items()]
write_text(out / "report.md", "\n".join(lines) + "\n")
write_json(out / "metrics.json", {
    "command": cmd, "quick": QUICK, "seeds": SEEDS, "size": args.size, "epochs": EPOCHS, "data": data_note,
    "pretraining": pre_note, "walls": walls, "machine": machine_info(),
    "q1": {k: {kk: vv for kk, vv in r.items() if kk not in ("report", "pred")} for k, r in q1.items()},
    "q2": {v: [{kk: vv for kk, vv in r.items() if kk not in ("model", "proba")} for r in rs]
           for v, rs in q2.items()},
    "q2_summary": {v: stats([r["val_acc"] for r in q2[v]]) for v in VARIANTS},
    "q3": q3, "q3_summary": {k: stats(v) for k, v in q3.items()}, "disagreement": dmean,
    "ordering_holds": bool(order_ok)})
print(f"wrote {out / 'report.md'}; total {walls['total']:.0f} s")
