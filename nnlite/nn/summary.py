"""``summary(model, input_shape)``: a Keras-style table of layers, output shapes and parameters."""
from __future__ import annotations

import numpy as np

from .containers import Residual, Sequential
from .module import Module


def _rows(module: Module, shape, name: str, depth: int, rows: list):
    """Walk Sequentials (one row per leaf); other modules are one row each."""
    if isinstance(module, Sequential):
        for child_name, child in module.children():
            shape = _rows(child, shape, f"{name}.{child_name}" if name else child_name, depth, rows)
        return shape
    out = module.output_shape(shape)
    params = module.parameters()
    rows.append((name, type(module).__name__ + ("(...)" if isinstance(module, Residual) else ""),
                 out, sum(p.size for p in params if p.trainable),
                 sum(p.size for p in params if not p.trainable)
                 + sum(np.size(b) for _, b in module.named_buffers())))
    return out


def summary(model: Module, input_shape, print_fn=print) -> str:
    """Print (and return) a table: layer, type, output shape, parameter count; then totals.

    input_shape: one sample's shape without the batch axis, e.g. (1, 28, 28); the batch axis
    shows as None. Like Keras, "Non-trainable params" counts frozen parameters AND buffers
    (batch-norm running mean/variance, Normalize statistics).
    """
    shape = (1,) + tuple(int(s) for s in input_shape)
    rows: list = []
    _rows(model, shape, "", 0, rows)
    header = ("Layer", "Type", "Output shape", "Param #")
    table = [(n, t, str((None,) + tuple(o[1:])), f"{tr + nt:,}") for n, t, o, tr, nt in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    line = "  ".join("{:<%d}" % w for w in widths)
    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
    trainable = sum(r[3] for r in rows)
    frozen = sum(r[4] for r in rows)
    out = [rule, line.format(*header), rule]
    out += [line.format(*r) for r in table]
    out += [rule, f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {frozen:,}", rule]
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
