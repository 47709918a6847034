"""Optimizers with PyTorch's update formulas and defaults: ``SGD``, ``Adam``, ``AdamW``, ``RMSprop``.

Conventions shared by every optimizer here:
* ``params`` is an iterable of :class:`~nnlite.nn.Parameter` *or* a list of parameter-group dicts
  ``{"params": [...], "lr": ..., ...}``; keys a group leaves out take the constructor's values.
* Parameters are numbered 0, 1, 2, ... in the order they appear across the groups; ``self.params``
  lists them in that order and ``self.state[i]`` holds the state (momentum buffers, moments, step
  count) of ``self.params[i]``. State is created lazily on a parameter's first update, so a frozen
  parameter (``trainable=False``) gets neither an update nor a state entry.
* ``step()`` reads ``p.grad`` (never modifies it) and updates ``p.data`` in place. All arithmetic
  uses Python-float hyper-parameters, so float32 parameters and buffers stay float32.
* ``state_dict()`` is a flat ``dict[str, np.ndarray]`` (see :meth:`Optimizer.state_dict`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from .._checks import check_bool, check_real
from ..nn.parameter import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]

_FLOAT, _BOOL, _PAIR = "float", "bool", "pair"
_STATE_KEY = re.compile(r"^state\.(\d+)\.([A-Za-z_][A-Za-z0-9_]*)$")
_GROUP_KEY = re.compile(r"^group(\d+)\.(.+)$")


# ---------------------------------------------------------------------------------------------
# small validation helpers
# ---------------------------------------------------------------------------------------------
def _scalar(value):
    """A 0-d array (as a hyper-parameter comes back from a state dict) as its scalar."""
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _as_real(name: str, value, where: str = "") -> float:
    return check_real(_scalar(value), name + where)


def _as_bool(name: str, value, where: str = "") -> bool:
    return check_bool(_scalar(value), name + where)


def _as_pair(name: str, value, where: str = "") -> tuple:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}{where} must be a pair of real numbers, got {value!r}")
    return tuple(_as_real(f"{name}[{k}]", v, where) for k, v in enumerate(value))


_CONVERT = {_FLOAT: _as_real, _BOOL: _as_bool, _PAIR: _as_pair}


def _kind_of(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return _BOOL
    if isinstance(value, (tuple, list)):
        return _PAIR
    return _FLOAT


class _ImplicitGroup(list):
    """Marks the single group built from a plain list of parameters (error messages then do
    not mention ``param_groups[0]``)."""


def _flatten_params(params) -> list:
    """Turn the ``params`` argument into a list of group dicts (each with a list of Parameters)."""
    if isinstance(params, Parameter):
        raise TypeError("params must be an iterable of Parameter or of parameter-group dicts, "
                        "got a single Parameter; wrap it in a list")
    if isinstance(params, Mapping):
        raise TypeError("params must be an iterable of Parameter or of parameter-group dicts, "
                        "got a single dict; wrap it in a list")
    try:
        items = list(params)
    except TypeError:
        raise TypeError("params must be an iterable of Parameter or of parameter-group dicts, "
                        f"got {type(params).__name__}") from None
    if not items:
        raise ValueError("optimizer got an empty parameter list; pass at least one Parameter")
    if all(isinstance(x, Mapping) for x in items):
        return [dict(g) for g in items]
    if all(isinstance(x, Parameter) for x in items):
        return _ImplicitGroup([{"params": items}])
    bad = next(x for x in items if not isinstance(x, (Parameter, Mapping)))
    if isinstance(bad, tuple) and len(bad) == 2 and isinstance(bad[1], Parameter):
        raise TypeError("params holds (name, Parameter) pairs; pass model.parameters() "
                        "rather than model.named_parameters()")
    raise TypeError("params must hold only Parameter objects or only parameter-group dicts, "
                    f"got an item of type {type(bad).__name__}")


# ---------------------------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------------------------
class Optimizer:
    """Base optimizer: parameter groups, lazily created per-parameter state, flat ``state_dict``.

    Update formula: defined by subclasses (``p.data <- update(p.data, p.grad, state, group)``).
    Convention: ``Optimizer(params, **defaults)`` where ``params`` is an iterable of ``Parameter``
    or a list of group dicts ``{"params": [...], <hyper-parameter>: value}`` (PyTorch's layout);
    a group's missing hyper-parameters are taken from ``defaults``, unknown keys raise ValueError.
    Hyper-parameters are stored as Python floats / bools / tuples of floats (never NumPy scalars,
    so they cannot promote float32 arrays to float64). ``self.state[i]`` is the state dict of
    ``self.params[i]`` (global index in order of appearance across groups).

    The base class can be instantiated (e.g. to drive a learning-rate schedule) but its
    :meth:`step` raises NotImplementedError; subclasses implement ``_update``.
    """

    #: hyper-parameter name -> kind ("float", "bool", "pair"); None = infer from the defaults.
    _kinds: dict | None = None

    def __init__(self, params, **defaults):
        kinds = dict(self._kinds) if self._kinds is not None else {
            k: _kind_of(v) for k, v in defaults.items()}
        unknown = set(defaults) - set(kinds)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected hyper-parameter(s) {sorted(unknown)}; "
                            f"expected some of {sorted(kinds)}")
        self.defaults = dict(defaults)
        self._kinds_ = kinds
        self.param_groups: list[dict] = []
        self.params: list[Parameter] = []
        self._index: dict[int, int] = {}
        self.state: dict[int, dict] = {}
        groups = _flatten_params(params)
        explicit = not isinstance(groups, _ImplicitGroup)
        for group in groups:
            self._add_group(group, f" (param_groups[{len(self.param_groups)}])" if explicit else "")

    # -- groups --------------------------------------------------------------------------------
    def _normalize_group(self, group: Mapping, where: str) -> dict:
        """Fill defaults, convert types and validate; returns a new dict (without 'params')."""
        unknown = set(group) - set(self._kinds_) - {"params"}
        if unknown:
            raise ValueError(f"parameter group{where} has unknown key(s) {sorted(unknown)}; "
                             f"expected 'params' and some of {sorted(self._kinds_)}")
        out = {}
        for key, kind in self._kinds_.items():
            value = group.get(key, self.defaults.get(key))
            if value is None:
                raise ValueError(f"{type(self).__name__} needs a value for '{key}'{where}: pass "
                                 f"{key}=... to the constructor or give every parameter group a '{key}'")
            out[key] = _CONVERT[kind](key, value, where)
        self._check_hyper(out, where)
        return out

    def _check_hyper(self, hp: dict, where: str) -> None:
        """Subclass hook: raise ValueError for out-of-range hyper-parameters."""
        if "lr" in hp:
            check_real(hp["lr"], "lr" + where, lo=0.0)

    def add_param_group(self, group: Mapping) -> None:
        """Append a parameter group ``{"params": [...], ...}``; missing keys take the defaults.

        Update formula: unchanged (the new group's parameters are updated by the same rule).
        Convention: the new parameters get the next global indices; a parameter may belong to
        one group only (duplicates raise ValueError).
        """
        if not isinstance(group, Mapping):
            raise TypeError(f"a parameter group must be a dict, got {type(group).__name__}")
        self._add_group(group, f" (param_groups[{len(self.param_groups)}])")

    def _add_group(self, group: Mapping, where: str) -> None:
        if "params" not in group:
            raise ValueError(f"parameter group{where} has no 'params' key")
        plist = group["params"]
        plist = [plist] if isinstance(plist, Parameter) else list(plist)
        if not plist:
            raise ValueError(f"parameter group{where} has an empty 'params' list")
        for p in plist:
            if not isinstance(p, Parameter):
                raise TypeError(f"parameter group{where} must hold Parameter objects, "
                                f"got {type(p).__name__}")
        seen = set()
        for p in plist:
            if id(p) in self._index or id(p) in seen:
                raise ValueError(f"a Parameter {p!r} appears more than once{where}; "
                                 "each parameter may belong to one group only")
            seen.add(id(p))
        hp = self._normalize_group(group, where)
        for p in plist:
            self._index[id(p)] = len(self.params)
            self.params.append(p)
        self.param_groups.append({"params": plist, **hp})

    @property
    def lr(self) -> float:
        """Learning rate of the first parameter group (``param_groups[0]["lr"]``).

        Convention: reading gives group 0's lr; assigning sets the *same* lr in every group
        (set ``param_groups[i]["lr"]`` directly for per-group values).
        """
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value) -> None:
        value = check_real(_scalar(value), "lr", lo=0.0)
        for group in self.param_groups:
            group["lr"] = value

    def index_of(self, p: Parameter) -> int:
        """Global index of ``p`` (the key of its entry in ``self.state``)."""
        try:
            return self._index[id(p)]
        except KeyError:
            raise ValueError(f"{p!r} is not managed by this optimizer") from None

    # -- stepping ------------------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set every managed parameter's ``grad`` to zero in place (frozen ones too)."""
        for p in self.params:
            if p.grad is not None:
                p.grad[...] = 0

    def step(self) -> None:
        """Update every trainable parameter in place from its ``grad``.

        Update formula: see the subclass. Convention: parameters with ``trainable=False`` or
        ``grad is None`` are skipped entirely (no update, no state, no weight decay).
        """
        for group in self.param_groups:
            hp = self._plain(group)
            for p in group["params"]:
                if not p.trainable or p.grad is None:
                    continue
                g = p.grad
                if not isinstance(g, np.ndarray) or g.shape != p.data.shape:
                    shape = getattr(g, "shape", None)
                    raise ValueError(f"grad of {p!r} must have shape {p.data.shape}, got {shape}")
                if g.dtype != p.data.dtype:
                    raise TypeError(f"grad of {p!r} must have dtype {p.data.dtype}, got {g.dtype}")
                i = self._index[id(p)]
                st = self.state.get(i)
                if st is None:
                    st = self._init_state(p, hp)
                self._update(p, g, st, hp)
                if st:  # optimizers without state (plain SGD) leave no empty entries
                    self.state[i] = st

    def _plain(self, group: dict) -> dict:
        """The group's hyper-parameters as plain Python scalars, even if someone stored NumPy
        scalars in ``group`` directly (a float64 scalar would otherwise promote float32 math)."""
        out = {}
        for key, kind in self._kinds_.items():
            v = group[key]
            out[key] = bool(v) if kind == _BOOL else (
                tuple(float(x) for x in v) if kind == _PAIR else float(v))
        return out

    def _init_state(self, p: Parameter, group: dict) -> dict:
        return {}

    def _update(self, p: Parameter, g: np.ndarray, st: dict, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement step(); "
                                  "use SGD, Adam, AdamW or RMSprop")

    def _state_spec(self, group: dict) -> dict:
        """Names of the per-parameter state entries: ``"param"`` (array shaped like the
        parameter) or ``"count"`` (integer step count)."""
        return {}

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A flat ``dict[str, np.ndarray]`` of copies, suitable for ``np.savez`` with a prefix.

        Convention (keys):
          * ``group{g}.params``: int64 global indices of group g's parameters;
          * ``group{g}.{name}``: each hyper-parameter as a 0-d array (float64 or bool; ``betas``
            as a float64 array of shape (2,));
          * ``state.{i}.{name}``: per-parameter state of ``self.params[i]`` (buffers in the
            parameter's dtype, the step count as a 0-d int64 array).
        """
        out = {}
        for gi, group in enumerate(self.param_groups):
            out[f"group{gi}.params"] = np.array([self._index[id(p)] for p in group["params"]],
                                                dtype=np.int64)
            for key, kind in self._kinds_.items():
                dtype = bool if kind == _BOOL else np.float64
                out[f"group{gi}.{key}"] = np.array(group[key], dtype=dtype)
        for i in sorted(self.state):
            for name, value in self.state[i].items():
                if isinstance(value, np.ndarray):
                    out[f"state.{i}.{name}"] = value.copy()
                else:
                    out[f"state.{i}.{name}"] = np.array(value, dtype=np.int64)
        return out

    def check_state_dict(self, state: Mapping) -> None:
        """Check that ``state`` (:meth:`state_dict` output) fits this optimizer, changing nothing.

        Raises ValueError/TypeError naming the key: missing / unexpected keys, another group
        layout, wrong shapes or dtypes, out-of-range hyper-parameters. `load_checkpoint` calls
        it before it writes anything.
        """
        self._parse_state_dict(state)

    def load_state_dict(self, state: Mapping) -> None:
        """Restore hyper-parameters and state from :meth:`state_dict` output (exactly).

        Convention: everything is validated first (:meth:`check_state_dict`) and
        ValueError/TypeError is raised naming the key before anything is written; buffers are
        copied (cast to the parameter's dtype). The old state is replaced.
        """
        new_hp, new_state = self._parse_state_dict(state)
        for group, hp in zip(self.param_groups, new_hp):
            group.update(hp)
        self.state = {i: new_state[i] for i in sorted(new_state)}

    def _parse_state_dict(self, state: Mapping):
        """Validate ``state``; return (hyper-parameters per group, per-parameter state)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict expects a dict of arrays, got {type(state).__name__}")
        used = set()
        new_hp = []
        for gi, group in enumerate(self.param_groups):
            key = f"group{gi}.params"
            if key not in state:
                raise ValueError(f"state dict is missing key '{key}'")
            got = np.asarray(state[key])
            want = np.array([self._index[id(p)] for p in group["params"]], dtype=np.int64)
            if got.shape != want.shape:
                raise ValueError(f"key '{key}': expected shape {want.shape}, got {got.shape} "
                                 "(parameter groups differ from the saved optimizer's)")
            if not np.array_equal(got, want):
                raise ValueError(f"key '{key}': expected parameter indices {want.tolist()}, got "
                                 f"{got.tolist()} (parameter groups differ from the saved optimizer's)")
            used.add(key)
            raw = {}
            for name, kind in self._kinds_.items():
                key = f"group{gi}.{name}"
                if key not in state:
                    raise ValueError(f"state dict is missing key '{key}'")
                arr = np.asarray(state[key])
                want_shape = (2,) if kind == _PAIR else ()
                if arr.shape != want_shape:
                    raise ValueError(f"key '{key}': expected shape {want_shape}, got {arr.shape}")
                raw[name] = arr
                used.add(key)
            new_hp.append(self._normalize_group(raw, f" (key 'group{gi}.*')"))

        group_of = {self._index[id(p)]: gi for gi, g in enumerate(self.param_groups)
                    for p in g["params"]}
        new_state: dict[int, dict] = {}
        for key in state:
            if key in used:
                continue
            m = _STATE_KEY.match(str(key))
            if m is None:
                if _GROUP_KEY.match(str(key)):
                    raise ValueError(f"unexpected key '{key}': this optimizer has "
                                     f"{len(self.param_groups)} parameter group(s) with keys "
                                     f"{['params', *self._kinds_]}")
                raise ValueError(f"unexpected key '{key}' in optimizer state dict")
            i, name = int(m.group(1)), m.group(2)
            if i >= len(self.params):
                raise ValueError(f"key '{key}': parameter index {i} out of range "
                                 f"(this optimizer has {len(self.params)} parameters)")
            p = self.params[i]
            spec = self._state_spec(new_hp[group_of[i]])
            if name not in spec:
                raise ValueError(f"unexpected key '{key}': {type(self).__name__} with these "
                                 f"hyper-parameters keeps state {sorted(spec)}")
            arr = np.asarray(state[key])
            want_shape = p.data.shape if spec[name] == "param" else ()
            if arr.shape != want_shape:
                raise ValueError(f"key '{key}': expected shape {want_shape}, got {arr.shape}")
            if spec[name] == "param" and not np.issubdtype(arr.dtype, np.floating):
                raise TypeError(f"key '{key}': expected a floating array, got dtype {arr.dtype}")
            if spec[name] == "count":
                if not np.issubdtype(arr.dtype, np.integer) or int(arr) < 0:
                    raise TypeError(f"key '{key}': expected a non-negative integer count, "
                                    f"got {arr!r}")
                value = int(arr)
            else:
                value = np.array(arr, dtype=p.data.dtype, copy=True)
            new_state.setdefault(i, {})[name] = value
        for i, entries in new_state.items():
            missing = sorted(set(self._state_spec(new_hp[group_of[i]])) - set(entries))
            if missing:
                raise ValueError(f"state dict is missing key 'state.{i}.{missing[0]}' "
                                 f"(parameter {i} has only {sorted(entries)})")
        return new_hp, new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for gi, g in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={g[k]}" for k in self._kinds_)
            lines.append(f"  group {gi}: {len(g['params'])} params, {hp}")
        return "\n".join(lines) + "\n)"


# ---------------------------------------------------------------------------------------------
# SGD
# ---------------------------------------------------------------------------------------------
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Update formula: g = grad + wd*w; b = mu*b + (1-dampening)*g (b = g at the first step);
    g = g + mu*b if nesterov else b; w -= lr*g.
    Convention: PyTorch's ``torch.optim.SGD`` (the momentum buffer is seeded with the first
    gradient, undamped; ``lr`` multiplies the buffer, not the gradient as in the "v = mu*v -
    lr*g" form -- the two agree for a constant lr). ``lr`` has no default: give it here or in
    every parameter group. Nesterov needs momentum > 0 and dampening == 0. State per parameter:
    ``momentum_buffer`` (only when momentum != 0).
    """

    _kinds = {"lr": _FLOAT, "momentum": _FLOAT, "dampening": _FLOAT,
              "weight_decay": _FLOAT, "nesterov": _BOOL}

    def __init__(self, params, lr=None, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def _check_hyper(self, hp, where):
        super()._check_hyper(hp, where)
        check_real(hp["momentum"], "momentum" + where, 0.0, 1.0, hi_open=True)
        check_real(hp["dampening"], "dampening" + where, 0.0, 1.0)
        check_real(hp["weight_decay"], "weight_decay" + where, lo=0.0)
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(f"nesterov=True{where} requires momentum > 0 and dampening == 0, got "
                             f"momentum={hp['momentum']}, dampening={hp['dampening']}")

    def _state_spec(self, group):
        return {"momentum_buffer": "param"} if group["momentum"] != 0 else {}

    def _update(self, p, g, st, group):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        w = p.data
        if wd != 0:
            g = g + wd * w
        if mu != 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                buf += (1.0 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        w -= lr * g


# ---------------------------------------------------------------------------------------------
# Adam / AdamW
# ---------------------------------------------------------------------------------------------
class Adam(Optimizer):
    """Adam (optionally AMSGrad) with L2 weight decay folded into the gradient.

    Update formula: g = grad + wd*w; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr/(1-b1^t) * m / (sqrt(v')/sqrt(1-b2^t) + eps), v' = max of all v so far if amsgrad else v.
    Convention: PyTorch's ``torch.optim.Adam``: eps is added *after* the square root of the
    bias-corrected second moment; weight decay is classic L2 (it passes through the adaptive
    scaling -- use :class:`AdamW` for decoupled decay). State per parameter: ``step`` (int),
    ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
    """

    _kinds = {"lr": _FLOAT, "betas": _PAIR, "eps": _FLOAT, "weight_decay": _FLOAT,
              "amsgrad": _BOOL}
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)

    def _check_hyper(self, hp, where):
        super()._check_hyper(hp, where)
        check_real(hp["betas"][0], "betas[0]" + where, 0.0, 1.0, hi_open=True)
        check_real(hp["betas"][1], "betas[1]" + where, 0.0, 1.0, hi_open=True)
        check_real(hp["eps"], "eps" + where, lo=0.0)
        check_real(hp["weight_decay"], "weight_decay" + where, lo=0.0)

    def _state_spec(self, group):
        spec = {"step": "count", "exp_avg": "param", "exp_avg_sq": "param"}
        if group["amsgrad"]:
            spec["max_exp_avg_sq"] = "param"
        return spec

    def _init_state(self, p, group):
        st = {"step": 0, "exp_avg": np.zeros_like(p.data), "exp_avg_sq": np.zeros_like(p.data)}
        if group["amsgrad"]:
            st["max_exp_avg_sq"] = np.zeros_like(p.data)
        return st

    def _update(self, p, g, st, group):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        w = p.data
        st["step"] += 1
        t = st["step"]
        if wd != 0:
            if self._decoupled:
                w *= 1.0 - lr * wd
            else:
                g = g + wd * w
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m += (1.0 - b1) * (g - m)
        v *= b2
        v += (1.0 - b2) * (g * g)
        step_size = lr / (1.0 - b1 ** t)
        bc2_sqrt = math.sqrt(1.0 - b2 ** t)
        if group["amsgrad"]:
            vmax = st.get("max_exp_avg_sq")
            if vmax is None:  # amsgrad switched on after state was created
                vmax = st["max_exp_avg_sq"] = np.zeros_like(w)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v)
        denom /= bc2_sqrt
        denom += eps
        w -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter).

    Update formula: w -= lr*wd*w; then the Adam step on the raw gradient (no wd in g).
    Convention: PyTorch's ``torch.optim.AdamW`` (default weight_decay=1e-2; the decay is scaled
    by lr, i.e. ``w *= 1 - lr*wd`` before the moments are updated). Same state as :class:`Adam`.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)


# ---------------------------------------------------------------------------------------------
# RMSprop
# ---------------------------------------------------------------------------------------------
class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum.

    Update formula: g = grad + wd*w; s = alpha*s + (1-alpha)*g^2; d = sqrt(s - a^2) + eps with
    a = alpha*a + (1-alpha)*g if centered else d = sqrt(s) + eps; b = mu*b + g/d, w -= lr*b
    (momentum > 0) else w -= lr*g/d.
    Convention: PyTorch's ``torch.optim.RMSprop`` (eps outside the sqrt; the momentum buffer
    starts at zero). When centered, s - a^2 is clipped at 0 before the sqrt, so rounding can
    never produce NaN (PyTorch would). State per parameter: ``step`` (int), ``square_avg``,
    plus ``momentum_buffer`` if momentum > 0 and ``grad_avg`` if centered.
    """

    _kinds = {"lr": _FLOAT, "alpha": _FLOAT, "eps": _FLOAT, "weight_decay": _FLOAT,
              "momentum": _FLOAT, "centered": _BOOL}

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def _check_hyper(self, hp, where):
        super()._check_hyper(hp, where)
        check_real(hp["alpha"], "alpha" + where, 0.0, 1.0, hi_open=True)
        check_real(hp["eps"], "eps" + where, lo=0.0)
        check_real(hp["weight_decay"], "weight_decay" + where, lo=0.0)
        check_real(hp["momentum"], "momentum" + where, 0.0, 1.0, hi_open=True)

    def _state_spec(self, group):
        spec = {"step": "count", "square_avg": "param"}
        if group["momentum"] > 0:
            spec["momentum_buffer"] = "param"
        if group["centered"]:
            spec["grad_avg"] = "param"
        return spec

    def _init_state(self, p, group):
        return {name: (0 if kind == "count" else np.zeros_like(p.data))
                for name, kind in self._state_spec(group).items()}

    def _update(self, p, g, st, group):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        wd, mu = group["weight_decay"], group["momentum"]
        w = p.data
        st["step"] += 1
        if wd != 0:
            g = g + wd * w
        s = st["square_avg"]
        s *= alpha
        s += (1.0 - alpha) * (g * g)
        if group["centered"]:
            a = st.setdefault("grad_avg", np.zeros_like(w))
            a += (1.0 - alpha) * (g - a)
            d = s - a * a
            np.maximum(d, 0, out=d)
            np.sqrt(d, out=d)
        else:
            d = np.sqrt(s)
        d += eps
        if mu > 0:
            buf = st.setdefault("momentum_buffer", np.zeros_like(w))
            buf *= mu
            buf += g / d
            w -= lr * buf
        else:
            w -= lr * (g / d)
