# %% [markdown]
# # Adversarial robustness of a CNN (SVHN, or MNIST / CIFAR-10), in pure NumPy
#
# Mirrors the SVHN course report ("Machine Learning 2, assignment 3", parts 1-3):
#
# 1. train a CNN ([conv-BN-ReLU] - pool blocks + dense with dropout; ``Normalize`` is the first
#    layer, so the model takes pixels in [0, 1] and every eps is in pixel units); test accuracy,
#    confusion matrix and misclassified test images;
# 2. FGSM attacks: "correct before / wrong after" pairs, the magnified perturbation, the
#    confusion matrix on adversarial inputs (2.1); accuracy as a function of eps, with a PGD
#    curve (a stronger iterative attack) on the same images, and the perturbed images with true
#    label and prediction at every eps (2.2);
# 3. adversarial training and the before/after comparison (3.1).
#
# Recipes (--adv-recipe): "report" is the SVHN report's own: FGSM at eps 0.1, accuracy at 6 eps,
# the confusion matrix under FGSM 0.1 on the WHOLE test set, adversarial training with FGSM 0.1
# on half of every batch (the report: accuracy 10.21 -> 80.90 percent under FGSM 0.1). "strong" (default)
# uses each data set's usual threat model: MNIST eps 0.3 with PGD-5 training and PGD-40
# evaluation (Madry et al.), CIFAR-10 8/255 with FGSM from a random start (Wong et al. 2020),
# early-stopped on the PGD accuracy of validation images.
# --eval ensemble adds a worst-case evaluation (APGD-CE, APGD-DLR, Square: AutoAttack's
# protocol) with the gradient-masking checks, and the minimal L2 perturbations found by
# Carlini-Wagner and DeepFool.
#
#     python examples/adversarial_svhn.py                      # SVHN (official .mat files)
#     python examples/adversarial_svhn.py --dataset mnist      # full MNIST, eps 0.3, PGD-40
#     python examples/adversarial_svhn.py --dataset mnist --adv-recipe report   # the report's recipe
#     python examples/adversarial_svhn.py --dataset mnist --eval ensemble       # + worst case
#     python examples/adversarial_svhn.py --dataset mnist --quick   # < 1 min smoke test
#
# SVHN is read from train_32x32.mat / test_32x32.mat (--data FOLDER, else $NNLITE_DATA/svhn or
# the cache). It cannot be downloaded here: when it is missing the script STOPS and names
# --dataset mnist / cifar10; it never switches data set silently.
# Output: runs/adversarial_<dataset>/ (metrics.json, report.md and the PNG figures).

# %%
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent) if "__file__" in globals() else "examples")
from _common import (Timer, base_parser, closed_unit_interval, command_line, compute_info,  # noqa: E402
                     describe_compute, machine_info, nonnegative_float, nonnegative_int, number_list, number_type,
                     parse_args, positive_float, positive_int, prepare_out, quick_note, script_description, write_json,
                     write_text)

import nnlite.nn as nn  # noqa: E402
from nnlite import metrics  # noqa: E402
from nnlite.attacks import (AdversarialTraining, RobustValidation, carlini_wagner, deepfool, fgsm,  # noqa: E402
                            pgd, predict, robust_accuracy)
from nnlite.data import DataNotFoundError, load_cifar10, load_mnist, load_svhn  # noqa: E402
from nnlite.data import stratified_split, stratified_subset  # noqa: E402
from nnlite.data.transforms import Compose, RandomCrop, RandomHorizontalFlip  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.optim import SGD, Adam, WarmupCosine  # noqa: E402
from nnlite.train import EarlyStopping, Trainer, load_checkpoint, save_checkpoint  # noqa: E402

# Per data set defaults of the "strong" recipe: the CNN (channels per block, convs per block,
# dense width, dropout), augmentation, epochs, the eps grid, the eps of the adversarial confusion
# matrix, the adversarial training recipe and the PGD evaluation. eps in pixel units.
DEFAULTS = {
    # SVHN: the report's FGSM at eps 0.1 (its recipe is also the "strong" one here).
    "svhn": dict(arch="pool", blocks=(32, 64, 128), convs=1, dense=128, dropout=0.3, augment="crop", epochs=8,
                 eps=[0, 0.01, 0.02, 0.05, 0.1, 0.2], eps_cm=0.1,
                 adv_attack="fgsm", adv_steps=7, eps_train=0.1, ratio=0.5, adv_epochs=8, warmup=1,
                 pgd_steps=10, pgd_step=None, lr=1e-3, adv_lr=1e-3, adv_warmup_frac=0.05, adv_start_factor=1 / 3,
                 adv_ramp=0, monitor_n=1000),
    # MNIST: Madry et al.'s threat model, eps 0.3, PGD-40 evaluation; PGD-5 training on whole
    # batches, eps ramped up from 0 over 3 epochs, early-stopped on PGD accuracy. Strided convs
    # without batch norm or dropout (Wong et al. 2020's MNIST net, widened).
    "mnist": dict(arch="strided", blocks=(32, 64), convs=1, dense=128, dropout=0.0, augment="none", epochs=8,
                  eps=[0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], eps_cm=0.1,
                  adv_attack="pgd", adv_steps=5, eps_train=0.3, ratio=1.0, adv_epochs=10, warmup=0,
                  pgd_steps=40, pgd_step=0.01, lr=2e-3, adv_lr=2e-3, adv_warmup_frac=0.4, adv_start_factor=0.0,
                  adv_ramp=3, monitor_n=1000),
    # CIFAR-10 (full JPEG-decoded set): the k/255 grid up to 0.1; FGSM-RS at 8/255.
    "cifar10": dict(arch="pool", blocks=(32, 64, 128), convs=1, dense=256, dropout=0.3, augment="flip-crop",
                    epochs=15, eps=[0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 0.1], eps_cm=8 / 255,
                    adv_attack="fgsm-rs", adv_steps=7, eps_train=8 / 255, ratio=1.0, adv_epochs=10, warmup=0,
                    pgd_steps=10, pgd_step=None, lr=1e-3, adv_lr=1e-3, adv_warmup_frac=0.05, adv_start_factor=1 / 3,
                    adv_ramp=0, monitor_n=1000),
}
# The SVHN report's recipe (parts 2-3), on any data set: overrides the per data set defaults.
REPORT_RECIPE = dict(eps=[0, 0.01, 0.02, 0.05, 0.1, 0.2], eps_cm=0.1, adv_attack="fgsm", eps_train=0.1,
                     ratio=0.5, warmup=0, adv_ramp=0, monitor_n=0, adv_warmup_frac=0.05,
                     adv_start_factor=1 / 3, pgd_step=None)
QUICK = dict(n_train=1500, n_test=300, n_attack=300, pgd_n=60, pgd_steps=3, epochs=1, monitor_n=60,
             ensemble_n=60, ensemble_steps=10, ensemble_queries=100, check_n=60, minimal_n=10)


