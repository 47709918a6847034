"""Tests of nnlite.train.checkpoint: format, exact resume, atomic writes, damage detection,
architecture checks."""
import json
import re
import os

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.optim import SGD, Adam, StepLR
from nnlite.train import (CheckpointError, CheckpointMismatchError, Trainer, load_checkpoint,
                          read_checkpoint, save_checkpoint)


def blobs(n=200, d=6, c=3, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, c, n).astype(np.int64)
    x = (r.standard_normal((c, d))[y] * 2 + r.standard_normal((n, d))).astype(np.float32)
    return x, y


def mlp(seed=1, d=6, hidden=12, c=3):
    r = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(d, hidden, rng=r), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Dropout(0.3, rng=np.random.default_rng(seed + 100)),
                         nn.Linear(hidden, c, rng=r))


def setup(seed=1, trainer_seed=3):
    """Freshly built model, SGD with momentum, StepLR and a shuffling trainer."""
    model = mlp(seed)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=1, gamma=0.7)
    tr = Trainer(model, SoftmaxCrossEntropy(), opt, sched, batch_size=32, rng=trainer_seed,
                 progress=False)
    return model, opt, sched, tr


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture
def trained(tmp_path):
    x, y = blobs()
    model, opt, sched, tr = setup()
    tr.fit(x, y, epochs=2)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, sched, tr, epoch=2, extra={"note": "hi", "n": [1, 2]})
    return path, model, opt, sched, tr


# -- round trip and format -------------------------------------------------------------------------
def test_round_trip_restores_everything(trained):
    path, model, opt, sched, tr = trained
    m2, o2, s2, t2 = setup(seed=50, trainer_seed=60)
    info = load_checkpoint(path, m2, o2, s2, t2)
    assert info["epoch"] == 2 and info["extra"] == {"note": "hi", "n": [1, 2]}
    assert info["history"]["loss"] == tr.history["loss"] and t2.history.epoch == [0, 1]
    assert same(weights(m2), weights(model))
    so, s2o = opt.state_dict(), o2.state_dict()
    assert same(so, s2o)
    assert s2.get_last_lr() == sched.get_last_lr() and o2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    # every Generator continues identically
    assert t2.rng.random() == tr.rng.random() and t2.split_seed == tr.split_seed
    assert np.array_equal(m2[3].rng.random(5), model[3].rng.random(5))


def test_file_is_plain_npz_with_json_meta_and_checksum(trained):
    path = trained[0]
    with np.load(path, allow_pickle=False) as z:
        files = z.files
        assert all(not z[k].dtype.hasobject for k in files)
        meta = json.loads(str(z["__meta__"][()]))
        sha = str(z["__sha256__"][()])
    assert any(k.startswith("model/0.weight") for k in files)
    assert "model/1.running_mean" in files
    assert any(k.startswith("optim/state.") for k in files)
    assert "sched/last_epoch" in files
    assert meta["version"] == 2 and len(sha) == 64 and meta["epoch"] == 2
    assert set(meta["module_rngs"]) == {"3"}
    assert meta["module_rngs"]["3"]["bit_generator"] == "PCG64"
    assert set(meta["keys"]) == set(files) - {"__meta__", "__sha256__"}
    read_meta, arrays = read_checkpoint(path)
    assert list(arrays) == meta["keys"]


def test_h5_round_trip(tmp_path):
    x, y = blobs(n=64)
    model, opt, sched, tr = setup()
    tr.fit(x, y, epochs=1)
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, model, opt, sched, tr, epoch=1)
    with open(path, "rb") as f:
        assert f.read(4) == b"\x89HDF"
    m2, o2, s2, t2 = setup(seed=9)
    info = load_checkpoint(path, m2, o2, s2, t2)
    assert info["epoch"] == 1 and same(weights(m2), weights(model))
    assert same(o2.state_dict(), opt.state_dict())
    # flipping bytes inside the data is caught by the checksum
    data = bytearray(path.read_bytes())
    w = model[0].weight.data.tobytes()
    at = bytes(data).find(w)
    assert at > 0
    data[at + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    before = weights(m2)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path, m2, o2, s2, t2)
    assert same(weights(m2), before)


