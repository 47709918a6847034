# %% [markdown]
# # Fooling images for a two-layer MLP on CIFAR-10, in pure NumPy
#
# Mirrors part 4 of the CIFAR-10 course report ("Fooling images: adversarial examples for the
# NN in the last section"): train the two-layer network of part 3 with the report's settings
# (raw pixels in [0, 1] standardized per pixel by a Normalize layer inside the model, hidden
# layer of 100 ReLUs, plain SGD with lr 0.1 multiplied by 0.9 after every epoch, batch 128,
# 30 epochs: the same model as examples/cifar10_classifiers.py part 3), then, for correctly
# classified test images, climb the TARGET class score with normalized gradient steps,
# x <- clip(x + step * g / ||g||_2, 0, 1) with g = d score_target / dx, until the model
# predicts the target (at most --max-steps steps; nnlite.attacks.fooling_images).
#
#     python examples/fooling_images.py                       # full CIFAR-10 (JPEG-decoded), a few min
#     python examples/fooling_images.py --target automobile   # fool every image into one class
#     python examples/fooling_images.py --cifar exact         # bit-exact CIFAR-10 subset
#     python examples/fooling_images.py --quick               # smoke test, a few seconds (CI)
#
# Data: by default all 50,000 training images (JPEG quality 75, decoded) and the 10,000
# JPEG-decoded test images. --cifar exact uses the bit-exact official pixels of a subset
# (7,044 train / 761 test): the perturbations are then measured against the true pixels, but
# the MLP trained on 7,044 images is weaker. The data used is printed and recorded.
#
# Output: runs/fooling_images/ (metrics.json, report.md, history.png, fooling_images.png).
# In a notebook, set $NNLITE_EXAMPLE_ARGS (e.g. "--quick") before starting the kernel.

# %% Arguments, imports and the run folder
import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(globals().get("__file__", "fooling_images.py")).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (Timer, add_download_arg, base_parser, command_line, compute_info,  # noqa: E402
                     decay_factor, describe_compute, load_data, machine_info, nonnegative_float,
                     parse_args, positive_float, positive_int, prepare_out, quick_note,
                     script_description, write_json, write_text)

import cifar10_trials as trials  # noqa: E402
from nnlite.attacks import fooling_images  # noqa: E402
from nnlite.data import CIFAR10_CLASSES, load_cifar10  # noqa: E402
from nnlite.data.checks import WrongDataError, check_content  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.optim import SGD, MultiplicativeDecay  # noqa: E402
from nnlite.train import Trainer  # noqa: E402

PART3 = trials.TWO_LAYER_DEFAULTS   # hidden 100, lr 0.1, decay 0.9, batch 128, 30 epochs, N(0, 0.01^2)
QUICK_EPOCHS, QUICK_IMAGES, IMAGES = 5, 20, 100


def target_class(text: str):
    """argparse type: 'random' -> None; a CIFAR-10 class name (any case) or index 0..9 -> int."""
    if text == "random":
        return None
    low = [c.lower() for c in CIFAR10_CLASSES]
    if text.lower() in low:
        return low.index(text.lower())
    if text.isdigit() and int(text) < len(CIFAR10_CLASSES):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 'random', a class index 0..{len(CIFAR10_CLASSES) - 1} or one "
                                     f"of {', '.join(CIFAR10_CLASSES)}; got {text!r}")


p = base_parser(script_description(globals().get("__file__"), "Fooling images for a CIFAR-10 MLP"),
                "fooling_images")
p.add_argument("--data", default=None, help="folder holding CIFAR-10 (default: $NNLITE_DATA/cifar10, the cache)")
add_download_arg(p)
p.add_argument("--cifar", choices=("exact", "jpeg"), default=None,
               help="the full JPEG-decoded set or the bit-exact subset (7,044 / 761); default: jpeg, "
                    "or exact with --quick")
p.add_argument("--hidden", type=positive_int, default=PART3["hidden"], help="hidden ReLUs (report: 100)")
p.add_argument("--epochs", type=positive_int, default=None,
               help=f"training epochs; default {PART3['epochs']} (the report's), or {QUICK_EPOCHS} with --quick")
p.add_argument("--batch-size", type=positive_int, default=PART3["batch_size"], help="mini-batch size (report: 128)")
p.add_argument("--lr", type=positive_float, default=PART3["lr"], help="SGD learning rate (report: 0.1)")
p.add_argument("--lr-decay", type=decay_factor, default=PART3["lr_decay"],
               help="learning-rate factor after every epoch (report: 0.9)")
p.add_argument("--momentum", type=nonnegative_float, default=0.0,
               help="SGD momentum (report: 0, plain SGD)")
