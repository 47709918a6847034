"""Trial functions of ``fashion_mnist_report.py`` (issue 16), importable by sweep workers.

* ``classifier_trial(config)``: the report's CNN (conv-[BN]-ReLU-pool x2, dense-ReLU-dropout-dense)
  with ``filters``, ``dropout``, ``batch_size``, ``lr``, ``epochs``, early stopping on the
  validation accuracy, trained on a class-stratified subset of ``n_train`` images (0: all);
  returns test/validation accuracies, the overfitting gap and the history.
* ``autoencoder_trial(config)``: a convolutional autoencoder (``nnlite.models.conv_autoencoder``)
  with ``latent`` code size trained with MSE on [0, 1] pixels, targets = inputs, on the
  training images minus a fixed validation split; returns the test MSE, the validation
  curve and (if ``weights_dir``) saves the weights as ``ae_latent<L>_seed<s>.npz``.

Everything depends only on the config (the seeds inside it). Data: full Fashion-MNIST when
installed, else nnlite's bundled subset (``data`` in the returned metrics says which).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import nnlite.nn as nn
from nnlite.data import load_fashion_mnist, stratified_split, stratified_subset
from nnlite.losses import MSE, SoftmaxCrossEntropy
from nnlite.models.autoencoder import conv_autoencoder
from nnlite.optim import Adam, WarmupCosine
from nnlite.train import EarlyStopping, Trainer
from nnlite.weights import load_weights, save_weights

SPLIT_SEED = 1234          # the validation split, the same for every trial
AE_VAL_SIZE = 5000         # autoencoder validation images held out of the 60,000
_DATA = {}


def data(n_train=None, n_test=None):
    """Fashion-MNIST (cached per process)."""
    key = (n_train, n_test)
    if key not in _DATA:
        _DATA[key] = load_fashion_mnist(n_train=n_train, n_test=n_test)
    return _DATA[key]


def build_classifier(mean, std, rng, filters=(32, 64), dropout=0.5, batch_norm=True, hidden=128):
    """Normalize-conv(1->a)-[BN]-ReLU-pool-conv(a->b)-[BN]-ReLU-pool-dense(b*7*7->hidden)-ReLU-[dropout]-dense(10)."""
    a, b = filters

    def block(c_in, c_out):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, rng=rng)]
        return layers + ([nn.BatchNorm2d(c_out)] if batch_norm else []) + [nn.ReLU(), nn.MaxPool2d(2)]

    head = [nn.Flatten(), nn.Linear(b * 7 * 7, hidden, rng=rng), nn.ReLU()]
    if dropout > 0:
        head.append(nn.Dropout(dropout, rng=rng))
    model = nn.Sequential(nn.Normalize([mean], [std]), *block(1, a), *block(a, b), *head,
                          nn.Linear(hidden, 10, rng=rng, init="glorot_uniform"))
    model[1].needs_input_grad = False
    return model


def _schedule(name, optimizer, epochs, steps_per_epoch):
    if name == "constant":
        return None
    total = max(1, epochs * steps_per_epoch)
    return WarmupCosine(optimizer, warmup_steps=max(1, total // 30), total_steps=total + 1)


def classifier_trial(config):
    """Train one classifier; config keys: batch_size, lr, filters [a, b], dropout, batch_norm,
    epochs, n_train (0 = all), n_test (first test images, 0 = all), early_stopping, patience,
    schedule, val_fraction, seed."""
    t0 = time.perf_counter()
    ds = data()
    rng = np.random.default_rng(config["seed"])
    x, y = ds.x_train, ds.y_train
    if config.get("n_train"):
        keep = stratified_subset(y, int(config["n_train"]), SPLIT_SEED)
        x, y = x[keep], y[keep]
    tr, va = stratified_split(y, config.get("val_fraction", 0.1), SPLIT_SEED)
    model = build_classifier(float(x[tr].mean()), float(x[tr].std()), rng, tuple(config["filters"]),
                             config["dropout"], config.get("batch_norm", True))
    opt = Adam(model.parameters(), lr=config["lr"])
    steps = -(-tr.size // config["batch_size"])
    stopper = (EarlyStopping("val_acc", patience=config.get("patience", 3), restore_best_weights=True)
               if config.get("early_stopping", True) else None)
    sched = _schedule(config.get("schedule", "constant"), opt, config["epochs"], steps)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, schedule=sched,
                      schedule_interval="step", callbacks=[stopper] if stopper else [],
                      batch_size=config["batch_size"], rng=rng, progress=False)
    hist = trainer.fit(x[tr], y[tr], epochs=config["epochs"], val_data=(x[va], y[va])).to_dict()
    n_test = int(config.get("n_test", 0)) or ds.y_test.size
    test = trainer.evaluate(ds.x_test[:n_test], ds.y_test[:n_test])
    train_eval = trainer.evaluate(x[tr], y[tr])
    best = int(np.argmax(hist["val_acc"]))
    return {"test_acc": test["acc"], "test_loss": test["loss"], "best_val_acc": float(max(hist["val_acc"])),
            "best_epoch": best + 1, "epochs_run": len(hist["loss"]),
            "train_acc_eval": train_eval["acc"], "gap_at_best": float(hist["acc"][best] - hist["val_acc"][best]),
            "history": {k: [float(v) for v in vals] for k, vals in hist.items()},
            "n_train": int(tr.size), "n_val": int(va.size), "data": ds.source,
            "wall_s": time.perf_counter() - t0}


def ae_split(n):
    """Fixed (train, validation) indices of the autoencoder runs."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    val = min(AE_VAL_SIZE, n // 10)
    return np.sort(perm[val:]), np.sort(perm[:val])