# -- exact resume ------------------------------------------------------------------------------------
def test_resume_gives_identical_weights(tmp_path):
    x, y = blobs()
    model, opt, sched, tr = setup()
    h_straight = tr.fit(x, y, epochs=4, val_split=0.2)
    straight = weights(model)

    m1, o1, s1, t1 = setup()
    t1.fit(x, y, epochs=2, val_split=0.2)
    path = tmp_path / "half.npz"
    save_checkpoint(path, m1, o1, s1, t1, epoch=2)
    del m1, o1, s1, t1

    m2, o2, s2, t2 = setup()
    info = load_checkpoint(path, m2, o2, s2, t2)
    h_resumed = t2.fit(x, y, epochs=4, val_split=0.2, initial_epoch=info["epoch"])
    assert same(weights(m2), straight)
    for key in ("loss", "acc", "val_loss", "val_acc", "lr"):
        assert h_resumed[key] == h_straight[key]
    assert h_resumed.epoch == [0, 1, 2, 3]

    # the test is sensitive: restoring only the weights and optimizer (not the RNG streams
    # and the schedule) does not reproduce the run
    m3, o3, s3, t3 = setup()
    load_checkpoint(path, m3, o3, strict=False)
    t3.fit(x, y, epochs=4, val_split=0.2, initial_epoch=2)
    assert not same(weights(m3), straight)


# -- atomic writes ---------------------------------------------------------------------------------
def test_failed_write_leaves_previous_checkpoint_and_no_temp_file(trained, monkeypatch):
    path, model, opt, sched, tr = trained
    original = path.read_bytes()
    real_savez = np.savez

    def broken_savez(file, *args, **kw):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", broken_savez)
    model[0].weight.data += 1.0
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, sched, tr, epoch=3)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == original
    assert os.listdir(path.parent) == ["ckpt.npz"]
    # a failure before writing (non-serializable extra) also leaves everything in place
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(path, model, extra={"f": object()})
    assert path.read_bytes() == original and os.listdir(path.parent) == ["ckpt.npz"]


# -- damaged files -----------------------------------------------------------------------------------
def _fresh_with_snapshot():
    m, o, s, t = setup(seed=77, trainer_seed=78)
    x, y = blobs(n=64)
    t.fit(x, y, epochs=1)
    return (m, o, s, t), (weights(m), o.state_dict(), s.state_dict(), t.rng.bit_generator.state,
                          m[3].rng.bit_generator.state)


def _unchanged(objs, snap):
    m, o, s, t = objs
    return (same(weights(m), snap[0]) and same(o.state_dict(), snap[1])
            and same(s.state_dict(), snap[2]) and t.rng.bit_generator.state == snap[3]
            and m[3].rng.bit_generator.state == snap[4])


def test_truncated_file_raises_checkpoint_error_and_changes_nothing(trained):
    path = trained[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    objs, snap = _fresh_with_snapshot()
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_checkpoint(path, *objs)
    assert isinstance(err.value, ValueError)
    assert _unchanged(objs, snap)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7])
def test_flipped_bytes_raise_checkpoint_error_and_change_nothing(trained, where):
    path = trained[0]
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    for k in range(i, i + 4):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    objs, snap = _fresh_with_snapshot()
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path, *objs)
    assert _unchanged(objs, snap)


def test_checksum_catches_changed_arrays_even_with_a_valid_zip(tmp_path, trained):
    path = trained[0]
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["model/0.weight"] = arrays["model/0.weight"] + 1  # rewritten with valid zip CRCs
    forged = tmp_path / "forged.npz"
    np.savez(forged, **arrays)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(forged, mlp())


def test_not_a_checkpoint(tmp_path):
    for name, content in [("empty.npz", b""), ("text.npz", b"hello world"),
                          ("plain.npz", None)]:
        p = tmp_path / name
        if content is None:
            np.savez(p, a=np.ones(3))
        else:
            p.write_bytes(content)
        with pytest.raises(CheckpointError):
            load_checkpoint(p, mlp())
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz", mlp())
    with pytest.raises(TypeError, match="path"):
        save_checkpoint(3.5, mlp())


