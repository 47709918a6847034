"""The main example (README Quickstart command 1) runs end to end and writes what it promises.

Runs ``examples/fashion_mnist.py --quick`` in a subprocess. Isolated like a fresh offline
machine (no $NNLITE_DATA, an empty cache, no system-wide copy; run in this process) it must fall
back to the subset bundled with nnlite and say so.
"""
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fashion_mnist.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args, env_extra=None, timeout=180):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_quick_run_writes_metrics_figures_and_report(tmp_path):
    out = tmp_path / "fm"
    p = run("--quick", "--out", out, "--seed", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "classification_report", "confusion_matrix", "epochs_run",
                "wall_time_s", "seed", "data", "history", "batch_norm"):
        assert key in m, key
    assert m["seed"] == 1 and m["quick"] is True and m["epochs_run"] == 1 and m["batch_norm"] is True
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == m["n_test"]
    assert m["test_accuracy"] == np.trace(cm) / cm.sum()
    assert m["test_accuracy"] > 0.5, "one epoch on 2,000 images should beat chance by far"
    rep = m["classification_report"]
    assert set(rep) >= {"per_class", "accuracy", "macro avg", "weighted avg"}
    assert rep["accuracy"] == m["test_accuracy"] and len(rep["class_names"]) == 10
    report = (out / "report.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert set(shown) == {"history.png", "confusion_matrix.png", "misclassified.png"}
    for name in shown:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert f"{100 * m['test_accuracy']:.2f}%" in report
    assert "data:" in p.stdout


def test_offline_fallback_to_the_bundled_subset(tmp_path, monkeypatch, run_example):
    """No $NNLITE_DATA, an empty cache, no system copy, no network: the bundled subset, said so in
    the headline, the report's title and the figures. Also: --quick keeps an explicit --epochs;
    workers and BLAS printed and recorded; the report a labelled smoke test naming the restored
    epoch, in the seed report's numbering; metrics.json with the permissions of the other outputs.
    Run in this process (test_quick_run_writes_metrics_figures_and_report runs the script in a
    subprocess, with its real exit code)."""
    import dataclasses

    import nnlite.data.locate as L

    monkeypatch.setenv("NNLITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NNLITE_DATA", raising=False)
    # a fresh offline machine: no system-wide Fashion-MNIST either
    monkeypatch.setitem(L.DATASETS, "fashion_mnist", dataclasses.replace(L.DATASETS["fashion_mnist"], system_dirs=()))
    out = tmp_path / "fm"
    old = os.umask(0o022)
    try:
        code, stdout, stderr = run_example(EXAMPLE.name, "--quick", "--epochs", "2", "--out", out)
    finally:
        os.umask(old)
    assert code == 0, stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert "bundled" in m["data"].lower() and "bundled" in stdout.lower()
    assert m["test_accuracy"] > 0.5
    head = stdout.splitlines()[:3]
    assert any(line.startswith("compute: ") and "worker" in line and "BLAS" in line for line in head), head
    assert any("bundled subset" in line and "NOT the full data set" in line for line in head), head
    assert m["epochs_requested"] == 2 and m["epochs_run"] == 2, "--quick must not override --epochs"
    assert m["bundled_subset"] is True and m["quick"] is True
    assert isinstance(m["workers"], int) and m["workers"] >= 1
    assert m["machine"]["compute"]["workers"] == m["workers"]
    report = (out / "report.md").read_text()
    title = report.splitlines()[0]
    assert "bundled subset" in title and "smoke test" in title
    assert "Smoke test (`--quick`)" in report and "not results" in report
    assert f"the weights of epoch {m['restored_epoch']}" in report
    assert "Compute: " in report and "BLAS" in report
    idx = [report.index(f"### {k}.") for k in (1, 2, 3, 4, 5, 6, 9)]   # the seed report's numbering
    assert idx == sorted(idx)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in out.iterdir()}
    assert modes["metrics.json"] == modes["report.md"] == modes["history.png"] == 0o644, modes
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return
    assert m["blas"] and m["blas"][0]["internal_api"]
