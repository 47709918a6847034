"""The adversarial-robustness examples run end to end (``--quick``) and write what they promise.

* ``examples/adversarial_svhn.py``: on real MNIST (needs NNLITE_DATA), on small SVHN-format
  ``.mat`` files written here, and its refusal to run when SVHN is missing;
* ``examples/fooling_images.py``: on the bit-exact CIFAR-10 subset (needs NNLITE_DATA).

Each script runs end to end once in a subprocess (OPENBLAS_NUM_THREADS=1 unless set: the small
matrices are much faster single-threaded on a shared machine), writing into a temporary folder,
for its real exit code; the MNIST runs and the argument checks (--help, bad flags, an unknown
target: argparse exits before any work starts) run in this process, with one BLAS thread.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
needs_data = pytest.mark.skipif(not os.environ.get("NNLITE_DATA"), reason="NNLITE_DATA not set (real data)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(script, *args, timeout=120):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def check_report(out: Path, metrics: dict):
    """Every figure the report shows exists as a PNG; every figure in metrics.json is shown."""
    report = (out / "report.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert shown, "report.md shows no figure"
    for name in shown:
        f = out / name
        assert f.is_file(), f"report.md shows {name}, which was not written"
        assert f.read_bytes()[:8] == PNG_MAGIC, f"{name} is not a PNG"
    assert set(metrics["figures"].values()) <= set(shown), "a figure in metrics.json is not in the report"
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp")), "temporary files left behind"
    return report


def check_adversarial_metrics(m: dict, n_eps_min: int):
    for key in ("dataset", "data", "n_train", "n_test", "n_attack", "eps", "eps_confusion", "standard",
                "robust", "adversarial_training", "wall_time_s", "seed", "figures"):
        assert key in m, f"metrics.json lacks {key!r}"
    eps = m["eps"]
    assert len(eps) >= n_eps_min and eps == sorted(eps) and eps[0] == 0
    for model in ("standard", "robust"):
        r = m[model]
        for key in ("clean_accuracy", "fgsm_accuracy", "pgd_accuracy", "confusion_matrix",
                    "confusion_matrix_adv", "epochs", "accuracy_at_eps_confusion"):
            assert key in r, f"metrics.json[{model!r}] lacks {key!r}"
        assert len(r["fgsm_accuracy"]) == len(eps) and len(r["pgd_accuracy"]) == len(eps)
        assert all(0 <= a <= 1 for a in r["fgsm_accuracy"] + r["pgd_accuracy"] + [r["clean_accuracy"]])
        cm, cm_adv = np.array(r["confusion_matrix"]), np.array(r["confusion_matrix_adv"])
        assert cm.shape == (10, 10) and cm.sum() == m["n_test"]
        assert cm_adv.shape == (10, 10) and cm_adv.sum() == m["n_attack"]
        # the adversarial confusion matrix is the FGSM run at eps_confusion
        i = int(np.argmin(np.abs(np.array(eps) - m["eps_confusion"])))
        assert np.trace(cm_adv) / cm_adv.sum() == pytest.approx(r["fgsm_accuracy"][i])
        assert r["accuracy_at_eps_confusion"] == pytest.approx(r["fgsm_accuracy"][i])
    at = m["adversarial_training"]
    assert at["attack"] in ("fgsm", "fgsm-rs", "pgd") and 0 <= at["ratio"] <= 1 and at["eps"] > 0
    assert 1 <= at["epochs_run"] <= at["epochs"]
    assert m["wall_time_s"]["total"] > 0


@needs_data
def test_adversarial_mnist_quick(tmp_path, run_example):
    out = tmp_path / "adv"
    # In this process, as the second run below (test_adversarial_svhn_official_mat_files runs the script
    # in a subprocess). Smaller than --quick's own sizes where nothing asserted depends on them: PGD-2
    # adversarial training (quick: PGD-5), 30 images in the worst-case ensemble and its masking checks (60).
    code, stdout, stderr = run_example("adversarial_svhn.py", "--dataset", "mnist", "--quick", "--out", out,
                                       "--seed", "3", "--eval", "ensemble", "--adv-steps", "2", "--ensemble-n", "30",
                                       "--check-n", "30", "--widths", "24,48", "--dense", "96")
    assert code == 0, stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    check_adversarial_metrics(m, n_eps_min=3)
    # --quick: the PGD step is sized from eps (2.5 eps / steps) and PGD attacks the FGSM images
    assert m["pgd_step"] is None and m["n_pgd"] > 0
    for model in ("standard", "robust"):
        r = m[model]
        assert r["fgsm_accuracy_pgd_images"][0] == r["pgd_accuracy"][0], "clean points differ"
        assert r["pgd_accuracy"][-1] <= r["fgsm_accuracy_pgd_images"][-1] + 0.05, "PGD weaker than FGSM"
    # the worst-case evaluation: ensemble log, masking checks, minimal perturbations
    ens = m["ensemble"]
    for model in ("standard", "robust"):
        e = ens[model]
        assert e["attacks"] == ["apgd-ce", "apgd-dlr", "square"]
        assert e["robust_accuracy"] <= min(e["accuracy_after"].values()) + 1e-12 <= e["clean_accuracy"]
        assert set(e["masking"]["checks"]) == {"monotone_in_eps", "zero_at_large_eps", "more_steps_restarts",
                                               "gradient_free_not_better"}
        assert "deepfool" in ens["minimal"][model] and "cw" in ens["minimal"][model]
    assert ens["standard"]["robust_accuracy"] < ens["standard"]["clean_accuracy"]
    assert m["dataset"] == "mnist" and "MNIST" in m["data"] and m["seed"] == 3 and m["quick"] is True
    assert m["widths"] == [24, 48] and m["dense"] == 96                      # --widths / --dense
    st = m["standard"]
    assert st["clean_accuracy"] > 0.5, "the quick MNIST CNN should learn something in one epoch"
    assert st["fgsm_accuracy"][-1] < st["fgsm_accuracy"][0], "FGSM did not lower the accuracy"
    report = check_report(out, m)
    assert "Not SVHN" in report and "mnist" in report and "smoke test" in report.lower()
    assert "Worst-case robust accuracy" in report and "Gradient-masking checks" in report
    assert "minimal_norms" in m["figures"]
    for part in ("## Part 1", "## Part 2", "## Part 3"):
        assert part in report
    assert report.index("## Part 1") < report.index("## Part 2") < report.index("## Part 3")
    for fig in ("confusion_matrix", "misclassified", "accuracy_vs_eps", "adversarial_grid",
                "confusion_matrix_adv", "comparison", "confusion_matrix_robust_adv", "misclassified_robust"):
        assert fig in m["figures"], f"figure {fig} missing"
    assert "data set: mnist" in stdout
    # MNIST defaults: Madry et al.'s eps 0.3, PGD training early-stopped on PGD accuracy
    at = m["adversarial_training"]
    assert at["attack"] == "pgd" and at["eps"] == 0.3 and at["ratio"] == 1.0 and at["options"]["steps"] == 2
    assert at["early_stopping"]["best_epoch"] == 0 and at["early_stopping"]["n_val"] > 0
    assert "val_pgd_acc" in m["history_robust"]
    # --load-standard skips Part 1's training and reproduces the run from the saved model
    out2 = tmp_path / "adv2"
    code2, _, err2 = run_example("adversarial_svhn.py", "--dataset", "mnist", "--quick", "--out", out2, "--seed", "3",
                                 "--adv-steps", "2", "--load-standard", out / "model_standard.npz",
                                 "--widths", "24,48", "--dense", "96")
    assert code2 == 0, err2[-3000:]
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["standard_loaded_from"].endswith("model_standard.npz")
    for key in ("clean_accuracy", "fgsm_accuracy", "pgd_accuracy"):
        assert m2["standard"][key] == st[key] and m2["robust"][key] == m["robust"][key]
    assert m2["history"] == m["history"]


def test_adversarial_svhn_missing_stops_with_advice(tmp_path):
    empty = tmp_path / "no_svhn_here"
    empty.mkdir()
    out = tmp_path / "adv"
    p = run("adversarial_svhn.py", "--dataset", "svhn", "--data", empty, "--quick", "--out", out, timeout=60)
    assert p.returncode != 0
    assert "--dataset mnist" in p.stderr and "--dataset cifar10" in p.stderr
    assert "train_32x32.mat" in p.stderr
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--batch-size", "-3"), ("--eps", "1.5"),
                                        ("--ratio", "2"), ("--adv-recipe", "weak"), ("--eval", "all"),
                                        ("--seed", "-1"), ("--ensemble-n", "0"), ("--pgd-step", "nan"),
                                        ("--widths", "0,3"), ("--dense", "0")])
def test_adversarial_rejects_bad_flags(tmp_path, run_example, flag, value):
    code, _, err = run_example("adversarial_svhn.py", "--dataset", "mnist", "--quick", "--out", tmp_path / "a",
                               flag, value)
    assert code == 2 and flag in err, err[-2000:]
    assert not (tmp_path / "a").exists()


def test_adversarial_bad_flag_in_a_subprocess_exit_code_2(tmp_path):
    p = run("adversarial_svhn.py", "--dataset", "mnist", "--quick", "--out", tmp_path / "a", "--eps", "1.5", timeout=60)
    assert p.returncode == 2 and "--eps" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "a").exists()


def test_adversarial_help_shows_description_and_defaults(run_example):
    code, out, _ = run_example("adversarial_svhn.py", "--help")
    assert code == 0
    assert "SVHN report" in out and "(default: strong)" in out and "(default: 1000)" in out


def _write_svhn_mat(path: Path, n: int, rng):
    """A small SVHN-format file: X (32, 32, 3, N) uint8, y (N, 1) labels 1..10 (10 = digit 0).
    Each class has its own mean colour, so the task is learnable."""
    import scipy.io

    y = np.arange(n) % 10 + 1
    rng.shuffle(y)
    colours = np.linspace(30, 225, 10)
    base = np.stack([colours[y % 10], colours[(3 * y) % 10], colours[(7 * y) % 10]], axis=1)  # (N, 3)
    x = base[:, None, None, :] + rng.normal(0, 20, size=(n, 32, 32, 3))
    X = np.clip(x, 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)
    scipy.io.savemat(str(path), {"X": X, "y": y[:, None].astype(np.uint8)})


def test_adversarial_svhn_official_mat_files(tmp_path):
    rng = np.random.default_rng(0)
    sv = tmp_path / "svhn"
    sv.mkdir()
    _write_svhn_mat(sv / "train_32x32.mat", 300, rng)
    _write_svhn_mat(sv / "test_32x32.mat", 100, rng)
    out = tmp_path / "adv"
    p = run("adversarial_svhn.py", "--data", sv, "--quick", "--out", out, "--adv-recipe", "report")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    check_adversarial_metrics(m, n_eps_min=3)
    assert m["dataset"] == "svhn" and "train_32x32.mat" in m["data"]
    assert m["n_train"] == 300 and m["n_test"] == 100
    # the report's recipe: FGSM 0.1 on half of each batch; confusion matrix on the whole test set
    at = m["adversarial_training"]
    assert m["recipe"] == "report" and at["attack"] == "fgsm" and at["eps"] == 0.1 and at["ratio"] == 0.5
    assert m["eps_confusion"] == 0.1 and m["n_attack"] == m["n_test"]
    report = check_report(out, m)
    assert "Not SVHN" not in report and "10.21%" in report and "80.90%" in report


@needs_data
def test_fooling_images_quick(tmp_path):
    out = tmp_path / "fool"
    # the report's part-3 MLP (plain SGD) is only weakly trained in --quick: 300 steps of 0.02
    # (at most L2 6.0) fool most images, the default 100 about a third
    p = run("fooling_images.py", "--quick", "--out", out, "--target", "automobile", "--max-steps", "300",
            "--step-size", "0.1")   # the part-3 MLP after 5 quick epochs needs longer steps
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    for key in ("data", "test_accuracy", "fooling", "mlp", "figures", "wall_time_s", "seed"):
        assert key in m
    assert "bit-exact" in m["data"] and m["n_test"] == 761
    assert m["test_accuracy"] > 0.15
    f = m["fooling"]
    assert f["target"] == "automobile" and f["n_images"] == len(f["images"]) > 0
    assert 0 <= f["success_rate"] <= 1
    for r in f["images"]:
        assert r["target"] == "automobile" and r["true"] != "automobile"
        assert 0 <= r["steps"] <= f["max_steps"]
        assert r["success"] == (r["pred_after"] == "automobile")
        if r["success"]:
            # each step has L2 length step_size, so the total is at most steps * step_size
            assert 0 < r["l2"] <= r["steps"] * f["step_size"] + 1e-5
            assert 0 < r["linf"] <= r["l2"] + 1e-7
    assert f["success_rate"] > 0.5, "fooling a weak MLP should nearly always succeed"
    check_report(out, m)


def test_fooling_rejects_unknown_target(tmp_path, run_example):
    code, _, err = run_example("fooling_images.py", "--quick", "--out", tmp_path / "f", "--target", "unicorn",
                               "--data", tmp_path)
    assert code == 2 and "argument --target" in err and "automobile" in err
    assert not (tmp_path / "f" / "metrics.json").exists()