# -- compatibility -----------------------------------------------------------------------------------
def test_architecture_mismatch_lists_names_and_changes_nothing(trained):
    path = trained[0]
    other = nn.Sequential(nn.Linear(6, 12, rng=0), nn.ReLU(), nn.Linear(12, 3, rng=1))
    before = weights(other)
    with pytest.raises(CheckpointMismatchError, match=r"missing.*'2\.weight'.*unexpected.*'1\.running_mean'"):
        load_checkpoint(path, other)
    assert same(weights(other), before)

    wide = mlp(hidden=16)
    before = weights(wide)
    with pytest.raises(CheckpointMismatchError,
                       match=r"shape mismatch for '0\.weight': model has \(16, 6\), checkpoint has \(12, 6\)"):
        load_checkpoint(path, wide)
    assert same(weights(wide), before)

    doubles = mlp().astype(np.float64)
    with pytest.raises(CheckpointMismatchError, match="dtype mismatch for '0.weight'"):
        load_checkpoint(path, doubles)


def test_non_strict_loads_the_matching_part(trained):
    path, model = trained[0], trained[1]
    smaller = nn.Sequential(nn.Linear(6, 12, rng=0))
    info = load_checkpoint(path, smaller, strict=False)
    assert np.array_equal(smaller[0].weight.data, model[0].weight.data)
    assert "4.weight" in info["unexpected"] and info["missing"] == []


def test_optimizer_mismatch_changes_nothing(trained):
    path = trained[0]
    m = mlp(seed=5)
    before = weights(m)
    adam = Adam(m.parameters())
    with pytest.raises(CheckpointMismatchError, match="SGD"):
        load_checkpoint(path, m, adam)
    plain = SGD(m.parameters()[:2], lr=0.3)  # other parameter list: the groups do not fit
    x, y = blobs(n=32)
    Trainer(m, SoftmaxCrossEntropy(), plain, progress=False).fit(x, y, epochs=1)
    before, opt_before = weights(m), plain.state_dict()
    with pytest.raises(CheckpointMismatchError, match="optimizer.*group0.params"):
        load_checkpoint(path, m, plain)
    assert same(weights(m), before) and same(plain.state_dict(), opt_before)
    # a checkpoint without optimizer state cannot fill an optimizer in strict mode
    bare = path.parent / "bare.npz"
    save_checkpoint(bare, m)
    with pytest.raises(CheckpointMismatchError, match="no optimizer state"):
        load_checkpoint(bare, m, plain)
    load_checkpoint(bare, m, plain, strict=False)


def test_schedule_failure_rolls_back_the_already_loaded_optimizer(tmp_path):
    import nnlite.optim as optim

    class StepLR(optim.StepLR):  # same class name, broken state
        def state_dict(self):
            d = super().state_dict()
            d["last_lr"] = np.zeros(5)
            return d

    x, y = blobs(n=64)
    model, opt, _, tr = setup()
    tr.fit(x, y, epochs=1)
    path = tmp_path / "bad_sched.npz"
    save_checkpoint(path, model, opt, StepLR(opt, 1), epoch=1)
    m2, o2, s2, _ = setup(seed=4)
    Trainer(m2, SoftmaxCrossEntropy(), o2, progress=False).fit(x, y, epochs=1)
    snap_w, snap_o, snap_s = weights(m2), o2.state_dict(), s2.state_dict()
    with pytest.raises(CheckpointMismatchError, match="last_lr"):
        load_checkpoint(path, m2, o2, s2)
    assert same(weights(m2), snap_w) and same(o2.state_dict(), snap_o)
    assert same(s2.state_dict(), snap_s)


# -- issue 13: every byte of the metadata is covered by the checksum --------------------------------
from nnlite.train import checkpoint as ckpt_mod  # noqa: E402


