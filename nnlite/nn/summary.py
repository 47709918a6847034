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


def _first_rank(module: Module):
    """The input rank (batch axis included) the first shape-fixing layer of ``module`` expects:
    4 for Conv2d / pooling / BatchNorm2d, 2 for Linear / BatchNorm1d; None when a shape-free
    layer (e.g. Flatten) or a non-Sequential container comes first."""
    if isinstance(module, Sequential):
        for _, child in module.children():
            r = _first_rank(child)
            if r != 0:
                return r
        return 0
    name = type(module).__name__
    if hasattr(module, "in_channels") or name in ("MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "BatchNorm2d"):
        return 4
    if hasattr(module, "in_features") or name == "BatchNorm1d":
        return 2
    if name in ("ReLU", "Sigmoid", "Tanh", "LeakyReLU", "Identity", "Dropout", "Normalize"):
        return 0          # elementwise: look further
    return None


def _with_batch(model: Module, input_shape) -> tuple:
    """``input_shape`` with a batch axis of 1: a leading None or -1 is the batch axis; otherwise
    the rank the model's first layer expects decides (one more axis than given: the batch axis
    was left out); when the model does not tell (e.g. Flatten first), the shape is one sample's."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple of ints, got {type(input_shape).__name__}") from None
    if not shape:
        raise ValueError("input_shape must have at least one axis, got ()")
    if shape[0] is None or (isinstance(shape[0], (int, np.integer)) and shape[0] == -1):
        shape = shape[1:]
    else:
        rank = _first_rank(model)
        if rank and len(shape) == rank:
            shape = shape[1:]
        elif rank and len(shape) != rank - 1:
            raise ValueError(f"input_shape {tuple(input_shape)}: the model's first layer expects "
                             f"{rank}-D input with the batch axis ({rank - 1} axes without it), "
                             f"got {len(shape)} axes")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"input_shape must hold positive ints (and optionally a leading None "
                             f"batch axis), got {tuple(input_shape)}")
    return (1,) + tuple(int(s) for s in shape)


def summary(model: Module, input_shape, print_fn=print) -> str:
    """Print (and return) a table: layer, type, output shape, parameter count; then totals.

    input_shape: one sample's shape, e.g. (1, 28, 28), or with the batch axis, e.g.
    (128, 1, 28, 28) or (None, 1, 28, 28) (told apart by the rank the model's first layer
    expects; a leading None or -1 is always the batch axis). The batch axis shows as None.
    Like Keras, "Non-trainable params" counts frozen parameters AND buffers (batch-norm
    running mean/variance, Normalize statistics).
    """
    shape = _with_batch(model, input_shape)
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
