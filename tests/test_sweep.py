"""Tests for nnlite.sweep: study expansion, resumable parallel runs, reports."""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from nnlite.sweep import (DamagedResultsWarning, Study, TruncatedResultsWarning, ablation_tables,
                          add_sweep_args, available_cores, canonical_json, choose_xscale,
                          plot_ablation, quarantine_path, read_results, run_study, summarize,
                          summary_table, sweep_options, trial_id, write_report)


# ----------------------------------------------------------------------------------------
# trial functions (module level so that worker processes can import them)
# ----------------------------------------------------------------------------------------
def lsq_trial(config):
    """A tiny ridge least-squares fit by a few gradient steps, seeded by config['seed']."""
    rng = np.random.default_rng(config["seed"])
    n, d = 48, 4
    X = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d)
    y = X @ w_true + 0.1 * rng.standard_normal(n)
    w = np.zeros(d)
    for _ in range(config.get("steps", 15)):
        grad = X.T @ (X @ w - y) / n + config["reg"] * w
        w = w - config["lr"] * grad
    return {"loss": float(np.mean((X @ w - y) ** 2)), "w_norm": np.float64(np.linalg.norm(w))}


def _log_call(config):
    log_dir = Path(config["log_dir"])
    name = f"{config['x']}_{config['seed']}_{os.getpid()}_{time.time_ns()}.call"
    (log_dir / name).write_text("")


def _calls(log_dir):
    """Number of calls per (x, seed) recorded in log_dir."""
    counts = {}
    for p in Path(log_dir).glob("*.call"):
        x, seed = p.name.split("_")[:2]
        counts[(int(x), int(seed))] = counts.get((int(x), int(seed)), 0) + 1
    return counts


def counting_trial(config):
    """Log the call; interrupt like Ctrl-C once more than config['crash_after'] calls were made
    while the file 'crash' exists; fail with ValueError for x == config['bad_x'] while 'fail' exists."""
    _log_call(config)
    log_dir = Path(config["log_dir"])
    if (log_dir / "crash").exists() and sum(_calls(log_dir).values()) > config["crash_after"]:
        raise KeyboardInterrupt
    if (log_dir / "fail").exists() and config["x"] == config["bad_x"]:
        raise ValueError(f"bad x {config['x']}")
    return {"score": config["x"] * 10.0 + config["seed"]}


def dying_trial(config):
    """Kill the worker process hard for x == 3 while the file 'die' exists."""
    _log_call(config)
    if (Path(config["log_dir"]) / "die").exists() and config["x"] == 3:
        os._exit(7)
    time.sleep(0.02)
    return {"score": float(config["x"])}


def env_trial(config):
    """Report the BLAS thread caps seen by the worker."""
    return {var: int(os.environ.get(var, "0")) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}


def _counting_study(tmp_path, n_x=4, seeds=(0, 1), **extra):
    base = {"x": 0, "log_dir": str(tmp_path / "calls"), "crash_after": 10 ** 6, "bad_x": -1}
    base.update(extra)
    (tmp_path / "calls").mkdir(exist_ok=True)
    return Study(base, grid={"x": list(range(n_x))}, seeds=list(seeds))


def _lsq_study(seeds=(0, 1)):
    return Study({"lr": 0.1, "reg": 0.0, "steps": 15},
                 grid={"lr": [0.05, 0.2], "reg": [0.0, 0.01]}, seeds=list(seeds), name="lsq")


# ----------------------------------------------------------------------------------------
# study expansion and ids
# ----------------------------------------------------------------------------------------
def test_grid_expansion_is_cartesian_product():
    study = Study({"lr": 0.1, "bs": 128, "act": "relu"},
                  grid={"lr": [1e-3, 1e-2, 5e-2], "bs": [128, 256]}, seeds=3)
    assert study.kind == "grid"
    assert len(study.settings()) == 6
    assert len(study) == len(study.trials()) == 18
    pairs = {(s["lr"], s["bs"]) for s in study.settings()}
    assert pairs == {(a, b) for a in [1e-3, 1e-2, 5e-2] for b in [128, 256]}
    assert all(s["act"] == "relu" for s in study.settings())
    trials = study.trials()
    assert [t.seed for t in trials[:6]] == [0] * 6  # seeds are the outer loop
    assert all(t.config["seed"] == t.seed for t in trials)
    assert len({t.trial_id for t in trials}) == 18


