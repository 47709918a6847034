"""Tests of nnlite.train.history.History: its own module, validation, no val_* without validation."""
import math
import subprocess
import sys

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.optim import SGD
from nnlite.train import History, Trainer
from nnlite.train import history as history_mod


def blobs(n=90, d=5, c=3, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, c, n).astype(np.int64)
    x = (r.standard_normal((c, d))[y] * 3 + r.standard_normal((n, d))).astype(np.float32)
    return x, y


def trainer(seed=1):
    model = nn.Sequential(nn.Linear(5, 8, rng=seed), nn.ReLU(), nn.Linear(8, 3, rng=seed + 1))
    return Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), batch_size=30,
                   progress=False)


def test_history_lives_in_its_own_module_and_breaks_the_import_loop():
    assert History is history_mod.History
    from nnlite.train.callbacks import History as from_callbacks  # old import path still works
    assert from_callbacks is History
    # checkpoint no longer needs callbacks: importing it first in a fresh interpreter works
    code = ("import nnlite.train.checkpoint as c, nnlite.train.history as h; "
            "assert c.History is h.History")
    subprocess.run([sys.executable, "-c", code], check=True)
    import nnlite.train.checkpoint as ck
    src = open(ck.__file__).read()
    assert "from .callbacks" not in src and "from .history import History" in src


def test_no_val_columns_without_validation_data():
    x, y = blobs()
    h = trainer().fit(x, y, epochs=2)
    assert set(h.keys()) == {"loss", "acc", "lr", "epoch_time"}
    assert not any(k.startswith("val_") for k in h.to_dict())
    hv = trainer().fit(x, y, epochs=2, val_split=0.2)
    assert {"val_loss", "val_acc"} <= set(hv.keys())
    assert all(math.isfinite(v) for v in hv["val_loss"])


def test_validation_data_is_the_keras_spelling_of_val_data():
    x, y = blobs()
    xv, yv = blobs(n=30, seed=5)
    a = trainer().fit(x, y, epochs=2, val_data=(xv, yv))
    b = trainer().fit(x, y, epochs=2, validation_data=(xv, yv))
    assert a["val_loss"] == b["val_loss"] and a["val_acc"] == b["val_acc"]
    with pytest.raises(ValueError, match="either val_data or validation_data"):
        trainer().fit(x, y, epochs=1, val_data=(xv, yv), validation_data=(xv, yv))
    with pytest.raises(ValueError, match="validation_data or val_split"):
        trainer().fit(x, y, epochs=1, validation_data=(xv, yv), val_split=0.1)
    with pytest.raises(TypeError, match=r"validation_data must be a pair"):
        trainer().fit(x, y, epochs=1, validation_data=xv)
    with pytest.raises(ValueError, match=r"validation_data\[1\] must have one entry per sample"):
        trainer().fit(x, y, epochs=1, validation_data=(xv, yv[:3]))


def test_a_resumed_history_gains_val_columns_with_nan_for_earlier_epochs():
    h = History()
    h.append(0, {"loss": 1.0, "acc": 0.5, "lr": 0.1, "epoch_time": 1.0})
    h.append(1, {"loss": 0.9, "acc": 0.6, "lr": 0.1, "epoch_time": 1.0, "val_loss": 0.8})
    assert math.isnan(h["val_loss"][0]) and h["val_loss"][1] == 0.8
    assert math.isnan(h["acc"][0]) is False


@pytest.mark.parametrize("args, exc, fragment", [
    (({"loss": [1.0, "x"]},), TypeError, r"history\['loss'\]\[1\] must be a number"),
    (({"loss": 3},), TypeError, r"history\['loss'\] must be a list"),
    (({"loss": [1.0], "acc": [1.0, 2.0]},), ValueError, r"has 1 entries, expected 2"),
    (({1: [1.0]},), TypeError, "history keys must be str"),
    (("loss",), TypeError, "history must be a dict"),
    (({"loss": [1.0]}, [-1]), ValueError, r"epoch\[0\] must be a non-negative int"),
    (({"loss": [1.0]}, [0, 1]), ValueError, "expected 2"),
])
def test_history_validates_its_input(args, exc, fragment):
    with pytest.raises(exc, match=fragment):
        History(*args)


def test_history_round_trip_keeps_nan_and_none():
    h = History({"loss": [1.0, None], "val_loss": [float("nan"), 2.0]})
    assert h.epoch == [0, 1] and math.isnan(h["loss"][1]) and len(h["acc"]) == 2
    again = History.from_dict(h.to_dict())
    assert again.epoch == [0, 1] and again["val_loss"][1] == 2.0
