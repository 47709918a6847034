"""ResNet-style encoder with named blocks, built from ``nnlite.nn.basic_block``.

``resnet(widths=(16, 32, 64), units=(2, 2, 2))``: ``stem`` (conv3x3 + bn + relu), then
``block1..blockK``; block k holds ``units[k]`` basic blocks (``unit1``, ``unit2``, ...), the
first of blocks 2..K with stride 2 and a projection shortcut. Optional ``head``
(`nnlite.models.vgg.classifier_head`).
"""
from __future__ import annotations

import numpy as np

from .._checks import as_generator
from ..nn.containers import basic_block
from ..nn.layers import BatchNorm2d, Conv2d, ReLU
from .named import Blocks
from .vgg import classifier_head


def resnet(widths=(16, 32, 64), units=(2, 2, 2), in_channels: int = 3, num_classes=None,
           head_hidden: int = 256, head_dropout: float = 0.5, rng=None, dtype=np.float32) -> Blocks:
    """x: (N, in_channels, H, W) -> (N, widths[-1], H/2^(K-1), W/2^(K-1)) or logits with a head."""
    widths, units = tuple(int(w) for w in widths), tuple(int(u) for u in units)
    if len(widths) != len(units) or not widths or min(widths) < 1 or min(units) < 1:
        raise ValueError(f"widths and units must be positive and of equal length, got {widths} and {units}")
    rng = as_generator(rng)
    items = [("stem", Blocks([("conv", Conv2d(in_channels, widths[0], 3, padding=1, bias=False, rng=rng, dtype=dtype)),
                              ("bn", BatchNorm2d(widths[0], dtype=dtype)), ("relu", ReLU())]))]
    c = widths[0]
    for k, (w, n) in enumerate(zip(widths, units), start=1):
        stage = []
        for u in range(1, n + 1):
            stride = 2 if (k > 1 and u == 1) else 1
            stage.append((f"unit{u}", basic_block(c, w, stride, rng=rng, dtype=dtype)))
            c = w
        items.append((f"block{k}", Blocks(stage)))
    if num_classes is not None:
        items.append(("head", classifier_head(c, int(num_classes), head_hidden, head_dropout, rng=rng, dtype=dtype)))
    model = Blocks(items)
    object.__setattr__(model, "needs_input_grad", False)
    return model
