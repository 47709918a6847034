"""Timing harness: interleaved contenders, min/median per contender, ratios from the same run.

The machine is shared and noisy, so no absolute number is trusted on its own: every case times
its contenders INTERLEAVED (A, B, C, A, B, C, ...), each measurement being ``number`` calls
(calibrated per contender so one measurement lasts about ``target_s``), repeated ``repeats``
times. A contender's result is the min and the median over its repeats (seconds per call);
figures are ratios of mins (and of medians) of contenders measured in the same loop.

Between two measurements the harness waits ``SETTLE_S``: PyTorch's OpenMP threads (libgomp)
and OpenBLAS's threads spin for a while after their last call before they sleep, and a
contender measured right after another one would share the cores with those spinning threads
(about 4-9 ms of CPU after a PyTorch op was measured, against kernels of 10-50 ms).
"""
from __future__ import annotations

import ctypes
import glob
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np


@dataclass
class Timing:
    """Seconds per call of one contender: every repeat, and its min and median."""
    samples: List[float]
    number: int
    scale: float = 1.0          # divide the call time by this (e.g. images per call)

    @property
    def min(self) -> float:
        return min(self.samples) / self.scale

    @property
    def median(self) -> float:
        return statistics.median(self.samples) / self.scale

    def as_dict(self):
        return {"min_s": self.min, "median_s": self.median, "repeats": len(self.samples),
                "calls_per_repeat": self.number, "per": self.scale,
                "samples_s": [s / self.scale for s in self.samples]}


@dataclass
class Comparison:
    """Timings of several contenders of one case, all measured in the same interleaved loop."""
    case: str
    timings: Dict[str, Timing]
    meta: dict = field(default_factory=dict)

    def ratio(self, a: str, b: str, stat: str = "min") -> float:
        """time(a) / time(b) (> 1: a is slower than b)."""
        return getattr(self.timings[a], stat) / getattr(self.timings[b], stat)

    def as_dict(self):
        return {"case": self.case, "meta": self.meta,
                "timings": {k: v.as_dict() for k, v in self.timings.items()}}


#: Seconds of idle wait before every measurement (see the module docstring).
SETTLE_S = 0.02


def _calibrate(fn: Callable[[], object], target_s: float, max_number: int) -> int:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    if dt <= 0:
        return max_number
    return int(max(1, min(max_number, round(target_s / dt))))


def compare(case: str, contenders: Dict[str, Callable[[], object]], repeats: int = 7,
            target_s: float = 0.05, warmup: int = 1, scale: Optional[Dict[str, float]] = None,
            max_number: int = 1000, numbers: Optional[Dict[str, int]] = None, meta=None) -> Comparison:
    """Time ``contenders`` (name -> zero-argument callable) interleaved.

    warmup calls each first (lazy initialisation, allocator warm-up), then calibrates the
    number of calls per measurement (or takes ``numbers[name]``), then runs ``repeats``
    rounds A, B, C, A, B, C, ... ``scale[name]`` divides that contender's time (per image,
    per sample...).
    """
    scale = scale or {}
    numbers = dict(numbers or {})
    for name, fn in contenders.items():
        for _ in range(warmup):
            fn()
        if name not in numbers:
            numbers[name] = _calibrate(fn, target_s, max_number)
    samples = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            k = numbers[name]
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    timings = {name: Timing(samples[name], numbers[name], scale.get(name, 1.0)) for name in contenders}
    return Comparison(case, timings, dict(meta or {}))


# ----------------------------------------------------------------------------- machine facts

def _openblas_lib():
    base = os.path.dirname(np.__file__)
    for pattern in (base + ".libs/libscipy_openblas*.so*", base + ".libs/libopenblas*.so*",
                    base + "/.dylibs/lib*openblas*"):
        hits = glob.glob(pattern)
        if hits:
            try:
                return ctypes.CDLL(hits[0])
            except OSError:
                pass
    return None


def blas_threads() -> int:
    """Number of threads NumPy's BLAS uses (OpenBLAS query; else the environment; else cores)."""
    lib = _openblas_lib()
    if lib is not None:
        for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                    "openblas_get_num_threads"):
            f = getattr(lib, sym, None)
            if f is not None:
                return int(f())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def blas_info() -> str:
    """BLAS name/version/config as numpy.show_config() reports it (plus OpenBLAS's core)."""
    text = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        conf = blas.get("openblas configuration")
        if conf:
            text += f" ({' '.join(str(conf).split())})"
    except Exception:                                        # noqa: BLE001 (older numpy)
        pass
    lib = _openblas_lib()
    if lib is not None:
        for sym in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            f = getattr(lib, sym, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                text += f"; core {f().decode()}"
                break
    return text


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class OtherWork:
    """CPU time used by *other* processes while the suite runs, in cores (0 = an idle machine).

    The load average after a run always includes the suite's own threads (about 1.5 on 2 cores),
    so it cannot tell an idle machine from a shared one. This meter subtracts the suite's own CPU
    time (``resource.getrusage`` of this process and its waited-for children) from the machine's
    busy time (``/proc/stat``) over the run. ``cores()`` is None where /proc/stat is missing.
    """

    def __init__(self):
        self._start = self._sample()

    @staticmethod
    def _sample():
        try:
            import resource
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ImportError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)) / tick  # minus idle, iowait
        own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for f in ("ru_utime", "ru_stime"))
        return time.perf_counter(), busy, own

    def cores(self):
        end = self._sample()
        if self._start is None or end is None:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self._start, end
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9))


def machine_info(torch_mod=None) -> dict:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "blas": blas_info(),
            "numpy": np.__version__, "numpy_blas_threads": blas_threads(),
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as fh:
            m = re.search(r"MemTotal:\s+(\d+)", fh.read())
            info["memory_gib"] = round(int(m.group(1)) / 2 ** 20, 1) if m else None
    except OSError:
        pass
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    if torch_mod is not None:
        info["torch"] = torch_mod.__version__
        info["torch_threads"] = torch_mod.get_num_threads()
    return info


def load_torch(threads: int):
    """PyTorch if installed (optional), set to ``threads`` intra-op threads; else None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch
