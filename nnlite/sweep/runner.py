"""Running a study: serially, in local worker processes (joblib/loky), or on Dask.

:func:`run_study` reads the results file first and only runs the trials that
have no ``"ok"`` row yet (failed trials are retried).  Each finished trial is
appended to the file by the parent process as soon as it arrives, so an
interrupted sweep resumes where it stopped.  No scheduling is done here:
parallel runs go through ``joblib.Parallel`` (loky worker processes) and, when
a Dask scheduler address is given, through joblib's ``"dask"`` backend on a
``dask.distributed.Client``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path

from .._checks import check_bool, check_int, check_path
from .results import ResultsWriter, latest_rows, read_results
from .study import Study, _json_default

__all__ = ["run_study", "add_sweep_args", "sweep_options", "available_cores", "THREAD_ENV_VARS"]

#: Environment variables that cap the thread pools of BLAS / OpenMP libraries.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_INSTALL_HINT = "pip install nnlite[sweep]"


# ----------------------------------------------------------------------------------------
# optional dependencies
# ----------------------------------------------------------------------------------------
def _require_joblib():
    try:
        import joblib
    except ImportError as exc:
        raise ImportError(
            f"parallel sweeps (n_jobs > 1 or a Dask scheduler) need joblib: "
            f"{_INSTALL_HINT} (or pip install joblib)") from exc
    try:
        major, minor = (int(p) for p in joblib.__version__.split(".")[:2])
    except ValueError:  # unusual version string: trust it
        return joblib
    if (major, minor) < (1, 4):
        raise ImportError(f"parallel sweeps need joblib >= 1.4 (for return_as='generator_unordered'), "
                          f"found {joblib.__version__}: pip install -U joblib")
    return joblib


def _require_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running on a Dask cluster needs dask.distributed: {_INSTALL_HINT} "
            f"(or pip install 'dask[distributed]')") from exc
    return distributed


def _thread_limiter(threads):
    """A context that caps BLAS/OpenMP threads with threadpoolctl when it is installed."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def available_cores() -> int:
    """Number of CPU cores this process may use (affinity-aware when the OS tells)."""
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        n = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count()
    return max(1, n or 1)


# ----------------------------------------------------------------------------------------
# one trial (runs in the worker)
# ----------------------------------------------------------------------------------------
def _jsonable_metrics(metrics) -> dict:
    if not isinstance(metrics, dict):
        raise TypeError(f"trial_fn must return a dict of metrics, got {type(metrics).__name__}")
    for key in metrics:
        if not isinstance(key, str):
            raise TypeError(f"metric names must be str, got {type(key).__name__} {key!r}")
    return json.loads(json.dumps(metrics, default=_json_default))


def _execute_trial(trial_fn, trial_id: str, config: dict, seed: int, threads, set_env: bool) -> dict:
    """Run ``trial_fn(config)`` and return a results row; exceptions become an error row.

    ``KeyboardInterrupt``/``SystemExit`` are not caught: they stop the sweep.
    """
    if threads is not None and set_env:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(threads)
    metrics, status, error, tb = {}, "ok", None, None
    start = time.perf_counter()
    try:
        with _thread_limiter(threads):
            out = trial_fn(copy.deepcopy(config))
        metrics = _jsonable_metrics(out)
    except Exception as exc:  # noqa: BLE001 - a failing trial must not stop the sweep
        status, metrics = "error", {}
        error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
    wall = time.perf_counter() - start
    return {
        "trial_id": trial_id,
        "config": config,
        "seed": seed,
        "metrics": metrics,
        "wall_time": wall,
        "status": status,
        "error": error,
        "traceback": tb,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
    }


# ----------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------
def _check_scheduler(scheduler):
    if scheduler is None or isinstance(scheduler, str):
        if isinstance(scheduler, str) and not scheduler.strip():
            raise ValueError("scheduler must be a Dask scheduler address like 'tcp://host:8786', got ''")
        return scheduler
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(scheduler, distributed.Client):
        return scheduler
    raise TypeError(f"scheduler must be None, an address str like 'tcp://host:8786' or a "
                    f"dask.distributed.Client, got {type(scheduler).__name__}")


def _backup_path(path: Path) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    k = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}-{k}.bak")
        k += 1
    return candidate


# ----------------------------------------------------------------------------------------
# progress
# ----------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, float):
        return format(v, ".4g")
    return str(v)


