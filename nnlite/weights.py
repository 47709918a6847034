"""Model weights in and out: nnlite's own format, safetensors, Keras HDF5 and PyTorch state_dicts.

Formats
-------
* ``.npz`` / ``.h5`` / ``.hdf5`` -- nnlite's documented model format: the checkpoint format of
  ``nnlite.train.checkpoint`` holding the model only (``model/<dotted name>`` arrays, JSON
  metadata, SHA-256 verified, atomic writes). ``save_weights`` / ``load_weights``.
* ``.safetensors`` -- the field's standard safe format (optional extra ``safetensors``:
  ``pip install safetensors``), keys are nnlite's dotted names, readable by PyTorch users.
* Keras HDF5 -- read only, ``load_keras_weights``: the Keras 2 layout
  (``model_weights/<layer>/<layer>/kernel:0``, or the same at the root for ``save_weights``
  files) and the Keras 3 ``.weights.h5`` layout (``layers/<name>/vars/0``, nested models
  ``layers/<model>/layers/<name>/vars/0``).
* PyTorch ``state_dict`` -- ``load_torch_state_dict`` (a dict of tensors/arrays, or a file read
  with ``torch.load(..., weights_only=True)``; torch optional).

Keras -> nnlite conversions
---------------------------
* Conv2D kernel (kh, kw, C_in, C_out) "HWIO" -> weight (C_out, C_in, kh, kw); bias as is.
* DepthwiseConv2D depthwise_kernel (kh, kw, C, M) -> weight (C*M, 1, kh, kw), output channel
  c*M + m <- kernel[:, :, c, m] (the channel order of both frameworks); bias as is.
* Dense kernel (in, out) -> weight (out, in); bias as is. After ``Flatten`` the row order of the
  first Dense differs (Keras flattens NHWC, nnlite NCHW): import heads that follow global
  pooling, or permute that kernel yourself.
* BatchNormalization gamma, beta, moving_mean, moving_variance -> weight, bias, running_mean,
  running_var. Keras defaults are epsilon=1e-3 and momentum=0.99 with
  ``moving = momentum * moving + (1 - momentum) * batch``; nnlite (as PyTorch) uses
  ``running = (1 - m) * running + m * batch``, so the layer gets ``eps = keras_epsilon`` and
  ``momentum = 1 - keras_momentum`` (0.01 for the default). The values come from the file's
  ``model_config`` when present (Keras 2 full-model files), else from ``bn_epsilon`` /
  ``bn_momentum``.
* Layers are matched by name: an nnlite module ``block1.conv1`` matches the Keras layer
  ``block1_conv1`` (dots become underscores); ``name_map={keras_name: nnlite_name}`` overrides.
  Keras 3 files do not store variable names, so the variables are taken in Keras's order
  (kernel, bias / gamma, beta, moving_mean, moving_variance).

Safety
------
Nothing is unpickled: h5py and safetensors return plain arrays; torch files are read with
``weights_only=True``; numeric (floating) arrays only. Every loader reads and checks ALL the
arrays against the model first and changes the model only when everything fits; errors
(``WeightsError``, a ``ValueError``) name the file and the first layer or key that does not fit.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ._io import atomic_open
from .nn.layers import BatchNorm1d, BatchNorm2d, Conv2d, DepthwiseConv2d, Linear
from .nn.module import Module
from .train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = [
    "WeightsError",
    "apply_state",
    "load_keras_weights",
    "load_safetensors",
    "load_torch_state_dict",
    "load_weights",
    "read_keras_h5",
    "save_safetensors",
    "save_weights",
]

_NATIVE = (".npz", ".h5", ".hdf5")


class WeightsError(ValueError):
    """A weights file is damaged, unreadable, or does not fit the model (nothing was changed)."""


def _fspath(path, name="path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _check_model(model):
    if not isinstance(model, Module):
        raise TypeError(f"model must be an nnlite Module, got {type(model).__name__}")


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


# -------------------------------------------------------------------------------------------------
# applying a state: validate everything, then write
# -------------------------------------------------------------------------------------------------
def apply_state(model: Module, state: Mapping[str, np.ndarray], strict: bool = True,
                source: str = "state", cast: bool = True) -> dict:
    """Check ``state`` (dotted name -> array) against ``model`` and load it; nothing changes on error.

    cast: convert floating arrays to the model's dtype (e.g. float64 file -> float32 model);
    non-floating arrays are refused. strict: names must match exactly.
    Returns ``{"loaded": [...], "missing": [...], "unexpected": [...]}``.
    """
    _check_model(model)
    current = OrderedDict((n, p.data) for n, p in model.named_parameters())
    current.update((n, np.asarray(b)) for n, b in model.named_buffers())
    fixed = OrderedDict()
    for k, v in state.items():
        a = np.asarray(v)
        if a.dtype.kind != "f":
            raise WeightsError(f"{source}: '{k}' has dtype {a.dtype}; only floating arrays are "
                               "accepted as weights")
        if cast and k in current and a.dtype != current[k].dtype:
            a = a.astype(current[k].dtype)
        fixed[k] = a
    try:
        model.check_state_dict(fixed, strict=strict, source=source)
    except (KeyError, ValueError) as e:
        msg = e.args[0] if e.args else str(e)
        raise WeightsError(f"{source} does not fit the model: {msg}") from None
    model.load_state_dict(fixed, strict=False)
    return {"loaded": [k for k in fixed if k in current],
            "missing": [k for k in current if k not in fixed],
            "unexpected": [k for k in fixed if k not in current]}


# -------------------------------------------------------------------------------------------------
# nnlite's format (npz / HDF5 via the checkpoint module) and safetensors
# -------------------------------------------------------------------------------------------------
def save_weights(path, model: Module, extra: dict | None = None) -> str:
    """Save the model's parameters and buffers to ``path`` atomically; returns the path.

    ``.npz`` / ``.h5`` / ``.hdf5``: nnlite's checkpoint format with the model only (read it back
    with `load_weights` or ``nnlite.train.load_checkpoint``); ``.safetensors``: `save_safetensors`.
    """
    path = _fspath(path)
    _check_model(model)
    suf = _suffix(path)
    if suf == ".safetensors":
        return save_safetensors(path, model, metadata=extra)
    if suf not in _NATIVE:
        raise ValueError(f"path must end in .npz, .h5, .hdf5 or .safetensors, got {path!r}")
    return save_checkpoint(path, model, extra={"kind": "weights", **(extra or {})})


def load_weights(path, model: Module, strict: bool = True) -> dict:
    """Load weights written by `save_weights` (format from the suffix); nothing changes on error.

    ``.pt`` / ``.pth`` / ``.bin`` files go to `load_torch_state_dict`. Returns the report of
    `apply_state` (``loaded``, ``missing``, ``unexpected``).
    """
    path = _fspath(path)
    _check_model(model)
    suf = _suffix(path)
    if suf == ".safetensors":
        return load_safetensors(path, model, strict=strict)
    if suf in (".pt", ".pth", ".bin"):
        return load_torch_state_dict(path, model, strict=strict)
    try:
        info = load_checkpoint(path, model, strict=strict)
    except CheckpointError as e:
        raise WeightsError(str(e)) from None
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    missing = info.get("missing") or []
    return {"loaded": [n for n in names if n not in missing], "missing": missing,
            "unexpected": info.get("unexpected") or []}


def _safetensors():
    try:
        import safetensors.numpy as st
    except ImportError:
        raise ImportError("safetensors files need the optional package 'safetensors': "
                          "pip install safetensors   (or pip install 'nnlite[safetensors]')") from None
    return st


def save_safetensors(path, model: Module, metadata: dict | None = None) -> str:
    """Write the model's ``state_dict`` as a ``.safetensors`` file (atomic); returns the path.

    metadata: optional dict of str -> str stored in the header (``format: nnlite`` is added).
    """
    st = _safetensors()
    path = _fspath(path)
    _check_model(model)
    meta = {"format": "nnlite"}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    blob = st.save(tensors, metadata=meta)
    with atomic_open(path) as f:
        f.write(blob)
    return path


def load_safetensors(path, model: Module, strict: bool = True) -> dict:
    """Read a ``.safetensors`` file (keys = dotted names) into ``model``; nothing changes on error."""
    st = _safetensors()
    path = _fspath(path)
    _check_model(model)
    with open(path, "rb") as f:
        blob = f.read()
    try:
        tensors = st.load(blob)
    except Exception as e:  # safetensors raises SafetensorError / ValueError on bad headers
        raise WeightsError(f"'{path}' is not a readable safetensors file: {type(e).__name__}: {e}") from None
    return apply_state(model, tensors, strict=strict, source=f"safetensors file '{path}'")


# -------------------------------------------------------------------------------------------------
# PyTorch
# -------------------------------------------------------------------------------------------------
def _map_name(name: str, name_map) -> str | None:
    if name_map is None:
        return name
    if callable(name_map):
        return name_map(name)
    for src, dst in sorted(name_map.items(), key=lambda kv: -len(kv[0])):
        if name == src or name.startswith(src + "."):
            return None if dst is None else dst + name[len(src):]
    return name


def load_torch_state_dict(src, model: Module, name_map=None, strict: bool = True) -> dict:
    """Load a PyTorch ``state_dict`` (dict of tensors or arrays, or a file) into ``model``.

    src: a mapping name -> tensor/ndarray, or a path read with ``torch.load(path,
    map_location="cpu", weights_only=True)`` (needs torch; nothing else is unpickled).
    Layouts agree with nnlite (conv (C_out, C_in, kh, kw), linear (out, in), batch norm
    weight/bias/running_mean/running_var); ``num_batches_tracked`` entries are dropped.
    name_map: ``{torch_prefix: nnlite_prefix}`` (``None`` value drops the prefix's keys) or a
    callable name -> name/None. Arrays are cast to the model's dtype. Nothing changes on error.
    """
    _check_model(model)
    source = "state_dict"
    if isinstance(src, (str, os.PathLike)):
        path = _fspath(src, "src")
        try:
            import torch
        except ImportError:
            raise ImportError("reading a PyTorch file needs torch; or pass the state_dict as a "
                              "dict of numpy arrays") from None
        try:
            src = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise WeightsError(f"'{path}' could not be read as a PyTorch state_dict with "
                               f"weights_only=True: {type(e).__name__}: {e}") from None
        source = f"PyTorch file '{path}'"
    if not isinstance(src, Mapping):
        raise TypeError(f"src must be a state_dict mapping or a path, got {type(src).__name__}")
    state = OrderedDict()
    for k, v in src.items():
        if str(k).endswith("num_batches_tracked"):
            continue
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        elif not isinstance(v, np.ndarray):
            raise WeightsError(f"{source}: entry '{k}' is a {type(v).__name__}, not a tensor or array")
        name = _map_name(str(k), name_map)
        if name is not None:
            state[name] = v
    return apply_state(model, state, strict=strict, source=source)


# -------------------------------------------------------------------------------------------------
# Keras HDF5
# -------------------------------------------------------------------------------------------------
def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras .h5 files need h5py: pip install h5py") from None
    return h5py


def _as_str(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _read_array(ds, where) -> np.ndarray:
    a = np.asarray(ds[()])
    if a.dtype.kind != "f":
        raise WeightsError(f"{where} has dtype {a.dtype}; Keras weights must be floating arrays")
    return a


def _keras2_layers(h5py, root, path):
    """Keras 2: ``layer_names`` attr on the root (or ``model_weights``), ``weight_names`` per layer."""
    out = OrderedDict()
    if "layer_names" not in root.attrs:
        raise WeightsError(f"'{path}': Keras 2 layout without a 'layer_names' attribute")
    for lname in (_as_str(n) for n in root.attrs["layer_names"]):
        if lname not in root:
            raise WeightsError(f"'{path}': layer '{lname}' listed in layer_names has no group")
        g = root[lname]
        for wn in (_as_str(n) for n in g.attrs.get("weight_names", [])):
            if wn not in g or not isinstance(g[wn], h5py.Dataset):
                raise WeightsError(f"'{path}': layer '{lname}' lists weight '{wn}' but it is missing")
            parts = wn.split("/")
            owner = parts[-2] if len(parts) >= 2 else lname   # nested models: the inner layer
            var = parts[-1].split(":")[0]
            out.setdefault(owner, []).append((var, _read_array(g[wn], f"'{path}': {lname}/{wn}")))
    return out


def _keras3_layers(h5py, group, path, out, prefix="layers"):
    """Keras 3 ``.weights.h5``: ``layers/<name>/vars/<i>``, nested models recurse."""
    for name in group:
        g = group[name]
        if not isinstance(g, h5py.Group):
            continue
        if "vars" in g and len(g["vars"]):
            vs = g["vars"]
            try:
                idx = sorted(int(k) for k in vs)
            except ValueError:
                raise WeightsError(f"'{path}': {prefix}/{name}/vars holds non-numeric keys "
                                   f"{list(vs)}") from None
            if idx != list(range(len(idx))):
                raise WeightsError(f"'{path}': {prefix}/{name}/vars must be numbered 0..{len(idx) - 1}, got {idx}")
            out[name] = [(None, _read_array(vs[str(i)], f"'{path}': {prefix}/{name}/vars/{i}"))
                         for i in idx]
        if "layers" in g:
            _keras3_layers(h5py, g["layers"], path, out, f"{prefix}/{name}/layers")
    return out


def _bn_config(root) -> dict[str, dict]:
    """Keras 2 full-model files: BatchNormalization epsilon/momentum per layer from model_config."""
    found: dict[str, dict] = {}
    text = root.attrs.get("model_config") if root is not None else None
    if text is None:
        return found
    try:
        cfg = json.loads(_as_str(text))
    except ValueError:
        return found

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "BatchNormalization" and isinstance(node.get("config"), dict):
                c = node["config"]
                if "name" in c:
                    found[c["name"]] = {"epsilon": c.get("epsilon"), "momentum": c.get("momentum")}
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(cfg)
    return found


def read_keras_h5(path):
    """Read a Keras HDF5 weights file into ``(layout, {layer: [(var_name or None, array), ...]}, bn)``.

    layout: ``"keras2"`` or ``"keras3"``; var names are None in the Keras 3 layout; bn maps a
    BatchNormalization layer name to its ``{"epsilon", "momentum"}`` when the file says so.
    Raises `WeightsError` for files in neither layout.
    """
    h5py = _h5py()
    path = _fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"'{path}' is not a readable HDF5 file: {e}") from None
    with f:
        if "model_weights" in f:
            return "keras2", _keras2_layers(h5py, f["model_weights"], path), _bn_config(f)
        if "layer_names" in f.attrs:
            return "keras2", _keras2_layers(h5py, f, path), _bn_config(f)
        if "layers" in f and isinstance(f["layers"], h5py.Group):
            return "keras3", _keras3_layers(h5py, f["layers"], path, OrderedDict()), {}
    raise WeightsError(f"'{path}' is neither a Keras 2 weights file (model_weights/ or a "
                       "layer_names attribute) nor a Keras 3 .weights.h5 file (layers/<name>/vars/)")


_KERAS_KERNELS = {   # kind: (Keras variable, its ndim and layout, -> nnlite weight)
    "conv": ("kernel", 4, "(kh, kw, C_in, C_out)", lambda k: np.transpose(k, (3, 2, 0, 1))),
    "depthwise": ("depthwise_kernel", 4, "(kh, kw, C, multiplier)",
                  lambda k: np.transpose(k, (2, 3, 0, 1)).reshape(k.shape[2] * k.shape[3], 1, *k.shape[:2])),
    "dense": ("kernel", 2, "(in, out)", lambda k: k.T),
}

#: Keras's variables of each kind, in its order (Keras 3 files store them by position only)
_KERAS_VARS = {**{kind: (spec[0], "bias") for kind, spec in _KERAS_KERNELS.items()},
               "bn": ("gamma", "beta", "moving_mean", "moving_variance")}


def _kind(m) -> str | None:
    if isinstance(m, Conv2d):
        return "conv"
    if isinstance(m, DepthwiseConv2d):
        return "depthwise"
    if isinstance(m, Linear):
        return "dense"
    if isinstance(m, (BatchNorm1d, BatchNorm2d)):
        return "bn"
    return None


def _convert(kind, mname, m, lname, variables, path):
    """Keras variables of one layer -> ({nnlite dotted name: array}) or a reason it does not fit."""
    names = _KERAS_VARS[kind]
    if variables[0][0] is None:                    # Keras 3: positional
        if kind == "bn" and len(variables) != 4:
            return None, (f"has {len(variables)} variables; a BatchNormalization with center and "
                          "scale has 4 (gamma, beta, moving_mean, moving_variance)")
        variables = list(zip(names, (a for _, a in variables)))
    got = dict(variables)
    unknown = [v for v in got if v not in names]
    if unknown:
        return None, f"has variables {list(got)}, expected {list(names)} for a {type(m).__name__}"
    out = {}
    if kind != "bn":                               # the kernel: Keras layout -> nnlite layout
        var, ndim, layout, to_nnlite = _KERAS_KERNELS[kind]
        if var not in got:
            return None, f"has no {var}"
        k = got[var]
        if k.ndim != ndim:
            return None, f"{var} has shape {k.shape}, expected {ndim}-D {layout}"
        out[f"{mname}.weight"] = to_nnlite(k)
        if ("bias" in got) != (m.bias is not None):
            return None, ("has a bias but the nnlite layer has none" if "bias" in got
                          else "has no bias but the nnlite layer has one")
        if "bias" in got:
            out[f"{mname}.bias"] = got["bias"]
    else:
        missing = [v for v in names if v not in got]
        if missing:
            return None, f"lacks {missing} (center=False / scale=False are not supported)"
        out[f"{mname}.weight"] = got["gamma"]
        out[f"{mname}.bias"] = got["beta"]
        out[f"{mname}.running_mean"] = got["moving_mean"]
        out[f"{mname}.running_var"] = got["moving_variance"]
    current = dict(m.named_parameters(mname))
    current.update(dict(m.named_buffers(mname)))
    for key, a in out.items():
        if a.shape != current[key].shape:
            return None, (f"'{key}' needs shape {current[key].shape}, the file gives {a.shape} "
                          f"(after converting Keras's layout)")
    return {k: np.ascontiguousarray(a.astype(current[k].dtype)) for k, a in out.items()}, None


def load_keras_weights(path, model: Module, name_map: Mapping[str, str] | None = None,
                       skip_mismatch: bool = False, strict: bool = False,
                       bn_epsilon: float = 1e-3, bn_momentum: float = 0.99) -> dict:
    """Import a Keras 2 or Keras 3 HDF5 weights file into ``model`` by layer name.

    Matching: the Keras layer ``L`` goes to the nnlite module named ``name_map.get(L)`` or, by
    default, the module whose dotted name with dots replaced by underscores equals ``L``
    (``block1.conv1`` <- ``block1_conv1``). Keras layers without weights are ignored.
    skip_mismatch: skip (and report) layers whose shapes or variables do not fit instead of
    raising. strict: also raise when a Keras layer with weights has no nnlite module or an
    nnlite Conv2d/DepthwiseConv2d/Linear/BatchNorm gets no weights.
    bn_epsilon / bn_momentum: Keras values used when the file does not record them; nnlite's
    batch norm gets ``eps = epsilon`` and ``momentum = 1 - keras_momentum``.

    Returns ``{"layout", "loaded": [(keras, nnlite)], "skipped": [(keras, reason)],
    "unexpected": [keras], "missing": [nnlite]}``. Raises `WeightsError` naming the first layer
    that does not fit; the model is changed only after every layer has been checked.
    """
    _check_model(model)
    path = _fspath(path)
    layout, layers, bn_cfg = read_keras_h5(path)
    name_map = dict(name_map or {})
    modules = OrderedDict((n, m) for n, m in model.named_modules() if n and _kind(m))
    by_key = {n.replace(".", "_"): n for n in modules}
    new_state, bn_updates = OrderedDict(), []
    report = {"layout": layout, "loaded": [], "skipped": [], "unexpected": [], "missing": []}
    used = set()
    for lname, variables in layers.items():
        target = name_map.get(lname, by_key.get(lname))
        if target is None or target not in modules:
            if lname in name_map:
                raise WeightsError(f"'{path}': name_map sends Keras layer '{lname}' to '{target}', "
                                   f"which is not a Conv2d/DepthwiseConv2d/Linear/BatchNorm of the model")
            report["unexpected"].append(lname)
            continue
        m = modules[target]
        kind = _kind(m)
        state, why = _convert(kind, target, m, lname, variables, path)
        if why is not None:
            msg = (f"'{path}' ({layout}): Keras layer '{lname}' does not fit nnlite "
                   f"{type(m).__name__} '{target}': it {why}")
            if skip_mismatch:
                report["skipped"].append((lname, msg))
                continue
            raise WeightsError(msg)
        new_state.update(state)
        used.add(target)
        report["loaded"].append((lname, target))
        if kind == "bn":
            cfg = bn_cfg.get(lname, {})
            eps = float(cfg.get("epsilon") or bn_epsilon)
            mom = float(cfg.get("momentum") or bn_momentum)
            if not (eps > 0 and 0 <= mom <= 1):
                raise WeightsError(f"'{path}': Keras layer '{lname}' has epsilon={eps}, momentum={mom}")
            bn_updates.append((m, eps, 1.0 - mom))
    report["missing"] = [n for n in modules if n not in used]
    if strict and (report["unexpected"] or report["missing"]):
        raise WeightsError(f"'{path}': strict import: Keras layers without an nnlite module "
                           f"{report['unexpected'][:5]}, nnlite layers without weights "
                           f"{report['missing'][:5]}")
    apply_state(model, new_state, strict=False, source=f"Keras file '{path}'")
    for m, eps, mom in bn_updates:
        m.eps, m.momentum = eps, mom
    return report
