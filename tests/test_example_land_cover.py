"""The land-cover transfer example: the HDF5 layout it reads, and its --quick run end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from nnlite.data import load_hdf5  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
needs_data = pytest.mark.skipif(not os.environ.get("NNLITE_DATA"),
                                reason="needs the real CIFAR-10 / Tiny ImageNet files ($NNLITE_DATA)")


def write_report_layout(path, n_train=18, n_val=9, one_hot=True):
    """earth_data.h5 as the report describes it: X_train (N, 64, 64, 3) uint8 + labels."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("val", n_val)):
            y = np.arange(n) % 9
            f.create_dataset(f"X_{split}", data=rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
            f.create_dataset(f"y_{split}", data=np.eye(9, dtype=np.float32)[y] if one_hot else y)


def test_hdf5_loader_reads_the_report_layout(tmp_path):
    write_report_layout(tmp_path / "earth_data.h5")
    ds = load_hdf5(tmp_path / "earth_data.h5", "X_train", "y_train", "X_val", "y_val")
    assert ds.x_train.shape == (18, 3, 64, 64) and ds.x_train.dtype == np.float32
    assert ds.x_test.shape == (9, 3, 64, 64)
    np.testing.assert_array_equal(ds.y_train, np.arange(18) % 9)
    with h5py.File(tmp_path / "earth_data.h5", "r") as f:
        np.testing.assert_allclose(ds.x_train[3].transpose(1, 2, 0), f["X_train"][3] / 255.0, atol=1e-6)
    with pytest.raises(KeyError, match="X_test"):
        load_hdf5(tmp_path / "earth_data.h5", "X_train", "y_train", "X_test", "y_test")


@needs_data
def test_quick_run_writes_report_in_order(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the other example tests: the small GEMMs outside
    # Trainer.fit's one-BLAS-thread block (feature extraction, heads) gain nothing from more BLAS threads
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "land_cover_transfer.py"), "--quick",
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    text = (out / "report.md").read_text()
    heads = ["## 1. Data", "## 2. Q1", "## 3. Q2", "## 4. Q3", "## 5. Wall times"]
    pos = [text.index(h) for h in heads]
    assert pos == sorted(pos)
    assert "Smoke test" in text and "Trainable params" in text
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["q2_summary"]) == {"frozen", "block5", "block4+5", "progressive", "scratch"}
    assert {"majority vote", "soft vote", "weighted soft vote", "stacking"} <= set(m["q3"])
    assert m["architectures"] == ["vgg", "resnet", "mobilenet"]           # the report's three, by default
    assert set(m["q2_architectures"]) == {"vgg", "resnet", "mobilenet"}
    assert {"majority vote", "stacking"} <= set(m["q3_variants"])
    for arch in ("vgg", "resnet", "mobilenet"):
        assert f"Model summary: {arch}" in text
        assert list(out.glob(f"source_{arch}_*.npz")), arch                  # each source model is cached
    assert set(m["q2_paired"]) == {"block5 - frozen", "block4+5 - frozen", "progressive - frozen",
                                   "frozen - scratch"}
    for f in ("variants.png", "variants_paired.png", "architectures.png", "history_progressive.png",
              "lr_progressive.png", "features_block5.h5", "target_standin.h5"):
        assert (out / f).exists(), f
    with h5py.File(out / "target_standin.h5", "r") as f:
        assert f["X_train"].shape[1:] == (64, 64, 3) and f["X_train"].dtype == np.uint8


@needs_data
def test_quick_run_with_folds_and_decay(tmp_path):
    """--folds 2: the 54 + 108 stand-in images are pooled and seed 0 validates on fold 0 (81 images);
    --decay-every 1 halves the lrs after every epoch."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "land_cover_transfer.py"), "--quick",
                        "--architectures", "vgg", "--folds", "2", "--decay-every", "1", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds"] == 2 and m["decay_every"] == 1 and m["pretrain_set"] == "full"
    runs = [run for rs in m["q2"].values() for run in rs]
    assert runs and all(run["n_val"] == 81 for run in runs)
    d = m["q2_paired"]["frozen - scratch"]                    # one seed: the difference itself, se 0
    assert d["mean"] == pytest.approx(m["q2"]["frozen"][0]["val_acc"] - m["q2"]["scratch"][0]["val_acc"])
    assert d["se"] == 0 and d["positive"] == int(d["mean"] > 0)
    head_lrs = m["q2"]["frozen"][0]["group_lrs"]["head"]
    assert head_lrs == pytest.approx([1e-3, 5e-4])
    assert "2 stratified folds" in (out / "report.md").read_text()
    bad = subprocess.run([sys.executable, str(ROOT / "examples" / "land_cover_transfer.py"), "--quick",
                          "--folds", "1", "--out", str(tmp_path / "bad")], capture_output=True, text=True, env=env,
                         timeout=60)
    assert bad.returncode == 2 and "--folds" in bad.stderr and not (tmp_path / "bad").exists()