pixel_eps = number_type(float, lambda v: 0 <= v <= 1, "a number in [0, 1] (pixel units)")


p = base_parser(script_description(globals().get("__file__"), "Adversarial robustness of a CNN"),
                "adversarial_<dataset>")
p.add_argument("--dataset", choices=sorted(DEFAULTS), default="svhn",
               help="svhn (official .mat files), mnist or cifar10 (offline stand-ins for SVHN)")
p.add_argument("--data", default=None, help="folder holding the data set's files (default: the library's search)")
p.add_argument("--cifar", choices=("exact", "jpeg"), default="jpeg",
               help="CIFAR-10 pixels: the full JPEG-decoded set (50,000 / 10,000) or the bit-exact subset "
                    "(7,044 train / 761 test)")
p.add_argument("--adv-recipe", choices=("strong", "report"), default="strong",
               help="report: the SVHN report's FGSM-0.1 recipe (half of each batch, confusion matrix on the "
                    "whole test set); strong: the data set's usual threat model (see the description)")
p.add_argument("--eval", choices=("curves", "ensemble"), default="curves",
               help="curves: FGSM/PGD accuracy vs eps; ensemble: also the worst case over APGD-CE, APGD-DLR "
                    "and Square with the gradient-masking checks, and CW/DeepFool minimal perturbations")
p.add_argument("--epochs", type=positive_int, default=None, help="epochs of the standard model (default per data set)")
p.add_argument("--load-standard", default=None, metavar="CHECKPOINT",
               help="skip Part 1's training: load the standard model from a model_standard.npz of an earlier "
                    "run with the same data set (default: train)")
p.add_argument("--load-robust", default=None, metavar="CHECKPOINT",
               help="skip Part 3's training: load the adversarially trained model from a model_robust.npz of an "
                    "earlier run with the same data set (default: train)")
p.add_argument("--adv-epochs", type=positive_int, default=None,
               help="epochs of adversarial training (default: per data set)")
p.add_argument("--adv-attack", choices=("fgsm", "fgsm-rs", "pgd"), default=None,
               help="attack of adversarial training: fgsm (the report's), fgsm-rs (FGSM from a random start, "
                    "Wong et al. 2020) or pgd (Madry et al.) (default: per recipe and data set)")
p.add_argument("--adv-steps", type=positive_int, default=None,
               help="PGD steps of --adv-attack pgd (default: per data set)")
p.add_argument("--adv-alpha", type=positive_float, default=None,
               help="step of fgsm-rs (default 1.25 eps) or pgd (default 2.5 eps / steps)")
p.add_argument("--adv-ramp", type=float, default=None,
               help="epochs over which the training eps grows linearly from 0 to --eps-train (default: per data set)")
p.add_argument("--adv-init", choices=("scratch", "finetune"), default="scratch",
               help="adversarial training from a fresh model or from the trained standard one")
p.add_argument("--adv-init-from", default=None, metavar="CHECKPOINT",
               help="continue adversarial training from this model_robust.npz (adversarial fine-tuning of an "
                    "earlier robust model; overrides --adv-init) (default: none)")
p.add_argument("--adv-warmup", type=nonnegative_int, default=None,
               help="clean epochs at the start of adversarial training (default: per data set)")
p.add_argument("--ratio", type=closed_unit_interval, default=None,
               help="fraction of each training batch replaced by adversarial examples (default: per recipe)")
p.add_argument("--monitor-n", type=nonnegative_int, default=None,
               help="validation images whose PGD-10 accuracy is measured after every adversarial epoch, for "
                    "early stopping on it (0: none; default 1000, the report recipe 0)")
p.add_argument("--patience", type=nonnegative_int, default=3, help="epochs without robust improvement before stopping")
p.add_argument("--eps", type=pixel_eps, nargs="+", default=None, help="eps grid (pixel units; default per recipe)")
p.add_argument("--eps-cm", type=pixel_eps, default=None,
               help="eps of the adversarial confusion matrix / pairs / perturbation figures (default per recipe)")
p.add_argument("--eps-train", type=pixel_eps, default=None, help="eps of adversarial training (default per recipe)")
p.add_argument("--n-train", type=positive_int, default=None, help="training images, stratified first N (default: all)")
p.add_argument("--n-attack", type=positive_int, default=None,
               help="test images attacked by FGSM (stratified first N; default 5000, the report recipe the "
                    "whole test set; clean accuracy always uses the whole test set)")
p.add_argument("--pgd-n", type=nonnegative_int, default=1000,
               help="of those, images also attacked by PGD (the curves compare both attacks on these; 0: no PGD)")
p.add_argument("--pgd-steps", type=positive_int, default=None,
               help="PGD steps of the evaluation (default per data set)")
p.add_argument("--pgd-step", type=positive_float, default=None,
               help="PGD step of the evaluation (default: per data set, else 2.5 eps / steps)")
p.add_argument("--eps-ensemble", type=pixel_eps, default=None,
               help="radius of the worst-case evaluation (default: --eps-train, the threat model)")
p.add_argument("--ensemble-n", type=positive_int, default=1000,
               help="test images (stratified first N) of the worst-case evaluation")
p.add_argument("--ensemble-steps", type=positive_int, default=100, help="APGD steps of the ensemble")
p.add_argument("--ensemble-restarts", type=positive_int, default=1, help="APGD restarts of the ensemble")
p.add_argument("--ensemble-queries", type=positive_int, default=5000, help="Square attack query budget")
p.add_argument("--check-n", type=positive_int, default=200, help="images of the gradient-masking checks")
p.add_argument("--minimal-n", type=nonnegative_int, default=100,
               help="test images for the CW / DeepFool minimal perturbations (0: none)")
p.add_argument("--augment", choices=("none", "crop", "flip-crop"), default=None,
               help="training-batch augmentation (default per data set)")
p.add_argument("--batch-size", type=positive_int, default=128, help="training batch size")
p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
               help="adam, or sgd (momentum 0.9, Nesterov: the fast-adversarial-training papers' choice; give it "
                    "--lr / --adv-lr, e.g. 0.1)")
p.add_argument("--weight-decay", type=nonnegative_float, default=None,
               help="L2 weight decay folded into the gradient (default: 0 with adam, 5e-4 with sgd)")
p.add_argument("--lr", type=positive_float, default=None, help="peak lr (linear warm-up, cosine decay)")
p.add_argument("--adv-lr", type=positive_float, default=None, help="peak lr in adversarial training")
p.add_argument("--dropout", type=closed_unit_interval, default=None,
               help="dropout before the last dense layer (default per data set: 0.3, MNIST 0)")
p.add_argument("--widths", type=number_list(int, "integers"), default=None,
               help="output channels of the CNN's blocks, e.g. 64,128 (default per data set: 32,64 for MNIST, "
                    "32,64,128 otherwise)")
p.add_argument("--dense", type=positive_int, default=None,
               help="width of the CNN's hidden dense layer (default per data set: 128, CIFAR-10 256)")
args = parse_args(p)

