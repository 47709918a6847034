"""Tests of nnlite.train callbacks: hook order, EarlyStopping, ModelCheckpoint, NaNGuard,
ProgressBar, History."""
import io
import math
import os

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.optim import SGD
from nnlite.train import (Callback, EarlyStopping, History, ModelCheckpoint, NaNGuard,
                          ProgressBar, Trainer, TrainingDiverged, load_checkpoint)


def blobs(n=120, d=6, c=3, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, c, n).astype(np.int64)
    x = (r.standard_normal((c, d))[y] * 3 + r.standard_normal((n, d))).astype(np.float32)
    return x, y


def mlp(seed=1, d=6, c=3):
    r = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(d, 12, rng=r), nn.ReLU(), nn.Dropout(0.2, rng=r),
                         nn.Linear(12, c, rng=r))


def make_trainer(callbacks=(), lr=0.05, **kw):
    model = mlp()
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 32)
    return Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=lr, momentum=0.9),
                   callbacks=callbacks, **kw)


class Script(Callback):
    """Overwrites the epoch's val_loss with a scripted value (place it before the tested one)."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key = values, key

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.weights.append(trainer.model.state_dict())


# -- writing your own callback ---------------------------------------------------------------------
class Recorder(Callback):
    """A user-defined callback that records every hook call in order."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, trainer):
        self.calls.append("train_begin")

    def on_epoch_begin(self, trainer, epoch):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_begin(self, trainer, batch, xb, yb):
        self.calls.append(f"batch_begin {batch} {len(xb)}")

    def on_train_batch_end(self, trainer, batch, logs):
        assert set(logs) >= {"loss", "acc", "size", "lr"}
        self.calls.append(f"batch_end {batch} {logs['size']}")

    def on_validation_end(self, trainer, epoch, logs):
        assert len(trainer.history) == epoch      # not recorded yet: metrics may still be added
        self.calls.append(f"validation_end {epoch}")

    def on_epoch_end(self, trainer, epoch, logs):
        assert len(trainer.history) == epoch + 1  # history already holds this epoch
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, trainer):
        self.calls.append("train_end")


def test_custom_callback_sees_hooks_in_order():
    x, y = blobs(n=70)
    rec = Recorder()
    make_trainer([rec]).fit(x, y, epochs=2, val_data=(x[:10], y[:10]))
    keys = sorted(["loss", "acc", "val_loss", "val_acc", "lr", "epoch_time"])
    per_epoch = lambda e: ([f"epoch_begin {e}"]
                           + [c for b, n in enumerate([32, 32, 6])
                              for c in (f"batch_begin {b} {n}", f"batch_end {b} {n}")]
                           + [f"validation_end {e}", f"epoch_end {e} {keys}"])
    assert rec.calls == ["train_begin"] + per_epoch(0) + per_epoch(1) + ["train_end"]


class AddMetric(Callback):
    """Adds a scripted metric in on_validation_end (as RobustValidation does)."""

    def __init__(self, values):
        self.values = values

    def on_validation_end(self, trainer, epoch, logs):
        logs["val_custom"] = self.values[epoch]


def test_metric_added_in_on_validation_end_is_recorded_and_monitored():
    x, y = blobs()
    values = [0.2, 0.5, 0.4, 0.3, 0.45, 0.1]
    snaps = Snapshots()
    es = EarlyStopping("val_custom", mode="max", patience=2, restore_best_weights=True)
    trainer = make_trainer([AddMetric(values), snaps, es])
    hist = trainer.fit(x, y, epochs=6, val_data=(x[:20], y[:20]))
    assert hist["val_custom"] == values[:4]          # recorded; stopped after 2 epochs without gain
    assert es.best_epoch == 1 and es.stopped_epoch == 3
    for k, v in trainer.model.state_dict().items():  # the best epoch's weights are back
        np.testing.assert_array_equal(v, snaps.weights[1][k])


