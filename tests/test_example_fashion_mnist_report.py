"""examples/fashion_mnist_report.py --quick writes every figure and every section Q1-Q9 (issue 16)."""
import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fashion_mnist_report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("q4_grid_bs_lr.png", "q5_dropout_histories.png", "q7_mse_vs_latent.png",
           "q7_one_sample_all_latents.png", "q8_reconstructions.png", "q9_four_mistakes.png",
           "q9_top_confusion_pair.png", "q9_feature_space.png")


def run(*args, timeout=300):
    env = dict(os.environ, MPLBACKEND="Agg")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_quick_run_writes_every_figure_and_section(tmp_path):
    out = tmp_path / "report"
    p = run("--quick", "--out", out)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    report = (out / "report.md").read_text()
    positions = [report.index(f"## Q{i}") for i in range(1, 10)]
    assert positions == sorted(positions)                     # the course report's order
    assert "Smoke test (`--quick`)" in report
    for name in FIGURES:
        assert f"({name})" in report, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["quick"] is True
    assert {r["latent"] for r in m["latent_study"]} == {16, 8}
    assert len(m["grid_bs_lr"]) == 4 and len(m["grid_filters"]) == 2
    assert set(m["final"]) == {"dropout", "no dropout"}
    counts = m["explanations"]["tag_counts"]["pixels"]
    assert sum(counts.values()) == m["explanations"]["n_mistakes"] > 0


def test_bad_flags_exit_2(run_example):
    """In this process (argparse exits before any work starts); the first also in a subprocess."""
    p = run("--dropout", "1.5", timeout=60)
    assert p.returncode == 2 and "--dropout" in p.stderr, p.stderr[-500:]
    for bad in (["--dropout", "1.5"], ["--filters", "32"], ["--latents", "8,-1"], ["--skip", "everything"]):
        code, _, err = run_example(EXAMPLE.name, *bad)
        assert code == 2 and bad[0] in err, (bad, err[-500:])
