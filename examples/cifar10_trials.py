"""Trial functions of the CIFAR-10 coursework example (``cifar10_classifiers.py``).

One trial trains one classifier on CIFAR-10 raw pixels and returns its metrics::

    metrics = run_trial({"model": "softmax", "lr": 5e-3, "lr_decay": 0.9, "batch_size": 256,
                         "reg": 0.0, "epochs": 30, "seed": 0, ...})

The function lives at module level in this importable module, so the sweep workers
(joblib/loky processes or Dask workers) can unpickle it: the main script puts this
folder on ``sys.path`` (and in ``PYTHONPATH`` for the workers it starts) before
launching a sweep.  Everything a trial does depends only on its ``config``:

* the data (``data``, ``n_train``, ``n_test``, ``val_size``, ``preprocess``) are loaded
  with :func:`nnlite.data.load_cifar10`; the JPEG archive is decoded once and cached as
  ``.npz`` by nnlite, so a worker only reads that cache (and keeps the prepared arrays
  in memory for its next trials);
* the validation split is a fixed, class-stratified random draw (seed ``SPLIT_SEED``), the
  same for every trial, so trials differ only in what their config says;
* ``seed`` seeds the weight initialization and the mini-batch order (two independent
  ``numpy.random.Generator`` streams; NumPy's global RNG is never used).

The metrics are plain JSON: ``test_acc``, ``val_acc``, ``train_acc``, ``best_val_acc``,
``train_loss`` and the per-epoch ``history``.  No wall times, so a trial is reproducible
bit for bit (given the same BLAS).
"""
from __future__ import annotations

import math

import numpy as np

import nnlite.nn as nn
from nnlite.data import load_cifar10, stratified_split, stratified_subset
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.optim import SGD, MultiplicativeDecay
from nnlite.train import Callback, Trainer

__all__ = ["SOFTMAX_DEFAULTS", "TWO_LAYER_DEFAULTS", "DATA_DEFAULTS", "PREPROCESSING", "SPLIT_SEED",
           "run_trial", "prepare_data", "build_model", "describe_preprocessing", "VERBOSE"]

#: The course report's softmax-classifier defaults (epochs: 30 for the ablations, 60 for the curve).
SOFTMAX_DEFAULTS = {"model": "softmax", "lr": 5e-3, "lr_decay": 0.9, "batch_size": 256, "reg": 0.0,
                    "epochs": 30, "init_std": 1e-3}
#: The report's two-layer network: hidden 100, lr 0.1, decay 0.9, batch 128, reg 0, 30 epochs.
TWO_LAYER_DEFAULTS = {"model": "two_layer", "hidden": 100, "lr": 0.1, "lr_decay": 0.9,
                      "batch_size": 128, "reg": 0.0, "epochs": 30, "init_std": 1e-2}
#: Data settings shared by every trial (``n_train``/``n_test`` None = the full sets).
DATA_DEFAULTS = {"data": None, "n_train": None, "n_test": None, "val_size": 1000,
                 "preprocess": "pixel_standardize"}

#: Seed of the stratified validation split (fixed: every trial uses the same split).
SPLIT_SEED = 12345
#: Size of the fixed, stratified subset of the training split on which ``train_acc`` is measured.
TRAIN_EVAL_SIZE = 1000

#: What each ``preprocess`` value does (statistics from the training split only).
PREPROCESSING = {
    "none": "raw pixels scaled to [0, 1], nothing subtracted",
    "mean_image": "the training split's mean image (3,072 values) subtracted; pixels stay on the [0, 1] scale",
    "channel_standardize": "per colour channel: (x - mean_c) / std_c with the training split's 3 means and stds",
    "pixel_standardize": "per pixel (each of the 3,072 inputs): (x - mean_i) / std_i with the training split's "
                         "mean image and per-pixel std",
}

#: Set to True by the main script to print one line per epoch for in-process trials.
VERBOSE = False

_PREPARED = {}  # per-process memo: key -> prepared data (only the latest one is kept)


