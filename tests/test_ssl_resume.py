"""ssl.pretrain checkpoints: a run stopped and resumed equals the run done in one go, bit for bit;
damaged or foreign checkpoints are refused without changing anything."""
import numpy as np
import pytest

from nnlite import optim, ssl
from nnlite.train import CheckpointError, CheckpointMismatchError

N, BATCH, EPOCHS = 24, 8, 3                    # 3 steps per epoch, 9 steps in all
TIMES = ("epoch_time", "wall_time")            # wall-clock entries: the only ones allowed to differ


def _x():
    return np.random.default_rng(0).random((N, 3, 8, 8)).astype(np.float32)


def _build(name, temperature=0.5, byol_steps=None):
    enc, proj = ssl.small_cnn((4, 8), rng=0), ssl.mlp_head(8, 16, 8, rng=1)
    if name == "simclr":
        method = ssl.SimCLR(enc, proj, temperature)
    else:
        method = ssl.BYOL(enc, proj, ssl.mlp_head(8, 16, 8, rng=2), base_tau=0.9, total_steps=byol_steps)
    opt = optim.AdamW(method.parameters(), lr=1e-2, weight_decay=1e-3)
    sched = optim.WarmupCosine(opt, warmup_steps=2, total_steps=EPOCHS * N // BATCH)
    return method, opt, sched, np.random.default_rng(5)


def _train(objs, **kw):
    method, opt, sched, rng = objs
    kw.setdefault("epochs", EPOCHS)
    return ssl.pretrain(method, _x(), batch_size=BATCH, optimizer=opt, augment=ssl.simclr_cifar(), rng=rng,
                        schedule=sched, **kw)


def _state(objs, history=None):
    """Everything a resume must reproduce, as plain values."""
    method, opt, sched, rng = objs
    mods = {f"{name}.{k}": v for name, m in method.state_modules().items() for k, v in m.state_dict().items()}
    out = {"modules": mods, "optim": opt.state_dict(), "sched": sched.state_dict(),
           "rng": rng.bit_generator.state, "method": method.get_state()}
    if history is not None:
        out["history"] = {k: v for k, v in history.items() if k not in TIMES}
    return out


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict) and a[key] and isinstance(next(iter(a[key].values())), np.ndarray):
            assert a[key].keys() == b[key].keys(), key
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name], b[key][name], err_msg=f"{key} {name}")
                assert a[key][name].dtype == b[key][name].dtype
        else:
            assert a[key] == b[key], key


class _Crash(Exception):
    pass


def _crash_after(epoch):
    def callback(e, logs):
        if e == epoch:
            raise _Crash
    return callback


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_resume_after_a_crash_and_inside_an_epoch_is_bit_identical(name, tmp_path):
    ref = _build(name)
    ref_state = _state(ref, _train(ref))
    assert ref_state["history"]["total_steps"] == 9 and len(ref_state["history"]["loss"]) == EPOCHS

    # killed while epoch 1 ends (after the checkpoint of epoch 0): resume redoes epoch 1 and goes on
    path = tmp_path / "run.npz"
    with pytest.raises(_Crash):
        _train(_build(name), checkpoint=path, on_epoch_end=_crash_after(1))
    objs = _build(name)
    _assert_identical(_state(objs, _train(objs, checkpoint=path, resume=True)), ref_state)

    # stopped by the time budget after the first step (inside epoch 0), resumed from a 2nd file
    path2 = tmp_path / "budget.npz"
    h = _train(_build(name), checkpoint=path2, time_budget=0.0)
    assert h["stopped"] == "time_budget" and h["total_steps"] == 1 and h["steps"] == [1]
    objs = _build(name)
    _assert_identical(_state(objs, _train(objs, resume=path2)), ref_state)


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_k_epochs_then_resume_for_the_rest_equals_one_go(name, tmp_path):
    """epochs=1, then epochs=3 with resume: BYOL's tau horizon fixed (total_steps) like the schedule."""
    ref = _build(name, byol_steps=9)
    ref_state = _state(ref, _train(ref))
    path = tmp_path / "run.npz"
    h1 = _train(_build(name, byol_steps=9), epochs=1, checkpoint=path)
    assert h1["total_steps"] == 3 and h1["stopped"] == "epochs"
    objs = _build(name, byol_steps=9)
    h = _train(objs, checkpoint=path, resume=True)
    _assert_identical(_state(objs, h), ref_state)
    if name == "byol":
        assert objs[0].tau == ssl.cosine_tau(9, 9, 0.9) == 1.0
    objs = _build(name, byol_steps=9)          # resuming the finished run: no step, the same state
    _assert_identical(_state(objs, _train(objs, resume=path)), ref_state)


