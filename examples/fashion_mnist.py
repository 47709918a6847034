# %% [markdown]
# # Fashion-MNIST: a small CNN, end to end, in pure NumPy
#
# Mirrors the Fashion-MNIST course report ("Building the classifier", questions 1-6, and
# "Explaining the classifier", question 9): a CNN conv-pool-conv-pool-dense with dropout,
# training/validation curves, test accuracy, a confusion-matrix heat map and a grid of
# misclassified test images.
#
#     python examples/fashion_mnist.py            # full run (all 60,000 training images)
#     python examples/fashion_mnist.py --quick    # smoke test: one epoch on a subset (CI)
#
# Everything goes to runs/fashion_mnist/: metrics.json, history.png, confusion_matrix.png,
# misclassified.png and report.md. Data: the full Fashion-MNIST if found ($NNLITE_DATA, the
# cache, Debian's dataset-fashion-mnist; --download fetches it), else the subset bundled with
# nnlite (8,000 train / 2,000 test images; the run then says so in its headline and figures).
# In a notebook (jupytext --to notebook), set $NNLITE_EXAMPLE_ARGS (e.g. "--quick") before
# starting the kernel to pass arguments.

# %% Arguments, imports and the run folder
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(globals().get("__file__", "fashion_mnist.py")).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (Timer, add_download_arg, base_parser, command_line, compute_info,  # noqa: E402
                     data_label, describe_compute, is_bundled, load_data, machine_info, parse_args,
                     positive_float, positive_int, prepare_out, quick_note, restored_epoch_text,
                     script_description, unit_interval, write_json, write_text)

import nnlite.nn as nn  # noqa: E402
from nnlite import metrics  # noqa: E402
from nnlite.data import load_fashion_mnist  # noqa: E402
from nnlite.data.checks import WrongDataError, check_dataset  # noqa: E402
from nnlite.data.transforms import Compose, RandomCrop, RandomHorizontalFlip  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.optim import Adam, WarmupCosine  # noqa: E402
from nnlite.train import EarlyStopping, Trainer  # noqa: E402

EPOCHS = 15        # the default full run (see README: measured accuracy and wall time)
QUICK_EPOCHS = 1   # --quick, unless --epochs is given

p = base_parser(script_description(globals().get("__file__"), "Fashion-MNIST CNN"), "fashion_mnist")
p.add_argument("--epochs", type=positive_int, default=None,
               help=f"maximum epochs (early stopping may end sooner); default {EPOCHS}, "
                    f"or {QUICK_EPOCHS} with --quick")
p.add_argument("--batch-size", type=positive_int, default=128, help="mini-batch size")
p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam's peak learning rate")
p.add_argument("--dropout", type=unit_interval, default=0.5, help="dropout rate before the last layer")
p.add_argument("--patience", type=positive_int, default=4,
               help="early stopping: epochs without a better validation accuracy before stopping")
p.add_argument("--no-batch-norm", dest="batch_norm", action="store_false",
               help="the report's plain CNN, without batch norm after the convs")
p.add_argument("--augment", action="store_true",
               help="random horizontal flip + random crop with 2-pixel padding on training batches")
p.add_argument("--data", default=None,
               help="folder with the Fashion-MNIST idx files (default: search $NNLITE_DATA, the cache, "
                    "/usr/share/datasets/fashion-mnist, then the bundled subset)")
add_download_arg(p)
args = parse_args(p)
epochs = args.epochs if args.epochs is not None else (QUICK_EPOCHS if args.quick else EPOCHS)
out = prepare_out(args.out)
rng = np.random.default_rng(args.seed)
t_start = time.perf_counter()
compute = compute_info()
print(f"compute: {describe_compute(compute)}")

# %% [markdown]
# ## The data set (the report's question 1)
# 70,000 grayscale 28x28 images of 10 clothing classes; several classes look alike
# (shirt, T-shirt/top, pullover, coat), which is where the classifier will struggle.

# %%
with Timer() as t_load:
    ds = load_data(load_fashion_mnist, args.data, download=args.download,
                   n_train=2000 if args.quick else None, n_test=500 if args.quick else None)
try:   # refuses e.g. MNIST digits passed with --data
    data_checks = check_dataset("fashion_mnist", ds, args.data)
except WrongDataError as e:
    raise SystemExit(f"wrong data: {e}") from None