def test_stop_training_stops_after_the_current_epoch():
    x, y = blobs(n=64)

    class StopAt(Callback):
        def on_train_batch_end(self, trainer, batch, logs):
            if trainer.epoch == 1 and batch == 0:
                trainer.stop_training = True

    rec = Recorder()
    h = make_trainer([StopAt(), rec]).fit(x, y, epochs=10)
    assert h.epoch == [0, 1]
    assert rec.calls.count("batch_end 1 32") == 2  # epoch 1 still finished all its batches
    assert rec.calls[-1] == "train_end"


# -- EarlyStopping ---------------------------------------------------------------------------------
def test_early_stopping_stops_at_the_right_epoch_and_restores_best_weights():
    x, y = blobs()
    losses = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6, 0.5, 0.4]
    snaps = Snapshots()
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    tr = make_trainer([Script(losses), snaps, es])
    h = tr.fit(x, y, epochs=8, val_data=(x, y))
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert h.epoch == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.8
    final = tr.model.state_dict()
    assert all(np.array_equal(final[k], snaps.weights[1][k]) for k in final)
    assert not all(np.array_equal(final[k], snaps.weights[3][k]) for k in final)


def test_early_stopping_min_delta_mode_and_no_stop():
    x, y = blobs(n=64)
    es = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.1)
    h = make_trainer([Script([1.0, 0.95, 0.5, 0.45, 0.3]), es]).fit(x, y, epochs=5, val_data=(x, y))
    assert h.epoch == [0, 1] and es.stopped_epoch == 1  # 0.95 is not better by > 0.1
    es = EarlyStopping(monitor="val_acc", patience=1)  # auto -> max
    assert es.mode == "max"
    h = make_trainer([Script([0.5, 0.6, 0.7], "val_acc"), es]).fit(x, y, epochs=3, val_data=(x, y))
    assert h.epoch == [0, 1, 2] and es.stopped_epoch is None and es.best == 0.7


def test_early_stopping_without_validation_data_says_so():
    x, y = blobs(n=64)
    with pytest.raises(ValueError, match="val_loss.*val_data or val_split"):
        make_trainer([EarlyStopping(patience=1)]).fit(x, y, epochs=2)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


# -- ModelCheckpoint -------------------------------------------------------------------------------
def test_model_checkpoint_best_only_writes_only_on_improvement(tmp_path):
    x, y = blobs()
    snaps = Snapshots()
    mc = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.npz"), monitor="val_loss",
                         save_best_only=True)
    tr = make_trainer([Script([1.0, 0.5, 0.7, 0.4, 0.45]), snaps, mc])
    h = tr.fit(x, y, epochs=5, val_data=(x, y))
    names = sorted(os.listdir(tmp_path))
    assert names == ["ckpt-01.npz", "ckpt-02.npz", "ckpt-04.npz"]
    assert mc.saved == [str(tmp_path / n) for n in names] and mc.best == 0.4
    fresh = mlp(seed=99)
    info = load_checkpoint(tmp_path / "ckpt-04.npz", fresh)
    assert info["epoch"] == 4 and info["history"]["val_loss"] == h["val_loss"][:4]
    w = fresh.state_dict()
    assert all(np.array_equal(w[k], snaps.weights[3][k]) for k in w)


def test_model_checkpoint_every_epoch_overwrites_one_file(tmp_path):
    x, y = blobs(n=64)
    path = tmp_path / "last.npz"
    mc = ModelCheckpoint(path)
    tr = make_trainer([mc])
    tr.fit(x, y, epochs=3)
    assert mc.saved == [str(path)] * 3 and os.listdir(tmp_path) == ["last.npz"]
    info = load_checkpoint(path, mlp(seed=5))
    assert info["epoch"] == 3 and len(info["history"]["loss"]) == 3


