"""The newcomer's path (issue 14): what a new user meets in the examples.

* the examples open as notebooks (jupytext) whose cells run top to bottom;
* a missing data set ends with the message alone (no traceback) and the --download hint;
* a wrong data set (MNIST digits given as Fashion-MNIST) is refused;
* the workers/BLAS helper (a quick run's headline, report, explicit --epochs and file
  permissions are checked in tests/test_example_fashion_mnist.py);
* ``nnlite.nn.summary`` takes the input shape with or without the batch axis.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.data import load_fashion_mnist
from nnlite.data import checks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ["fashion_mnist.py", "cifar10_classifiers.py", "fooling_images.py"]
sys.path.insert(0, str(EXAMPLES))


def _env(**extra):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------
# notebooks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_cells_are_top_level_and_round_trip_through_jupytext(script, tmp_path):
    jupytext = pytest.importorskip("jupytext")
    text = (EXAMPLES / script).read_text()
    assert "def main(" not in text and "__main__" not in text
    nb = jupytext.reads(text, fmt="py:percent")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 4 and nb.cells[0].cell_type == "markdown"
    for cell in code:
        compile(cell.source, f"{script} cell", "exec")    # every cell parses on its own
        assert not cell.source.startswith((" ", "\t")), cell.source[:80]
    assert "parse_args(p)" in code[0].source              # arguments parsed in the first cell
    back = jupytext.writes(nb, fmt="py:percent")
    again = jupytext.reads(back, fmt="py:percent").cells
    assert [(c.cell_type, c.source) for c in again] == [(c.cell_type, c.source) for c in nb.cells]


NB_RUNNER = textwrap.dedent("""
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    nb = json.load(open(sys.argv[1]))
    shell = InteractiveShell.instance()
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            if not shell.run_cell("".join(cell["source"]), store_history=False).success:
                sys.exit(f"cell {i} failed")
    print("NOTEBOOK RAN")
""")


def test_fashion_mnist_notebook_runs_top_to_bottom(tmp_path):
    """jupytext --to notebook, then every code cell in order in an IPython shell (as Jupyter
    would), the arguments from $NNLITE_EXAMPLE_ARGS."""
    pytest.importorskip("IPython")
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(str(EXAMPLES / "fashion_mnist.py"), fmt="py:percent")
    path = tmp_path / "fashion_mnist.ipynb"
    jupytext.write(nb, str(path), fmt="ipynb")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-c", NB_RUNNER, str(path)], cwd=EXAMPLES, capture_output=True,
                       text=True, timeout=180,
                       env=_env(NNLITE_EXAMPLE_ARGS=f"--quick --out {out}", NNLITE_CACHE=str(tmp_path / "c")))
    assert p.returncode == 0 and "NOTEBOOK RAN" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["quick"] is True and m["epochs_requested"] == 1
    assert {f.name for f in out.iterdir()} >= {"history.png", "confusion_matrix.png", "misclassified.png",
                                               "report.md", "metrics.json"}


# ------------------------------------------------------------------------------------------
# data not found, wrong data
# ------------------------------------------------------------------------------------------
def test_data_not_found_prints_the_message_alone(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    p = subprocess.run([sys.executable, str(EXAMPLES / "fashion_mnist.py"), "--data", str(empty),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120,
                       env=_env())
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert "data not found" in p.stderr and str(empty) in p.stderr and "--download" in p.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def _digits_like(n, rng):
    """MNIST-like images: black background, a bright stroke (mean pixel ~0.13 like MNIST)."""
    x = np.zeros((n, 28, 28, 1), np.uint8)
    rows = rng.integers(4, 20, n)
    for k in range(7):
        x[np.arange(n), rows + k, 8:22, 0] = 250
    x[:, :, :, 0] = np.where(rng.random((n, 28, 28)) < 0.03, 255, x[:, :, :, 0])
    return x, (np.arange(n) % 10).astype(np.int64)


def test_wrong_data_set_is_refused(tmp_path):
    """Digits given to the Fashion-MNIST example: refused, with what the data looks like instead."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "digits"
    folder.mkdir()
    for name, n in (("train", 600), ("test", 200)):
        x, y = _digits_like(n, rng)
        np.savez(folder / f"{name}.npz", x=x, y=y)
    p = subprocess.run([sys.executable, str(EXAMPLES / "fashion_mnist.py"), "--data", str(folder),
                        "--quick", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       timeout=120, env=_env())
    assert p.returncode == 1, p.stdout[-2000:]
    assert "wrong data" in p.stderr and "MNIST digits" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_content_check_accepts_the_right_sets_and_names_the_wrong_one():
    ds = load_fashion_mnist(allow_bundled=True, n_train=300, n_test=100)   # whatever is found: Fashion
    assert "Fashion-MNIST" in checks.check_content("fashion_mnist", ds)
    with pytest.raises(checks.WrongDataError, match="looks like Fashion-MNIST"):
        checks.check_content("mnist", ds)
    darker = SimpleNamespace(x_train=ds.x_train * 0.45, y_train=ds.y_train, y_test=ds.y_test, source="t")
    with pytest.raises(checks.WrongDataError, match="looks like MNIST digits"):
        checks.check_content("fashion_mnist", darker)
    with pytest.raises(checks.WrongDataError, match="shape"):
        checks.check_content("cifar10", ds)
    bad_labels = SimpleNamespace(x_train=ds.x_train, y_train=ds.y_train + 5, y_test=ds.y_test, source="t")
    with pytest.raises(checks.WrongDataError, match="labels must be 0..9"):
        checks.check_content("fashion_mnist", bad_labels)
    with pytest.raises(ValueError, match="name must be one of"):
        checks.check_content("svhn", ds)


def _shared_mnist_raw():
    for root in os.environ.get("NNLITE_DATA", "").split(os.pathsep):
        raw = Path(root) / "mnist" / "raw"
        if root and (raw / "train-labels-idx1-ubyte.gz").is_file():
            return raw
    return None


@pytest.mark.skipif(_shared_mnist_raw() is None, reason="needs the official MNIST idx files ($NNLITE_DATA)")
def test_official_files_are_recognised_by_checksum(tmp_path):
    raw = _shared_mnist_raw()
    assert checks.identify_file(raw / "train-labels-idx1-ubyte.gz") == ("mnist", "train-labels-idx1-ubyte")
    assert checks.identify_file(raw / "t10k-labels-idx1-ubyte.gz") == ("mnist", "t10k-labels-idx1-ubyte")
    with pytest.raises(checks.WrongDataError, match="official mnist file"):
        checks.check_files("fashion_mnist", raw)
    lines = checks.check_files("mnist", raw)
    assert len(lines) == 4 and all("official mnist file" in s for s in lines)
    other = tmp_path / "t10k-labels-idx1-ubyte"
    other.write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 12)
    assert checks.identify_file(other) is None


