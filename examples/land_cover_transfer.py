# %% [markdown]
# # Land-cover transfer learning: frozen features + classical heads, fine-tuning, ensembles
#
# Mirrors the land-cover report (9 classes of 64x64x3 tiles in an HDF5 file, earth_data.h5):
# Q1 features of a pretrained VGG-style base fed to logistic regression, random forest, SVM and
# XGBoost (classification report and confusion heat map per model, comparison table);
# Q2 fine-tuning with the report's head (GAP, batch norm, dense 256 ReLU, dropout 0.5),
# augmentation (rotation, shifts, flip), last block vs last two blocks, progressive unfreezing
# with a step decay, EarlyStopping + ModelCheckpoint, a Keras-style summary, training from
# scratch, and the report's three architectures (VGG16, ResNet50, MobileNetV2 stand-ins) each
# fine-tuned; Q3 an ensemble of the three fine-tuned architectures by majority, soft and
# weighted vote and stacking, with pairwise disagreement.
#
#     python examples/land_cover_transfer.py --data earth_data.h5   # the report's own file
#     python examples/land_cover_transfer.py                        # offline stand-in (below)
#     python examples/land_cover_transfer.py --architectures vgg    # the previous, VGG-only design
#     python examples/land_cover_transfer.py --quick                # smoke test (CI)
#
# Neither the land-cover file nor ImageNet weights are available offline. The stand-in: 9
# scene classes of Tiny ImageNet (alp, cliff, coral reef, lakeside, seashore, dam, lighthouse,
# suspension bridge, barn; 60 images each at 64x64, 80/20 stratified split) written to an HDF5
# file in the report's layout and read back through nnlite.data.load_hdf5; every source model
# is pretrained by nnlite on CIFAR-10 (a different data set; same images, epochs and seed for
# every architecture) and cached as a checkpoint per architecture.
#
# Architectures (--architectures; the first is the main one, on which Q1 and the five-variant
# comparison of Q2 run). All three are sized for 32x32 inputs with five named stages
# block1..block5 (so "last block" = block5 and "last two" = block4+5 everywhere) and about
# 0.25 M base parameters, instead of ImageNet's 14.7 M / 23.5 M / 2.2 M:
#   vgg        vgg(widths=(16, 32, 64, 128, 128), convs=(1,)*5, batch_norm=True): 245,392 base
#              parameters (the previous design's base, unchanged, so its cache stays valid);
#   resnet     resnet(widths=(8, 16, 32, 64, 112), units=(1,)*5): stem + five stages of one basic
#              block (stride 2 from block2 on), 262,600; a train step costs ~1.6x the VGG's;
#   mobilenet  mobilenet_v2(widths=(8, 16, 32, 64, 112), units=(1, 1, 1, 1, 2),
#              expansion=(1, 2, 4, 6, 6), stem_width=8): 258,336; its stem and first stages run
#              at 32x32 and the depthwise/ReLU6 kernels have no engine version, so a train step
#              costs ~3.5-4x the VGG's even with the narrow stem and small early expansions
#              chosen here (step costs: CPU time of one batch of 64, one BLAS thread).

# %% Arguments, imports and the run folder
import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(globals().get("__file__", "land_cover_transfer.py")).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (Timer, base_parser, command_line, machine_info, number_type, parse_args,  # noqa: E402
                     positive_float, positive_int, prepare_out, quick_note, script_description, write_json, write_text)

from nnlite import ensemble, metrics  # noqa: E402
from nnlite.classic import classic_heads  # noqa: E402
from nnlite.data import load_hdf5  # noqa: E402
from nnlite.data.transforms import Compose, RandomHorizontalFlip, RandomRotation, RandomShift  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.models import (ProgressiveUnfreezing, block_names, extract_features, freeze,  # noqa: E402
                           make_optimizer, mobilenet_v2, param_counts, resnet, save_features, summary, unfreeze,
                           vgg)
from nnlite.optim import Adam, StepLR  # noqa: E402
from nnlite.train import Callback, EarlyStopping, ModelCheckpoint, Trainer  # noqa: E402
from nnlite.weights import load_weights, save_weights  # noqa: E402

STANDIN_WNIDS = ["n09193705", "n09246464", "n09256479", "n09332890", "n09428293", "n03160309",
                 "n02814860", "n04366367", "n02793495"]
STANDIN_NAMES = ["alp", "cliff", "coral reef", "lakeside", "seashore", "dam", "lighthouse",
                 "suspension bridge", "barn"]
ARCHITECTURES = ("vgg", "resnet", "mobilenet")


