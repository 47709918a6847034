"""Describing a hyper-parameter study and expanding it into trials.

A :class:`Study` is a baseline configuration plus *either* a full ``grid``
(cartesian product of the listed values) *or* one-at-a-time ``ablations``
(each parameter varied on its own while the others stay at the baseline),
repeated over a list of ``seeds``.

Every trial has a stable identifier: the SHA-1 of the canonical JSON of its
configuration (sorted keys, seed included).  The identifier depends only on the
configuration, never on the process, the order of the trials or the study they
came from, so a results file can be resumed from another run or machine.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import numbers
from dataclasses import dataclass

import numpy as np

from .._checks import check_str

__all__ = ["Study", "Trial", "canonical_json", "trial_id", "SEED_KEY"]

#: The key under which a trial's seed is stored in its configuration.
SEED_KEY = "seed"

#: Number of hexadecimal digits of the SHA-1 kept in a trial id (64 bits).
_ID_LENGTH = 16


def _json_default(obj):
    """Turn NumPy scalars / arrays into plain Python values for ``json.dumps``."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(
        f"configuration values must be JSON-serializable (str, int, float, bool, None, "
        f"list, dict), got {type(obj).__name__}: {obj!r}")


def canonical_json(config) -> str:
    """Return the canonical JSON text of a configuration dict.

    Keys are sorted, separators carry no spaces and NumPy scalars become plain
    Python numbers, so two equal configurations always give the same text.
    Tuples become lists.  Non-finite floats (nan, inf) are refused because
    they cannot be compared reliably.

    Raises ``TypeError`` if ``config`` is not a dict with string keys or holds a
    value JSON cannot represent, ``ValueError`` for nan/inf values.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    for key in config:
        if not isinstance(key, str):
            raise TypeError(f"config keys must be str, got {type(key).__name__} key {key!r}")
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"),
                          default=_json_default, allow_nan=False, ensure_ascii=True)
    except ValueError as exc:
        raise ValueError(f"config values must be finite numbers, got nan or inf in {config!r}") from exc


def normalize_config(config) -> dict:
    """Return the JSON round-trip of ``config`` (what a trial function receives).

    NumPy scalars become Python numbers and tuples become lists, so a trial sees
    exactly the same configuration whether it runs now or is resumed from disk.
    """
    return json.loads(canonical_json(config))


def trial_id(config) -> str:
    """Stable identifier of a trial configuration (seed included).

    The first 16 hexadecimal digits of the SHA-1 of :func:`canonical_json`.
    Equal configurations give equal ids in any process; note that ``1`` and
    ``1.0`` are different JSON and hence different ids.
    """
    text = canonical_json(config)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:_ID_LENGTH]


def _value_key(value) -> str:
    """Canonical text of one parameter value, used to compare values."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          default=_json_default, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"parameter values must be finite, got {value!r}") from exc


@dataclass(frozen=True)
class Trial:
    """One unit of work: its id, full ``config`` (``seed`` included), ``seed`` and
    ``setting`` (the configuration without the seed)."""

    trial_id: str
    config: dict
    seed: int
    setting: dict

    def __hash__(self) -> int:
        return hash(self.trial_id)

    def __repr__(self) -> str:
        return f"Trial({self.trial_id}, seed={self.seed}, {self.setting!r})"


def _check_values(kind: str, values: dict, baseline: dict, need_in_baseline: bool) -> dict:
    """Validate a ``{param: [values]}`` mapping and return it with normalized lists."""
    if not isinstance(values, dict):
        raise TypeError(f"{kind} must be a dict mapping parameter name -> list of values, "
                        f"got {type(values).__name__}")
    if not values:
        raise ValueError(f"{kind} must name at least one parameter, got an empty dict")
    out = {}
    for name, vals in values.items():
        if not isinstance(name, str):
            raise TypeError(f"{kind} parameter names must be str, got {type(name).__name__} {name!r}")
        if name == SEED_KEY:
            raise ValueError(f"{kind} may not vary {SEED_KEY!r}; pass the seeds as Study(seeds=[...])")
        if isinstance(vals, (str, bytes, dict)) or not isinstance(vals, (list, tuple, np.ndarray, range)):
            raise TypeError(f"{kind}[{name!r}] must be a list of values, got {type(vals).__name__} {vals!r}")
        vals = list(vals.tolist() if isinstance(vals, np.ndarray) else vals)
        if not vals:
            raise ValueError(f"{kind}[{name!r}] must list at least one value, got an empty list")
        seen = set()
        for v in vals:
            key = _value_key(v)
            if key in seen:
                raise ValueError(f"{kind}[{name!r}] lists the value {v!r} more than once: {vals!r}")
            seen.add(key)
        if need_in_baseline and name not in baseline:
            raise ValueError(f"ablated parameter {name!r} must have a baseline value; baseline has "
                             f"keys {sorted(baseline)}")
        out[name] = normalize_config({"v": vals})["v"]
    return out