# ------------------------------------------------------------------------------------------
# workers and BLAS (a quick run's headline, report and metrics: tests/test_example_fashion_mnist.py)
# ------------------------------------------------------------------------------------------
def test_workers_and_blas_helper():
    from _common import compute_info, describe_compute

    from nnlite import parallel

    info = compute_info()
    assert info["workers"] == parallel.default_num_threads()
    text = describe_compute(info)
    assert f"{info['workers']} worker" in text and "BLAS" in text
    no_tpc = dict(info, threadpoolctl=None, blas=[])
    assert "pip install threadpoolctl" in describe_compute(no_tpc)


# ------------------------------------------------------------------------------------------
# summary(input_shape) with or without the batch axis
# ------------------------------------------------------------------------------------------
def test_summary_accepts_the_shape_with_or_without_the_batch_axis():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 14 * 14, 10))
    ref = nn.summary(cnn, (1, 28, 28), print_fn=None)
    assert nn.summary(cnn, (64, 1, 28, 28), print_fn=None) == ref
    assert nn.summary(cnn, (None, 1, 28, 28), print_fn=None) == ref
    assert "(None, 4, 28, 28)" in ref and "(None, 10)" in ref
    mlp = nn.Sequential(nn.Linear(20, 5), nn.ReLU(), nn.Linear(5, 2))
    assert nn.summary(mlp, (20,), print_fn=None) == nn.summary(mlp, (32, 20), print_fn=None)
    flat_first = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    assert "(None, 3)" in nn.summary(flat_first, (3, 2, 2), print_fn=None)
    assert nn.summary(flat_first, (None, 3, 2, 2), print_fn=None) == nn.summary(flat_first, (3, 2, 2),
                                                                                print_fn=None)
    with pytest.raises(ValueError, match="4-D input"):
        nn.summary(cnn, (28, 28), print_fn=None)
    with pytest.raises(ValueError, match="positive ints"):
        nn.summary(cnn, (1, 0, 28), print_fn=None)