def test_ablations_vary_one_at_a_time_and_dedupe_baseline():
    base = {"lr": 1e-2, "reg": 0.0, "bs": 256, "decay": 1.0}
    study = Study(base, ablations={"reg": [0.0, 1e-3, 1e-2], "bs": [128, 256, 512, 1024],
                                   "decay": [1.0, 0.99, 0.9, 0.8]}, seeds=[0, 1])
    settings = study.settings()
    # baseline once + 2 reg + 3 bs + 3 decay
    assert len(settings) == 1 + 2 + 3 + 3
    assert settings[0] == base
    for s in settings[1:]:
        changed = [k for k in base if s[k] != base[k]]
        assert len(changed) == 1
    assert len(study) == 18
    assert study.param_values("reg") == [0.0, 1e-3, 1e-2]
    # a baseline value not listed is still part of the parameter's values
    study2 = Study(base, ablations={"lr": [1e-3, 5e-2]})
    assert study2.param_values("lr") == [1e-2, 1e-3, 5e-2]
    assert len(study2.settings()) == 3


def test_baseline_only_study():
    study = Study({"a": 1}, seeds=2)
    assert study.kind == "baseline" and len(study) == 2 and study.varied_params == []


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(baseline=[1]), TypeError, "baseline must be a dict"),
    (dict(baseline={"seed": 1}), ValueError, "seeds"),
    (dict(baseline={"a": 1}, grid={"a": [1]}, ablations={"a": [2]}), ValueError, "not both"),
    (dict(baseline={"a": 1}, ablations={"b": [1, 2]}), ValueError, "baseline value"),
    (dict(baseline={"a": 1}, grid={"a": 3}), TypeError, "list of values"),
    (dict(baseline={"a": 1}, grid={"a": "abc"}), TypeError, "list of values"),
    (dict(baseline={"a": 1}, grid={"a": []}), ValueError, "at least one value"),
    (dict(baseline={"a": 1}, grid={"a": [1, 2, 1]}), ValueError, "more than once"),
    (dict(baseline={"a": 1}, grid={"seed": [1, 2]}), ValueError, "seed"),
    (dict(baseline={"a": 1}, seeds=[0, 0]), ValueError, "distinct"),
    (dict(baseline={"a": 1}, seeds=[0.5]), TypeError, "ints"),
    (dict(baseline={"a": 1}, seeds=0), ValueError, ">= 1"),
    (dict(baseline={"a": object()}), TypeError, "JSON-serializable"),
    (dict(baseline={"a": float("nan")}), ValueError, "finite"),
])
def test_study_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Study(**kwargs)


def test_trial_id_canonical_and_stable_across_processes():
    cfg = {"lr": 0.01, "reg": 0.0, "hidden": [64, 32], "act": "relu", "seed": 3}
    shuffled = {"seed": 3, "act": "relu", "hidden": (64, 32), "reg": np.float64(0.0), "lr": 0.01}
    assert trial_id(cfg) == trial_id(shuffled)
    assert canonical_json(cfg) == canonical_json(shuffled)
    assert trial_id(cfg) != trial_id(dict(cfg, seed=4))
    assert len(trial_id(cfg)) == 16 and int(trial_id(cfg), 16) >= 0
    code = ("import json,sys; from nnlite.sweep import trial_id; "
            "print(trial_id(json.loads(sys.argv[1])))")
    for hash_seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONHASHSEED=hash_seed), check=True)
        assert out.stdout.strip() == trial_id(cfg)
    with pytest.raises(TypeError, match="config must be a dict"):
        trial_id([1, 2])