def _meta_text_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return str(z["__meta__"][()])


def _rewrite_npz(src, dst, meta_text):
    """Rewrite an npz with another ``__meta__`` text: the zip CRCs are valid again (as if a
    tool had edited the file), only nnlite's checksum can tell."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__meta__"] = np.array(meta_text)
    np.savez(dst, **arrays)


def test_npz_metadata_bit_flips_are_caught_by_the_checksum(trained, tmp_path):
    path = trained[0]
    text = _meta_text_npz(path)
    objs, snap = _fresh_with_snapshot()
    # targeted edits that stay valid JSON: epoch, a history value, the split seed, an RNG state
    meta = json.loads(text)
    for field, edit in [("epoch", lambda m: m.__setitem__("epoch", 1)),
                        ("history", lambda m: m["history"]["loss"].__setitem__(0, 0.001)),
                        ("split_seed", lambda m: m["trainer"].__setitem__("split_seed", 7)),
                        ("rng", lambda m: m["module_rngs"]["3"]["state"].__setitem__("state", 5))]:
        forged = json.loads(text)
        edit(forged)
        assert forged != meta
        bad = tmp_path / f"forged-{field}.npz"
        _rewrite_npz(path, bad, json.dumps(forged))
        with pytest.raises(CheckpointError, match="SHA-256"):
            load_checkpoint(bad, *objs)
        assert _unchanged(objs, snap)
    # single bit flips all over the metadata text (zip CRC recomputed)
    raw = text.encode("utf-8")
    positions = range(0, len(raw), max(1, len(raw) // 60))
    for i in positions:
        flipped = bytearray(raw)
        flipped[i] ^= 1 << (i % 7)
        try:
            new_text = flipped.decode("utf-8")
        except UnicodeDecodeError:
            continue
        bad = tmp_path / "flip.npz"
        _rewrite_npz(path, bad, new_text)
        with pytest.raises(CheckpointError):
            load_checkpoint(bad, *objs)
    assert _unchanged(objs, snap)
    # the raw file too: a flip inside the stored metadata member (caught by zip CRC or checksum)
    data = path.read_bytes()
    at = data.find('"epoch"'.encode("utf-32-le"))  # npz stores unicode as UTF-32
    assert at > 0
    for k in range(at, at + 40, 3):
        flipped = bytearray(data)
        flipped[k] ^= 0x02
        bad = tmp_path / "rawflip.npz"
        bad.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError):
            load_checkpoint(bad, *objs)
    assert _unchanged(objs, snap)


def test_h5_metadata_bit_flips_are_caught_by_the_checksum(tmp_path):
    pytest.importorskip("h5py")
    x, y = blobs(n=64)
    model, opt, sched, tr = setup()
    tr.fit(x, y, epochs=2)
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, model, opt, sched, tr, epoch=2)
    data = path.read_bytes()
    meta_text = json.dumps(read_checkpoint(path)[0]).encode()
    start = data.find(b'{"format"')
    assert start > 0, "the metadata JSON is stored as one string in the HDF5 file"
    end = data.find(b"}", start + len(meta_text) - 20) + 1
    objs, snap = _fresh_with_snapshot()
    checked = 0
    for i in range(start, end, max(1, (end - start) // 80)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << (i % 7)
        bad = tmp_path / "flip.h5"
        bad.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError):
            load_checkpoint(bad, *objs)
        checked += 1
    assert checked >= 40 and _unchanged(objs, snap)
    # the targeted flip of the issue: epoch 2 -> 3 ('2' ^ 1 == '3'), still valid JSON
    at = data.find(b'"epoch": 2')
    flipped = bytearray(data)
    flipped[at + len(b'"epoch": ')] ^= 0x01
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(bad, *objs)
    assert _unchanged(objs, snap)


def test_version_1_files_are_still_read(tmp_path):
    """Files of the previous format (checksum over the arrays, inside the metadata) load."""
    x, y = blobs(n=64)
    model, opt, sched, tr = setup()
    tr.fit(x, y, epochs=1)
    meta, arrays = read_checkpoint(ckpt_mod.save_checkpoint(tmp_path / "v2.npz", model, opt,
                                                            sched, tr, epoch=1))
    meta = dict(meta, version=1, sha256=ckpt_mod._digest(arrays))
    meta.pop("callbacks")
    v1 = tmp_path / "v1.npz"
    np.savez(v1, **arrays, __meta__=np.array(json.dumps(meta)))
    m2, o2, s2, t2 = setup(seed=8)
    assert load_checkpoint(v1, m2, o2, s2, t2)["epoch"] == 1
    assert same(weights(m2), weights(model))
    meta["sha256"] = "0" * 64
    np.savez(v1, **arrays, __meta__=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(v1, m2)
    meta["version"] = 2  # a v2 file must carry its __sha256__ entry
    np.savez(v1, **arrays, __meta__=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match="__sha256__"):
        load_checkpoint(v1, m2)


# -- issue 13: validate everything, then apply everything --------------------------------------------
def _resign(src, dst, edit):
    """A checkpoint with an edited metadata field and a valid checksum (as a buggy writer or a
    hand edit would produce): only the field checks can refuse it."""
    meta, arrays = read_checkpoint(src)
    meta = json.loads(json.dumps(meta))
    meta.pop("keys")
    edit(meta)
    ckpt_mod._write_raw(str(dst), meta, arrays)
    return dst


@pytest.mark.parametrize("field, edit", [
    ("epoch", lambda m: m.__setitem__("epoch", "two")),
    ("epoch", lambda m: m.__setitem__("epoch", -5)),
    ("epoch", lambda m: m.__setitem__("epoch", True)),
    ("history.loss[1]", lambda m: m["history"]["loss"].__setitem__(1, "x")),
    ("history.acc", lambda m: m["history"].__setitem__("acc", 3)),
    ("history", lambda m: m["history"]["loss"].append(1.0)),  # columns of different lengths
    ("trainer.split_seed", lambda m: m["trainer"].__setitem__("split_seed", "abc")),
    ("trainer.split_seed", lambda m: m["trainer"].__setitem__("split_seed", 1.5)),
    ("trainer.split_seed", lambda m: m["trainer"].__setitem__("split_seed", -1)),
    ("trainer.rng", lambda m: m["trainer"].__setitem__("rng", 5)),
    ("has_optimizer", lambda m: m.__setitem__("has_optimizer", "yes")),
    ("extra", lambda m: m.__setitem__("extra", [1, 2])),
    ("module_rngs", lambda m: m.__setitem__("module_rngs", [])),
])
def test_malformed_field_names_the_field_and_changes_nothing(trained, tmp_path, field, edit):
    bad = _resign(trained[0], tmp_path / "bad.npz", edit)
    objs, snap = _fresh_with_snapshot()
    history_before = objs[3].history.to_dict()
    with pytest.raises(CheckpointError, match=re.escape(f"field '{field}")) as err:
        load_checkpoint(bad, *objs)
    assert isinstance(err.value, ValueError)
    assert _unchanged(objs, snap) and objs[3].history.to_dict() == history_before


def test_bad_trainer_rng_state_is_checked_before_the_model_is_written(trained, tmp_path):
    def edit(m):
        m["trainer"]["rng"]["state"]["state"] = "not a number"
    bad = _resign(trained[0], tmp_path / "bad.npz", edit)
    objs, snap = _fresh_with_snapshot()
    with pytest.raises(CheckpointError, match="trainer"):
        load_checkpoint(bad, *objs)
    assert _unchanged(objs, snap)


def test_bad_optimizer_state_is_checked_before_anything_is_written(trained, tmp_path):
    meta, arrays = read_checkpoint(trained[0])
    key = next(k for k in arrays if k.startswith("optim/state."))
    arrays[key] = arrays[key][:1]  # wrong shape
    meta = dict(meta)
    meta.pop("keys")
    bad = tmp_path / "bad.npz"
    ckpt_mod._write_raw(str(bad), meta, arrays)
    objs, snap = _fresh_with_snapshot()
    with pytest.raises(CheckpointMismatchError, match="optimizer.*expected shape"):
        load_checkpoint(bad, *objs)
    assert _unchanged(objs, snap)


def test_optimizer_and_schedule_check_state_dict_change_nothing(trained):
    _, _, opt, sched, _ = trained
    o_state, s_state = opt.state_dict(), sched.state_dict()
    opt.check_state_dict(o_state)
    sched.check_state_dict(s_state)
    bad = dict(o_state)
    bad["group0.lr"] = np.array(-1.0)
    with pytest.raises(ValueError, match="lr"):
        opt.check_state_dict(bad)
    with pytest.raises(ValueError, match="last_epoch"):
        sched.check_state_dict({k: v for k, v in s_state.items() if k != "last_epoch"})
    assert same(opt.state_dict(), o_state) and same(sched.state_dict(), s_state)


def test_zip_whose_metadata_member_is_not_npy_gives_checkpoint_error(trained, tmp_path):
    import zipfile
    bad = tmp_path / "notnpy.npz"
    with zipfile.ZipFile(trained[0]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            if info.filename == "__meta__.npy":
                dst.writestr("__meta__", b'{"format": "nnlite-checkpoint"}')
            else:
                dst.writestr(info, src.read(info))
    with pytest.raises(CheckpointError, match="not npy data"):
        load_checkpoint(bad, mlp())


# -- issue 13: orphan temporary files of killed saves are cleaned up --------------------------------
def test_next_save_removes_orphan_temp_files_of_killed_saves(trained):
    import subprocess
    import sys
    import time
    path, model, opt, sched, tr = trained
    d = path.parent
    # a save killed mid-write: a child process writes through atomic_open and is SIGKILLed
    code = ("import os, signal, sys\nfrom nnlite._io import atomic_open\n"
            "with atomic_open(sys.argv[1]) as f:\n    f.write(b'PK half')\n"
            "    f.flush()\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=os.getcwd())
    assert proc.returncode != 0
    killed = [n for n in os.listdir(d) if n.endswith(".tmp")]
    assert len(killed) == 1 and killed[0].startswith(".ckpt.npz.")
    old_style = d / ".ckpt.npz.0123456789ab.tmp"      # name without a pid, an hour old
    old_style.write_bytes(b"x")
    os.utime(old_style, (time.time() - 7200, time.time() - 7200))
    fresh_old_style = d / ".ckpt.npz.ba9876543210.tmp"  # maybe a live writer of an old nnlite
    fresh_old_style.write_bytes(b"x")
    live = d / f".ckpt.npz.00000000abcd.{os.getppid()}.tmp"  # a running process's write
    live.write_bytes(b"x")
    other = d / ".other.npz.0123456789ab.1.tmp"           # another path's: not ours to judge
    other.write_bytes(b"x")
    save_checkpoint(path, model, opt, sched, tr, epoch=2)
    left = sorted(n for n in os.listdir(d) if n.endswith(".tmp"))
    assert left == sorted([fresh_old_style.name, live.name, other.name])
    assert load_checkpoint(path, mlp(seed=3))["epoch"] == 2


def test_atomic_open_text_mode_is_utf8_whatever_the_locale(tmp_path):
    """Reports hold non-ASCII text (<=, ->, accents): mode "w" writes UTF-8 even in a process whose
    locale encoding is ASCII (C locale, no coercion, no UTF-8 mode)."""
    import subprocess
    import sys

    path = tmp_path / "r.md"
    code = ("import sys, locale\nfrom nnlite._io import atomic_open\n"
            "enc = locale.getpreferredencoding(False)\n"
            "assert enc.lower() in ('ascii', 'ansi_x3.4-1968'), enc\n"
            "with atomic_open(sys.argv[1], 'w') as f:\n    f.write('MSE \\u2264 0.009 \\u2192 met, caf\\xe9')\n")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    p = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert path.read_bytes().decode("utf-8") == "MSE \u2264 0.009 \u2192 met, caf\xe9"
