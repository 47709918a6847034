"""The engine storey: the tuned kernels, with the same names and contracts as the textbook
kernels of ``nnlite.functional`` (whose functions it re-exports where it has no faster one).

What "tuned" means here: batch chunks of about a core's cache, the workers of an enclosing
``nnlite.parallel.threads()`` block (the engine is the only user of those workers), reused
workspaces, channel-last layout (``layout``), per-shape strategies with their tuning
constants and measurements (``conv``), and declared profiling seams (``probes``). It imports
``nnlite.functional`` and ``nnlite.parallel``; ``nnlite.functional`` never imports it.
Tests prove engine == textbook == loop reference for every kernel here.
"""
from ..functional import *  # noqa: F401,F403  (kernels without an engine version)
from ..functional import __all__ as _textbook_names
from .activations import (leaky_relu_backward, leaky_relu_forward, relu6_backward, relu6_forward, relu_backward,
                          relu_forward, sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward)
from .batchnorm import batchnorm_backward, batchnorm_forward
from .conv import conv2d_backward, conv2d_forward, release_workspaces
from .conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .linear import linear_backward, linear_forward
from .pending import PendingGrad
from .losses import softmax_cross_entropy
from .pool import (avgpool2d_backward, avgpool2d_forward, global_avgpool_backward, global_avgpool_forward,
                   maxpool2d_backward, maxpool2d_forward)

#: ``nn.Sequential`` runs a ``Conv2d`` or a batch norm and the ``ReLU`` right after it as one
#: engine kernel (``conv2d_forward(..., relu=True)``, ``batchnorm_forward(..., relu=True)``):
#: bit-identical results, one pass over the activations fewer each way. False: every layer
#: runs its own kernels (for A/B measurements).
FUSE_RELU = True

#: ``nn.Sequential`` hands a ``Conv2d`` the input gradient of the batch norm right after it
#: unwritten, as a ``PendingGrad``: the conv's backward computes its rows chunk by chunk into
#: its own workspace (``batchnorm_backward(..., pending=True)``): bit-identical results, dx of
#: the batch norm never written nor read back. False: the batch norm returns dx (for A/B).
FUSE_BN_INTO_CONV = True

#: Likewise for a max pool after a ``Conv2d`` (or after the ``ReLU`` fused into it):
#: ``maxpool2d_backward(..., pending=True)``; its dx (the conv's dout, activation-sized)
#: is never written whole, which also takes one such array off a training step's peak memory.
FUSE_POOL_INTO_CONV = True

#: Under ``nnlite.no_grad()`` ``nn.Sequential`` runs a ``Conv2d``, an optional ``ReLU`` and a
#: ``MaxPool2d`` after it as one kernel (``conv2d_forward(..., maxpool=(kernel, stride))``):
#: each chunk of the conv's output is pooled in cache, the whole output never written;
#: bit-identical results. False: the layers run one by one (for A/B).
FUSE_POOL_NO_GRAD = True

#: The kernels this storey tunes (the rest are the textbook ones, re-exported).
ENGINE_KERNELS = ("relu_forward", "relu_backward", "relu6_forward", "relu6_backward", "leaky_relu_forward",
                  "leaky_relu_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
                  "depthwise_conv2d_forward", "depthwise_conv2d_backward", "batchnorm_forward", "batchnorm_backward",
                  "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward",
                  "conv_transpose2d_backward", "linear_forward", "linear_backward",
                  "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward",
                  "avgpool2d_backward", "global_avgpool_forward", "global_avgpool_backward",
                  "softmax_cross_entropy")

__all__ = sorted(set(_textbook_names) | set(ENGINE_KERNELS) | {"release_workspaces", "PendingGrad"})
