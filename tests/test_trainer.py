"""Tests of nnlite.train.Trainer: fitting, determinism, batching, modes, schedules, errors."""
import math

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.losses import MSE, SoftmaxCrossEntropy
from nnlite.optim import SGD, ReduceLROnPlateau, StepLR
from nnlite.train import Callback, Trainer, stratified_split


def blobs(n=300, d=8, c=3, seed=0, spread=3.0):
    """Gaussian blobs: float32 x (n, d), int64 y (n,)."""
    r = np.random.default_rng(seed)
    y = r.integers(0, c, n)
    centers = r.standard_normal((c, d)) * spread
    x = (centers[y] + r.standard_normal((n, d))).astype(np.float32)
    return x, y.astype(np.int64)


def mlp(seed=1, d=8, c=3, dropout=0.3, bn=True):
    r = np.random.default_rng(seed)
    layers = [nn.Linear(d, 16, rng=r)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(dropout, rng=r), nn.Linear(16, c, rng=r)]
    return nn.Sequential(*layers)


def make_trainer(model=None, lr=0.1, momentum=0.9, schedule=None, **kw):
    model = mlp() if model is None else model
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)
    sched = schedule(opt) if schedule is not None else None
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 32)
    return Trainer(model, SoftmaxCrossEntropy(), opt, sched, **kw)


class Spy(nn.Module):
    """Identity layer recording the batch sizes (and sums) it sees."""

    def __init__(self):
        super().__init__()
        self.sizes, self.sums = [], []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        self.sums.append(float(np.abs(x).sum()))
        return x

    def backward(self, dout):
        return dout


# -- fitting -------------------------------------------------------------------------------------
def test_fit_reduces_loss_on_separable_problem():
    x, y = blobs()
    tr = make_trainer()
    hist = tr.fit(x, y, epochs=5)
    assert len(hist) == 5 and hist.epoch == [0, 1, 2, 3, 4]
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert hist["acc"][-1] > 0.9
    assert tr.evaluate(x, y)["acc"] > 0.95
    assert set(hist.history) == {"loss", "acc", "lr", "epoch_time"}  # no val_* without validation
    assert all(t > 0 for t in hist["epoch_time"])


def test_same_seed_gives_identical_history_and_weights():
    x, y = blobs()

    def run(seed):
        tr = make_trainer(model=mlp(seed=1), rng=seed, schedule=lambda o: StepLR(o, 1, 0.5))
        h = tr.fit(x, y, epochs=3, val_split=0.2)
        return {k: v for k, v in h.history.items() if k != "epoch_time"}, tr.model.state_dict()

    h1, w1 = run(7)
    h2, w2 = run(7)
    assert h1 == h2  # bit for bit (floats compared exactly)
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    h3, w3 = run(8)  # a different trainer seed changes the shuffling
    assert not all(np.array_equal(w1[k], w3[k]) for k in w1)


def test_each_epoch_is_a_fresh_permutation_with_last_partial_batch():
    n, bs = 70, 32
    x = np.zeros((n, 2), dtype=np.float32)
    x[:, 0] = np.arange(n)
    y = np.zeros(n, dtype=np.int64)

    class Record(Callback):
        def __init__(self):
            self.seen = {}

        def on_train_batch_begin(self, trainer, batch, xb, yb):
            self.seen.setdefault(trainer.epoch, []).append(xb[:, 0].astype(int).copy())

    rec = Record()
    model = nn.Sequential(nn.Linear(2, 2, rng=0))
    tr = make_trainer(model=model, lr=0.0, momentum=0.0, callbacks=[rec], batch_size=bs)
    tr.fit(x, y, epochs=3)
    assert tr.steps_per_epoch == 3
    orders = []
    for e in range(3):
        batches = rec.seen[e]
        assert [len(b) for b in batches] == [32, 32, 6]
        order = np.concatenate(batches)
        assert sorted(order.tolist()) == list(range(n))  # every sample exactly once
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])


def test_transform_gets_trainer_generator_and_only_touches_training():
    x, y = blobs(n=64)
    calls = []

    def flip_sign(xb, rng):
        assert isinstance(rng, np.random.Generator)
        calls.append(xb.shape[0])
        return xb * np.float32(rng.choice([-1.0, 1.0]))

    tr = make_trainer(transform=flip_sign, batch_size=16)
    assert calls == []
    tr.fit(x, y, epochs=2, val_data=(x, y))
    assert calls == [16] * 8  # training batches only, not validation
    tr.predict(x)
    tr.evaluate(x, y)
    assert len(calls) == 8

    def bad(xb, rng):
        return xb[:-1]

    with pytest.raises(ValueError, match="transform must return"):
        make_trainer(transform=bad).fit(x, y, epochs=1)


