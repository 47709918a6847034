"""The table of layer and loss specs that drives the gradient-check and dtype tests.

A new layer gets checked by adding one row: a name, a factory ``(rng, dtype) -> Module``,
an input maker ``(rng, dtype) -> x``, and the modes to check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

import nnlite.nn as nn
from nnlite import losses


@dataclass
class LayerSpec:
    name: str
    make: Callable
    make_input: Callable
    modes: Tuple[str, ...] = ("train",)


def normal(*shape, scale=1.0):
    return lambda rng, dtype: (rng.standard_normal(shape) * scale).astype(dtype)


def away_from_zero(*shape):
    """Inputs with |x| >= 0.1, so ReLU-like kinks are never within the finite-difference step."""
    def make(rng, dtype):
        x = rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        return x.astype(dtype)
    return make


def with_running_stats(bn):
    """Give a batch norm non-trivial running statistics so eval mode is a real test."""
    rng = np.random.default_rng(123)
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
    bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features)
    bn.bias.data[...] = rng.standard_normal(bn.num_features)
    return bn


def conv(cin, cout, k, stride=1, pad=0):
    return lambda rng, dtype: nn.Conv2d(cin, cout, k, stride=stride, padding=pad, rng=rng, dtype=dtype)


def small_cnn(rng, dtype):
    return nn.Sequential(
        nn.Normalize([0.5, 0.4], [0.2, 0.3], dtype=dtype),
        nn.Conv2d(2, 4, 3, padding=1, rng=rng, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(4, 3, 3, padding=1, rng=rng, dtype=dtype), nn.LeakyReLU(0.1),
        nn.AvgPool2d(2, 1), nn.Dropout(0.25, rng=rng), nn.Flatten(),
        nn.Linear(3 * 1 * 2, 6, rng=rng, dtype=dtype), nn.BatchNorm1d(6, dtype=dtype), nn.Tanh(),
        nn.Linear(6, 4, rng=rng, dtype=dtype))


LAYER_SPECS = [
    LayerSpec("linear", lambda r, d: nn.Linear(7, 5, rng=r, dtype=d), normal(4, 7)),
    LayerSpec("linear_nobias", lambda r, d: nn.Linear(7, 5, bias=False, rng=r, dtype=d), normal(4, 7)),
    LayerSpec("relu", lambda r, d: nn.ReLU(), away_from_zero(3, 4, 5)),
    LayerSpec("leaky_relu", lambda r, d: nn.LeakyReLU(0.2), away_from_zero(3, 4, 5)),
    LayerSpec("sigmoid", lambda r, d: nn.Sigmoid(), normal(3, 6, scale=3)),
    LayerSpec("tanh", lambda r, d: nn.Tanh(), normal(3, 6, scale=2)),
    LayerSpec("softmax", lambda r, d: nn.Softmax(), normal(4, 6, scale=2)),
    LayerSpec("flatten", lambda r, d: nn.Flatten(), normal(2, 3, 4, 5)),
    LayerSpec("conv3x3_s1_p1", conv(3, 4, 3, 1, 1), normal(2, 3, 6, 6)),
    LayerSpec("conv3x3_s2_p1_nonsquare", conv(2, 3, 3, 2, 1), normal(2, 2, 7, 5)),
    LayerSpec("conv3x3_s2_p0_nonsquare", conv(2, 3, 3, 2, 0), normal(2, 2, 8, 9)),
    LayerSpec("conv1x1", conv(4, 3, 1), normal(2, 4, 5, 3)),
    LayerSpec("conv5x5_p2", conv(2, 2, 5, 1, 2), normal(2, 2, 6, 7)),
    LayerSpec("conv_rect_kernel", lambda r, d: nn.Conv2d(2, 3, (2, 3), stride=(1, 2), padding=(1, 0), rng=r, dtype=d),
              normal(2, 2, 5, 7)),
    LayerSpec("maxpool2_s2", lambda r, d: nn.MaxPool2d(2), normal(2, 3, 6, 8)),
    LayerSpec("maxpool3_s1_overlap", lambda r, d: nn.MaxPool2d(3, 1), normal(2, 2, 5, 6)),
    LayerSpec("maxpool3_s2_nonsquare", lambda r, d: nn.MaxPool2d(3, 2), normal(2, 2, 7, 9)),
    LayerSpec("avgpool2_s2", lambda r, d: nn.AvgPool2d(2), normal(2, 3, 6, 8)),
    LayerSpec("avgpool3_s1_overlap", lambda r, d: nn.AvgPool2d(3, 1), normal(2, 2, 5, 6)),
    LayerSpec("avgpool_rect", lambda r, d: nn.AvgPool2d((2, 3), (1, 2)), normal(2, 2, 5, 7)),
    LayerSpec("global_avgpool", lambda r, d: nn.GlobalAvgPool2d(), normal(3, 4, 5, 3)),
    LayerSpec("batchnorm1d", lambda r, d: with_running_stats(nn.BatchNorm1d(5, dtype=d)),
              normal(6, 5, scale=2), modes=("train", "eval")),
    LayerSpec("batchnorm2d", lambda r, d: with_running_stats(nn.BatchNorm2d(3, dtype=d)),
              normal(4, 3, 3, 5, scale=2), modes=("train", "eval")),
    LayerSpec("dropout", lambda r, d: nn.Dropout(0.4, rng=r), normal(5, 8), modes=("train", "eval")),
    LayerSpec("normalize", lambda r, d: nn.Normalize([0.1, 0.2, 0.3], [0.5, 2.0, 1.5], dtype=d), normal(2, 3, 4, 4)),
    LayerSpec("sequential_cnn", small_cnn, normal(4, 2, 4, 6), modes=("train", "eval")),
    LayerSpec("residual_identity",
              lambda r, d: nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, rng=r, dtype=d), nn.Tanh())),
              normal(2, 3, 5, 5)),
    LayerSpec("residual_projection",
              lambda r, d: nn.Residual(
                  nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=r, dtype=d),
                                with_running_stats(nn.BatchNorm2d(4, dtype=d))),
                  nn.projection_shortcut(3, 4, stride=2, rng=r, dtype=d)),
              normal(3, 3, 6, 5), modes=("train", "eval")),
    LayerSpec("basic_block", lambda r, d: nn.basic_block(2, 4, stride=2, rng=r, dtype=d),
              normal(3, 2, 6, 6), modes=("train", "eval")),
]


@dataclass
class LossSpec:
    name: str
    make: Callable
    make_pred: Callable
    make_target: Callable


def labels(n, c):
    return lambda rng: rng.integers(0, c, size=n)


LOSS_SPECS = [
    LossSpec("cross_entropy", lambda d: losses.SoftmaxCrossEntropy(), normal(6, 5, scale=2), labels(6, 5)),
    LossSpec("cross_entropy_smoothing", lambda d: losses.SoftmaxCrossEntropy(label_smoothing=0.1),
             normal(6, 5, scale=2), labels(6, 5)),
    LossSpec("cross_entropy_weights", lambda d: losses.SoftmaxCrossEntropy(class_weights=[1.0, 2.0, 0.5, 1.5, 3.0]),
             normal(6, 5, scale=2), labels(6, 5)),
    LossSpec("cross_entropy_smoothing_weights",
             lambda d: losses.SoftmaxCrossEntropy(label_smoothing=0.2, class_weights=[1.0, 2.0, 0.5, 1.5, 3.0]),
             normal(6, 5, scale=2), labels(6, 5)),
    LossSpec("multiclass_hinge", lambda d: losses.MulticlassHinge(), normal(6, 5, scale=3), labels(6, 5)),
    LossSpec("mse", lambda d: losses.MSE(), normal(4, 3), lambda rng: rng.standard_normal((4, 3))),
    LossSpec("bce_with_logits", lambda d: losses.BCEWithLogits(), normal(4, 3, scale=3),
             lambda rng: rng.uniform(0, 1, size=(4, 3))),
]


def _collect_extra_rows():
    """Rows contributed by ``tests/specs_<topic>.py`` modules (one per feature area, so that
    areas grow the table without editing this file): each may define ``LAYER_SPECS`` and
    ``LOSS_SPECS`` lists of the classes above."""
    import importlib
    import pathlib
    for path in sorted(pathlib.Path(__file__).parent.glob("specs_*.py")):
        module = importlib.import_module(path.stem)
        LAYER_SPECS.extend(getattr(module, "LAYER_SPECS", []))
        LOSS_SPECS.extend(getattr(module, "LOSS_SPECS", []))


_collect_extra_rows()
