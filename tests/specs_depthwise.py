"""Gradient-check rows of depthwise convolution, ReLU6 and the MobileNetV2 inverted residual
block (issue 17): input and every parameter in float64, stride 1 and 2, padding, channel
multiplier 1 and 2, with and without bias."""
import numpy as np

import nnlite.nn as nn
from nnlite.models.mobilenet import inverted_residual, mobilenet_v2

from specs import LayerSpec, normal, with_running_stats


def dw(channels, k, stride=1, pad=0, multiplier=1, bias=True):
    return lambda rng, dtype: nn.DepthwiseConv2d(channels, k, stride=stride, padding=pad, multiplier=multiplier,
                                                 bias=bias, rng=rng, dtype=dtype)


def away_from_relu6_kinks(*shape):
    """Inputs in [-2, 8] at least 0.1 away from ReLU6's kinks at 0 and 6."""
    def make(rng, dtype):
        x = rng.uniform(-2.0, 8.0, size=shape)
        near = (np.abs(x) < 0.1) | (np.abs(x - 6) < 0.1)
        return np.where(near, x + 0.25, x).astype(dtype)
    return make


def with_bn_stats(block):
    """Non-trivial running statistics in every batch norm (eval mode is then a real test) and the
    input gradient switched on (the builder's model skips it)."""
    for _, m in block.named_modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with_running_stats(m)
    if hasattr(block, "needs_input_grad"):
        object.__setattr__(block, "needs_input_grad", True)
    return block


LAYER_SPECS = [
    LayerSpec("depthwise3x3_s1_p1", dw(3, 3, 1, 1), normal(2, 3, 5, 6)),
    LayerSpec("depthwise3x3_s1_p0_nobias", dw(2, 3, bias=False), normal(2, 2, 5, 5)),
    LayerSpec("depthwise3x3_s2_p1", dw(3, 3, 2, 1), normal(2, 3, 7, 6)),
    LayerSpec("depthwise3x3_s2_p1_m2_nobias", dw(2, 3, 2, 1, multiplier=2, bias=False), normal(2, 2, 6, 7)),
    LayerSpec("depthwise3x3_s1_p1_m2", dw(3, 3, 1, 1, multiplier=2), normal(2, 3, 5, 4)),
    LayerSpec("depthwise_rect_kernel_m3", lambda r, d: nn.DepthwiseConv2d(2, (2, 3), stride=(1, 2), padding=(1, 0),
                                                                          multiplier=3, rng=r, dtype=d),
              normal(2, 2, 5, 7)),
    LayerSpec("relu6", lambda r, d: nn.ReLU6(), away_from_relu6_kinks(3, 4, 5)),
    LayerSpec("inverted_residual_s1_residual",
              lambda r, d: with_bn_stats(inverted_residual(3, 3, 1, expansion=2, rng=r, dtype=d)),
              normal(3, 3, 5, 5), modes=("train", "eval")),
    LayerSpec("inverted_residual_s2",
              lambda r, d: with_bn_stats(inverted_residual(2, 3, 2, expansion=3, rng=r, dtype=d)),
              normal(3, 2, 6, 5), modes=("train", "eval")),
    LayerSpec("inverted_residual_t1",
              lambda r, d: with_bn_stats(inverted_residual(3, 2, 1, expansion=1, rng=r, dtype=d)),
              normal(3, 3, 4, 4), modes=("train", "eval")),
    LayerSpec("mobilenet_v2_tiny",
              lambda r, d: with_bn_stats(mobilenet_v2(widths=(2, 3), units=(1, 1), expansion=(1, 2), stem_width=2,
                                                      in_channels=1, num_classes=2, head_hidden=0, head_dropout=0,
                                                      rng=r, dtype=d)),
              normal(3, 1, 4, 4), modes=("train", "eval")),
]
