"""Gradient-check rows of the fused layer pairs (``Sequential`` runs a ``Conv2d`` or a batch
norm and the ``ReLU`` after it as one engine kernel, and hands a ``Conv2d`` the input gradient
of the batch norm or max pool after it unwritten): the engine storey checks the fused kernels' backward
passes, the textbook storey the same layers unfused."""

import nnlite.nn as nn

from specs import LayerSpec, normal, with_running_stats


def conv_relu(cin, cout, k, stride=1, pad=0, bias=True):
    return lambda rng, dtype: nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=bias, rng=rng, dtype=dtype), nn.ReLU())


def conv_bn(cin, cout, k, stride=1, pad=0, relu=False):
    """Conv2d (no bias) + BatchNorm2d (+ ReLU): the batch norm's dx reaches the conv pending."""
    return lambda rng, dtype: nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False, rng=rng, dtype=dtype),
        with_running_stats(nn.BatchNorm2d(cout, dtype=dtype)), *([nn.ReLU()] if relu else []))


def conv_pool(cin, cout, k, pool, pool_stride=None, relu=True):
    """Conv2d (+ ReLU) + MaxPool2d: the max pool's dx reaches the conv pending."""
    return lambda rng, dtype: nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, rng=rng, dtype=dtype), *([nn.ReLU()] if relu else []),
        nn.MaxPool2d(pool, pool_stride))


def bn_relu(bn):
    return lambda rng, dtype: nn.Sequential(with_running_stats(bn(dtype)), nn.ReLU())


LAYER_SPECS = [
    LayerSpec("fused_conv3x3_relu", conv_relu(3, 4, 3, 1, 1), normal(2, 3, 6, 6)),
    LayerSpec("fused_conv3x3_s2_relu_nobias", conv_relu(2, 3, 3, 2, 1, bias=False), normal(2, 2, 7, 5)),
    LayerSpec("fused_conv1x1_relu", conv_relu(4, 3, 1), normal(2, 4, 5, 3)),
    LayerSpec("fused_bn2d_relu", bn_relu(lambda d: nn.BatchNorm2d(3, dtype=d)), normal(4, 3, 3, 5, scale=2),
              modes=("train", "eval")),
    LayerSpec("fused_bn1d_relu", bn_relu(lambda d: nn.BatchNorm1d(5, dtype=d)), normal(6, 5, scale=2),
              modes=("train", "eval")),
    LayerSpec("pending_conv3x3_bn", conv_bn(3, 4, 3, 1, 1), normal(3, 3, 5, 5), modes=("train", "eval")),
    LayerSpec("pending_conv3x3_s2_bn_relu", conv_bn(2, 3, 3, 2, 1, relu=True), normal(3, 2, 7, 6, scale=2),
              modes=("train", "eval")),
    LayerSpec("pending_conv1x1_bn_relu", conv_bn(4, 3, 1, relu=True), normal(3, 4, 4, 3), modes=("train", "eval")),
    LayerSpec("pending_conv3x3_relu_maxpool2", conv_pool(3, 4, 3, 2), normal(3, 3, 6, 5)),
    LayerSpec("pending_conv3x3_maxpool3s2", conv_pool(2, 3, 3, 3, 2, relu=False), normal(2, 2, 7, 7)),
]