def architecture_list(text):
    """argparse type: "vgg,mobilenet" -> ["vgg", "mobilenet"] (distinct names among ARCHITECTURES, order kept)."""
    names = [w.strip() for w in text.split(",") if w.strip()]
    if not names or any(n not in ARCHITECTURES for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated distinct names among "
                                         f"{', '.join(ARCHITECTURES)}, got {text!r}")
    return names


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
p.add_argument("--architectures", type=architecture_list, default=",".join(ARCHITECTURES),
               help="source architectures, comma-separated among vgg, resnet, mobilenet (default: %(default)s); "
                    "the first is the main one (Q1 features, the five fine-tuning variants); each one is "
                    "fine-tuned progressively and is a member of the Q3 ensemble")
p.add_argument("--seeds", type=positive_int, default=3, help="seeds per fine-tuning variant (mean and spread)")
p.add_argument("--epochs", type=positive_int, default=None,
               help="epochs per fine-tuning run (default 15; 2 with --quick)")
p.add_argument("--pretrain-epochs", type=positive_int, default=None,
               help="source pretraining epochs on CIFAR-10 (default 6; 1 with --quick)")
p.add_argument("--pretrain-set", choices=("full", "exact"), default="full",
               help="CIFAR-10 images of the source models: full = the 50,000 JPEG-decoded training images "
                    "and the 10,000 test images (60,000); exact = the bit-exact training subset and the test "
                    "images (17,044: the earlier runs' sources)")
p.add_argument("--pretrain-n", type=positive_int, default=None,
               help="CIFAR-10 images for pretraining (default: all of --pretrain-set; 500 with --quick): with "
                    "full, the first N training images, class-stratified (the only ones decoded); with exact, a "
                    "random subset")
p.add_argument("--lr", type=positive_float, default=1e-3,
               help="Adam learning rate of the head (and of scratch training)")
p.add_argument("--ft-lr", type=positive_float, default=3e-4, help="Adam learning rate of unfrozen base blocks")
p.add_argument("--patience", type=positive_int, default=5, help="EarlyStopping patience (val_loss)")
p.add_argument("--decay-every", type=positive_int, default=5,
               help="the step decay: every fine-tuning run's lrs are halved every this many epochs")
p.add_argument("--folds", type=number_type(int, lambda v: v == 0 or v >= 2, "0 or an integer >= 2"), default=0,
               help="0: the file's train/validation split for every seed; K >= 2: the train and validation "
                    "images are pooled and cut into K stratified folds, and seed number i (0, 1, ...) holds "
                    "out fold i mod K, so that K seeds validate every image once (a small validation set's "
                    "noise is then averaged over all images)")
p.add_argument("--source-cache", default=None,
               help="checkpoint of each pretrained source model, '{arch}' standing for the architecture's name "
                    "(default: <out>/source_{arch}_<size>px_n<N>_<E>ep.npz); reused when present; a single "
                    "architecture may name its file without '{arch}'")
args = parse_args(p)
ARCHS = args.architectures
if args.source_cache and "{arch}" not in args.source_cache and len(ARCHS) > 1:
    p.error(f"argument --source-cache: must contain '{{arch}}' (replaced by each architecture's name) when "
            f"several architectures are selected ({','.join(ARCHS)}), got {args.source_cache!r}")
MAIN = ARCHS[0]
QUICK = args.quick
EPOCHS = args.epochs or (2 if QUICK else 15)
PRE_EPOCHS = args.pretrain_epochs or (1 if QUICK else 6)
PRE_N = args.pretrain_n or (500 if QUICK else None)   # --quick: 500 keeps 3 pretrainings cheap
SEEDS = list(range(args.seed, args.seed + (1 if QUICK else args.seeds)))
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
FOLDS = args.folds
if FOLDS:
    x_pool, y_pool = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])
    fold_of = ensemble.stratified_folds(y_pool, FOLDS, rng=args.seed)


def split(i):
    """Train and validation images of the run of seed number i (SEEDS[i]): the file's split, or
    with --folds K the pooled images with fold i mod K held out -> (x_train, y_train, x_val, y_val)."""
    if not FOLDS:
        return xtr, ytr, xva, yva
    held = fold_of == i % FOLDS
    return x_pool[~held], y_pool[~held], x_pool[held], y_pool[held]


print(f"target: {xtr.shape[0]} train / {xva.shape[0]} val images, {C} classes, at {args.size}x{args.size}"
      + (f"; pooled into {FOLDS} stratified folds, seed number i validates on fold i mod {FOLDS}" if FOLDS else ""))