bundled = is_bundled(ds)
label = data_label(ds, "full Fashion-MNIST")
print(f"Fashion-MNIST CNN on the {label}" + (" - NOT the full data set" if bundled else "")
      + (" (--quick smoke test)" if args.quick else ""))
print(f"data: {ds.source}")
print(f"      train {ds.x_train.shape}, test {ds.x_test.shape} (loaded in {t_load.seconds:.1f} s)")
print("      " + "\n      ".join(data_checks))


# %% [markdown]
# ## The model and its hyper-parameters (question 4)
# Standardization (training statistics) is the model's first layer, so it takes images in [0, 1].

# %%
def build_cnn(mean: float, std: float, rng, batch_norm: bool = True, dropout: float = 0.5):
    """conv(1->32)-[BN]-ReLU-pool-conv(32->64)-[BN]-ReLU-pool-dense(3136->128)-ReLU-dropout-dense(128->10).

    Takes images in [0, 1]; standardization is the first layer (Normalize). Batch norm after
    each conv (default) lets Adam run at a higher learning rate and converges in fewer epochs.
    """
    def block(c_in, c_out):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, rng=rng)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        return layers + [nn.ReLU(), nn.MaxPool2d(2)]

    model = nn.Sequential(nn.Normalize([mean], [std]), *block(1, 32), *block(32, 64), nn.Flatten(),
                          nn.Linear(64 * 7 * 7, 128, rng=rng), nn.ReLU(), nn.Dropout(dropout, rng=rng),
                          nn.Linear(128, 10, rng=rng, init="glorot_uniform"))
    model[1].needs_input_grad = False   # nothing upstream of the first conv needs a gradient
    return model


model = build_cnn(float(ds.x_train.mean()), float(ds.x_train.std()), rng, args.batch_norm, args.dropout)
summary_text = nn.summary(model, (1, 28, 28))

# %% [markdown]
# ## Training, validation curves and the stopping criterion (questions 3, 5 and 6)
# Adam with a linear warm-up then cosine decay of the learning rate (per step), 10% stratified
# validation split, early stopping on the validation accuracy (not the loss: late in a cosine
# schedule the validation loss flattens out while the accuracy still improves, and stopping on
# the loss would keep a worse model); the best epoch's weights are restored.

# %%
optimizer = Adam(model.parameters(), lr=args.lr)
augment = Compose([RandomHorizontalFlip(0.5), RandomCrop(28, padding=2)]) if args.augment else None
stopper = EarlyStopping("val_acc", patience=args.patience, restore_best_weights=True)
trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer,
                  # the Trainer sets the schedule's length (epochs x steps per epoch) when fit starts
                  schedule=WarmupCosine(optimizer, warmup_fraction=1 / 30, total_steps=None),
                  schedule_interval="step", callbacks=[stopper],
                  batch_size=args.batch_size, rng=rng, transform=augment)
with Timer() as t_train:
    history = trainer.fit(ds.x_train, ds.y_train, epochs=epochs, val_split=0.1)
epochs_run = len(history["loss"])
restored_epoch = None if stopper.best_epoch is None else stopper.best_epoch + 1
weights_text = restored_epoch_text(stopper, epochs_run)
print(f"model: {weights_text}")

# %% [markdown]
# ## The metric: accuracy on the test set (question 2)
# The classes are balanced, so accuracy is a fair summary; the per-class report shows where it fails.

# %%
with Timer() as t_eval:
    test = trainer.evaluate(ds.x_test, ds.y_test)
    pred = trainer.predict(ds.x_test)
report = metrics.classification_report(ds.y_test, pred, class_names=ds.classes)
cm = metrics.confusion_matrix(ds.y_test, pred, num_classes=10)
print(f"test accuracy: {test['acc']:.4f} (loss {test['loss']:.4f}; {weights_text})")
print(report)

# %% Figures (matplotlib is imported only here, through nnlite.viz)
from nnlite import viz  # noqa: E402

tag = " [bundled subset]" if bundled else ""
tag += " [--quick smoke test]" if args.quick else ""
viz.plot_history(history.to_dict(), metrics=("loss", "acc"), path=out / "history.png",
                 title=f"Fashion-MNIST CNN: training and validation{tag}", mark_epoch=restored_epoch)
viz.plot_confusion_matrix(cm, ds.classes, path=out / "confusion_matrix.png",
                          title=f"Confusion matrix (test set){tag}")