# ----------------------------------------------------------------------------------------
# running, incremental writes, resume
# ----------------------------------------------------------------------------------------
def test_serial_run_writes_rows_and_returns_them_in_study_order(tmp_path, capsys):
    study = _lsq_study()
    path = tmp_path / "res" / "lsq.jsonl"
    rows = run_study(study, lsq_trial, path)
    assert [r["trial_id"] for r in rows] == [t.trial_id for t in study.trials()]
    assert all(r["status"] == "ok" and r["error"] is None for r in rows)
    on_disk = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(on_disk) == len(study) == 8
    r = on_disk[0]
    assert set(r) >= {"trial_id", "config", "seed", "metrics", "wall_time", "status", "error", "finished_at"}
    assert r["config"]["seed"] == r["seed"] and r["wall_time"] >= 0
    assert isinstance(r["metrics"]["w_norm"], float)  # numpy scalar converted
    assert r["metrics"] == lsq_trial(r["config"])
    err = capsys.readouterr().err
    assert "[sweep 8/8] ok" in err and "8 trials, 0 already done" in err
    # a second run finds everything done
    again = run_study(study, lsq_trial, path, progress=False)
    assert again == rows
    assert len(path.read_text().splitlines()) == 8


def test_interrupt_keeps_finished_rows_and_resume_runs_only_the_rest(tmp_path):
    study = _counting_study(tmp_path, crash_after=3)
    path = tmp_path / "r.jsonl"
    (tmp_path / "calls" / "crash").write_text("")
    with pytest.raises(KeyboardInterrupt):
        run_study(study, counting_trial, path, progress=False)
    first = read_results(path)
    assert len(first) == 3 and all(r["status"] == "ok" for r in first)
    assert sum(_calls(tmp_path / "calls").values()) == 4  # the 4th call was interrupted

    (tmp_path / "calls" / "crash").unlink()
    rows = run_study(study, counting_trial, path, progress=False)
    assert len(rows) == len(study) == 8 and all(r["status"] == "ok" for r in rows)
    calls = _calls(tmp_path / "calls")
    finished_first = {(r["config"]["x"], r["seed"]) for r in first}
    assert all(calls[key] == 1 for key in finished_first)  # not rerun
    assert sum(calls.values()) == 8 + 1  # only the interrupted trial ran twice
    assert len(read_results(path)) == 8
    assert {(r["config"]["x"], r["seed"]): r["metrics"]["score"] for r in rows} == {
        (x, s): x * 10.0 + s for x in range(4) for s in (0, 1)}


def test_failing_trial_is_recorded_others_go_on_and_rerun_retries_it(tmp_path):
    study = _counting_study(tmp_path, bad_x=2)
    path = tmp_path / "r.jsonl"
    (tmp_path / "calls" / "fail").write_text("")
    rows = run_study(study, counting_trial, path, progress=False)
    bad = [r for r in rows if r["status"] == "error"]
    assert len(rows) == 8 and len(bad) == 2
    assert {r["config"]["x"] for r in bad} == {2}
    assert bad[0]["error"] == "ValueError: bad x 2"
    assert "counting_trial" in bad[0]["traceback"] and bad[0]["metrics"] == {}
    assert all(r["status"] == "ok" for r in rows if r["config"]["x"] != 2)

    (tmp_path / "calls" / "fail").unlink()
    rows = run_study(study, counting_trial, path, progress=False)
    assert all(r["status"] == "ok" for r in rows)
    calls = _calls(tmp_path / "calls")
    assert {k: v for k, v in calls.items() if v != 1} == {(2, 0): 2, (2, 1): 2}
    assert len(read_results(path)) == 10  # the error rows stay in the file's history
    assert summarize(rows, "score")[2]["n_failed"] == 0


def test_bad_return_value_becomes_error_row(tmp_path):
    rows = run_study(Study({"lr": 0.1, "reg": 0.0}), _returns_list, tmp_path / "r.jsonl", progress=False)
    assert rows[0]["status"] == "error" and "must return a dict" in rows[0]["error"]


def _returns_list(config):
    return [1.0]


def test_truncated_last_line_is_ignored_with_warning_and_rerun(tmp_path):
    study = _counting_study(tmp_path, n_x=3, seeds=(0,))
    path = tmp_path / "r.jsonl"
    run_study(study, counting_trial, path, progress=False)
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    last = json.loads(data[last_start:])
    path.write_bytes(data[: last_start + 25])  # a crash half-way through writing the last row
    with pytest.warns(TruncatedResultsWarning, match="incomplete last line"):
        assert len(read_results(path)) == 2
    with pytest.warns(TruncatedResultsWarning):
        rows = run_study(study, counting_trial, path, progress=False)
    assert all(r["status"] == "ok" for r in rows) and len(rows) == 3
    calls = _calls(tmp_path / "calls")
    assert calls[(last["config"]["x"], 0)] == 2 and sum(calls.values()) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_results(path)) == 3  # the partial line was cut away
    # a complete last row that only lost its newline counts as finished
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_study(Study(study.baseline, grid={"x": [0, 1, 2, 3]}, seeds=[0]), counting_trial, path,
                  progress=False)
    assert sum(_calls(tmp_path / "calls").values()) == 5
    assert len(read_results(path)) == 4