if args.out == "runs/adversarial_<dataset>":
    args.out = f"runs/adversarial_{args.dataset}" + ("_report" if args.adv_recipe == "report" else "")
cfg = dict(DEFAULTS[args.dataset])
if args.adv_recipe == "report":
    cfg.update(REPORT_RECIPE)
    cfg["adv_epochs"] = cfg["epochs"]
    cfg["adv_lr"] = cfg["lr"]
pick = lambda v, key: cfg[key] if v is None else v  # noqa: E731
cfg["blocks"], cfg["dense"] = tuple(pick(args.widths, "blocks")), pick(args.dense, "dense")
cfg["dropout"] = pick(args.dropout, "dropout")
weight_decay = (5e-4 if args.optimizer == "sgd" else 0.0) if args.weight_decay is None else args.weight_decay
opt_text = ("SGD with Nesterov momentum 0.9" if args.optimizer == "sgd" else "Adam") + \
    (f" and weight decay {weight_decay:g}" if weight_decay else "")
epochs = QUICK["epochs"] if args.quick and args.epochs is None else pick(args.epochs, "epochs")
adv_epochs = QUICK["epochs"] if args.quick and args.adv_epochs is None else pick(args.adv_epochs, "adv_epochs")
warmup = 0 if args.quick else pick(args.adv_warmup, "warmup")
if warmup >= adv_epochs:
    p.error(f"--adv-warmup ({warmup}) must be smaller than the adversarial epochs ({adv_epochs})")
eps_cm = pick(args.eps_cm, "eps_cm")
eps_train = pick(args.eps_train, "eps_train")
if eps_cm <= 0 or eps_train <= 0:
    p.error("--eps-cm and --eps-train must be > 0")
ratio = pick(args.ratio, "ratio")
adv_attack = pick(args.adv_attack, "adv_attack")
augment = pick(args.augment, "augment")
lr = pick(args.lr, "lr")
adv_lr = pick(args.adv_lr, "adv_lr")
adv_ramp = 0 if args.quick else pick(args.adv_ramp, "adv_ramp")
if adv_ramp < 0:
    p.error(f"--adv-ramp must be >= 0, got {adv_ramp}")
if args.eps is not None:
    eps_list = sorted(set(float(e) for e in args.eps) | {0.0})
elif args.quick:
    eps_list = [0.0, eps_cm / 2, eps_cm]
else:
    eps_list = [float(e) for e in cfg["eps"]]
if not any(np.isclose(eps_cm, e) for e in eps_list):
    eps_list = sorted(eps_list + [float(eps_cm)])
adv_steps = pick(args.adv_steps, "adv_steps")
monitor_n = pick(args.monitor_n, "monitor_n")
if args.quick:
    monitor_n = min(monitor_n, QUICK["monitor_n"])
n_train = QUICK["n_train"] if args.quick else args.n_train
n_test = QUICK["n_test"] if args.quick else None
n_attack = (QUICK["n_attack"] if args.quick else args.n_attack) if args.adv_recipe != "report" or args.n_attack \
    else None      # the report recipe attacks the whole test set
pgd_n = min(args.pgd_n, QUICK["pgd_n"]) if args.quick else args.pgd_n
pgd_steps = QUICK["pgd_steps"] if args.quick and args.pgd_steps is None else pick(args.pgd_steps, "pgd_steps")
# --quick has few steps: the step is sized from eps (2.5 eps / steps), so PGD can cross the ball
pgd_step = None if args.quick and args.pgd_step is None else pick(args.pgd_step, "pgd_step")
eps_ens = args.eps_ensemble if args.eps_ensemble is not None else eps_train
ens = dict(n=args.ensemble_n, steps=args.ensemble_steps, queries=args.ensemble_queries, check_n=args.check_n,
           minimal_n=args.minimal_n, restarts=args.ensemble_restarts)
if args.quick:
    ens.update(n=min(ens["n"], QUICK["ensemble_n"]), steps=min(ens["steps"], QUICK["ensemble_steps"]),
               queries=min(ens["queries"], QUICK["ensemble_queries"]), check_n=min(ens["check_n"], QUICK["check_n"]),
               minimal_n=min(ens["minimal_n"], QUICK["minimal_n"]))
t_start = time.perf_counter()
compute = compute_info()
print(f"compute: {describe_compute(compute)}")

# %% [markdown]
# ## Helpers: the CNN, the augmentation, the adversarial-training recipe, the attack curves

# %%
SVHN_MISSING = """SVHN was not found: {why}
This script reads the official SVHN files train_32x32.mat and test_32x32.mat: put them in a folder
and pass --data FOLDER, or place them in $NNLITE_DATA/svhn/. To run the same experiment on data
available here, pass --dataset mnist (the report's eps grid) or --dataset cifar10 (colour 32x32
like SVHN). The script does not switch data set by itself."""


def build_cnn(in_ch: int, side: int, mean, std, blocks, rng, convs: int = 1, dense: int = 128,
              dropout: float = 0.5, arch: str = "pool"):
    """A CNN on images in [0, 1] (N, in_ch, side, side); standardization is its first layer, so
    every eps is in pixel units. ``blocks``: output channels of each block, e.g. (32, 64).

    arch "pool":    Normalize - [(conv3x3 - BN - ReLU) x convs - maxpool2] per block
                    - dense - ReLU - dropout - dense(10);
    arch "strided": Normalize - [conv4x4 stride 2 pad 1 - ReLU] per block - dense - ReLU
                    - dense(10) (the MNIST network of Wong et al. 2020, widened).
    """
    layers, c = [nn.Normalize(mean, std)], in_ch
    for width in blocks:
        if arch == "strided":
            layers += [nn.Conv2d(c, width, 4, stride=2, padding=1, rng=rng), nn.ReLU()]
            c = width
            continue
        for _ in range(convs):
            layers += [nn.Conv2d(c, width, 3, padding=1, rng=rng), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        layers.append(nn.MaxPool2d(2))
    final = side // 2 ** len(blocks)
    layers += [nn.Flatten(), nn.Linear(c * final * final, dense, rng=rng), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout, rng=rng))
    layers.append(nn.Linear(dense, 10, rng=rng, init="glorot_uniform"))
    # Training needs no gradient below the first conv (the attacks switch it on for themselves).
    layers[1].needs_input_grad = False
    return nn.Sequential(*layers)


def augmentation(kind: str, side: int):
    """The training-batch transform: "none", "crop" (2-pixel padded random crop) or "flip-crop"."""
    if kind == "none":
        return None
    crop = RandomCrop(side, padding=2)
    return crop if kind == "crop" else Compose([RandomHorizontalFlip(0.5), crop])