def test_callback_can_replace_the_batch_and_replacements_chain():
    x, y = blobs(n=40)
    spy = Spy()
    model = nn.Sequential(spy, nn.Linear(8, 3, rng=0))

    class Zero(Callback):
        def on_train_batch_begin(self, trainer, batch, xb, yb):
            return np.zeros_like(xb), np.zeros_like(yb)

    class Check(Callback):
        def __init__(self):
            self.sums = []

        def on_train_batch_begin(self, trainer, batch, xb, yb):
            self.sums.append(float(np.abs(xb).sum() + np.abs(yb).sum()))

    chk = Check()
    tr = make_trainer(model=model, callbacks=[Zero(), chk], batch_size=16)
    h = tr.fit(x, y, epochs=1)
    assert chk.sums == [0.0, 0.0, 0.0]
    assert spy.sums == [0.0, 0.0, 0.0]
    assert h["acc"][0] == 1.0  # all-zero labels, logits 0 from zero inputs -> argmax 0

    class Bad(Callback):
        def on_train_batch_begin(self, trainer, batch, xb, yb):
            return xb

    with pytest.raises(TypeError, match="tuple"):
        make_trainer(callbacks=[Bad()]).fit(x, y, epochs=1)


def test_train_accuracy_needs_no_extra_forward_pass():
    x, y = blobs(n=100)
    spy = Spy()
    model = nn.Sequential(spy, nn.Linear(8, 3, rng=0))
    tr = make_trainer(model=model, batch_size=32, eval_batch_size=50)
    tr.fit(x, y, epochs=2, val_data=(x[:60], y[:60]))
    # per epoch: 4 training batches + 2 validation batches (60 = 50 + 10), nothing else
    assert spy.sizes == [32, 32, 32, 4, 50, 10] * 2


def test_initial_epoch_runs_remaining_epochs_and_continues_history():
    x, y = blobs(n=64)
    tr = make_trainer()
    tr.fit(x, y, epochs=2)
    h = tr.fit(x, y, epochs=5, initial_epoch=2)
    assert h.epoch == [0, 1, 2, 3, 4] and len(h["loss"]) == 5
    h = tr.fit(x, y, epochs=4, initial_epoch=3)  # drops the records of epochs >= 3
    assert h.epoch == [0, 1, 2, 3]
    h = tr.fit(x, y, epochs=1)  # initial_epoch=0: a fresh history
    assert h.epoch == [0]


# -- validation split ------------------------------------------------------------------------------
def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(3), [300, 150, 50])
    tr_idx, va_idx = stratified_split(y, 0.2, 0)
    assert np.bincount(y[va_idx]).tolist() == [60, 30, 10]
    assert np.bincount(y[tr_idx]).tolist() == [240, 120, 40]
    assert np.intersect1d(tr_idx, va_idx).size == 0
    assert tr_idx.size + va_idx.size == y.size
    a = stratified_split(y, 0.2, 0)[1]
    b = stratified_split(y, 0.2, 1)[1]
    assert np.array_equal(a, va_idx) and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(y, 1.5, 0)


def test_fit_val_split_holds_out_a_stratified_part():
    x, y = blobs(n=300)
    tr = make_trainer()
    h = tr.fit(x, y, epochs=1, val_split=0.2)
    counts = np.bincount(y)
    expected_val = sum(int(round(0.2 * c)) for c in counts)
    assert tr.num_samples == 300 - expected_val
    assert not math.isnan(h["val_loss"][0]) and not math.isnan(h["val_acc"][0])
    with pytest.raises(ValueError, match="either val_data or val_split"):
        tr.fit(x, y, epochs=1, val_split=0.2, val_data=(x, y))


# -- inference -------------------------------------------------------------------------------------
def test_predict_batched_equals_unbatched_and_never_exceeds_batch_size():
    x, y = blobs(n=103)
    spy = Spy()
    model = nn.Sequential(spy, nn.Linear(8, 16, rng=0), nn.ReLU(), nn.Linear(16, 3, rng=1))
    tr = make_trainer(model=model)
    full = tr.predict_logits(x, batch_size=103)
    spy.sizes.clear()
    small = tr.predict_logits(x, batch_size=10)
    assert max(spy.sizes) == 10 and sum(spy.sizes) == 103
    np.testing.assert_allclose(small, full, rtol=1e-5, atol=1e-6)
    assert np.array_equal(tr.predict(x, batch_size=10), full.argmax(axis=1))
    proba = tr.predict_proba(x, batch_size=7)
    assert proba.shape == (103, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(proba.argmax(axis=1), full.argmax(axis=1))
    spy.sizes.clear()
    tr.predict(x)  # default eval batch size: max(batch_size, 256)
    assert spy.sizes == [103]


def test_evaluate_matches_manual_computation_and_uses_eval_mode():
    x, y = blobs(n=90)
    tr = make_trainer(model=mlp(dropout=0.5))
    tr.fit(x, y, epochs=1)
    ev = tr.evaluate(x, y, batch_size=16)
    tr.model.eval()
    logits = tr.model.forward(x)
    loss = SoftmaxCrossEntropy().forward(logits, y)
    assert ev["loss"] == pytest.approx(loss, rel=1e-5)
    assert ev["acc"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert tr.evaluate(x, y, batch_size=16) == ev  # dropout off: repeatable


def test_evaluate_and_predict_restore_each_modules_mode():
    x, y = blobs(n=50)
    tr = make_trainer()
    model = tr.model
    model.train()
    model[1].eval()  # a frozen-statistics BatchNorm inside a training model
    before = [m.training for _, m in model.named_modules()]
    tr.evaluate(x, y)
    tr.predict_proba(x)
    assert [m.training for _, m in model.named_modules()] == before
    model.eval()
    tr.predict(x)
    assert not any(m.training for _, m in model.named_modules())
    # the mode is restored even when the forward pass fails
    model.train()
    with pytest.raises(ValueError):
        tr.predict(np.zeros((4, 5), dtype=np.float32))
    assert all(m.training for _, m in model.named_modules())


# -- schedules, clipping, l2 -----------------------------------------------------------------------
def test_schedule_steps_per_epoch_and_per_batch():
    x, y = blobs(n=64)
    tr = make_trainer(schedule=lambda o: StepLR(o, step_size=1, gamma=0.5), batch_size=32)
    h = tr.fit(x, y, epochs=3)
    assert h["lr"] == [0.1, 0.05, 0.025]
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)
    tr = make_trainer(schedule=lambda o: StepLR(o, step_size=1, gamma=0.5), batch_size=32,
                      schedule_interval="step")
    h = tr.fit(x, y, epochs=2)
    assert h["lr"] == pytest.approx([0.1, 0.025])  # 2 batches per epoch
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 4)


def test_plateau_schedule_gets_val_loss_or_loss():
    x, y = blobs(n=64)

    class Recording(ReduceLROnPlateau):
        def __init__(self, opt):
            super().__init__(opt, patience=0)
            self.metrics = []

        def step(self, metric):
            self.metrics.append(metric)
            super().step(metric)

    tr = make_trainer(schedule=Recording)
    h = tr.fit(x, y, epochs=2, val_data=(x[:20], y[:20]))
    assert tr.schedule.metrics == h["val_loss"]
    tr = make_trainer(schedule=Recording)
    h = tr.fit(x, y, epochs=2)
    assert tr.schedule.metrics == h["loss"]
    with pytest.raises(ValueError, match="needs a metric"):
        make_trainer(schedule=Recording, schedule_interval="step")


def test_grad_clip_bounds_the_gradient_norm():
    x, y = blobs(n=64)
    norms = []

    class Norm(Callback):
        def on_train_batch_end(self, trainer, batch, logs):
            norms.append(math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                                       for p in trainer.model.parameters())))

    make_trainer(lr=1.0, callbacks=[Norm()], grad_clip=0.05).fit(x, y, epochs=1)
    assert max(norms) <= 0.05 * (1 + 1e-4)
    norms.clear()
    make_trainer(lr=1.0, callbacks=[Norm()]).fit(x, y, epochs=1)
    assert max(norms) > 0.05  # the bound is not trivially met


def test_l2_adds_reg_times_weight_to_weight_gradients_only():
    x, y = blobs(n=32)

    def one_step(l2):
        model = mlp(dropout=0.0, bn=False)
        tr = make_trainer(model=model, momentum=0.0, batch_size=32, l2=l2)
        tr.fit(x, y, epochs=1)
        return model

    w0 = mlp(dropout=0.0, bn=False).state_dict()
    a, b = one_step(0.0).state_dict(), one_step(0.5).state_dict()
    for name in a:
        if name.endswith("weight"):
            np.testing.assert_allclose(a[name] - b[name], 0.1 * 0.5 * w0[name], rtol=1e-4, atol=1e-6)
        else:
            assert np.array_equal(a[name], b[name])


# -- errors ----------------------------------------------------------------------------------------
def test_shape_errors_from_the_model_propagate():
    x, y = blobs(n=40)
    tr = make_trainer()
    bad = np.zeros((40, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="Linear expects input of shape"):
        tr.fit(bad, y, epochs=1)
    with pytest.raises(ValueError, match="Linear expects input of shape"):
        tr.fit(x, y, epochs=1, val_data=(bad, y))
    with pytest.raises(ValueError, match="Linear expects input of shape"):
        tr.evaluate(bad, y)
    with pytest.raises(ValueError, match="holds label 7"):
        tr.fit(x, np.full(40, 7), epochs=1)  # label out of range, from the loss


def test_bad_arguments_name_expected_and_given():
    x, y = blobs(n=40)
    tr = make_trainer()
    with pytest.raises(ValueError, match="expected length 40"):
        tr.fit(x, y[:-1], epochs=1)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        tr.fit(x.tolist(), y, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        tr.fit(x, y, epochs=-1)
    with pytest.raises(ValueError, match="val_split"):
        tr.fit(x, y, epochs=1, val_split=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        make_trainer(batch_size=0)
    with pytest.raises(ValueError, match="progress"):
        make_trainer(progress="loud")
    with pytest.raises(TypeError, match="Callback"):
        make_trainer(callbacks=[object()])
    with pytest.raises(ValueError, match="grad_clip"):
        make_trainer(grad_clip=-1.0)
    with pytest.raises(TypeError, match="Module"):
        Trainer("model", SoftmaxCrossEntropy(), tr.optimizer)


def test_regression_targets_give_nan_accuracy():
    r = np.random.default_rng(0)
    x = r.standard_normal((64, 4)).astype(np.float32)
    t = (x @ r.standard_normal((4, 2))).astype(np.float32)
    model = nn.Linear(4, 2, rng=0)
    tr = Trainer(model, MSE(), SGD(model.parameters(), lr=0.05), batch_size=16, progress=False)
    h = tr.fit(x, t, epochs=5)
    assert h["loss"][-1] < h["loss"][0]
    assert all(math.isnan(a) for a in h["acc"])
    assert math.isnan(tr.evaluate(x, t)["acc"])


def test_fit_on_two_worker_threads_matches_sequential():
    """Trainer(threads=2) runs the kernels' chunks on two workers (nnlite.parallel): the same
    seeded run gives the same history as threads=1, up to float32 summation order."""
    from nnlite import parallel
    from nnlite.fast import conv as conv_mod
    from nnlite.losses import SoftmaxCrossEntropy
    from nnlite.optim import SGD

    def run(threads):
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 6, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten(),
                              nn.Linear(6 * 4 * 4, 3, rng=rng))
        x = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 40)
        tr = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), batch_size=16,
                     rng=1, progress=False, threads=threads)
        hist = tr.fit(x, y, epochs=3, val_split=0.2)
        return hist, tr.evaluate(x, y)
    old = conv_mod.CHUNK_MIN_ROWS, conv_mod.CHUNK_BYTES
    conv_mod.CHUNK_MIN_ROWS, conv_mod.CHUNK_BYTES = 0, 1     # one image per chunk
    try:
        h1, e1 = run(1)
        h2, e2 = run(2)
    finally:
        conv_mod.CHUNK_MIN_ROWS, conv_mod.CHUNK_BYTES = old
    assert np.allclose(h1["loss"], h2["loss"], rtol=1e-4)
    assert np.allclose(h1["val_loss"], h2["val_loss"], rtol=1e-4)
    assert abs(e1["loss"] - e2["loss"]) < 1e-4 * max(1.0, e1["loss"])
    assert parallel.num_threads() == 1                         # the block ended with fit
    lin = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="threads"):
        Trainer(lin, SoftmaxCrossEntropy(), SGD(lin.parameters(), lr=0.1), threads=0)


# -- issue 12: schedules learn their length from the trainer -----------------------------------------
def test_step_schedule_learns_total_steps_from_fit_after_the_split():
    from nnlite.optim import CosineAnnealingLR, WarmupCosine
    x, y = blobs(n=300)
    seen = []

    class LR(Callback):
        def on_train_batch_end(self, trainer, batch, logs):
            seen.append(logs["lr"])

    tr = make_trainer(schedule=lambda o: WarmupCosine(o, warmup_steps=3, eta_min=0.0),
                      schedule_interval="step", callbacks=[LR()], momentum=0.0)
    assert tr.schedule.needs_total_steps and tr.schedule.total_steps is None
    tr.fit(x, y, epochs=3, val_split=0.2)  # 240 training samples / 32 -> 8 steps per epoch
    assert tr.steps_per_epoch == 8 and tr.total_steps == 24 and tr.schedule.total_steps == 24
    # the same lrs as a schedule sized by hand with the held-out part subtracted
    ref = WarmupCosine(SGD(mlp().parameters(), lr=0.1), warmup_steps=3, total_steps=24)
    assert seen == pytest.approx([ref.lr_at(t)[0] for t in range(24)])
    assert tr.schedule.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # ended the cosine
    # per-epoch interval: the length is the number of epochs
    tr = make_trainer(schedule=lambda o: CosineAnnealingLR(o, eta_min=0.01))
    tr.fit(x, y, epochs=4)
    assert tr.schedule.T_max == 4 and tr.schedule.get_last_lr()[0] == pytest.approx(0.01)
    # an explicit length is left alone; an unsized schedule outside a trainer says what to do
    tr = make_trainer(schedule=lambda o: WarmupCosine(o, 2, total_steps=100), schedule_interval="step")
    tr.fit(x, y, epochs=1)
    assert tr.schedule.total_steps == 100
    lone = WarmupCosine(SGD(mlp().parameters(), lr=0.1), warmup_steps=0)
    with pytest.raises(ValueError, match="total_steps is not known yet.*set_total_steps"):
        lone.step()
    with pytest.raises(ValueError, match="warmup_steps must be < total_steps"):
        WarmupCosine(SGD(mlp().parameters(), lr=0.1), warmup_steps=30).set_total_steps(24)


def test_resumed_fit_sizes_the_schedule_as_the_straight_run(tmp_path):
    from nnlite.optim import WarmupCosine
    from nnlite.train import load_checkpoint, save_checkpoint
    x, y = blobs(n=200)

    def build():
        return make_trainer(schedule=lambda o: WarmupCosine(o, warmup_steps=2),
                            schedule_interval="step", momentum=0.0)
    a = build()
    a.fit(x, y, epochs=4)
    class Killed(Callback):  # the run of 4 epochs dies after its second epoch
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = epoch == 1

    b = build()
    b.callbacks.append(Killed())
    b.fit(x, y, epochs=4)
    save_checkpoint(tmp_path / "c.npz", b.model, b.optimizer, b.schedule, b, epoch=2)
    c = build()
    info = load_checkpoint(tmp_path / "c.npz", c.model, c.optimizer, c.schedule, c)
    c.fit(x, y, epochs=4, initial_epoch=info["epoch"])
    wa, wc = a.model.state_dict(), c.model.state_dict()
    assert all(np.array_equal(wa[k], wc[k]) for k in wa)
    assert c.schedule.total_steps == a.schedule.total_steps == 4 * 7


# -- issue 13: fit's arguments -----------------------------------------------------------------------
def test_fit_refuses_missing_targets_and_an_initial_epoch_after_epochs():
    x, y = blobs(n=64)
    tr = make_trainer()
    with pytest.raises(TypeError, match="y must be a numpy.ndarray.*got None"):
        tr.fit(x, None, epochs=1)
    with pytest.raises(ValueError, match=r"initial_epoch=3 is after epochs=1.*nothing would be trained"):
        tr.fit(x, y, epochs=1, initial_epoch=3)
    assert len(tr.history) == 0
    assert len(tr.fit(x, y, epochs=2, initial_epoch=2)) == 0  # resuming a finished run: a no-op
    with pytest.raises(TypeError, match="epochs must be a non-negative int, got float"):
        tr.fit(x, y, epochs=2.0)


def test_callbacks_none_means_no_callbacks():
    x, y = blobs(n=64)
    tr = make_trainer(callbacks=None)
    assert tr.callbacks == []
    tr.fit(x, y, epochs=1)
    with pytest.raises(TypeError, match="callbacks must be a list of Callback or None, got int"):
        make_trainer(callbacks=5)