# %% [markdown]
# ## 2. The source models: one per architecture, pretrained by nnlite on CIFAR-10 (cached)
# Same CIFAR-10 images, epochs, optimizer, augmentation and seeds for every architecture; each
# is cached in its own checkpoint (the file name holds the architecture and the configuration)
# and a rerun loads it (load_weights checks the file's digest and every layer's name and shape).

# %%
ARCH_SPECS = {   # builder, arguments; all: five named stages block1..block5 for 32x32 inputs (see the top cell)
    "vgg": (vgg, dict(widths=(16, 32, 64, 128, 128), convs=(1, 1, 1, 1, 1), batch_norm=True)),
    "resnet": (resnet, dict(widths=(8, 16, 32, 64, 112), units=(1, 1, 1, 1, 1))),
    "mobilenet": (mobilenet_v2, dict(widths=(8, 16, 32, 64, 112), units=(1, 1, 1, 1, 2), expansion=(1, 2, 4, 6, 6),
                                     stem_width=8)),
}
ARCH_LABELS = {"vgg": "VGG-style (VGG16 stand-in)", "resnet": "ResNet-style (ResNet50 stand-in)",
               "mobilenet": "MobileNetV2-style (MobileNetV2 stand-in)"}


def build(arch, seed, num_classes):
    """The architecture's network with the report's head (GAP, BN, dense 256 + ReLU, dropout 0.5)."""
    fn, kwargs = ARCH_SPECS[arch]
    return fn(**kwargs, num_classes=num_classes, head_hidden=256, head_dropout=0.5, rng=seed)


def base_blocks(model):
    """Top-level blocks before the head: block1..block5 (VGG), stem + block1..block5 (ResNet, MobileNet)."""
    return [n for n in block_names(model) if n != "head"]


def spec_text(arch):
    fn, kwargs = ARCH_SPECS[arch]
    return f"{fn.__name__}(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def cache_path(arch):
    if args.source_cache:
        return Path(args.source_cache.replace("{arch}", arch))
    tag = "" if args.pretrain_set == "exact" else "full_"      # the "exact" caches keep their earlier names
    return out / f"source_{arch}_{args.size}px_{tag}n{PRE_N or 'all'}_{PRE_EPOCHS}ep.npz"   # the config names the cache


def load_cifar():
    """The --pretrain-set images as (N, 3, size, size) float32 in [0, 1] and (N,) int64 labels."""
    from nnlite.data import find_dataset, load_cifar10, read_npz
    if args.pretrain_set == "full":
        full = load_cifar10(exact=False, n_train=PRE_N)     # with PRE_N, only PRE_N JPEGs are decoded
        # with PRE_N: those training images only (the test images would otherwise outnumber them)
        cx = full.x_train if PRE_N else np.concatenate([full.x_train, full.x_test])
        cy = full.y_train if PRE_N else np.concatenate([full.y_train, full.y_test])
    else:
        croot = find_dataset("cifar10").path
        parts = [read_npz(croot / f) for f in ("train_exact.npz", "test.npz")]
        cx = np.concatenate([a for a, _ in parts]).transpose(0, 3, 1, 2).astype(np.float32) / 255
        cy = np.concatenate([b for _, b in parts])
        if PRE_N:                                          # a random subset of the 17,044
            pick = np.random.default_rng(0).permutation(cx.shape[0])[:PRE_N]
            cx, cy = cx[pick], cy[pick]
    cx = resize(cx, args.size) if args.size <= 32 else np.repeat(np.repeat(cx, 2, 2), 2, 3)
    return cx, cy.astype(np.int64)