def adversarial_recipe(attack: str, eps: float, steps: int, alpha):
    """``(AdversarialTraining attack name, attack options, text)`` for fgsm / fgsm-rs / pgd."""
    if attack == "fgsm":
        return "fgsm", {}, f"FGSM at eps {eps:g}"
    if attack == "fgsm-rs":
        a = 1.25 * eps if alpha is None else alpha
        return "pgd", dict(steps=1, step_size=a, random_start=True), \
            f"FGSM with random start (Wong et al. 2020) at eps {eps:g}, step {a:g}"
    a = 2.5 * eps / steps if alpha is None else alpha
    return "pgd", dict(steps=steps, step_size=a, random_start=True), \
        f"PGD-{steps} (random start, step {a:g}) at eps {eps:g}"


def load_dataset(args, n_train, n_test):
    """The chosen data set (Dataset object) or exit with a clear message (no traceback)."""
    try:
        if args.dataset == "svhn":
            return load_svhn(args.data, n_train=n_train, n_test=n_test)
        if args.dataset == "mnist":
            return load_mnist(args.data, n_train=n_train, n_test=n_test)
        return load_cifar10(args.data, exact=args.cifar == "exact", n_train=n_train, n_test=n_test)
    except DataNotFoundError as e:
        if args.dataset != "svhn":
            raise SystemExit(f"data not found: {e}") from None
        why = str(e).splitlines()[0] + "".join(f"\n  looked in {w}" for w in e.searched)
        raise SystemExit(SVHN_MISSING.format(why=why)) from None


def attack_curves(model, x, y, eps_list, ip, pgd_steps, pgd_step, rng_seed, keep_eps):
    """FGSM accuracy at every eps on (x, y); PGD on the subset x[ip], compared with FGSM on the
    SAME images (FGSM is per-example, so its subset accuracy is read off the full run).

    Returns (fgsm list, fgsm-on-the-PGD-images list or None, pgd list or None, the FGSM
    AttackResult at ``keep_eps``). PGD: ``pgd_steps`` steps of ``pgd_step`` (None: 2.5 eps / steps),
    random start from a Generator seeded with ``rng_seed`` at every eps (both models face the same starts).
    """
    clean_ok = predict(model, x) == y
    f_acc, f_sub, p_acc, kept = [], [], [], None
    for eps in eps_list:
        if eps == 0:
            ok = clean_ok
        else:
            res = fgsm(model, x, y, eps=float(eps))
            ok = res.pred_adv == y
            if np.isclose(eps, keep_eps):
                kept = res
        f_acc.append(float(ok.mean()))
        if ip is not None:
            f_sub.append(float(ok[ip].mean()))
            if eps == 0:
                p_acc.append(float(clean_ok[ip].mean()))
            else:
                step = 2.5 * eps / pgd_steps if pgd_step is None else pgd_step
                r = pgd(model, x[ip], y[ip], eps=float(eps), step_size=step, steps=pgd_steps,
                        rng=np.random.default_rng(rng_seed))
                p_acc.append(r.accuracy(y[ip]))
    if kept is None:
        kept = fgsm(model, x, y, eps=float(keep_eps))
    return f_acc, (f_sub if ip is not None else None), (p_acc if ip is not None else None), kept


def eps_label(eps: float, dataset: str) -> str:
    """eps as text: k/255 for CIFAR-10 grids, else a decimal."""
    k = eps * 255
    if dataset == "cifar10" and eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    return f"{eps:g}"


def load_model(path, model, what):
    """Load a checkpoint written by this script into ``model``; returns its info dict."""
    info = load_checkpoint(path, model)
    extra = info.get("extra") or {}
    if extra.get("dataset") not in (None, args.dataset):
        raise SystemExit(f"{what} {path} was trained on {extra.get('dataset')}, not {args.dataset}")
    return info


# %% [markdown]
# ## Data (stops with a clear message when SVHN is asked for but absent)

# %%
seeds = np.random.SeedSequence(args.seed).spawn(7)
rng_init, rng_train, rng_init_r, rng_train_r, rng_adv, rng_split, rng_ens = (np.random.default_rng(s) for s in seeds)
pgd_seed = args.seed + 1   # the random starts of every PGD evaluation
figures = {}
with Timer() as t_load:
    ds = load_dataset(args, n_train, n_test)
out = prepare_out(args.out)
names = list(ds.classes)
n_ch, side = ds.x_train.shape[1], ds.x_train.shape[2]
tag = {"svhn": "SVHN", "mnist": "MNIST", "cifar10": "CIFAR-10"}[args.dataset]
print(f"data set: {args.dataset}; data used: {ds.source}" + ("" if args.dataset == "svhn" else
      " (a stand-in for SVHN, which is not available offline)"))
print(f"      train {ds.x_train.shape}, test {ds.x_test.shape} (loaded in {t_load.seconds:.1f} s)")
# 5% stratified validation split, shared by both models (and by robust early stopping).
i_tr, i_val = stratified_split(ds.y_train, 0.05, rng_split)
x_tr, y_tr, x_val, y_val = ds.x_train[i_tr], ds.y_train[i_tr], ds.x_train[i_val], ds.y_train[i_val]
# Attack subsets: stratified first N of the test set (deterministic); PGD images among them.
ia = (np.arange(ds.y_test.size) if n_attack is None or n_attack >= ds.y_test.size
      else stratified_subset(ds.y_test, n_attack))
xa, ya = ds.x_test[ia], ds.y_test[ia]
ip = None if pgd_n == 0 else (np.arange(ya.size) if pgd_n >= ya.size else stratified_subset(ya, pgd_n))
n_pgd = 0 if ip is None else ip.size
mean = x_tr.mean(axis=(0, 2, 3))
std = x_tr.std(axis=(0, 2, 3))
transform = augmentation(augment, side)
adv_name, adv_kw, adv_text = adversarial_recipe(adv_attack, eps_train, adv_steps, args.adv_alpha)
pgd_text = f"PGD-{pgd_steps} (random start, step " + ("2.5 eps / steps" if pgd_step is None else f"{pgd_step:g}") + ")"


def new_model(rng):
    return build_cnn(n_ch, side, mean, std, cfg["blocks"], rng, cfg["convs"], cfg["dense"], cfg["dropout"],
                     cfg["arch"])


def train(model, rng, epochs_, callbacks=(), peak_lr=None, warmup_frac=0.05, start_factor=1 / 3):
    """Adam (or SGD with Nesterov momentum 0.9, ``--optimizer sgd``), weight decay
    ``--weight-decay``; lr: linear warm-up over ``warmup_frac`` of the steps from
    ``start_factor`` * peak, then cosine decay to 0 at the last step."""
    peak = lr if peak_lr is None else peak_lr
    if args.optimizer == "sgd":
        opt = SGD(model.parameters(), lr=peak, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        opt = Adam(model.parameters(), lr=peak, weight_decay=weight_decay)
    steps = -(-y_tr.size // args.batch_size) * max(epochs_, 1)
    schedule = WarmupCosine(opt, max(1, int(steps * warmup_frac)), steps, warmup_start_factor=start_factor)
    tr = Trainer(model, SoftmaxCrossEntropy(), opt, schedule=schedule, schedule_interval="step",
                 callbacks=list(callbacks), batch_size=args.batch_size, rng=rng, transform=transform)
    hist = tr.fit(x_tr, y_tr, epochs=epochs_, val_data=(x_val, y_val))
    return tr, hist


# %% [markdown]
# ## Part 1: train the standard CNN

# %%
model = new_model(rng_init)
summary_text = nn.summary(model, (n_ch, side, side))
if args.load_standard:
    info = load_model(args.load_standard, model, "--load-standard")
    history = info["history"]
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters()), progress=False)
    t_train = types.SimpleNamespace(seconds=info["extra"]["train_seconds"],
                                    cpu_seconds=info["extra"]["train_cpu_seconds"])
    print(f"Part 1: standard CNN loaded from {args.load_standard} (trained for {len(history['loss'])} "
          f"epoch(s) in {t_train.seconds:.0f} s)")
