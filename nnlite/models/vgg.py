"""VGG-style builders with Keras's block names (``block1`` ... ``block5``, ``block1_conv1`` ...).

``vgg(widths=(64, 128, 256, 512, 512), convs=(2, 2, 3, 3, 3))`` is VGG16's convolutional base:
block k = ``convs[k]`` 3x3 convolutions (padding 1) with ReLU, then 2x2 max pooling. Module names
follow Keras: ``block3.conv2`` (Keras ``block3_conv2``), ``block3.pool`` (``block3_pool``), so
`nnlite.weights.load_keras_weights` imports a Keras VGG16 file by name.
"""
from __future__ import annotations

import numpy as np

from .._checks import as_generator
from ..nn.layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    GlobalAvgPool2d,
    Linear,
    MaxPool2d,
    ReLU,
)
from .named import Blocks

VGG16 = dict(widths=(64, 128, 256, 512, 512), convs=(2, 2, 3, 3, 3))


def vgg_block(in_channels: int, width: int, n_convs: int, batch_norm: bool = False, pool: bool = True,
              rng=None, dtype=np.float32) -> Blocks:
    """``n_convs`` x (conv3x3 [+ bn] + relu), then 2x2 max pooling: (N, C_in, H, W) -> (N, width, H/2, W/2)."""
    rng = as_generator(rng)
    items, c = [], in_channels
    for j in range(1, n_convs + 1):
        items.append((f"conv{j}", Conv2d(c, width, 3, padding=1, bias=not batch_norm, rng=rng, dtype=dtype)))
        if batch_norm:
            items.append((f"bn{j}", BatchNorm2d(width, dtype=dtype)))
        items.append((f"relu{j}", ReLU()))
        c = width
    if pool:
        items.append(("pool", MaxPool2d(2)))
    return Blocks(items)


def classifier_head(in_features: int, num_classes: int, hidden: int = 256, dropout: float = 0.5,
                    batch_norm: bool = True, rng=None, dtype=np.float32) -> Blocks:
    """The report's head: global average pooling, batch norm, dense ``hidden`` + ReLU, dropout, dense.

    x: (N, C, H, W) -> logits (N, num_classes) (apply softmax / SoftmaxCrossEntropy outside).
    ``hidden=0`` gives a linear head (pool [+ bn] + dense).
    """
    rng = as_generator(rng)
    items = [("gap", GlobalAvgPool2d())]
    if batch_norm:
        items.append(("bn", BatchNorm1d(in_features, dtype=dtype)))
    d = in_features
    if hidden:
        items += [("dense1", Linear(d, hidden, rng=rng, dtype=dtype)), ("relu", ReLU())]
        d = hidden
    if dropout:
        items.append(("dropout", Dropout(dropout, rng=rng)))
    items.append(("logits", Linear(d, num_classes, rng=rng, dtype=dtype)))
    return Blocks(items)


def vgg(widths=VGG16["widths"], convs=VGG16["convs"], in_channels: int = 3, num_classes=None,
        batch_norm: bool = False, head_hidden: int = 256, head_dropout: float = 0.5, rng=None,
        dtype=np.float32) -> Blocks:
    """A VGG-style network: blocks ``block1..blockK`` (K = len(widths)) and, when
    ``num_classes`` is given, a ``head`` (`classifier_head`).

    x: (N, in_channels, H, W) -> features (N, widths[-1], H/2^K, W/2^K), or logits
    (N, num_classes) with a head. batch_norm adds BatchNorm2d after every conv (not in VGG16;
    useful when training small VGGs from scratch).
    """
    widths, convs = tuple(int(w) for w in widths), tuple(int(c) for c in convs)
    if len(widths) != len(convs) or not widths:
        raise ValueError(f"widths and convs must be non-empty and of equal length, got {widths} and {convs}")
    if min(widths) < 1 or min(convs) < 1:
        raise ValueError(f"widths and convs must be positive, got {widths} and {convs}")
    rng = as_generator(rng)
    items, c = [], int(in_channels)
    for k, (w, n) in enumerate(zip(widths, convs), start=1):
        items.append((f"block{k}", vgg_block(c, w, n, batch_norm, rng=rng, dtype=dtype)))
        c = w
    if num_classes is not None:
        items.append(("head", classifier_head(c, int(num_classes), head_hidden, head_dropout,
                                              rng=rng, dtype=dtype)))
    model = Blocks(items)
    object.__setattr__(model, "needs_input_grad", False)
    return model
