"""The benchmark suite's own logic: the loaded-machine verdict and where quick runs write."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def _cpu_of(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_other_work_meter_counts_another_process_and_not_its_own():
    """Inequalities that hold however loaded the machine is: a busy child's CPU time is part of
    'other work'; this process's own busy loop is not (other + own <= the machine's cores)."""
    if not os.path.exists("/proc/stat"):
        assert OtherWork().cores() is None
        return
    meter = OtherWork()
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    t0, c0 = time.perf_counter(), _cpu_of(busy.pid)
    time.sleep(1.0)
    child, other = (_cpu_of(busy.pid) - c0) / (time.perf_counter() - t0), meter.cores()
    busy.kill()
    busy.wait()
    assert child > 0.05 and other >= child - 0.1, (other, child)
    meter, t0, own0 = OtherWork(), time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < 1.0:                           # this process's own work
        pass
    own = (time.process_time() - own0) / (time.perf_counter() - t0)
    assert own > 0.3 and meter.cores() + own <= os.cpu_count() + 0.15, (meter.cores(), own)


def test_other_work_arithmetic(monkeypatch):
    """cores = (machine busy time - own CPU time) / wall time, from two samples."""
    samples = iter([(10.0, 100.0, 5.0), (12.0, 103.0, 6.5)])      # (wall, busy, own) seconds
    monkeypatch.setattr(OtherWork, "_sample", staticmethod(lambda: next(samples)))
    assert OtherWork().cores() == (3.0 - 1.5) / 2.0
    monkeypatch.setattr(OtherWork, "_sample", staticmethod(lambda: None))
    assert OtherWork().cores() is None


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


def test_partial_and_quick_runs_default_to_ignored_folders():
    """Only a full run replaces the committed results; --only and --quick default to runs/."""
    assert run.default_out(False, None) == os.path.join("benchmarks", "results")
    assert run.default_out(True, None) == os.path.join("runs", "benchmarks-quick")
    assert run.default_out(True, ["gemm"]) == os.path.join("runs", "benchmarks-quick")
    assert run.default_out(False, ["small"]) == os.path.join("runs", "benchmarks-only")


def test_mobilenet_ab_runs_both_storeys_and_restores_the_engine(capsys):
    from benchmarks import mobilenet_ab
    from nnlite import fast as E
    before = {k: getattr(E, k) for k in mobilenet_ab.NAMES}
    mobilenet_ab.main(["--rounds", "1", "--batch", "2"])
    out = capsys.readouterr().out
    assert "engine " in out and "textbook " in out and "speed-up" in out
    assert all(getattr(E, k) is f for k, f in before.items())


def test_layer_profile_times_every_kind_of_layer_in_both_frameworks(capsys):
    pytest.importorskip("torch")
    from benchmarks import profile
    assert profile._torch_kind("aten::convolution_backward") == "conv backward"
    assert profile._torch_kind("aten::mkldnn_convolution") == "conv forward"
    assert profile._torch_kind("aten::threshold_backward") == "relu backward"
    assert profile._torch_kind("aten::max_pool2d_with_indices") == "max pool forward"
    assert profile._torch_kind("aten::something_new") == "other"
    profile.main(["--models", "fmnist_cnn", "--rounds", "1", "--batch", "4"])
    out = capsys.readouterr().out
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in out.splitlines()
            if "|" in line}
    for kind in ("conv forward", "conv backward", "max pool forward", "max pool backward"):
        nn_ms, torch_ms = rows[kind][0], rows[kind][1]
        assert float(nn_ms) > 0 and float(torch_ms) > 0, (kind, rows[kind])
    assert float(rows["relu forward"][0]) < float(rows["conv forward"][0])     # fused into the conv


@pytest.mark.parametrize("switch,model", [("FUSE_RELU", "fmnist_cnn"), ("FUSE_BN_INTO_CONV", "resnet_encoder"),
                                          ("FUSE_POOL_INTO_CONV", "cifar_cnn"), ("FUSE_POOL_NO_GRAD", "fmnist_cnn")])
def test_fusion_ab_runs_both_ways_and_restores_the_switch(capsys, switch, model):
    from benchmarks import fusion_ab
    from nnlite import fast as E
    fusion_ab.main(["--models", model, "--switch", switch, "--rounds", "1", "--batch", "4"])
    out = capsys.readouterr().out
    assert "fused " in out and "unfused" in out and f"{switch} speed-up" in out
    assert getattr(E, switch) is True


def test_regions_reports_every_parallel_region_of_a_step(capsys):
    from benchmarks import regions
    rows, step_ms = regions.region_costs("fmnist_cnn", 16, steps=2, warmup=1)
    kinds = [kind.split()[1] for kind, _ in rows]
    assert "conv2d_forward" in kinds and "conv2d_backward" in kinds and step_ms > 0
    for _, r in rows:
        assert r["overhead"] >= 0 and r["busy0"] > 0 and r["wall"] >= max(r["busy0"], r["busy_other"]) - 1e-6
    regions.main(["--batches", "16", "--steps", "1"])
    assert "parallel regions" in capsys.readouterr().out
