# %% [markdown]
# # Fashion-MNIST: a small CNN, end to end, in pure NumPy
#
# Mirrors the Fashion-MNIST course report ("Building the classifier"): a CNN
# conv-pool-conv-pool-dense with dropout, training/validation curves, test accuracy,
# a confusion-matrix heat map and a grid of misclassified test images.
#
#     python examples/fashion_mnist.py            # full run (all 60,000 training images)
#     python examples/fashion_mnist.py --quick    # one epoch on a subset (CI)
#
# Everything goes to runs/fashion_mnist/: metrics.json, history.png, confusion_matrix.png,
# misclassified.png and report.md. Data: the full Fashion-MNIST if found ($NNLITE_DATA, the
# cache, Debian's dataset-fashion-mnist), else the subset bundled with nnlite (said so).

# %%
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, base_parser, machine_info, prepare_out, write_json, write_text  # noqa: E402

import nnlite.nn as nn  # noqa: E402
from nnlite import metrics  # noqa: E402
from nnlite.data import load_fashion_mnist  # noqa: E402
from nnlite.data.transforms import Compose, RandomCrop, RandomHorizontalFlip  # noqa: E402
from nnlite.losses import SoftmaxCrossEntropy  # noqa: E402
from nnlite.optim import Adam, WarmupCosine  # noqa: E402
from nnlite.train import EarlyStopping, Trainer  # noqa: E402


EPOCHS = 15   # the default full run (see README: measured accuracy and wall time)


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


def main(argv=None):
    p = base_parser(__doc__ or "Fashion-MNIST CNN", "fashion_mnist")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam's peak learning rate")
    p.add_argument("--no-batch-norm", dest="batch_norm", action="store_false",
                   help="the report's plain CNN, without batch norm after the convs")
    p.add_argument("--augment", action="store_true",
                   help="random horizontal flip + random crop with 2-pixel padding on training batches")
    p.add_argument("--data", default=None, help="folder with the Fashion-MNIST idx files (optional)")
    args = p.parse_args(argv)
    out = prepare_out(args.out)
    rng = np.random.default_rng(args.seed)

    with Timer() as total:
        # %% Data
        with Timer() as t_load:
            ds = load_fashion_mnist(args.data, n_train=2000 if args.quick else None,
                                    n_test=500 if args.quick else None)
        print(f"data: {ds.source}")
        print(f"      train {ds.x_train.shape}, test {ds.x_test.shape} (loaded in {t_load.seconds:.1f} s)")
        epochs = 1 if args.quick else args.epochs

        # %% Model (standardization statistics from the training split only)
        model = build_cnn(float(ds.x_train.mean()), float(ds.x_train.std()), rng, args.batch_norm)
        summary_text = nn.summary(model, (1, 28, 28))

        # %% Training: Adam with a linear warm-up then cosine decay of the learning rate (per
        # step), 10% stratified validation split, early stopping on the validation accuracy
        # (not the loss: late in a cosine schedule the validation loss flattens out while the
        # accuracy still improves, and stopping on the loss would keep a worse model)
        optimizer = Adam(model.parameters(), lr=args.lr)
        augment = Compose([RandomHorizontalFlip(0.5), RandomCrop(28, padding=2)]) if args.augment else None
        n_fit = ds.x_train.shape[0] - round(0.1 * ds.x_train.shape[0])
        steps = -(-n_fit // args.batch_size) * max(epochs, 1)
        trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer,
                          schedule=WarmupCosine(optimizer, warmup_steps=max(1, steps // 30), total_steps=steps),
                          schedule_interval="step",
                          callbacks=[EarlyStopping("val_acc", patience=4, restore_best_weights=True)],
                          batch_size=args.batch_size, rng=rng, transform=augment)
        with Timer() as t_train:
            history = trainer.fit(ds.x_train, ds.y_train, epochs=epochs, val_split=0.1)

        # %% Evaluation
        with Timer() as t_eval:
            test = trainer.evaluate(ds.x_test, ds.y_test)
            pred = trainer.predict(ds.x_test)
        report = metrics.classification_report(ds.y_test, pred, class_names=ds.classes)
        cm = metrics.confusion_matrix(ds.y_test, pred, num_classes=10)
        print(f"test accuracy: {test['acc']:.4f} (loss {test['loss']:.4f})")
        print(report)

        # %% Figures (matplotlib is imported only here, through nnlite.viz)
        from nnlite import viz
        viz.plot_history(history.to_dict(), metrics=("loss", "acc"), path=out / "history.png",
                         title="Fashion-MNIST CNN: training and validation")
        viz.plot_confusion_matrix(cm, ds.classes, path=out / "confusion_matrix.png",
                                  title="Confusion matrix (test set)")
        viz.plot_image_grid(ds.x_test, ds.y_test, pred, class_names=ds.classes, only_misclassified=True,
                            max_images=25, path=out / "misclassified.png",
                            title="Misclassified test images (true / predicted)")

    results = {
        "test_accuracy": test["acc"], "test_loss": test["loss"],
        "epochs_run": len(history["loss"]), "epochs_requested": epochs,
        "best_val_acc": max(history["val_acc"]), "history": history.to_dict(),
        "classification_report": report.to_dict(), "confusion_matrix": cm,
        "wall_time_s": {"total": total.seconds, "load": t_load.seconds, "train": t_train.seconds,
                        "evaluate": t_eval.seconds},
        "seed": args.seed, "quick": args.quick, "batch_norm": args.batch_norm, "augment": args.augment,
        "data": ds.source, "n_train": int(ds.x_train.shape[0]), "n_test": int(ds.x_test.shape[0]),
        "machine": machine_info(),
    }
    write_json(out / "metrics.json", results)
    write_text(out / "report.md", f"""# Fashion-MNIST CNN (nnlite)

Command: `python examples/fashion_mnist.py {' '.join(argv if argv is not None else sys.argv[1:])}`

Data: {ds.source}

## Model
```
{summary_text}
```

## Training and validation curves
Adam (peak lr {args.lr}: linear warm-up over the first 1/30 of the steps, then cosine decay to 0
at the last step), batch {args.batch_size}, 10% stratified validation split, early stopping on
validation accuracy (patience 4, best weights restored){', batch norm after each conv' if args.batch_norm else ''}.
{len(history['loss'])} epochs in {t_train.seconds:.0f} s.

![history](history.png)

## Test accuracy: {test['acc'] * 100:.2f}%

```
{report.table()}
```

## Confusion matrix
![confusion matrix](confusion_matrix.png)

## Misclassified test images
![misclassified](misclassified.png)

Total wall time: {total.seconds:.0f} s (load {t_load.seconds:.0f} s, train {t_train.seconds:.0f} s,
evaluate {t_eval.seconds:.0f} s). Seed {args.seed}.
""")
    print(f"wrote {out}/metrics.json, report.md and figures; total {total.seconds:.0f} s")
    return results


if __name__ == "__main__":
    main()
