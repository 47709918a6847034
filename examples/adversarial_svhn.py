# %% [markdown]
# # Adversarial robustness of a CNN (SVHN, or MNIST / CIFAR-10), in pure NumPy
#
# Mirrors the SVHN course report ("Machine Learning 2, assignment 3", parts 1-3):
#
# 1. train a CNN (conv-BN-ReLU-pool x2 + dense with dropout; ``Normalize`` is the first layer,
#    so the model takes pixels in [0, 1] and every eps is in pixel units); test accuracy,
#    confusion-matrix heat map and misclassified test images;
# 2. FGSM attacks: "correct before / wrong after" pairs, the magnified perturbation, the
#    confusion matrix on adversarial inputs (2.1); accuracy as a function of eps (with a PGD
#    curve, a stronger iterative attack, beside it) and the perturbed images with the model's
#    predictions at every eps (2.2);
# 3. adversarial training (``AdversarialTraining`` callback, FGSM, a fraction ``--ratio`` of
#    every batch replaced by adversarial examples) and the before/after comparison: both
#    models' accuracy under attack at every eps on one figure, the robust model's confusion
#    matrix and misclassified examples.
#
#     python examples/adversarial_svhn.py                      # SVHN (official .mat files)
#     python examples/adversarial_svhn.py --dataset mnist      # full MNIST
#     python examples/adversarial_svhn.py --dataset cifar10    # CIFAR-10 (bit-exact subset)
#     python examples/adversarial_svhn.py --dataset mnist --quick   # < 1 min smoke run
#
# Data: SVHN is read from ``train_32x32.mat`` / ``test_32x32.mat`` (``--data FOLDER``, else the
# library's search: $NNLITE_DATA/svhn, the cache). SVHN cannot be downloaded here, so when it
# is not found the script STOPS with a message naming ``--dataset mnist`` / ``--dataset
# cifar10``: it never switches data set silently. ``metrics.json`` and ``report.md`` record the
# exact files used.
#
# Output: runs/adversarial_<dataset>/ (metrics.json, report.md and the PNG figures).
# Speed: on a busy 2-core machine, multi-threaded OpenBLAS can be ~10x slower than one
# thread for these small matrices; ``OPENBLAS_NUM_THREADS=1`` is recommended there.

# %%
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, base_parser, machine_info, prepare_out, write_json, write_text  # noqa: E402

import nnlite.nn as nn  # noqa: E402
from nnlite import metrics  # noqa: E402
from nnlite.attacks import AdversarialTraining, fgsm, pgd, predict  # noqa: E402
from nnlite.data import DataNotFoundError, load_cifar10, load_mnist, load_svhn  # noqa: E402
from nnlite.data import stratified_subset  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.optim import Adam, StepLR  # noqa: E402
from nnlite.train import Trainer  # noqa: E402

# Per data set defaults: CNN widths, epochs, the eps grid, the eps of the adversarial
# confusion matrix and of adversarial training, and the training-set size.
DEFAULTS = {
    # The SVHN report attacks at eps = 0.1 (pixel units) and trains adversarially at it too.
    "svhn": dict(widths=(32, 64), dropout=0.25, epochs=4, warmup=1, eps=[0, 0.01, 0.02, 0.05, 0.1, 0.2],
                 eps_cm=0.1, eps_train=0.1, n_train=None),
    # MNIST: the report's grid; eps = 0.1 for the confusion matrix and for training.
    "mnist": dict(widths=(16, 32), dropout=0.5, epochs=3, warmup=0, eps=[0, 0.01, 0.02, 0.05, 0.1, 0.2],
                  eps_cm=0.1, eps_train=0.1, n_train=None),
    # CIFAR-10: the usual k/255 grid; 8/255 for the confusion matrix and for training. On the
    # 7,044-image exact subset, FGSM training at 8/255 from the first step barely learns (about
    # 22% clean accuracy after 10 epochs); 2 clean warm-up epochs fix that.
    "cifar10": dict(widths=(32, 64), dropout=0.25, epochs=10, warmup=2,
                    eps=[0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255],
                    eps_cm=8 / 255, eps_train=8 / 255, n_train=None),
}
QUICK = dict(n_train=1500, n_test=300, n_attack=300, pgd_n=60, pgd_steps=3, epochs=1)