else:
    print(f"Part 1: training the CNN for {epochs} epoch(s), augmentation: {augment}")
    with Timer() as t_train:
        trainer, history = train(model, rng_train, epochs)
    save_checkpoint(out / "model_standard.npz", model, history=history,
                    extra={"train_seconds": t_train.seconds, "train_cpu_seconds": t_train.cpu_seconds,
                           "dataset": args.dataset, "seed": args.seed})
test = trainer.evaluate(ds.x_test, ds.y_test)
pred = trainer.predict(ds.x_test)
cm = metrics.confusion_matrix(ds.y_test, pred, num_classes=10)
print(f"test accuracy (standard CNN): {test['acc']:.4f}")

# %% [markdown]
# ## Part 2: FGSM at every eps (and PGD on the same images)

# %%
print(f"Part 2: FGSM on {ya.size} test images at eps {[eps_label(e, args.dataset) for e in eps_list]}"
      + (f"; {pgd_text} on {n_pgd} of them" if ip is not None else ""))
with Timer() as t_att:
    f_std, fs_std, p_std, adv_std = attack_curves(model, xa, ya, eps_list, ip, pgd_steps, pgd_step, pgd_seed, eps_cm)
cm_adv = metrics.confusion_matrix(ya, adv_std.pred_adv, num_classes=10)
flips = np.flatnonzero((adv_std.pred_clean == ya) & (adv_std.pred_adv != ya))
for i, e in enumerate(eps_list):
    print(f"  eps {eps_label(e, args.dataset):>7}: FGSM accuracy {f_std[i]:.4f}"
          + (f"; on the {n_pgd} PGD images FGSM {fs_std[i]:.4f}, PGD {p_std[i]:.4f}" if ip is not None else ""))

# %% [markdown]
# ## Part 3: adversarial training

# %%
robust = new_model(rng_init_r)
stopper = None
if args.load_robust:
    info_r = load_model(args.load_robust, robust, "--load-robust")
    history_r = info_r["history"]
    extra_r = info_r.get("extra") or {}
    best_epoch = extra_r.get("best_epoch")
    t_train_r = types.SimpleNamespace(seconds=extra_r.get("train_seconds", float("nan")),
                                      cpu_seconds=extra_r.get("train_cpu_seconds", float("nan")))
    trainer_r = Trainer(robust, SoftmaxCrossEntropy(), Adam(robust.parameters()), progress=False)
    print(f"Part 3: adversarially trained CNN loaded from {args.load_robust} ({len(history_r['loss'])} epoch(s), "
          f"{t_train_r.seconds:.0f} s of training)")
else:
    if args.adv_init_from:
        load_model(args.adv_init_from, robust, "--adv-init-from")
    elif args.adv_init == "finetune":
        robust.load_state_dict(model.state_dict())
    callbacks = [AdversarialTraining(adv_name, eps=eps_train, ratio=ratio, start_epoch=warmup,
                                     rng=rng_adv, ramp_epochs=adv_ramp, **adv_kw)]
    if monitor_n > 0:
        # PGD-10 accuracy on held-out validation images after every epoch; keep the best epoch.
        im = stratified_subset(y_val, min(monitor_n, y_val.size))
        stopper = EarlyStopping("val_pgd_acc", mode="max", patience=args.patience, restore_best_weights=True)
        callbacks += [RobustValidation(x_val[im], y_val[im], "pgd", eps_train, key="val_pgd_acc",
                                       seed=pgd_seed, steps=10, step_size=eps_train / 4), stopper]
    print(f"Part 3: adversarial training ({adv_text}, ratio {ratio}, {adv_epochs} epoch(s) of which "
          f"{warmup} clean warm-up, init: {args.adv_init_from or args.adv_init}"
          + (f"; early stopping on PGD-10 accuracy of {min(monitor_n, y_val.size)} validation images)"
             if monitor_n > 0 else ")"))
    with Timer() as t_train_r:
        trainer_r, history_r = train(robust, rng_train_r, adv_epochs, callbacks, peak_lr=adv_lr,
                                     warmup_frac=cfg["adv_warmup_frac"], start_factor=cfg["adv_start_factor"])
    best_epoch = stopper.best_epoch if stopper is not None else None
    save_checkpoint(out / "model_robust.npz", robust, history=history_r,
                    extra={"train_seconds": t_train_r.seconds, "train_cpu_seconds": t_train_r.cpu_seconds,
                           "dataset": args.dataset, "seed": args.seed, "best_epoch": best_epoch,
                           "recipe": args.adv_recipe})
test_r = trainer_r.evaluate(ds.x_test, ds.y_test)
pred_r = trainer_r.predict(ds.x_test)
cm_r = metrics.confusion_matrix(ds.y_test, pred_r, num_classes=10)
with Timer() as t_att_r:
    f_rob, fs_rob, p_rob, adv_rob = attack_curves(robust, xa, ya, eps_list, ip, pgd_steps, pgd_step, pgd_seed, eps_cm)
cm_r_adv = metrics.confusion_matrix(ya, adv_rob.pred_adv, num_classes=10)
print(f"test accuracy (adversarially trained): {test_r['acc']:.4f}"
      + (f" (weights of epoch {best_epoch + 1}, the best PGD validation accuracy)" if best_epoch is not None else ""))
for i, e in enumerate(eps_list):
    print(f"  eps {eps_label(e, args.dataset):>7}: FGSM accuracy standard {f_std[i]:.4f} -> "
          f"adversarially trained {f_rob[i]:.4f}"
          + (f"; PGD {p_std[i]:.4f} -> {p_rob[i]:.4f}" if ip is not None else ""))

# %% [markdown]
# ## Worst-case evaluation (--eval ensemble): APGD-CE, APGD-DLR, Square; masking checks; minimal perturbations