def _flip_byte(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_checkpoint_is_refused_and_nothing_changes(damage, tmp_path):
    path = tmp_path / "run.npz"
    _train(_build("byol"), epochs=1, checkpoint=path)
    if damage == "flip":
        _flip_byte(path, len(path.read_bytes()) // 2)
    else:
        path.write_bytes(path.read_bytes()[:-100])
    objs = _build("byol")
    before = _state(objs)
    with pytest.raises(CheckpointError, match="damaged"):
        _train(objs, checkpoint=path, resume=True)
    _assert_identical(_state(objs), before)


def test_foreign_checkpoints_are_refused_and_nothing_changes(tmp_path):
    path = tmp_path / "run.npz"
    _train(_build("simclr"), epochs=1, checkpoint=path)
    cases = [(dict(name="simclr", temperature=0.1), {}, "temperature"),       # other hyper-parameter
             (dict(name="byol"), {}, "predictor"),                             # other method / modules
             (dict(name="simclr"), {"batch_size": 4}, "batch_size=8")]         # other data order
    for build, kw, match in cases:
        objs = _build(**build)
        before = _state(objs)
        method, opt, sched, rng = objs
        with pytest.raises(CheckpointMismatchError, match=match):
            ssl.pretrain(method, _x(), EPOCHS, kw.get("batch_size", BATCH), opt, ssl.simclr_cifar(), rng,
                         schedule=sched, resume=path)
        _assert_identical(_state(objs), before)
    method, opt, _, rng = _build("simclr")
    _train((method, opt, None, rng), epochs=1, checkpoint=tmp_path / "no_schedule.npz")
    objs = _build("simclr")
    before = _state(objs)
    with pytest.raises(CheckpointMismatchError, match="no schedule state"):    # saved without one
        _train(objs, resume=tmp_path / "no_schedule.npz")
    _assert_identical(_state(objs), before)


def test_resume_arguments(tmp_path):
    objs = _build("simclr")
    with pytest.raises(ValueError, match="checkpoint=None"):
        _train(objs, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        _train(objs, resume=tmp_path / "missing.npz")
    h = _train(objs, epochs=1, checkpoint=tmp_path / "new.npz", resume=True)     # no file yet: afresh
    assert h["total_steps"] == 3 and (tmp_path / "new.npz").is_file()
    with pytest.raises(TypeError, match="state_modules"):
        class Plain:
            encoder = None
        ssl.pretrain(Plain(), _x(), 1, BATCH, objs[1], ssl.simclr_cifar(), 0, checkpoint=tmp_path / "p.npz")


def test_intact_file_with_bad_or_no_loop_state_is_refused(tmp_path):
    from nnlite.ssl.checkpoint import method_modules
    from nnlite.train import read_checkpoint, save_checkpoint
    path = tmp_path / "run.npz"
    trained = _build("simclr")
    _train(trained, epochs=1, checkpoint=path)
    extra = read_checkpoint(path)[0]["extra"]
    bad_step = {"ssl_pretrain": {**extra["ssl_pretrain"], "step": 7}}
    bad_rng = {"ssl_pretrain": {**extra["ssl_pretrain"], "rng": {"bit_generator": "PCG64", "state": 1}}}
    for name, ext, error, match in [("step", bad_step, CheckpointError, "ssl_pretrain.step"),
                                    ("rng", bad_rng, CheckpointError, "ssl_pretrain.rng"),
                                    ("none", None, CheckpointMismatchError, "not written by nnlite.ssl.pretrain")]:
        p = tmp_path / f"{name}.npz"
        save_checkpoint(p, method_modules(trained[0]), trained[1], trained[2], epoch=1, extra=ext)
        objs = _build("simclr")
        before = _state(objs)
        with pytest.raises(error, match=match):
            _train(objs, resume=p)
        _assert_identical(_state(objs), before)
