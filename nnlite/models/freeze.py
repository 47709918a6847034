"""Freezing named blocks and a Keras-style summary with trainable / non-trainable counts.

``freeze(model, up_to="block3")`` freezes every top-level child from the first up to and
including ``block3``; ``freeze(model, "block1", "block2")`` freezes the named ones (dotted
paths such as ``"block5.conv3"`` work too); ``unfreeze(model, "block4", "block5")`` undoes it.
A frozen parameter has ``trainable=False``: the layers skip its weight gradient (``grad`` stays
zero), optimizers skip its update, and `nnlite.models.Blocks` runs a fully frozen block in
inference mode (batch-norm statistics kept, as Keras).
"""
from __future__ import annotations

import numpy as np

from ..nn.containers import Residual, Sequential
from ..nn.module import Module
from .named import Blocks

__all__ = ["block_names", "block_param_groups", "freeze", "param_counts", "summary", "unfreeze"]


def block_names(model: Module):
    """Names of the model's top-level children, in order."""
    return [n for n, _ in model.children()]


def _resolve(model: Module, name: str) -> Module:
    if not isinstance(name, str):
        raise TypeError(f"block names must be str, got {type(name).__name__}")
    mods = dict(model.named_modules())
    if name not in mods or name == "":
        raise KeyError(f"no block named {name!r}; top-level blocks are {block_names(model)}")
    return mods[name]


def _set(model, names, up_to, flag: bool):
    if up_to is not None:
        if names:
            raise ValueError("give block names or up_to=..., not both")
        order = block_names(model)
        if up_to not in order:
            raise KeyError(f"up_to={up_to!r} is not a top-level block; blocks are {order}")
        names = order[:order.index(up_to) + 1]
    targets = [_resolve(model, n) for n in names] if names else [model]
    for m in targets:
        for p in m.parameters():
            p.trainable = flag
    return model


def freeze(model: Module, *names: str, up_to: str = None) -> Module:
    """Mark the parameters of the named blocks (all blocks up to ``up_to`` inclusive, or the whole
    model when nothing is named) non-trainable. Returns the model."""
    return _set(model, names, up_to, False)


def unfreeze(model: Module, *names: str, up_to: str = None) -> Module:
    """Mark the parameters of the named blocks (or the whole model) trainable again."""
    return _set(model, names, up_to, True)


def param_counts(model: Module) -> dict:
    """``{"total", "trainable", "non_trainable"}``; like Keras, buffers (batch-norm running
    statistics) count as non-trainable."""
    tr = sum(p.size for p in model.parameters() if p.trainable)
    nt = sum(p.size for p in model.parameters() if not p.trainable)
    nt += sum(int(np.size(b)) for _, b in model.named_buffers())
    return {"total": tr + nt, "trainable": tr, "non_trainable": nt}


def _rows(module, shape, name, rows):
    if isinstance(module, (Blocks, Sequential)):
        for child_name, child in module.children():
            shape = _rows(child, shape, f"{name}_{child_name}" if name else child_name, rows)
        return shape
    out = module.output_shape(shape)
    c = param_counts(module)
    psize = sum(p.size for p in module.parameters())
    rows.append((name, type(module).__name__ + ("(...)" if isinstance(module, Residual) else ""),
                 out, c["total"], psize, c["trainable"]))
    return out


def summary(model: Module, input_shape, print_fn=print) -> str:
    """Keras-style table (layer names ``block1_conv1``, output shapes, parameter counts, a
    ``trainable`` column) ending with Total / Trainable / Non-trainable params.

    input_shape: one sample's shape without the batch axis, e.g. (3, 64, 64).
    """
    shape = (1,) + tuple(int(s) for s in input_shape)
    rows = []
    was = model.training
    model.eval()
    try:
        _rows(model, shape, "", rows)
    finally:
        model.train(was)
    header = ("Layer (type)", "Output Shape", "Param #", "Trainable")
    table = [(f"{n} ({t})", str((None,) + tuple(o[1:])), f"{tot:,}",
              "-" if ps == 0 else ("yes" if tr == ps else ("no" if tr == 0 else "partly")))
             for n, t, o, tot, ps, tr in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
    line = "  ".join("{:<%d}" % w for w in widths)
    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
    c = param_counts(model)
    mb = lambda n: f"{n * 4 / 2**20:.2f} MB" if model.parameters() and model.parameters()[0].dtype == np.float32 \
        else f"{n * 8 / 2**20:.2f} MB"
    out = [rule, line.format(*header), rule] + [line.format(*r) for r in table] + [
        rule, f"Total params: {c['total']:,} ({mb(c['total'])})",
        f"Trainable params: {c['trainable']:,} ({mb(c['trainable'])})",
        f"Non-trainable params: {c['non_trainable']:,} ({mb(c['non_trainable'])})", rule]
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text


def block_param_groups(model: Module, lr: float, lrs: dict = None):
    """One optimizer parameter group per top-level block: ``[{"params": [...], "lr": ..., "name": block}]``.

    lrs: optional ``{block: lr}`` overrides. Blocks without parameters are left out. The
    ``"name"`` key is for reading only: pass ``[{k: v for k, v in g.items() if k != "name"} ...]``
    or use `nnlite.models.unfreeze.make_optimizer`, which does that and keeps the names.
    """
    lrs = dict(lrs or {})
    unknown = set(lrs) - set(block_names(model))
    if unknown:
        raise KeyError(f"lrs names unknown blocks {sorted(unknown)}; blocks are {block_names(model)}")
    groups = []
    for name, child in model.children():
        params = child.parameters()
        if params:
            groups.append({"params": params, "lr": float(lrs.get(name, lr)), "name": name})
    return groups