SVHN_MISSING = """SVHN was not found: {why}
This script reads the official SVHN files train_32x32.mat and test_32x32.mat: put them in a folder
and pass --data FOLDER, or place them in $NNLITE_DATA/svhn/. To run the same experiment on data
available here, pass --dataset mnist (the report's eps grid) or --dataset cifar10 (colour 32x32
like SVHN). The script does not switch data set by itself."""


def build_cnn(in_ch: int, side: int, mean, std, widths, rng, dropout: float = 0.5):
    """Normalize - [conv3x3 - BN - ReLU - maxpool2] x 2 - dense(128) - ReLU - dropout - dense(10).

    Takes images in [0, 1] (N, in_ch, side, side); standardization is the first layer.
    """
    c1, c2 = widths
    model = nn.Sequential(
        nn.Normalize(mean, std),
        nn.Conv2d(in_ch, c1, 3, padding=1, rng=rng), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, rng=rng), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (side // 4) ** 2, 128, rng=rng), nn.ReLU(), nn.Dropout(dropout, rng=rng),
        nn.Linear(128, 10, rng=rng, init="glorot_uniform"))
    return model


def load_data(args, n_train, n_test):
    """The chosen data set (Dataset object) or exit with a clear message (SVHN missing)."""
    if args.dataset == "svhn":
        try:
            return load_svhn(args.data, n_train=n_train, n_test=n_test)
        except DataNotFoundError as e:
            why = str(e).splitlines()[0] + "".join(f"\n  looked in {w}" for w in e.searched)
            raise SystemExit(SVHN_MISSING.format(why=why)) from None
    if args.dataset == "mnist":
        return load_mnist(args.data, n_train=n_train, n_test=n_test)
    return load_cifar10(args.data, exact=args.cifar == "exact", n_train=n_train, n_test=n_test)


def attack_curves(model, x, y, eps_list, x_pgd, y_pgd, pgd_steps, rng, keep_eps):
    """FGSM accuracy at every eps on (x, y), PGD accuracy on (x_pgd, y_pgd).

    Returns (fgsm_acc list, pgd_acc list or None, the FGSM AttackResult at ``keep_eps``).
    PGD: ``pgd_steps`` steps of 2.5 * eps / steps, random start (Madry et al.).
    """
    clean = float((predict(model, x) == y).mean())
    f_acc, p_acc, kept = [], [], None
    for eps in eps_list:
        if eps == 0:
            f_acc.append(clean)
        else:
            res = fgsm(model, x, y, eps=float(eps))
            f_acc.append(res.accuracy(y))
            if np.isclose(eps, keep_eps):
                kept = res
        if x_pgd is not None:
            if eps == 0:
                p_acc.append(float((predict(model, x_pgd) == y_pgd).mean()))
            else:
                r = pgd(model, x_pgd, y_pgd, eps=float(eps), step_size=2.5 * eps / pgd_steps,
                        steps=pgd_steps, rng=rng)
                p_acc.append(r.accuracy(y_pgd))
    if kept is None:
        kept = fgsm(model, x, y, eps=float(keep_eps))
    return f_acc, (p_acc if x_pgd is not None else None), kept


def eps_label(eps: float, dataset: str) -> str:
    """eps as text: k/255 for CIFAR-10 grids, else a decimal."""
    k = eps * 255
    if dataset == "cifar10" and eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    return f"{eps:g}"