class Study:
    """A hyper-parameter study: a baseline, a grid or ablations, and seeds.

    baseline: dict; grid, ablations: dict ``{param: [values]}`` or None; seeds: int or
    sequence of int (default (0,)); name: str (default "study").
    ``baseline`` is the reference configuration (JSON-serializable values, no ``seed`` key).
    ``grid``: every combination is run (cartesian product), other keys keep their baseline
    values; its parameters need not be in the baseline. ``ablations``: each parameter is
    varied on its own with the rest held at the baseline; each must have a baseline value, and
    the baseline configuration itself is run only once (per seed) however many ablation lists
    contain the baseline value. Give at most one of ``grid`` and ``ablations``; with neither
    the study runs the baseline once per seed. ``seeds`` are the repeats: an int ``k`` means
    ``range(k)``; each trial receives its seed as ``config["seed"]``. ``name`` labels reports.
    """

    def __init__(self, baseline, grid=None, ablations=None, seeds=(0,), name: str = "study"):
        if not isinstance(baseline, dict):
            raise TypeError(f"baseline must be a dict, got {type(baseline).__name__}")
        if SEED_KEY in baseline:
            raise ValueError(f"baseline must not contain {SEED_KEY!r}; pass the seeds as Study(seeds=[...])")
        if grid is not None and ablations is not None:
            raise ValueError("give either grid= (full cartesian product) or ablations= "
                             "(one parameter at a time), not both")
        check_str(name, "name")
        self.name = name
        self.baseline = normalize_config(baseline)
        self.grid = None if grid is None else _check_values("grid", grid, self.baseline, False)
        self.ablations = (None if ablations is None
                          else _check_values("ablations", ablations, self.baseline, True))
        self.seeds = self._check_seeds(seeds)
        self._settings = self._expand_settings()

    # -- validation -----------------------------------------------------------------------
    @staticmethod
    def _check_seeds(seeds) -> list:
        if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
            if seeds < 1:
                raise ValueError(f"seeds as an int is the number of repeats and must be >= 1, got {seeds}")
            return list(range(int(seeds)))
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
            raise TypeError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__}")
        out = []
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral):
                raise TypeError(f"seeds must be ints, got {type(s).__name__} {s!r}")
            if s < 0:
                raise ValueError(f"seeds must be non-negative ints (numpy seeds), got {int(s)}")
            out.append(int(s))
        if not out:
            raise ValueError("seeds must list at least one seed, got an empty sequence")
        if len(set(out)) != len(out):
            raise ValueError(f"seeds must be distinct, got {out}")
        return out

    # -- expansion ------------------------------------------------------------------------
    def _expand_settings(self) -> list:
        settings = []
        seen = set()

        def _add(cfg):
            key = canonical_json(cfg)
            if key not in seen:
                seen.add(key)
                settings.append(cfg)

        if self.grid is not None:
            names = list(self.grid)
            for combo in itertools.product(*(self.grid[n] for n in names)):
                cfg = dict(self.baseline)
                cfg.update(zip(names, combo))
                _add(cfg)
        elif self.ablations is not None:
            _add(dict(self.baseline))
            for name, values in self.ablations.items():
                for v in values:
                    cfg = dict(self.baseline)
                    cfg[name] = v
                    _add(cfg)
        else:
            _add(dict(self.baseline))
        return settings

    @property
    def kind(self) -> str:
        """``"grid"``, ``"ablation"`` or ``"baseline"`` (neither grid nor ablations)."""
        if self.grid is not None:
            return "grid"
        if self.ablations is not None:
            return "ablation"
        return "baseline"

    @property
    def varied_params(self) -> list:
        """Names of the parameters the study varies, in the order given."""
        if self.grid is not None:
            return list(self.grid)
        if self.ablations is not None:
            return list(self.ablations)
        return []

    def settings(self) -> list:
        """Distinct configurations without seed, in expansion order (copies)."""
        return [dict(s) for s in self._settings]

    def trials(self) -> list:
        """All trials: every setting for the first seed, then for the next seed, ...

        Seeds are the outer loop so that an interrupted sweep has covered as many
        settings as possible.
        """
        out = []
        for seed in self.seeds:
            for setting in self._settings:
                cfg = dict(setting)
                cfg[SEED_KEY] = seed
                out.append(Trial(trial_id(cfg), cfg, seed, dict(setting)))
        return out

    def __len__(self) -> int:
        return len(self._settings) * len(self.seeds)

    def param_values(self, param: str) -> list:
        """Values taken by ``param`` in the study, in the order given.

        For an ablation the baseline value is included (first, if it was not
        listed).  Raises ``ValueError`` for a parameter the study does not vary.
        """
        self._check_param(param)
        if self.grid is not None:
            return list(self.grid[param])
        values = list(self.ablations[param])
        base = self.baseline[param]
        if _value_key(base) not in {_value_key(v) for v in values}:
            values.insert(0, base)
        return values

    def ablation_setting(self, param: str, value) -> dict:
        """The configuration (without seed) of the ablation point ``param=value``."""
        if self.ablations is None:
            raise ValueError(f"ablation_setting needs a study with ablations=, this study is a {self.kind}")
        self._check_param(param)
        cfg = dict(self.baseline)
        cfg[param] = normalize_config({"v": value})["v"]
        return cfg

    def is_baseline_value(self, param: str, value) -> bool:
        """True if ``value`` equals the baseline's value of ``param`` (canonically)."""
        return param in self.baseline and _value_key(self.baseline[param]) == _value_key(value)

    def _check_param(self, param):
        check_str(param, "param")
        if param not in self.varied_params:
            raise ValueError(f"the study does not vary {param!r}; it varies {self.varied_params}")

    def to_dict(self) -> dict:
        """Plain-dict description (JSON-serializable) of the study."""
        return {"name": self.name, "kind": self.kind, "baseline": dict(self.baseline),
                "grid": self.grid, "ablations": self.ablations, "seeds": list(self.seeds)}

    def __repr__(self) -> str:
        what = {"grid": f"grid={self.grid}", "ablation": f"ablations={self.ablations}",
                "baseline": "baseline only"}[self.kind]
        return (f"Study({self.name!r}, {what}, seeds={self.seeds}, "
                f"{len(self._settings)} settings x {len(self.seeds)} seeds = {len(self)} trials)")