# %%
ensemble, minimal = {}, {}
t_ens = types.SimpleNamespace(seconds=0.0)
if args.eval == "ensemble":
    ie = np.arange(ds.y_test.size) if ens["n"] >= ds.y_test.size else stratified_subset(ds.y_test, ens["n"])
    xe, ye = ds.x_test[ie], ds.y_test[ie]
    with Timer() as t_ens:
        for key, m in (("standard", model), ("robust", robust)):
            print(f"worst-case evaluation of the {key} model on {ye.size} test images at eps "
                  f"{eps_label(eps_ens, args.dataset)} (APGD {ens['steps']} steps x{ens['restarts']}, "
                  f"Square {ens['queries']} queries)")
            with Timer() as t_one:
                rep = robust_accuracy(m, xe, ye, eps_ens, steps=ens["steps"], restarts=ens["restarts"],
                                      n_queries=ens["queries"], rng=rng_ens, check_n=ens["check_n"], verbose=True)
            print("\n".join(rep.log().splitlines()[len(rep.attacks) + 1:]))   # (the rest was printed as it ran)
            ensemble[key] = dict(rep.to_dict(), seconds_total=t_one.seconds)
            if ens["minimal_n"]:
                k = min(ens["minimal_n"], ye.size)
                quick_cw = dict(binary_steps=4, steps=30, c_init=1.0) if args.quick else \
                    dict(binary_steps=9, steps=100, c_init=0.1)
                cw = carlini_wagner(m, xe[:k], ye[:k], **quick_cw)
                df = deepfool(m, xe[:k], ye[:k])
                ok = predict(m, xe[:k]) == ye[:k]
                minimal[key] = {
                    "n": k, "cw": {"success": float(cw.success[ok].mean()) if ok.any() else 0.0,
                                   "l2": cw.perturbation_l2[ok & cw.success].tolist(), **quick_cw},
                    "deepfool": {"success": float(df.success[ok].mean()) if ok.any() else 0.0,
                                 "l2": df.perturbation_l2[ok & df.success].tolist()}}
                for a in ("cw", "deepfool"):
                    v = minimal[key][a]["l2"]
                    print(f"  {a}: minimal L2 median {np.median(v) if v else float('nan'):.3f} over {len(v)} images")

# %% [markdown]
# ## Figures (matplotlib is imported only here)

# %%
with Timer() as t_fig:
    from nnlite import attacks, viz
    ecm = eps_label(eps_cm, args.dataset)
    xlabel = "eps (pixel units, images in [0, 1])"

    def fig(key, filename):
        figures[key] = filename
        return out / filename

    # Part 1
    viz.plot_history(history.to_dict() if hasattr(history, "to_dict") else dict(history), metrics=("loss", "acc"),
                     path=fig("history", "history.png"), title=f"{tag} CNN: training and validation")
    viz.plot_confusion_matrix(cm, names, path=fig("confusion_matrix", "confusion_matrix.png"),
                              title=f"Confusion matrix, clean test set (accuracy {test['acc']:.2%})")
    viz.plot_image_grid(ds.x_test, ds.y_test, pred, class_names=names, only_misclassified=True, max_images=20,
                        path=fig("misclassified", "misclassified.png"),
                        title="Misclassified test images (true / predicted)")
    # Part 2.1: correct before / wrong after (the FGSM result already computed), perturbation, confusion
    if flips.size:
        attacks.plot_adversarial_pairs(model, xa, ya, eps_cm, fig("pairs", "adversarial_pairs.png"), max_pairs=8,
                                       class_names=names, result=adv_std)
        k = flips[:8]
        attacks.plot_perturbation(xa[k], adv_std.x_adv[k], fig("perturbation", "perturbation.png"),
                                  labels=[f"{names[ya[i]]}->{names[adv_std.pred_adv[i]]}" for i in k])
    viz.plot_confusion_matrix(cm_adv, names, path=fig("confusion_matrix_adv", "confusion_matrix_adv.png"),
                              title=f"Confusion matrix under FGSM eps={ecm}, {ya.size} test images "
                                    f"(accuracy {adv_std.accuracy(ya):.2%})")
    # Part 2.2: accuracy vs eps (FGSM and PGD on the same images), perturbed images at every eps
    if ip is not None:
        curves = {"FGSM": dict(zip(eps_list, fs_std)), f"PGD-{pgd_steps}": dict(zip(eps_list, p_std))}
        title = f"{tag} CNN: accuracy under attack ({n_pgd} test images, both attacks)"
    else:
        curves = {"FGSM": dict(zip(eps_list, f_std))}
        title = f"{tag} CNN: accuracy under FGSM ({ya.size} test images)"
    attacks.plot_accuracy_vs_eps(curves, fig("accuracy_vs_eps", "accuracy_vs_eps.png"), title=title, xlabel=xlabel)
    clean_ok = np.flatnonzero(adv_std.pred_clean == ya)
    show = clean_ok[np.linspace(0, clean_ok.size - 1, min(8, clean_ok.size)).astype(int)] \
        if clean_ok.size else np.arange(min(8, ya.size))
    attacks.plot_adversarial_grid(model, xa[show], ya[show], eps_list, fig("adversarial_grid", "adversarial_grid.png"),
                                  class_names=names)
    # Part 3: comparison (colour = model, line style = attack), robust model's confusion matrices and mistakes
    if ip is not None:
        comp = {"standard": {"FGSM": dict(zip(eps_list, fs_std)), f"PGD-{pgd_steps}": dict(zip(eps_list, p_std))},
                "adv. trained": {"FGSM": dict(zip(eps_list, fs_rob)), f"PGD-{pgd_steps}": dict(zip(eps_list, p_rob))}}
        n_comp = n_pgd
    else:
        comp = {"standard": {"FGSM": dict(zip(eps_list, f_std))}, "adv. trained": {"FGSM": dict(zip(eps_list, f_rob))}}
        n_comp = ya.size
    attacks.plot_attack_comparison(comp, fig("comparison", "comparison_accuracy_vs_eps.png"),
                                   title=f"{tag}: standard vs adversarially trained ({n_comp} test images)",
                                   xlabel=xlabel)
    hist_r_plot = history_r.to_dict() if hasattr(history_r, "to_dict") else dict(history_r)
    robust_val = "val_pgd_acc" in hist_r_plot               # the early-stopping metric, when monitored
    viz.plot_history(hist_r_plot, metrics=("loss", "acc") + (("pgd_acc",) if robust_val else ()),
                     path=fig("history_robust", "history_robust.png"),
                     mark_epoch=None if best_epoch is None else best_epoch + 1, mark_label="kept",
                     title=f"{tag} CNN, adversarial training (train: "
                           + ("adversarial batches" if ratio >= 1 else f"{ratio:.0%} of each batch adversarial")
                           + f"; val: clean{', PGD-10' if robust_val else ''})")
    viz.plot_confusion_matrix(cm_r_adv, names,
                              path=fig("confusion_matrix_robust_adv", "confusion_matrix_robust_adv.png"),
                              title=f"Adv. trained, FGSM eps={ecm} (accuracy {adv_rob.accuracy(ya):.2%})")
    viz.plot_confusion_matrix(cm_r, names, path=fig("confusion_matrix_robust", "confusion_matrix_robust.png"),
                              title=f"Adv. trained, clean test set (accuracy {test_r['acc']:.2%})")
    viz.plot_image_grid(adv_rob.x_adv, ya, adv_rob.pred_adv, class_names=names, only_misclassified=True,
                        max_images=20, path=fig("misclassified_robust", "misclassified_robust.png"),
                        title=f"Adv. trained model: misclassified FGSM images (eps={ecm})")
    if minimal:
        attacks.plot_minimal_norms({f"{key}, {a}": minimal[key][a]["l2"]
                                    for key in minimal for a in ("cw", "deepfool")},
                                   fig("minimal_norms", "minimal_norms.png"),
                                   title=f"{tag}: minimal L2 perturbations (CW, DeepFool)")

