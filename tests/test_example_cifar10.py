"""The CIFAR-10 coursework example: its --quick run end to end, and its trial function."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import cifar10_trials as trials  # noqa: E402
from nnlite.data import Dataset  # noqa: E402

needs_data = pytest.mark.skipif(not os.environ.get("NNLITE_DATA"),
                                reason="needs the real CIFAR-10 files ($NNLITE_DATA)")


# ------------------------------------------------------------------------------------------
# the trial function, on a small synthetic data set (no files needed)
# ------------------------------------------------------------------------------------------
def _synthetic_cifar(path=None, n_train=None, n_test=None, download=False):
    """Images whose class shifts the mean of one colour channel: learnable by both models."""
    rng = np.random.default_rng(7)

    def make(n):
        y = np.arange(n) % 10
        x = rng.uniform(0.0, 1.0, size=(n, 3, 32, 32)).astype(np.float32)
        x[:, 0] *= 0.5 + 0.05 * y[:, None, None]
        x[:, 1, :y.max() + 1] += 0.1 * (y[:, None, None] % 3)
        return np.clip(x, 0, 1), y.astype(np.int64)

    xtr, ytr = make(600)
    xte, yte = make(200)
    return Dataset(xtr, ytr, xte, yte, [f"c{i}" for i in range(10)], "synthetic test data", "cifar10")


@pytest.fixture
def synthetic(monkeypatch):
    monkeypatch.setattr(trials, "load_cifar10", _synthetic_cifar)
    trials._PREPARED.clear()
    yield
    trials._PREPARED.clear()


CFG = {"val_size": 100, "epochs": 2, "batch_size": 64}


@pytest.mark.parametrize("model", ["softmax", "two_layer"])
def test_trial_is_deterministic_given_its_config(synthetic, model):
    cfg = {"model": model, **CFG, "seed": 3}
    if model == "two_layer":
        cfg.update(hidden=16, lr=0.05)
    a = trials.run_trial(dict(cfg))
    trials._PREPARED.clear()  # reload the data too: nothing may depend on process state
    b = trials.run_trial(dict(cfg))
    assert a == b
    assert json.loads(json.dumps(a)) == a  # plain JSON, as the sweep results file stores it
    for key in ("test_acc", "val_acc", "train_acc", "best_val_acc", "train_loss", "history"):
        assert key in a
    assert a["epochs"] == 2 and len(a["history"]["val_acc"]) == 2 and len(a["history"]["train_acc"]) == 2
    assert a["n_train"] == 500 and a["n_val"] == 100 and a["n_test"] == 200
    assert 0.0 <= a["test_acc"] <= 1.0
    # another seed: another initialization and batch order
    c = trials.run_trial({**cfg, "seed": 4})
    assert c["history"]["loss"] != a["history"]["loss"]


def test_trial_learns_and_config_changes_the_run(synthetic):
    base = {"model": "softmax", **CFG, "seed": 0, "epochs": 5, "lr": 0.05}
    m = trials.run_trial(base)
    assert m["history"]["loss"][-1] < m["history"]["loss"][0]
    assert m["train_acc"] > 0.3  # well above chance (0.1) on the learnable synthetic classes
    assert m["history"]["lr"] == pytest.approx([0.05 * 0.9 ** k for k in range(5)])
    slow = trials.run_trial({**base, "lr_decay": 1.0})
    assert slow["history"]["lr"] == pytest.approx([0.05] * 5)
    reg = trials.run_trial({**base, "reg": 1.0})
    assert reg["history"]["loss"] != m["history"]["loss"]


def test_normalization_uses_training_split_statistics_only(synthetic):
    d = trials.prepare_data(val_size=100, preprocess="pixel_standardize")
    flat = d["x_train"].reshape(d["x_train"].shape[0], -1).astype(np.float64)
    np.testing.assert_allclose(d["mean"], flat.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d["std"], flat.std(axis=0), rtol=1e-4, atol=1e-6)
    # stratified, disjoint validation split
    assert np.bincount(d["y_val"], minlength=10).tolist() == [10] * 10
    c = trials.prepare_data(val_size=100, preprocess="channel_standardize")
    assert np.unique(c["mean"]).size == 3
    with pytest.raises(ValueError, match="unknown preprocess"):
        trials.prepare_data(val_size=100, preprocess="zca")


def test_trial_function_is_picklable_by_reference():
    import pickle

    assert pickle.loads(pickle.dumps(trials.run_trial)) is trials.run_trial


# ------------------------------------------------------------------------------------------
# the script's --quick mode on the real data, with two sweep worker processes
# ------------------------------------------------------------------------------------------
@needs_data
def test_quick_run_writes_metrics_figures_and_report(tmp_path, monkeypatch, run_example):
    out = tmp_path / "cifar"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "cifar10_classifiers.py"), "--quick",
                           "--jobs", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "data: " in proc.stdout and "cifar10" in proc.stdout

    m = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "optimization", "softmax", "two_layer", "ablations", "wall_time_s",
                "seed", "data", "preprocessing", "quick"):
        assert key in m, key
    assert m["quick"] is True and m["seed"] == 0
    assert "images.zip" in m["data"] or "cifar-10" in m["data"]
    assert set(m["test_accuracy"]) == {"softmax", "two_layer"}
    assert all(0.1 < v <= 1.0 for v in m["test_accuracy"].values())  # above chance even in 2 epochs
    assert m["optimization"]["final_loss"] < m["optimization"]["initial_loss"]
    assert len(m["softmax"]["metrics"]["history"]["val_acc"]) == 2
    assert set(m["ablations"]) == {"softmax_ablation", "two_layer_ablation"}
    soft_ab = m["ablations"]["softmax_ablation"]
    assert list(soft_ab["tables"]) == ["reg", "batch_size", "lr", "lr_decay"]
    assert list(m["ablations"]["two_layer_ablation"]["tables"]) == ["hidden", "batch_size", "lr", "lr_decay"]
    for study in m["ablations"].values():
        assert study["n_failed"] == 0
        for entries in study["tables"].values():
            assert len(entries) == 2 and sum(e["baseline"] for e in entries) == 1
            assert all(e["n"] == 1 and 0 <= e["test_acc_mean"] <= 1 for e in entries)

    # every figure written is shown in report.md, and every image it shows exists
    report = (out / "report.md").read_text()
    shown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
    pngs = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert len(pngs) == 3 + 4 + 4, pngs
    assert shown == pngs
    assert report.index("optimization.png") < report.index("softmax_curves.png") \
        < report.index("softmax_ablation/reg.png") < report.index("two_layer_curves.png") \
        < report.index("two_layer_ablation/hidden.png")
    assert "| reg |" in report and "| hidden |" in report
    for name in ("softmax", "two_layer", "softmax_ablation", "two_layer_ablation"):
        assert (out / name / "results.jsonl").is_file()
    for name in ("softmax_ablation", "two_layer_ablation"):
        assert (out / name / "tables.md").is_file()

    # rerunning resumes: every trial is found finished, and the results are unchanged (in this
    # process: the subprocess above showed the real exit code)
    monkeypatch.chdir(tmp_path)
    try:
        code2, _, err2 = run_example("cifar10_classifiers.py", "--quick", "--out", out)
    finally:
        trials._PREPARED.clear()       # the real data the run cached in the shared trials module
    assert code2 == 0, err2[-3000:]
    assert "running" not in err2 and "already done" in err2
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["test_accuracy"] == m["test_accuracy"]
    assert m2["ablations"]["two_layer_ablation"]["tables"] == m["ablations"]["two_layer_ablation"]["tables"]


# ------------------------------------------------------------------------------------------
# faithful to the seed report (issue 14)
# ------------------------------------------------------------------------------------------
def _literal(script, name):
    import ast

    tree = ast.parse((EXAMPLES / script).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {script}")


def test_ablation_grids_are_the_reports():
    two = _literal("cifar10_classifiers.py", "TWO_LAYER_ABLATIONS")
    assert two["hidden"] == [50, 100, 150, 200]            # the report's grid: its 150 row can appear
    soft = _literal("cifar10_classifiers.py", "SOFTMAX_ABLATIONS")
    report = _literal("cifar10_classifiers.py", "REPORT_ABLATIONS")
    for study, grid in (("softmax_ablation", soft), ("two_layer_ablation", two)):
        for param, values in grid.items():
            assert sorted(report[study][param]) == sorted(values), (study, param)


def test_fooling_images_attacks_the_network_of_part_3(monkeypatch, run_example):
    """Defaults: hidden 100, plain SGD, lr 0.1 decayed by 0.9 per epoch, batch 128, 30 epochs."""
    part3 = trials.TWO_LAYER_DEFAULTS
    assert (part3["hidden"], part3["lr"], part3["lr_decay"], part3["batch_size"], part3["epochs"]) == \
        (100, 0.1, 0.9, 128, 30)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_example("fooling_images.py", "--help")
    assert code == 0
    text = " ".join(out.split())
    for flag, default in (("--hidden", "100"), ("--lr", "0.1"), ("--lr-decay", "0.9"), ("--batch-size", "128"),
                          ("--momentum", "0.0")):
        assert f"{flag} {flag[2:].upper().replace('-', '_')} " in text
        assert f"(default: {default})" in text.split(f"{flag} {flag[2:].upper().replace('-', '_')} ")[1][:160], flag
    assert "default 30 (the report's)" in text
