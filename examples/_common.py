"""Small helpers shared by the example scripts: arguments, run folders, metrics and reports."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def base_parser(description: str, default_name: str) -> argparse.ArgumentParser:
    """Every example takes --quick, --seed and --out (runs/<name>/ by default)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short run on a subset (for CI and smoke tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice in the run")
    p.add_argument("--out", default=f"runs/{default_name}", help="output folder (figures, metrics.json, report.md)")
    return p


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
    """Write JSON atomically (temp file in the same folder + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(data), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def machine_info() -> dict:
    return {"python": sys.version.split()[0], "numpy": np.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count()}


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
