"""The benchmark suite's own logic: the loaded-machine verdict and where quick runs write."""
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import run
from benchmarks.harness import OtherWork

ROOT = Path(__file__).resolve().parents[1]


def _results(before, other=None, after=1.5):
    m = {"load_average": (before, 0, 0), "load_average_end": (after, 0, 0)}
    if other is not None:
        m["other_work_cores"] = other
    return {"machine": m}


def test_an_idle_run_is_not_called_loaded_by_its_own_load_average():
    """After a 2-core run the load average is ~1.5 from the suite itself: not 'loaded'."""
    assert not run._loaded(_results(0.1, other=0.02, after=1.6))
    assert run._loaded(_results(0.1, other=0.9, after=1.6))        # another process used 0.9 cores
    assert run._loaded(_results(0.8, other=0.0))                    # busy before the run
    assert run._loaded(_results(0.1, other=None, after=1.6))        # no meter: the old, cautious rule


def test_other_work_meter_sees_another_process_and_not_its_own():
    meter = OtherWork()
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
    time.sleep(1.5)
    other = meter.cores()
    busy.wait()
    if other is None:                                               # no /proc/stat: nothing to measure
        return
    assert other > 0.5, other
    meter = OtherWork()
    t = time.time()
    while time.time() - t < 0.5:                                    # this process's own work
        pass
    assert meter.cores() < 0.5


def test_quick_run_writes_to_its_own_folder(tmp_path):
    """--quick never overwrites the committed full-run results; the default folder is ignored by git."""
    committed = ROOT / "benchmarks" / "results" / "results.txt"
    before = committed.read_bytes() if committed.exists() else None
    out = tmp_path / "quick"
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only", "gemm", "--no-torch",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert (out / "results.json").exists()
    assert (committed.read_bytes() if committed.exists() else None) == before
    assert "runs/" in (ROOT / ".gitignore").read_text().split()     # the quick runs' default folder
