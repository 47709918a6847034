"""Layers and models: ``Parameter``, ``Module``, layers, containers, ``summary``."""
from .containers import ModuleList, Residual, Sequential, basic_block, projection_shortcut
from .conv_transpose import ConvTranspose2d
from .layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, DepthwiseConv2d, Dropout, Flatten,
                     GlobalAvgPool2d, Identity, LeakyReLU, Linear, MaxPool2d, Normalize, ReLU, ReLU6,
                     Sigmoid, Softmax, Tanh)
from .module import Module
from .parameter import Parameter
from .reshape import Reshape, Unflatten, Upsample
from .summary import summary

__all__ = [name for name in dir() if not name.startswith("_")]