def test_corrupt_line_in_the_middle_is_skipped_then_quarantined(tmp_path):
    path = tmp_path / "r.jsonl"
    run_study(_lsq_study(seeds=[0]), lsq_trial, path, progress=False)
    lines = path.read_text().splitlines()
    n = len(lines)
    damaged = lines[1][:10]
    lines[1] = damaged
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(DamagedResultsWarning, match="ignoring line 2: not a results row"):
        assert len(read_results(path)) == n - 1
    with pytest.warns(DamagedResultsWarning) as caught:
        rows = run_study(_lsq_study(seeds=[0]), lsq_trial, path, progress=False)
    assert any(re.search(r"moved the damaged line 2 to .*r\.jsonl\.damaged", str(w.message))
               for w in caught)
    assert len(rows) == n and all(r["status"] == "ok" for r in rows)
    assert quarantine_path(path).read_text() == damaged + "\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_results(path)) == n


def test_damaged_last_line_with_newline_then_two_more_runs(tmp_path):
    """Issue 13: a damaged but newline-terminated last line used to be skipped by the reader,
    appended after by the writer, and then fail every later run as 'line N is not a results row'."""
    study = _counting_study(tmp_path, n_x=3, seeds=(0,))
    path = tmp_path / "r.jsonl"
    run_study(study, counting_trial, path, progress=False)
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    garbage = data[last_start: last_start + 25] + b"\n"  # damaged, but newline-terminated
    path.write_bytes(data[:last_start] + garbage)
    with pytest.warns(DamagedResultsWarning):
        rows = run_study(study, counting_trial, path, progress=False)  # run 1 after the damage
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    bigger = Study(study.baseline, grid={"x": [0, 1, 2, 3]}, seeds=[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # run 2: the file is clean again, nothing to warn about
        rows = run_study(bigger, counting_trial, path, progress=False)
        assert len(rows) == 4 and len(read_results(path)) == 4
    assert quarantine_path(path).read_bytes() == garbage
    assert sum(_calls(tmp_path / "calls").values()) == 3 + 1 + 1  # first run, the damaged trial, x=3


def test_a_file_that_is_no_results_file_is_refused_not_rewritten(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="no line is a results row"):
        read_results(path)
    with pytest.raises(ValueError, match="no line is a results row"):
        run_study(_lsq_study(seeds=[0]), lsq_trial, path, progress=False)
    assert path.read_text() == "a,b,c\n1,2,3\n4,5,6\n" and not quarantine_path(path).exists()


def test_no_resume_moves_old_results_aside(tmp_path):
    study = _counting_study(tmp_path, n_x=2, seeds=(0,))
    path = tmp_path / "r.jsonl"
    run_study(study, counting_trial, path, progress=False)
    run_study(study, counting_trial, path, progress=False, resume=False)
    assert sum(_calls(tmp_path / "calls").values()) == 4
    backups = list(tmp_path.glob("r.jsonl.*.bak"))
    assert len(backups) == 1 and len(read_results(backups[0])) == 2
    assert len(read_results(path)) == 2


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(study={"a": 1}), TypeError, "nnlite.sweep.Study"),
    (dict(trial_fn=3), TypeError, "callable"),
    (dict(results_path=3), TypeError, "results_path"),
    (dict(n_jobs=0), ValueError, "n_jobs must be >= 1"),
    (dict(n_jobs=2.0), TypeError, "n_jobs must be an int"),
    (dict(threads_per_worker=0), ValueError, "threads_per_worker"),
    (dict(scheduler=8786), TypeError, "scheduler"),
    (dict(progress="yes"), TypeError, "progress"),
])
def test_run_study_rejects_bad_input(tmp_path, kwargs, exc, match):
    args = dict(study=_lsq_study(), trial_fn=lsq_trial, results_path=tmp_path / "r.jsonl", progress=False)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        run_study(**args)