def describe_preprocessing(name: str) -> str:
    """Human-readable description of a ``preprocess`` value."""
    if name not in PREPROCESSING:
        raise ValueError(f"unknown preprocess {name!r}; choose one of {sorted(PREPROCESSING)}")
    return PREPROCESSING[name]


def prepare_data(data=None, n_train=None, n_test=None, val_size=1000, preprocess="pixel_standardize",
                 download=False):
    """Load CIFAR-10 and split off the validation set; memoized per process.

    Returns a dict with ``x_train, y_train, x_val, y_val, x_test, y_test`` (images float32
    NCHW in [0, 1]; the normalization is the model's first layer), ``mean``/``std`` (the
    normalization statistics of the training split, shaped for :class:`nnlite.nn.Normalize`
    on flattened images), ``train_eval_idx`` (the fixed subset of the training split on
    which training accuracy is measured), ``source`` and ``classes``. ``download=True`` lets
    :func:`nnlite.data.load_cifar10` fetch the official files when none are found.
    """
    key = (data, n_train, n_test, val_size, preprocess)
    if key in _PREPARED:
        return _PREPARED[key]
    describe_preprocessing(preprocess)
    _PREPARED.clear()  # keep one data set in memory per process
    ds = load_cifar10(data, n_train=n_train, n_test=n_test, download=download)
    n = ds.y_train.shape[0]
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in (0, {n}), got {val_size}")
    tr, va = stratified_split(ds.y_train, val_size / n, SPLIT_SEED)
    x_tr, y_tr = ds.x_train[tr], ds.y_train[tr]
    x_va, y_va = ds.x_train[va], ds.y_train[va]
    del ds.x_train  # the split copies are all we keep
    flat = x_tr.reshape(x_tr.shape[0], -1)
    d = flat.shape[1]
    if preprocess == "none":
        mean, std = np.zeros(d), np.ones(d)
    elif preprocess == "mean_image":
        mean, std = flat.mean(axis=0, dtype=np.float64), np.ones(d)
    elif preprocess == "channel_standardize":
        per_c = x_tr.reshape(x_tr.shape[0], x_tr.shape[1], -1)
        m_c = per_c.mean(axis=(0, 2), dtype=np.float64)
        s_c = np.sqrt(((per_c - m_c[None, :, None].astype(np.float32)) ** 2).mean(axis=(0, 2), dtype=np.float64))
        hw = per_c.shape[2]
        mean, std = np.repeat(m_c, hw), np.repeat(s_c, hw)
    else:  # pixel_standardize
        mean = flat.mean(axis=0, dtype=np.float64)
        std = flat.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)
    k = min(TRAIN_EVAL_SIZE, y_tr.shape[0])
    prepared = {
        "x_train": x_tr, "y_train": y_tr, "x_val": x_va, "y_val": y_va,
        "x_test": ds.x_test, "y_test": ds.y_test,
        "mean": mean.astype(np.float32), "std": std.astype(np.float32),
        "train_eval_idx": stratified_subset(y_tr, k, rng=SPLIT_SEED + 1),
        "source": ds.source, "classes": list(ds.classes),
    }
    _PREPARED[key] = prepared
    return prepared


def _small_normal(std):
    """Initializer ``N(0, std^2)`` (the course code's ``weight_scale * randn``)."""
    def init(shape, rng, dtype):
        return (std * rng.standard_normal(shape)).astype(dtype)
    return init