p.add_argument("--target", type=target_class, default=None, metavar="CLASS",
               help="'random' (each image to a random other class; the default) or one class (name or index)")
p.add_argument("--n-images", type=positive_int, default=None,
               help=f"correctly classified test images attacked; default {IMAGES}, or {QUICK_IMAGES} with --quick")
p.add_argument("--n-show", type=positive_int, default=8, help="images shown in the figure")
p.add_argument("--step-size", type=positive_float, default=0.02,
               help="L2 length of each step, pixel units (images in [0, 1])")
p.add_argument("--max-steps", type=positive_int, default=100, help="steps before giving up on an image")
args = parse_args(p)
if args.momentum >= 1:
    p.error(f"argument --momentum: expected a number in [0, 1), got {args.momentum!r}")
target = args.target                 # None: a random class other than the true one
cifar = args.cifar or ("exact" if args.quick else "jpeg")
epochs = args.epochs if args.epochs is not None else (QUICK_EPOCHS if args.quick else PART3["epochs"])
n_images = args.n_images if args.n_images is not None else (QUICK_IMAGES if args.quick else IMAGES)
out = prepare_out(args.out)
seeds = np.random.SeedSequence(args.seed).spawn(3)
rng_init, rng_train, rng_target = (np.random.default_rng(s) for s in seeds)
t_start = time.perf_counter()
compute = compute_info()
print(f"compute: {describe_compute(compute)}")

# %% Data
with Timer() as t_load:
    ds = load_data(load_cifar10, args.data, exact=cifar == "exact", download=args.download,
                   n_train=2000 if args.quick else None, n_test=None)
classes = list(ds.classes)
if [c.lower() for c in classes] != [c.lower() for c in CIFAR10_CLASSES]:
    raise SystemExit(f"unexpected CIFAR-10 class list {classes}")
try:
    data_check = check_content("cifar10", ds)
except WrongDataError as e:
    raise SystemExit(f"wrong data: {e}") from None
subset = (f"bit-exact CIFAR-10 subset ({ds.x_train.shape[0]:,} train / {ds.x_test.shape[0]:,} test)"
          if cifar == "exact" else f"JPEG-decoded CIFAR-10 ({ds.x_train.shape[0]:,} train / "
          f"{ds.x_test.shape[0]:,} test)")
print(f"Fooling images for the part-3 MLP on the {subset}" + (" (--quick smoke test)" if args.quick else ""))
print(f"data: {ds.source}")
print(f"      train {ds.x_train.shape}, test {ds.x_test.shape} (loaded in {t_load.seconds:.1f} s); {data_check}")

# %% [markdown]
# ## 3. The network of part 3
# Flatten - Normalize (per pixel, training statistics) - Linear(3072, 100) - ReLU - Linear(100, 10),
# weights N(0, 0.01^2); plain SGD, lr 0.1 multiplied by 0.9 after every epoch, batch 128.

# %%
flat = ds.x_train.reshape(ds.x_train.shape[0], -1)
mean = flat.mean(axis=0, dtype=np.float64)
std = flat.std(axis=0, dtype=np.float64)
std = np.where(std < 1e-8, 1.0, std)
model = trials.build_model({**PART3, "hidden": args.hidden}, mean.astype(np.float32),
                           std.astype(np.float32), rng_init)
opt = SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
trainer = Trainer(model, SoftmaxCrossEntropy(), opt, schedule=MultiplicativeDecay(opt, args.lr_decay),
                  batch_size=args.batch_size, rng=rng_train)
with Timer() as t_train:
    history = trainer.fit(ds.x_train, ds.y_train, epochs=epochs, val_split=0.1)
test = trainer.evaluate(ds.x_test, ds.y_test)
pred = trainer.predict(ds.x_test)
print(f"MLP test accuracy: {test['acc']:.4f} (weights of the last epoch, {len(history['loss'])})")


# %% [markdown]
# ## 4. Fooling images
# Correctly classified test images (classes in turn), each pushed to a target class.

# %%
def pick_images(y, pred, n: int):
    """Indices of ``n`` correctly classified images, classes in turn (class 0's first correct
    image, class 1's first, ..., then every class's second, ...): deterministic and balanced."""
    per_class = [np.flatnonzero((y == c) & (pred == c)) for c in range(10)]
    order = []
    for rank in range(max((a.size for a in per_class), default=0)):
        order.extend(int(a[rank]) for a in per_class if rank < a.size)
        if len(order) >= n:
            break
    return np.asarray(order[:n], dtype=np.int64)


idx = pick_images(ds.y_test, pred, n_images)
if target is None:   # a random class other than the true one
    targets = (ds.y_test[idx] + rng_target.integers(1, 10, idx.size)) % 10