# %% [markdown]
# ## metrics.json and report.md

# %%
total_seconds = time.perf_counter() - t_start
pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
hist_std = history.to_dict() if hasattr(history, "to_dict") else dict(history)
hist_rob = history_r.to_dict() if hasattr(history_r, "to_dict") else dict(history_r)
results = {
    "dataset": args.dataset, "data": ds.source, "recipe": args.adv_recipe, "eval": args.eval,
    "data_note": ("official SVHN .mat files" if args.dataset == "svhn" else
                  f"{args.dataset} used instead of SVHN (not available offline; chosen with --dataset)"),
    "n_train": int(ds.x_train.shape[0]), "n_test": int(ds.x_test.shape[0]),
    "n_attack": int(ya.size), "n_pgd": int(n_pgd), "pgd_steps": pgd_steps,
    "pgd_step": pgd_step, "pgd": pgd_text, "augment": augment,
    "classes": names, "eps": eps_list, "eps_confusion": eps_cm,
    "standard": {
        "clean_accuracy": test["acc"], "test_loss": test["loss"], "epochs": epochs,
        "fgsm_accuracy": f_std, "fgsm_accuracy_pgd_images": fs_std, "pgd_accuracy": p_std,
        "accuracy_at_eps_confusion": adv_std.accuracy(ya),
        "confusion_matrix": cm, "confusion_matrix_adv": cm_adv, "flipped_at_eps_confusion": int(flips.size),
    },
    "adversarial_training": {"attack": adv_attack, "recipe": adv_text, "eps": eps_train, "ratio": ratio,
                             "options": adv_kw, "eps_ramp_epochs": adv_ramp, "epochs": adv_epochs,
                             "epochs_run": len(hist_rob["loss"]), "warmup_epochs": warmup,
                             "init": args.adv_init_from or args.adv_init,
                             "loaded_from": args.load_robust,
                             "early_stopping": ({"monitor": "PGD-10 accuracy", "n_val": int(min(monitor_n, y_val.size)),
                                                 "patience": args.patience, "best_epoch": best_epoch}
                                                if monitor_n > 0 and not args.load_robust else None),
                             "train_seconds": t_train_r.seconds, "train_cpu_seconds": t_train_r.cpu_seconds},
    "robust": {
        "clean_accuracy": test_r["acc"], "test_loss": test_r["loss"], "epochs": adv_epochs,
        "fgsm_accuracy": f_rob, "fgsm_accuracy_pgd_images": fs_rob, "pgd_accuracy": p_rob,
        "accuracy_at_eps_confusion": adv_rob.accuracy(ya),
        "confusion_matrix": cm_r, "confusion_matrix_adv": cm_r_adv,
    },
    "ensemble": ({"eps": eps_ens, "n": ens["n"], **{k: v for k, v in ensemble.items()}, "minimal": minimal}
                 if args.eval == "ensemble" else None),
    "history": hist_std, "history_robust": hist_rob,
    "figures": figures, "standard_loaded_from": args.load_standard,
    "cpu_time_s": {"train_standard": t_train.cpu_seconds, "train_adversarial": t_train_r.cpu_seconds},
    "wall_time_s": {"total": total_seconds, "load": t_load.seconds, "train_standard": t_train.seconds,
                    "attack_standard": t_att.seconds, "train_adversarial": t_train_r.seconds,
                    "attack_adversarial": t_att_r.seconds, "ensemble": t_ens.seconds, "figures": t_fig.seconds},
    "seed": args.seed, "quick": args.quick, "batch_size": args.batch_size, "lr": lr, "adv_lr": adv_lr,
    "optimizer": args.optimizer, "weight_decay": weight_decay,
    "arch": cfg["arch"], "widths": list(cfg["blocks"]), "dense": cfg["dense"], "compute": compute,
    "machine": machine_info(), "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
}
write_json(out / "metrics.json", results)


def img(key, alt):
    return f"![{alt}]({figures[key]})" if key in figures else f"_({alt}: no figure, see text)_"


rows = []
for i, e in enumerate(eps_list):
    r = f"| {eps_label(e, args.dataset)} | {pct(f_std[i])} | {pct(f_rob[i])} |"
    if ip is not None:
        r += f" {pct(fs_std[i])} | {pct(p_std[i])} | {pct(fs_rob[i])} | {pct(p_rob[i])} |"
    rows.append(r)
head = (f"| eps | standard, FGSM ({ya.size}) | adv. trained, FGSM ({ya.size}) |"
        + (f" standard, FGSM ({n_pgd}) | standard, PGD ({n_pgd}) | adv. trained, FGSM ({n_pgd}) |"
           f" adv. trained, PGD ({n_pgd}) |" if ip is not None else ""))
sep = "|---" * (7 if ip is not None else 3) + "|"
if stopper is not None and best_epoch is not None:
    early_text = (f"Early stopping on the PGD-10 accuracy (eps {eps_label(eps_train, args.dataset)}) of "
                  f"{min(monitor_n, y_val.size)} validation images, patience {args.patience}: the model holds the "
                  f"weights of epoch {best_epoch + 1} of {len(hist_rob['loss'])} (the most robust one; the guard "
                  "against catastrophic overfitting, Wong et al. 2020).")
elif args.load_robust:
    early_text = (f"Loaded from `{args.load_robust}`" + (f" (weights of epoch {best_epoch + 1}, restored by early "
                  "stopping on PGD validation accuracy)." if best_epoch is not None else "."))
else:
    early_text = "No early stopping: the weights of the last epoch."
data_line = ds.source if args.dataset == "svhn" else (
    f"{ds.source}. **Not SVHN**: this run uses {args.dataset} as a stand-in (SVHN's .mat files are not "
    "available offline), so the comparison with the report's SVHN numbers is loose.")
pairs_text = (img("pairs", "correct before / wrong after") + "\n\n" + img("perturbation", "perturbation")
              if flips.size else f"No test image flipped at eps={ecm}: no pairs to show.")
report_line = ""
init_text = (f"continuing from the robust model `{args.adv_init_from}`" if args.adv_init_from else
             "from a fresh model" if args.adv_init == "scratch" else "starting from the standard model")