def _progress_line(k, total, row, params) -> str:
    cfg = row["config"]
    shown = " ".join(f"{p}={_fmt(cfg.get(p))}" for p in params)
    head = f"[sweep {k}/{total}] {row['status']:5s} {row['wall_time']:7.2f}s  {shown} seed={row['seed']}"
    if row["status"] == "ok":
        mets = list(row["metrics"].items())[:4]
        return head + "  " + " ".join(f"{m}={_fmt(v)}" for m, v in mets)
    if row["error"]:
        return head + "  " + str(row["error"]).splitlines()[0][:120]
    return head


def _say(progress, text):
    if progress:
        print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------
def run_study(study, trial_fn, results_path, n_jobs=1, scheduler=None, threads_per_worker=None,
              progress=True, resume=True) -> list:
    """Run the unfinished trials of ``study`` and return one result row per trial.

    study: Study; trial_fn: callable ``trial_fn(config) -> dict`` of metrics; results_path:
    str or PathLike; n_jobs: int >= 1 or -1 (default 1); scheduler: str, Dask Client or None;
    threads_per_worker: int >= 1 or None; progress, resume: bool (default True)
    -> list of dict: for every trial of the study that has a row (normally all of them), its
    latest row (an ``"ok"`` row wins), in the study's trial order.

    ``trial_fn``'s ``config`` includes ``"seed"``; its metrics should depend only on
    ``config``. For parallel runs it must be picklable: a function defined at module level in
    an importable module (on Dask: importable on the workers too).
    ``results_path`` is a JSON-lines file; rows are appended as trials finish. Trials that
    already have an ``"ok"`` row there are skipped; ``"error"`` rows are retried.
    ``n_jobs``: local worker processes (joblib, loky backend); ``1`` runs in this process
    without joblib, ``-1`` uses every core. Ignored with ``scheduler`` (Dask then uses all the
    cluster's worker threads).
    ``scheduler``: address ``"tcp://host:port"`` of a running Dask scheduler (or a connected
    ``Client``); trials then run on that cluster through joblib's dask backend.
    ``threads_per_worker``: BLAS/OpenMP threads per worker. Locally the default is
    ``max(1, cores // n_jobs)`` so workers x threads <= cores; it is applied through
    ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` set when loky starts the
    workers, and through threadpoolctl if installed. On Dask the default leaves the workers as
    configured (Dask's nanny sets those variables to 1); a given value is applied with
    threadpoolctl. With ``n_jobs=1`` it only has an effect when threadpoolctl is installed.
    ``progress`` prints one line per finished trial to stderr. ``resume=False`` moves an
    existing results file aside (``<name>.<time>.bak``) and starts afresh.
    Raises KeyboardInterrupt again after the finished rows are safely on disk (run again to
    resume); ImportError for a parallel run without joblib (``pip install nnlite[sweep]``).
    """
    if not isinstance(study, Study):
        raise TypeError(f"study must be a nnlite.sweep.Study, got {type(study).__name__}")
    if not callable(trial_fn):
        raise TypeError(f"trial_fn must be callable, got {type(trial_fn).__name__}")
    path = check_path(results_path, "results_path")
    n_jobs = check_int(n_jobs, "n_jobs", minimum=1, allow=(-1,))
    scheduler = _check_scheduler(scheduler)
    if threads_per_worker is not None:
        threads_per_worker = check_int(threads_per_worker, "threads_per_worker")
    progress, resume = check_bool(progress, "progress"), check_bool(resume, "resume")

    if not resume and path.exists():
        backup = _backup_path(path)
        path.rename(backup)
        _say(progress, f"[sweep] --no-resume: moved the old results to {backup}")

    previous = read_results(path)
    done = {r["trial_id"] for r in previous if r.get("status") == "ok"}
    trials = study.trials()
    pending = [t for t in trials if t.trial_id not in done]
    cores = available_cores()
    worker_threads = threads_per_worker  # what each worker applies itself (None: leave as is)

    if not pending:
        mode = ""
        rows_iter = iter(())
    elif scheduler is not None:
        mode = f"on Dask at {scheduler if isinstance(scheduler, str) else 'the given client'}"
        rows_iter = None
    elif n_jobs == 1:
        mode = "serially in this process"
        rows_iter = (_execute_trial(trial_fn, t.trial_id, t.config, t.seed, threads_per_worker, False)
                     for t in pending)
    else:
        rows_iter = None
        workers = min(cores if n_jobs == -1 else n_jobs, len(pending))
        threads = threads_per_worker if threads_per_worker is not None else max(1, cores // workers)
        if workers * threads > cores:
            warnings.warn(f"{workers} workers x {threads} threads = {workers * threads} exceeds the "
                          f"{cores} available cores; expect oversubscription", RuntimeWarning, stacklevel=2)
        worker_threads = threads
        mode = f"with joblib in {workers} worker processes x {threads} BLAS threads"

    if pending:
        _say(progress, f"[sweep] {study.name}: {len(trials)} trials, {len(trials) - len(pending)} already "
                       f"done, running {len(pending)} {mode}; results -> {path}")
    else:
        _say(progress, f"[sweep] {study.name}: all {len(trials)} trials already done in {path}")

    new_rows = []
    with contextlib.ExitStack() as stack:
        if rows_iter is None:
            joblib = _require_joblib()
            tasks = (joblib.delayed(_execute_trial)(trial_fn, t.trial_id, t.config, t.seed,
                                                    worker_threads, True)
                     for t in pending)
            if scheduler is None:
                stack.enter_context(joblib.parallel_config(
                    backend="loky", n_jobs=workers, inner_max_num_threads=threads))
            else:
                distributed = _require_distributed()
                if threads_per_worker is not None:
                    try:
                        import threadpoolctl  # noqa: F401
                    except ImportError:
                        warnings.warn("threads_per_worker on Dask is applied with threadpoolctl, which is "
                                      "not installed here (pip install threadpoolctl); the workers keep "
                                      "their own OMP/OPENBLAS/MKL_NUM_THREADS settings", RuntimeWarning,
                                      stacklevel=2)
                if isinstance(scheduler, str):
                    client = stack.enter_context(distributed.Client(scheduler, set_as_default=False))
                else:
                    client = scheduler
                stack.enter_context(joblib.parallel_config(backend="dask", client=client))
            rows_iter = joblib.Parallel(return_as="generator_unordered", batch_size=1)(tasks)
        writer = stack.enter_context(ResultsWriter(path))
        params = study.varied_params
        try:
            for k, row in enumerate(rows_iter, start=1):
                writer.write(row)
                new_rows.append(row)
                _say(progress, _progress_line(k, len(pending), row, params))
        except KeyboardInterrupt:
            _say(progress, f"[sweep] interrupted: {len(new_rows)} of {len(pending)} trials finished and "
                           f"saved in {path}; run again to resume")
            raise
        finally:
            close = getattr(rows_iter, "close", None)
            if close is not None:
                close()

    n_err = sum(r["status"] != "ok" for r in new_rows)
    if new_rows:
        _say(progress, f"[sweep] done: {len(new_rows) - n_err} ok, {n_err} failed"
                       + (" (rerun to retry the failed trials)" if n_err else ""))
    latest = latest_rows(previous + new_rows)
    return [latest[t.trial_id] for t in trials if t.trial_id in latest]


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def _jobs_type(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs expects an integer >= 1 or -1, got {text!r}") from None
    if n < 1 and n != -1:
        raise argparse.ArgumentTypeError(f"--jobs expects an integer >= 1 or -1, got {n}")
    return n


def _threads_type(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads-per-worker expects an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--threads-per-worker expects an integer >= 1, got {n}")
    return n


def add_sweep_args(parser):
    """Add the sweep options to an ``argparse.ArgumentParser`` and return the parser.

    ``--jobs N`` (local worker processes, ``-1`` = all cores, default 1),
    ``--dask-scheduler ADDRESS`` (run on a Dask cluster), ``--threads-per-worker N``
    and ``--resume/--no-resume`` (default: resume).  Pass the parsed namespace to
    :func:`sweep_options` to get the keyword arguments of :func:`run_study`.
    """
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"parser must be an argparse.ArgumentParser, got {type(parser).__name__}")
    group = parser.add_argument_group("sweep")
    group.add_argument("--jobs", type=_jobs_type, default=1, metavar="N",
                       help="parallel worker processes (joblib); -1 = all cores (default: 1)")
    group.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                       help="run the trials on a Dask cluster, e.g. tcp://host:8786 (overrides --jobs)")
    group.add_argument("--threads-per-worker", type=_threads_type, default=None, metavar="N",
                       help="BLAS threads per worker (default: cores // jobs)")
    group.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="skip trials already finished in the results file (default: --resume)")
    return parser


def sweep_options(args) -> dict:
    """Keyword arguments for :func:`run_study` from a namespace parsed with :func:`add_sweep_args`."""
    missing = [a for a in ("jobs", "dask_scheduler", "threads_per_worker", "resume") if not hasattr(args, a)]
    if missing:
        raise ValueError(f"args must come from a parser set up with add_sweep_args; missing {missing}")
    return {"n_jobs": args.jobs, "scheduler": args.dask_scheduler,
            "threads_per_worker": args.threads_per_worker, "resume": args.resume}