else:                # one class for all: drop the images that already belong to it
    idx = idx[ds.y_test[idx] != target]
    targets = np.full(idx.size, target, dtype=np.int64)
if idx.size == 0:
    raise SystemExit("no correctly classified test image to attack (the model is too weak, or every "
                     "picked image already belongs to --target)")
x0 = ds.x_test[idx]
with Timer() as t_fool:
    res = fooling_images(model, x0, targets, step_size=args.step_size, max_steps=args.max_steps)
ok = res.success


def stat(a):
    return float(a[ok].mean()) if ok.any() else None


def med(a):
    return float(np.median(a[ok])) if ok.any() else None


print(f"fooling images: {ok.sum()}/{idx.size} reached their target in <= {args.max_steps} steps"
      + (f"; mean steps {stat(res.steps):.1f}, median L2 {med(res.perturbation_l2):.3f} "
         f"({255 * med(res.perturbation_l2):.0f} on 0..255), mean Linf {stat(res.perturbation_linf):.4f} "
         f"(pixels in [0, 1])" if ok.any() else ""))

# %% Figures
from nnlite import viz  # noqa: E402

tag = " [--quick smoke test]" if args.quick else ""
with Timer() as t_fig:
    viz.plot_history(history.to_dict(), metrics=("loss", "acc"), path=out / "history.png",
                     title=f"Part-3 MLP (hidden {args.hidden}): training and validation\non the {subset}{tag}",
                     figsize=(8, 3.6))
    k = min(args.n_show, idx.size)
    delta = res.x_adv[:k] - x0[:k]
    scale = 0.5 / max(float(np.abs(delta).max()), 1e-12)
    viz.plot_image_rows(
        [x0[:k], res.x_adv[:k], delta], row_titles=["original", "fooling image", "perturbation"],
        rescale=[None, None, "symmetric"], path=out / "fooling_images.png",
        cell_titles=[[f"true: {classes[ds.y_test[i]]}" for i in idx[:k]],
                     [f"{classes[ds.y_test[idx[j]]]} -> {classes[res.pred_adv[j]]}\n{res.steps[j]} steps"
                      if ok[j] else f"-> {classes[targets[j]]}: failed\n(pred. {classes[res.pred_adv[j]]})"
                      for j in range(k)],
                     [f"L2 {res.perturbation_l2[j]:.2f}\nLinf {res.perturbation_linf[j]:.3f}"
                      for j in range(k)]],
        title=(f"Fooling images for the MLP: target = "
               f"{'random other class' if target is None else classes[target]}; "
               f"perturbation magnified x{scale:.0f} (gray = 0){tag}"))

# %% metrics.json and report.md
total_s = time.perf_counter() - t_start
per_image = [{"test_index": int(i), "true": classes[ds.y_test[i]], "target": classes[t],
              "pred_after": classes[res.pred_adv[j]], "success": bool(ok[j]), "steps": int(res.steps[j]),
              "l2": float(res.perturbation_l2[j]), "linf": float(res.perturbation_linf[j]),
              "l2_255": float(255 * res.perturbation_l2[j])}
             for j, (i, t) in enumerate(zip(idx, targets))]
optimizer_name = "plain SGD" if args.momentum == 0 else f"SGD momentum {args.momentum:g}"
results = {
    "data": ds.source, "data_check": data_check, "cifar": cifar, "n_train": int(ds.x_train.shape[0]),
    "n_test": int(ds.x_test.shape[0]), "classes": classes,
    "mlp": {"hidden": args.hidden, "epochs": len(history["loss"]), "optimizer": optimizer_name,
            "momentum": args.momentum, "lr": args.lr, "lr_decay": args.lr_decay,
            "batch_size": args.batch_size, "init_std": PART3["init_std"],
            "normalization": "per pixel, training statistics"},
    "test_accuracy": test["acc"], "test_loss": test["loss"], "history": history.to_dict(),
    "fooling": {"target": "random" if target is None else classes[target],
                "step_size": args.step_size, "max_steps": args.max_steps, "n_images": int(idx.size),
                "success_rate": res.success_rate, "mean_steps": stat(res.steps),
                "median_steps": med(res.steps),
                "mean_l2": stat(res.perturbation_l2), "mean_linf": stat(res.perturbation_linf),
                "mean_l2_255": None if not ok.any() else 255 * stat(res.perturbation_l2),
                "median_l2": med(res.perturbation_l2),
                "median_l2_255": None if not ok.any() else 255 * med(res.perturbation_l2),
                "units": "pixels in [0, 1] (l2_255: the same L2 on the 0..255 scale)",
                "images": per_image},
    "figures": {"history": "history.png", "fooling_images": "fooling_images.png"},
    "wall_time_s": {"total": total_s, "load": t_load.seconds, "train": t_train.seconds,
                    "fooling": t_fool.seconds, "figures": t_fig.seconds},
    "seed": args.seed, "quick": args.quick, "workers": compute["workers"], "blas": compute["blas"],
    "machine": machine_info(),
}
write_json(out / "metrics.json", results)
f = results["fooling"]