REPORT_TEXT = " (the SVHN report's: FGSM eps 0.1, adversarial training with FGSM 0.1 on half of each batch)"
whole = ", the whole test set" if ya.size == ds.y_test.size else ""
if args.adv_recipe == "report" or args.dataset == "svhn":
    report_line = (f"\n**The report's numbers** (SVHN, FGSM eps 0.1): 10.21% before and 80.90% after adversarial "
                   f"training. This run ({tag}{', smoke test' if args.quick else ''}): "
                   f"{pct(adv_std.accuracy(ya))} -> {pct(adv_rob.accuracy(ya))} under FGSM eps {ecm} on "
                   f"{ya.size} test images.\n")

ens_text = ""
if args.eval == "ensemble":
    parts = [f"""## Worst-case robustness (beyond the report): APGD-CE, APGD-DLR, Square

AutoAttack's protocol (Croce & Hein 2020): each attack runs only on the points every earlier attack failed
to break; a point is robust only if all fail. eps {eps_label(eps_ens, args.dataset)} (L-inf),
{min(ens['n'], ds.y_test.size)} test images (stratified first N), APGD {ens['steps']} steps x {ens['restarts']}
restart(s), Square {ens['queries']} queries.
"""]
    for key in ("standard", "robust"):
        e = ensemble[key]
        parts.append(f"\n### {'Standard' if key == 'standard' else 'Adversarially trained'} model\n\n"
                     "| after | robust accuracy | points broken | seconds |\n|---|---|---|---|\n"
                     f"| clean | {pct(e['clean_accuracy'])} | | |\n"
                     + "\n".join(f"| {a} | {pct(e['accuracy_after'][a])} | {e['broken'][a]} | {e['seconds'][a]:.0f} |"
                                 for a in e["attacks"])
                     + f"\n\n**Worst-case robust accuracy: {pct(e['robust_accuracy'])}** ({e['n']} images).\n\n"
                     f"Gradient-masking checks (APGD-CE on {e['masking']['n']} images): "
                     + ("**FLAGGED**" if e["masking"]["flagged"] else "all passed") + "\n\n"
                     + "\n".join(f"- {name}: {'pass' if c['passed'] else '**FLAGGED**'} ({c['detail']})"
                                 for name, c in e["masking"]["checks"].items()) + "\n")
    if minimal:
        parts.append("\n### Minimal L2 perturbations (Carlini-Wagner L2, DeepFool overshoot 0.02)\n\n"
                     "| model | attack | success | median L2 | images |\n|---|---|---|---|---|\n"
                     + "\n".join(f"| {key} | {a} | {pct(minimal[key][a]['success'])} | "
                                 f"{np.median(minimal[key][a]['l2']) if minimal[key][a]['l2'] else float('nan'):.3f} | "
                                 f"{minimal[key]['n']} |" for key in minimal for a in ("cw", "deepfool"))
                     + "\n\n" + img("minimal_norms", "minimal perturbation norms") + "\n")
    ens_text = "".join(parts)

write_text(out / "report.md", f"""# Adversarial robustness of a CNN: {tag} (nnlite)
{quick_note("one epoch per model on a data subset, few attack steps") if args.quick else ""}
Command: `{command_line("adversarial_svhn.py")}`

Data: {data_line}
Train {results['n_train']} / test {results['n_test']} images; FGSM on {ya.size} test images
(stratified first N{'' if ip is None else f'; PGD on {n_pgd} of them, compared with FGSM on the same images'}).
eps is in pixel units: the model takes images in [0, 1] and standardizes them in its first layer.
Recipe: {args.adv_recipe}{REPORT_TEXT if args.adv_recipe == "report" else ""}.
Compute: {describe_compute(compute)}.
{report_line}
## Part 1: training a CNN on {tag}

```
{summary_text}
```
{opt_text} (peak lr {lr}, linear warm-up then cosine decay per step), batch {args.batch_size}, 5% stratified validation
split, augmentation: {augment}, dropout {cfg["dropout"]}, {epochs} epoch(s) in {t_train.seconds:.0f} s.

{img('history', 'history')}

### 1.1 Test accuracy: {pct(test['acc'])}

{img('confusion_matrix', 'confusion matrix')}

{img('misclassified', 'misclassified test images')}

## Part 2: adversarial attacks (FGSM)

FGSM: x_adv = clip(x + eps * sign(grad_x CE(x, y)), 0, 1), with the true labels, model in eval mode.

### 2.1 Correct before / wrong after the attack (eps = {ecm})
{flips.size} of {ya.size} attacked test images were correct before and wrong after FGSM at eps = {ecm}.
Accuracy on the attacked images: {pct(f_std[0])} clean, {pct(adv_std.accuracy(ya))} under FGSM.

{pairs_text}

Confusion matrix of the model on the adversarial test images ({ya.size} images{whole}):

{img('confusion_matrix_adv', 'confusion matrix on adversarial inputs')}

### 2.2 Accuracy as a function of eps
{img('accuracy_vs_eps', 'accuracy vs eps')}

Perturbed images at every eps (rows) with the true label and the model's prediction (red: wrong):

{img('adversarial_grid', 'perturbed images per eps')}

## Part 3: adversarial training

In every batch a fraction {ratio} of the images is replaced by adversarial examples, {adv_text} (made with the
current weights, eval mode), {opt_text} with peak lr {adv_lr} (warm-up over {100 * cfg["adv_warmup_frac"]:.0f}% of the
steps, then cosine decay), up to {adv_epochs} epoch(s) ({warmup} clean warm-up; eps ramped up from 0 over
{adv_ramp:g} epoch(s)), {init_text};
{len(hist_rob['loss'])} epoch(s) run in {t_train_r.seconds:.0f} s. {early_text}

{img('history_robust', 'adversarial training history')}

### 3.1 Before / after
Clean test accuracy: standard {pct(test['acc'])}, adversarially trained {pct(test_r['acc'])}.
Under FGSM at eps = {ecm}: standard {pct(adv_std.accuracy(ya))}, adversarially trained {pct(adv_rob.accuracy(ya))}.
PGD columns: {pgd_text}; the numbers in brackets are the images attacked.

{head}
{sep}
""" + "\n".join(rows) + f"""

{img('comparison', 'standard vs adversarially trained')}

Confusion matrix and misclassified images of the adversarially trained model on the FGSM test images
(eps = {ecm}):

{img('confusion_matrix_robust_adv', 'robust model, adversarial confusion matrix')}

{img('misclassified_robust', 'robust model, misclassified adversarial images')}

On the clean test set:

{img('confusion_matrix_robust', 'robust model, clean confusion matrix')}

{ens_text}
Total wall time {total_seconds:.0f} s (load {t_load.seconds:.0f} s, standard training {t_train.seconds:.0f} s,
attacks {t_att.seconds:.0f} s, adversarial training {t_train_r.seconds:.0f} s, attacks {t_att_r.seconds:.0f} s,
worst-case evaluation {t_ens.seconds:.0f} s, figures {t_fig.seconds:.0f} s). Seed {args.seed}.
""")
print(f"wrote {out}/metrics.json, report.md and {len(figures)} figures; total {total_seconds:.0f} s")