def autoencoder_trial(config):
    """Train one conv autoencoder; config keys: latent, filters, epochs, lr, batch_size,
    schedule, n_train (0 = all 60,000), n_test (first test images, 0 = all), weights_dir
    ("" = do not save), seed."""
    t0 = time.perf_counter()
    ds = data()
    x = ds.x_train
    if config.get("n_train"):
        x = x[stratified_subset(ds.y_train, int(config["n_train"]), SPLIT_SEED)]
    tr, va = ae_split(x.shape[0])
    rng = np.random.default_rng(config["seed"])
    ae = conv_autoencoder(latent=config["latent"], filters=tuple(config["filters"]), rng=rng)
    opt = Adam(ae.parameters(), lr=config["lr"])
    steps = -(-tr.size // config["batch_size"])
    sched = _schedule(config.get("schedule", "cosine"), opt, config["epochs"], steps)
    trainer = Trainer(ae, MSE(), opt, schedule=sched,
                      schedule_interval="step", batch_size=config["batch_size"], rng=rng, progress=False)
    hist = trainer.fit(x[tr], x[tr], epochs=config["epochs"], val_data=(x[va], x[va])).to_dict()
    train_s = time.perf_counter() - t0
    n_test = int(config.get("n_test", 0)) or ds.y_test.size
    test_mse = trainer.evaluate(ds.x_test[:n_test], ds.x_test[:n_test])["loss"]
    if config.get("weights_dir"):
        folder = Path(config["weights_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(folder / f"ae_latent{config['latent']}_seed{config['seed']}.npz", ae)   # atomic
    return {"test_mse": float(test_mse), "val_mse": [float(v) for v in hist["val_loss"]],
            "train_mse": [float(v) for v in hist["loss"]], "epochs": len(hist["loss"]),
            "n_train": int(tr.size), "n_val": int(va.size), "n_test": int(n_test), "data": ds.source,
            "train_s": train_s, "wall_s": time.perf_counter() - t0}


def load_autoencoder(config):
    """The autoencoder a finished ``autoencoder_trial(config)`` saved (None if no file)."""
    path = Path(config["weights_dir"]) / f"ae_latent{config['latent']}_seed{config['seed']}.npz"
    if not path.exists():
        return None
    ae = conv_autoencoder(latent=config["latent"], filters=tuple(config["filters"]), rng=0)
    load_weights(path, ae)
    return ae


LATENT_SIZES = (32, 8, 16, 24, 12)     # the two target sizes first (a cut-short run still measures them)


def latent_study(out, epochs=10, latents=LATENT_SIZES, filters=(32, 64), lr=2e-3, batch_size=128, n_train=0,
                 seeds=(0,), n_test=0):
    """The Q7 latent-size study: one conv autoencoder per latent size (weights saved in out/weights);
    the test MSE on the first ``n_test`` test images (0 = all)."""
    from nnlite.sweep import Study

    base = {"latent": int(latents[0]), "filters": list(filters), "epochs": int(epochs), "lr": lr,
            "batch_size": int(batch_size), "schedule": "cosine", "n_train": int(n_train),
            "weights_dir": str(Path(out) / "weights")}
    if n_test:                 # only when set: the configs (trial ids) of full runs stay as they were
        base["n_test"] = int(n_test)
    return Study(base, grid={"latent": [int(v) for v in latents]}, seeds=list(seeds), name="latent")
