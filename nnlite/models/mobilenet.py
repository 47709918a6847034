"""MobileNetV2-style builder with named blocks, from depthwise-separable convolutions.

``inverted_residual(c_in, c_out, stride, expansion)`` is MobileNetV2's bottleneck unit (Sandler
et al. 2018), with Keras's layer names in lower case::

    expand (1x1 Conv2d c_in -> t*c_in) - expand_bn - expand_relu (ReLU6)      [left out when t = 1]
    depthwise (3x3 DepthwiseConv2d, stride, padding 1) - depthwise_bn - depthwise_relu (ReLU6)
    project (1x1 Conv2d t*c_in -> c_out) - project_bn                            [linear: no activation]

wrapped in ``nn.Residual`` (identity shortcut, nothing after the sum) when stride is 1 and
c_in == c_out. Convolutions have no bias (batch norm follows each one).

``mobilenet_v2(widths=(16, 24, 32, 64), units=(1, 2, 2, 2))``: ``stem`` (3x3 conv stride 1 + bn +
ReLU6, ``stem_width`` channels), then ``block1..blockK``; block k holds ``units[k]`` inverted
residual units (``unit1``, ``unit2``, ...), the first of blocks 2..K with stride 2, as
`nnlite.models.resnet`; optional ``head`` (`nnlite.models.vgg.classifier_head`). The defaults are
sized for 32x32 and 64x64 inputs (4x4 and 8x8 final maps; 118,960 parameters and 5,536
batch-norm statistics without a head); ImageNet's MobileNetV2 has a stride-2 stem, seven stages
up to 320 channels and a last 1x1 conv to 1280 channels, which this builder leaves out.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._checks import as_generator, check_int
from ..nn.containers import Residual
from ..nn.layers import BatchNorm2d, Conv2d, DepthwiseConv2d, ReLU6
from .named import Blocks
from .vgg import classifier_head


def inverted_residual(in_channels: int, out_channels: int, stride: int = 1, expansion: int = 6, rng=None,
                      dtype=np.float32):
    """MobileNetV2 unit: x: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo), Ho = (H - 1) // stride + 1.

    out = bn(project(relu6(bn(depthwise(relu6(bn(expand(x))))))) [+ x when stride == 1 and
    in_channels == out_channels]. expansion t: hidden width t*in_channels (t = 1: no expand conv).
    Returns a `Blocks` (names above), or an ``nn.Residual`` around it (its ``block``).
    """
    c_in, c_out = check_int(in_channels, "in_channels"), check_int(out_channels, "out_channels")
    stride, t = check_int(stride, "stride"), check_int(expansion, "expansion")
    rng = as_generator(rng)
    hidden = t * c_in
    items = []
    if t != 1:
        items += [("expand", Conv2d(c_in, hidden, 1, bias=False, rng=rng, dtype=dtype)),
                  ("expand_bn", BatchNorm2d(hidden, dtype=dtype)), ("expand_relu", ReLU6())]
    items += [("depthwise", DepthwiseConv2d(hidden, 3, stride=stride, padding=1, bias=False, rng=rng, dtype=dtype)),
              ("depthwise_bn", BatchNorm2d(hidden, dtype=dtype)), ("depthwise_relu", ReLU6()),
              ("project", Conv2d(hidden, c_out, 1, bias=False, rng=rng, dtype=dtype)),
              ("project_bn", BatchNorm2d(c_out, dtype=dtype))]
    body = Blocks(items)
    return Residual(body) if stride == 1 and c_in == c_out else body


def mobilenet_v2(widths=(16, 24, 32, 64), units=(1, 2, 2, 2), expansion=6, stem_width: int = 16,
                 in_channels: int = 3, num_classes=None, head_hidden: int = 256, head_dropout: float = 0.5,
                 rng=None, dtype=np.float32) -> Blocks:
    """x: (N, in_channels, H, W) -> (N, widths[-1], H/2^(K-1), W/2^(K-1)) or logits (N, num_classes).

    widths, units: channels and unit counts of ``block1..blockK``; expansion: the factor t of
    every block (an int) or one per block (e.g. ``(1, 6, 6, 6)``: MobileNetV2's first bottleneck
    has t = 1); num_classes: adds the ``head`` (`classifier_head` with ``head_hidden``,
    ``head_dropout``). The model skips the input gradient (``needs_input_grad=False``, as
    `vgg` and `resnet`), so frozen prefixes cost no backward pass.
    """
    widths, units = tuple(check_int(w, "widths") for w in widths), tuple(check_int(u, "units") for u in units)
    if not widths or len(widths) != len(units):
        raise ValueError(f"widths and units must be non-empty and of equal length, got {widths} and {units}")
    if isinstance(expansion, numbers.Integral):
        expansion = (expansion,) * len(widths)
    expansion = tuple(check_int(t, "expansion") for t in expansion)
    if len(expansion) != len(widths):
        raise ValueError(f"expansion must be an int or one int per block ({len(widths)}), got {expansion}")
    stem_width, in_channels = check_int(stem_width, "stem_width"), check_int(in_channels, "in_channels")
    rng = as_generator(rng)
    items = [("stem", Blocks([("conv", Conv2d(in_channels, stem_width, 3, padding=1, bias=False, rng=rng,
                                              dtype=dtype)),
                              ("bn", BatchNorm2d(stem_width, dtype=dtype)), ("relu", ReLU6())]))]
    c = stem_width
    for k, (w, n, t) in enumerate(zip(widths, units, expansion), start=1):
        stage = []
        for u in range(1, n + 1):
            stride = 2 if (k > 1 and u == 1) else 1
            stage.append((f"unit{u}", inverted_residual(c, w, stride, t, rng=rng, dtype=dtype)))
            c = w
        items.append((f"block{k}", Blocks(stage)))
    if num_classes is not None:
        items.append(("head", classifier_head(c, check_int(num_classes, "num_classes"), head_hidden, head_dropout,
                                              rng=rng, dtype=dtype)))
    model = Blocks(items)
    object.__setattr__(model, "needs_input_grad", False)
    return model
