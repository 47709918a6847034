"""Hyper-parameter studies run as parallel, resumable sweeps.

Describe a study (a baseline configuration plus a grid or one-at-a-time
ablations, repeated over seeds), run it serially, in local worker processes
(joblib) or on a Dask cluster, and report mean ± std over seeds as Markdown
tables and figures::

    from nnlite.sweep import Study, run_study, write_report

    study = Study({"lr": 1e-2, "reg": 0.0, "batch_size": 256},
                  ablations={"reg": [0.0, 1e-3, 1e-2], "lr": [1e-3, 1e-2, 5e-2]},
                  seeds=3)
    rows = run_study(study, train_one, "runs/reg_lr.jsonl", n_jobs=4)
    write_report(rows, study, "test_acc", "runs/reg_lr_report")

``train_one(config) -> dict`` must be a module-level function whose metrics
depend only on ``config`` (which carries ``config["seed"]``).  Finished trials
are appended to the results file as they complete; running again resumes.

joblib (parallel runs) and dask.distributed (clusters) are optional:
``pip install nnlite[sweep]``.
"""
from .report import ablation_tables, choose_xscale, plot_ablation, summarize, summary_table, write_report
from .results import (DamagedResultsWarning, ResultsWriter, TruncatedResultsWarning, latest_rows,
                      quarantine_path, read_results)
from .runner import add_sweep_args, available_cores, run_study, sweep_options
from .study import Study, Trial, canonical_json, trial_id

__all__ = [
    "Study", "Trial", "canonical_json", "trial_id",
    "run_study", "add_sweep_args", "sweep_options", "available_cores",
    "read_results", "latest_rows", "ResultsWriter", "TruncatedResultsWarning",
    "DamagedResultsWarning", "quarantine_path",
    "summarize", "summary_table", "ablation_tables", "plot_ablation", "write_report", "choose_xscale",
]