def test_parallel_needs_joblib_but_serial_does_not(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "joblib", None)  # import joblib now raises ImportError
    with pytest.raises(ImportError, match=r"pip install nnlite\[sweep\]"):
        run_study(_lsq_study(), lsq_trial, tmp_path / "a.jsonl", n_jobs=2, progress=False)
    rows = run_study(_lsq_study(), lsq_trial, tmp_path / "b.jsonl", progress=False)
    assert len(rows) == 8
    code = ("import sys; sys.modules['joblib'] = None; sys.modules['distributed'] = None; "
            "import nnlite.sweep as s; print(len(s.Study({'a': 1}, grid={'a': [1, 2]}).trials()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


# ----------------------------------------------------------------------------------------
# parallel: joblib and Dask give the same metrics
# ----------------------------------------------------------------------------------------
def _metrics_by_id(rows):
    return {r["trial_id"]: r["metrics"] for r in rows}


def test_serial_joblib_and_dask_give_identical_metrics(tmp_path):
    pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    study = _lsq_study(seeds=(0, 1, 2))
    serial = run_study(study, lsq_trial, tmp_path / "serial.jsonl", progress=False)
    par = run_study(study, lsq_trial, tmp_path / "par.jsonl", n_jobs=2, progress=False)
    assert all(r["status"] == "ok" for r in serial + par)
    assert _metrics_by_id(par) == _metrics_by_id(serial)
    assert all(not r["worker"].endswith(f":{os.getpid()}") for r in par)  # ran in worker processes
    assert len(read_results(tmp_path / "par.jsonl")) == len(study)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        dask_rows = run_study(study, lsq_trial, tmp_path / "dask.jsonl", scheduler=cluster.scheduler_address,
                              progress=False)
    assert all(r["status"] == "ok" for r in dask_rows)
    assert _metrics_by_id(dask_rows) == _metrics_by_id(serial)
    assert len({r["worker"] for r in dask_rows} - {r["worker"] for r in serial}) >= 1
    assert len(read_results(tmp_path / "dask.jsonl")) == len(study)


def test_joblib_workers_get_thread_caps(tmp_path):
    pytest.importorskip("joblib")
    study = Study({"a": 0}, grid={"a": [0, 1, 2, 3]})
    rows = run_study(study, env_trial, tmp_path / "env.jsonl", n_jobs=2, progress=False)
    expected = max(1, available_cores() // 2)
    for r in rows:
        assert r["metrics"] == {"OMP_NUM_THREADS": expected, "OPENBLAS_NUM_THREADS": expected,
                                "MKL_NUM_THREADS": expected}
    rows = run_study(study, env_trial, tmp_path / "env1.jsonl", n_jobs=2, threads_per_worker=1,
                     progress=False)
    assert all(r["metrics"]["OMP_NUM_THREADS"] == 1 for r in rows)


def test_worker_crash_loses_no_finished_row_and_resume_completes(tmp_path):
    joblib = pytest.importorskip("joblib")
    study = _counting_study(tmp_path, n_x=6, seeds=(0,))
    study = Study(study.baseline, grid={"x": [0, 1, 2, 4, 5, 3]}, seeds=[0])  # the killer runs last
    path = tmp_path / "r.jsonl"
    (tmp_path / "calls" / "die").write_text("")
    with pytest.raises(joblib.externals.loky.process_executor.TerminatedWorkerError):
        run_study(study, dying_trial, path, n_jobs=2, progress=False)
    first = read_results(path)
    assert all(r["status"] == "ok" for r in first) and 3 not in {r["config"]["x"] for r in first}
    (tmp_path / "calls" / "die").unlink()
    rows = run_study(study, dying_trial, path, n_jobs=2, progress=False)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    calls = _calls(tmp_path / "calls")
    assert all(calls[(r["config"]["x"], 0)] == 1 for r in first)  # finished trials not rerun
    assert len(read_results(path)) == 6


# ----------------------------------------------------------------------------------------
# reports
# ----------------------------------------------------------------------------------------
def _fake_rows(study, values, status=None):
    """Rows for every trial of ``study``, test_acc = values[(param-tuple, seed)] via a function."""
    rows = []
    for t in study.trials():
        ok = status is None or status(t)
        rows.append({"trial_id": t.trial_id, "config": t.config, "seed": t.seed,
                     "metrics": {"test_acc": values(t)} if ok else {}, "wall_time": 0.1,
                     "status": "ok" if ok else "error", "error": None if ok else "ValueError: x",
                     "finished_at": "2024-01-01T00:00:00+00:00"})
    return rows


def test_summarize_mean_and_std_over_seeds():
    study = _lsq_study(seeds=(0, 1, 2))
    rng = np.random.default_rng(0)
    table = {(t.config["lr"], t.config["reg"], t.seed): float(rng.random()) for t in study.trials()}
    rows = _fake_rows(study, lambda t: table[(t.config["lr"], t.config["reg"], t.seed)])
    summary = summarize(rows, "test_acc")
    assert len(summary) == 4
    for entry in summary:
        vals = [table[(entry["config"]["lr"], entry["config"]["reg"], s)] for s in (0, 1, 2)]
        assert entry["n"] == 3 and entry["seeds"] == [0, 1, 2] and "seed" not in entry["config"]
        assert entry["mean"] == pytest.approx(sum(vals) / 3, rel=1e-12)
        m = sum(vals) / 3
        assert entry["std"] == pytest.approx((sum((v - m) ** 2 for v in vals) / 2) ** 0.5, rel=1e-12)
    pop = summarize(rows, "test_acc", ddof=0)
    assert pop[0]["std"] == pytest.approx(np.std(pop[0]["values"]), rel=1e-12)
    with pytest.raises(ValueError, match="'nope' is not in the results"):
        summarize(rows, "nope")
    with pytest.raises(TypeError, match="metric must be a str"):
        summarize(rows, 3)
    single = summarize(rows[:1], "test_acc")
    assert single[0]["n"] == 1 and np.isnan(single[0]["std"])


def test_ablation_table_markdown_format():
    study = Study({"lr": 0.01, "reg": 0.0}, ablations={"reg": [0.0, 0.001, 0.01], "lr": [0.001, 0.01]},
                  seeds=[0, 1])
    accs = {(0.01, 0.0): (0.40, 0.42), (0.01, 0.001): (0.41, 0.41), (0.01, 0.01): (0.39, 0.35),
            (0.001, 0.0): (0.30, 0.30)}
    rows = _fake_rows(study, lambda t: accs[(t.config["lr"], t.config["reg"])][t.seed],
                      status=lambda t: not (t.config["reg"] == 0.01 and t.seed == 1))
    tables = ablation_tables(rows, study, "test_acc")
    assert list(tables) == ["reg", "lr"]
    assert tables["reg"] == (
        "| reg | test_acc (mean ± std) | n |\n"
        "|---|---|---|\n"
        "| 0 (baseline) | 0.41 ± 0.01414 | 2 |\n"
        "| 0.001 | 0.41 ± 0 | 2 |\n"
        "| 0.01 | 0.39 | 1 (1 failed) |\n")
    assert tables["lr"].splitlines()[2:] == ["| 0.001 | 0.3 ± 0 | 2 |", "| 0.01 (baseline) | 0.41 ± 0.01414 | 2 |"]
    md = summary_table(rows, "test_acc", study=study)
    assert md.splitlines()[0] == "| reg | lr | test_acc (mean ± std) | n |"
    assert len(md.splitlines()) == 2 + 4


def test_grid_tables_pool_other_params():
    study = Study({"a": 1, "b": 1}, grid={"a": [1, 2], "b": [10, 20]}, seeds=[0])
    rows = _fake_rows(study, lambda t: float(t.config["a"] * 100 + t.config["b"]))
    tables = ablation_tables(rows, study, "test_acc")
    assert tables["a"].splitlines()[0] == "| a | test_acc (mean ± std over other params and seeds) | n |"
    assert tables["a"].splitlines()[2] == "| 1 | 115 ± 7.071 | 2 |"


def test_choose_xscale():
    assert choose_xscale("lr", [1e-3, 1e-2, 5e-2]) == ("log", None)
    assert choose_xscale("learning_rate", [0.01, 0.02]) == ("log", None)
    assert choose_xscale("reg", [0.0, 1e-3, 1e-2]) == ("symlog", 1e-3)
    assert choose_xscale("weight_decay", [1e-4, 1e-3]) == ("log", None)
    assert choose_xscale("lr_decay", [1.0, 0.99, 0.9, 0.8]) == ("linear", None)
    assert choose_xscale("batch_size", [128, 256, 512, 1024]) == ("linear", None)
    assert choose_xscale("hidden", [8, 64, 1024]) == ("log", None)  # spans >= 2 decades
    assert choose_xscale("momentum", [-0.5, 0.9]) == ("linear", None)
    assert choose_xscale("act", ["relu", "tanh"]) == ("category", None)
    assert choose_xscale("flag", [True, False]) == ("category", None)


def test_plot_ablation_writes_figure_with_log_axis_for_lr(tmp_path):
    study = Study({"lr": 0.01, "reg": 0.0, "act": "relu"},
                  ablations={"lr": [1e-3, 1e-2, 5e-2], "reg": [0.0, 1e-3], "act": ["relu", "tanh"]},
                  seeds=[0, 1])
    rows = _fake_rows(study, lambda t: 0.5 + 0.1 * t.seed + t.config["lr"])
    fig = plot_ablation(rows, study, "lr", "test_acc", tmp_path / "figs" / "lr.png")
    assert (tmp_path / "figs" / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr"
    assert "mean ± std" in ax.get_ylabel()
    fig = plot_ablation(rows, study, "act", "test_acc", tmp_path / "act.png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["relu", "tanh"]
    assert plot_ablation(rows, study, "reg", "test_acc", tmp_path / "reg.png").axes[0].get_xscale() == "symlog"
    with pytest.raises(ValueError, match="does not vary 'bs'"):
        plot_ablation(rows, study, "bs", "test_acc", tmp_path / "x.png")
    with pytest.raises(ValueError, match="no finished"):
        plot_ablation([], study, "lr", "test_acc", tmp_path / "x.png")


def test_no_pyplot_import():
    code = ("import sys, tempfile, os; from nnlite.sweep import Study, plot_ablation; "
            "s = Study({'lr': 0.1}, ablations={'lr': [0.01, 0.1]}); "
            "rows = [dict(trial_id=t.trial_id, config=t.config, seed=t.seed, metrics={'m': 1.0}, status='ok') "
            "for t in s.trials()]; "
            "assert 'matplotlib' not in sys.modules; "
            "plot_ablation(rows, s, 'lr', 'm', os.path.join(tempfile.mkdtemp(), 'a.png')); "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_write_report(tmp_path):
    study = Study({"lr": 0.01, "reg": 0.0}, ablations={"lr": [1e-3, 1e-2], "reg": [0.0, 1e-3]}, seeds=[0, 1])
    rows = _fake_rows(study, lambda t: 0.4 + t.config["reg"] + 0.01 * t.seed,
                      status=lambda t: t.config["lr"] != 1e-3 or t.seed == 0)
    paths = write_report(rows, study, "test_acc", tmp_path / "report")
    assert [p.name for p in paths] == ["tables.md", "lr.png", "reg.png"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    text = paths[0].read_text()
    assert "## lr\n" in text and "## reg\n" in text and "| reg | test_acc (mean ± std) | n |" in text
    assert "## Failed trials" in text and "1 failed" in text


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def test_add_sweep_args():
    parser = add_sweep_args(argparse.ArgumentParser())
    args = parser.parse_args([])
    assert sweep_options(args) == {"n_jobs": 1, "scheduler": None, "threads_per_worker": None, "resume": True}
    args = parser.parse_args(["--jobs", "3", "--dask-scheduler", "tcp://10.0.0.1:8786", "--no-resume",
                              "--threads-per-worker", "2"])
    assert sweep_options(args) == {"n_jobs": 3, "scheduler": "tcp://10.0.0.1:8786",
                                   "threads_per_worker": 2, "resume": False}
    assert parser.parse_args(["--jobs", "-1"]).jobs == -1
    for bad in (["--jobs", "0"], ["--jobs", "two"], ["--threads-per-worker", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(TypeError, match="ArgumentParser"):
        add_sweep_args("parser")
    with pytest.raises(ValueError, match="add_sweep_args"):
        sweep_options(argparse.Namespace(jobs=1))