def main(argv=None):
    p = base_parser(__doc__ or "Adversarial robustness of a CNN", "adversarial_<dataset>")
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="svhn",
                   help="svhn (official .mat files, default), mnist or cifar10")
    p.add_argument("--data", default=None, help="folder holding the data set's files (optional)")
    p.add_argument("--cifar", choices=("exact", "jpeg"), default="exact",
                   help="CIFAR-10 pixels: the bit-exact subset (7,044 train / 761 test, default) "
                        "or the full JPEG-decoded set (50,000 / 10,000)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the standard model")
    p.add_argument("--adv-epochs", type=int, default=None,
                   help="epochs of adversarial training (default: --epochs)")
    p.add_argument("--adv-init", choices=("scratch", "finetune"), default="scratch",
                   help="adversarial training from a fresh model (default) or from the trained one")
    p.add_argument("--adv-warmup", type=int, default=None,
                   help="clean epochs at the start of adversarial training (default: per data set)")
    p.add_argument("--ratio", type=float, default=0.5,
                   help="fraction of each training batch replaced by FGSM examples")
    p.add_argument("--eps", type=float, nargs="+", default=None, help="eps grid (pixel units)")
    p.add_argument("--eps-cm", type=float, default=None,
                   help="eps of the adversarial confusion matrix / pairs / perturbation figures")
    p.add_argument("--eps-train", type=float, default=None, help="FGSM eps of adversarial training")
    p.add_argument("--n-train", type=int, default=None, help="training images (stratified first N)")
    p.add_argument("--n-attack", type=int, default=5000,
                   help="test images attacked for the FGSM curves (stratified first N; "
                        "clean accuracy always uses the whole test set)")
    p.add_argument("--pgd-n", type=int, default=1000, help="test images for the PGD curve (0: no PGD)")
    p.add_argument("--pgd-steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args(argv)
    if args.out == "runs/adversarial_<dataset>":
        args.out = f"runs/adversarial_{args.dataset}"
    cfg = DEFAULTS[args.dataset]
    epochs = QUICK["epochs"] if args.quick else (args.epochs or cfg["epochs"])
    adv_epochs = QUICK["epochs"] if args.quick else (args.adv_epochs or args.epochs or cfg["epochs"])
    warmup = 0 if args.quick else (args.adv_warmup if args.adv_warmup is not None else cfg["warmup"])
    if warmup >= adv_epochs and adv_epochs > 0:
        p.error(f"--adv-warmup ({warmup}) must be smaller than the adversarial epochs ({adv_epochs})")
    eps_cm = args.eps_cm if args.eps_cm is not None else cfg["eps_cm"]
    eps_train = args.eps_train if args.eps_train is not None else cfg["eps_train"]
    if args.eps is not None:
        eps_list = sorted(set(float(e) for e in args.eps) | {0.0})
    elif args.quick:
        eps_list = [0.0, eps_cm / 2, eps_cm]
    else:
        eps_list = [float(e) for e in cfg["eps"]]
    if not any(np.isclose(eps_cm, e) for e in eps_list):
        eps_list = sorted(eps_list + [float(eps_cm)])
    if any(e < 0 for e in eps_list) or eps_cm <= 0 or eps_train < 0 or not 0 <= args.ratio <= 1:
        p.error("eps values must be >= 0, --eps-cm > 0 and --ratio in [0, 1]")
    n_train = QUICK["n_train"] if args.quick else (args.n_train or cfg["n_train"])
    n_test = QUICK["n_test"] if args.quick else None
    n_attack = QUICK["n_attack"] if args.quick else args.n_attack
    pgd_n = min(args.pgd_n, QUICK["pgd_n"]) if args.quick else args.pgd_n
    pgd_steps = QUICK["pgd_steps"] if args.quick else args.pgd_steps

    seeds = np.random.SeedSequence(args.seed).spawn(6)
    rng_init, rng_train, rng_init_r, rng_train_r, rng_adv, rng_pgd = (np.random.default_rng(s)
                                                                       for s in seeds)
    figures = {}

    with Timer() as total:
        # %% Data (stops with a clear message when SVHN is asked for but absent)
        with Timer() as t_load:
            ds = load_data(args, n_train, n_test)
        out = prepare_out(args.out)
        names = list(ds.classes)
        n_ch, side = ds.x_train.shape[1], ds.x_train.shape[2]
        print(f"data set: {args.dataset}; data used: {ds.source}")
        print(f"      train {ds.x_train.shape}, test {ds.x_test.shape} (loaded in {t_load.seconds:.1f} s)")
        # Attack subsets: stratified first N of the test set (deterministic).
        ia = (np.arange(ds.y_test.size) if n_attack >= ds.y_test.size
              else stratified_subset(ds.y_test, n_attack))
        xa, ya = ds.x_test[ia], ds.y_test[ia]
        if pgd_n > 0:
            ip = np.arange(ya.size) if pgd_n >= ya.size else stratified_subset(ya, pgd_n)
            xp, yp = xa[ip], ya[ip]
        else:
            xp = yp = None
        mean = ds.x_train.mean(axis=(0, 2, 3))
        std = ds.x_train.std(axis=(0, 2, 3))

        def train(model, rng, epochs_, callbacks=()):
            opt = Adam(model.parameters(), lr=args.lr)
            tr = Trainer(model, SoftmaxCrossEntropy(), opt, schedule=StepLR(opt, step_size=3, gamma=0.5),
                         callbacks=list(callbacks), batch_size=args.batch_size, rng=rng)
            hist = tr.fit(ds.x_train, ds.y_train, epochs=epochs_, val_split=0.05)
            return tr, hist

        # %% Part 1: train the standard CNN
        model = build_cnn(n_ch, side, mean, std, cfg["widths"], rng_init, cfg["dropout"])
        summary_text = nn.summary(model, (n_ch, side, side))
        print(f"Part 1: training the CNN for {epochs} epoch(s)")
        with Timer() as t_train:
            trainer, history = train(model, rng_train, epochs)
        test = trainer.evaluate(ds.x_test, ds.y_test)
        pred = trainer.predict(ds.x_test)
        cm = metrics.confusion_matrix(ds.y_test, pred, num_classes=10)
        print(f"test accuracy (standard CNN): {test['acc']:.4f}")

        # %% Part 2: FGSM (and PGD) at every eps
        print(f"Part 2: FGSM on {ya.size} test images at eps {[eps_label(e, args.dataset) for e in eps_list]}"
              + (f", PGD-{pgd_steps} on {yp.size}" if xp is not None else ""))
        with Timer() as t_att:
            f_std, p_std, adv_std = attack_curves(model, xa, ya, eps_list, xp, yp, pgd_steps, rng_pgd, eps_cm)
        cm_adv = metrics.confusion_matrix(ya, adv_std.pred_adv, num_classes=10)
        for e, a in zip(eps_list, f_std):
            print(f"  eps {eps_label(e, args.dataset):>7}: FGSM accuracy {a:.4f}")

        # %% Part 3: adversarial training (FGSM examples replace a fraction of each batch)
        if args.adv_init == "finetune":
            robust = build_cnn(n_ch, side, mean, std, cfg["widths"], rng_init_r, cfg["dropout"])
            robust.load_state_dict(model.state_dict())
        else:
            robust = build_cnn(n_ch, side, mean, std, cfg["widths"], rng_init_r, cfg["dropout"])
        print(f"Part 3: adversarial training (FGSM eps {eps_label(eps_train, args.dataset)}, "
              f"ratio {args.ratio}, {adv_epochs} epoch(s) of which {warmup} clean warm-up, init: {args.adv_init})")
        with Timer() as t_train_r:
            trainer_r, history_r = train(robust, rng_train_r, adv_epochs,
                                         [AdversarialTraining("fgsm", eps=eps_train, ratio=args.ratio,
                                                              start_epoch=warmup, rng=rng_adv)])
        test_r = trainer_r.evaluate(ds.x_test, ds.y_test)
        pred_r = trainer_r.predict(ds.x_test)
        cm_r = metrics.confusion_matrix(ds.y_test, pred_r, num_classes=10)
        with Timer() as t_att_r:
            f_rob, p_rob, adv_rob = attack_curves(robust, xa, ya, eps_list, xp, yp, pgd_steps, rng_pgd, eps_cm)
        cm_r_adv = metrics.confusion_matrix(ya, adv_rob.pred_adv, num_classes=10)
        print(f"test accuracy (adversarially trained): {test_r['acc']:.4f}")
        for e, a, b in zip(eps_list, f_std, f_rob):
            print(f"  eps {eps_label(e, args.dataset):>7}: FGSM accuracy standard {a:.4f} -> "
                  f"adversarially trained {b:.4f}")

        # %% Figures (matplotlib is imported only here)
        with Timer() as t_fig:
            from nnlite import attacks, viz
            tag = {"svhn": "SVHN", "mnist": "MNIST", "cifar10": "CIFAR-10"}[args.dataset]
            ecm = eps_label(eps_cm, args.dataset)

            def fig(key, filename):
                figures[key] = filename
                return out / filename

            # Part 1
            viz.plot_history(history.to_dict(), metrics=("loss", "acc"), path=fig("history", "history.png"),
                             title=f"{tag} CNN: training and validation")
            viz.plot_confusion_matrix(cm, names, path=fig("confusion_matrix", "confusion_matrix.png"),
                                      title=f"Confusion matrix, clean test set (acc {test['acc']:.2%})")
            viz.plot_image_grid(ds.x_test, ds.y_test, pred, class_names=names, only_misclassified=True,
                                max_images=20, path=fig("misclassified", "misclassified.png"),
                                title="Misclassified test images (true / predicted)")
            # Part 2.1: correct before / wrong after, perturbation, adversarial confusion matrix
            flips = np.flatnonzero((adv_std.pred_clean == ya) & (adv_std.pred_adv != ya))
            if flips.size:
                try:   # re-attacks these images (same FGSM, so the same flips)
                    attacks.plot_adversarial_pairs(model, xa[flips[:8]], ya[flips[:8]], eps_cm,
                                                   out / "adversarial_pairs.png", class_names=names)
                    figures["pairs"] = "adversarial_pairs.png"
                except ValueError as e:
                    print(f"note: no pairs figure ({e})")
                k = flips[:8]
                attacks.plot_perturbation(xa[k], adv_std.x_adv[k], fig("perturbation", "perturbation.png"),
                                          labels=[f"{names[ya[i]]}->{names[adv_std.pred_adv[i]]}" for i in k])
            viz.plot_confusion_matrix(cm_adv, names, path=fig("confusion_matrix_adv", "confusion_matrix_adv.png"),
                                      title=f"Confusion matrix under FGSM eps={ecm} "
                                            f"(acc {adv_std.accuracy(ya):.2%})")
            # Part 2.2: accuracy vs eps, perturbed images at every eps
            curves = {"FGSM": dict(zip(eps_list, f_std))}
            if p_std is not None:
                curves[f"PGD-{pgd_steps} ({yp.size} images)"] = dict(zip(eps_list, p_std))
            attacks.plot_accuracy_vs_eps(curves, fig("accuracy_vs_eps", "accuracy_vs_eps.png"),
                                         title=f"{tag} CNN: accuracy under attack",
                                         xlabel="eps (pixel units, images in [0, 1])")
            clean_ok = np.flatnonzero(adv_std.pred_clean == ya)
            show = clean_ok[np.linspace(0, clean_ok.size - 1, min(8, clean_ok.size)).astype(int)] \
                if clean_ok.size else np.arange(min(8, ya.size))
            attacks.plot_adversarial_grid(model, xa[show], ya[show], eps_list,
                                          fig("adversarial_grid", "adversarial_grid.png"), class_names=names)
            # Part 3: comparison, robust model's confusion matrices and mistakes
            both = {"standard, FGSM": dict(zip(eps_list, f_std)),
                    "adv. trained, FGSM": dict(zip(eps_list, f_rob))}
            if p_std is not None:
                both["standard, PGD"] = dict(zip(eps_list, p_std))
                both["adv. trained, PGD"] = dict(zip(eps_list, p_rob))
            attacks.plot_accuracy_vs_eps(both, fig("comparison", "comparison_accuracy_vs_eps.png"),
                                         title=f"{tag}: standard vs adversarially trained",
                                         xlabel="eps (pixel units, images in [0, 1])")
            viz.plot_history(history_r.to_dict(), metrics=("loss", "acc"),
                             path=fig("history_robust", "history_robust.png"),
                             title=f"{tag} CNN, adversarial training (train: mixed batches; val: clean)")
            viz.plot_confusion_matrix(cm_r_adv, names,
                                      path=fig("confusion_matrix_robust_adv", "confusion_matrix_robust_adv.png"),
                                      title=f"Adv. trained, FGSM eps={ecm} (acc {adv_rob.accuracy(ya):.2%})")
            viz.plot_confusion_matrix(cm_r, names, path=fig("confusion_matrix_robust", "confusion_matrix_robust.png"),
                                      title=f"Adv. trained, clean test set (acc {test_r['acc']:.2%})")
            viz.plot_image_grid(adv_rob.x_adv, ya, adv_rob.pred_adv, class_names=names,
                                only_misclassified=True, max_images=20,
                                path=fig("misclassified_robust", "misclassified_robust.png"),
                                title=f"Adv. trained model: misclassified FGSM images (eps={ecm})")

    # %% metrics.json and report.md
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    results = {
        "dataset": args.dataset, "data": ds.source,
        "data_note": ("official SVHN .mat files" if args.dataset == "svhn" else
                      f"{args.dataset} used instead of SVHN (chosen with --dataset)"),
        "n_train": int(ds.x_train.shape[0]), "n_test": int(ds.x_test.shape[0]),
        "n_attack": int(ya.size), "n_pgd": int(0 if yp is None else yp.size), "pgd_steps": pgd_steps,
        "classes": names, "eps": eps_list, "eps_confusion": eps_cm,
        "standard": {
            "clean_accuracy": test["acc"], "test_loss": test["loss"], "epochs": epochs,
            "fgsm_accuracy": f_std, "pgd_accuracy": p_std,
            "accuracy_at_eps_confusion": adv_std.accuracy(ya),
            "confusion_matrix": cm, "confusion_matrix_adv": cm_adv,
            "flipped_at_eps_confusion": int(flips.size),
        },
        "adversarial_training": {"attack": "fgsm", "eps": eps_train, "ratio": args.ratio,
                                 "epochs": adv_epochs, "warmup_epochs": warmup, "init": args.adv_init},
        "robust": {
            "clean_accuracy": test_r["acc"], "test_loss": test_r["loss"], "epochs": adv_epochs,
            "fgsm_accuracy": f_rob, "pgd_accuracy": p_rob,
            "accuracy_at_eps_confusion": adv_rob.accuracy(ya),
            "confusion_matrix": cm_r, "confusion_matrix_adv": cm_r_adv,
        },
        "history": history.to_dict(), "history_robust": history_r.to_dict(),
        "figures": figures,
        "wall_time_s": {"total": total.seconds, "load": t_load.seconds, "train_standard": t_train.seconds,
                        "attack_standard": t_att.seconds, "train_adversarial": t_train_r.seconds,
                        "attack_adversarial": t_att_r.seconds, "figures": t_fig.seconds},
        "seed": args.seed, "quick": args.quick, "batch_size": args.batch_size, "lr": args.lr,
        "machine": machine_info(), "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    write_json(out / "metrics.json", results)

    rows = []
    for i, e in enumerate(eps_list):
        r = f"| {eps_label(e, args.dataset)} | {pct(f_std[i])} | {pct(f_rob[i])} |"
        if p_std is not None:
            r += f" {pct(p_std[i])} | {pct(p_rob[i])} |"
        rows.append(r)
    head = "| eps | standard, FGSM | adv. trained, FGSM |" + (
        " standard, PGD | adv. trained, PGD |" if p_std is not None else "")
    sep = "|---" * (5 if p_std is not None else 3) + "|"

    def img(key, alt):
        return f"![{alt}]({figures[key]})" if key in figures else f"_({alt}: no figure, see text)_"

    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    data_line = ds.source if args.dataset == "svhn" else (
        f"{ds.source}. **Not SVHN**: this run uses {args.dataset} (chosen with --dataset).")
    pairs_text = (img("pairs", "correct before / wrong after") + "\n\n" + img("perturbation", "perturbation")
                  if flips.size else f"No test image flipped at eps={ecm}: no pairs to show.")
    write_text(out / "report.md", f"""# Adversarial robustness of a CNN: {tag} (nnlite)

Command: `python examples/adversarial_svhn.py {cmd}`

Data: {data_line}
Train {results['n_train']} / test {results['n_test']} images; attacks on {ya.size} test images
(stratified first N{'' if yp is None else f'; PGD on {yp.size} of them'}). eps is in pixel units:
the model takes images in [0, 1] and standardizes them in its first layer.

## Part 1: training a CNN on {tag}

```
{summary_text}
```
Adam (lr {args.lr}, halved every 3 epochs), batch {args.batch_size}, 5% validation split, dropout {cfg["dropout"]},
{epochs} epoch(s) in {t_train.seconds:.0f} s.

![history]({figures['history']})

### 1.1 Test accuracy: {pct(test['acc'])}

{img('confusion_matrix', 'confusion matrix')}

{img('misclassified', 'misclassified test images')}

## Part 2: adversarial attacks (FGSM)

FGSM: x_adv = clip(x + eps * sign(grad_x CE(x, y)), 0, 1), with the true labels, model in eval mode.

### 2.1 Correct before / wrong after the attack (eps = {ecm})
{flips.size} of {ya.size} attacked test images were correct before and wrong after FGSM at eps = {ecm}.
Accuracy on the attacked images: {pct(f_std[0])} clean, {pct(adv_std.accuracy(ya))} under FGSM.

{pairs_text}

Confusion matrix of the model on the adversarial test images:

{img('confusion_matrix_adv', 'confusion matrix on adversarial inputs')}

### 2.2 Accuracy as a function of eps
{img('accuracy_vs_eps', 'accuracy vs eps')}

Perturbed images at every eps (rows) with the model's prediction (red: wrong):

{img('adversarial_grid', 'perturbed images per eps')}

## Part 3: adversarial training

FGSM adversarial training: in every batch a fraction {args.ratio} of the images is replaced by
FGSM examples at eps = {eps_label(eps_train, args.dataset)} (made with the current weights, eval mode),
{adv_epochs} epoch(s) ({warmup} of them clean warm-up epochs before the attack starts),
{'from a fresh model' if args.adv_init == 'scratch' else 'starting from the standard model'},
in {t_train_r.seconds:.0f} s.

{img('history_robust', 'adversarial training history')}

### Before / after
Clean test accuracy: standard {pct(test['acc'])}, adversarially trained {pct(test_r['acc'])}.
Under FGSM at eps = {ecm}: standard {pct(adv_std.accuracy(ya))}, adversarially trained {pct(adv_rob.accuracy(ya))}.

{head}
{sep}
""" + "\n".join(rows) + f"""

{img('comparison', 'standard vs adversarially trained')}

### 3.1 Confusion matrix and misclassified images of the adversarially trained model
On the FGSM test images (eps = {ecm}):

{img('confusion_matrix_robust_adv', 'robust model, adversarial confusion matrix')}

{img('misclassified_robust', 'robust model, misclassified adversarial images')}

On the clean test set:

{img('confusion_matrix_robust', 'robust model, clean confusion matrix')}

Total wall time {total.seconds:.0f} s (load {t_load.seconds:.0f} s, standard training {t_train.seconds:.0f} s,
attacks {t_att.seconds:.0f} s, adversarial training {t_train_r.seconds:.0f} s, attacks {t_att_r.seconds:.0f} s,
figures {t_fig.seconds:.0f} s). Seed {args.seed}.
""")
    print(f"wrote {out}/metrics.json, report.md and {len(figures)} figures; total {total.seconds:.0f} s")
    return results


if __name__ == "__main__":
    main()