# -- NaNGuard ----------------------------------------------------------------------------------------
def test_nan_guard_names_epoch_and_batch():
    x, y = blobs(n=96)

    class Inject(Callback):
        def on_train_batch_begin(self, trainer, batch, xb, yb):
            if trainer.epoch == 1 and batch == 2:
                xb = xb.copy()
                xb[0, 0] = np.inf
                return xb, yb

    tr = make_trainer([Inject(), NaNGuard()])
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"epoch 1, batch 2") as err:
        tr.fit(x, y, epochs=3)
    assert isinstance(err.value, FloatingPointError)
    assert err.value.epoch == 1 and err.value.batch == 2 and not math.isfinite(err.value.loss)


def test_nan_guard_catches_a_huge_learning_rate():
    x, y = blobs(n=96)
    with np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match=r"diverged: loss is (nan|inf) at epoch \d+, batch \d+"):
            make_trainer([NaNGuard()], lr=1e6).fit(x, y, epochs=20)


# -- ProgressBar -----------------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_forced_on_stringio_shows_rate_eta_and_loss():
    x, y = blobs(n=100)
    out = io.StringIO()
    bar = ProgressBar(stream=out, force=True, min_interval=0.0)
    assert bar.mode == "bar"
    make_trainer(progress=bar).fit(x, y, epochs=2)
    text = out.getvalue()
    assert "img/s" in text and "ETA" in text and "loss" in text
    assert "4/4" in text and "1/4" in text and "\r" in text
    assert text.count("\n") == 2  # one finished line per epoch
    assert "Epoch 2/2" in text


def test_progress_bar_quiet_per_batch_when_not_a_tty():
    x, y = blobs(n=100)
    out = io.StringIO()
    bar = ProgressBar(stream=out)
    assert bar.mode == "summary"
    make_trainer(progress=bar).fit(x, y, epochs=3, val_data=(x, y))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "ETA" not in out.getvalue() and "\r" not in out.getvalue()
    assert lines[0].startswith("Epoch 1/3") and "val_loss" in lines[0] and "lr 0.05" in lines[0]
    tty = FakeTTY()
    assert ProgressBar(stream=tty).mode == "bar"
    make_trainer(progress=ProgressBar(stream=tty)).fit(x, y, epochs=1)
    assert "ETA" in tty.getvalue()


def test_progress_false_prints_nothing(capsys):
    x, y = blobs(n=64)
    make_trainer(progress=False).fit(x, y, epochs=2)
    off = io.StringIO()
    make_trainer(progress=ProgressBar(stream=off, enabled=False, force=True)).fit(x, y, epochs=1)
    assert capsys.readouterr().out == "" and off.getvalue() == ""
    make_trainer(progress="auto").fit(x, y, epochs=2)  # stdout captured: not a TTY
    assert capsys.readouterr().out.count("\n") == 2


# -- History -----------------------------------------------------------------------------------------
def test_history_is_returned_and_round_trips():
    x, y = blobs(n=64)
    tr = make_trainer()
    h = tr.fit(x, y, epochs=2)
    assert h is tr.history and isinstance(h, History) and h["loss"] is h.history["loss"]
    again = History.from_dict(h.to_dict())
    assert again.epoch == h.epoch
    for k in h.keys():
        np.testing.assert_array_equal(again[k], h[k])
    h.append(2, {"loss": 1.0, "custom": 3.0})
    assert len(h["custom"]) == 3 and math.isnan(h["custom"][0]) and h["custom"][2] == 3.0
    assert math.isnan(h["acc"][2])


def test_progress_bar_ends_its_line_when_fit_raises():
    x, y = blobs(n=100)
    out = io.StringIO()

    class Boom(Callback):
        def on_train_batch_begin(self, trainer, batch, xb, yb):
            if batch == 2:
                return xb[:, :4], yb  # wrong feature count: the model's error must propagate

    tr = make_trainer([Boom()], progress=ProgressBar(stream=out, force=True, min_interval=0.0))
    with pytest.raises(ValueError, match="Linear expects input of shape"):
        tr.fit(x, y, epochs=1)
    text = out.getvalue()
    assert "2/4" in text and text.endswith("\n") and text.count("\n") == 1