def build_model(config: dict, mean: np.ndarray, std: np.ndarray, rng) -> nn.Module:
    """The classifier a config describes; it takes images (N, 3, 32, 32) in [0, 1].

    ``softmax``: Flatten - Normalize - Linear(3072, 10) (the softmax is in the loss).
    ``two_layer``: Flatten - Normalize - Linear(3072, hidden) - ReLU - Linear(hidden, 10).
    Weights: ``N(0, init_std^2)`` when ``init_std > 0``, else He-normal; biases zero.
    """
    init_std = float(config.get("init_std", 0.0))
    init = _small_normal(init_std) if init_std > 0 else "he_normal"
    d = int(mean.size)
    head = [nn.Flatten(), nn.Normalize(mean, std)]
    if config["model"] == "softmax":
        return nn.Sequential(*head, nn.Linear(d, 10, rng=rng, init=init))
    if config["model"] == "two_layer":
        h = int(config["hidden"])
        return nn.Sequential(*head, nn.Linear(d, h, rng=rng, init=init), nn.ReLU(),
                             nn.Linear(h, 10, rng=rng, init=init))
    raise ValueError(f"unknown model {config['model']!r}; expected 'softmax' or 'two_layer'")


class _TrainAccuracy(Callback):
    """After each epoch: accuracy on a fixed subset of the training split (eval mode)."""

    def __init__(self, x, y):
        self.x, self.y, self.values = x, y, []

    def on_epoch_end(self, trainer, epoch, logs):
        self.values.append(trainer.evaluate(self.x, self.y)["acc"])


def _config_value(config, key, defaults):
    return config[key] if key in config else defaults[key]


def run_trial(config: dict) -> dict:
    """Train the classifier described by ``config`` and return its metrics.

    ``config`` keys: ``model`` ("softmax" or "two_layer"), ``lr``, ``lr_decay`` (the lr is
    multiplied by it after every epoch), ``batch_size``, ``reg`` (L2 strength: adds
    ``reg * W`` to every weight gradient, i.e. the gradient of ``reg/2 * ||W||^2``; biases
    are not penalized), ``epochs``, ``hidden`` (two_layer), ``init_std``, ``seed``, plus the
    data keys of :data:`DATA_DEFAULTS` (missing ones take those defaults).
    """
    defaults = SOFTMAX_DEFAULTS if config.get("model", "softmax") == "softmax" else TWO_LAYER_DEFAULTS
    cfg = dict(DATA_DEFAULTS)
    cfg.update(defaults)
    cfg.update(config)
    cfg.setdefault("seed", 0)
    d = prepare_data(cfg["data"], cfg["n_train"], cfg["n_test"], int(cfg["val_size"]), cfg["preprocess"])
    seed = int(cfg["seed"])
    init_rng = np.random.default_rng([seed, 1])
    model = build_model(cfg, d["mean"], d["std"], init_rng)
    opt = SGD(model.parameters(), lr=float(cfg["lr"]))
    schedule = MultiplicativeDecay(opt, float(cfg["lr_decay"]))
    idx = d["train_eval_idx"]
    train_acc = _TrainAccuracy(d["x_train"][idx], d["y_train"][idx])
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, schedule=schedule, callbacks=[train_acc],
                      batch_size=int(cfg["batch_size"]), rng=np.random.default_rng([seed, 2]),
                      progress="auto" if VERBOSE else False, l2=float(cfg["reg"]),
                      eval_batch_size=1000)
    hist = trainer.fit(d["x_train"], d["y_train"], epochs=int(cfg["epochs"]),
                       val_data=(d["x_val"], d["y_val"])).to_dict()
    test = trainer.evaluate(d["x_test"], d["y_test"])
    history = {k: [float(v) for v in hist[k]] for k in ("loss", "acc", "val_loss", "val_acc", "lr")}
    history["train_acc"] = [float(v) for v in train_acc.values]
    finite = [v for v in history["val_acc"] if math.isfinite(v)]
    return {
        "test_acc": float(test["acc"]),
        "val_acc": history["val_acc"][-1],
        "train_acc": history["train_acc"][-1],
        "best_val_acc": max(finite) if finite else float("nan"),
        "test_loss": float(test["loss"]),
        "train_loss": history["loss"][-1],
        "epochs": len(history["loss"]),
        "n_train": int(d["y_train"].shape[0]),
        "n_val": int(d["y_val"].shape[0]),
        "n_test": int(d["y_test"].shape[0]),
        "history": history,
    }