def fmt(v, s="{:.3f}"):
    return "n/a" if v is None else s.format(v)


rows = "\n".join(f"| {r['true']} | {r['target']} | {r['pred_after']} | {'yes' if r['success'] else 'no'} | "
                 f"{r['steps']} | {r['l2']:.3f} ({r['l2_255']:.0f} on 0..255) | {r['linf']:.4f} |"
                 for r in per_image[:k])
ours = (args.hidden, args.momentum, args.lr, args.lr_decay, args.batch_size, epochs)
settings_note = ("the report's settings" if ours == (100, 0.0, 0.1, 0.9, 128, 30) else
                 "the report: hidden 100, plain SGD, lr 0.1, decay 0.9, batch 128, 30 epochs")
smoke = quick_note(f"{epochs} training epochs on {ds.x_train.shape[0]:,} images and {idx.size} attacked "
                   "images") if args.quick else ""
optimizer_text = optimizer_name[:1].upper() + optimizer_name[1:]
loose = ("a stand-in data set, so the comparison is loose" if cifar == "exact" or args.quick
         else "trained on JPEG-decoded pixels (quality 75), so the comparison is approximate")
title = "Fooling images for a two-layer MLP on CIFAR-10 (nnlite)" + (" - smoke test" if args.quick else "")
write_text(out / "report.md", f"""# {title}

Command: `{command_line('fooling_images.py')}`
{smoke}
Data: {ds.source}
({'bit-exact official pixels' if cifar == 'exact' else 'JPEG quality 75 pixels, decoded'};
train {results['n_train']} / test {results['n_test']} images; {data_check}).

Compute: {describe_compute(compute)}.

## 3. The network of part 3
Flatten - Normalize (per pixel, training statistics) - Linear(3072, {args.hidden}) - ReLU - Linear({args.hidden}, 10),
weights N(0, {PART3["init_std"]:g}^2), on raw pixels in [0, 1]. {optimizer_text}, lr {args.lr:g} times
{args.lr_decay:g} after every epoch, batch {args.batch_size}, 10% validation split, {len(history['loss'])} epochs
in {t_train.seconds:.0f} s ({settings_note}).
The attacked model holds the weights of the last epoch ({len(history['loss'])}).

![history](history.png)

Test accuracy: **{100 * test['acc']:.2f}%** (report: 51.4%; {loose})

## 4. Fooling images
For {idx.size} correctly classified test images (classes in turn) and a target class
({'a random class other than the true one' if target is None else classes[target]}), gradient ascent on
the target's score with normalized steps of L2 length {args.step_size} (pixel units), clipped to [0, 1],
until the model predicts the target, at most {args.max_steps} steps.

Success: **{100 * f['success_rate']:.1f}%** of {f['n_images']} images;
over the successful ones: mean steps {fmt(f['mean_steps'], '{:.1f}')} (median {fmt(f['median_steps'], '{:.0f}')}),
**median L2 {fmt(f['median_l2'])}** in pixel units (= {fmt(f['median_l2_255'], '{:.0f}')} on the 0..255 scale of
the report, whose figure was 91 for one image), mean L2 {fmt(f['mean_l2'])}
(= {fmt(f['mean_l2_255'], '{:.0f}')}), mean Linf
{fmt(f['mean_linf'], '{:.4f}')}.

![fooling images](fooling_images.png)

Rows: the original image (true class), the fooling image (true class -> the model's prediction, and
the steps taken), the perturbation (fooling - original, magnified: gray is 0). The images in the figure:

| true | target | predicted after | success | steps | L2 | Linf |
|---|---|---|---|---|---|---|
{rows}

The largest pixel change is on average {fmt(f['mean_linf'] and 255 * f['mean_linf'], '{:.0f}')} grey levels of 255:
compare the original and fooling rows, and the MLP's prediction changes all the same.

Total wall time {total_s:.0f} s (load {t_load.seconds:.0f} s, training {t_train.seconds:.0f} s,
fooling images {t_fool.seconds:.1f} s). Seed {args.seed}.
""")
print(f"wrote {out}/metrics.json, report.md and figures; total {total_s:.0f} s")
