"""Small helpers shared by the example scripts: arguments, run folders, metrics and reports.

The examples are ``# %%`` cell scripts whose cells sit at the top level of the file, so
``jupytext --to notebook examples/<name>.py`` gives a notebook that runs top to bottom. The
first cell parses the arguments with :func:`parse_args`: from the command line when run as a
script, from ``$NNLITE_EXAMPLE_ARGS`` (default: none, i.e. every default) in a notebook.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from nnlite._io import atomic_open

__all__ = ["base_parser", "parse_args", "script_description", "in_notebook", "positive_int",
           "nonnegative_int", "positive_float", "nonnegative_float", "unit_interval", "closed_unit_interval",
           "decay_factor", "number_type", "number_list",
           "seed_int", "prepare_out", "write_json", "write_text", "machine_info", "compute_info",
           "describe_compute", "load_data", "is_bundled", "data_label", "quick_note", "Timer",
           "restored_epoch_text"]


# ------------------------------------------------------------------------------------------
# argparse types: each rejects a bad value with exit code 2 and a message naming the flag
# ------------------------------------------------------------------------------------------
def number_type(kind, ok, what: str):
    """An argparse type: ``text -> kind(text)``, finite, with ``ok(value)`` true; else an
    ``ArgumentTypeError`` "expected <what>, got '<text>'" (argparse adds the flag's name)."""
    def parse(text):
        try:
            v = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (isinstance(v, float) and not math.isfinite(v)) or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    parse.__doc__ = f"argparse type: {what}."
    return parse


def number_list(kind, what: str, allow_empty: bool = False, distinct: bool = False):
    """An argparse type: comma-separated positive finite numbers of ``kind`` ("32,64,128" ->
    [32, 64, 128]); at least one unless ``allow_empty`` ("" -> []); no repeats if ``distinct``."""
    item = number_type(kind, lambda v: v > 0, f"positive {what}")

    def parse(text):
        try:
            vals = [item(v) for v in text.split(",") if v.strip()]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected comma-separated positive {what}, got {text!r}") from None
        if not (vals or allow_empty) or (distinct and len(set(vals)) != len(vals)):
            rule = "distinct " if distinct else ""
            raise argparse.ArgumentTypeError(f"expected comma-separated {rule}positive {what}, got {text!r}")
        return vals
    parse.__doc__ = f"argparse type: comma-separated positive {what}."
    return parse


positive_int = number_type(int, lambda v: v >= 1, "a positive integer (>= 1)")
nonnegative_int = number_type(int, lambda v: v >= 0, "a non-negative integer (>= 0)")
seed_int = number_type(int, lambda v: 0 <= v < 2 ** 63, "a seed in [0, 2**63)")
positive_float = number_type(float, lambda v: v > 0, "a positive number (> 0)")
nonnegative_float = number_type(float, lambda v: v >= 0, "a non-negative number (>= 0)")
unit_interval = number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1) (a rate, a fraction)")
closed_unit_interval = number_type(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
decay_factor = number_type(float, lambda v: 0 < v <= 1, "a factor in (0, 1] (per epoch)")


# ------------------------------------------------------------------------------------------
# the parser
# ------------------------------------------------------------------------------------------
class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and appends "(default: ...)" to every flag with a value
    default (not to switches, and not where the help already says what the default is)."""

    def _get_help_string(self, action):
        h = action.help or ""
        if ("%(default)" in h or "default" in h.lower() or action.default in (None, argparse.SUPPRESS)
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse._HelpAction))):
            return h
        return h + " (default: %(default)s)"


def script_description(path, fallback: str = "") -> str:
    """The text of the script's first ``# %% [markdown]`` cell (its title and what it does),
    ``# `` prefixes removed: the ``--help`` description. ``path`` None (a notebook): ``fallback``."""
    if not path:
        return fallback
    lines = []
    started = False
    for line in Path(path).read_text().splitlines():
        if line.startswith("# %%"):
            if started:
                break
            started = "[markdown]" in line
            if not started:
                break
            continue
        if started:
            if not line.startswith("#"):
                break
            lines.append(line[2:] if line.startswith("# ") else line[1:])
    text = "\n".join(lines).strip().lstrip("#").strip()     # the title without its Markdown "#"
    return text or fallback          # argparse %-formats a description only if it holds "%(prog)"


def base_parser(description: str, default_name: str) -> argparse.ArgumentParser:
    """Every example takes --quick, --seed and --out (runs/<name>/ by default)."""
    p = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: a short run on a subset, for CI (the numbers are not results)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every random choice in the run")
    p.add_argument("--out", default=f"runs/{default_name}",
                   help="output folder (figures, metrics.json, report.md)")
    return p


def add_download_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--download", action="store_true",
                   help="if the data set is not found, download the official files (checksums "
                        "verified) into the nnlite cache folder")


def in_notebook() -> bool:
    """True in a Jupyter kernel or an interactive IPython shell, where ``sys.argv`` holds the
    kernel's own arguments (``ipython script.py --flags`` passes its flags in ``sys.argv``: False)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or getattr(ipython, "get_ipython", lambda: None)() is None:
        return False
    return "ipykernel" in sys.modules or not sys.argv[0].endswith(".py")


def parse_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``argv`` if given; in a notebook the words of ``$NNLITE_EXAMPLE_ARGS`` (e.g. "--quick");
    else the command line."""
    if argv is None:
        argv = shlex.split(os.environ.get("NNLITE_EXAMPLE_ARGS", "")) if in_notebook() else sys.argv[1:]
    return p.parse_args(argv)


def command_line(script: str, argv=None) -> str:
    """The command that reproduces this run (in a notebook: the script with $NNLITE_EXAMPLE_ARGS)."""
    if argv is None:
        argv = shlex.split(os.environ.get("NNLITE_EXAMPLE_ARGS", "")) if in_notebook() else sys.argv[1:]
    return " ".join(["python", f"examples/{script}", *map(shlex.quote, argv)])


# ------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------
def prepare_out(path) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_json(path, data) -> None:
    """Write JSON atomically (temp file in the same folder + rename), with the permissions of
    any new file (umask), like the figures."""
    with atomic_open(path, "w") as f:
        json.dump(_jsonable(data), f, indent=2)
        f.write("\n")


def write_text(path, text: str) -> None:
    """Write a text file atomically (UTF-8, whatever the locale), with the permissions of any new file (umask)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def machine_info() -> dict:
    return {"python": sys.version.split()[0], "numpy": np.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "compute": compute_info()}


# ------------------------------------------------------------------------------------------
# workers and BLAS
# ------------------------------------------------------------------------------------------
def compute_info() -> dict:
    """How the kernels will run: nnlite's worker count and the BLAS library (threadpoolctl)."""
    from nnlite import parallel

    info = {"workers": parallel.default_num_threads(), "threadpoolctl": None, "blas": []}
    try:
        import threadpoolctl
    except ImportError:
        return info
    info["threadpoolctl"] = threadpoolctl.__version__
    for lib in threadpoolctl.threadpool_info():
        if lib.get("user_api") == "blas":
            info["blas"].append({k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                                         "threading_layer", "architecture", "filepath")})
    return info


def describe_compute(info: dict) -> str:
    """One line: "2 workers (nnlite.parallel); BLAS: openblas 0.3.31 (pthreads, 2 threads)"."""
    w = info["workers"]
    text = f"{w} worker{'s' if w != 1 else ''} (nnlite.parallel)"
    if info["threadpoolctl"] is None:
        return (text + "; BLAS: unknown (threadpoolctl is not installed, so nnlite cannot share the "
                "cores between its workers and BLAS: pip install threadpoolctl for the fast path)")
    if not info["blas"]:
        return text + "; BLAS: none found by threadpoolctl"
    libs = ", ".join(f"{b['internal_api']} {b['version']} ({b['threading_layer']}, {b['num_threads']} "
                     f"thread{'s' if b['num_threads'] != 1 else ''})" for b in info["blas"])
    return f"{text}; BLAS: {libs}; {os.cpu_count()} CPUs"


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def load_data(loader, *args, **kwargs):
    """``loader(*args, **kwargs)``; a missing data set ends the run with the loader's message
    alone (no traceback): ``SystemExit`` with exit code 1."""
    from nnlite.data import DataNotFoundError

    try:
        return loader(*args, **kwargs)
    except DataNotFoundError as e:
        msg = str(e)
        explicit = (args[0] if args else None) or kwargs.get("path") or kwargs.get("data")
        if explicit:
            msg += ("\nIn this example: check --data, or leave it out to search $NNLITE_DATA and the "
                    "cache (and, with --download, fetch the official files).")
        elif not kwargs.get("download"):
            msg += "\nIn this example: rerun it with --download (the official files, checksums verified)."
        raise SystemExit(f"data not found: {msg}") from None


def is_bundled(ds) -> bool:
    """True when the data set is the small subset bundled with nnlite (not the full data)."""
    return str(ds.source).lower().startswith("bundled")


def data_label(ds, full: str, subset_note: str = "") -> str:
    """Short label for headlines and figure titles: ``full`` or "bundled subset (8000 train)"."""
    if is_bundled(ds):
        return f"bundled subset ({ds.x_train.shape[0]:,} train / {ds.x_test.shape[0]:,} test images)"
    return full + (f", {subset_note}" if subset_note else "")


def quick_note(what: str) -> str:
    """The report's smoke-test banner for --quick runs."""
    return (f"\n> **Smoke test (`--quick`)**: {what}. The numbers below only show that the "
            f"pipeline runs end to end; they are not results.\n")


def restored_epoch_text(stopper, epochs_run: int) -> str:
    """Which epoch's weights the model holds after an EarlyStopping callback."""
    if stopper is None or stopper.best_epoch is None:
        return f"the weights of the last epoch ({epochs_run})"
    best = stopper.best_epoch + 1
    if stopper.restore_best_weights:
        stop = (f"stopped early after epoch {stopper.stopped_epoch + 1}" if stopper.stopped_epoch is not None
                else f"ran all {epochs_run} epoch{'s' if epochs_run != 1 else ''}")
        return f"the weights of epoch {best} (best {stopper.monitor}; training {stop}; weights restored)"
    return f"the weights of the last epoch ({epochs_run}); the best {stopper.monitor} was at epoch {best}"


class Timer:
    """Stopwatch: ``with Timer() as t: ...; t.seconds`` (wall clock), ``t.cpu_seconds`` (this
    process's CPU time, all threads: on a busy machine with one BLAS thread it is close to the
    wall time the same work takes on an idle core)."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def dask_client(address, trial_file):
    """A Dask ``Client`` of the scheduler at ``address`` (not set as default), with the trial
    module ``trial_file`` (a Path) uploaded to its workers; if the upload fails, says how to
    start the workers so that they import it themselves."""
    from distributed import Client

    client = Client(address, set_as_default=False)
    try:
        client.upload_file(str(trial_file))
    except Exception as exc:  # noqa: BLE001 - the workers may import it from their PYTHONPATH
        print(f"note: could not upload {trial_file.name} to the Dask workers ({exc}); they must "
              f"import it themselves (start them with PYTHONPATH={trial_file.parent})")
    return client
