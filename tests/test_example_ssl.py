"""The self-supervised examples: each --quick run end to end on the real data ($NNLITE_DATA)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
needs_data = pytest.mark.skipif(not os.environ.get("NNLITE_DATA"),
                                reason="needs the real CIFAR-10 / Tiny ImageNet files ($NNLITE_DATA)")


def _run(script, out, *extra):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the other example tests: small GEMMs, no BLAS threads
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text()), (out / "report.md").read_text()


@needs_data
def test_simclr_cifar10_quick(tmp_path):
    metrics, report = _run("simclr_cifar10.py", tmp_path)
    for key in ("random_init", "simclr"):
        assert 0 <= metrics[key]["knn200"] <= 1 and 0 <= metrics[key]["linear_probe"] <= 1
    assert "Smoke test" in report and "SVHN is not available offline" in report
    for fig in ("retrieval.png", "history.png", "embeddings_test.npz", "pretrain_checkpoint.npz"):
        assert (tmp_path / fig).is_file()


@needs_data
def test_ssl_imagenet_quick(tmp_path):
    # the study's 5 trials in 2 worker processes (joblib, when installed); the best method retrained
    # in this process must reproduce its worker's trial exactly (--jobs never changes the numbers)
    jobs = "2" if importlib.util.find_spec("joblib") else "1"
    metrics, report = _run("ssl_imagenet.py", tmp_path, "--temperatures", "0.5", "--jobs", jobs)
    assert set(metrics["results"]) == {"random_init", "simclr", "byol", "barlow"}
    assert metrics["protocol"]["id_classes"] == 10 and "Smoke test" in report
    assert set(metrics["temperature_study"]) == {"0.5"} and set(metrics["optimizer_study"]) == {"adam", "adamw"}
    assert metrics["sweep"]["trials"] == 5 and metrics["sweep"]["jobs"] == int(jobs)
    assert metrics["best_reproduced_in_process"] is True
    for m in ("simclr", "byol", "barlow"):
        h = metrics["histories"][m]
        assert len(h["loss"]) == len(h["knn"]) == len(h["linear_probe"]) == 1 and 0 <= h["linear_probe"][0] <= 1
    for fig in ("figure1_history.png", "figure2_samples.png", "study/tables.md"):
        assert (tmp_path / fig).is_file()


@pytest.mark.parametrize("script,bad", [("simclr_cifar10.py", ["--temperature", "-1"]),
                                        ("ssl_imagenet.py", ["--methods", "simclr,moco"]),
                                        ("ssl_imagenet.py", ["--temperatures", "0.1,x"]),
                                        ("ssl_imagenet.py", ["--optimizers", "adam,sgd"]),
                                        ("ssl_imagenet.py", ["--jobs", "0"])])
def test_examples_reject_bad_flags(script, bad):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *bad], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--" in proc.stderr
