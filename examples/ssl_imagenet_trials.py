"""Trial function of the self-supervised Tiny ImageNet example (``ssl_imagenet.py``).

One trial pre-trains one method on the in-distribution images and returns its metrics::

    metrics = run_trial({"method": "simclr", "temperature": 0.1, "optimizer": "adamw", "steps": 150,
                         "seed": 0, ...})

The function lives at module level in this importable module, so the sweep workers
(joblib/loky processes or Dask workers) can unpickle it: the main script puts this folder on
``sys.path`` (and in ``PYTHONPATH`` for the workers it starts) before launching a sweep.
Everything a trial does depends only on its ``config``:

* the data (``data``, ``resolution``, ``classes``, ``split_seed``): :func:`prepare_data`
  decodes the Tiny ImageNet subset (nnlite caches the decoded JPEGs) and builds the seeded
  ID / OOD protocol of the script's docstring, once per process;
* ``seed`` seeds the encoder and heads, the training Generator and the linear probes;
* ``threads`` is the trial's nnlite thread count (part of the config: the summation order of
  a few reductions depends on it, so a trial gives the same numbers serially and in a worker).

The metrics are plain JSON: ID / OOD k-NN (k = 200 and 20) and linear-probe accuracies,
``total_steps`` and the per-epoch ``history`` (``loss``, ``knn``, ``linear_probe``); no wall
times, so a trial is reproducible bit for bit (given the same BLAS).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nnlite import optim, ssl
from nnlite.data import find_dataset, formats

__all__ = ["DATA_DEFAULTS", "TRAIN_DEFAULTS", "MEAN", "STD", "prepare_data", "make_method", "train", "evaluate",
           "run_trial"]

#: The data protocol: ``classes`` ID and as many OOD classes (100 = all 200 classes).
DATA_DEFAULTS = {"data": None, "resolution": 32, "classes": 100, "split_seed": 0}
#: One pre-training run: SimCLR, tau = 0.1, AdamW (the baseline of the script's studies).
TRAIN_DEFAULTS = {"method": "simclr", "temperature": 0.1, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4,
                  "width": 32, "stages": 3, "batch_size": 128, "steps": 150, "monitor_probe_epochs": 10,
                  "eval_probe_epochs": 50, "threads": 1}
#: Tiny ImageNet channel statistics (the encoder's Normalize layer).
MEAN, STD = [0.480, 0.448, 0.398], [0.277, 0.269, 0.282]
METHODS = ("simclr", "byol", "barlow")
OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW}

_PREPARED = {}  # per-process memo: key -> prepared data (only the latest one is kept)


def _prep(x, resolution):
    x = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
    if resolution == 32:
        x = x.reshape(len(x), 3, 32, 2, 32, 2).mean(axis=(3, 5))
    return x


def prepare_data(data=None, resolution=32, classes=100, split_seed=0):
    """The ID / OOD protocol (see ``ssl_imagenet.py``), memoized per process.

    Returns a namespace: ``x_ssl, y_ssl`` (self-supervised training set = ID k-NN bank),
    ``x_idt, y_idt`` (ID test), ``x_oodb, y_oodb`` / ``x_oodt, y_oodt`` (OOD bank / test), images
    float32 (N, 3, r, r) in [0, 1]; ``protocol`` (sizes), ``words`` (class names), ``ind``, ``ood``.
    """
    key = (data, resolution, classes, split_seed)
    if key in _PREPARED:
        return _PREPARED[key]
    if resolution not in (32, 64):
        raise ValueError(f"resolution must be 32 or 64, got {resolution!r}")
    if not 1 <= classes <= 100:
        raise ValueError(f"classes must be in [1, 100], got {classes!r}")
    _PREPARED.clear()
    root = find_dataset("tiny_imagenet", data).path
    wnids, words = zip(*[line.rstrip("\n").split("\t", 1) for line in open(root / "classes.txt")])
    xv, yv, _ = formats.read_image_folder(root / "val.zip", split="val", classes=list(wnids), mode="RGB")
    with np.load(root / "train.npz") as f:
        xtr, ytr = f["x"], f["y"]
    ind, ood = ssl.ood_class_split(200, 100, rng=split_seed)
    ind, ood = ind[:classes], ood[:classes]
    rank = np.empty(len(yv), dtype=np.int64)                      # position of each val image in its class
    for c in range(200):
        rank[yv == c] = np.arange((yv == c).sum())
    is_ind_v, is_ood_v = np.isin(yv, ind), np.isin(yv, ood)
    is_ind_t, is_ood_t = np.isin(ytr, ind), np.isin(ytr, ood)
    d = SimpleNamespace(
        x_ssl=_prep(np.concatenate([xtr[is_ind_t], xv[is_ind_v & (rank < 30)]]), resolution),
        y_ssl=np.concatenate([ytr[is_ind_t], yv[is_ind_v & (rank < 30)]]),
        x_idt=_prep(xv[is_ind_v & (rank >= 30)], resolution), y_idt=yv[is_ind_v & (rank >= 30)],
        x_oodb=_prep(np.concatenate([xtr[is_ood_t], xv[is_ood_v & (rank < 25)]]), resolution),
        y_oodb=np.concatenate([ytr[is_ood_t], yv[is_ood_v & (rank < 25)]]),
        x_oodt=_prep(xv[is_ood_v & (rank >= 25)], resolution), y_oodt=yv[is_ood_v & (rank >= 25)],
        words=list(words), ind=ind, ood=ood)
    assert not set(d.y_ssl) & set(d.y_oodb) and not set(d.y_idt) & set(d.y_oodt)
    d.protocol = {"id_classes": len(ind), "ood_classes": len(ood), "ssl_train_and_id_bank": len(d.x_ssl),
                  "id_test": len(d.x_idt), "ood_bank": len(d.x_oodb), "ood_test": len(d.x_oodt),
                  "resolution": resolution}
    _PREPARED[key] = d
    return d


def _encoder(cfg):
    """The small CNN of a config: ``stages`` stages of widths w, 2w, 4w, ... (w = ``width``)."""
    w = int(cfg["width"])
    return ssl.small_cnn(tuple(w * 2 ** i for i in range(int(cfg["stages"]))), rng=int(cfg["seed"]), mean=MEAN,
                         std=STD)


def make_method(cfg):
    """The method a config describes: encoder small CNN (w, 2w, 4w[, 8w]), projection 4D hidden -> 128."""
    enc = _encoder(cfg)
    d = enc.out_features
    proj = ssl.mlp_head(d, 4 * d, 128, rng=int(cfg["seed"]) + 1)
    if cfg["method"] == "simclr":
        return ssl.SimCLR(enc, proj, float(cfg["temperature"]))
    if cfg["method"] == "byol":
        return ssl.BYOL(enc, proj, ssl.mlp_head(128, 4 * d, 128, rng=int(cfg["seed"]) + 2))
    if cfg["method"] == "barlow":
        return ssl.BarlowTwins(enc, proj)
    raise ValueError(f"unknown method {cfg['method']!r}; expected one of {METHODS}")


def random_encoder(cfg, d, batches=20):
    """The baseline: the same encoder at its random initialisation, batch-norm running statistics
    refreshed on ``batches`` un-augmented batches of the training set (no gradient step)."""
    return ssl.recalibrate_batchnorm(_encoder(cfg), d.x_ssl, batches=batches)


def _config(config):
    cfg = {**DATA_DEFAULTS, **TRAIN_DEFAULTS, **config}
    cfg.setdefault("seed", 0)
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; expected one of {sorted(OPTIMIZERS)}")
    return cfg


def train(config, log=None):
    """Pre-train the config's method on the ID images with a per-epoch k-NN / linear-probe monitor.

    Optimizer ``adam`` (L2 weight decay in the gradient) or ``adamw`` (decoupled), warm-up +
    cosine over ``steps``; views from ``ssl.simclr_imagenet()`` at resolution 64 and from
    ``ssl.simclr_cifar()`` (the same without Gaussian blur) at 32, as SimCLR drops the blur for
    32x32 images. Returns (method, history, data).
    """
    cfg = _config(config)
    d = prepare_data(cfg["data"], int(cfg["resolution"]), int(cfg["classes"]), int(cfg["split_seed"]))
    m = make_method(cfg)
    steps, batch = int(cfg["steps"]), int(cfg["batch_size"])
    opt = OPTIMIZERS[cfg["optimizer"]](m.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    sched = optim.WarmupCosine(opt, warmup_steps=max(1, steps // 20), total_steps=steps)
    spe = len(d.x_ssl) // batch
    probe = int(cfg["monitor_probe_epochs"])
    monitor = ssl.KNNMonitor(m.encoder, d.x_ssl, d.y_ssl, d.x_idt, d.y_idt, k=200, temperature=0.1,
                             linear_probe_epochs=probe or None, probe_seed=int(cfg["seed"]))
    augment = ssl.simclr_imagenet() if int(cfg["resolution"]) == 64 else ssl.simclr_cifar()
    h = ssl.pretrain(m, d.x_ssl, -(-steps // spe), batch, opt, augment,
                     np.random.default_rng(int(cfg["seed"])), schedule=sched, on_epoch_end=monitor,
                     threads=int(cfg["threads"]), max_steps=steps, log=log)
    return m, h, d


def evaluate(encoder, d, probe_epochs, seed):
    """ID and OOD accuracies of an encoder: weighted k-NN (k = 200 and 20, T = 0.1) and a linear
    probe (``probe_epochs`` epochs, seed ``seed``), each bank against its test set."""
    res = {}
    for tag, (xb, yb, xt, yt) in {"id": (d.x_ssl, d.y_ssl, d.x_idt, d.y_idt),
                                  "ood": (d.x_oodb, d.y_oodb, d.x_oodt, d.y_oodt)}.items():
        eb, et = ssl.embed(encoder, xb), ssl.embed(encoder, xt)
        res[f"{tag}_knn200"] = ssl.knn_accuracy(eb, yb, et, yt, k=200, temperature=0.1)
        res[f"{tag}_knn20"] = ssl.knn_accuracy(eb, yb, et, yt, k=20, temperature=0.1)
        res[f"{tag}_linear"], _, _ = ssl.linear_probe(eb, yb, et, yt, epochs=probe_epochs, rng=seed)
    return res


def run_trial(config):
    """Train the method ``config`` describes and return its metrics.

    ``config`` keys: those of :data:`TRAIN_DEFAULTS` and :data:`DATA_DEFAULTS` (missing ones take
    those defaults) and ``seed``: ``method`` ("simclr", "byol", "barlow"), ``temperature``
    (SimCLR's tau), ``optimizer`` ("adam", "adamw"), ``lr``, ``weight_decay``, ``width``,
    ``stages``, ``batch_size``, ``steps``, ``monitor_probe_epochs`` (per-epoch linear probe, 0 = off),
    ``eval_probe_epochs`` (final linear probes), ``threads``.
    """
    cfg = _config(config)
    m, h, d = train(cfg)
    res = evaluate(m.encoder, d, int(cfg["eval_probe_epochs"]), int(cfg["seed"]))
    res["total_steps"] = h["total_steps"]
    res["history"] = {k: [float(v) for v in h[k]] for k in ("loss", "knn", "linear_probe") if k in h}
    return res
