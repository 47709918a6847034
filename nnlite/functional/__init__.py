"""The textbook storey: pure kernels ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``, one screen each, sequential, no state.

These are the functions the README and the docstrings teach; ``nnlite.functional.reference``
holds the loop references they are tested against, and ``nnlite.fast`` the tuned engine
(same names, same contracts) that the layers run by default (see ``nnlite.use_kernels``).
"""
from .activations import (leaky_relu_backward, leaky_relu_forward, log_softmax, relu6_backward,
                          relu6_forward, relu_backward, relu_forward, sigmoid_backward, sigmoid_forward,
                          softmax_backward, softmax_forward, tanh_backward, tanh_forward)
from .batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_running_update
from .bce import bce
from .contrastive import barlow_twins, byol_loss, l2_normalize_backward, l2_normalize_forward, nt_xent
from .conv import col2im, conv2d_backward, conv2d_forward, conv_output_size, im2col
from .conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward, conv_transpose_output_size
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .dlr import dlr_backward, dlr_forward
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .losses import bce_with_logits, mse, multiclass_hinge, softmax_cross_entropy
from .pool import (avgpool2d_backward, avgpool2d_forward, flatten_backward, flatten_forward,
                   global_avgpool_backward, global_avgpool_forward, maxpool2d_backward,
                   maxpool2d_forward)
from .upsample import upsample2d_backward, upsample2d_forward

__all__ = [name for name in dir() if not name.startswith("_")]