viz.plot_image_grid(ds.x_test, ds.y_test, pred, class_names=ds.classes, only_misclassified=True,
                    max_images=25, path=out / "misclassified.png",
                    title=f"Misclassified test images (true / predicted){tag}")

# %% metrics.json and report.md
total_s = time.perf_counter() - t_start
results = {
    "test_accuracy": test["acc"], "test_loss": test["loss"],
    "epochs_run": epochs_run, "epochs_requested": epochs, "restored_epoch": restored_epoch,
    "best_val_acc": max(history["val_acc"]), "history": history.to_dict(),
    "classification_report": report.to_dict(), "confusion_matrix": cm,
    "wall_time_s": {"total": total_s, "load": t_load.seconds, "train": t_train.seconds,
                    "evaluate": t_eval.seconds},
    "seed": args.seed, "quick": args.quick, "batch_norm": args.batch_norm, "augment": args.augment,
    "hyperparameters": {"epochs": epochs, "batch_size": args.batch_size, "lr": args.lr,
                        "dropout": args.dropout, "patience": args.patience},
    "data": ds.source, "data_checks": data_checks, "bundled_subset": bundled, "n_train": int(ds.x_train.shape[0]),
    "n_test": int(ds.x_test.shape[0]),
    "workers": compute["workers"], "blas": compute["blas"], "machine": machine_info(),
}
write_json(out / "metrics.json", results)
smoke = quick_note(f"{epochs} epoch(s) on {ds.x_train.shape[0]:,} training and {ds.x_test.shape[0]:,} "
                   "test images") if args.quick else ""
subset = ("\n> **Bundled subset**: the full Fashion-MNIST was not found, so this run used the "
          f"{ds.x_train.shape[0]:,}/{ds.x_test.shape[0]:,}-image subset shipped with nnlite; "
          "accuracy is lower than on the full data.\n" if bundled else "")
title = ("Fashion-MNIST CNN (nnlite)" + (" on the bundled subset" if bundled else "")
         + (" - smoke test" if args.quick else ""))
restored_note = ("" if restored_epoch is None
                 else f"; the dashed line marks epoch {restored_epoch}, whose weights were restored")
bn_note = ", batch norm after each conv" if args.batch_norm else ""
reg_note = (f"Dropout {args.dropout:g} before the last layer"
            + ("; batch norm after each conv" if args.batch_norm else "")
            + ("; augmentation: random horizontal flips and random 2-pixel crops" if args.augment else ""))
write_text(out / "report.md", f"""# {title}

Command: `{command_line('fashion_mnist.py')}`
{smoke}{subset}
Compute: {describe_compute(compute)}.

## Building the classifier

### 1. The data set
Data: {ds.source}
({'; '.join(data_checks)})

{ds.x_train.shape[0]:,} training images (10% of them held out for validation, stratified by class)
and {ds.x_test.shape[0]:,} test images, 28x28 grayscale, 10 classes. Look-alike classes (shirt,
T-shirt/top, pullover, coat) are the hard part: see the confusion matrix in section 9.

### 2. The metric: test accuracy {test['acc'] * 100:.2f}%
The classes are balanced, so accuracy summarizes the model fairly; the per-class report shows
where it fails. The model evaluated holds {weights_text}.

```
{report.table()}
```

### 3. Training and validation curves
{epochs_run} epoch(s) in {t_train.seconds:.0f} s{restored_note}.

![history](history.png)

### 4. Hyper-parameters
Adam (peak lr {args.lr}: linear warm-up over the first 1/30 of the steps, then cosine decay to 0
at the last step), batch {args.batch_size}, at most {epochs} epochs{bn_note}.

```
{summary_text}
```

### 5. Regularization
{reg_note}.

### 6. Epochs and the stopping criterion
Early stopping on the validation accuracy (patience {args.patience}), best weights restored:
the test accuracy above belongs to {weights_text}.

## Explaining the classifier

### 9. Misclassifications
![confusion matrix](confusion_matrix.png)

![misclassified](misclassified.png)

Total wall time: {total_s:.0f} s (load {t_load.seconds:.0f} s, train {t_train.seconds:.0f} s,
evaluate {t_eval.seconds:.0f} s). Seed {args.seed}. {compute['workers']} worker(s), BLAS:
{', '.join(f"{b['internal_api']} {b['version']}" for b in compute['blas']) or 'unknown'}.
""")
print(f"wrote {out}/metrics.json, report.md and figures; total {total_s:.0f} s")
