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

    def per_epoch(e):
        return ([f"epoch_begin {e}"]
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


# -- issue 13: no callback saves non-finite weights ----------------------------------------------------
class Blowup(Callback):
    """The last step of epoch 1 diverges: its loss (computed before the step) is finite, the
    update is not (lr 1e300), so only the epoch's val_loss and the weights show it."""

    def on_train_batch_begin(self, trainer, batch, xb, yb):
        if trainer.epoch == 1 and batch == trainer.steps_per_epoch - 1:
            trainer.optimizer.param_groups[0]["lr"] = 1e300


@pytest.mark.parametrize("guard_first", [True, False])
def test_nan_at_an_epochs_last_batch_never_overwrites_the_last_good_checkpoint(tmp_path, guard_first):
    x, y = blobs(n=96)
    path = tmp_path / "last.npz"
    mc = ModelCheckpoint(path)
    cbs = [Blowup(), NaNGuard(), mc] if guard_first else [Blowup(), mc, NaNGuard()]
    tr = make_trainer(cbs)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"val_loss is (nan|inf) "
                                                  r"at the end of epoch 1") as err:
        tr.fit(x, y, epochs=3, val_data=(x, y))
    assert err.value.epoch == 1 and err.value.batch is None
    assert mc.saved == [str(path)]  # epoch 1 only
    fresh = mlp(seed=9)
    info = load_checkpoint(path, fresh)
    assert info["epoch"] == 1
    assert all(np.all(np.isfinite(v)) for v in fresh.state_dict().values())


def test_nan_guard_checks_weights_when_no_validation_data(tmp_path):
    x, y = blobs(n=96)
    path = tmp_path / "last.npz"
    tr = make_trainer([Blowup(), ModelCheckpoint(path), NaNGuard()])
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"parameter '0.weight' "
                                                  r"holds NaN or inf at the end of epoch 1"):
        tr.fit(x, y, epochs=3)
    assert load_checkpoint(path, mlp(seed=9))["epoch"] == 1


def test_model_checkpoint_alone_refuses_to_save_non_finite_weights(tmp_path):
    x, y = blobs(n=96)
    path = tmp_path / "last.npz"
    mc = ModelCheckpoint(path)
    tr = make_trainer([Blowup(), mc])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match=r"not saving epoch \d.*NaN or inf"):
        tr.fit(x, y, epochs=3, val_data=(x, y))
    assert mc.saved == [str(path)] and mc.skipped == [1, 2]
    fresh = mlp(seed=9)
    assert load_checkpoint(path, fresh)["epoch"] == 1
    assert all(np.all(np.isfinite(v)) for v in fresh.state_dict().values())


# -- issue 13: callback state survives a resume ---------------------------------------------------------
def _recipe(tmp_path, tag):
    """The README's recipe: best-only and every-epoch checkpoints plus early stopping. The
    checkpoint writers are listed first: they still save after EarlyStopping has counted."""
    best = tmp_path / f"{tag}-best.npz"
    last = tmp_path / f"{tag}-last.npz"
    es = EarlyStopping(patience=2, restore_best_weights=True)
    mcb = ModelCheckpoint(best, save_best_only=True)
    mcl = ModelCheckpoint(last)
    # val_loss 1.0, 0.5, 0.7, 0.8, ...: best at epoch 1, patience runs out at epoch 3
    tr = make_trainer([Script([1.0, 0.5, 0.7, 0.8, 0.9, 1.0]), mcb, mcl, es])
    return tr, es, mcb, mcl, best, last


def test_two_epochs_plus_resumed_two_equal_four_for_the_callbacks(tmp_path):
    x, y = blobs(n=96)
    tr, es, mcb, _, best, _ = _recipe(tmp_path, "straight")
    tr.fit(x, y, epochs=6, val_data=(x, y))
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and len(tr.history) == 4
    assert [os.path.basename(p) for p in mcb.saved] == ["straight-best.npz"] * 2  # epochs 0, 1

    tr1, es1, _, _, best1, last1 = _recipe(tmp_path, "split")
    tr1.fit(x, y, epochs=2, val_data=(x, y))
    tr2, es2, mcb2, mcl2, best2, last2 = _recipe(tmp_path, "split")  # a new process
    info = load_checkpoint(last2, tr2.model, tr2.optimizer, None, tr2)
    assert info["epoch"] == 2 and set(info["callbacks"]) == {"EarlyStopping", "ModelCheckpoint",
                                                            "ModelCheckpoint#1"}
    assert es2.best == 0.5 and es2.best_epoch == 1 and es2.wait == 0 and mcb2.best == 0.5
    best_bytes = best2.read_bytes()
    tr2.fit(x, y, epochs=6, val_data=(x, y), initial_epoch=info["epoch"])
    # the same decisions as the straight run: stop at epoch 3, best.npz never overwritten
    assert es2.stopped_epoch == 3 and es2.best_epoch == 1 and es2.wait == es.wait == 2
    assert best2.read_bytes() == best_bytes and mcb2.best == mcb.best == 0.5
    assert load_checkpoint(best2, mlp(seed=7))["epoch"] == load_checkpoint(best, mlp(seed=7))["epoch"] == 2
    # restore_best_weights: the epoch-1 weights, saved in the checkpoint, come back at the end
    w_straight, w_resumed = tr.model.state_dict(), tr2.model.state_dict()
    assert all(np.array_equal(w_straight[k], w_resumed[k]) for k in w_straight)
    assert tr2.history.epoch == [0, 1, 2, 3]


def test_callback_state_is_checked_before_anything_is_written(tmp_path):
    import json

    from nnlite.train import checkpoint as ck
    x, y = blobs(n=64)
    tr, *_, last = _recipe(tmp_path, "a")
    tr.fit(x, y, epochs=1, val_data=(x, y))
    meta, arrays = ck.read_checkpoint(last)
    meta = json.loads(json.dumps(meta))
    meta.pop("keys")
    meta["callbacks"]["EarlyStopping"]["wait"] = "three"
    ck._write_raw(str(last), meta, arrays)
    tr2, es2, *_ = _recipe(tmp_path, "b")
    before = tr2.model.state_dict()
    with pytest.raises(ValueError, match="EarlyStopping.*'wait' must be a non-negative int"):
        load_checkpoint(last, tr2.model, tr2.optimizer, None, tr2)
    assert all(np.array_equal(before[k], v) for k, v in tr2.model.state_dict().items())
    assert es2.wait == 0 and es2.best == math.inf


def test_val_monitor_and_path_fields_without_validation_fail_before_the_first_epoch(tmp_path):
    x, y = blobs(n=64)
    for cb, pattern in [(ModelCheckpoint(tmp_path / "{val_loss:.3f}.npz"), r"uses \{val_loss\}"),
                        (ModelCheckpoint(tmp_path / "b.npz", save_best_only=True), "monitors 'val_loss'"),
                        (EarlyStopping(), "monitors 'val_loss'")]:
        tr = make_trainer([cb])
        with pytest.raises(ValueError, match=pattern + ".*validation"):
            tr.fit(x, y, epochs=2)
        assert len(tr.history) == 0 and os.listdir(tmp_path) == []
    ok = ModelCheckpoint(tmp_path / "{epoch:02d}-{loss:.2f}.npz")  # train-only fields are fine
    make_trainer([ok]).fit(x, y, epochs=1)
    assert len(os.listdir(tmp_path)) == 1