augment = Compose([RandomRotation(10), RandomShift(max(1, args.size // 10)), RandomHorizontalFlip()])
base_states, pre_notes, cifar = {}, {}, None
for arch in ARCHS:
    source_path = cache_path(arch)
    source = build(arch, 1000, 10)
    with Timer() as t_pre:
        if source_path.exists():
            load_weights(source_path, source)
            pre_notes[arch] = f"loaded from the cache `{source_path}` (pretrained earlier by this script)"
        else:
            if cifar is None:
                cifar = load_cifar()
            cx, cy = cifar
            opt = Adam(source.parameters(), lr=2e-3)
            hist = Trainer(source, SoftmaxCrossEntropy(), opt, schedule=StepLR(opt, 3, 0.5), batch_size=64, rng=0,
                           transform=augment, progress="auto").fit(cx, cy, epochs=PRE_EPOCHS, val_split=0.05)
            pre_acc = float(hist["val_acc"][-1])
            save_weights(source_path, source, extra={"pretrained_on": f"CIFAR-10 ({args.pretrain_set})",
                                                     "architecture": arch, "n": int(cx.shape[0]),
                                                     "epochs": PRE_EPOCHS, "size": args.size, "val_acc": pre_acc})
            pre_notes[arch] = (f"pretrained now on {cx.shape[0]:,} CIFAR-10 images for {PRE_EPOCHS} epochs "
                               f"(CIFAR-10 held-out 5% accuracy {pre_acc:.3f}, "
                               f"{time.perf_counter() - t_pre.start:.0f} s) and cached in `{source_path}`")
    print(f"{arch}: {pre_notes[arch]}")
    walls[f"pretraining_{arch}"] = t_pre.seconds
    base_states[arch] = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
cifar = None


def pretrained(arch, seed):
    """The architecture's pretrained source base with a fresh head for the C target classes."""
    m = build(arch, seed, C)
    state = m.state_dict()
    state.update(base_states[arch])
    m.load_state_dict(state)
    return m


# %% [markdown]
# ## 3. Q1: frozen features + classical heads

# %%
with Timer() as t_q1:
    feat_model = pretrained(MAIN, 0)
    x1, y1, x1_val, y1_val = split(0)          # the first seed's split (with --folds: fold 0 held out)
    ftr = extract_features(feat_model, x1, "block5", batch_size=128)
    fva = extract_features(feat_model, x1_val, "block5", batch_size=128)
    save_features(out / "features_block5.h5", ftr, y1, val_features=fva, val_labels=y1_val)
    heads, heads_missing = classic_heads(seed=args.seed)
    if heads_missing:
        print(heads_missing)
    q1 = {}
    for name, head in heads.items():
        with Timer() as th:
            head.fit(ftr, y1)
            pred = np.asarray(head.predict(fva)).astype(np.int64)
        rep = metrics.classification_report(y1_val, pred, class_names=class_names)
        d = rep.to_dict()
        q1[name] = {"report": rep, "pred": pred, "seconds": th.seconds, "accuracy": d["accuracy"],
                    "precision": d["weighted avg"]["precision"], "recall": d["weighted avg"]["recall"],
                    "f1": d["weighted avg"]["f1"]}
        print(f"  {name:28s} val acc {d['accuracy']:.3f}  ({th.seconds:.1f} s)")
walls["q1_heads"] = t_q1.seconds

# %% [markdown]
# ## 4. Q2: fine-tuning variants of the main architecture, and every architecture fine-tuned
# On the main architecture (the first of --architectures, VGG by default), each over several
# seeds: frozen base (head only); last block (block5); last two (block4 + block5); progressive
# (head, then block5 at the fine-tuning lr, then blocks 4+5 at a third of it, with a step decay);
# the same network from scratch. Every other architecture gets the progressive recipe with the
# same seeds (the main one's is its progressive variant). Adam, augmentation, EarlyStopping on
# val_loss (weights of the last epoch kept: no selection on the validation set), ModelCheckpoint
# of the best val_acc.

# %%
class GroupLRs(Callback):
    """Records every parameter group's lr at the start of each epoch (the trainer logs group 0 only)."""

    def __init__(self, opt):
        self.opt, self.lrs = opt, {n: [] for n in opt.group_names}

    def on_epoch_begin(self, trainer, epoch):
        for n, g in zip(self.opt.group_names, self.opt.param_groups):
            self.lrs[n].append(g["lr"] if all(p.trainable for p in g["params"]) else float("nan"))


def run_variant(arch, variant, seed, data):
    """One fine-tuning run of ``variant`` of ``arch`` on data = (x_train, y_train, x_val, y_val)."""
    xtr, ytr, xva, yva = data
    m = build(arch, seed, C) if variant == "scratch" else pretrained(arch, seed)
    blocks = base_blocks(m)                   # [stem,] block1 .. block5
    lrs = {}
    phases = None
    if variant == "frozen":
        freeze(m, *blocks)
    elif variant == "block5":
        freeze(m, *blocks[:-1])
        lrs = {"block5": args.ft_lr}
    elif variant == "block4+5":
        freeze(m, *blocks[:-2])
        lrs = {"block4": args.ft_lr, "block5": args.ft_lr}
    elif variant == "progressive":
        freeze(m, *blocks)
        e1, e2 = max(1, EPOCHS // 5), max(2, (2 * EPOCHS) // 5)
        phases = [(e1, "block5", args.ft_lr), (e2, ["block4", "block5"], args.ft_lr / 3)]
    opt = make_optimizer(Adam, m, lr=args.lr, lrs=lrs)
    sched = StepLR(opt, step_size=args.decay_every, gamma=0.5)
    cbs = [EarlyStopping(monitor="val_loss", patience=args.patience),
           ModelCheckpoint(str(out / "checkpoints" / f"{arch}-{variant}-seed{seed}.npz"), monitor="val_acc",
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
            "n_val": int(yva.size),
            "best_val_acc": float(np.max(va)), "best_epoch": int(np.argmax(va)) + 1, "epochs_run": len(va),
            "unfreezing_events": None if prog is None else prog.events, "group_lrs": lr_log.lrs,
            "counts": param_counts(m)}


def log_run(arch, variant, seed, r):
    print(f"  seed {seed} {arch:9s} {variant:12s} val acc {r['val_acc']:.3f} (best {r['best_val_acc']:.3f} "
          f"@ {r['best_epoch']}) train {r['train_acc']:.3f}  {r['seconds']:.0f} s", flush=True)


VARIANTS = ["frozen", "block5", "block4+5", "progressive", "scratch"]
q2 = {v: [] for v in VARIANTS}                      # the main architecture's variants
q2_arch = {a: [] for a in ARCHS}                    # every architecture, progressive recipe
with Timer() as t_q2:
    for i, seed in enumerate(SEEDS):
        for v in VARIANTS:
            r = run_variant(MAIN, v, seed, split(i))
            q2[v].append(r)
            log_run(MAIN, v, seed, r)
        q2_arch[MAIN].append(q2["progressive"][-1])
        for arch in ARCHS[1:]:
            r = run_variant(arch, "progressive", seed, split(i))
            q2_arch[arch].append(r)
            log_run(arch, "progressive", seed, r)
walls["q2_finetuning"] = t_q2.seconds


def stats(vals):
    a = np.asarray(vals, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


# Keras-style summary of every architecture with its last two blocks unfrozen (the state the progressive
# recipe ends in; for the main architecture also the block4+5 variant), and the counts with the base frozen
summaries = {}
for arch in ARCHS:
    summ_model = pretrained(arch, 0)
    freeze(summ_model, *base_blocks(summ_model))
    frozen_counts = param_counts(summ_model)
    unfreeze(summ_model, "block4", "block5")
    summaries[arch] = {"text": summary(summ_model, (3, args.size, args.size), print_fn=None),
                       "base_frozen": frozen_counts, "blocks4_5_unfrozen": param_counts(summ_model),
                       "base_params": sum(q.size for n, q in summ_model.named_parameters()
                                          if not n.startswith("head."))}

# %% [markdown]
# ## 5. Q3: ensembles of the fine-tuned models
# The report's design: one fine-tuned model per architecture (the progressive recipe), combined
# per seed. Also, at no extra training cost, the previous design: the main architecture's three
# fine-tuned variants (block5, block4+5, progressive), near-copies of one base. Majority vote
# (ties -> smallest class index), soft vote, weighted soft vote and stacking; the weights and
# the stacking meta-learner are fitted by 5-fold cross-fitting on the validation predictions
# (every sample is scored by an ensembler that did not see it).

# %%
def ensemble_scores(runs_by_member):
    """runs_by_member: {member: [run per seed]} -> ({method: [val acc per seed]}, mean disagreement (M, M),
    {name: labels (N,)} of the last seed (majority vote and members))."""
    members = list(runs_by_member)
    scores = {k: [] for k in ["best single", "majority vote", "soft vote", "weighted soft vote", "stacking"]}
    dis = []
    for i, seed in enumerate(SEEDS):
        yva = split(i)[3]                                         # the seed's validation labels
        probas = np.stack([runs_by_member[k][i]["proba"] for k in members])
        preds = probas.argmax(2)
        scores["best single"].append(max(float((pp == yva).mean()) for pp in preds))
        vote = ensemble.hard_vote(preds, C)
        scores["majority vote"].append(float((vote == yva).mean()))
        scores["soft vote"].append(float((ensemble.soft_vote(probas).argmax(1) == yva).mean()))
        nf = min(5, int(np.bincount(yva).min()))
        scores["weighted soft vote"].append(float((ensemble.cross_fitted(probas, yva, "weighted", nf, seed)
                                                   .argmax(1) == yva).mean()))
        scores["stacking"].append(float((ensemble.cross_fitted(probas, yva, "stacking", nf, seed)
                                         .argmax(1) == yva).mean()))
        dis.append(ensemble.disagreement(preds))
    last = {"majority vote": vote, **{k: preds[j] for j, k in enumerate(members)}}
    return scores, np.mean(dis, axis=0), (last, yva)


VARIANT_MEMBERS = ["block5", "block4+5", "progressive"]
with Timer() as t_q3:
    q3, disagree, q3_last = ensemble_scores(q2_arch) if len(ARCHS) > 1 else ({}, None, None)
    q3v, disagree_v, q3v_last = ensemble_scores({v: q2[v] for v in VARIANT_MEMBERS})
    ens_last, ens_y = q3_last or q3v_last
    ens_reports = ensemble.classification_reports(ens_y, ens_last, class_names)
walls["q3_ensembles"] = t_q3.seconds
walls["total"] = time.perf_counter() - t_start

# %% [markdown]
# ## 6. Figures, metrics.json and report.md (in the report's order)

# %%
from nnlite.viz import plot_bar, plot_confusion_matrix, plot_curve, plot_history  # noqa: E402

figs = []
for name, r in q1.items():
    fn = "cm_" + "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower() + ".png"
    plot_confusion_matrix(metrics.confusion_matrix(y1_val, r["pred"], C), class_names, path=out / fn,
                          title=f"{name}: val acc {r['accuracy']:.3f}")
    figs.append(fn)
plot_history(q2["progressive"][0]["history"], metrics=("loss", "acc"), path=out / "history_progressive.png",
             title=f"{MAIN}, progressive unfreezing (seed {SEEDS[0]})")
glr = q2["progressive"][0]["group_lrs"]
plot_curve(np.arange(1, len(glr["head"]) + 1), {k: glr[k] for k in ("head", "block5", "block4")}, "epoch",
           "learning rate (blank: frozen)", logy=True, path=out / "lr_progressive.png",
           title=f"{MAIN}, progressive unfreezing: lr per block (seed {SEEDS[0]})")
means = [stats([r["val_acc"] for r in q2[v]]) for v in VARIANTS]
RUNS_TEXT = f"{len(SEEDS)} seed(s)" + (f", fold i mod {FOLDS} held out" if FOLDS else "")
plot_bar(VARIANTS, [m for m, _ in means], errors=[s for _, s in means], path=out / "variants.png",
         ylabel="validation accuracy", title=f"{MAIN}: mean ± sd over\n{RUNS_TEXT}")


def paired(a, b):
    """Per-seed differences of two variants' val acc (one seed: the same split and fold for both)
    -> (mean, standard error, seeds where a > b)."""
    d = np.array([r["val_acc"] for r in q2[a]]) - np.array([r["val_acc"] for r in q2[b]])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0, int((d > 0).sum())


q2_paired = {f"{a} - {b}": paired(a, b) for a, b in
             (("block5", "frozen"), ("block4+5", "frozen"), ("progressive", "frozen"), ("frozen", "scratch"))}
plot_bar(list(q2_paired), [v[0] for v in q2_paired.values()], errors=[v[1] for v in q2_paired.values()],
         path=out / "variants_paired.png", ylabel="val accuracy difference", fmt="{:+.3f}",
         title=f"{MAIN}: paired differences, mean ± se\nover {RUNS_TEXT}")
arch_means = [stats([r["val_acc"] for r in q2_arch[a]]) for a in ARCHS]
plot_bar(ARCHS, [m for m, _ in arch_means], errors=[s for _, s in arch_means], path=out / "architectures.png",
         ylabel="validation accuracy", title=f"progressive fine-tuning\nmean ± sd over {len(SEEDS)} seed(s)")


def runs_row(label, rs, counts):
    m, s = stats([r["val_acc"] for r in rs])
    return (f"| {label} | {np.mean([r['train_acc'] for r in rs]):.3f} | {m:.3f} ± {s:.3f} | "
            f"{np.mean([r['best_val_acc'] for r in rs]):.3f} | {'/'.join(str(r['best_epoch']) for r in rs)} | "
            f"{'/'.join(str(r['epochs_run']) for r in rs)} | {counts} | {np.mean([r['seconds'] for r in rs]):.0f} |")


def scores_table(scores):
    rows = ["| method | val acc (mean ± sd) |", "|---|---|"]
    for k, vals in scores.items():
        m, s = stats(vals)
        rows.append(f"| {k} | {m:.3f} ± {s:.3f} |")
    return rows


def disagreement_table(members, dmean):
    rows = ["| | " + " | ".join(members) + " |", "|---" * (len(members) + 1) + "|"]
    for i, v in enumerate(members):
        rows.append(f"| {v} | " + " | ".join(f"{dmean[i, j]:.3f}" for j in range(len(members))) + " |")
    return rows


RUN_COLS = ("| train acc | val acc (mean ± sd) | best val acc | best epoch | epochs run | {} | s/run |",
            "|---|---|---|---|---|---|---|---|")
table_q2 = ["| variant " + RUN_COLS[0].format("trainable params"), RUN_COLS[1]]
table_q2 += [runs_row(v, q2[v], f"{q2[v][0]['counts']['trainable']:,}") for v in VARIANTS]
table_arch = ["| architecture (progressive) " + RUN_COLS[0].format("total / trainable / non-trainable params"),
              RUN_COLS[1]]
table_arch += [runs_row(a, q2_arch[a], " / ".join(f"{q2_arch[a][0]['counts'][k]:,}"
                                                  for k in ("total", "trainable", "non_trainable"))) for a in ARCHS]
table_q1 = ["| model | accuracy | precision | recall | F1 | fit+predict s |", "|---|---|---|---|---|---|"]
for name, r in q1.items():
    table_q1.append(f"| {name} | {r['accuracy']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | "
                    f"{r['f1']:.4f} | {r['seconds']:.1f} |")

fm, fs = stats([r["val_acc"] for r in q2["frozen"]])
ft = {v: stats([r["val_acc"] for r in q2[v]]) for v in ["block5", "block4+5", "progressive"]}
best_ft = max(ft, key=lambda v: ft[v][0])
sm, ss = stats([r["val_acc"] for r in q2["scratch"]])
order_ok = ft[best_ft][0] > fm > sm
cmd = command_line("land_cover_transfer.py")
lines = [f"# Land-cover transfer learning ({'smoke test' if QUICK else 'measured run'})", ""]
if QUICK:
    lines.append(quick_note(f"one seed, {EPOCHS} epochs, 6 training images per class, a {PRE_N:,}-image "
                            f"{PRE_EPOCHS}-epoch pretraining per architecture"))
lines += [f"Command: `{cmd}`; total wall time {walls['total']:.0f} s on {machine_info()['cpus']} shared CPUs.", "",
          "## 1. Data", f"Data: {data_note}. {xtr.shape[0]} training / {xva.shape[0]} validation images, "
          f"{C} classes, seen by the networks at {args.size}x{args.size}. "
          + (f"Pooled and cut into {FOLDS} stratified folds: seed number i trains on the others and "
             f"validates on fold i mod {FOLDS} (Q1 on fold 0), so every mean over {FOLDS} seeds covers every "
             "image once. " if FOLDS else "") + "Architectures: "
          f"{', '.join(ARCHS)} (main: {MAIN}). Source models, all pretrained by nnlite on the same CIFAR-10 "
          "images with the same epochs and seed:", ""]
lines += [f"* **{a}**: {ARCH_LABELS[a]}, `{spec_text(a)}`, {summaries[a]['base_params']:,} base parameters; "
          f"{pre_notes[a]}." for a in ARCHS]
lines += ["", "No ImageNet VGG16 / ResNet50 / MobileNetV2 and no land-cover data are used offline, so the "
          "numbers are NOT comparable to the report's (87.7-90.2% for the heads, 93.8% fine-tuned, 91.2% "
          "majority-vote ensemble); only the orderings are.", "",
          f"## 2. Q1: frozen features ({MAIN} block5, global average pooled) + classical heads", ""]
if heads_missing:
    lines += [f"> {heads_missing}", ""]
lines += table_q1 + [""]
for name, r in q1.items():
    lines += [f"### {name}", "", r["report"].to_markdown(), ""]
lines += ["Confusion heat maps: " + ", ".join(f"`{f}`" for f in figs), "",
          "## 3. Q2: fine-tuning (the report's head; augmentation: rotation 10°, shifts, flips)", "",
          f"{EPOCHS} epochs max, Adam (head lr {args.lr:g}, unfrozen blocks {args.ft_lr:g}), step decay x0.5 "
          f"every {args.decay_every} epochs, EarlyStopping(val_loss, patience {args.patience}), "
          "ModelCheckpoint(best val_acc). "
          f"val acc = the final weights (no selection on the validation set); 'best val acc' is the "
          f"report's optimistic checkpoint-selected number. Seeds {SEEDS}.", "",
          f"### Fine-tuning variants of the main architecture ({MAIN})", ""] + table_q2 + [
          "", f"Target ordering fine-tune > frozen > scratch: best fine-tuned ({best_ft}) "
          f"{ft[best_ft][0]:.3f} ± {ft[best_ft][1]:.3f}, frozen {fm:.3f} ± {fs:.3f}, scratch {sm:.3f} ± {ss:.3f}: "
          f"**{'holds' if order_ok else 'does NOT hold'}** in this run.", "",
          "Paired per seed (one seed = one split and fold for every variant, so the split's difficulty cancels): "
          + "; ".join(f"{k} {v[0]:+.3f} ± {v[1]:.3f} (se), > 0 in {v[2]} of {len(SEEDS)}" for k, v in q2_paired.items())
          + " (`variants_paired.png`).", "",
          "Progressive unfreezing events (seed %d): %s" % (SEEDS[0], q2["progressive"][0]["unfreezing_events"]), "",
          "### Every architecture, progressive recipe (the report's three fine-tuned architectures)", "",
          f"Head only, then block5 (lr {args.ft_lr:g}), then blocks 4+5 (lr {args.ft_lr / 3:g}); earlier blocks "
          f"(and the stem) stay frozen. The {MAIN} row is its progressive variant above. Parameter counts "
          "after the last unfreezing.", ""] + table_arch + [
          "", "Figures: `variants.png`, `variants_paired.png`, `architectures.png`, `history_progressive.png`, "
          "`lr_progressive.png`.", ""]
for a in ARCHS:
    fc = summaries[a]["base_frozen"]
    lines += [f"### Model summary: {a} (blocks 4+5 unfrozen)", "",
              f"All base blocks frozen: {fc['total']:,} total / {fc['trainable']:,} trainable / "
              f"{fc['non_trainable']:,} non-trainable.", "", "```", summaries[a]["text"], "```", ""]
lines += ["## 4. Q3: ensembles of the fine-tuned models", ""]
if q3:
    lines += [f"### The three architectures ({', '.join(ARCHS)}; progressive recipe, per seed)", ""]
    lines += scores_table(q3) + ["", "Pairwise disagreement (fraction of validation images, mean over seeds):", ""]
    lines += disagreement_table(ARCHS, disagree) + [""]
else:
    lines += ["Only one architecture was selected: no architecture ensemble (it needs two or more).", ""]
lines += [f"### Previous design: three fine-tuned variants of one base ({MAIN}: {', '.join(VARIANT_MEMBERS)})", "",
          "No extra training: the Q2 variants above, near-copies of one pretrained base.", ""]
lines += scores_table(q3v) + ["", "Pairwise disagreement (mean over seeds):", ""]
lines += disagreement_table(VARIANT_MEMBERS, disagree_v) + [
          "", f"### Majority-vote ensemble of the {'architectures' if q3 else 'variants'} (last seed)", "",
          ens_reports["majority vote"].to_markdown(), "",
          "## 5. Wall times (s)", "", "| step | seconds |", "|---|---|"] + [
          f"| {k} | {v:.0f} |" for k, v in walls.items()]
write_text(out / "report.md", "\n".join(lines) + "\n")


def strip(rs):
    """Runs without their model and probabilities (for metrics.json)."""
    return [{k: v for k, v in r.items() if k not in ("model", "proba")} for r in rs]


write_json(out / "metrics.json", {
    "command": cmd, "quick": QUICK, "seeds": SEEDS, "size": args.size, "epochs": EPOCHS, "data": data_note,
    "folds": FOLDS, "decay_every": args.decay_every, "pretrain_set": args.pretrain_set,
    "architectures": ARCHS, "main_architecture": MAIN,
    "source_models": {a: {"builder": spec_text(a), "base_params": summaries[a]["base_params"],
                          "pretraining": pre_notes[a], "base_frozen": summaries[a]["base_frozen"],
                          "blocks4_5_unfrozen": summaries[a]["blocks4_5_unfrozen"]} for a in ARCHS},
    "walls": walls, "machine": machine_info(),
    "q1": {k: {kk: vv for kk, vv in r.items() if kk not in ("report", "pred")} for k, r in q1.items()},
    "q2": {v: strip(rs) for v, rs in q2.items()},
    "q2_summary": {v: stats([r["val_acc"] for r in q2[v]]) for v in VARIANTS},
    "q2_architectures": {a: strip(rs) for a, rs in q2_arch.items()},
    "q2_architectures_summary": {a: stats([r["val_acc"] for r in q2_arch[a]]) for a in ARCHS},
    "q3": q3, "q3_summary": {k: stats(v) for k, v in q3.items()}, "disagreement": disagree,
    "q3_variants": q3v, "q3_variants_summary": {k: stats(v) for k, v in q3v.items()},
    "disagreement_variants": disagree_v, "ordering_holds": bool(order_ok),
    "q2_paired": {k: {"mean": v[0], "se": v[1], "positive": v[2]} for k, v in q2_paired.items()}})
print(f"wrote {out / 'report.md'}; total {walls['total']:.0f} s")
